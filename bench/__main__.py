"""`python -m bench run [--quick] [--only ROWS] [--mode embedded|cluster|both]` (bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a fresh clone: the repository root (tests.infra, mmr) must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
