#!/usr/bin/env bash
# Benchmark: cairn physical backups, restore and wal-push against pgBackRest (Debian's), pg_basebackup.
# Usage: bench/physical.sh [SCALE]   (SCALE 1 ≈ 2 GB cluster: pgbench -s 70 + 3.2M realistic rows; 0.25 for a quick run)
# One cluster, so every tool backs up the same data. Each tool's backup runs with ITS OWN archive_command only
# (cairn wal-push, or pgbackrest archive-push to its repository, or cp for pg_basebackup -Xnone): a backup waits
# for the WAL it needs, so a shared chained archive_command would make every tool wait for the others' pushes.
# Everything runs as the postgres user. 20–40 minutes on 2 cores at SCALE 1. Exits non-zero if any tool fails.
source "$(dirname "$0")/lib.sh"
SCALE="${1:-1}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-physical}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/walsrc" "$W/walcp" "$W/log" "$W/lock" "$W/spool"
CAIRN="$W/cairn"; cp "$SRC_CAIRN" "$CAIRN"
head -c 32 /dev/urandom | base64 > "$W/pass"
chown -R postgres: "$W"; chmod 700 "$W"
trap 'stop_pg "$W/pg"' EXIT
run() { as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-repo" CAIRN_CONFIG="$W/cairn.yaml" "$@"; }
machine
for c in zst lz4; do pgbr_conf "$W/pgbr-$c.conf" 55434 "$c" "repo1-path=$W/pgbr-$c"; done

# While loading, segments are only copied aside (they feed the wal-push benchmark).
ARCHIVE_CAIRN="CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $W/cairn-repo wal-push %p --database bench"
ARCHIVE_ZST="pgbackrest --config=$W/pgbr-zst.conf --stanza=bench archive-push %p"
ARCHIVE_LZ4="pgbackrest --config=$W/pgbr-lz4.conf --stanza=bench archive-push %p"
ARCHIVE_CP="cp %p $W/walcp/%f"   # pg_basebackup -Xnone waits for the archiver too; it has none of its own
as_pg mkdir -p "$W/pg"
start_pg "$W/pg" 55434 "-c full_page_writes=on -c wal_level=replica -c archive_mode=on"
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'cp %p $W/walsrc/%f'" -c "SELECT pg_reload_conf()" postgres >/dev/null
PGB_SCALE=$(scaled "$SCALE" 70); ROWS=$(scaled "$SCALE" 3200000)
echo "== loading (pgbench -s $PGB_SCALE + $ROWS realistic rows)"
"$PGBIN/pgbench" -i -q -s "$PGB_SCALE" postgres >/dev/null 2>&1
load_realistic "$ROWS"
"$PGBIN/psql" -q -c "VACUUM ANALYZE" postgres
SEGS="${BENCH_SEGMENTS:-200}"
while [ "$(ls "$W/walsrc" | wc -l)" -lt $((SEGS + 10)) ]; do "$PGBIN/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1; done  # WAL for the wal-push run
"$PGBIN/psql" -q -c "VACUUM ANALYZE" postgres
"$PGBIN/psql" -q -c "CHECKPOINT" postgres
CLUSTER=$(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1)
echo "cluster: $CLUSTER bytes (without pg_wal)"

cat > "$W/cairn.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=55434"
    data_directory: $W/pg/data
Y
chown postgres: "$W/cairn.yaml"
run "$CAIRN" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null  # a random 32-byte passphrase: the KDF adds nothing, and each wal-push opens the repository
for c in zst lz4; do as_pg pgbackrest --config="$W/pgbr-$c.conf" --stanza=bench stanza-create >/dev/null; done

# archiver/quiesce COMMAND (bench/lib.sh): before each tool, its own archive_command, a checkpoint, the same warm cache, idle server.
# Repository sizes, all read at one moment after the archiver caught up: backup data and archived WAL apart.
sizes() {
  archiver "true"   # WAL outside a tool's own run goes nowhere: no repository grows while the sizes are read
  CAIRN_WAL=$(size_of "$W/cairn-repo/wal"); CAIRN_ALL=$(size_of "$W/cairn-repo")
  ZST_WAL=$(size_of "$W/pgbr-zst/archive"); ZST_ALL=$(size_of "$W/pgbr-zst")
  LZ4_WAL=$(size_of "$W/pgbr-lz4/archive"); LZ4_ALL=$(size_of "$W/pgbr-lz4")
}
archiver "true"
echo "== full backups"
quiesce "$ARCHIVE_CAIRN"
t0=$(now); run "$CAIRN" backup bench --physical > "$W/cairn-full.txt"; t1=$(now); CF=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_ZST"
t0=$(now); as_pg pgbackrest --config="$W/pgbr-zst.conf" --stanza=bench --type=full backup; t1=$(now); PZ=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_LZ4"
t0=$(now); as_pg pgbackrest --config="$W/pgbr-lz4.conf" --stanza=bench --type=full backup; t1=$(now); PL=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_CP"
t0=$(now); as_pg "$PGBIN/pg_basebackup" -D "$W/pgbb" -Ft -Xnone --compress=client-zstd --checkpoint=fast; t1=$(now); BB=$(elapsed $t0 $t1); BBS=$(size_of "$W/pgbb")
sizes; CFS=$CAIRN_ALL; CFW=$CAIRN_WAL; PZS=$ZST_ALL; PZW=$ZST_WAL; PLS=$LZ4_ALL; PLW=$LZ4_WAL
cat "$W/cairn-full.txt"

echo "== a day of typical change: ~1% new rows, 0.5% updated in a recent key range, a few deletes"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 postgres <<'SQL'
INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT a + (SELECT max(aid) FROM pgbench_accounts), 1, 0, repeat(' ', 84) FROM generate_series(1, (SELECT count(*) / 100 FROM pgbench_accounts)) a;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > (SELECT max(aid) - count(*) / 200 FROM pgbench_accounts);
INSERT INTO customers SELECT id + (SELECT max(id) FROM customers), uid, email, name, country, plan, meta, balance, now() FROM customers WHERE id % 100 = 0;
UPDATE customers SET balance = balance + 1 WHERE id > (SELECT max(id) - count(*) / 200 FROM customers);
DELETE FROM customers WHERE id % 9973 = 0;
CHECKPOINT;
SQL
quiesce "$ARCHIVE_CAIRN"  # also: files written by the change are older than the 2 s margin by now (pgBackRest has no such rule)
t0=$(now); run "$CAIRN" backup bench --physical > "$W/cairn-incr.txt"; t1=$(now); CI=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_ZST"
t0=$(now); as_pg pgbackrest --config="$W/pgbr-zst.conf" --stanza=bench --type=incr backup; t1=$(now); PI=$(elapsed $t0 $t1)
quiesce "$ARCHIVE_LZ4"
t0=$(now); as_pg pgbackrest --config="$W/pgbr-lz4.conf" --stanza=bench --type=incr backup; t1=$(now); PIL=$(elapsed $t0 $t1)
sizes; CIS=$CAIRN_ALL; PIS=$ZST_ALL; PILS=$LZ4_ALL
cat "$W/cairn-incr.txt"

echo "== restore (files and recovery settings; the server is not started), both from a cold page cache"
cold
t0=$(now); run "$CAIRN" restore bench --physical --to "$W/r-cairn" --target immediate > /dev/null; t1=$(now); CR=$(elapsed $t0 $t1)
as_pg mkdir -p "$W/r-pgbr"; chmod 700 "$W/r-pgbr"
cold
t0=$(now); as_pg pgbackrest --config="$W/pgbr-zst.conf" --stanza=bench --pg1-path="$W/r-pgbr" --type=immediate restore; t1=$(now); PR=$(elapsed $t0 $t1)
rm -rf "$W/r-cairn" "$W/r-pgbr"
# BENCH_CAIRN_BEFORE=PATH: also restore with that (earlier) cairn from the same repository (before/after, same data).
if [ -n "${BENCH_CAIRN_BEFORE:-}" ]; then
  cp "$BENCH_CAIRN_BEFORE" "$W/cairn-before"; chmod 755 "$W/cairn-before"
  cold
  t0=$(now); run "$W/cairn-before" restore bench --physical --to "$W/r-cairn" --target immediate > /dev/null; t1=$(now); CRB=$(elapsed $t0 $t1)
  rm -rf "$W/r-cairn"
fi

echo "== wal-push of $SEGS segments, one process per segment as archive_command runs it, into fresh repositories"
ls "$W/walsrc" | grep -E '^[0-9A-F]{24}$' | sort | head -"$SEGS" > "$W/segments"
N=$(wc -l < "$W/segments")
# Two rounds in opposite order (cairn first, then pgBackRest first), each tool from the same warm cache:
# the segments and both programs read once just before its run.
push_cairn() {
  rm -rf "$W/cairn-walrepo"; run "$CAIRN" --repo "$W/cairn-walrepo" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
  warm "$W/walsrc" "$CAIRN"
  t0=$(now); as_pg bash -c "while read f; do CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $W/cairn-walrepo wal-push $W/walsrc/\$f --database bench || exit 1; done < $W/segments"; t1=$(now)
  CW+=("$(elapsed $t0 $t1)"); CWS=$(size_of "$W/cairn-walrepo/wal")
}
push_pgbr() {
  rm -rf "$W/pgbr-walrepo"; as_pg pgbackrest --config="$W/pgbr-wal.conf" --stanza=bench stanza-create >/dev/null
  warm "$W/walsrc" /usr/bin/pgbackrest
  t0=$(now); as_pg bash -c "while read f; do pgbackrest --config=$W/pgbr-wal.conf --stanza=bench archive-push $W/walsrc/\$f || exit 1; done < $W/segments"; t1=$(now)
  PW+=("$(elapsed $t0 $t1)"); PWS=$(size_of "$W/pgbr-walrepo/archive")
}
sed "s#$W/pgbr-zst#$W/pgbr-walrepo#" "$W/pgbr-zst.conf" > "$W/pgbr-wal.conf"; chown postgres: "$W/pgbr-wal.conf"
CW=(); PW=()
push_cairn; push_pgbr; push_pgbr; push_cairn

sps() { python3 -c "print(f'{$1/$2:.1f}')"; }
echo
echo "scale $SCALE; cluster: $CLUSTER bytes (pg_wal excluded); $N WAL segments pushed"
machine
echo "| measure | cairn | pgBackRest zst | pgBackRest lz4 | pg_basebackup -Ft client-zstd |"
echo "|---|---|---|---|---|"
echo "| full backup, s | $CF | $PZ | $PL | $BB |"
echo "| repository after full, bytes (all read at one moment) | $CFS | $PZS | $PLS | $BBS (no WAL) |"
echo "| of which backup data (without archived WAL), bytes | $((CFS-CFW)) | $((PZS-PZW)) | $((PLS-PLW)) | $BBS |"
echo "| incremental after a day of change, s | $CI | $PI | $PIL | |"
echo "| incremental: bytes added (incl. its own WAL) | $((CIS-CFS)) | $((PIS-PZS)) | $((PILS-PLS)) | |"
echo "| restore (files only, cold cache), s | $CR | $PR | | |"
[ -n "${BENCH_CAIRN_BEFORE:-}" ] && echo "| restore with BENCH_CAIRN_BEFORE ($("$W/cairn-before" --version 2>/dev/null | head -1)), s | $CRB | | | |"
echo "| wal-push, segments/s (round 1 cairn first / round 2 pgBackRest first) | $(sps $N ${CW[0]}) / $(sps $N ${CW[1]}) | $(sps $N ${PW[0]}) / $(sps $N ${PW[1]}) | | |"
echo "| WAL stored for $N segments, bytes | $CWS | $PWS | | |"
echo
echo "ratio physical-full-time cairn/pgBackRest-zst = $(ratio $CF $PZ)   (issue 18 target <= 0.5)"
echo "ratio physical-full-time cairn/pg_basebackup = $(ratio $CF $BB)"
echo "ratio physical-full-size cairn/pgBackRest-zst = $(ratio $CFS $PZS)   (target <= 1.0)"
echo "ratio physical-incr-time cairn/pgBackRest-zst = $(ratio $CI $PI)"
echo "ratio physical-incr-bytes cairn/pgBackRest-zst = $(ratio $((CIS-CFS)) $((PIS-PZS)))"
echo "ratio physical-restore-time cairn/pgBackRest = $(ratio $CR $PR)   (target <= 0.5)"
[ -n "${BENCH_CAIRN_BEFORE:-}" ] && echo "ratio physical-restore-time before: cairn/pgBackRest = $(ratio $CRB $PR); after/before = $(ratio $CR $CRB)"
echo "ratio wal-push-speed cairn/pgBackRest (round 1, round 2) = $(ratio ${PW[0]} ${CW[0]}), $(ratio ${PW[1]} ${CW[1]})"
