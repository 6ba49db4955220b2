"""A real nginx for tests, started by the same code as `mmr cluster up` (mmr/devcluster/nginx.py)
from the repo's template (mmr/deploy/nginx_conf.py). Missing nginx is an error, never a skip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmr.deploy.nginx_conf import PLACEHOLDERS as TEMPLATE_PLACEHOLDERS
from mmr.deploy.nginx_conf import TEMPLATE_PATH, render_template
from mmr.deploy.nginx_conf import render_mmr_conf as _render_mmr_conf
from mmr.devcluster.nginx import (
    PORT_PLACEHOLDER,
    ROUTING_LOG_FORMAT,
    NginxProcess,
    check_config,
    ensure_nginx,
    full_config,
    start_nginx,
)

__all__ = ["PORT_PLACEHOLDER", "ROUTING_LOG_FORMAT", "TEMPLATE_PATH", "TEMPLATE_PLACEHOLDERS",
           "NginxProcess", "check_config", "ensure_nginx", "full_config", "render_mmr_conf",
           "render_template", "start_nginx"]


def render_mmr_conf(upstreams: Mapping[str, str | Sequence[str]],
                    listen: str = f"127.0.0.1:{PORT_PLACEHOLDER}", max_body_size: str = "0",
                    file_datastores: Mapping[str, str] | None = None) -> str:
    """The template rendered for a test nginx (listening on the port `start_nginx` picks)."""
    return _render_mmr_conf(upstreams, listen, max_body_size, file_datastores)
