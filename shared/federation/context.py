"""The per-process federation helpers of a `Runtime`, built on first use and closed with it."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import HomeserverConfig
from shared.federation.client import FederationClient, Signer
from shared.federation.keys import KeyStore
from shared.federation.xmatrix import load_signing_key
from shared.runtime import Runtime

_EXTRAS_KEY = "federation"


@dataclass
class Federation:
    client: FederationClient
    keys: KeyStore
    signers: dict[str, Signer]


def federation_for(rt: Runtime) -> Federation:
    """This process's federation client and key store (one connection pool per process)."""
    existing = rt.extras.get(_EXTRAS_KEY)
    if isinstance(existing, Federation):
        return existing
    config = rt.config.federation
    client = FederationClient(config, rt.config.timeouts, rt.coordinator)
    federation = Federation(
        client=client,
        keys=KeyStore(client, rt.coordinator, list(config.trusted_key_servers)),
        signers={},
    )
    rt.extras[_EXTRAS_KEY] = federation
    rt.closers.append(client.close)
    return federation


def signer_for(rt: Runtime, via: HomeserverConfig | None = None) -> Signer | None:
    """The signer for requests made on behalf of `via` (default: the first homeserver with a
    signing key); None when no homeserver has one, so only unauthenticated endpoints are usable.
    """
    candidates = [via] if via is not None and via.signing_key_path else [
        hs for hs in rt.config.homeservers if hs.signing_key_path
    ]
    if not candidates:
        return None
    hs = candidates[0]
    signers = federation_for(rt).signers
    if hs.name not in signers:
        assert hs.signing_key_path is not None
        signers[hs.name] = Signer(hs.name, load_signing_key(hs.signing_key_path))
    return signers[hs.name]
