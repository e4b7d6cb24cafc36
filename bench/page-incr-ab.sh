#!/usr/bin/env bash
# A/B of two Cairn builds on the same patched incremental: after bench/page-incr.sh with BENCH_KEEP=1 (its work folder
# W: the server stopped, the page-patch repository holding the full and the incremental), removes the incremental and
# takes it again with each build in turn (the order alternating by round), removing each new snapshot after it, so
# every run is the same incremental from the same full; user+sys CPU seconds from GNU time, wall beside.
# Usage: bench/page-incr-ab.sh W ROUNDS CAIRN_A CAIRN_B
source "$(dirname "$0")/lib.sh"
W="$1"; ROUNDS="${2:-3}"; A="$3"; B="$4"
[ -d "$W/cairn-patches" ] || { echo "$W/cairn-patches is missing: run BENCH_KEEP=1 BENCH_WORK=$W bench/page-incr.sh first" >&2; exit 2; }
run() { local bin="$1"; shift; runuser -u postgres -- env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-patches" CAIRN_CONFIG="$W/cairn.yaml" "$bin" "$@"; }
# The newest physical snapshot when there are two (the full and its incremental); nothing when only the full is left.
newest() { run "$A" snapshots --json | python3 -c "import json,sys; s=sorted([x for x in json.load(sys.stdin) if x.get('kind')=='physical'], key=lambda x: x['time']); print(s[-1]['id'] if len(s) > 1 else '')"; }
machine
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w -o "-p 55437 -k $W/pg/sock -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB -c shared_buffers=512MB -c wal_level=replica -c archive_mode=on" start >/dev/null
export PGHOST="$W/pg/sock" PGPORT=55437 PGUSER=postgres
trap 'stop_pg "$W/pg"' EXIT
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'CAIRN_PASSPHRASE_FILE=$W/pass $A --repo $W/cairn-patches wal-push %p --database bench'" -c "SELECT pg_reload_conf()" postgres >/dev/null
INCR=$(newest); [ -z "$INCR" ] || run "$A" repo rm "$INCR" >/dev/null
one() {  # LABEL BIN
  "$PGBIN/psql" -q -c "CHECKPOINT" postgres; sync; warm "$W/pg/data"; sleep 2
  /usr/bin/time -f "$1 %e s wall %U s user %S s sys" -o "$W/ab-time" runuser -u postgres -- env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-patches" CAIRN_CONFIG="$W/cairn.yaml" "$2" backup bench --physical --json > "$W/ab.json"
  echo "$(cat "$W/ab-time")  patched_blocks $(python3 -c "import json; print(json.load(open('$W/ab.json')).get('patched_blocks'))")"
  run "$A" repo rm "$(python3 -c "import json; print(json.load(open('$W/ab.json'))['snapshot_id'])")" >/dev/null
}
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then one A "$A"; one B "$B"; else one B "$B"; one A "$A"; fi
done
machine
