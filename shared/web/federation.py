"""FastAPI dependency for federation routes: the verified origin server of the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from shared.config import HomeserverConfig
from shared.federation.auth import authenticate_request
from shared.web.deps import HomeserverDep, RuntimeDep


@dataclass(frozen=True)
class FederationOrigin:
    """A request another server signed: who it is, and which of our homeservers it asked."""

    server_name: str
    homeserver: HomeserverConfig


def request_uri(request: Request) -> str:
    """The path and query exactly as the sender wrote (and signed) them."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def get_federation_origin(
    request: Request, runtime: RuntimeDep, hs: HomeserverDep
) -> FederationOrigin:
    origin = await authenticate_request(
        runtime.federation.keys,
        hs,
        request.method,
        request_uri(request),
        request.headers.getlist("authorization"),
    )
    return FederationOrigin(origin, hs)


FederationOriginDep = Annotated[FederationOrigin, Depends(get_federation_origin)]
