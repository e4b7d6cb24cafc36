#!/usr/bin/env bash
# Benchmark: cairn physical backups, restore and wal-push against pgBackRest (Debian's), pg_basebackup.
# Usage: bench/physical.sh [SCALE]   (SCALE 1 ≈ 2 GB cluster: pgbench -s 70 + 3.2M realistic rows)
# One cluster archives every WAL segment to cairn and to two pgBackRest repositories (zst, lz4) at once,
# so every tool backs up the same data. Everything runs as the postgres user. 20–40 minutes on 2 cores.
source "$(dirname "$0")/lib.sh"
SCALE="${1:-1}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
bash "$BENCH_ROOT/scripts/publish" >/dev/null
W="${BENCH_WORK:-/tmp/cairn-bench-physical}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/walsrc" "$W/log" "$W/lock" "$W/spool"
CAIRN="$W/cairn"; cp "$BENCH_ROOT/artifacts/cairn" "$CAIRN"
head -c 32 /dev/urandom | base64 > "$W/pass"
chown -R postgres: "$W"; chmod 700 "$W"
trap 'stop_pg "$W/pg"' EXIT
run() { as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-repo" CAIRN_CONFIG="$W/cairn.yaml" "$@"; }

for c in zst lz4; do
  cat > "$W/pgbr-$c.conf" <<C
[global]
repo1-path=$W/pgbr-$c
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(cat "$W/pass")
repo1-retention-full=10
compress-type=$c
process-max=2
log-path=$W/log
lock-path=$W/lock
spool-path=$W/spool
log-level-console=warn
start-fast=y
[bench]
pg1-path=$W/pg/data
pg1-socket-path=$W/pg/sock
pg1-port=55434
C
done
chown postgres: "$W"/*.conf; chmod 600 "$W"/*.conf

# While loading, segments are only copied aside (they feed the wal-push benchmark); then both tools archive.
ARCHIVE_ALL="CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $W/cairn-repo wal-push %p --database bench && pgbackrest --config=$W/pgbr-zst.conf --stanza=bench archive-push %p && pgbackrest --config=$W/pgbr-lz4.conf --stanza=bench archive-push %p"
as_pg mkdir -p "$W/pg"
start_pg "$W/pg" 55434 "-c full_page_writes=on -c wal_level=replica -c archive_mode=on"
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'cp %p $W/walsrc/%f'" -c "SELECT pg_reload_conf()" postgres >/dev/null
echo "== loading (pgbench -s $((SCALE * 70)) + $((SCALE * 3200000)) realistic rows)"
"$PGBIN/pgbench" -i -q -s $((SCALE * 70)) postgres >/dev/null 2>&1
load_realistic $((SCALE * 3200000))
"$PGBIN/psql" -q -c "VACUUM ANALYZE" postgres
while [ "$(ls "$W/walsrc" | wc -l)" -lt 210 ]; do "$PGBIN/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1; done  # WAL for the wal-push run
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
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = '$ARCHIVE_ALL'" -c "SELECT pg_reload_conf()" postgres >/dev/null
"$PGBIN/psql" -q -Atc "SELECT pg_switch_wal()" postgres >/dev/null
sleep 3

# Before each tool: archiver caught up (no .ready segments), checkpoint, warm cache, idle server.
quiesce() {
  while [ "$("$PGBIN/psql" -Atc "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'" postgres)" != 0 ]; do sleep 0.5; done
  "$PGBIN/psql" -q -c "CHECKPOINT" postgres; sync; find "$W/pg/data" -type f -exec cat {} + > /dev/null; sleep 3
}
echo "== full backups"
quiesce
t0=$(now); run "$CAIRN" backup bench --physical > "$W/cairn-full.txt"; t1=$(now); CF=$(elapsed $t0 $t1); CFS=$(size_of "$W/cairn-repo")
quiesce
t0=$(now); as_pg pgbackrest --config="$W/pgbr-zst.conf" --stanza=bench --type=full backup; t1=$(now); PZ=$(elapsed $t0 $t1); PZS=$(size_of "$W/pgbr-zst")
quiesce
t0=$(now); as_pg pgbackrest --config="$W/pgbr-lz4.conf" --stanza=bench --type=full backup; t1=$(now); PL=$(elapsed $t0 $t1); PLS=$(size_of "$W/pgbr-lz4")
quiesce
t0=$(now); as_pg "$PGBIN/pg_basebackup" -D "$W/pgbb" -Ft -Xnone --compress=client-zstd --checkpoint=fast 2>/dev/null; t1=$(now); BB=$(elapsed $t0 $t1); BBS=$(size_of "$W/pgbb")
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
quiesce  # also: files written by the change are older than the 2 s margin by now (pgBackRest has no such rule)
t0=$(now); run "$CAIRN" backup bench --physical > "$W/cairn-incr.txt"; t1=$(now); CI=$(elapsed $t0 $t1); CIS=$(size_of "$W/cairn-repo")
quiesce
t0=$(now); as_pg pgbackrest --config="$W/pgbr-zst.conf" --stanza=bench --type=incr backup; t1=$(now); PI=$(elapsed $t0 $t1); PIS=$(size_of "$W/pgbr-zst")
quiesce
t0=$(now); as_pg pgbackrest --config="$W/pgbr-lz4.conf" --stanza=bench --type=incr backup; t1=$(now); PIL=$(elapsed $t0 $t1); PILS=$(size_of "$W/pgbr-lz4")
cat "$W/cairn-incr.txt"

echo "== restore (files and recovery settings; the server is not started)"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now); run "$CAIRN" restore bench --physical --to "$W/r-cairn" --target immediate > /dev/null; t1=$(now); CR=$(elapsed $t0 $t1)
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
as_pg mkdir -p "$W/r-pgbr"; chmod 700 "$W/r-pgbr"
t0=$(now); as_pg pgbackrest --config="$W/pgbr-zst.conf" --stanza=bench --pg1-path="$W/r-pgbr" --type=immediate restore; t1=$(now); PR=$(elapsed $t0 $t1)
rm -rf "$W/r-cairn" "$W/r-pgbr"

echo "== wal-push of 200 segments, one process per segment as archive_command runs it, into fresh repositories"
ls "$W/walsrc" | grep -E '^[0-9A-F]{24}$' | sort | head -200 > "$W/segments"
N=$(wc -l < "$W/segments")
run "$CAIRN" --repo "$W/cairn-walrepo" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
sed "s#$W/pgbr-zst#$W/pgbr-walrepo#" "$W/pgbr-zst.conf" > "$W/pgbr-wal.conf"; chown postgres: "$W/pgbr-wal.conf"
as_pg pgbackrest --config="$W/pgbr-wal.conf" --stanza=bench stanza-create >/dev/null
t0=$(now); as_pg bash -c "while read f; do CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $W/cairn-walrepo wal-push $W/walsrc/\$f --database bench || exit 1; done < $W/segments"; t1=$(now); CW=$(elapsed $t0 $t1)
t0=$(now); as_pg bash -c "while read f; do pgbackrest --config=$W/pgbr-wal.conf --stanza=bench archive-push $W/walsrc/\$f || exit 1; done < $W/segments"; t1=$(now); PW=$(elapsed $t0 $t1)
CWS=$(size_of "$W/cairn-walrepo"); PWS=$(size_of "$W/pgbr-walrepo")

sps() { python3 -c "print(f'{$1/$2:.1f}')"; }
echo
echo "cluster: $CLUSTER bytes (pg_wal excluded); $N WAL segments pushed"
echo "| measure | cairn | pgBackRest zst | pgBackRest lz4 | pg_basebackup -Ft client-zstd |"
echo "|---|---|---|---|---|"
echo "| full backup, s | $CF | $PZ | $PL | $BB |"
echo "| repository after full, bytes (incl. WAL archived so far) | $CFS | $PZS | $PLS | $BBS (no WAL) |"
echo "| incremental after a day of change, s | $CI | $PI | $PIL | |"
echo "| incremental: bytes added (incl. WAL) | $((CIS-CFS)) | $((PIS-PZS)) | $((PILS-PLS)) | |"
echo "| restore (files only), s | $CR | $PR | | |"
echo "| wal-push, segments/s | $(sps $N $CW) ($CW s) | $(sps $N $PW) ($PW s) | | |"
echo "| WAL stored for $N segments, bytes | $CWS | $PWS | | |"
echo
echo "ratios (targets): full cairn/pgBackRest-zst = $(ratio $CF $PZ) (<= 0.7, size $(ratio $CFS $PZS) <= 1); incremental = $(ratio $CI $PI) (<= 0.5);"
echo "                  restore = $(ratio $CR $PR) (<= 0.8); wal-push speed cairn/pgBackRest = $(ratio $PW $CW) (>= 1)"
