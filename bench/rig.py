"""Starting mmr the way the separate bench tools measure it (soak, archive, console):

    with mmr_embedded(work, {"urlPreviews": {...}}) as process: ...

`mmr serve` as a real subprocess (tests.infra.processes) with shared-secret auth (`SECRET`) for
homeserver `localhost`, rate limits off and the given config sections on top. Import after
putting the repository root on sys.path. `python -m bench run` starts its targets itself
(bench/targets.py: the embedded default, `mmr cluster up`'s cluster, Synapse, nginx).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.infra.processes import MmrProcess, start_mmr

SECRET = "bench-shared-secret"
HOST = "localhost"


def base_config(data: Path, sections: dict[str, Any]) -> dict[str, Any]:
    return {
        "repo": {"tempPath": str(data / "tmp"), "logLevel": "warning"},
        "homeservers": [{"name": HOST, "csApi": ""}],
        "sharedSecretAuth": {"enabled": True, "token": SECRET},
        "rateLimit": {"enabled": False},
        **sections,
    }


def write_config(path: Path, config: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def started(process: MmrProcess) -> MmrProcess:
    process.wait_healthy()
    return process


@contextmanager
def mmr_embedded(work: Path, sections: dict[str, Any]) -> Iterator[MmrProcess]:
    """`mmr serve --config` (every service, SQLite, a file datastore, in-process coordination)."""
    data = work / "embedded"
    data.mkdir()
    config = base_config(data, sections) | {
        "database": {"sqlite": str(data / "mmr.db")},
        "datastores": [{"id": "local", "type": "file", "forKinds": ["all"],
                        "opts": {"path": str(data / "media")}}],
    }
    path = write_config(data / "config.yaml", config)
    process = started(start_mmr("embedded", ["serve", "--config", path], data / "logs"))
    try:
        yield process
    finally:
        process.stop()
