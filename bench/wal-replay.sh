#!/usr/bin/env bash
# Benchmark (not a test, not CI): a PITR replaying SEGMENTS archived WAL segments, timed with each restore_command:
#   cp            plain `cp` from an unencrypted folder: the floor (what redo alone costs on this machine);
#   cairn-sync    cairn wal-fetch without prefetch;
#   cairn-ahead   cairn wal-fetch with wal.fetch_ahead AHEAD (the background prefetcher);
#   pgbr-sync     pgbackrest archive-get (synchronous, its default);
#   pgbr-async    pgbackrest archive-get with archive-async=y, process-max 2, archive-get-queue-max AHEAD×16+1 MiB.
# Set-up (not timed): a scratch server with archive_mode on (archive_command copies each segment aside), a base backup
# (pg_basebackup -X none: recovery fetches even the backup's own WAL through restore_command), pgbench until SEGMENTS
# full segments were archived after the backup, pg_switch_wal, the balances noted, then every segment pushed into a
# Cairn repository (wal-push) and a pgBackRest repository (archive-push zst, aes-256-cbc), both encrypted.
# Timed: the base backup copied into a fresh data directory with recovery.signal and that restore_command; pg_ctl start
# with hot_standby=off: the first connection succeeds once recovery replayed every archived segment and promoted. Each
# run must end with the source's pgbench balances and history count (a fast replay that stopped early is a failure,
# not a figure). Two rounds in opposite order. Prints seconds, segments/s, and the ratios against pgbackrest-sync.
# Usage: bench/wal-replay.sh [SEGMENTS] [AHEAD]   (default 200 segments, fetch_ahead/queue AHEAD default 8; BENCH_ROUNDS=1 for one round)
source "$(dirname "$0")/lib.sh"
N="${1:-200}"; AHEAD="${2:-8}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-walreplay}"
PORT="${BENCH_PORT:-55437}"; RPORT=$((PORT + 1))
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
as_pg "$PGBIN/pg_ctl" -D "$W/restore" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/walsrc" "$W/log" "$W/lock" "$W/rsock"
CAIRN="$W/cairn"
if [ -f "$SRC_CAIRN" ] && head -c 4 "$SRC_CAIRN" | grep -q ELF; then cp "$SRC_CAIRN" "$CAIRN"; else CAIRN="$SRC_CAIRN"; fi
head -c 32 /dev/urandom | base64 > "$W/pass"
chown -R postgres: "$W"; chmod 700 "$W"
trap 'as_pg "$PGBIN/pg_ctl" -D "$W/restore" -m immediate -w stop >/dev/null 2>&1 || true; stop_pg "$W/pg"' EXIT
machine

echo "== source: pgbench on a scratch server, every segment copied aside by archive_command"
as_pg mkdir -p "$W/pg"
start_pg "$W/pg" "$PORT" "-c full_page_writes=on -c wal_level=replica -c archive_mode=on -c archive_command='cp %p $W/walsrc/%f' -c max_wal_size=1GB -c min_wal_size=64MB -c checkpoint_timeout=30s"
"$PGBIN/pgbench" -i -q -s 10 postgres >/dev/null 2>&1
as_pg "$PGBIN/pg_basebackup" -D "$W/base" -X none -c fast -h "$W/pg/sock" -p "$PORT" -U postgres
start_wal=$(grep -oE 'START WAL LOCATION: .* \(file [0-9A-F]{24}\)' "$W/base/backup_label" | grep -oE '[0-9A-F]{24}')
echo "base backup starts in $start_wal"
count_after() { ls "$W/walsrc" | grep -E '^[0-9A-F]{24}$' | awk -v s="$start_wal" '$0 >= s' | wc -l; }
deadline=$(( $(date +%s) + 1800 ))
while [ "$(count_after)" -lt "$N" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "pgbench made fewer than $N segments in 1800 s" >&2; exit 1; }
  "$PGBIN/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1
done
"$PGBIN/psql" -qAt -d postgres -c "SELECT pg_switch_wal()" >/dev/null
"$PGBIN/psql" -qAt -d postgres -c "CHECKPOINT" >/dev/null
BAL="SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT sum(bbalance) FROM pgbench_branches) || '/' || (SELECT count(*) FROM pgbench_history)"
source_state=$("$PGBIN/psql" -qAt -d postgres -c "$BAL")
last=$("$PGBIN/psql" -qAt -d postgres -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
# Every segment before the current one is archived before the server stops (the archiver is asynchronous).
deadline=$(( $(date +%s) + 300 ))
until [ "$("$PGBIN/psql" -qAt -d postgres -c "SELECT count(*) FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'")" = 0 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "the source server did not archive its WAL within 300 s" >&2; exit 1; }
  sleep 0.5
done

# pgBackRest wants its stanza made against the running server; both repositories get every archived segment.
# replay_pgbr_conf FILE ASYNC(y|n) PG1_PATH SOCKET PORT: bench/lib.sh's pgbr_conf with the archive queue and spool of these runs.
replay_pgbr_conf() {
  pgbr_conf "$1" "$5" zst "repo1-path=$W/pgbr-repo" "archive-async=$2" "archive-get-queue-max=$((AHEAD * 16 + 1))MiB" \
    "spool-path=$W/pgbr-spool" "log-level-file=off" "pg1-path=$3" "pg1-socket-path=$4"
}
replay_pgbr_conf "$W/pgbr-stanza.conf" n "$W/pg/data" "$W/pg/sock" "$PORT"
replay_pgbr_conf "$W/pgbr-sync.conf" n "$W/restore" "$W/rsock" "$RPORT"
replay_pgbr_conf "$W/pgbr-async.conf" y "$W/restore" "$W/rsock" "$RPORT"
cat > "$W/cairn-sync.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/rsock&port=$RPORT"
Y
cat > "$W/cairn-ahead.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/rsock&port=$RPORT"
    wal: { spool: $W/cairn-spool, fetch_ahead: $AHEAD }
Y
chown postgres: "$W"/*.yaml "$W"/*.conf; chmod 600 "$W"/*.yaml "$W"/*.conf
as_pg pgbackrest --config="$W/pgbr-stanza.conf" --stanza=bench stanza-create >/dev/null
stop_pg "$W/pg"
ls "$W/walsrc" | grep -E '^[0-9A-F]{24}$' | sort > "$W/segments"
chown postgres: "$W/segments"
total=$(wc -l < "$W/segments"); replayed=$(awk -v s="$start_wal" '$0 >= s' "$W/segments" | wc -l)
echo "$total segments archived ($(du -cb "$W/walsrc" | tail -1 | cut -f1) bytes); recovery replays $replayed of them, $start_wal … $last"
as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn-sync.yaml" "$CAIRN" --repo "$W/cairn-repo" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
as_pg bash -c 'while read -r f; do CAIRN_PASSPHRASE_FILE='"$W"'/pass CAIRN_CONFIG='"$W"'/cairn-sync.yaml '"$CAIRN"' --repo '"$W"'/cairn-repo wal-push '"$W"'/walsrc/$f --database bench || exit 1; pgbackrest --config='"$W"'/pgbr-stanza.conf --stanza=bench archive-push '"$W"'/walsrc/$f || exit 1; done < '"$W"'/segments'
echo "repositories: cairn wal/ $(du -sb "$W/cairn-repo/wal" | cut -f1) bytes, pgBackRest archive/ $(du -sb "$W/pgbr-repo/archive" | cut -f1) bytes"

restore_command() {  # restore_command LABEL
  case "$1" in
    cp)          echo "cp $W/walsrc/%f %p" ;;
    cairn-sync)  echo "CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-sync.yaml $CAIRN --repo $W/cairn-repo wal-fetch %f %p --database bench" ;;
    cairn-ahead) echo "CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-ahead.yaml $CAIRN --repo $W/cairn-repo wal-fetch %f %p --database bench" ;;
    pgbr-sync)   echo "pgbackrest --config=$W/pgbr-sync.conf --stanza=bench archive-get %f \"%p\"" ;;
    pgbr-async)  echo "pgbackrest --config=$W/pgbr-async.conf --stanza=bench archive-get %f \"%p\"" ;;
  esac
}
# Wait until no prefetcher of this run still works (it must not overlap the next measurement).
settle() {
  local deadline=$(( $(date +%s) + 120 ))
  local mine="$W.*wal-fetch-ahead|archive-get:async.*$W|$W.*archive-get:async"
  while pgrep -u postgres -f "$mine" >/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "a background prefetcher did not end within 120 s" >&2; pgrep -a -u postgres -f "$mine" >&2; return 1; }
    sleep 0.2
  done
}
declare -A SECS
replay() {  # replay LABEL
  local label="$1" t0 t1 state
  rm -rf "$W/restore" "$W/cairn-spool" "$W/pgbr-spool"
  as_pg mkdir -m 700 "$W/cairn-spool" "$W/pgbr-spool"
  as_pg cp -a "$W/base" "$W/restore"
  as_pg touch "$W/restore/recovery.signal"
  as_pg bash -c "cat >> '$W/restore/postgresql.auto.conf'" <<C
restore_command = '$(restore_command "$label" | sed "s/'/''/g")'
archive_mode = off
hot_standby = off
port = $RPORT
unix_socket_directories = '$W/rsock'
listen_addresses = ''
C
  warm "$W/walsrc" "$W/cairn-repo/wal" "$W/pgbr-repo/archive" "$W/restore"
  t0=$(now)
  as_pg "$PGBIN/pg_ctl" -D "$W/restore" -l "$W/log/restore-$label.log" -W start >/dev/null
  # pg_ctl -w returns in standby already; hot_standby=off refuses connections until recovery ended and it was promoted.
  until "$PGBIN/psql" -qAt -h "$W/rsock" -p "$RPORT" -U postgres -d postgres -c "SELECT 1" >/dev/null 2>&1; do
    [ "$(elapsed "$t0" "$(now)" | cut -d. -f1)" -lt 10 ] || as_pg "$PGBIN/pg_ctl" -D "$W/restore" status >/dev/null || { echo "$label: the restored server stopped (see $W/log/restore-$label.log)" >&2; tail -5 "$W/log/restore-$label.log" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(now)
  state=$("$PGBIN/psql" -qAt -h "$W/rsock" -p "$RPORT" -U postgres -d postgres -c "$BAL")
  [ "$("$PGBIN/psql" -qAt -h "$W/rsock" -p "$RPORT" -U postgres -d postgres -c "SELECT pg_is_in_recovery()")" = f ] || { echo "$label: the restored server is still in recovery" >&2; exit 1; }
  as_pg "$PGBIN/pg_ctl" -D "$W/restore" -m fast -w stop >/dev/null
  settle
  [ "$state" = "$source_state" ] || { echo "$label: balances $state after replay, the source had $source_state (see $W/log/restore-$label.log)" >&2; exit 1; }
  SECS[$label]+="$(elapsed "$t0" "$t1") "
  printf '  replay %-12s %7.2f s  %6.1f segments/s\n' "$label" "$(elapsed "$t0" "$t1")" "$(python3 -c "print($replayed/$(elapsed "$t0" "$t1"))")"
}

for round in $(seq "${BENCH_ROUNDS:-2}"); do
  if [ "$round" = 1 ]; then order="cp cairn-sync cairn-ahead pgbr-sync pgbr-async"; else order="pgbr-async pgbr-sync cairn-ahead cairn-sync cp"; fi
  echo "== round $round: replay ($order), $replayed segments each, from the same base backup"
  for t in $order; do replay "$t"; done
done
rm -rf "$W/restore"

echo
echo "WAL replay: $replayed segments from pgbench through restore_command; fetch_ahead $AHEAD (pgBackRest async: process-max 2, archive-get-queue-max $((AHEAD * 16 + 1))MiB)"
machine
echo "| seconds (round 1 / round 2) | cp (floor) | cairn sync | cairn fetch_ahead | pgBackRest sync | pgBackRest async |"
echo "|---|---|---|---|---|---|"
echo "| PITR replay of $replayed segments | ${SECS[cp]% } | ${SECS[cairn-sync]% } | ${SECS[cairn-ahead]% } | ${SECS[pgbr-sync]% } | ${SECS[pgbr-async]% } |"
both() {  # one ratio per round: BENCH_ROUNDS=1 gives round 1 only
  if [ -n "${3:-}" ]; then python3 -c "print(f'{$1/$2:.2f}, {$3/$4:.2f}')"; else python3 -c "print(f'{$1/$2:.2f}')"; fi; }
A=(${SECS[cairn-ahead]}); S=(${SECS[pgbr-sync]}); PA=(${SECS[pgbr-async]}); C=(${SECS[cp]}); CS=(${SECS[cairn-sync]})
echo
echo "ratio replay speed cairn-fetch_ahead/pgBackRest-sync (round 1, round 2) = $(both "${S[0]}" "${A[0]}" "${S[1]:-}" "${A[1]:-}")   (issue 18 target >= 2)"
echo "ratio replay speed cairn-fetch_ahead/pgBackRest-async (round 1, round 2) = $(both "${PA[0]}" "${A[0]}" "${PA[1]:-}" "${A[1]:-}")"
echo "ratio replay speed cairn-sync/pgBackRest-sync (round 1, round 2) = $(both "${S[0]}" "${CS[0]}" "${S[1]:-}" "${CS[1]:-}")"
echo "ratio replay speed cp-floor/pgBackRest-sync (round 1, round 2) = $(both "${S[0]}" "${C[0]}" "${S[1]:-}" "${C[1]:-}")   (the most any restore_command could reach)"
