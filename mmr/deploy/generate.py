"""Regenerate the files derived from deploy/routes.yaml; `--check` only says whether they are
up to date (exit 1 naming the stale files), as the tests do.

    python -m mmr.deploy.generate [--check]
    python -m mmr.deploy.generate --accel-locations CONFIG

The second prints the nginx `location`s that serve CONFIG's file datastores for
`downloads.accelRedirect`, to paste between the template's accel BEGIN/END lines (paths as
this machine sees them: nginx must see the same directories).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mmr.deploy.ingress import INGRESS_PATH, ingress_yaml
from mmr.deploy.nginx_conf import (
    TEMPLATE_PATH,
    file_accel_location,
    with_accel_locations,
    with_generated_routes,
)


def generated_files() -> dict[Path, str]:
    """Each derived file and the text it should hold."""
    return {
        TEMPLATE_PATH: with_accel_locations(with_generated_routes(TEMPLATE_PATH.read_text())),
        INGRESS_PATH: ingress_yaml(),
    }


def stale_files() -> list[Path]:
    return [path for path, text in generated_files().items()
            if not path.exists() or path.read_text() != text]


def accel_locations(config_path: str) -> str:
    from shared.config import load_config

    config = load_config(Path(config_path))
    return "\n".join(file_accel_location(store.id, str(Path(store.file_opts().path).resolve()))
                     for store in config.datastores if store.type == "file") + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--accel-locations"] and len(argv) == 2:
        print(accel_locations(argv[1]), end="")
        return 0
    stale = stale_files()
    if "--check" in argv:
        for path in stale:
            print(f"{path} is out of date: run `python -m mmr.deploy.generate`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        if path in stale:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
