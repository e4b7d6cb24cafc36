# Shared helpers for scripts/*: install what Cairn needs on a fresh Debian machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# apt packages: PostgreSQL server + client programs (scratch servers, pg_dump), zstd and restic
# (benchmarks), python3-cryptography (independent Ed25519 check of evidence checkpoints).
need_packages() {
  local missing=()
  command -v dotnet >/dev/null || { echo "scripts: the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
  command -v zstd >/dev/null || missing+=(zstd)
  /usr/bin/python3 -c 'import cryptography' >/dev/null 2>&1 || missing+=(python3 python3-cryptography)
  for p in "$@"; do command -v "$p" >/dev/null || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "scripts: installing ${missing[*]} (apt)" >&2
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "scripts: missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
}

# s3rver (npm), the S3-compatible server the tests start on 127.0.0.1: installed from the lock file in
# tests/s3rver into artifacts/node (again whenever the lock file changes). Needs node and npm.
need_s3rver() {
  local dest="$ROOT/artifacts/node"
  if [ -f "$dest/node_modules/s3rver/bin/s3rver.js" ] && cmp -s "$ROOT/tests/s3rver/package-lock.json" "$dest/package-lock.json"; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      echo "scripts: installing nodejs npm (apt)" >&2
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    else
      echo "scripts: node and npm are needed for the S3 tests; install them with: sudo apt-get install nodejs npm" >&2
      exit 1
    fi
  fi
  echo "scripts: installing s3rver (npm) into artifacts/node" >&2
  mkdir -p "$dest"
  cp "$ROOT/tests/s3rver/package.json" "$ROOT/tests/s3rver/package-lock.json" "$dest/"
  npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error >/dev/null
}
