#!/usr/bin/env bash
# Benchmark (not a test, not CI): CPU per WAL segment of wal-push, as `perf stat -e task-clock` counts it, for one or
# two cairn binaries in interleaved pairs (A B A B ...), on real WAL from a pgbench load of a scratch server.
#   pusher: the background pusher alone (cairn wal-push-ahead on N ready segments; a shell loop plays PostgreSQL,
#           renaming .ready to .done as each marker appears), its process start and 5 s idle tail included;
#   sync:   PostgreSQL's archiver imitated (one wal-push per segment, oldest first, .ready -> .done), synchronous;
#   async:  the same with wal: { async: true }, the background pusher included (waited for until it exits);
#   ack:    one acknowledged call (the pusher stored the segment, its marker is there) SEGMENTS times, and
#           `cairn --version` as often: what a call costs beyond the process start.
# Prints task-clock ms per segment (per call for ack) and the bytes stored per run.
# Usage: bench/wal-cpu.sh MODE SEGMENTS PAIRS BINARY_A [BINARY_B]   (MODE: pusher|sync|async|ack)
#        BENCH_WAL_COMPRESSION=zstd:N adds wal: { compression: zstd:N } (binaries that know the setting).
source "$(dirname "$0")/lib.sh"
MODE="$1"; N="$2"; PAIRS="$3"; A="$4"; B="${5:-}"
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
W="${BENCH_WORK:-/tmp/cairn-bench-walcpu}"
PORT="${BENCH_PORT:-55437}"
EXTRA=""; [ -n "${BENCH_WAL_COMPRESSION:-}" ] && EXTRA=", compression: $BENCH_WAL_COMPRESSION"
machine
if [ "$(ls "$W/seg" 2>/dev/null | wc -l)" -lt "$N" ]; then
  echo "== $N real WAL segments: pgbench on a scratch server, segments copied aside by archive_command"
  as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$W"; mkdir -p "$W/walsrc" "$W/seg"; chown -R postgres: "$W"
  trap 'stop_pg "$W/pg"' EXIT
  start_pg "$W/pg" "$PORT" "-c full_page_writes=on -c wal_level=replica -c archive_mode=on -c archive_command='cp %p $W/walsrc/%f' -c max_wal_size=256MB -c min_wal_size=64MB"
  "$PGBIN/pgbench" -i -q -s 10 postgres >/dev/null 2>&1
  while [ "$(ls "$W/walsrc" | grep -cE '^[0-9A-F]{24}$')" -lt "$N" ]; do "$PGBIN/pgbench" -n -c 2 -T 5 postgres >/dev/null 2>&1; done
  stop_pg "$W/pg"; trap - EXIT
  ls "$W/walsrc" | grep -E '^[0-9A-F]{24}$' | sort | head -"$N" | while read -r f; do cp "$W/walsrc/$f" "$W/seg/"; done
  rm -rf "$W/walsrc" "$W/pg"
fi
one() {  # one BINARY: a fresh repository, spool and pg_wal; prints "ms_per_segment bytes"
  local bin="$1" T="$W/run"
  rm -rf "$T"; mkdir -p "$T/pg/pg_wal/archive_status" "$T/spool"; chmod 700 "$T/spool"
  ls "$W/seg" | head -"$N" > "$T/segs"
  while read -r f; do cp "$W/seg/$f" "$T/pg/pg_wal/"; touch "$T/pg/pg_wal/archive_status/$f.ready"; done < "$T/segs"
  head -c 32 /dev/urandom | base64 > "$T/pass"; chmod 600 "$T/pass"
  local async=true; [ "$MODE" = sync ] && async=false
  printf 'databases:\n  bench:\n    connection: "host=/nonexistent"\n    data_directory: %s\n    wal: { async: %s, spool: %s, push_ahead: 4%s }\n' "$T/pg" "$async" "$T/spool" "$EXTRA" > "$T/c.yaml"
  export CAIRN_PASSPHRASE_FILE="$T/pass" CAIRN_CONFIG="$T/c.yaml"
  "$bin" --repo "$T/repo" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
  warm "$W/seg" "$bin"
  local st="$T/pg/pg_wal/archive_status"
  case "$MODE" in
    ack)
      # The pusher stores and marks the first push_ahead segments (all still .ready: the markers stay), then one of
      # them is pushed again and again: each call finds its marker and the object, and returns.
      "$bin" --repo "$T/repo" wal-push-ahead "$T/pg/pg_wal" --database bench >/dev/null
      local f; f=$(head -1 "$T/segs")
      [ -e "$T/spool/bench/push/$f.ok" ] || { echo "no marker for $f" >&2; exit 1; }
      perf stat -x, -e task-clock -o "$T/perf" -- bash -c "for i in \$(seq $N); do '$bin' --repo '$T/repo' wal-push '$T/pg/pg_wal/$f' --database bench >/dev/null || exit 1; done"
      perf stat -x, -e task-clock -o "$T/perf-version" -- bash -c "for i in \$(seq $N); do '$bin' --version >/dev/null; done"
      local ms v; ms=$(grep -E '^[0-9.]+,' "$T/perf" | head -1 | cut -d, -f1); v=$(grep -E '^[0-9.]+,' "$T/perf-version" | head -1 | cut -d, -f1)
      echo "$(python3 -c "print(f'{$ms/$N:.1f}')") --version:$(python3 -c "print(f'{$v/$N:.1f}')")ms/call"
      rm -rf "$T"; return ;;
    pusher)
      ( while read -r f; do while [ ! -e "$T/spool/bench/push/$f.ok" ]; do sleep 0.005; done; mv "$st/$f.ready" "$st/$f.done"; done < "$T/segs" ) &
      perf stat -x, -e task-clock -o "$T/perf" -- "$bin" --repo "$T/repo" wal-push-ahead "$T/pg/pg_wal" --database bench >/dev/null
      wait ;;
    sync|async)
      # Then wait for the pusher to exit, counting its idle tail: pgrep once per pusher (a pgrep scans /proc and costs
      # ~4 ms: polling with it would add several ms per segment to the figure), then a cheap test of its /proc entry.
      # The pattern [w]al-push-ahead does not match this bash's own command line.
      perf stat -x, -e task-clock -o "$T/perf" -- bash -c "while read -r f; do '$bin' --repo '$T/repo' wal-push '$T/pg/pg_wal/'\$f --database bench >/dev/null || exit 1; mv '$st/'\$f.ready '$st/'\$f.done; done < '$T/segs'; while p=\$(pgrep -o -f '$T/repo [w]al-push-ahead'); do while [ -e /proc/\$p ]; do sleep 0.05; done; done" ;;
  esac
  local stored; stored=$(find "$T/repo/wal" -type f | wc -l)
  # (ack returned above)
  [ "$stored" = "$N" ] || { echo "$bin: $stored of $N segments in the repository" >&2; exit 1; }
  local ms; ms=$(grep -E '^[0-9.]+,' "$T/perf" | head -1 | cut -d, -f1)
  echo "$(python3 -c "print(f'{$ms/$N:.1f}')") $(du -sb "$T/repo/wal" | cut -f1)bytes"
  rm -rf "$T"
}
echo "== $MODE, $N segments, $PAIRS pair(s)${EXTRA:+, wal$EXTRA}: A=$A${B:+ B=$B}"
for i in $(seq "$PAIRS"); do
  unit=segment; [ "$MODE" = ack ] && unit=call
  a=$(one "$A"); line="pair $i: A ${a% *} ms/$unit (${a#* })"
  if [ -n "$B" ]; then b=$(one "$B"); line="$line, B ${b% *} ms/$unit (${b#* }), B/A $(ratio "${b% *}" "${a% *}")"; fi
  echo "$line"
done
machine
