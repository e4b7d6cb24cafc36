#!/usr/bin/env bash
# wal-push and wal-fetch, one process per segment as archive_command/restore_command run them, into a local
# folder and into s3rver (npm, 127.0.0.1): segments per second and the ratio. Segments are 16 MiB, half random
# (incompressible) and half zeros, like WAL of a write-heavy server after zstd. Not a test; a measurement.
# Usage: bench/s3-walpush.sh [SEGMENTS]
source "$(dirname "$0")/lib.sh"
source "$BENCH_ROOT/scripts/lib.sh"
need_s3rver
N="${1:-20}"
W="${BENCH_WORK:-/tmp/cairn-bench-walpush}"
rm -rf "$W"; mkdir -p "$W/s3rver" "$W/seg" "$W/out"
node --openssl-legacy-provider "$BENCH_ROOT/artifacts/node/node_modules/s3rver/bin/s3rver.js" \
  --directory "$W/s3rver" --address 127.0.0.1 --port 0 --silent --no-vhost-buckets --configure-bucket cairn-bench > "$W/s3rver.log" 2>&1 &
S3PID=$!
trap 'kill $S3PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening" "$W/s3rver.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$W/s3rver.log")
[ -n "$PORT" ] || { echo "s3rver did not start: $(cat "$W/s3rver.log")" >&2; exit 1; }
dotnet build "$BENCH_ROOT/src/Cairn.Cli" -c Release -nologo -clp:ErrorsOnly >/dev/null
CAIRN="${CAIRN_BIN:-dotnet $BENCH_ROOT/src/Cairn.Cli/bin/Release/net10.0/cairn.dll}"
for i in $(seq 1 "$N"); do
  name=$(printf '0000000100000000000000%02X' "$i")
  { head -c 8388608 /dev/urandom; head -c 8388608 /dev/zero; } > "$W/seg/$name"
done
printf 'bench passphrase\n' > "$W/pass"; chmod 600 "$W/pass"
printf '[default]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' > "$W/cred"; chmod 600 "$W/cred"
printf 's3:\n  endpoint: "http://127.0.0.1:%s"\n  credentials_file: %s\nevidence:\n  path: %s\n' "$PORT" "$W/cred" "$W/evidence" > "$W/cairn.yaml"
export CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn.yaml"
uptime
for repo in "$W/folder" "s3://cairn-bench/wal"; do
  $CAIRN --repo "$repo" init --kdf-memory-mib 8 --kdf-iterations 1 >/dev/null
  start=$(date +%s.%N)
  for f in "$W"/seg/*; do $CAIRN --repo "$repo" wal-push "$f" --database app >/dev/null; done
  push=$(echo "$(date +%s.%N) - $start" | bc)
  start=$(date +%s.%N)
  for f in "$W"/seg/*; do $CAIRN --repo "$repo" wal-fetch "$(basename "$f")" "$W/out/x" --database app >/dev/null; done
  fetch=$(echo "$(date +%s.%N) - $start" | bc)
  printf '%-28s wal-push %5.1f segments/s (%5.0f ms each)   wal-fetch %5.1f segments/s (%5.0f ms each)\n' "$repo" \
    "$(echo "$N / $push" | bc -l)" "$(echo "$push * 1000 / $N" | bc -l)" "$(echo "$N / $fetch" | bc -l)" "$(echo "$fetch * 1000 / $N" | bc -l)"
done
