"""The one app factory every service uses, so all five look and behave the same."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI

from shared.cluster.presence import Claim
from shared.config import MmrConfig
from shared.metrics.listener import metrics_listener
from shared.metrics.state import watched
from shared.runtime import Runtime, build_runtime
from shared.version import mmr_version
from shared.web import health
from shared.web.errors import install_error_handlers
from shared.web.http_metrics import HttpMetricsMiddleware
from shared.web.lean import LeanRoute
from shared.web.middleware import MatrixHttpMiddleware
from shared.web.raw_path import RawPathGuard

StartHook = Callable[[Runtime], Awaitable[Callable[[], Awaitable[None]] | None]]


def make_app(
    service: str,
    routers: Sequence[APIRouter],
    config: MmrConfig | None = None,
    machine_id: int = 0,
    runtime: Runtime | None = None,
    single_homeserver: bool = False,
    start_hooks: Sequence[StartHook] = (),
    claim: Claim | None = None,
) -> FastAPI:
    """A FastAPI app for `service` with the shared lifespan, error handling and health routes.

    Pass `runtime` to run on one you built (tests); otherwise one is built from `config` at start
    (taking over the machine-ID `claim` that `mmr serve` made, else claiming one then).
    A start hook may return a stop coroutine, awaited at shutdown in reverse order.
    """
    settings = runtime.config if runtime is not None else config
    if settings is None:
        raise ValueError("make_app needs a config or a runtime")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Metrics: their own listener for the process's whole life, bound before anything else
        # so that a port clash stops the start at once.
        async with metrics_listener(settings.metrics), services_lifespan(app):
            yield

    @asynccontextmanager
    async def services_lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        rt = runtime or await build_runtime(config, service, machine_id, single_homeserver,  # type: ignore[arg-type]
                                            claim)
        app.state.runtime = rt
        stops = []
        stack = AsyncExitStack()
        try:
            if settings.metrics.enabled:
                await stack.enter_async_context(watched(rt))
            for hook in start_hooks:
                stop = await hook(rt)
                if stop is not None:
                    stops.append(stop)
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            await stack.aclose()
            if owned:
                await rt.close()

    app = FastAPI(
        title=f"mmr {service}", version=mmr_version(), lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(RawPathGuard)  # inside the CORS/request-ID middleware: its 400s get both
    app.add_middleware(MatrixHttpMiddleware)
    if settings.metrics.enabled:  # outermost, so it times everything (absent when disabled)
        metrics_machine = runtime.machine_id if runtime is not None else machine_id
        app.add_middleware(HttpMetricsMiddleware, service=service, machine_id=metrics_machine)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    # Lean routes (shared.web.lean: the downloads) are tried first, before FastAPI
    # walks every included router: for a small cached download that walk through some hundred
    # routes costs a tenth of the request. (Their included copies are never reached then.)
    app.router.routes[0:0] = [route for router in routers for route in router.routes
                              if isinstance(route, LeanRoute)]
    return app
