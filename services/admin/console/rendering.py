"""Rendering console pages: autoescaped Jinja2 templates and the headers every page carries."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

HERE = Path(__file__).parent
BASE = "/_matrix/media/unstable/admin/console"

# No inline script or style anywhere: scripts, styles and images come from the console's own
# static routes; forms post back only to it; nobody may frame it.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send Origin: null
    "Cache-Control": "no-store",
}


def _when(ms: int | None) -> str:
    if not ms:
        return "—"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _bytes(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _make_environment() -> Environment:
    # autoescape=True for every template, whatever its name: filenames, user and room IDs are
    # hostile input and are only ever shown as text.
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["bytes"] = _bytes
    env.globals["base"] = BASE
    return env


ENVIRONMENT = _make_environment()


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = ENVIRONMENT.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
