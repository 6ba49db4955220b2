#!/usr/bin/env bash
# Start PostgreSQL and Redis on 127.0.0.1 when they are not already answering.
# The tests fail (never skip) if they still cannot reach them.
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -z "${MMR_TEST_POSTGRES_URL:-}" ] && ! up 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || \
        pg_ctlcluster "$v" main start 2>/dev/null || true
    done
  fi
  for _ in $(seq 50); do up 5432 && break; sleep 0.2; done
  up 5432 || echo "start-services: PostgreSQL is not answering on 127.0.0.1:5432" >&2
fi

if [ -z "${MMR_TEST_REDIS_URL:-}" ] && ! up 6379; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/mmr-redis.log || true
  for _ in $(seq 50); do up 6379 && break; sleep 0.2; done
  up 6379 || echo "start-services: Redis is not answering on 127.0.0.1:6379" >&2
fi
exit 0
