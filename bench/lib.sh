# Shared helpers for the benchmarks: a scratch PostgreSQL server run as the postgres user, timing.
set -Eeuo pipefail
# A failed tool ends the run loudly (non-zero, naming the command): no ratio is ever printed from a failed run.
trap 'rc=$?; echo "BENCH FAILED (exit $rc) at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2; exit $rc' ERR
BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGBIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2-$1:.2f}')"; }
ratio() { python3 -c "a,b=$1,$2; print(f'{a/b:.2f}' if b else 'n/a')"; }
mbps() { python3 -c "print(f'{$1/1e6/max($2,1e-9):.0f}')"; }
size_of() { du -sb "$1" | cut -f1; }
# scaled FACTOR BASE: BASE times a possibly fractional scale (0.25 for a quick run on a busy machine), at least 1.
scaled() { python3 -c "print(max(1, round($1 * $2)))"; }
# The machine's state, printed with every run's figures (the machine is shared; the load says how much).
machine() { echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; $(uptime | sed 's/^ *//')"; }
# warm PATH...: read files into the page cache so every tool starts from the same (warm) state.
warm() { find "$@" -type f -exec cat {} + > /dev/null; }
# cold: drop the page cache so every tool starts from the same (cold) state; fails loudly if it cannot.
cold() { sync; echo 3 > /proc/sys/vm/drop_caches || { echo "cannot drop the page cache (needs root outside a container); the run would compare cold with warm" >&2; return 1; }; }
# The cairn binary: artifacts/cairn from scripts/publish (NativeAOT); BENCH_NO_PUBLISH=1 reuses an existing one;
# BENCH_CAIRN=PATH uses that executable instead (e.g. a wrapper running the Release build's cairn.dll with dotnet).
cairn_binary() {
  if [ -n "${BENCH_CAIRN:-}" ]; then echo "$BENCH_CAIRN"; return; fi
  if [ "${BENCH_NO_PUBLISH:-0}" != 1 ] || [ ! -x "$BENCH_ROOT/artifacts/cairn" ]; then bash "$BENCH_ROOT/scripts/publish" >/dev/null; fi
  echo "$BENCH_ROOT/artifacts/cairn"
}

# start_pg DIR PORT [EXTRA_SERVER_OPTIONS]: initdb + start with a private socket folder; sets PGHOST/PGPORT.
start_pg() {
  local dir="$1" port="$2" extra="${3:-}"
  mkdir -p "$dir"; chown postgres: "$dir" 2>/dev/null || true
  as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  mkdir -p "$dir/sock"; chown postgres: "$dir/sock" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir/sock -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB -c shared_buffers=512MB $extra" start >/dev/null
  export PGHOST="$dir/sock" PGPORT="$port" PGUSER=postgres
}
stop_pg() { as_pg "$PGBIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true; }

# The realistic schema: text, JSON, UUIDs, numbers, timestamps (not only pgbench filler).
load_realistic() {
  local rows="$1"
  "$PGBIN/psql" -q -v ON_ERROR_STOP=1 -d postgres <<SQL
CREATE TABLE IF NOT EXISTS customers (id bigint PRIMARY KEY, uid uuid, email text, name text, country text, plan text, meta jsonb, balance numeric(12,2), created_at timestamptz);
INSERT INTO customers
SELECT g, md5(g::text)::uuid, 'user' || g || '@' || (ARRAY['example.com','mail.org','corp.net'])[1 + g % 3],
       (ARRAY['Ana','Bo','Chen','Dara','Eli','Fatima','Goran','Hana'])[1 + g % 8] || ' ' || (ARRAY['Silva','Ng','Okafor','Muller','Rossi','Kim'])[1 + (g / 8) % 6],
       (ARRAY['PT','DE','NG','US','JP','BR','IN'])[1 + g % 7], (ARRAY['free','pro','team'])[1 + (g * 7) % 3],
       jsonb_build_object('referrer', md5((g * 13)::text), 'tags', jsonb_build_array('t' || (g % 17), 't' || (g % 5)), 'score', (g * 7919) % 1000, 'note', repeat(chr((97 + g % 26)::int), (20 + g % 40)::int)),
       ((g * 104729) % 10000000) / 100.0, timestamptz '2024-01-01' + (g || ' seconds')::interval
FROM generate_series(1::bigint, $rows) g;
SQL
}

# pgbr_conf FILE PORT COMPRESS LINE…: the benchmarks' pgBackRest config, postgres's, 0600: the given lines (repo1-*,
# archive-async=y, …) in [global], pg1-* lines in the stanza [bench]; then every default whose key no line gave:
# encrypted with $W/pass, retention-full 10, process-max 2, log/lock/spool in $W, the cluster in $W/pg on PORT.
pgbr_conf() {
  local file="$1" port="$2" compress="$3"; shift 3
  local line d global=() stanza=()
  for line in "$@"; do case "$line" in pg1-*) stanza+=("$line") ;; *) global+=("$line") ;; esac; done
  # _pgbr_given KEY LINE…: whether a line sets KEY
  _pgbr_given() { local k="$1" l; shift; for l in "$@"; do [ "${l%%=*}" = "$k" ] && return 0; done; return 1; }
  {
    echo "[global]"
    [ ${#global[@]} -eq 0 ] || printf '%s\n' "${global[@]}"
    for d in "repo1-cipher-type=aes-256-cbc" "repo1-cipher-pass=$(cat "$W/pass")" "repo1-retention-full=10" "compress-type=$compress" \
             "process-max=2" "log-path=$W/log" "lock-path=$W/lock" "spool-path=$W/spool" "log-level-console=warn" "start-fast=y"; do
      _pgbr_given "${d%%=*}" "${global[@]}" || echo "$d"
    done
    echo "[bench]"
    [ ${#stanza[@]} -eq 0 ] || printf '%s\n' "${stanza[@]}"
    for d in "pg1-path=$W/pg/data" "pg1-socket-path=$W/pg/sock" "pg1-port=$port"; do
      _pgbr_given "${d%%=*}" "${stanza[@]}" || echo "$d"
    done
  } > "$file"
  chown postgres: "$file"; chmod 600 "$file"
}

# archiver COMMAND: wait until the server in $W/pg has archived everything, then make COMMAND its only archive_command.
# First the current WAL segment is ended under the old command, so the WAL written before a tool's run (a load, a
# day of change, a checkpoint) goes to the old command, not into the next tool's repository (the first tool's
# repository used to get the loading's last, partly filled segment: ~4 MB more than the others at scale 0.25).
# A failed archive_command, which PostgreSQL would retry for ever, ends the run loudly with the server's log; so does
# an archiver that has not caught up within 600 s. The archiver's counters are reset for the next command.
archiver() {
  local deadline=$(( $(date +%s) + 600 )) failed
  "$PGBIN/psql" -Atq -c "SELECT pg_switch_wal()" postgres >/dev/null
  while [ "$("$PGBIN/psql" -Atc "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'" postgres)" != 0 ]; do
    failed=$("$PGBIN/psql" -Atc "SELECT failed_count || ' failures, last ' || coalesce(last_failed_wal, '') FROM pg_stat_archiver" postgres)
    case "$failed" in 0\ *) ;; *) echo "archive_command failed ($failed); server log:" >&2; tail -20 "$W/pg/log" >&2; return 1;; esac
    [ "$(date +%s)" -lt "$deadline" ] || { echo "the archiver did not catch up within 600 s" >&2; return 1; }
    sleep 0.5
  done
  "$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = '$1'" -c "SELECT pg_reload_conf()" postgres >/dev/null
  "$PGBIN/psql" -q -c "SELECT pg_stat_reset_shared('archiver')" postgres >/dev/null
  sleep 1
}

# quiesce COMMAND: before each tool's run, the same start: its own archiver (above), a checkpoint, the data directory
# in the page cache, an idle server.
quiesce() { archiver "$1"; "$PGBIN/psql" -q -c "CHECKPOINT" postgres; sync; warm "$W/pg/data"; sleep 3; }

# The physical benchmarks' cluster in $W/pg on port $2, loaded as bench/physical.sh $1 loads it (pgbench + realistic
# rows), or, with BENCH_REUSE=1 and a cluster already there, started again as it is. Sets PGHOST/PGPORT/PGUSER and
# stops the cluster at exit unless BENCH_KEEP=1. physical-cpu.sh and physical-levels.sh share it.
physical_cluster() {
  local scale=$1 port=$2
  if [ "${BENCH_REUSE:-0}" = 1 ] && [ -d "$W/pg/data" ]; then
    echo "== reusing the cluster in $W (BENCH_REUSE=1)"
    as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w -o "-p $port -k $W/pg/sock -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=on -c wal_level=replica -c archive_mode=on -c max_wal_size=4GB -c shared_buffers=512MB" start >/dev/null 2>&1 || true
    export PGHOST="$W/pg/sock" PGPORT=$port PGUSER=postgres
  else
    as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$W"; mkdir -p "$W/log" "$W/lock" "$W/spool"; chown -R postgres: "$W"; chmod 700 "$W"
    as_pg mkdir -p "$W/pg"
    start_pg "$W/pg" "$port" "-c full_page_writes=on -c wal_level=replica -c archive_mode=on"
    "$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'true'" -c "SELECT pg_reload_conf()" postgres >/dev/null
    local pgb_scale rows
    pgb_scale=$(scaled "$scale" 70); rows=$(scaled "$scale" 3200000)
    echo "== loading (pgbench -s $pgb_scale + $rows realistic rows, as bench/physical.sh $scale)"
    "$PGBIN/pgbench" -i -q -s "$pgb_scale" postgres >/dev/null 2>&1
    load_realistic "$rows"
    "$PGBIN/psql" -q -c "VACUUM ANALYZE" postgres
    "$PGBIN/psql" -q -c "CHECKPOINT" postgres
  fi
  [ "${BENCH_KEEP:-0}" = 1 ] || trap 'stop_pg "$W/pg"' EXIT
}
