#!/usr/bin/env bash
# Benchmark: physical backups to S3. On one cluster (the physical benchmark's data): Cairn's full backup, a day-2
# incremental and a restore into a local folder and into s3rver; pgBackRest (repo1-type=s3) into the same s3rver;
# restic (file level, not a consistent PostgreSQL backup: throughput only) into the same s3rver.
# Usage: bench/s3.sh [SCALE]   (SCALE 1 ≈ 2 GB cluster; 0.25 for a quick run)
#        BENCH_S3_SERVER=ceph bench/s3.sh [SCALE]   the same against Ceph RADOS Gateway instead of s3rver: a throwaway
#        single-node cluster (scripts/ceph-cluster.sh; Debian's Ceph 16 packages, installed with apt) whose one OSD is
#        bluestore on a sparse file in the bench folder (BENCH_CEPH_STORE=memstore keeps objects in RAM instead), radosgw
#        over HTTPS with the same certificate. s3rver is a Node.js process writing one file per object; RGW is the
#        server a growing user runs, so the two rows tell what is Cairn's cost and what is the server's.
# pgBackRest speaks S3 only over TLS, so s3rver runs with a self-signed certificate for 127.0.0.1 (openssl, made
# here) and every tool talks HTTPS to it and verifies it: Cairn through s3.ca_file in cairn.yaml, pgBackRest with
# repo1-storage-ca-file, restic with --cacert. Not SSL_CERT_FILE for Cairn: where the environment sets AWS_CA_BUNDLE
# (this machine's does, to the public bundle) that is the AWS tools' CA list and wins, as in the AWS CLI; s3.ca_file
# wins over both. Each tool's backup runs with ITS OWN
# archive_command (as in bench/physical.sh). Everything PostgreSQL runs as postgres. Exits non-zero if any tool fails.
source "$(dirname "$0")/lib.sh"
source "$BENCH_ROOT/scripts/lib.sh"
set -E
trap 'rc=$?; echo "BENCH FAILED (exit $rc) at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2; exit $rc' ERR
SERVER="${BENCH_S3_SERVER:-s3rver}"
case "$SERVER" in
  s3rver) need_s3rver ;;
  ceph) source "$BENCH_ROOT/scripts/ceph-cluster.sh"; ceph_cluster_packages ;;
  *) echo "BENCH_S3_SERVER is 's3rver' (default) or 'ceph', not '$SERVER'" >&2; exit 2 ;;
esac
SCALE="${1:-1}"
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null
SRC_CAIRN=$(cairn_binary)
W="${BENCH_WORK:-/tmp/cairn-bench-s3}"
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
[ -f "$W/s3rver.pid" ] && kill "$(cat "$W/s3rver.pid")" 2>/dev/null || true
[ -d "$W/ceph/run" ] && { source "$BENCH_ROOT/scripts/ceph-cluster.sh"; ceph_cluster_stop "$W/ceph"; }
rm -rf "$W"; mkdir -p "$W/s3rver" "$W/tls" "$W/log" "$W/lock" "$W/spool" "$W/restic-cache"
CAIRN="$W/cairn"; cp "$SRC_CAIRN" "$CAIRN"
head -c 32 /dev/urandom | base64 > "$W/pass"

# DNS:localhost as well as IP:127.0.0.1: pgBackRest 2.45 matches the host only against the common name and DNS names,
# never an IP address entry ("unable to find hostname '127.0.0.1' in certificate …"), so it connects to localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$W/tls/key.pem" -out "$W/tls/cert.pem" >/dev/null 2>&1
if [ "$SERVER" = s3rver ]; then
  S3PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  node --openssl-legacy-provider "$BENCH_ROOT/artifacts/node/node_modules/s3rver/bin/s3rver.js" \
    --directory "$W/s3rver" --address 127.0.0.1 --port "$S3PORT" --silent --no-vhost-buckets \
    --key "$W/tls/key.pem" --cert "$W/tls/cert.pem" --configure-bucket bench > "$W/s3rver.log" 2>&1 &
  echo $! > "$W/s3rver.pid"
  trap 'stop_pg "$W/pg"; kill "$(cat "$W/s3rver.pid")" 2>/dev/null || true' EXIT
  ENDPOINT="https://127.0.0.1:$S3PORT"
  for _ in $(seq 100); do curl -s -o /dev/null --cacert "$W/tls/cert.pem" "$ENDPOINT" && break; sleep 0.1; done
  curl -s -o /dev/null --cacert "$W/tls/cert.pem" "$ENDPOINT" || { echo "s3rver did not start with TLS: $(cat "$W/s3rver.log")" >&2; exit 1; }
  S3_KEY=S3RVER; S3_SECRET=S3RVER
  SERVER_LABEL="s3rver $(node -p "require('$BENCH_ROOT/artifacts/node/node_modules/s3rver/package.json').version") over HTTPS on 127.0.0.1"
else
  CEPH_STORE="${BENCH_CEPH_STORE:-bluestore}"
  trap 'stop_pg "$W/pg"; ceph_cluster_stop "$W/ceph"' EXIT
  ceph_cluster_start "$W/ceph" "$CEPH_STORE" "$W/tls/cert.pem" "$W/tls/key.pem" || { echo "the Ceph cluster did not start" >&2; exit 1; }
  ENDPOINT="$CEPH_ENDPOINT"; S3PORT="${ENDPOINT##*:}"; S3_KEY="$CEPH_ACCESS"; S3_SECRET="$CEPH_SECRET"
  command -v aws >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends awscli >/dev/null
  AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "$ENDPOINT" --ca-bundle "$W/tls/cert.pem" s3api create-bucket --bucket bench >/dev/null \
    || { echo "could not create the bucket 'bench' on radosgw" >&2; exit 1; }
  SERVER_LABEL="Ceph RGW $(ceph --version | cut -d' ' -f3) (beast, HTTPS, one OSD on $CEPH_STORE) on 127.0.0.1"
fi
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$S3_KEY" "$S3_SECRET" > "$W/s3.credentials"
chown -R postgres: "$W"; chmod 700 "$W"; chmod 600 "$W/s3.credentials" "$W/pass"
run() { as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn.yaml" "$@"; }
# The S3 repository's evidence log needs a folder (it lives beside a repository only when that is a folder): same
# settings plus evidence.path, so each repository has its own log, as the local one has beside it.
run_s3() { as_pg env CAIRN_PASSPHRASE_FILE="$W/pass" CAIRN_CONFIG="$W/cairn-s3.yaml" "$@"; }
machine

pgbr_conf "$W/pgbr.conf" 55436 zst repo1-type=s3 repo1-s3-bucket=bench repo1-s3-endpoint=localhost "repo1-storage-port=$S3PORT" \
  repo1-s3-region=us-east-1 repo1-s3-uri-style=path "repo1-s3-key=$S3_KEY" "repo1-s3-key-secret=$S3_SECRET" \
  "repo1-storage-ca-file=$W/tls/cert.pem" repo1-path=/pgbackrest

LOCAL_REPO="$W/cairn-local"; S3_REPO="s3://bench/cairn"
ARCHIVE_LOCAL="CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn.yaml $CAIRN --repo $LOCAL_REPO wal-push %p --database bench"
ARCHIVE_S3="CAIRN_PASSPHRASE_FILE=$W/pass CAIRN_CONFIG=$W/cairn-s3.yaml $CAIRN --repo $S3_REPO wal-push %p --database bench"
ARCHIVE_PGBR="pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push %p"
as_pg mkdir -p "$W/pg"
# archive_command through ALTER SYSTEM, never -c: a command-line setting outranks postgresql.auto.conf, so the
# archiver() switches below would silently keep 'true' (and Cairn refuses to back up a server it does not archive).
start_pg "$W/pg" 55436 "-c full_page_writes=on -c wal_level=replica -c archive_mode=on"
"$PGBIN/psql" -q -c "ALTER SYSTEM SET archive_command = 'true'" -c "SELECT pg_reload_conf()" postgres >/dev/null
PGB_SCALE=$(scaled "$SCALE" 70); ROWS=$(scaled "$SCALE" 3200000)
echo "== loading (pgbench -s $PGB_SCALE + $ROWS realistic rows)"
"$PGBIN/pgbench" -i -q -s "$PGB_SCALE" postgres >/dev/null 2>&1
load_realistic "$ROWS"
"$PGBIN/psql" -q -c "VACUUM ANALYZE" -c "CHECKPOINT" postgres
CLUSTER=$(du -sb --exclude=pg_wal "$W/pg/data" | cut -f1)
echo "cluster: $CLUSTER bytes (without pg_wal)"

cat > "$W/cairn.yaml" <<Y
s3:
  endpoint: "$ENDPOINT"
  credentials_file: $W/s3.credentials
  ca_file: $W/tls/cert.pem
databases:
  bench:
    connection: "postgresql://postgres@/postgres?host=$W/pg/sock&port=55436"
    data_directory: $W/pg/data
Y
{ cat "$W/cairn.yaml"; echo "evidence: { path: $W/s3-evidence }"; } > "$W/cairn-s3.yaml"
chown postgres: "$W/cairn.yaml" "$W/cairn-s3.yaml"
run "$CAIRN" --repo "$LOCAL_REPO" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
run_s3 "$CAIRN" --repo "$S3_REPO" init --kdf-memory-mib 1 --kdf-iterations 1 >/dev/null
as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench stanza-create >/dev/null
export RESTIC_PASSWORD_FILE="$W/pass" AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" RESTIC_CACHE_DIR="$W/restic-cache"
RESTIC=(restic -q -r "s3:$ENDPOINT/bench/restic" --cacert "$W/tls/cert.pem" -o s3.bucket-lookup=path)
RESTIC_OK=1
"${RESTIC[@]}" init >/dev/null 2>"$W/restic-init.err" || { RESTIC_OK=0; echo "restic cannot use this S3 server (left out): $(tail -3 "$W/restic-init.err")"; }

timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); elapsed "$t0" "$t1"; }
# CPU seconds (user + system) the S3 server's processes have used so far: s3rver's node, or every Ceph daemon.
server_pids() { if [ "$SERVER" = s3rver ]; then cat "$W/s3rver.pid"; else cat "$W"/ceph/run/*.pid; fi; }
server_cpu() { local t=0 p; for p in $(server_pids); do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; python3 -c "print($t / $(getconf CLK_TCK))"; }
# cputimed LABEL CMD…: as timed, and appends "LABEL wall client-CPU server-CPU" to $W/cpu.tsv (client = the command and
# its children, from bash's `times` in the caller's $(…) subshell, whose only child the command is; server = the S3
# server's processes over the same interval).
cputimed() {
  local label="$1" t0 t1 s0 s1; shift
  s0=$(server_cpu); t0=$(now)
  times > "$W/times.before"
  "$@" >/dev/null
  times > "$W/times.after"
  t1=$(now); s1=$(server_cpu)
  local wall; wall=$(elapsed "$t0" "$t1")
  python3 - "$W/times.before" "$W/times.after" "$label" "$wall" "$s0" "$s1" >> "$W/cpu.tsv" <<'PY'
import re, sys
def children(path):
    line = open(path).read().strip().split("\n")[-1]
    return sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", line))
cpu = children(sys.argv[2]) - children(sys.argv[1])
print(f"{sys.argv[3]}\t{sys.argv[4]}\t{cpu:.2f}\t{float(sys.argv[6]) - float(sys.argv[5]):.2f}")
PY
  echo "$wall"
}
restic_backup() { "${RESTIC[@]}" backup --exclude "$W/pg/data/pg_wal" "$W/pg/data"; }

round() {  # round LABEL: one backup per tool (full the first time, incremental the second)
  local kind="$1" pgtype="$2"
  quiesce "$ARCHIVE_LOCAL"; CL[$kind]=$(cputimed "cairn folder $kind backup" run "$CAIRN" --repo "$LOCAL_REPO" backup bench --physical)
  quiesce "$ARCHIVE_S3";    CS[$kind]=$(cputimed "cairn S3 $kind backup" run_s3 "$CAIRN" --repo "$S3_REPO" backup bench --physical)
  quiesce "$ARCHIVE_PGBR";  PB[$kind]=$(cputimed "pgBackRest S3 $kind backup" as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench --type="$pgtype" backup)
  quiesce "true"
  if [ $RESTIC_OK = 1 ]; then RS[$kind]=$(timed restic_backup); else RS[$kind]="n/a"; fi
}
declare -A CL CS PB RS
echo "== full backups"
round full full
echo "== a day of typical change (as bench/physical.sh)"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 postgres <<'SQL'
INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT a + (SELECT max(aid) FROM pgbench_accounts), 1, 0, repeat(' ', 84) FROM generate_series(1, (SELECT count(*) / 100 FROM pgbench_accounts)) a;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > (SELECT max(aid) - count(*) / 200 FROM pgbench_accounts);
INSERT INTO customers SELECT id + (SELECT max(id) FROM customers), uid, email, name, country, plan, meta, balance, now() FROM customers WHERE id % 100 = 0;
UPDATE customers SET balance = balance + 1 WHERE id > (SELECT max(id) - count(*) / 200 FROM customers);
DELETE FROM customers WHERE id % 9973 = 0;
CHECKPOINT;
SQL
echo "== incremental backups"
round incr incr
archiver "true"

echo "== restores (files only, the server is not started), each from a cold page cache"
# Each restore is checked and removed before the next: four copies of the cluster at once can fill a small disk.
restored() { [ -f "$W/$1/PG_VERSION" ] || { echo "restore into $1 produced no data directory" >&2; exit 1; }; rm -rf "${W:?}/$1"; }
cold; R_CL=$(cputimed "cairn folder restore" run "$CAIRN" --repo "$LOCAL_REPO" restore bench --physical --to "$W/r-local" --target immediate); restored r-local
cold; R_CS=$(cputimed "cairn S3 restore" run_s3 "$CAIRN" --repo "$S3_REPO" restore bench --physical --to "$W/r-s3" --target immediate); restored r-s3
as_pg mkdir -p "$W/r-pgbr"; chmod 700 "$W/r-pgbr"
cold; R_PB=$(cputimed "pgBackRest S3 restore" as_pg pgbackrest --config="$W/pgbr.conf" --stanza=bench --pg1-path="$W/r-pgbr" --type=immediate restore); restored r-pgbr
# BENCH_CAIRN_BEFORE=PATH: also restore with that (earlier) cairn from the same repositories, for a before/after
# comparison on the same data in the same run.
if [ -n "${BENCH_CAIRN_BEFORE:-}" ]; then
  cp "$BENCH_CAIRN_BEFORE" "$W/cairn-before"; chmod 755 "$W/cairn-before"
  cold; R_BL=$(timed run "$W/cairn-before" --repo "$LOCAL_REPO" restore bench --physical --to "$W/r-local" --target immediate); restored r-local
  cold; R_BS=$(timed run_s3 "$W/cairn-before" --repo "$S3_REPO" restore bench --physical --to "$W/r-s3" --target immediate); restored r-s3
fi
if [ $RESTIC_OK = 1 ]; then cold; R_RS=$(timed "${RESTIC[@]}" restore latest --target "$W/r-restic"); rm -rf "$W/r-restic"; else R_RS="n/a"; fi

echo
echo "scale $SCALE; cluster: $CLUSTER bytes (pg_wal excluded); S3: $SERVER_LABEL"
machine
echo "| measure, s | cairn → folder | cairn → S3 | pgBackRest → S3 (zst, 2 processes) | restic → S3 (files, not consistent) |"
echo "|---|---|---|---|---|"
echo "| full backup | ${CL[full]} | ${CS[full]} | ${PB[full]} | ${RS[full]} |"
echo "| incremental after a day of change | ${CL[incr]} | ${CS[incr]} | ${PB[incr]} | ${RS[incr]} |"
echo "| restore (files only, cold cache) | $R_CL | $R_CS | $R_PB | $R_RS |"
[ -n "${BENCH_CAIRN_BEFORE:-}" ] && echo "| restore with BENCH_CAIRN_BEFORE ($("$W/cairn-before" --version 2>/dev/null | head -1)) | $R_BL | $R_BS | | |"
echo
echo "CPU seconds (user + system) of each run: the client (the command and its children) and the S3 server's processes"
echo "over the same interval (the server's idle work included); on 2 cores the two share the machine."
echo "| run | wall s | client CPU s | server CPU s |"
echo "|---|---|---|---|"
awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " | " $4 " |"}' "$W/cpu.tsv"
echo
echo "ratio s3-full-time cairn S3/folder = $(ratio "${CS[full]}" "${CL[full]}")   (target <= 1.3)"
echo "ratio s3-incr-time cairn S3/folder = $(ratio "${CS[incr]}" "${CL[incr]}")   (target <= 1.3)"
echo "ratio s3-restore-time cairn S3/folder = $(ratio "$R_CS" "$R_CL")   (target <= 1.3)"
echo "ratio s3-full-time cairn/pgBackRest = $(ratio "${CS[full]}" "${PB[full]}")   (target < 1)"
echo "ratio s3-incr-time cairn/pgBackRest = $(ratio "${CS[incr]}" "${PB[incr]}")   (target < 1)"
echo "ratio s3-restore-time cairn/pgBackRest = $(ratio "$R_CS" "$R_PB")   (target < 1)"
if [ -n "${BENCH_CAIRN_BEFORE:-}" ]; then
  echo "ratio s3-restore-time before: cairn S3/folder = $(ratio "$R_BS" "$R_BL"), cairn/pgBackRest = $(ratio "$R_BS" "$R_PB")"
  echo "ratio restore-time after/before: folder = $(ratio "$R_CL" "$R_BL"), S3 = $(ratio "$R_CS" "$R_BS")"
fi
