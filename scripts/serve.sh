#!/usr/bin/env bash
# Install what is needed and start the embedded default (all services, SQLite, files, no Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/mmr serve "$@"
