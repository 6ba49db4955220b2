"""The nginx template: its generated `location` rules, and rendering its placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from mmr.deploy.routes import DEPLOY_DIR, SERVICES, Route, routes

TEMPLATE_PATH = DEPLOY_DIR / "nginx" / "mmr.conf.template"
PLACEHOLDERS = ("MMR_LISTEN", "MMR_MAX_BODY_SIZE",
                *(f"{service.upper()}_UPSTREAM" for service in SERVICES))
BEGIN = "    # BEGIN routes (generated from deploy/routes.yaml by `python -m mmr.deploy.generate`)"
END = "    # END routes"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# What each pool needs beyond proxy_pass: uploads and downloads stream through nginx (no spooling
# of a 100 MiB body to its disk before mmr sees a byte); a preview fetch is bounded by
# timeouts.urlPreviewTimeoutSeconds, so waiting longer than a minute means something is wrong.
POOL_DIRECTIVES: dict[str, str] = {
    "upload": "proxy_request_buffering off; proxy_buffering off;",
    "download": "proxy_request_buffering off; proxy_buffering off;",
    "thumbnail": "",
    "preview": "proxy_read_timeout 60s;",
    "admin": "",
}


def _location(modifier: str, path: str, service: str) -> str:
    body = f"set $mmr_pool {service}; proxy_pass http://mmr_{service};"
    extra = POOL_DIRECTIVES[service]
    return f"    location {modifier}{path} {{ {body}{' ' + extra if extra else ''} }}"


def location_lines(table: tuple[Route, ...]) -> list[str]:
    """nginx `location`s equal to the table: Exact -> `= /p`; Prefix -> `= /p` and `^~ /p/`
    (`^~`: a prefix rule is never overridden by a regex one, as in the table); Regex -> `~`,
    after the others, in table order."""
    lines: list[str] = []
    for route in table:
        if route.path_type == "Regex":
            continue
        lines.append(_location("= ", route.path, route.service))
        if route.path_type == "Prefix":
            lines.append(_location("^~ ", route.path + "/", route.service))
    for route in table:
        if route.path_type == "Regex":
            lines.append(_location("~ ", f'"^{route.path}$"', route.service))
    return lines


def with_generated_routes(template: str, table: tuple[Route, ...] | None = None) -> str:
    """`template` with the lines between BEGIN and END replaced by the table's locations."""
    start, end = template.index(BEGIN) + len(BEGIN), template.index(END)
    generated = "\n".join(location_lines(routes() if table is None else table))
    return template[:start] + "\n" + generated + "\n" + template[end:]


def render_template(values: Mapping[str, str], template: str | None = None) -> str:
    """The template with its `${NAME}` placeholders filled, as `envsubst 'NAMES'` would."""
    text = TEMPLATE_PATH.read_text() if template is None else template
    missing = [name for name in PLACEHOLDERS if name not in values]
    if missing:
        raise ValueError(f"no value for template placeholders: {', '.join(missing)}")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"unknown placeholder ${{{name}}} in the nginx template")
        return values[name]

    return _PLACEHOLDER.sub(fill, text)


def render_mmr_conf(upstreams: Mapping[str, str | Sequence[str]], listen: str,
                    max_body_size: str = "0") -> str:
    """The template rendered for `listen`, a body limit and {service: host:port} upstreams
    (a list of addresses becomes one `server` line each, balanced round-robin)."""
    values = {
        f"{service.upper()}_UPSTREAM":
            address if isinstance(address, str) else "; server ".join(address)
        for service, address in upstreams.items()
    }
    return render_template({"MMR_LISTEN": listen, "MMR_MAX_BODY_SIZE": max_body_size, **values})
