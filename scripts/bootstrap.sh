#!/usr/bin/env bash
# Make .venv with mmr installed (and, with --test, the test tools and system services).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
want_test=0; [ "${1:-}" = "--test" ] && want_test=1

apt_install() {
  # Only root on a Debian-like machine can install system packages; elsewhere say what is missing.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ] \
      || apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  else
    echo "bootstrap: please install: $*" >&2; exit 1
  fi
}

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
stamp=".venv/.mmr-installed"
extras="."; [ $want_test = 1 ] && extras=".[test]"
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ $want_test = 1 ] && ! grep -q test "$stamp"; }; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e "$extras"
  echo "$extras" > "$stamp"
fi

if [ $want_test = 1 ]; then
  need=()
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  command -v wrk >/dev/null || need+=(wrk)  # bench/'s load client (and its plumbing test)
  command -v pg_ctlcluster >/dev/null || command -v pg_ctl >/dev/null || need+=(postgresql)
  # The console's browser tests drive Debian's chromium through its chromedriver.
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
fi
