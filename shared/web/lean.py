"""Lean routes: plain Starlette endpoints for the hottest paths (downloads), which skip
FastAPI's per-request dependency solving and parameter validation. Their errors are still
MatrixErrors, answered by the app's shared handlers (`shared.web.errors`)."""

from __future__ import annotations

from starlette.routing import Match, Route
from starlette.types import Scope


class LeanRoute(Route):
    """A Starlette `Route` that `make_app` tries before every FastAPI route, and that names
    itself in the scope as FastAPI's routes do (the request metrics label by its template)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope
