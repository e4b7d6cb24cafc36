#!/usr/bin/env bash
# Benchmark (not a test, not CI): WAL archiving and WAL fetch, one process per segment as PostgreSQL runs
# archive_command and restore_command, Cairn against pgBackRest (Debian's), into local repositories.
#   push: cairn wal-push synchronous and asynchronous (wal: { async: true, spool }) against pgbackrest archive-push
#         synchronous and asynchronous (archive-async=y, spool-path, process-max 2), segments per second;
#   fetch: cairn wal-fetch with fetch_ahead against pgbackrest archive-get with archive-async=y (and both synchronous),
#         per segment, in recovery's order.
# The segments are real WAL from a pgbench load of a scratch server (pgBackRest checks each segment's header against
# its stanza, so they must be). PostgreSQL's archiver is imitated exactly: every segment sits in a pg_wal folder with
# archive_status/NAME.ready (a backlog, as on a server that outruns its archiver), the command is called once per
# segment, oldest first, and only its exit 0 turns .ready into .done. Each push run starts from a fresh repository
# and an empty spool; every run is followed by a check that every segment is in that repository. Two rounds in
# opposite order (Cairn first, then pgBackRest first). Prints segments per second and ratios; exits non-zero, naming
# the command, if anything fails.
# Usage: bench/wal.sh [SEGMENTS] [AHEAD]   (default 40 segments; push_ahead/fetch_ahead and pgBackRest queue of AHEAD, default 4)
# BENCH_PHASES=push measures the push half only (the PITR replay with prefetch is bench/wal-replay.sh).
# BENCH_CAIRN_BEFORE=PATH also pushes with that binary (cairn-sync-before, cairn-async-before: an earlier build, same
# rounds, same segments) and prints its ratios beside the current one's.
# BENCH_WAL_COMPRESSION=zstd:N sets Cairn's wal: { compression: zstd:N } (default: Cairn's own default, zstd:1).
# Every push run also prints the bytes the repository holds for the segments (Cairn: wal/, pgBackRest: archive/), so
# a speed bought with compression ratio shows beside the speed.
source "$(dirname "$0")/lib.sh"
N="${1:-40}"; AHEAD="${2:-4}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-wal}"
PORT="${BENCH_PORT:-55436}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W/walsrc" "$W/log" "$W/lock"
CAIRN="$W/cairn"
if [ -f "$SRC_CAIRN" ] && head -c 4 "$SRC_CAIRN" | grep -q ELF; then cp "$SRC_CAIRN" "$CAIRN"; else CAIRN="$SRC_CAIRN"; fi
CAIRN_BEFORE=""
if [ -n "${BENCH_CAIRN_BEFORE:-}" ]; then CAIRN_BEFORE="$W/cairn-before"; cp "$BENCH_CAIRN_BEFORE" "$CAIRN_BEFORE"; fi
head -c 32 /dev/urandom | base64 > "$W/pass"
chown -R postgres: "$W"; chmod 700 "$W"
trap 'stop_pg "$W/pg"' EXIT
machine

echo "== a real WAL stream: pgbench on a scratch server, segments copied aside by archive_command"
as_pg mkdir -p "$W/pg"
start_pg "$W/pg" "$PORT" "-c full_page_writes=on -c wal_level=replica -c archive_mode=on -c archive_command='cp %p $W/walsrc/%f' -c max_wal_size=256MB -c min_wal_size=64MB"
"$PGBIN/pgbench" -i -q -s 10 postgres >/dev/null 2>&1
deadline=$(( $(date +%s) + 600 ))
while [ "$(ls "$W/walsrc" | grep -cE '^[0-9A-F]{24}$')" -lt "$N" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "pgbench made fewer than $N segments in 600 s" >&2; exit 1; }
  "$PGBIN/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1   # full segments only: no pg_switch_wal (its zero tails compress to nothing)
done
ls "$W/walsrc" | grep -E '^[0-9A-F]{24}$' | sort | head -"$N" > "$W/segments"
chown postgres: "$W/segments"
{ find "$W/walsrc" -type f | grep -vFf <(sed "s#^#/#" "$W/segments") || true; } | xargs -r rm -f   # only what is measured stays (disk)
[ "$(wc -l < "$W/segments")" = "$N" ] || { echo "expected $N segments" >&2; exit 1; }
echo "$N segments of $(du -cb $(sed "s#^#$W/walsrc/#" "$W/segments") | tail -1 | cut -f1) bytes, $(head -1 "$W/segments") … $(tail -1 "$W/segments")"

cat > "$W/cairn-sync.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=$PORT"
    data_directory: $W/pg/data
${BENCH_WAL_COMPRESSION:+    wal: { compression: $BENCH_WAL_COMPRESSION \}}
Y
cat > "$W/cairn-async.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=$PORT"
    data_directory: $W/pg/data
    wal: { async: true, spool: $W/cairn-spool, push_ahead: $AHEAD, fetch_ahead: $AHEAD${BENCH_WAL_COMPRESSION:+, compression: $BENCH_WAL_COMPRESSION} }
Y
# wal_pgbr_conf FILE ASYNC(y|n) PG1_PATH: bench/lib.sh's pgbr_conf with the archive queue and spool of these runs.
wal_pgbr_conf() {
  pgbr_conf "$1" "$PORT" zst "repo1-path=$W/pgbr-repo" "archive-async=$2" "archive-get-queue-max=$((AHEAD * 16 + 1))MiB" \
    "spool-path=$W/pgbr-spool" "log-level-file=off" "pg1-path=$3"
}
# pgBackRest's async archiver wants the WAL folder inside pg1-path: the measured commands see a cluster folder
# ($W/fake) holding the server's pg_control and the pg_wal-like folder; stanza-create uses the running server.
as_pg mkdir -p "$W/fake/global"; as_pg cp "$W/pg/data/global/pg_control" "$W/fake/global/pg_control"
wal_pgbr_conf "$W/pgbr-stanza.conf" n "$W/pg/data"; wal_pgbr_conf "$W/pgbr-sync.conf" n "$W/fake"; wal_pgbr_conf "$W/pgbr-async.conf" y "$W/fake"
chown postgres: "$W"/*.yaml; chmod 600 "$W"/*.yaml

cairn_as() { local conf="$1"; shift; as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn-$conf.yaml" "$CAIRN" "$@"; }
# fresh_pgwal: every segment in a pg_wal-like folder, each .ready, as a server with a backlog leaves them.
fresh_pgwal() {
  rm -rf "$W/fake/pg_wal"; as_pg mkdir -p "$W/fake/pg_wal/archive_status"
  while read -r f; do as_pg cp "$W/walsrc/$f" "$W/fake/pg_wal/$f"; as_pg touch "$W/fake/pg_wal/archive_status/$f.ready"; done < "$W/segments"
}
# archiver COMMAND_PREFIX: PostgreSQL's archiver loop over the pg_wal-like folder, one call per segment oldest first; exit 0
# turns .ready into .done (this script's own: bench/lib.sh's archiver() switches the archive_command of a running server).
archiver() {
  as_pg bash -c 'while read -r f; do '"$1"' "'"$W"'/fake/pg_wal/$f" || { echo "archive_command failed for $f" >&2; exit 1; }; mv "'"$W"'/fake/pg_wal/archive_status/$f.ready" "'"$W"'/fake/pg_wal/archive_status/$f.done"; done < "'"$W"'/segments"'
}
# Wait until no background process of either tool still runs (it must not overlap the next measurement).
settle() {
  local deadline=$(( $(date +%s) + 120 ))
  # Only this run's processes (others may run the same programs on this machine).
  local mine="$W.*(wal-push-ahead|wal-fetch-ahead)|(archive-push|archive-get):async.*$W|$W.*(archive-push|archive-get):async"
  while pgrep -u postgres -f "$mine" >/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "a background archiver process did not end within 120 s" >&2; pgrep -a -u postgres -f "$mine" >&2; return 1; }
    sleep 0.2
  done
}
fresh_cairn_repo() { rm -rf "$W/cairn-repo" "$W/cairn-spool"; as_pg mkdir -m 700 "$W/cairn-spool"; cairn_as sync --repo "$W/cairn-repo" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null; }
fresh_pgbr_repo() { rm -rf "$W/pgbr-repo" "$W/pgbr-spool"; as_pg mkdir -m 700 "$W/pgbr-spool"; as_pg pgbackrest --config="$W/pgbr-stanza.conf" --stanza=bench stanza-create >/dev/null; }
# Every segment must be in the repository after a push run: a fast run that lost one is a failure, not a figure.
check_cairn() {
  local stored; stored=$(find "$W/cairn-repo/wal" -type f -name 'bench@*' | grep -cE '@[0-9A-F]{24}$' || true)
  [ "$stored" = "$N" ] || { echo "cairn: $stored segments in the repository after pushing $N" >&2; exit 1; }
}
check_pgbr() {
  local stored; stored=$(find "$W/pgbr-repo/archive" -type f -name '*.zst' | grep -cE '/[0-9A-F]{24}-[0-9a-f]{40}\.zst$' || true)
  [ "$stored" = "$N" ] || { echo "pgbackrest: $stored segments in the repository after pushing $N" >&2; exit 1; }
}
sps() { python3 -c "print(f'{$1/$2:.1f}')"; }
declare -A PUSH FETCH BYTES
push() {  # push LABEL
  local label="$1" t0 t1
  case "$label" in
    cairn-*) fresh_cairn_repo ;;
    pgbr-*) fresh_pgbr_repo ;;
  esac
  fresh_pgwal; warm "$W/fake/pg_wal" /usr/bin/pgbackrest "$CAIRN"
  case "$label" in
    cairn-sync)  t0=$(now); archiver "env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-sync.yaml $CAIRN --repo $W/cairn-repo wal-push --database bench"; t1=$(now) ;;
    cairn-async) t0=$(now); archiver "env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-async.yaml $CAIRN --repo $W/cairn-repo wal-push --database bench"; t1=$(now) ;;
    cairn-sync-before)  t0=$(now); archiver "env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-sync.yaml $CAIRN_BEFORE --repo $W/cairn-repo wal-push --database bench"; t1=$(now) ;;
    cairn-async-before) t0=$(now); archiver "env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-async.yaml $CAIRN_BEFORE --repo $W/cairn-repo wal-push --database bench"; t1=$(now) ;;
    pgbr-sync)   t0=$(now); archiver "pgbackrest --config=$W/pgbr-sync.conf --stanza=bench archive-push"; t1=$(now) ;;
    pgbr-async)  t0=$(now); archiver "pgbackrest --config=$W/pgbr-async.conf --stanza=bench archive-push"; t1=$(now) ;;
  esac
  settle
  case "$label" in cairn-*) check_cairn ;; pgbr-*) check_pgbr ;; esac
  local bytes; case "$label" in cairn-*) bytes=$(du -sb "$W/cairn-repo/wal" | cut -f1) ;; pgbr-*) bytes=$(du -sb "$W/pgbr-repo/archive" | cut -f1) ;; esac
  PUSH[$label]+="$(sps "$N" "$(elapsed "$t0" "$t1")") "; BYTES[$label]=$bytes
  printf '  push  %-12s %6.1f segments/s (%s s), repository %s bytes\n' "$label" "$(sps "$N" "$(elapsed "$t0" "$t1")")" "$(elapsed "$t0" "$t1")" "$bytes"
}
# fetch LABEL: every segment in order into a fresh file, one call each, as restore_command; the bytes must match.
fetch() {
  local label="$1" cmd t0 t1
  case "$label" in
    cairn-sync)  cmd="env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-sync.yaml $CAIRN --repo $W/cairn-repo wal-fetch \$f $W/fake/out/\$f --database bench" ;;
    cairn-ahead) rm -rf "$W/cairn-spool"; as_pg mkdir -m 700 "$W/cairn-spool"
                 cmd="env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-async.yaml $CAIRN --repo $W/cairn-repo wal-fetch \$f $W/fake/out/\$f --database bench" ;;
    pgbr-sync)   cmd="pgbackrest --config=$W/pgbr-sync.conf --stanza=bench archive-get \$f $W/fake/out/\$f" ;;
    pgbr-async)  rm -rf "$W/pgbr-spool"; as_pg mkdir -m 700 "$W/pgbr-spool"
                 cmd="pgbackrest --config=$W/pgbr-async.conf --stanza=bench archive-get \$f $W/fake/out/\$f" ;;
  esac
  rm -rf "$W/fake/out"; as_pg mkdir -p "$W/fake/out"; warm "$W/cairn-repo" "$W/pgbr-repo" /usr/bin/pgbackrest "$CAIRN"
  t0=$(now)
  as_pg bash -c 'while read -r f; do '"$cmd"' || { echo "restore_command failed for $f" >&2; exit 1; }; done < "'"$W"'/segments"'
  t1=$(now)
  settle
  while read -r f; do cmp -s "$W/walsrc/$f" "$W/fake/out/$f" || { echo "$label: fetched $f differs from the segment pushed" >&2; exit 1; }; done < "$W/segments"
  rm -rf "$W/fake/out"   # disk
  FETCH[$label]+="$(sps "$N" "$(elapsed "$t0" "$t1")") "
  printf '  fetch %-12s %6.1f segments/s (%s s)\n' "$label" "$(sps "$N" "$(elapsed "$t0" "$t1")")" "$(elapsed "$t0" "$t1")"
}

for round in 1 2; do
  if [ "$round" = 1 ]; then order="cairn-sync cairn-async pgbr-sync pgbr-async"; else order="pgbr-async pgbr-sync cairn-async cairn-sync"; fi
  if [ -n "$CAIRN_BEFORE" ]; then
    if [ "$round" = 1 ]; then order="$order cairn-async-before cairn-sync-before"; else order="cairn-sync-before cairn-async-before $order"; fi
  fi
  echo "== round $round: push ($order), $N segments each into a fresh repository"
  for t in $order; do push "$t"; done
  # Both repositories now hold every segment (each tool's last push run, checked): fetch from them.
  [[ " ${BENCH_PHASES:-push fetch} " == *" fetch "* ]] || continue
  if [ "$round" = 1 ]; then order="cairn-sync cairn-ahead pgbr-sync pgbr-async"; else order="pgbr-async pgbr-sync cairn-ahead cairn-sync"; fi
  echo "== round $round: fetch ($order)"
  for t in $order; do fetch "$t"; done
done

first() { echo "$1" | cut -d' ' -f1; }
second() { echo "$1" | cut -d' ' -f2; }
both() { python3 -c "print(f'{$1/$2:.2f}, {$3/$4:.2f}')"; }
echo
echo "WAL: $N segments from pgbench; ahead $AHEAD (cairn push_ahead/fetch_ahead; pgBackRest process-max 2, archive-get-queue-max $((AHEAD * 16 + 1))MiB)"
machine
echo "| segments/s (round 1 / round 2) | cairn sync | cairn async / fetch_ahead | pgBackRest sync | pgBackRest async |"
echo "|---|---|---|---|---|"
echo "| push (archive_command) | ${PUSH[cairn-sync]% } | ${PUSH[cairn-async]% } | ${PUSH[pgbr-sync]% } | ${PUSH[pgbr-async]% } |"
echo "| repository bytes after push (last run) | ${BYTES[cairn-sync]} | ${BYTES[cairn-async]} | ${BYTES[pgbr-sync]} | ${BYTES[pgbr-async]} |"
[ -n "${FETCH[cairn-ahead]:-}" ] && echo "| fetch (restore_command) | ${FETCH[cairn-sync]% } | ${FETCH[cairn-ahead]% } | ${FETCH[pgbr-sync]% } | ${FETCH[pgbr-async]% } |"
P=(${PUSH[cairn-async]}); PS=(${PUSH[pgbr-sync]}); PA=(${PUSH[pgbr-async]}); CS=(${PUSH[cairn-sync]})
F=(${FETCH[cairn-ahead]:-}); FS=(${FETCH[pgbr-sync]:-}); FA=(${FETCH[pgbr-async]:-})
echo
echo "ratio wal-push cairn-async/pgBackRest-sync (round 1, round 2) = $(both "${P[0]}" "${PS[0]}" "${P[1]}" "${PS[1]}")   (issue 18 target >= 3)"
echo "ratio wal-push cairn-async/pgBackRest-async (round 1, round 2) = $(both "${P[0]}" "${PA[0]}" "${P[1]}" "${PA[1]}")   (target >= 1.5)"
echo "ratio wal-push cairn-sync/pgBackRest-sync (round 1, round 2) = $(both "${CS[0]}" "${PS[0]}" "${CS[1]}" "${PS[1]}")"
echo "ratio repository bytes cairn-async/pgBackRest-async = $(python3 -c "print(f'{${BYTES[cairn-async]}/${BYTES[pgbr-async]}:.3f}')")   (Cairn wal: { compression: ${BENCH_WAL_COMPRESSION:-default} }, pgBackRest compress-type=zst at its default level)"
if [ -n "$CAIRN_BEFORE" ]; then
  PB=(${PUSH[cairn-async-before]}); SB=(${PUSH[cairn-sync-before]})
  echo "before ($BENCH_CAIRN_BEFORE): push cairn sync ${PUSH[cairn-sync-before]% }, cairn async ${PUSH[cairn-async-before]% } segments/s (round 1 / round 2)"
  echo "ratio wal-push cairn-async-before/pgBackRest-sync (round 1, round 2) = $(both "${PB[0]}" "${PS[0]}" "${PB[1]}" "${PS[1]}")"
  echo "ratio wal-push cairn-async-before/pgBackRest-async (round 1, round 2) = $(both "${PB[0]}" "${PA[0]}" "${PB[1]}" "${PA[1]}")"
  echo "ratio wal-push cairn-async/cairn-async-before (round 1, round 2) = $(both "${P[0]}" "${PB[0]}" "${P[1]}" "${PB[1]}")"
fi
[ ${#F[@]} -gt 0 ] || exit 0   # BENCH_PHASES=push: no fetch figures
echo "ratio wal-fetch cairn-fetch_ahead/pgBackRest-sync (round 1, round 2) = $(both "${F[0]}" "${FS[0]}" "${F[1]}" "${FS[1]}")   (target >= 2, there for replay)"
echo "ratio wal-fetch cairn-fetch_ahead/pgBackRest-async (round 1, round 2) = $(both "${F[0]}" "${FA[0]}" "${F[1]}" "${FA[1]}")"
