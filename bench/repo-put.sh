#!/usr/bin/env bash
# Benchmark: `cairn repo put` of a ~2 GB tar of a PostgreSQL data directory, against restic and zstd.
# Usage: bench/repo-put.sh [SIZE_GB]   (default 2). Prints a table with ratios; takes ~5–10 minutes.
source "$(dirname "$0")/lib.sh"
GB="${1:-2}"
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
bash "$BENCH_ROOT/scripts/publish" >/dev/null
CAIRN="$BENCH_ROOT/artifacts/cairn"
W="${BENCH_WORK:-/tmp/cairn-bench-put}"
if [ "${BENCH_REUSE:-0}" = 1 ] && [ -f "$W/data.tar" ]; then
  echo "== reusing $W/data.tar (BENCH_REUSE=1)"
  rm -rf "$W/cairn-repo" "$W/cairn-repo-evidence" "$W/cairn-repo-evidence.key" "$W/restic-repo"
else
  rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
  trap 'stop_pg "$W/pg"' EXIT
  echo "== building the test file (~${GB} GB tar of a PostgreSQL data directory)"
  start_pg "$W/pg" 55432
  "$PGBIN/pgbench" -i -q -s $((GB * 20)) postgres >/dev/null 2>&1
  load_realistic $((GB * 2200000))
  stop_pg "$W/pg"
  tar -C "$W/pg" --exclude="data/pg_wal/*" -cf "$W/data.tar" data
fi
FILE="$W/data.tar"; SIZE=$(stat -c %s "$FILE")
echo "file: $SIZE bytes"
cat "$FILE" > /dev/null  # warm the page cache so every tool reads from memory

echo "== zstd ceilings"
t0=$(now); zstd -1 -T1 -q -c "$FILE" > /dev/null; t1=$(now); Z1=$(elapsed $t0 $t1)
t0=$(now); zstd -1 -T2 -q -c "$FILE" > /dev/null; t1=$(now); Z2=$(elapsed $t0 $t1)

echo "== cairn repo put (first)"
printf 'bench-passphrase' > "$W/pass"; export CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-repo"
"$CAIRN" init >/dev/null
t0=$(now); "$CAIRN" repo put data.tar "$FILE" >/dev/null; t1=$(now); C1=$(elapsed $t0 $t1)
CR1=$(size_of "$W/cairn-repo")

echo "== restic backup --stdin (first)"
export RESTIC_PASSWORD_FILE="$W/pass" RESTIC_REPOSITORY="$W/restic-repo"
restic init -q >/dev/null
t0=$(now); restic backup -q --stdin --stdin-filename data.tar < "$FILE" >/dev/null; t1=$(now); R1=$(elapsed $t0 $t1)
RR1=$(size_of "$W/restic-repo")

echo "== changing ~1% the way database files change (two runs of 8 KB pages overwritten, 64 KB inserted mid-file)"
python3 - "$FILE" "$W/data2.tar" "$W/data3.tar" <<'PY'
import os, random, sys
src, dst, rnd = sys.argv[1], sys.argv[2], sys.argv[3]
data = bytearray(open(src, 'rb').read())
n = len(data); page = 8192; pages = n // page
rng = random.Random(7)
changed = int(pages * 0.01)
run = changed // 2
for start in (pages // 5, (pages * 3) // 5):
    for p in range(start, start + run):
        data[p*page:(p+1)*page] = rng.randbytes(page)
mid = n // 2
data[mid:mid] = rng.randbytes(65536)
open(dst, 'wb').write(data)
data = bytearray(open(src, 'rb').read())
for p in rng.sample(range(pages), changed):
    data[p*page:(p+1)*page] = rng.randbytes(page)
open(rnd, 'wb').write(data)
PY
cat "$W/data2.tar" "$W/data3.tar" > /dev/null

t0=$(now); "$CAIRN" repo put data.tar "$W/data2.tar" >/dev/null; t1=$(now); C2=$(elapsed $t0 $t1)
CR2=$(size_of "$W/cairn-repo")
t0=$(now); restic backup -q --stdin --stdin-filename data.tar < "$W/data2.tar" >/dev/null; t1=$(now); R2=$(elapsed $t0 $t1)
RR2=$(size_of "$W/restic-repo")
t0=$(now); "$CAIRN" repo put data.tar "$W/data3.tar" >/dev/null; t1=$(now); C3=$(elapsed $t0 $t1)
CR3=$(size_of "$W/cairn-repo")
t0=$(now); restic backup -q --stdin --stdin-filename data.tar < "$W/data3.tar" >/dev/null; t1=$(now); R3=$(elapsed $t0 $t1)
RR3=$(size_of "$W/restic-repo")

echo
echo "| measure | cairn | restic | zstd -1 -T1 | zstd -1 -T2 |"
echo "|---|---|---|---|---|"
echo "| first put, s | $C1 | $R1 | $Z1 | $Z2 |"
echo "| first put, MB/s | $(mbps $SIZE $C1) | $(mbps $SIZE $R1) | $(mbps $SIZE $Z1) | $(mbps $SIZE $Z2) |"
echo "| repository after first put, bytes | $CR1 | $RR1 | | |"
echo "| second put (runs + 64 KB insert), s | $C2 | $R2 | | |"
echo "| growth, bytes (% of file) | $((CR2-CR1)) ($(python3 -c "print(f'{100*($CR2-$CR1)/$SIZE:.2f}')")%) | $((RR2-RR1)) ($(python3 -c "print(f'{100*($RR2-$RR1)/$SIZE:.2f}')")%) | | |"
echo "| third put (1% random pages), s | $C3 | $R3 | | |"
echo "| growth, bytes (% of file) | $((CR3-CR2)) ($(python3 -c "print(f'{100*($CR3-$CR2)/$SIZE:.2f}')")%) | $((RR3-RR2)) ($(python3 -c "print(f'{100*($RR3-$RR2)/$SIZE:.2f}')")%) | | |"
echo
echo "ratios: first put cairn/restic throughput = $(ratio $R1 $C1)x (target >= 1.5); cairn vs zstd -1 -T2 = $(python3 -c "print(f'{100*$Z2/$C1:.0f}')")% (target >= 80%)"
echo "        second put speed-up over first = $(ratio $C1 $C2)x (target >= 2); growth $(python3 -c "print(f'{100*($CR2-$CR1)/$SIZE:.2f}')")% of the file (target < 5%)"
