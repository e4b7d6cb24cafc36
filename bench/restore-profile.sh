#!/usr/bin/env bash
# Where a physical restore's time goes: after bench/physical.sh (its work folder kept: BENCH_WORK), restores that
# repository's newest backup from a cold page cache, alternating builds with `pgbackrest restore`, ROUNDS times, under
# /usr/bin/time (wall, user, sys); then once under `strace -c -f` (system calls) and once under `perf record -g`
# (where the CPU goes, by library and kernel symbol), with the first build.
# Usage: bench/restore-profile.sh WORK_FOLDER ROUNDS CAIRN [CAIRN_BEFORE]
# After bench/page-incr.sh (BENCH_KEEP=1 BENCH_WORK=$W): REPO=cairn-patches PGBR_CONF=pgbr.conf (restores the newest
# backup: the patched incremental, and pgBackRest's incremental).
source "$(dirname "$0")/lib.sh"
W="$1"; ROUNDS="${2:-3}"; NEW="$3"; OLD="${4:-}"
REPO="${REPO:-cairn-repo}"; PGBR_CONF="${PGBR_CONF:-pgbr-zst.conf}"
[ -d "$W/$REPO" ] || { echo "$W/$REPO is missing: run bench/physical.sh (or bench/page-incr.sh with BENCH_KEEP=1) with BENCH_WORK=$W first" >&2; exit 2; }
machine
restore() {  # LABEL PREFIX... : a cold-cache restore into $W/r
  local label="$1"; shift
  rm -rf "$W/r"; sleep 6; cold   # 6 s: ext4 skips inodes freed in the last seconds when it allocates new ones
  /usr/bin/time -f "$label %e s wall %U s user %S s sys %M KB" "$@" runuser -u postgres -- env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/$REPO" CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN_BIN" restore bench --physical --to "$W/r" --target immediate > /dev/null
}
pgbr() {
  rm -rf "$W/rp"; as_pg mkdir -m 700 "$W/rp"; sleep 6; cold
  /usr/bin/time -f "pgbackrest %e s wall %U s user %S s sys %M KB" runuser -u postgres -- pgbackrest --config="$W/$PGBR_CONF" --stanza=bench --pg1-path="$W/rp" --type=immediate restore
}
for r in $(seq "$ROUNDS"); do  # the two builds alternate which goes first (the new one in odd rounds)
  if [ $((r % 2)) = 1 ] || [ -z "$OLD" ]; then
    CAIRN_BIN="$NEW" restore "cairn"
    [ -n "$OLD" ] && CAIRN_BIN="$OLD" restore "cairn-before"
  else
    CAIRN_BIN="$OLD" restore "cairn-before"
    CAIRN_BIN="$NEW" restore "cairn"
  fi
  pgbr
done 2>&1

echo "== strace -c -f (cairn)"
CAIRN_BIN="$NEW" restore "cairn-under-strace" strace -c -f -o "$W/strace.txt" 2>&1; head -25 "$W/strace.txt" || true
echo "== perf record -g (cairn): samples by library, then the kernel's top symbols"
CAIRN_BIN="$NEW" restore "cairn-under-perf" perf record -q -F 2000 -g -o "$W/perf.data" -- 2>&1
perf report -i "$W/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8 || true
perf report -i "$W/perf.data" --no-children --sort sym --stdio -g none --dsos '[kernel.kallsyms]' 2>/dev/null | grep -E '^ +[0-9]' | head -15 || true
rm -rf "$W/r" "$W/rp" "$W/perf.data"
machine
