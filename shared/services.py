"""The five services, named once: what `mmr serve <service>` starts, the embedded default
mounts, the route table assigns paths to and the cluster check expects to see running."""

from __future__ import annotations

SERVICES = ("upload", "download", "thumbnail", "preview", "admin")
POOLS = tuple(service for service in SERVICES if service != "admin")
"""The services that scale out to many machines (admin runs once)."""
