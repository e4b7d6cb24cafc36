#!/usr/bin/env bash
# Sanity figure, not a benchmark of S3: put and get of one item (default 200 MB) through the repository
# engine on a local folder and on s3rver (npm) on 127.0.0.1, with the ratio. s3rver is a slow
# single-threaded reference server (Node, files on disk), not AWS; the ratio bounds the engine's S3 path.
# Usage: bench/s3-storage.sh [SIZE_MB]
source "$(dirname "$0")/lib.sh"
source "$BENCH_ROOT/scripts/lib.sh"
need_s3rver
SIZE_MB="${1:-200}"
W="${BENCH_WORK:-/tmp/cairn-bench-s3}"
rm -rf "$W"; mkdir -p "$W/s3rver" "$W/folder"
node --openssl-legacy-provider "$BENCH_ROOT/artifacts/node/node_modules/s3rver/bin/s3rver.js" \
  --directory "$W/s3rver" --address 127.0.0.1 --port 0 --silent --no-vhost-buckets --configure-bucket cairn-bench > "$W/s3rver.log" 2>&1 &
S3PID=$!
trap 'kill $S3PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening" "$W/s3rver.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$W/s3rver.log")
[ -n "$PORT" ] || { echo "s3rver did not start: $(cat "$W/s3rver.log")" >&2; exit 1; }
dotnet build "$BENCH_ROOT/bench/Cairn.Bench" -c Release -nologo -clp:ErrorsOnly >/dev/null
echo "== put/get of ${SIZE_MB} MB: folder $W/folder vs s3rver at 127.0.0.1:$PORT"
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
  dotnet "$BENCH_ROOT/bench/Cairn.Bench/bin/Release/net10.0/Cairn.Bench.dll" s3-storage "http://127.0.0.1:$PORT" cairn-bench "$W/folder" "$SIZE_MB"
