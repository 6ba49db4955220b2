"""Who a request is: the user behind an access token."""

from __future__ import annotations

from dataclasses import dataclass

SHARED_SECRET_USER = "@sharedsecret"


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    is_admin: bool = False
    is_shared_secret: bool = False
    is_guest: bool = False
    device_id: str | None = None
    # The token it came from, hashed: lets later steps (e.g. appservice checks) key caches safely.
    token_hash: str = ""
