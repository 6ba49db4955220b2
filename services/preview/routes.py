"""URL preview HTTP routes: parse the request, call the pipeline, return the OpenGraph JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from services.preview import pipeline
from shared.web.deps import HomeserverDep, RuntimeDep, UserDep
from shared.web.ratelimit import limit_by_ip

router = APIRouter(dependencies=[Depends(limit_by_ip)])


async def preview_url(
    request: Request, runtime: RuntimeDep, hs: HomeserverDep, user: UserDep,
    url: str, ts: int | None = None,
) -> dict[str, Any]:
    """`GET .../preview_url?url=...&ts=...`: og keys for the page (`{}` when it says nothing)."""
    return await pipeline.run(
        runtime,
        pipeline.PreviewRequest(
            server_name=hs.name,
            user_id=user.user_id,
            url=url,
            ts=ts,
            language=request.headers.get("accept-language"),
        ),
    )


for _path in (
    "/_matrix/client/v1/media/preview_url",
    "/_matrix/media/r0/preview_url",
    "/_matrix/media/v3/preview_url",
):
    router.add_api_route(_path, preview_url, methods=["GET"])
