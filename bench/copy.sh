#!/usr/bin/env bash
# Benchmark: cairn copy of a small repository, folder to folder. One cluster with two databases (bench: the realistic
# schema; crm: a second one), a logical backup of each and a physical backup of the cluster, WAL archived by Cairn.
# Then, each into a fresh folder: the byte copy of everything (same keys), a copy of one database (--database bench,
# blob level, same keys), a re-encrypting copy of everything into a repository initialised with another passphrase,
# and that copy run again (nothing new). Peers: cp -a of the repository folder (the floor), and restic copy between
# two restic repositories with different passwords (restic re-encrypts too; its repository holds a file-level backup
# of the same data directory, so compare MB/s, not seconds).
# Usage: bench/copy.sh [SCALE]   (SCALE 1 ≈ 1,000,000 rows in bench; 0.2 for a quick run on a busy machine)
source "$(dirname "$0")/lib.sh"
SCALE="${1:-1}"
ROWS=$(scaled "$SCALE" 1000000)
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-copy}"
stop_pg "$W/pg"; rm -rf "$W"; mkdir -p "$W"
CAIRN="$W/cairn"; cp "$SRC_CAIRN" "$CAIRN"
head -c 32 /dev/urandom | base64 > "$W/pass"
head -c 32 /dev/urandom | base64 > "$W/pass2"
chown -R postgres: "$W"; chmod 700 "$W"; chmod 600 "$W/pass" "$W/pass2"
trap 'stop_pg "$W/pg"' EXIT
run() { as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn.yaml" "$CAIRN" "$@"; }
machine
echo "scale $SCALE: $ROWS rows in bench, $((ROWS / 2)) in crm"

REPO="$W/repo"
cat > "$W/cairn.yaml" <<Y
repository: $REPO
databases:
  bench: { connection: "host=$W/pg/sock port=55441 user=postgres dbname=postgres", data_directory: $W/pg/data }
  crm: { connection: "host=$W/pg/sock port=55441 user=postgres dbname=crm" }
Y
chown postgres: "$W/cairn.yaml"
run --repo "$REPO" init --kdf-memory-mib 64 >/dev/null
start_pg "$W/pg" 55441 "-c full_page_writes=on -c wal_level=replica -c archive_mode=on"
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'CAIRN_PASSPHRASE_FILE=$W/pass $CAIRN --repo $REPO wal-push %p --database bench'" -c "SELECT pg_reload_conf()" postgres >/dev/null
load_realistic "$ROWS"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE crm"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 -d crm -c "CREATE TABLE accounts AS SELECT g AS id, md5(g::text) AS name, repeat(md5((g * 7)::text), 4) AS notes FROM generate_series(1, $((ROWS / 2))) g"
run backup bench >/dev/null
run backup crm >/dev/null
run backup bench --physical >/dev/null
"$PGBIN/psql" -q -d postgres -c "SELECT pg_switch_wal()" >/dev/null; sleep 2
echo "primary: $(size_of "$REPO") bytes ($(du -sb "$REPO/data" | cut -f1) in packs, $(ls "$REPO/wal" | wc -l) WAL files)"

# timed NAME CMD...: wall time of one run, the copy's size, and the JSON summary's figures.
timed() {
  local name="$1" target="$2"; shift 2
  sync; local t0; t0=$(now)
  "$@" > "$W/$name.json"
  local t1; t1=$(now)
  local secs; secs=$(elapsed "$t0" "$t1")
  local bytes; bytes=$(size_of "$target")
  eval "T_$name=$secs; B_$name=$bytes"
  python3 - "$W/$name.json" "$name" "$secs" "$bytes" <<'PY'
import json, sys
path, name, secs, size = sys.argv[1:]
try:
    t = json.load(open(path))["targets"][0]
except Exception:
    t = {}
keys = ["objects_copied", "bytes_copied", "snapshots_copied", "blobs_copied", "bytes_read", "whole_pack_bytes"]
print(f"{name:<22} {float(secs):7.2f} s   copy holds {int(size)/1e6:8.1f} MB   " + "  ".join(f"{k}={t.get(k)}" for k in keys if k in t))
PY
}

echo "--- cairn copy (folder to folder)"
warm "$REPO"
timed byte_copy "$W/copy-all" run copy --to "$W/copy-all" --json
timed filtered_copy "$W/copy-bench" run copy --to "$W/copy-bench" --database bench --json
as_pg env CAIRN_PASSPHRASE_FILE="$W/pass2" "$CAIRN" --repo "$W/copy-other" init --kdf-memory-mib 64 >/dev/null
timed reencrypt_copy "$W/copy-other" run copy --to "$W/copy-other" --to-passphrase-file "$W/pass2" --json
timed reencrypt_again "$W/copy-other" run copy --to "$W/copy-other" --to-passphrase-file "$W/pass2" --json
timed filtered_reencrypt "$W/copy-other-bench" bash -c "as_pg() { if [ \"\$(id -u)\" = 0 ]; then runuser -u postgres -- \"\$@\"; else \"\$@\"; fi; }; as_pg env CAIRN_PASSPHRASE_FILE=$W/pass2 $CAIRN --repo $W/copy-other-bench init --kdf-memory-mib 64 >/dev/null && as_pg env CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn.yaml $CAIRN copy --to $W/copy-other-bench --to-passphrase-file $W/pass2 --database bench --json"
echo "--- peers"
sync; t0=$(now); cp -a "$REPO" "$W/cp-copy"; t1=$(now); T_cp=$(elapsed "$t0" "$t1")
echo "cp -a (the floor)      $T_cp s   $(size_of "$W/cp-copy") bytes"
export RESTIC_PASSWORD_FILE="$W/pass" RESTIC_CACHE_DIR="$W/restic-cache"
restic init -q --repo "$W/restic-a"
"$PGBIN/psql" -q -d postgres -c "CHECKPOINT" >/dev/null
restic backup -q --repo "$W/restic-a" "$W/pg/data" >/dev/null 2>&1 || true   # a live data directory: files change while read (throughput only)
RESTIC_PASSWORD_FILE="$W/pass2" restic init -q --repo "$W/restic-b"
sync; t0=$(now)
RESTIC_PASSWORD_FILE="$W/pass2" restic copy -q --repo "$W/restic-b" --from-repo "$W/restic-a" --from-password-file "$W/pass" >/dev/null
t1=$(now); T_restic=$(elapsed "$t0" "$t1")
echo "restic copy (re-encrypts) $T_restic s   source $(size_of "$W/restic-a") bytes, copy $(size_of "$W/restic-b") bytes"

echo "--- ratios (throughput in MB of the copy per second)"
echo "byte copy:          $(mbps "$B_byte_copy" "$T_byte_copy") MB/s; $(ratio "$T_byte_copy" "$T_cp")x cp -a's time"
echo "re-encrypting copy: $(mbps "$B_reencrypt_copy" "$T_reencrypt_copy") MB/s; $(ratio "$T_reencrypt_copy" "$T_byte_copy")x the byte copy's time"
echo "restic copy:        $(mbps "$(size_of "$W/restic-b")" "$T_restic") MB/s"
echo "filtered copy:      $(ratio "$B_filtered_copy" "$B_byte_copy")x the byte copy's size, $(ratio "$T_filtered_copy" "$T_byte_copy")x its time"
echo "copy run again (nothing new, re-encrypting target): $T_reencrypt_again s"
machine
