#!/usr/bin/env bash
# Install what is needed, start PostgreSQL/Redis if they are not running, lint, type-check, look
# for dead code (vulture, configured in pyproject.toml) and run the whole test suite. SeaweedFS
# and nginx are started by the tests themselves.
#
# pytest runs on two xdist workers (the CI machine has two cores, and much of a test's time is
# spent waiting on subprocesses), each test file whole on one worker so module fixtures start
# once; files go out in collection order, which puts the slow end-to-end folders first and lets
# the many quick unit files fill the tail. Each worker has its own Redis database (see
# tests/infra/redis_server.py), PostgreSQL databases, S3 server and ports. Later arguments win:
# `scripts/test.sh -n 0` runs in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
source scripts/start-services.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/vulture
exec .venv/bin/pytest -n 2 --dist loadfile --no-loadscope-reorder "$@"
