"""The route table of deploy/routes.yaml for the tests (loaded by mmr/deploy/routes.py)."""

from __future__ import annotations

from mmr.deploy.routes import Route, matches, routes, sample_paths, service_for
from shared.services import SERVICES

ROUTES: tuple[Route, ...] = routes()

__all__ = ["ROUTES", "SERVICES", "Route", "matches", "sample_paths", "service_for"]
