#!/usr/bin/env bash
# Estimate (no Cairn format involved): what a physical incremental after 1 % random row updates would store with
# page-level patches, against Cairn's whole-block rule and pgBackRest --type=incr's whole-file unit, on the same
# data and load as bench/physical.sh (pgbench -s 70 + 3.2M realistic rows at SCALE 1). A real pgBackRest full and
# incremental backup (zst, encrypted, as in bench/physical.sh) run too: the full gives the start LSN, and the
# incremental's stored bytes check the estimate's "file" rule.
# Usage: bench/page-incr-estimate.sh [SCALE]   (0.5 ≈ 1.2 GB cluster; a few minutes on 2 cores)
source "$(dirname "$0")/lib.sh"
SCALE="${1:-0.5}"
W="${BENCH_WORK:-/tmp/cairn-bench-pageincr}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/log" "$W/lock" "$W/spool"; chown -R postgres: "$W"; chmod 700 "$W"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
trap 'stop_pg "$W/pg"; rm -rf "$W"' EXIT
machine
as_pg mkdir -p "$W/pg"
start_pg "$W/pg" 55436 "-c wal_level=replica -c archive_mode=on"
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'true'" -c "SELECT pg_reload_conf()" postgres >/dev/null
[ -f "$W/pass" ] || head -c 32 /dev/urandom | base64 > "$W/pass"
pgbr_conf "$W/pgbr.conf" 55436 zst "repo1-path=$W/pgbr"
PGB_SCALE=$(scaled "$SCALE" 70); ROWS=$(scaled "$SCALE" 3200000)
echo "== loading (pgbench -s $PGB_SCALE + $ROWS realistic rows)"
"$PGBIN/pgbench" -i -q -s "$PGB_SCALE" postgres >/dev/null 2>&1
load_realistic "$ROWS"
"$PGBIN/psql" -q -c "VACUUM ANALYZE" postgres
"$PGBIN/psql" -q -c "CHECKPOINT" postgres
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push %p'" -c "SELECT pg_reload_conf()" postgres >/dev/null
as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench stanza-create >/dev/null
# The previous backup: a pgBackRest full; its start LSN is the LSN, its content the files as they are right after it.
as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench --type=full backup
LSN=$(as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench --output=json info | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['backup'][-1]['lsn']['start'])")
mkdir -p "$W/before"; cp -a "$W/pg/data/base" "$W/pg/data/global" "$W/before/"
echo "previous backup start LSN: $LSN; cluster: $(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1) bytes (without pg_wal)"
echo "== 1 % of the rows of pgbench_accounts and customers updated at random, then read (hint bits), checkpoint"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 postgres <<'SQL'
UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE random() < 0.01;
UPDATE customers SET balance = balance + 1 WHERE random() < 0.01;
SELECT count(*) FROM pgbench_accounts WHERE abalance <> 0;
SELECT count(*) FROM customers WHERE balance < 0;
CHECKPOINT;
SQL
echo "WAL written by the change: $(( $("$PGBIN/psql" -Atc "SELECT pg_current_wal_lsn() - '$LSN'::pg_lsn" postgres | cut -d. -f1) )) bytes"
t0=$(now); as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench --type=incr backup; t1=$(now)
INCR=$(ls -d "$W"/pgbr/backup/bench/*I | tail -1)
echo "pgBackRest --type=incr: $(elapsed $t0 $t1) s, $(size_of "$INCR") bytes stored in $(basename "$INCR") (WAL excluded; its full: $(size_of "$(ls -d "$W"/pgbr/backup/bench/*F | tail -1)") bytes)"
python3 "$(dirname "$0")/page-incr-estimate.py" "$W/before" "$W/pg/data" "$LSN" 3
machine
