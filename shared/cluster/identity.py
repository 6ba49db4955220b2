"""Who this process is, which cluster it belongs to, and a fingerprint of its configuration.

A cluster is every process sharing one database (the rule MACHINE_IDs are unique within). Its
identity is asked from the database server itself (PostgreSQL's system identifier and the
database's name), so two spellings of one server (`localhost`, `127.0.0.1`, a pgbouncer in
front) are still one cluster, and two test databases on one server are two.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import MmrConfig
from shared.version import mmr_version

# Keys whose values differ per process by design (each process of a host has its own metrics
# port) or are secrets: left out of the fingerprint.
_PER_PROCESS_KEYS = {("metrics", "port")}
_SECRET_KEYS = {"token", "password", "accessKeyId", "accessSecret", "postgres", "url", "asToken",
                "hsToken", "secret"}


@dataclass(frozen=True)
class ProcessInfo:
    """What this process publishes about itself."""

    service: str
    version: str = field(default_factory=mmr_version)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, service {self.service}, version {self.version}"


def describe_holder(record: dict[str, Any]) -> str:
    """A lease holder's record as an operator reads it."""
    if record.get("v") is None or "host" not in record:
        return f"a process writing an unknown record format (v={record.get('v')!r}; a newer mmr?)"
    return (f"host {record.get('host')}, pid {record.get('pid')}, service {record.get('service')}, "
            f"version {record.get('version')}")


def _scrub(value: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        return {key: _scrub(item, (*path, key)) for key, item in value.items()
                if key not in _SECRET_KEYS and (*path, key) not in _PER_PROCESS_KEYS}
    if isinstance(value, list):
        return [_scrub(item, path) for item in value]
    return value


def config_fingerprint(config: MmrConfig) -> str:
    """A short hash of the effective configuration, secrets and per-process keys left out."""
    data = _scrub(config.model_dump(mode="json", by_alias=True))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def file_datastores(config: MmrConfig) -> list[dict[str, str]]:
    """The file datastores this process writes to (which must be one folder cluster-wide)."""
    return [{"id": store.id, "path": os.path.abspath(store.file_opts().path)}
            for store in config.datastores if store.type == "file"]


async def _database_identity(config: MmrConfig) -> str:
    url = config.database.url
    if url.startswith("sqlite"):
        return "sqlite:" + os.path.abspath(sa.engine.make_url(url).database or "")
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.text(
                "SELECT system_identifier, current_database() FROM pg_control_system()"))).one()
        return f"postgres:{row[0]}/{row[1]}"
    except sa.exc.DBAPIError:
        # Not allowed to read the control data: fall back to how the URL names the database.
        parsed = sa.engine.make_url(url)
        return f"postgres-url:{parsed.host}:{parsed.port or 5432}/{parsed.database}"
    finally:
        await engine.dispose()


async def cluster_prefix(config: MmrConfig) -> str:
    """The Redis key prefix of this cluster; the braces make it a Redis Cluster hash tag."""
    identity = await _database_identity(config)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"mmr:{{cluster:{digest}}}"
