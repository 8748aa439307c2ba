#!/usr/bin/env bash
# What one PostgreSQL server commits per second here (issue 15: what limits 4 and 16 nodes).
#
#   bench/pg_capacity.sh [URL]     default postgresql://postgres@127.0.0.1:5432/test
#
# With pgbench (Debian's postgresql-client): one-row INSERT commits, the shape of a lease
# take or release and of most of a turn's transactions, at 1, 16 and 64 clients; then
# pgbench's own TPC-B-like transaction (-N: 3 updates and an insert) at 1, 8 and 32. Each run
# is 10 s in a schema of its own, dropped after. Not part of `make test`.
set -euo pipefail
URL="${1:-postgresql://postgres@127.0.0.1:5432/test}"
SCHEMA="capacity_bench_$$"
SECONDS_EACH="${SECONDS_EACH:-10}"
command -v pgbench >/dev/null || { echo "needs pgbench (apt-get install postgresql-client)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'psql -q "$URL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
psql -q "$URL" -c "CREATE SCHEMA $SCHEMA; CREATE TABLE $SCHEMA.rows (id bigserial PRIMARY KEY, owner text NOT NULL, at timestamptz NOT NULL DEFAULT now())"
echo "INSERT INTO $SCHEMA.rows (owner) VALUES ('node-1/1');" > "$work/insert.sql"
export PGOPTIONS="-c search_path=$SCHEMA"
rate() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1; }
echo "server: $(psql -tA "$URL" -c 'SHOW server_version'), max_connections $(psql -tA "$URL" -c 'SHOW max_connections'), synchronous_commit $(psql -tA "$URL" -c 'SHOW synchronous_commit'), $(nproc) cores"
for c in 1 16 64; do
  tps=$(pgbench -n -c "$c" -j "$(( c < 4 ? c : 4 ))" -T "$SECONDS_EACH" -f "$work/insert.sql" "$URL" 2>/dev/null | rate)
  echo "one-row INSERT commits/s, $c clients: ${tps%.*}"
done
pgbench -q -i -s 4 "$URL" >/dev/null 2>&1
for c in 1 8 32; do
  tps=$(pgbench -n -N -c "$c" -j "$(( c < 4 ? c : 4 ))" -T "$SECONDS_EACH" "$URL" 2>/dev/null | rate)
  echo "TPC-B-like (-N) transactions/s, $c clients: ${tps%.*}"
done
