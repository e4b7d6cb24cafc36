#!/usr/bin/env bash
# Scale with history (issue 18): a repository holding SNAPSHOTS backups (half physical, half logical, over DATABASES
# databases, three years) and WAL_OBJECTS archived WAL files, generated in minutes through the repository engine
# (bench/Cairn.Bench scale-generate: real sealed manifests and WAL objects, not real backups). Then the commands that
# read the whole history, each run twice, with wall time and peak memory (GNU time's maximum resident set size):
# snapshots, check, verify (structure), prune --dry-run, and restore's planning for a PITR target (choose the backup,
# check the WAL from its start; in-process, the operation's own code, since restore has no dry run).
# Usage: bench/scale.sh [SNAPSHOTS] [WAL_OBJECTS] [DATABASES] [CHUNKS_PER_BACKUP]   (default 1000 100000 4 2000)
# SCALE_ONLY="snapshots check plan" runs only the commands whose label starts with one of those words (a busy machine:
# verify alone takes minutes). Exits non-zero if any command fails.
source "$(dirname "$0")/lib.sh"
SNAPS="${1:-1000}"; WALS="${2:-100000}"; DBS="${3:-4}"; CHUNKS="${4:-2000}"
CAIRN=$(cairn_binary)
dotnet build "$BENCH_ROOT/bench/Cairn.Bench" -c Release -nologo -clp:ErrorsOnly >/dev/null
BENCHDLL="$BENCH_ROOT/bench/Cairn.Bench/bin/Release/net10.0/Cairn.Bench.dll"
W="${BENCH_WORK:-/tmp/cairn-bench-scale}"
rm -rf "$W"; mkdir -p "$W"; chmod 700 "$W"
printf 'scale-bench-passphrase' > "$W/pass"; chmod 600 "$W/pass"
machine
echo "== generating $SNAPS snapshots and $WALS WAL objects over $DBS databases ($CHUNKS chunk references per backup)"
dotnet "$BENCHDLL" scale-generate "$W/repo" "$W/pass" "$DBS" "$SNAPS" "$WALS" "$CHUNKS"
{
  echo "databases:"
  for d in $(seq 1 "$DBS"); do
    printf '  db%s:\n    connection: "postgresql://postgres@/db%s?host=%s/nosocket&port=5432"\n' "$d" "$d" "$W"
    echo "    retention: { keep_last: 7, keep_daily: 30, keep_weekly: 8, keep_monthly: 12 }"
  done
  printf 'evidence:\n  path: %s/evidence\n' "$W"
} > "$W/cairn.yaml"
export CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_REPOSITORY="$W/repo" CAIRN_CONFIG="$W/cairn.yaml"
"$CAIRN" evidence init >/dev/null   # an empty log: check reads backup freshness from it (no records: CRITICAL, a state)
echo "repository: $(size_of "$W/repo") bytes; $(find "$W/repo/snapshots" -type f | wc -l) manifests, $(size_of "$W/repo/snapshots") bytes of them; $(find "$W/repo/wal" -type f | wc -l) WAL objects"

# measure LABEL OK_EXITS CMD...: two runs; prints seconds and peak RSS of each; fails on any exit not in OK_EXITS.
declare -A FIRST
measure() {
  local label="$1" ok="$2"; shift 2
  local line="" w found=0
  for w in ${SCALE_ONLY:-}; do [[ "$label" == "$w"* ]] && found=1; done
  if [ -n "${SCALE_ONLY:-}" ] && [ "$found" = 0 ]; then printf '%-44s skipped (SCALE_ONLY)\n' "$label"; FIRST[$label]=skipped; return 0; fi
  for r in 1 2; do
    local rc=0
    /usr/bin/time -f "%e %M" -o "$W/time.txt" "$@" > "$W/out.txt" 2> "$W/err.txt" || rc=$?
    if [[ " $ok " != *" $rc "* ]]; then echo "$label failed (exit $rc):" >&2; cat "$W/err.txt" "$W/out.txt" >&2; return 1; fi
    read -r secs kb < <(tail -1 "$W/time.txt")
    line+="$(printf '%6.2f s %5d MiB (exit %d)   ' "$secs" $((kb / 1024)) "$rc")"
    [ "$r" = 1 ] && FIRST[$label]=$secs
  done
  printf '%-44s %s\n' "$label" "$line"
  tail -3 "$W/out.txt" | sed 's/^/      | /'
}
echo
echo "== commands over the whole history (run 1, run 2)"
measure "snapshots" "0" "$CAIRN" snapshots
measure "snapshots db1" "0" "$CAIRN" snapshots db1
measure "check (freshness; exit 0-2 are states)" "0 1 2" "$CAIRN" check --json
measure "verify (structure)" "0" "$CAIRN" verify
measure "prune --dry-run" "0" "$CAIRN" prune --dry-run
MID=$(python3 -c "import datetime as d; print((d.datetime(2024,1,1)+d.timedelta(days=3*365/2)).strftime('%Y-%m-%d %H:%M:%S+00'))")
END=$(python3 -c "import datetime as d; print((d.datetime(2024,1,1)+d.timedelta(days=3*365-1)).strftime('%Y-%m-%d %H:%M:%S+00'))")
measure "plan: restore, PITR target mid-history" "0" dotnet "$BENCHDLL" scale-plan "$W/repo" "$W/pass" db1 "$MID"
measure "plan: restore, PITR target at the end" "0" dotnet "$BENCHDLL" scale-plan "$W/repo" "$W/pass" db1 "$END"
ratio_of() { if [ "${FIRST[$1]}" = skipped ]; then echo skipped; else ratio "${FIRST[$1]}" "$2"; fi; }
echo
echo "scale: $SNAPS snapshots, $WALS WAL objects, $DBS databases, $CHUNKS chunk references per backup"
machine
echo "ratio scale-snapshots-seconds/target = $(ratio_of "snapshots" 2)   (target: snapshots < 2 s)"
echo "ratio scale-check-seconds/target = $(ratio_of "check (freshness; exit 0-2 are states)" 2)   (target < 2 s)"
echo "ratio scale-restore-plan-seconds/target = $(ratio_of "plan: restore, PITR target mid-history" 2)   (target < 2 s)"
echo "ratio scale-prune-dry-run-seconds/target = $(ratio_of "prune --dry-run" 10)   (target < 10 s)"
