#!/usr/bin/env bash
# Benchmark: what each zstd level (cairn.yaml `compression: zstd:N`, and the default `zstd:auto`) costs and saves in a
# physical full backup, against pgBackRest zst (level 3, its default) on the same cluster. Two parts:
#   1. `Cairn.Bench levels DATA_DIRECTORY`: every piece of the data directory (relation files in the backup's 256 KiB
#      blocks, other files in content-defined chunks) compressed at levels 1..6 on one thread, and per-file choices of
#      level by a probe block, computed from those sizes and times (what the choice of zstd:auto rests on);
#   2. `cairn backup bench --physical --full` at each setting into a fresh repository (its own archive_command, as in
#      bench/physical.sh), under /usr/bin/time: wall and CPU seconds (user + sys), and the repository's bytes without
#      WAL; then `pgbackrest --type=full backup` (zst, process-max 2) once per round for the size and time reference.
# Usage: bench/physical-levels.sh [SCALE] [ROUNDS] [SETTINGS...]   (SCALE as bench/physical.sh; default 0.25 2
#        zstd:1 zstd:2 zstd:auto zstd:4 zstd:6). BENCH_CAIRN=PATH the build (default: artifacts/cairn, published unless
#        BENCH_NO_PUBLISH=1); BENCH_REUSE=1 / BENCH_KEEP=1 as bench/physical-cpu.sh (same work folder by default).
source "$(dirname "$0")/lib.sh"
SCALE="${1:-0.25}"; ROUNDS="${2:-2}"; shift $(( $# >= 2 ? 2 : $# ))
SETTINGS=("$@"); [ ${#SETTINGS[@]} -gt 0 ] || SETTINGS=(zstd:1 zstd:2 zstd:auto zstd:4 zstd:6)
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
W="${BENCH_WORK:-/tmp/cairn-bench-physlevels}"
SRC_CAIRN=$(cairn_binary)
physical_cluster "$SCALE" 55437
head -c 32 /dev/urandom | base64 > "$W/pass"; chown postgres: "$W/pass"; chmod 600 "$W/pass"
CAIRN="$W/cairn"; cp "$SRC_CAIRN" "$CAIRN"; chown postgres: "$CAIRN"
CLUSTER=$(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1)
echo "cluster: $CLUSTER bytes (without pg_wal)"
machine
pgbr_conf "$W/pgbr.conf" 55437 zst "repo1-path=$W/pgbr"

echo "== part 1: Cairn.Bench levels (one thread, the data directory as the backup splits it)"
dotnet build -c Release "$BENCH_ROOT/bench/Cairn.Bench" >/dev/null
"$PGBIN/psql" -q -c "CHECKPOINT" postgres
dotnet "$BENCH_ROOT/bench/Cairn.Bench/bin/Release/net10.0/Cairn.Bench.dll" levels "$W/pg/data"

timed() { local l="$1"; shift; /usr/bin/time -f "$l %e %U %S" -a -o "$W/times" "$@"; }
: > "$W/times"; : > "$W/sizes"

echo "== part 2: full backups at ${SETTINGS[*]}, and pgBackRest zst; $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  for s in "${SETTINGS[@]}"; do
    R="$W/repo"; rm -rf "$R" "$R-evidence" "$R-evidence.key"
    as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" "$CAIRN" --repo "$R" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
    cat > "$W/cairn.yaml" <<Y
compression: $s
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=55437"
    data_directory: $W/pg/data
Y
    chown postgres: "$W/cairn.yaml"
    quiesce "CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $R wal-push %p --database bench"
    timed "$s" runuser -u postgres -- env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$R" CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN" backup bench --physical --full > "$W/out.txt"
    archiver true
    echo "$s $(( $(size_of "$R") - $(size_of "$R/wal") ))" >> "$W/sizes"
  done
  rm -rf "$W/pgbr"; as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench stanza-create >/dev/null
  quiesce "pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push %p"
  timed pgbackrest-zst runuser -u postgres -- pgbackrest --config="$W/pgbr.conf" --stanza=bench --type=full backup
  archiver true
  echo "pgbackrest-zst $(( $(size_of "$W/pgbr") - $(size_of "$W/pgbr/archive") ))" >> "$W/sizes"
done

echo
echo "scale $SCALE, $ROUNDS rounds; cluster: $CLUSTER bytes (pg_wal excluded); CPU = user + sys seconds (/usr/bin/time); $("$CAIRN" --version | head -1)"
machine
python3 - "$W/times" "$W/sizes" "$CLUSTER" "${SETTINGS[@]}" <<'PY'
import sys, statistics as st
times, sizes, cluster, settings = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
t, s = {}, {}
for line in open(times):
    p = line.split()
    if len(p) == 4 and not p[0].startswith('Command'):
        t.setdefault(p[0], []).append((float(p[1]), float(p[2]) + float(p[3])))
for line in open(sizes):
    k, v = line.split(); s.setdefault(k, []).append(int(v))
gb = cluster / 1e9
ref = 'pgbackrest-zst'
print("| tool | wall s (each round) | median wall s | CPU s (each round) | median CPU s per GB | stored bytes (no WAL) | size / pgBackRest zst | wall / pgBackRest zst |")
print("|---|---|---|---|---|---|---|---|")
for k in settings + [ref]:
    if k not in t: continue
    walls = [w for w, _ in t[k]]; cpus = [c for _, c in t[k]]
    size = s[k][-1]
    print(f"| {'cairn ' + k if k != ref else k} | {' / '.join(f'{w:.2f}' for w in walls)} | {st.median(walls):.2f} | {' / '.join(f'{c:.2f}' for c in cpus)} | {st.median(cpus) / gb:.2f} | {size} | {size / s[ref][-1]:.3f} | {st.median(walls) / st.median(w for w, _ in t[ref]):.2f} |")
PY
