#!/usr/bin/env bash
# Measures what the handle-based restore (openat/O_NOFOLLOW, chown by handle; docs/security.md) costs against an
# older build: a file-level physical restore of a ~1 GB scratch cluster into an empty folder, and a --delta restore
# into an unchanged copy, as root, alternating the two builds.
# Usage: bench/restore-handles.sh OLD_CAIRN_DLL [ROUNDS]   (the new build is this tree's Release build)
source "$(dirname "$0")/lib.sh"
OLD="$1"; ROUNDS="${2:-3}"
NEW="$BENCH_ROOT/src/Cairn.Cli/bin/Release/net10.0/cairn.dll"
W="${BENCH_WORK:-/tmp/cairn-bench-restore}"
stop_pg "$W/pg"; rm -rf "$W"; mkdir -p "$W"; chmod 711 "$W"
head -c 32 /dev/urandom | base64 > "$W/pass"; chgrp postgres "$W/pass"; chmod 640 "$W/pass"
trap 'stop_pg "$W/pg"' EXIT
cairn() { CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/repo" CAIRN_CONFIG="$W/cairn.yaml" dotnet "$@"; }
cat > "$W/cairn.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=55441"
    data_directory: $W/pg/data
Y
cairn "$NEW" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
cairn "$NEW" archiver allow --group postgres >/dev/null
start_pg "$W/pg" 55441 "-c wal_level=replica -c archive_mode=on -c archive_command='CAIRN_PASSPHRASE_FILE=$W/pass dotnet $NEW --repo $W/repo wal-push %p --database bench'"
"$PGBIN/pgbench" -i -q -s "${SCALE:-60}" postgres >/dev/null 2>&1
"$PGBIN/psql" -q -c "CHECKPOINT" postgres
cairn "$NEW" backup bench --physical >/dev/null
echo "cluster: $(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1) bytes, $(find "$W/pg/data" -type f | wc -l) files; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for build in old new; do
    dll=$([ "$build" = old ] && echo "$OLD" || echo "$NEW")
    rm -rf "$W/to-$build" "$W/to-$build-tablespaces"
    t0=$(now); cairn "$dll" restore bench --physical --to "$W/to-$build" >/dev/null; t1=$(now)
    cairn "$dll" restore bench --physical --to "$W/to-$build" --delta >/dev/null; t2=$(now)
    echo "round $round $build: restore $(elapsed "$t0" "$t1") s, delta $(elapsed "$t1" "$t2") s (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
rm -rf "$W"/to-*
