"""Other servers' signing keys, fetched from `/_matrix/key/v2/server` (or a notary) and cached.

A key response counts only when it is signed by the key it lists (and, through a notary, also by
the notary), names the server we asked about and is still valid. Verified keys are cached
cluster-wide in the coordinator's cache until shortly before their `valid_until_ts`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from signedjson.key import VerifyKey, decode_verify_key_base64
from signedjson.sign import SignatureVerifyException, verify_signed_json

from shared.coordination.base import Coordinator
from shared.federation.client import FederationClient, FederationUnavailable

log = logging.getLogger(__name__)

MIN_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 24 * 3600.0
MISS_CACHE_SECONDS = 60.0
"""How long "that server has no such key" is remembered, so forged key IDs cannot make us fetch
keys on every request."""


def _decode_key(key_id: str, key_base64: str) -> VerifyKey | None:
    algorithm, _, version = key_id.partition(":")
    try:
        key: VerifyKey = decode_verify_key_base64(algorithm, version, key_base64)
    except Exception:
        return None
    return key


def verified_keys(response: Any, server_name: str, now_ms: int) -> tuple[dict[str, str], int]:
    """The `{key_id: base64}` of a server-keys object that is self-signed and still valid.

    Returns ({}, 0) for anything that is not such an object.
    """
    if not isinstance(response, dict) or response.get("server_name") != server_name:
        return {}, 0
    valid_until = response.get("valid_until_ts")
    listed = response.get("verify_keys")
    if not isinstance(valid_until, int) or valid_until <= now_ms or not isinstance(listed, dict):
        return {}, 0
    keys: dict[str, str] = {}
    for key_id, entry in listed.items():
        key_b64 = entry.get("key") if isinstance(entry, dict) else None
        verify_key = _decode_key(key_id, key_b64) if isinstance(key_b64, str) else None
        if verify_key is None:
            continue
        try:
            verify_signed_json(response, server_name, verify_key)
        except SignatureVerifyException:
            continue
        keys[key_id] = key_b64  # type: ignore[assignment]
    return keys, valid_until


def signed_by(response: dict[str, Any], signer: str, keys: dict[str, str]) -> bool:
    """True when `response` carries a valid signature by one of `signer`'s `keys`."""
    for key_id, key_b64 in keys.items():
        verify_key = _decode_key(key_id, key_b64)
        if verify_key is None:
            continue
        try:
            verify_signed_json(response, signer, verify_key)
            return True
        except SignatureVerifyException:
            continue
    return False


class KeyStore:
    """`verify_key(server, key_id)`: the key to check a request's signature with, or None."""

    def __init__(
        self, client: FederationClient, coordinator: Coordinator, notaries: list[str]
    ) -> None:
        self._client = client
        self._coordinator = coordinator
        self._notaries = notaries

    async def verify_key(self, server_name: str, key_id: str) -> VerifyKey | None:
        keys = await self._cached(server_name)
        if key_id not in keys:
            miss_key = f"fed:key-miss:{server_name}:{key_id}"
            if await self._coordinator.cache_get(miss_key) is not None:
                return None
            keys = await self._fetch(server_name, key_id)
            if key_id not in keys:
                await self._coordinator.cache_set(miss_key, b"1", MISS_CACHE_SECONDS)
                return None
        return _decode_key(key_id, keys[key_id])

    async def _cached(self, server_name: str) -> dict[str, str]:
        raw = await self._coordinator.cache_get(f"fed:keys:{server_name}")
        return dict(json.loads(raw)) if raw else {}

    async def _remember(self, server_name: str, keys: dict[str, str], valid_until_ms: int) -> None:
        seconds = valid_until_ms / 1000 - time.time()
        ttl = max(MIN_CACHE_SECONDS, min(seconds, MAX_CACHE_SECONDS))
        await self._coordinator.cache_set(f"fed:keys:{server_name}", json.dumps(keys).encode(), ttl)

    async def _fetch(self, server_name: str, key_id: str) -> dict[str, str]:
        """Ask the notaries first (when configured), then the server itself."""
        for notary in self._notaries:
            keys, valid_until = await self.keys_from_notary(notary, server_name, key_id)
            if keys:
                await self._remember(server_name, keys, valid_until)
                return keys
        keys, valid_until = await self._direct(server_name)
        if keys:
            await self._remember(server_name, keys, valid_until)
        return keys

    async def _direct(self, server_name: str) -> tuple[dict[str, str], int]:
        try:
            status, body = await self._client.json_request(server_name, "/_matrix/key/v2/server")
        except FederationUnavailable as exc:
            log.info("fetching the keys of %s failed: %s", server_name, exc)
            return {}, 0
        if status != 200:
            log.info("%s answered %d to a key request", server_name, status)
            return {}, 0
        return verified_keys(body, server_name, int(time.time() * 1000))

    async def _notary_keys(self, notary: str) -> dict[str, str]:
        keys = await self._cached(notary)
        if not keys:
            keys, valid_until = await self._direct(notary)
            if keys:
                await self._remember(notary, keys, valid_until)
        return keys

    async def keys_from_notary(
        self, notary: str, server_name: str, key_id: str
    ) -> tuple[dict[str, str], int]:
        notary_keys = await self._notary_keys(notary)
        if not notary_keys:
            return {}, 0
        # POST naming the key: a notary fetches keys it has not cached yet (GET may not). The
        # spec makes minimum_valid_until_ts optional; Synapse insists on it.
        criteria = {"minimum_valid_until_ts": int(time.time() * 1000)}
        query: dict[str, Any] = {"server_keys": {server_name: {key_id: criteria}}}
        try:
            status, body = await self._client.json_request(
                notary, "/_matrix/key/v2/query", method="POST", json_body=query
            )
        except FederationUnavailable as exc:
            log.info("notary %s is unreachable: %s", notary, exc)
            return {}, 0
        if status != 200 or not isinstance(body, dict):
            return {}, 0
        now_ms = int(time.time() * 1000)
        for entry in body.get("server_keys") or []:
            keys, valid_until = verified_keys(entry, server_name, now_ms)
            if keys and signed_by(entry, notary, notary_keys):
                return keys, valid_until
        return {}, 0
