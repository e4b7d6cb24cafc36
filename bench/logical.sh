#!/usr/bin/env bash
# Benchmark: cairn backup / restore / drill of a ~2 GB database against pg_dump, pg_restore and restic.
# Usage: bench/logical.sh [SCALE]   (SCALE 1 ≈ 2 GB: pgbench -s 100 + the demo schema with 200k profiles; 0.25 for a quick run)
# Prints a table with ratios. Takes 10–20 minutes on 2 cores at SCALE 1. Exits non-zero if any tool fails.
# Fairness: before every timed step the server is checkpointed and the files the step reads are in the page cache
# (the data directory for backups, the dump or the repository for restores); both restores restore the same data
# (a pg_dump taken right after Cairn's last backup, with no write in between).
source "$(dirname "$0")/lib.sh"
SCALE="${1:-1}"
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
CAIRN=$(cairn_binary)
machine
W="${BENCH_WORK:-/tmp/cairn-bench-logical}"
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
trap 'stop_pg "$W/pg"' EXIT
start_pg "$W/pg" 55433
PSQL="$PGBIN/psql -q -v ON_ERROR_STOP=1"
export PGDATABASE=bench
$PSQL -d postgres -c "CREATE DATABASE bench"
PGB_SCALE=$(scaled "$SCALE" 100); PROFILES=$(scaled "$SCALE" 200000)
echo "== loading (pgbench -s $PGB_SCALE + demo schema with $PROFILES profiles)"
"$PGBIN/pgbench" -i -q -s "$PGB_SCALE" bench >/dev/null 2>&1
# The demo schema SQL comes from the same source the demo uses.
python3 - "$BENCH_ROOT" "$W/schema.sql" "$PROFILES" <<'PY'
import re, sys
src = open(sys.argv[1] + "/src/Cairn.Operations/Demo/DemoSchema.cs").read()
body = src.split('return $$"""', 1)[1].split('""";', 1)[0]
body = body.replace("{{p}}", sys.argv[3])
open(sys.argv[2], "w").write("\n".join(l[8:] if l.startswith("        ") else l for l in body.split("\n")))
PY
$PSQL -f "$W/schema.sql" >/dev/null
$PSQL -c "VACUUM ANALYZE" >/dev/null
DBSIZE=$($PSQL -Atc "SELECT pg_database_size('bench')")
echo "database: $DBSIZE bytes"

printf 'bench-passphrase' > "$W/pass"
export CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/repo" RESTIC_PASSWORD_FILE="$W/pass" RESTIC_REPOSITORY="$W/restic"
"$CAIRN" init >/dev/null; restic init -q >/dev/null
URL="postgresql://postgres@/bench?host=$PGHOST&port=$PGPORT"
# settle [PATH...]: checkpoint, then the server's files (and PATHs) in the page cache, so every tool starts alike.
settle() { $PSQL -c "CHECKPOINT" >/dev/null; sync; warm "$W/pg/data" "$@"; sleep 2; }

echo "== day 1"
settle; t0=$(now); "$PGBIN/pg_dump" -Fc -f "$W/d1.dump" bench; t1=$(now); FC=$(elapsed $t0 $t1); FCS=$(stat -c %s "$W/d1.dump")
settle; t0=$(now); "$PGBIN/pg_dump" -Fd -j 2 -f "$W/d1.dir" bench; t1=$(now); FD=$(elapsed $t0 $t1); FDS=$(size_of "$W/d1.dir")
settle; t0=$(now); "$CAIRN" backup "$URL" >/dev/null; t1=$(now); CB=$(elapsed $t0 $t1); CR1=$(size_of "$W/repo")
"$PGBIN/pg_dump" -Fc -Z0 bench | restic backup -q --stdin --stdin-filename bench.dump >/dev/null; RR1=$(size_of "$W/restic")

echo "== a day of typical change: 1% new rows, 0.5% updated in a recent key range, a few deletes"
$PSQL <<'SQL'
INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT a + (SELECT max(aid) FROM pgbench_accounts), 1, 0, repeat(' ', 84) FROM generate_series(1, (SELECT count(*) / 100 FROM pgbench_accounts)) a;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > (SELECT max(aid) - count(*) / 200 FROM pgbench_accounts);
INSERT INTO orders (profile_id, status, amount, created_at) SELECT id, 'paid', 12.5, now() FROM profiles WHERE random() < 0.04;
INSERT INTO audit_log (actor, event, entity, created_at) SELECT id::text, 'order_created', 'orders', now() FROM profiles WHERE random() < 0.06;
UPDATE orders SET status = 'shipped' WHERE id > (SELECT max(id) - count(*) / 200 FROM orders);
DELETE FROM wa_automation_flows WHERE id % 997 = 0;
SQL
"$PGBIN/pg_dump" -Fc -f "$W/d2.dump" bench; FC2S=$(stat -c %s "$W/d2.dump")
settle; t0=$(now); "$CAIRN" backup "$URL" >/dev/null; t1=$(now); CB2=$(elapsed $t0 $t1); CR2=$(size_of "$W/repo")
"$PGBIN/pg_dump" -Fc -Z0 bench | restic backup -q --stdin --stdin-filename bench.dump >/dev/null; RR2=$(size_of "$W/restic")

echo "== 1% of rows updated at random (no target)"
$PSQL -c "UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE random() < 0.01" >/dev/null
settle; t0=$(now); "$CAIRN" backup "$URL" >/dev/null; t1=$(now); CB3=$(elapsed $t0 $t1); CR3=$(size_of "$W/repo")
# The dump pg_restore restores: the same state as Cairn's newest snapshot (nothing written since).
"$PGBIN/pg_dump" -Fd -j 2 -f "$W/d3.dir" bench

echo "== restore (the same data: Cairn's newest snapshot and a pg_dump of the same state; each source warm)"
$PSQL -d postgres -c "CREATE DATABASE pr_target" >/dev/null
settle "$W/d3.dir"; t0=$(now); "$PGBIN/pg_restore" -j 2 -d pr_target "$W/d3.dir"; t1=$(now); PR=$(elapsed $t0 $t1)
settle "$W/repo"; t0=$(now); "$CAIRN" restore "$URL" --to-database cairn_target -j 2 >/dev/null; t1=$(now); CRS=$(elapsed $t0 $t1)
# Both restored the same rows: compare the row counts of every table.
counts() { $PSQL -d "$1" -Atc "SELECT string_agg(format('%s=%s', c.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text), ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'"; }
[ "$(counts pr_target)" = "$(counts cairn_target)" ] || { echo "pg_restore and cairn restore restored different row counts" >&2; exit 1; }
$PSQL -d postgres -c "DROP DATABASE pr_target" -c "DROP DATABASE cairn_target" >/dev/null

echo "== drill"
cat > "$W/cairn.yaml" <<Y
databases:
  bench:
    connection: "$URL"
    checks:
      - tables_present: [public.pgbench_accounts, public.profiles, public.orders, public.audit_log]
      - row_counts: { equal_to: fingerprint }
      - rls_enabled: { schema: public, tables: [public.profiles, public.orders] }
      - foreign_keys: {}
      - audit_continuity: { table: public.audit_log, time_column: created_at, max_gap: 30d }
      - sql: { name: verified_emails, query: "SELECT count(*) FROM profiles WHERE email_verified", expect: ">= 1" }
Y
cp "$W/cairn.yaml" "$W/cairn-amcheck.yaml"; echo "      - amcheck: { heapallindexed: true }" >> "$W/cairn-amcheck.yaml"
settle "$W/repo"; t0=$(now); CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN" drill bench > "$W/drill.txt"; t1=$(now); DR=$(elapsed $t0 $t1)
settle "$W/repo"; t0=$(now); CAIRN_CONFIG="$W/cairn-amcheck.yaml" "$CAIRN" drill bench > "$W/drill-amcheck.txt"; t1=$(now); DRA=$(elapsed $t0 $t1)
tail -1 "$W/drill.txt"

pct() { python3 -c "print(f'{100*$1/$2:.2f}')"; }
echo
echo "scale $SCALE; database: $DBSIZE bytes"
machine
echo "| measure | cairn | pg_dump -Fc | pg_dump -Fd -j 2 | restic (pg_dump -Fc -Z0 stdin) |"
echo "|---|---|---|---|---|"
echo "| backup, s | $CB | $FC | $FD | |"
echo "| stored after day 1, bytes | $CR1 | $FCS | $FDS | $RR1 |"
echo "| second backup, s | $CB2 | | | |"
echo "| second-day growth, bytes | $((CR2-CR1)) ($(pct $((CR2-CR1)) $FC2S)% of a pg_dump -Fc file) | $FC2S (a new file) | | $((RR2-RR1)) |"
echo "| 1% random updates: backup s / growth bytes | $CB3 / $((CR3-CR2)) | | | |"
echo "| full restore of the same data, s | $CRS (incl. fingerprint check) | | $PR (pg_restore -j 2) | |"
echo "| drill, s (all checks but amcheck) | $DR | | $PR (pg_restore -j 2) | |"
echo "| drill with amcheck, s | $DRA | | | |"
echo
echo "ratio logical-backup-time cairn/pg_dump-Fd-j2 = $(ratio $CB $FD)   (target <= 1.2)"
echo "ratio logical-second-day-growth cairn/pg_dump-Fc-file = $(python3 -c "print(f'{($CR2-$CR1)/$FC2S:.3f}')")   (target < 0.10)"
echo "ratio logical-restore-time cairn/pg_restore-j2 = $(ratio $CRS $PR)   (target <= 1.1)"
echo "ratio logical-drill-time cairn/pg_restore-j2 = $(ratio $DR $PR)   (target <= 1.3); amcheck adds $(python3 -c "print(f'{$DRA-$DR:.1f}')") s"
