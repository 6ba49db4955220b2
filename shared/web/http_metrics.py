"""Pure ASGI middleware counting and timing HTTP requests for Prometheus.

Pure ASGI (not BaseHTTPMiddleware) so streamed bodies pass through untouched. Installed only when
`metrics.enabled`. Requests are labelled by the route's template (`.../download/{server_name}/
{media_id}`), never the raw path, and by a fixed set of methods, so clients cannot create series.
"""

from __future__ import annotations

from time import perf_counter

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics.definitions import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS

UNMATCHED = "unmatched"
"""The route label of requests no endpoint handled: unknown paths, CORS preflights."""
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
Series = tuple[Counter, Histogram]


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, service: str, machine_id: int) -> None:
        self.app = app
        self.ids = (service, str(machine_id))
        self.in_flight = HTTP_IN_FLIGHT.labels(*self.ids)
        # Label lookups take a lock each; the few series a process ever sees are kept here.
        self.series: dict[tuple[str, str, int], Series] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Unchanged when the app raises before answering: the server then answers 500.
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = perf_counter()
        self.in_flight.inc()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.in_flight.dec()
            requests, duration = self._series_for(scope, status)
            requests.inc()
            duration.observe(perf_counter() - started)

    def _series_for(self, scope: Scope, status: int) -> Series:
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        # The router records the route it chose in the (shared) scope.
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        key = (method, route, status)
        series = self.series.get(key)
        if series is None:
            labels = (*self.ids, method, route, str(status))
            series = self.series[key] = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
        return series
