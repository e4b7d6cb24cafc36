#!/usr/bin/env bash
# Benchmark: `cairn repo put` of a ~2 GB tar of a PostgreSQL data directory, against restic and zstd.
# Usage: bench/repo-put.sh [SIZE_GB]   (default 2; 0.5 for a quick run). Prints a table with ratios; ~5–10 minutes.
# Every tool reads the file from the page cache (warmed before each). Exits non-zero if any tool fails.
source "$(dirname "$0")/lib.sh"
GB="${1:-2}"
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
CAIRN=$(cairn_binary)
machine
W="${BENCH_WORK:-/tmp/cairn-bench-put}"
if [ "${BENCH_REUSE:-0}" = 1 ] && [ -f "$W/data.tar" ]; then
  echo "== reusing $W/data.tar (BENCH_REUSE=1)"
  rm -rf "$W/cairn-repo" "$W/cairn-repo-evidence" "$W/cairn-repo-evidence.key" "$W/restic-repo" "$W/cairn-fastkdf"*
else
  rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
  trap 'stop_pg "$W/pg"' EXIT
  echo "== building the test file (~${GB} GB tar of a PostgreSQL data directory)"
  start_pg "$W/pg" 55432
  "$PGBIN/pgbench" -i -q -s "$(scaled "$GB" 20)" postgres >/dev/null 2>&1
  load_realistic "$(scaled "$GB" 2200000)"
  stop_pg "$W/pg"
  tar -C "$W/pg" --exclude="data/pg_wal/*" -cf "$W/data.tar" data
fi
FILE="$W/data.tar"; SIZE=$(stat -c %s "$FILE")
echo "file: $SIZE bytes"

# cputime VAR CMD...: runs CMD under /usr/bin/time and sets VAR to its CPU seconds (user + sys): on a shared machine
# CPU time says what the work costs, wall time also what the load took away.
cputime() { local v="$1"; shift; /usr/bin/time -f "%U %S" -o "$W/cpu.txt" "$@"; printf -v "$v" '%s' "$(awk '{printf "%.2f", $1 + $2}' "$W/cpu.txt")"; }
echo "== zstd ceilings"
warm "$FILE"; t0=$(now); cputime Z1C zstd -1 -T1 -q -c "$FILE" > /dev/null; t1=$(now); Z1=$(elapsed $t0 $t1)
warm "$FILE"; t0=$(now); cputime Z2C zstd -1 -T2 -q -c "$FILE" > /dev/null; t1=$(now); Z2=$(elapsed $t0 $t1)

echo "== cairn repo put (first)"
printf 'bench-passphrase' > "$W/pass"; export CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/cairn-repo"
"$CAIRN" init >/dev/null
warm "$FILE"; t0=$(now); cputime C1C "$CAIRN" repo put data.tar "$FILE" >/dev/null; t1=$(now); C1=$(elapsed $t0 $t1)
CR1=$(size_of "$W/cairn-repo")
# The same first put into a repository whose key has a 1 MiB, 1-pass KDF (as a wal-push machine key): what the
# default Argon2id (64 MiB, 3 passes) adds to every command.
CAIRN_REPOSITORY="$W/cairn-fastkdf" "$CAIRN" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
warm "$FILE"; t0=$(now); cputime C1FC env CAIRN_REPOSITORY="$W/cairn-fastkdf" "$CAIRN" repo put data.tar "$FILE" >/dev/null; t1=$(now); C1F=$(elapsed $t0 $t1)

echo "== restic backup --stdin (first)"
export RESTIC_PASSWORD_FILE="$W/pass" RESTIC_REPOSITORY="$W/restic-repo"
restic init -q >/dev/null
warm "$FILE"; t0=$(now); cputime R1C restic backup -q --stdin --stdin-filename data.tar < "$FILE" >/dev/null; t1=$(now); R1=$(elapsed $t0 $t1)
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

warm "$W/data2.tar"; t0=$(now); "$CAIRN" repo put data.tar "$W/data2.tar" >/dev/null; t1=$(now); C2=$(elapsed $t0 $t1)
CR2=$(size_of "$W/cairn-repo")
warm "$W/data2.tar"; t0=$(now); restic backup -q --stdin --stdin-filename data.tar < "$W/data2.tar" >/dev/null; t1=$(now); R2=$(elapsed $t0 $t1)
RR2=$(size_of "$W/restic-repo")
warm "$W/data3.tar"; t0=$(now); "$CAIRN" repo put data.tar "$W/data3.tar" >/dev/null; t1=$(now); C3=$(elapsed $t0 $t1)
CR3=$(size_of "$W/cairn-repo")
warm "$W/data3.tar"; t0=$(now); restic backup -q --stdin --stdin-filename data.tar < "$W/data3.tar" >/dev/null; t1=$(now); R3=$(elapsed $t0 $t1)
RR3=$(size_of "$W/restic-repo")

echo
echo "file: $SIZE bytes"
machine
echo "| measure | cairn | restic | zstd -1 -T1 | zstd -1 -T2 |"
echo "|---|---|---|---|---|"
echo "| first put, s | $C1 | $R1 | $Z1 | $Z2 |"
echo "| first put, MB/s | $(mbps $SIZE $C1) | $(mbps $SIZE $R1) | $(mbps $SIZE $Z1) | $(mbps $SIZE $Z2) |"
echo "| first put with a 1 MiB / 1-pass KDF key, s (MB/s) | $C1F ($(mbps $SIZE $C1F)) | | | |"
echo "| first put, CPU s (user + sys) per GB | $(python3 -c "print(f'{$C1C/($SIZE/1e9):.2f}')") ($(python3 -c "print(f'{$C1FC/($SIZE/1e9):.2f}')") fast KDF) | $(python3 -c "print(f'{$R1C/($SIZE/1e9):.2f}')") | $(python3 -c "print(f'{$Z1C/($SIZE/1e9):.2f}')") | $(python3 -c "print(f'{$Z2C/($SIZE/1e9):.2f}')") |"
echo "| repository after first put, bytes | $CR1 | $RR1 | | |"
echo "| second put (runs + 64 KB insert), s | $C2 | $R2 | | |"
echo "| growth, bytes (% of file) | $((CR2-CR1)) ($(python3 -c "print(f'{100*($CR2-$CR1)/$SIZE:.2f}')")%) | $((RR2-RR1)) ($(python3 -c "print(f'{100*($RR2-$RR1)/$SIZE:.2f}')")%) | | |"
echo "| third put (1% random pages), s | $C3 | $R3 | | |"
echo "| growth, bytes (% of file) | $((CR3-CR2)) ($(python3 -c "print(f'{100*($CR3-$CR2)/$SIZE:.2f}')")%) | $((RR3-RR2)) ($(python3 -c "print(f'{100*($RR3-$RR2)/$SIZE:.2f}')")%) | | |"
echo
echo "ratio put-throughput cairn/restic = $(ratio $R1 $C1)   (target >= 1.5)"
echo "ratio put-throughput cairn/zstd-1-T2 = $(ratio $Z2 $C1)   (issue 18 target >= 0.85); with the fast-KDF key $(ratio $Z2 $C1F)"
echo "ratio second-put-speedup first/second = $(ratio $C1 $C2)   (target >= 2)"
echo "ratio second-put-growth/file = $(python3 -c "print(f'{($CR2-$CR1)/$SIZE:.4f}')")   (target < 0.05)"
