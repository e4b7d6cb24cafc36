#!/usr/bin/env bash
# Benchmark: `cairn cleanup` deleting ROWS rows of a simple table (keyset batches of 10,000, each its own transaction,
# lock/statement timeouts set) against one plain `DELETE … WHERE` of the same rows on a fresh copy of the same table.
# Usage: bench/cleanup.sh [ROWS]   (default 1,000,000 old rows + 200,000 newer ones that must stay)
# CAIRN: the binary (default artifacts/cairn from scripts/publish, else the Release build run with dotnet).
source "$(dirname "$0")/lib.sh"
ROWS="${1:-1000000}"
if [ -z "${CAIRN:-}" ]; then
  if [ -x "$BENCH_ROOT/artifacts/cairn" ]; then CAIRN="$BENCH_ROOT/artifacts/cairn"; else CAIRN="dotnet $BENCH_ROOT/src/Cairn.Cli/bin/Release/net10.0/cairn.dll"; fi
fi
W="${BENCH_WORK:-/tmp/cairn-bench-cleanup}"
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
trap 'stop_pg "$W/pg"' EXIT
start_pg "$W/pg" 55437
PSQL="$PGBIN/psql -q -v ON_ERROR_STOP=1"
$PSQL -d postgres -c "CREATE DATABASE bench"
export PGDATABASE=bench
load() {
  $PSQL <<SQL
DROP TABLE IF EXISTS events;
CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, kind text NOT NULL, payload jsonb);
INSERT INTO events SELECT g, now() - interval '400 days' + g * interval '1 second', 'k' || (g % 7), jsonb_build_object('n', g)
  FROM generate_series(1, $ROWS) g;
INSERT INTO events SELECT $ROWS + g, now() - g * interval '1 second', 'new', NULL FROM generate_series(1, 200000) g;
CREATE INDEX events_created ON events (created_at);
VACUUM ANALYZE events;
SQL
}
cat > "$W/cairn.yaml" <<YAML
databases:
  bench:
    connection: "postgresql://postgres@/bench?host=$PGHOST&port=$PGPORT"
    cleanup:
      - { table: public.events, time_column: created_at, older_than: 90d }
YAML
export CAIRN_CONFIG="$W/cairn.yaml" CAIRN_EVIDENCE="$W/evidence" CAIRN_REPOSITORY="$W/repo"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

load
t0=$(now); $CAIRN cleanup bench --json > "$W/cleanup.json"; t1=$(now); CT=$(elapsed $t0 $t1)
CN=$(python3 -c "import json; print(json.load(open('$W/cleanup.json'))['rows_deleted'])")
LEFT=$($PSQL -Atc "SELECT count(*) FROM events")

load
t0=$(now); PN=$($PSQL -Atc "WITH d AS (DELETE FROM events WHERE created_at < now() - interval '90 days' RETURNING 1) SELECT count(*) FROM d"); t1=$(now); PT=$(elapsed $t0 $t1)

printf '%-34s %10s %10s %12s\n' "" "rows" "seconds" "rows/s"
printf '%-34s %10s %10s %12s\n' "cairn cleanup (batches of 10,000)" "$CN" "$CT" "$(python3 -c "print(f'{$CN/$CT:,.0f}')")"
printf '%-34s %10s %10s %12s\n' "one plain DELETE ... WHERE" "$PN" "$PT" "$(python3 -c "print(f'{$PN/$PT:,.0f}')")"
echo "cairn / plain DELETE time ratio: $(ratio "$CT" "$PT")   (rows left after cleanup: $LEFT, expected 200000)"
