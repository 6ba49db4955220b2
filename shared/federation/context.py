"""A process's federation helpers: one client (one connection pool), the key store, the signers.

Built on first use as `Runtime.federation` and closed with the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import HomeserverConfig, MmrConfig
from shared.coordination.base import Coordinator
from shared.federation.client import FederationClient, Signer
from shared.federation.keys import KeyStore
from shared.federation.xmatrix import load_signing_key


@dataclass
class Federation:
    client: FederationClient
    keys: KeyStore
    homeservers: list[HomeserverConfig]
    signers: dict[str, Signer] = field(default_factory=dict)

    @classmethod
    def build(cls, config: MmrConfig, coordinator: Coordinator) -> Federation:
        client = FederationClient(config.federation, config.timeouts, coordinator)
        keys = KeyStore(client, coordinator, list(config.federation.trusted_key_servers))
        return cls(client=client, keys=keys, homeservers=list(config.homeservers))

    def signer_for(self, via: HomeserverConfig | None = None) -> Signer | None:
        """The signer for requests made on behalf of `via` (default: the first homeserver with a
        signing key); None when no homeserver has one, so only unauthenticated endpoints are
        usable."""
        candidates = [via] if via is not None and via.signing_key_path else [
            hs for hs in self.homeservers if hs.signing_key_path
        ]
        if not candidates:
            return None
        hs = candidates[0]
        if hs.name not in self.signers:
            assert hs.signing_key_path is not None
            self.signers[hs.name] = Signer(hs.name, load_signing_key(hs.signing_key_path))
        return self.signers[hs.name]

    async def close(self) -> None:
        await self.client.close()
