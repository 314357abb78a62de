#!/usr/bin/env bash
# Deduplicated repositories on a 3-node Garage cluster, with a node killed mid-backup.
# Outside CI: Garage takes about 40 minutes of both cores to build here
# (`cargo install garage --version 2.5.0 --locked`).
#
#   bash scripts/garage.sh [--tree-mib N]        (default 300)
#
# Starts three Garage nodes on 127.0.0.1 (replication factor 3, one zone each, SQLite
# metadata) in a temporary folder, then:
#   1. the engine's S3 repository tests (adapters/tests/repo_s3.rs, the round trip and
#      two writers at once through a proxy that drops create-only) against node 1;
#   2. through the CLI: init; a first backup of a generated tree during which node 3 is
#      killed with SIGKILL once about a third of the bytes are read; check --read-data;
#      a restore compared with the tree byte for byte;
#   3. node 3 restarted; two backups at once (two hosts, a changed tree), check;
#   4. another backup of the first host; node 2 killed; forget --keep-last 1 --prune
#      (the first host's first snapshot goes), then check --read-data and a restore.
# Exits non-zero at the first step that fails; prints what each step saw.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

tree_mib=300
while [ $# -gt 0 ]; do
  case "$1" in
    --tree-mib) tree_mib="$2"; shift 2 ;;
    *) echo "usage: $0 [--tree-mib N]" >&2; exit 2 ;;
  esac
done

GARAGE=${GARAGE:-$(command -v garage || true)}
if [ -z "$GARAGE" ] || [ ! -x "$GARAGE" ]; then
  echo "garage not found: set GARAGE=/path/to/garage or put it on PATH" \
    "(cargo install garage --version 2.5.0 --locked)" >&2
  exit 2
fi
"$GARAGE" --version

work=$(mktemp -d "${TMPDIR:-/tmp}/coffer-garage.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Ports: node i listens on 3i900 (S3), 3i901 (RPC), 3i903 (admin).
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
admin_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3_port() { echo $((30900 + 1000 * $1)); }
rpc_port() { echo $((30901 + 1000 * $1)); }
conf() { echo "$work/node$1/garage.toml"; }
g() { local n=$1; shift; "$GARAGE" -c "$(conf "$n")" "$@"; }

start_node() {
  local i=$1
  mkdir -p "$work/node$i"
  cat >"$(conf "$i")" <<EOF
metadata_dir = "$work/node$i/meta"
data_dir = "$work/node$i/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$(rpc_port "$i")"
rpc_public_addr = "127.0.0.1:$(rpc_port "$i")"
rpc_secret = "$secret"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$(s3_port "$i")"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((30903 + 1000 * i))"
admin_token = "$admin_token"
EOF
  "$GARAGE" -c "$(conf "$i")" server >"$work/node$i/log" 2>&1 &
  node_pid[$i]=$!
  pids+=("$!")
  for _ in $(seq 60); do
    if g "$i" status >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "node $i did not start; its log:" >&2
  tail -n 30 "$work/node$i/log" >&2
  exit 1
}

echo "==> starting three Garage nodes in $work"
declare -a node_pid
for i in 1 2 3; do start_node "$i"; done
for i in 2 3; do g 1 node connect "$(g "$i" node id -q)" >/dev/null; done
for i in 1 2 3; do
  id=$(g "$i" node id -q)
  g 1 layout assign -z "zone$i" -c 1G "${id%%@*}" >/dev/null
done
g 1 layout apply --version 1 >/dev/null
key_id="GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
g 1 key import --yes "$key_id" "$key_secret" -n coffer >/dev/null
for bucket in coffer-test coffer-cli; do
  g 1 bucket create "$bucket" >/dev/null
  g 1 bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
done
g 1 status

endpoint="http://127.0.0.1:$(s3_port 1)"
echo "==> 1. the engine's S3 repository tests against node 1 ($endpoint)"
COFFER_TEST_S3_ENDPOINT=$endpoint COFFER_TEST_S3_ACCESS_KEY=$key_id \
  COFFER_TEST_S3_SECRET_KEY=$key_secret \
  cargo test --release -p coffer-adapters --test repo_s3 -- s3s_fs

echo "==> building the CLI"
cargo build --release -p coffer-cli
coffer="$ROOT/target/release/coffer"
export COFFER_S3_ENDPOINT=$endpoint COFFER_S3_ACCESS_KEY_ID=$key_id \
  COFFER_S3_SECRET_ACCESS_KEY=$key_secret COFFER_S3_REGION=us-east-1
export COFFER_KEY_FILE="$work/coffer.key" COFFER_NO_CACHE=1
repo=s3://coffer-cli/repo
"$coffer" key generate "$COFFER_KEY_FILE" >/dev/null
"$coffer" init --repo "$repo"

# Restores the latest snapshot into a new folder and compares it with the tree.
restore_and_compare() {
  mkdir "$work/restore$1"
  "$coffer" restore latest --repo "$repo" --target "$work/restore$1"
  diff -r "$src" "$work/restore$1$src"
  echo "    restored tree equals the source"
}

echo "==> making a $tree_mib MiB tree"
src="$work/tree"
python3 - "$src" "$tree_mib" <<'EOF'
import sys
sys.path.insert(0, "bench")
import dedup
dedup.make_tree(sys.argv[1], int(sys.argv[2]))
EOF

echo "==> 2. first backup; node 3 is killed once a third of the bytes are read"
status="$work/backup1.json"
"$coffer" backup --repo "$repo" --host garage --json "$src" >"$status" 2>"$work/backup1.err" &
backup=$!
killed=0
while kill -0 "$backup" 2>/dev/null; do
  done_frac=$(python3 - "$status" <<'EOF'
import json, sys
best = 0.0
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("message_type") == "status":
        best = max(best, m.get("percent_done", 0.0))
print(best)
EOF
)
  if [ "$killed" = 0 ] && python3 -c "import sys; sys.exit(0 if float('$done_frac') >= 0.33 else 1)"; then
    kill -9 "${node_pid[3]}"
    killed=1
    echo "    node 3 killed at $(python3 -c "print(round(100 * $done_frac))")% of the bytes"
  fi
  sleep 0.2
done
if ! wait "$backup"; then
  echo "the backup failed with node 3 down:" >&2
  cat "$work/backup1.err" >&2
  exit 1
fi
if [ "$killed" = 0 ]; then
  echo "the backup ended before a third of it was read; use a larger --tree-mib" >&2
  exit 1
fi
tail -n 1 "$status"
"$coffer" check --repo "$repo" --read-data
restore_and_compare 1

echo "==> 3. node 3 back; two backups at once from two hosts"
start_node 3
python3 - "$src" <<'EOF'
import sys
sys.path.insert(0, "bench")
import dedup
dedup.change_day(sys.argv[1], 2, 300)
EOF
"$coffer" backup --repo "$repo" --host garage-a "$src" >"$work/a.out" 2>&1 &
a=$!
"$coffer" backup --repo "$repo" --host garage-b "$src" >"$work/b.out" 2>&1 &
b=$!
wait "$a" || { cat "$work/a.out" >&2; exit 1; }
wait "$b" || { cat "$work/b.out" >&2; exit 1; }
"$coffer" snapshots --repo "$repo"
"$coffer" check --repo "$repo"

echo "==> 4. a second backup of host garage; with node 2 down, forget --keep-last 1 --prune"
echo "   (snapshots group by host and paths: garage's first one goes), check and restore"
"$coffer" backup --repo "$repo" --host garage "$src" >/dev/null
kill -9 "${node_pid[2]}"
"$coffer" forget --repo "$repo" --keep-last 1 --prune
test "$("$coffer" snapshots --repo "$repo" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 3
"$coffer" check --repo "$repo" --read-data
restore_and_compare 2
echo "garage: every step passed"
