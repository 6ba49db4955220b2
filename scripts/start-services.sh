#!/usr/bin/env bash
# Make PostgreSQL and Redis reachable on 127.0.0.1 for the tests; source it (scripts/test.sh does)
# so the MMR_TEST_*_URL it may set reach pytest. The tests fail, never skip, when a service is
# still missing.
#
# PostgreSQL: a server already on 5432 that lets `postgres` in without a password is used as is;
# else the machine's cluster is started; else (no cluster, or one that asks for a password, as a
# fresh Debian install does) a private throwaway cluster with trust auth on 127.0.0.1:55432.
# Redis: one on 6379 is used, else one is started there.

_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
_wait_up() { for _ in $(seq 50); do _up "$1" && return 0; sleep 0.2; done; return 1; }
_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
_pg_trusts() { psql "postgresql://postgres@127.0.0.1:$1/postgres" -Atqc 'select 1' >/dev/null 2>&1 </dev/null; }

_start_machine_postgres() {
  command -v pg_ctlcluster >/dev/null || return 0
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || \
      pg_ctlcluster "$v" main start 2>/dev/null || true
  done
  _wait_up 5432
}

_start_private_postgres() {
  local bin dir port=55432
  bin="$(_pg_bin)"; dir="${TMPDIR:-/tmp}/mmr-test-postgres"
  [ -n "$bin" ] || { echo "start-services: no PostgreSQL binaries found" >&2; return 0; }
  if ! _up "$port"; then
    rm -rf "$dir"; mkdir -p "$dir"
    local as=(); [ "$(id -u)" = 0 ] && { chown postgres "$dir"; as=(runuser -u postgres --); }
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null || return 0
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null || return 0
  fi
  export MMR_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
}

if [ -z "${MMR_TEST_POSTGRES_URL:-}" ]; then
  _up 5432 || _start_machine_postgres
  if ! { _up 5432 && _pg_trusts 5432; }; then
    _start_private_postgres
  fi
fi

if [ -z "${MMR_TEST_REDIS_URL:-}" ] && ! _up 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/mmr-redis.log || true
  _wait_up 6379 || echo "start-services: Redis is not answering on 127.0.0.1:6379" >&2
fi
