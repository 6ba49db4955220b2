"""URL preview HTTP routes: parse the request, call the pipeline, return the OpenGraph JSON."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from services.preview import pipeline
from shared.matrix.errors import MissingParam
from shared.runtime import Runtime
from shared.web.deps import get_homeserver, get_user
from shared.web.lean import LeanRoute
from shared.web.params import int_param
from shared.web.ratelimit import limit_by_ip


# A cached preview is a few hundred bytes the pipeline already holds encoded, so FastAPI's
# routing and dependency solving were most of its cost: a lean endpoint, as the downloads are,
# and a plain ASGI one (`PreviewUrl`). It calls the same dependencies by hand in FastAPI's order
# (the IP limit, the homeserver, the user, then the query) and raises the same Matrix errors,
# which the app's shared handlers answer (nothing has been sent yet when they are raised).
async def _preview_body(request: Request) -> bytes:
    runtime: Runtime = request.app.state.runtime
    await limit_by_ip(request, runtime)
    hs = await get_homeserver(request, runtime)
    user = await get_user(request, runtime, hs)
    query = request.query_params
    url = query.get("url")
    if url is None:
        raise MissingParam("Missing parameter: url")
    return await pipeline.run(
        runtime,
        pipeline.PreviewRequest(
            server_name=hs.name,
            user_id=user.user_id,
            url=url,
            ts=int_param(query, "ts"),
            language=request.headers.get("accept-language"),
        ),
    )


_JSON = (b"content-type", b"application/json")


class PreviewUrl:
    """`GET .../preview_url?url=...&ts=...`: og keys for the page (`{}` when it says nothing).

    An ASGI app rather than a function, which Starlette's `Route` would wrap per request in a
    Request, a Response and the route's own exception handling."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _preview_body(Request(scope, receive))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [_JSON, (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


PREVIEW_PATHS = (
    "/_matrix/client/v1/media/preview_url",
    "/_matrix/media/r0/preview_url",
    "/_matrix/media/v3/preview_url",
)
router = APIRouter()
for _path in PREVIEW_PATHS:
    _route = LeanRoute(_path, PreviewUrl(), methods=["GET"])
    # Starlette adds HEAD to a GET route; the FastAPI route this replaces answered it 405.
    _route.methods = {"GET"}
    router.routes.append(_route)
