#!/usr/bin/env bash
# Benchmark: a physical incremental after 1 % random row updates, Cairn with page patches (cairn repo upgrade
# --page-patches) against Cairn without them (whole 256 KiB blocks) and pgBackRest --type=incr (zst, encrypted,
# process-max 2, as in bench/physical.sh), on the same cluster and change as bench/page-incr-estimate.sh
# (pgbench -s 70 + 3.2M realistic rows at SCALE 1). Bytes: what each incremental stored, WAL excluded (Cairn: the
# packs its write added; pgBackRest: its backup folder). The patched incremental is restored and checked with
# pg_verifybackup; the three incrementals are restored (files only, cold cache) and timed. Each tool backs up with its
# own archive_command only (as bench/physical.sh).
# Usage: bench/page-incr.sh [SCALE]   (0.25 ≈ 0.6 GB cluster: a few minutes on 2 cores)
source "$(dirname "$0")/lib.sh"
SCALE="${1:-0.25}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-pageincr2}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/log" "$W/lock" "$W/spool"
CAIRN="$W/cairn"; cp "$SRC_CAIRN" "$CAIRN"
head -c 32 /dev/urandom | base64 > "$W/pass"
chown -R postgres: "$W"; chmod 700 "$W"
# BENCH_KEEP=1 keeps the work folder (the server stopped) for bench/restore-profile.sh: REPO=cairn-patches
# PGBR_CONF=pgbr.conf STANZA=bench bench/restore-profile.sh $W ROUNDS CAIRN [CAIRN_BEFORE].
if [ "${BENCH_KEEP:-0}" = 1 ]; then trap 'stop_pg "$W/pg"' EXIT; else trap 'stop_pg "$W/pg"; rm -rf "$W"' EXIT; fi
# run REPO ARGS...: cairn against one of the two repositories (patches: page patches on; blocks: off).
run() { local repo="$1"; shift; as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-$repo" CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN" "$@"; }
# timed NAME REPO ARGS... / timed_pgbr NAME ARGS...: the same under GNU time; user+sys CPU seconds (children included:
# pgBackRest's process-max workers) into $W/cpu-NAME. The machine is shared: CPU seconds say more than wall time.
timed() { local name="$1" repo="$2"; shift 2; /usr/bin/time -f "%U %S" -o "$W/cpu-$name" runuser -u postgres -- env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-$repo" CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN" "$@"; }
timed_pgbr() { local name="$1"; shift; /usr/bin/time -f "%U %S" -o "$W/cpu-$name" runuser -u postgres -- pgbackrest --config="$W/pgbr.conf" --stanza=bench "$@"; }
cpu() { awk '{printf "%.2f", $1 + $2}' "$W/cpu-$1"; }
machine
pgbr_conf "$W/pgbr.conf" 55437 zst "repo1-path=$W/pgbr"
as_pg mkdir -p "$W/pg"
start_pg "$W/pg" 55437 "-c wal_level=replica -c archive_mode=on"
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'true'" -c "SELECT pg_reload_conf()" postgres >/dev/null
PGB_SCALE=$(scaled "$SCALE" 70); ROWS=$(scaled "$SCALE" 3200000)
echo "== loading (pgbench -s $PGB_SCALE + $ROWS realistic rows)"
"$PGBIN/pgbench" -i -q -s "$PGB_SCALE" postgres >/dev/null 2>&1
load_realistic "$ROWS"
"$PGBIN/psql" -q -c "VACUUM ANALYZE" postgres
"$PGBIN/psql" -q -c "CHECKPOINT" postgres
echo "cluster: $(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1) bytes (without pg_wal)"
cat > "$W/cairn.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=55437"
    data_directory: $W/pg/data
Y
chown postgres: "$W/cairn.yaml"
for r in patches blocks; do run $r init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null; done
run patches repo upgrade --page-patches
as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench stanza-create >/dev/null
ARCHIVE_PATCHES="CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $W/cairn-patches wal-push %p --database bench"
ARCHIVE_BLOCKS="CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $W/cairn-blocks wal-push %p --database bench"
ARCHIVE_PGBR="pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push %p"
added() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['added_bytes'])" "$1"; }

echo "== full backups"
quiesce "$ARCHIVE_PATCHES"; t0=$(now); timed full-patches patches backup bench --physical --json > "$W/full-patches.json"; t1=$(now); FP=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_BLOCKS"; t0=$(now); timed full-blocks blocks backup bench --physical --json > "$W/full-blocks.json"; t1=$(now); FB=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_PGBR"; t0=$(now); timed_pgbr full-pgbr --type=full backup; t1=$(now); FR=$(elapsed $t0 $t1)
FULL_PGBR=$(size_of "$(ls -d "$W"/pgbr/backup/bench/*F | tail -1)")

echo "== 1 % of the rows of pgbench_accounts and customers updated at random, then read (hint bits), checkpoint"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 postgres <<'SQL'
UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE random() < 0.01;
UPDATE customers SET balance = balance + 1 WHERE random() < 0.01;
SELECT count(*) FROM pgbench_accounts WHERE abalance <> 0;
SELECT count(*) FROM customers WHERE balance < 0;
CHECKPOINT;
SQL

echo "== incrementals"
quiesce "$ARCHIVE_PATCHES"; t0=$(now); timed incr-patches patches backup bench --physical --json > "$W/incr-patches.json"; t1=$(now); IP=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_BLOCKS"; t0=$(now); timed incr-blocks blocks backup bench --physical --json > "$W/incr-blocks.json"; t1=$(now); IB=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_PGBR"; t0=$(now); timed_pgbr incr-pgbr --type=incr backup; t1=$(now); IR=$(elapsed $t0 $t1)
INCR_PGBR=$(size_of "$(ls -d "$W"/pgbr/backup/bench/*I | tail -1)")
cat "$W/incr-patches.json"; echo
cat "$W/incr-blocks.json"; echo
archiver "true"

echo "== restore of the patched incremental (files only, cold cache) and pg_verifybackup; pgBackRest's incremental the same way"
cold
t0=$(now); timed restore-patches patches restore bench --physical --to "$W/r-cairn" --target immediate > /dev/null; t1=$(now); RP=$(elapsed $t0 $t1)
as_pg "$PGBIN/pg_verifybackup" --no-parse-wal "$W/r-cairn" >/dev/null
echo "pg_verifybackup of the restored patched incremental: ok"
cold
t0=$(now); timed restore-blocks blocks restore bench --physical --to "$W/r-blocks" --target immediate > /dev/null; t1=$(now); RB=$(elapsed $t0 $t1)
as_pg mkdir -p "$W/r-pgbr"; chmod 700 "$W/r-pgbr"
cold
t0=$(now); timed_pgbr restore-pgbr --pg1-path="$W/r-pgbr" --type=immediate restore; t1=$(now); RR=$(elapsed $t0 $t1)

echo
echo "scale $SCALE"
machine
echo "| measure | cairn, page patches | cairn, whole blocks | pgBackRest zst |"
echo "|---|---|---|---|"
echo "| full backup, s | $FP | $FB | $FR |"
echo "| full: bytes stored (WAL excluded) | $(added "$W/full-patches.json") | $(added "$W/full-blocks.json") | $FULL_PGBR |"
echo "| incremental after 1 % random updates, s | $IP | $IB | $IR |"
echo "| incremental: bytes stored (WAL excluded) | $(added "$W/incr-patches.json") | $(added "$W/incr-blocks.json") | $INCR_PGBR |"
echo "| restore of that incremental (files only, cold cache), s | $RP | $RB | $RR |"
echo "| full backup, CPU s (user+sys) | $(cpu full-patches) | $(cpu full-blocks) | $(cpu full-pgbr) |"
echo "| incremental, CPU s (user+sys) | $(cpu incr-patches) | $(cpu incr-blocks) | $(cpu incr-pgbr) |"
echo "| restore of the incremental, CPU s (user+sys) | $(cpu restore-patches) | $(cpu restore-blocks) | $(cpu restore-pgbr) |"
echo
echo "ratio incr-bytes cairn-patches/pgBackRest = $(ratio "$(added "$W/incr-patches.json")" "$INCR_PGBR")   (issue 18 target <= 0.5)"
echo "ratio incr-bytes cairn-blocks/pgBackRest = $(ratio "$(added "$W/incr-blocks.json")" "$INCR_PGBR")"
echo "ratio incr-time cairn-patches/pgBackRest = $(ratio "$IP" "$IR")"
echo "ratio incr-time cairn-patches/cairn-blocks = $(ratio "$IP" "$IB")"
echo "ratio restore-time cairn-patches/pgBackRest = $(ratio "$RP" "$RR")"
echo "ratio restore-time cairn-patches/cairn-blocks = $(ratio "$RP" "$RB")"
echo "ratio restore-cpu cairn-patches/cairn-blocks = $(ratio "$(cpu restore-patches)" "$(cpu restore-blocks)")"
echo "ratio restore-cpu cairn-patches/pgBackRest = $(ratio "$(cpu restore-patches)" "$(cpu restore-pgbr)")"
echo "ratio incr-cpu cairn-patches/cairn-blocks = $(ratio "$(cpu incr-patches)" "$(cpu incr-blocks)")"
