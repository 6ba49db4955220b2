#!/usr/bin/env bash
# Install what is needed, start PostgreSQL/Redis if they are not running, lint, type-check, look
# for dead code (vulture, configured in pyproject.toml) and run the whole test suite. SeaweedFS
# and nginx are started by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
source scripts/start-services.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/vulture
exec .venv/bin/pytest "$@"
