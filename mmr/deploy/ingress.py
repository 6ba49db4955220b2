"""deploy/k8s/ingress.yaml, generated from the route table (Prefix and Exact rules only, so
any Ingress controller routes it the same way)."""

from __future__ import annotations

from mmr.deploy.routes import DEPLOY_DIR, Route, routes

INGRESS_PATH = DEPLOY_DIR / "k8s" / "ingress.yaml"

_HEADER = """\
# The cluster's ingress: every Matrix media path to its service pool. GENERATED from
# deploy/routes.yaml by `python -m mmr.deploy.generate` (the nginx template comes from the same
# table): edit the table, not this file. No host: mmr serves every homeserver in media-repo.yaml
# and picks one by the Host header; add `host:` and `tls:` for your names (a kustomize patch).
# Prefix paths match whole segments; the longest wins.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: mmr
  labels:
    app.kubernetes.io/name: mmr
  annotations:
    # mmr enforces uploads.maxBytes itself while streaming; no second limit here.
    nginx.ingress.kubernetes.io/proxy-body-size: "0"
    # Stream request and response bodies instead of spooling them in the ingress.
    nginx.ingress.kubernetes.io/proxy-request-buffering: "off"
    nginx.ingress.kubernetes.io/proxy-buffering: "off"
    nginx.ingress.kubernetes.io/proxy-read-timeout: "120"
    nginx.ingress.kubernetes.io/proxy-send-timeout: "120"
spec:
  ingressClassName: nginx
  rules:
    - http:
        paths:
"""


def _path(path: str, path_type: str, service: str) -> str:
    return (
        f"          - path: {path}\n"
        f"            pathType: {path_type}\n"
        "            backend:\n"
        "              service:\n"
        f"                name: mmr-{service}\n"
        "                port:\n"
        "                  name: http\n"
    )


_REGEX_HEADER = """\
---
# The rules with an ID in the middle of the path (Synapse's admin API), which no Prefix rule can
# express: regexes, for ingress-nginx (`use-regex`; other controllers need their own syntax).
# ingress-nginx then treats every path of the host as a case-insensitive regex prefix, which
# still routes every valid path as above. GENERATED from deploy/routes.yaml like the Ingress above.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: mmr-regex
  labels:
    app.kubernetes.io/name: mmr
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
spec:
  ingressClassName: nginx
  rules:
    - http:
        paths:
"""


def ingress_yaml(table: tuple[Route, ...] | None = None) -> str:
    """The Prefix/Exact Ingress, and one for the Regex rules when the table has any."""
    rules = routes() if table is None else table
    text = _HEADER + "".join(_path(r.path, r.path_type, r.service)
                             for r in rules if r.path_type != "Regex")
    regexes = [r for r in rules if r.path_type == "Regex"]
    if regexes:
        # ingress-nginx anchors the start itself (`~* "^<path>"`); the end is ours.
        text += _REGEX_HEADER + "".join(_path(f'"{r.path}$"', "ImplementationSpecific", r.service)
                                        for r in regexes)
    return text
