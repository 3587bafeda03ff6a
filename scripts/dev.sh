#!/usr/bin/env bash
# Runs the built services (bin/) against the local Postgres, Redis and NATS,
# each with its contract ports, its own database and development defaults.
# Ctrl-C sends SIGTERM to all of them, so you see them drain and stop.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
declare -A PORT=([user]=8081 [search]=8082 [order]=8083)
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM
for s in ${SERVICES:-user}; do
  echo "starting $s on :${PORT[$s]} (admin :$((PORT[$s] + 1000)))"
  APP_ENV=development \
  DATABASE_URL="$PG/stampede_$s?sslmode=disable" \
  HTTP_ADDR="127.0.0.1:${PORT[$s]}" ADMIN_ADDR="127.0.0.1:$((PORT[$s] + 1000))" \
  USER_SERVICE_URL=http://127.0.0.1:8081 SEARCH_SERVICE_URL=http://127.0.0.1:8082 \
    "bin/$s" &
  pids+=($!)
done
wait
