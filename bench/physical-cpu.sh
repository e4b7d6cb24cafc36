#!/usr/bin/env bash
# Benchmark: CPU seconds per GB of a physical full backup (`cairn backup NAME --physical --full`), for two Cairn
# builds side by side, against pgBackRest zst (process-max 2) and the compression line (`zstd -1 -T2` / `-T1` of a tar
# of the same data directory). CPU time (user + sys, from /usr/bin/time) depends far less on the machine's load than
# wall time does, so this is the figure to compare on a shared machine; wall times are printed too, with the load.
# Usage: bench/physical-cpu.sh [SCALE] [ROUNDS]   (SCALE as bench/physical.sh: 0.5 ≈ 1.24 GB; ROUNDS default 3)
#   BENCH_CAIRN=PATH        the build under test (default: artifacts/cairn, published unless BENCH_NO_PUBLISH=1)
#   BENCH_CAIRN_BASE=PATH   the build to compare with (e.g. main's artifacts/cairn copied aside); optional
#   BENCH_REUSE=1           reuse the cluster left by an earlier run in BENCH_WORK (it is kept running at the end
#                           when BENCH_KEEP=1)
# Each backup goes into a fresh repository (so each is a full backup of everything) with its own archive_command.
source "$(dirname "$0")/lib.sh"
SCALE="${1:-0.5}"; ROUNDS="${2:-3}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
W="${BENCH_WORK:-/tmp/cairn-bench-physcpu}"
declare -A BIN
BIN[new]=$(cairn_binary)
[ -n "${BENCH_CAIRN_BASE:-}" ] && BIN[base]="$BENCH_CAIRN_BASE"
physical_cluster "$SCALE" 55436
head -c 32 /dev/urandom | base64 > "$W/pass"; chown postgres: "$W/pass"; chmod 600 "$W/pass"
for k in "${!BIN[@]}"; do cp "${BIN[$k]}" "$W/cairn-$k"; chown postgres: "$W/cairn-$k"; done
CLUSTER=$(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1)
echo "cluster: $CLUSTER bytes (without pg_wal)"
machine
pgbr_conf "$W/pgbr.conf" 55436 zst "repo1-path=$W/pgbr"
cat > "$W/cairn.yaml" <<Y
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=55436"
    data_directory: $W/pg/data
Y
chown postgres: "$W/pgbr.conf" "$W/cairn.yaml"; chmod 600 "$W/pgbr.conf"

# timed LABEL CMD...: runs CMD, appends "LABEL wall user sys" to $W/times
timed() { local l="$1"; shift; /usr/bin/time -f "$l %e %U %S" -a -o "$W/times" "$@"; }
: > "$W/times"; : > "$W/sizes"

echo "== compression line: tar of the data directory (pg_wal excluded), zstd -1"
tar -C "$W/pg" --exclude="data/pg_wal/*" -cf "$W/data.tar" data
for r in $(seq "$ROUNDS"); do
  warm "$W/data.tar"; timed zstd-T2 zstd -1 -T2 -q -c "$W/data.tar" > "$W/z.zst"
  warm "$W/data.tar"; timed zstd-T1 zstd -1 -T1 -q -c "$W/data.tar" > /dev/null
done
echo "zstd-1 $(stat -c %s "$W/z.zst")" >> "$W/sizes"; rm -f "$W/data.tar" "$W/z.zst"

echo "== full backups, $ROUNDS rounds"
KEYS=($(printf '%s\n' "${!BIN[@]}" | sort)); REV=($(printf '%s\n' "${!BIN[@]}" | sort -r))
for r in $(seq "$ROUNDS"); do
  # The two builds alternate which goes first (base first in odd rounds), so neither always follows pgBackRest.
  if [ $((r % 2)) = 1 ]; then ORDER=("${KEYS[@]}"); else ORDER=("${REV[@]}"); fi
  for k in "${ORDER[@]}"; do
    rm -rf "$W/repo-$k" "$W/repo-$k-evidence" "$W/repo-$k-evidence.key"
    as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" "$W/cairn-$k" --repo "$W/repo-$k" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
    quiesce "CAIRN_PASSPHRASE_FILE=$W/pass $W/cairn-$k --repo $W/repo-$k wal-push %p --database bench"
    timed "cairn-$k" runuser -u postgres -- env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/repo-$k" CAIRN_CONFIG="$W/cairn.yaml" "$W/cairn-$k" backup bench --physical --full > "$W/out-$k.txt"
    archiver true
    echo "cairn-$k $(( $(size_of "$W/repo-$k") - $(size_of "$W/repo-$k/wal") ))" >> "$W/sizes"
  done
  rm -rf "$W/pgbr"; as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench stanza-create >/dev/null
  quiesce "pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push %p"
  timed pgbackrest-zst runuser -u postgres -- pgbackrest --config="$W/pgbr.conf" --stanza=bench --type=full backup
  archiver true
  echo "pgbackrest-zst $(( $(size_of "$W/pgbr") - $(size_of "$W/pgbr/archive") ))" >> "$W/sizes"
done
for k in "${!BIN[@]}"; do echo "-- cairn-$k output (last round)"; cat "$W/out-$k.txt"; done

echo
echo "scale $SCALE, $ROUNDS rounds; cluster: $CLUSTER bytes (pg_wal excluded); CPU = user + sys seconds (/usr/bin/time)"
machine
python3 - "$W/times" "$W/sizes" "$CLUSTER" <<'PY'
import sys, statistics as st
times, sizes, cluster = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = {}
for line in open(times):
    p = line.split()
    if len(p) == 4 and not p[0].startswith('Command'):
        t.setdefault(p[0], []).append((float(p[1]), float(p[2]) + float(p[3])))
s = {}
for line in open(sizes):
    k, v = line.split(); s.setdefault(k, []).append(int(v))
gb = cluster / 1e9
print("| tool | wall s (each round) | median wall s | CPU s (each round) | median CPU s per GB | stored bytes (no WAL) |")
print("|---|---|---|---|---|---|")
med = {}
for k in sorted(t):
    walls = [w for w, _ in t[k]]; cpus = [c for _, c in t[k]]
    med[k] = (st.median(walls), st.median(cpus) / gb)
    print(f"| {k} | {' / '.join(f'{w:.2f}' for w in walls)} | {med[k][0]:.2f} | {' / '.join(f'{c:.2f}' for c in cpus)} | {med[k][1]:.2f} | {s.get(k, [''])[-1]} |")
def ratio(a, b, i):
    return f"{med[a][i] / med[b][i]:.2f}" if a in med and b in med else "n/a"
for k in [k for k in med if k.startswith('cairn-')]:
    print(f"ratio {k} wall / pgbackrest-zst wall = {ratio(k, 'pgbackrest-zst', 0)}   (issue 18 target <= 0.5)")
    print(f"ratio {k} wall / zstd-1-T2 wall = {ratio(k, 'zstd-T2', 0)}   (issue 18 target <= 1.25)")
    print(f"ratio {k} CPU / zstd-1-T1 CPU = {ratio(k, 'zstd-T1', 1)}")
    if k in s and 'pgbackrest-zst' in s:
        print(f"ratio {k} size / pgbackrest-zst size = {s[k][-1] / s['pgbackrest-zst'][-1]:.3f}   (target <= 1.0)")
if 'cairn-new' in med and 'cairn-base' in med:
    print(f"ratio CPU per GB new/base = {ratio('cairn-new', 'cairn-base', 1)}; wall new/base = {ratio('cairn-new', 'cairn-base', 0)}")
PY
