# Shared by scripts/ceph-s3 and bench/s3.sh (BENCH_S3_SERVER=ceph): a throwaway single-node Ceph cluster with
# RADOS Gateway on 127.0.0.1, in a folder of the caller's. Source it, then:
#
#   ceph_cluster_start DIR [memstore|bluestore] [CERT KEY]
#       starts one monitor, one manager, one OSD and radosgw (beast) in DIR (made here, must not exist yet) and
#       creates an S3 user. memstore keeps objects in RAM (4 GiB cap); bluestore writes them to a sparse 16 GiB file
#       in DIR through the kernel (O_DIRECT, as a real OSD on a disk does) - the one to measure with. With CERT and
#       KEY (PEM) radosgw speaks HTTPS only. Sets CEPH_ENDPOINT, CEPH_ACCESS, CEPH_SECRET and exports CEPH_CONF.
#       Fails (returns non-zero, message on stderr) at the first step that does not hold.
#   ceph_cluster_stop DIR
#       ends the daemons by the PIDs in their pid files (TERM, then KILL after 10 s). It removes nothing.
#
# The daemons run as root: Ceph allows it (the Debian units drop to the ceph user with --setuser, which needs the
# folder chowned; a throwaway cluster in /tmp gains nothing from it). Needs Debian's ceph-mon ceph-osd ceph-mgr
# radosgw ceph-common and jq: ceph_cluster_packages installs what is missing (apt, root).

ceph_cluster_packages() {
  local missing=() p
  for p in ceph-mon ceph-osd ceph-mgr radosgw ceph-common jq; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { echo "ceph: missing packages ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2; return 1; }
  echo "ceph: installing ${missing[*]} (apt)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

_ceph_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
_ceph_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

ceph_cluster_start() {
  local dir="$1" store="${2:-memstore}" cert="${3:-}" key="${4:-}"
  [ ! -e "$dir" ] || { echo "ceph: $dir exists; give a new folder" >&2; return 1; }
  case "$store" in memstore|bluestore) ;; *) echo "ceph: store '$store' is not memstore or bluestore" >&2; return 1;; esac
  mkdir -p "$dir"/{run,log,mon,mgr,osd,rgw}
  local fsid monport rgwport frontend scheme=http
  fsid=$(_ceph_uuid); monport=$(_ceph_free_port); rgwport=$(_ceph_free_port)
  if [ -n "$cert" ]; then
    frontend="beast ssl_endpoint=127.0.0.1:$rgwport ssl_certificate=$cert ssl_private_key=$key"; scheme=https
  else
    frontend="beast endpoint=127.0.0.1:$rgwport"
  fi
  export CEPH_CONF="$dir/ceph.conf"
  local osd_store
  if [ "$store" = memstore ]; then
    osd_store="osd_objectstore = memstore
memstore_device_bytes = 4294967296"
  else
    osd_store="osd_objectstore = bluestore
bluestore_block_path = $dir/osd/block
bluestore_block_create = true
bluestore_block_size = 17179869184
bluestore_block_db_create = false
bluestore_block_wal_create = false
bluestore_fsck_on_mkfs = false
bluestore_cache_autotune = false
bluestore_cache_size = 536870912
osd_memory_target = 1073741824"
  fi
  cat > "$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$monport
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
run_dir = $dir/run
admin_socket = $dir/run/\$cluster-\$name.asok
pid_file = $dir/run/\$cluster-\$name.pid
log_file = $dir/log/\$cluster-\$name.log
ms_bind_ipv4 = true
ms_bind_ipv6 = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_crit = 1
mon_data_avail_warn = 2
[mon]
mon_data = $dir/mon/\$cluster-\$id
keyring = $dir/mon/\$cluster-\$id/keyring
[mgr]
mgr_data = $dir/mgr/\$cluster-\$id
keyring = $dir/mgr/\$cluster-\$id/keyring
[osd]
osd_data = $dir/osd/\$cluster-\$id
keyring = $dir/osd/\$cluster-\$id/keyring
$osd_store
[client]
keyring = $dir/ceph.client.admin.keyring
[client.rgw.cairn]
keyring = $dir/rgw/keyring
rgw_frontends = $frontend
rgw_data = $dir/rgw
CONF
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null || return 1
  ceph-authtool --create-keyring "$dir/ceph.client.admin.keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null || return 1
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/ceph.client.admin.keyring" >/dev/null || return 1
  monmaptool --create --addv a "[v2:127.0.0.1:$monport]" --fsid "$fsid" "$dir/monmap" >/dev/null || return 1
  mkdir -p "$dir/mon/ceph-a"
  ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" || return 1
  ceph-mon -i a || return 1
  command ceph --connect-timeout 30 -s >/dev/null || { echo "ceph: the monitor does not answer (log: $dir/log/ceph-mon.a.log)" >&2; return 1; }

  mkdir -p "$dir/mgr/ceph-x"
  command ceph --connect-timeout 30 auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' > "$dir/mgr/ceph-x/keyring" || return 1
  ceph-mgr -i x || return 1

  local osd_uuid osd_secret osd_id
  osd_uuid=$(_ceph_uuid); osd_secret=$(ceph-authtool --gen-print-key)
  osd_id=$(echo "{\"cephx_secret\": \"$osd_secret\"}" | command ceph --connect-timeout 30 osd new "$osd_uuid" -i -) || return 1
  mkdir -p "$dir/osd/ceph-$osd_id"
  ceph-authtool --create-keyring "$dir/osd/ceph-$osd_id/keyring" --name "osd.$osd_id" --add-key "$osd_secret" >/dev/null || return 1
  ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" 2>>"$dir/log/osd-mkfs.log" \
    || { echo "ceph: ceph-osd --mkfs ($store) failed: $(tail -5 "$dir/log/osd-mkfs.log")" >&2; return 1; }
  ceph-osd -i "$osd_id" || return 1
  local _
  for _ in $(seq 120); do [ "$(command ceph osd stat -f json | jq .num_up_osds)" = 1 ] && break; sleep 1; done
  [ "$(command ceph osd stat -f json | jq .num_up_osds)" = 1 ] || { echo "ceph: the OSD did not come up (log: $dir/log/ceph-osd.$osd_id.log)" >&2; return 1; }

  command ceph --connect-timeout 30 auth get-or-create client.rgw.cairn mon 'allow rw' osd 'allow rwx' > "$dir/rgw/keyring" || return 1
  radosgw -n client.rgw.cairn || return 1
  CEPH_ENDPOINT="$scheme://127.0.0.1:$rgwport"
  local curl_tls=()
  [ -n "$cert" ] && curl_tls=(--cacert "$cert")
  for _ in $(seq 180); do curl -s -o /dev/null "${curl_tls[@]}" "$CEPH_ENDPOINT" && break; sleep 1; done
  curl -s -o /dev/null "${curl_tls[@]}" "$CEPH_ENDPOINT" || { echo "ceph: radosgw does not answer on $CEPH_ENDPOINT (log: $dir/log/ceph-client.rgw.cairn.log)" >&2; return 1; }

  CEPH_ACCESS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
  CEPH_SECRET=$(head -c 30 /dev/urandom | base64 | tr -d '/+=')
  radosgw-admin user create --uid=cairn --display-name="Cairn test user" --access-key="$CEPH_ACCESS" --secret-key="$CEPH_SECRET" >/dev/null || return 1
}

ceph_cluster_stop() {  # never fails: it runs from EXIT traps
  local dir="$1" f alive _
  for f in "$dir"/run/*.pid; do
    if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
  done
  for _ in $(seq 50); do
    alive=0
    for f in "$dir"/run/*.pid; do
      if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then alive=1; fi
    done
    if [ $alive = 0 ]; then break; fi
    sleep 0.2
  done
  for f in "$dir"/run/*.pid; do
    if [ -f "$f" ]; then kill -9 "$(cat "$f")" 2>/dev/null || true; fi
  done
  return 0
}
