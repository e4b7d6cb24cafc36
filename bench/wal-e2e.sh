#!/usr/bin/env bash
# Benchmark (not a test, not CI): a real server generating WAL as fast as pgbench can on this machine for SECONDS, its
# archive_command pushing each segment asynchronously, for each tool in turn on a fresh server and repository:
#   cairn       cairn wal-push with wal: { async: true, spool, push_ahead: AHEAD };
#   pgbr-async  pgbackrest archive-push with archive-async=y, process-max 2 (for comparison).
# Sampled every second: the number of .ready files in pg_wal/archive_status (the archiver's backlog). After the load:
# pg_switch_wal, then every segment must be archived within 300 s, pg_stat_archiver.failed_count must be 0, and every
# segment PostgreSQL marked .done must be in that tool's repository. Prints WAL generated, archived, the largest
# backlog and the backlog at the end of the load. Exits non-zero, naming the failure, if anything is lost or failed.
# (CI runs the short version of this: tests/Cairn.Tests/PostgreSql/WalAsyncServerTests, 10 s of pgbench.)
# Usage: bench/wal-e2e.sh [SECONDS] [AHEAD] [TOOLS]   (default 120 s, push_ahead 8, "cairn pgbr-async")
source "$(dirname "$0")/lib.sh"
SECS="${1:-120}"; AHEAD="${2:-8}"; TOOLS="${3:-cairn pgbr-async}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-wale2e}"
PORT="${BENCH_PORT:-55439}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/log" "$W/lock"
CAIRN="$W/cairn"
if [ -f "$SRC_CAIRN" ] && head -c 4 "$SRC_CAIRN" | grep -q ELF; then cp "$SRC_CAIRN" "$CAIRN"; else CAIRN="$SRC_CAIRN"; fi
head -c 32 /dev/urandom | base64 > "$W/pass"
chown -R postgres: "$W"; chmod 700 "$W"
trap 'stop_pg "$W/pg"' EXIT
machine

run() {  # run TOOL
  local tool="$1" archive
  stop_pg "$W/pg"; rm -rf "$W/pg" "$W/repo" "$W/pgbr-repo" "$W/spool" "$W/pgbr-spool"
  as_pg mkdir -p "$W/pg"; as_pg mkdir -m 700 "$W/spool" "$W/pgbr-spool"
  cat > "$W/cairn.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=$PORT"
    data_directory: $W/pg/data
    wal: { async: true, spool: $W/spool, push_ahead: $AHEAD }
Y
  cat > "$W/pgbr.conf" <<C
[global]
repo1-path=$W/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(cat "$W/pass")
compress-type=zst
process-max=2
archive-async=y
archive-push-queue-max=4GiB
spool-path=$W/pgbr-spool
log-path=$W/log
lock-path=$W/lock
log-level-console=warn
log-level-file=off
[bench]
pg1-path=$W/pg/data
pg1-socket-path=$W/pg/sock
pg1-port=$PORT
C
  chown postgres: "$W/cairn.yaml" "$W/pgbr.conf"; chmod 600 "$W/cairn.yaml" "$W/pgbr.conf"
  case "$tool" in
    cairn)
      as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN" --repo "$W/repo" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
      archive="CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn.yaml $CAIRN --repo $W/repo wal-push %p --database bench" ;;
    pgbr-async) archive="pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push %p" ;;
  esac
  # The server archives with 'true' until the stanza exists (pgBackRest's stanza-create needs the running server).
  start_pg "$W/pg" "$PORT" "-c full_page_writes=on -c wal_level=replica -c archive_mode=on -c max_wal_size=1GB -c min_wal_size=64MB"
  # Through ALTER SYSTEM, not -c (a command-line setting would outrank the ALTER SYSTEM below).
  "$PGBIN/psql" -qAt -d postgres -c "ALTER SYSTEM SET archive_command = 'true'" >/dev/null
  "$PGBIN/psql" -qAt -d postgres -c "SELECT pg_reload_conf()" >/dev/null
  [ "$tool" = pgbr-async ] && as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench stanza-create >/dev/null
  "$PGBIN/pgbench" -i -q -s 10 postgres >/dev/null 2>&1
  "$PGBIN/psql" -qAt -d postgres -c "SELECT pg_switch_wal()" >/dev/null
  "$PGBIN/psql" -qAt -d postgres -c "CHECKPOINT" >/dev/null
  "$PGBIN/psql" -qAt -d postgres -c "ALTER SYSTEM SET archive_command = '$(echo "$archive" | sed "s/'/''/g")'" >/dev/null
  "$PGBIN/psql" -qAt -d postgres -c "SELECT pg_reload_conf()" >/dev/null
  "$PGBIN/psql" -qAt -d postgres -c "SELECT pg_stat_reset_shared('archiver')" >/dev/null
  sleep 1
  # Segments from here on are archived by the tool (those before went to 'true').
  local first; first=$("$PGBIN/psql" -qAt -d postgres -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
  local lsn0 lsn1 t0 t1 max=0 ready=0 pid
  lsn0=$("$PGBIN/psql" -qAt -d postgres -c "SELECT pg_current_wal_lsn()")
  t0=$(now)
  "$PGBIN/pgbench" -n -c 4 -j 2 -T "$SECS" postgres > "$W/log/pgbench-$tool.txt" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    ready=$(find "$W/pg/data/pg_wal/archive_status" -name '*.ready' | wc -l)
    [ "$ready" -gt "$max" ] && max=$ready
    echo "$(date +%s) $ready" >> "$W/log/ready-$tool.txt"
    sleep 1
  done
  wait "$pid" || { echo "$tool: pgbench failed" >&2; cat "$W/log/pgbench-$tool.txt" >&2; exit 1; }
  t1=$(now)
  lsn1=$("$PGBIN/psql" -qAt -d postgres -c "SELECT pg_current_wal_lsn()")
  local gen tps at_end; gen=$("$PGBIN/psql" -qAt -d postgres -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / 16777216.0, 1)")
  tps=$(grep -oE 'tps = [0-9.]+' "$W/log/pgbench-$tool.txt" | head -1 | cut -d' ' -f3)
  at_end=$(find "$W/pg/data/pg_wal/archive_status" -name '*.ready' | wc -l)
  "$PGBIN/psql" -qAt -d postgres -c "SELECT pg_switch_wal()" >/dev/null
  local deadline=$(( $(date +%s) + 300 )) drained
  until [ "$(find "$W/pg/data/pg_wal/archive_status" -name '*.ready' | wc -l)" = 0 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$tool: the backlog was not archived within 300 s after the load" >&2; exit 1; }
    sleep 0.5
  done
  drained=$(elapsed "$t1" "$(now)")
  local failed archived
  failed=$("$PGBIN/psql" -qAt -d postgres -c "SELECT failed_count FROM pg_stat_archiver")
  archived=$("$PGBIN/psql" -qAt -d postgres -c "SELECT archived_count FROM pg_stat_archiver")
  [ "$failed" = 0 ] || { echo "$tool: pg_stat_archiver.failed_count = $failed" >&2; tail -20 "$W/pg/log" >&2; exit 1; }
  # Every segment PostgreSQL let go of is in the repository.
  local missing=0 f
  for f in $(find "$W/pg/data/pg_wal/archive_status" -name '*.done' -printf '%f\n' | sed 's/\.done$//' | grep -E '^[0-9A-F]{24}$' | awk -v s="$first" '$0 >= s'); do
    case "$tool" in
      cairn) [ -f "$W/repo/wal/bench@$f" ] || missing=$((missing + 1)) ;;
      pgbr-async) ls "$W/pgbr-repo/archive/bench/"*/*/"$f"-* >/dev/null 2>&1 || missing=$((missing + 1)) ;;
    esac
  done
  [ "$missing" = 0 ] || { echo "$tool: $missing segments marked .done are not in the repository" >&2; exit 1; }
  stop_pg "$W/pg"
  printf '  %-11s %s s of pgbench: %s tps, %s segments of WAL (%.1f/s), %s archived, failed_count %s; .ready at most %s, %s when the load ended, 0 after %s s\n' \
    "$tool" "$(elapsed "$t0" "$t1")" "$tps" "$gen" "$(python3 -c "print($gen/$(elapsed "$t0" "$t1"))")" "$archived" "$failed" "$max" "$at_end" "$drained"
  echo "| $tool | $tps | $gen | $(python3 -c "print(f'{$gen/$(elapsed "$t0" "$t1"):.1f}')") | $archived | $max | $at_end | $drained | $failed |" >> "$W/table"
}

echo "== pgbench -c 4 -j 2 for $SECS s on a fresh server per tool (scale 10, full_page_writes on, fsync off), async archiving"
: > "$W/table"
for t in $TOOLS; do run "$t"; done
echo
echo "WAL archiving end to end: $SECS s of pgbench; cairn push_ahead $AHEAD; pgBackRest archive-async process-max 2"
machine
echo "| tool | pgbench tps | WAL segments generated | segments/s | archived_count | .ready at most | .ready when the load ended | s to drain after | failed_count |"
echo "|---|---|---|---|---|---|---|---|---|"
cat "$W/table"
