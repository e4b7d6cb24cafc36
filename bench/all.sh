#!/usr/bin/env bash
# Runs the comparative benchmarks on the same machine, one after another, and prints every ratio at the end.
# Usage: bench/all.sh [SCALE]   (SCALE 1 = the documented ~2 GB data sets; 0.25 for a quick run on a busy machine)
# BENCH_ONLY="repo-put logical" to run a subset. Each script's full output goes to $BENCH_LOGS (default
# /tmp/cairn-bench-logs). Exits non-zero, and prints no ratio of it, if any benchmark fails.
source "$(dirname "$0")/lib.sh"
SCALE="${1:-1}"
LOGS="${BENCH_LOGS:-/tmp/cairn-bench-logs}"
mkdir -p "$LOGS"
CAIRN=$(cairn_binary)   # published once (BENCH_NO_PUBLISH=1: the existing artifacts/cairn); the scripts reuse it
export BENCH_NO_PUBLISH=1
echo "cairn: $("$CAIRN" --version 2>/dev/null | head -1)"
started=$(date -u +%FT%TZ)
machine | tee "$LOGS/machine.txt"
failed=()
for b in ${BENCH_ONLY:-repo-put logical physical}; do
  case "$b" in repo-put) arg=$(python3 -c "print(max(0.05, 2 * $SCALE))") ;; *) arg="$SCALE" ;; esac
  echo "== bench/$b.sh $arg ($(date -u +%T) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
  # Its own work folder (other people may run a single script at the same time with the default folder).
  if BENCH_WORK="$LOGS/work-$b" nice bash "$BENCH_ROOT/bench/$b.sh" "$arg" > "$LOGS/$b.log" 2>&1; then
    echo "   done $(date -u +%T) UTC"
  else
    echo "   FAILED (exit $?): see $LOGS/$b.log" >&2; tail -5 "$LOGS/$b.log" >&2; failed+=("$b")
  fi
done
echo
echo "Run $started to $(date -u +%FT%TZ), scale $SCALE, commit $(git -C "$BENCH_ROOT" rev-parse --short HEAD)"
machine
for b in ${BENCH_ONLY:-repo-put logical physical}; do
  [[ " ${failed[*]} " == *" $b "* ]] && { echo "$b: FAILED, no ratio"; continue; }
  grep -E '^ratio ' "$LOGS/$b.log" | sed "s/^/$b: /"
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
