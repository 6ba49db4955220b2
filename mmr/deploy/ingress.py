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


def _path(route: Route) -> str:
    return (
        f"          - path: {route.path}\n"
        f"            pathType: {route.path_type}\n"
        "            backend:\n"
        "              service:\n"
        f"                name: mmr-{route.service}\n"
        "                port:\n"
        "                  name: http\n"
    )


def ingress_yaml(table: tuple[Route, ...] | None = None) -> str:
    return _HEADER + "".join(_path(route) for route in (routes() if table is None else table))
