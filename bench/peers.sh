#!/usr/bin/env bash
# Coffer against age, rage, restic and borg, and the raw AEADs, in one run, then a week
# of daily backups on deduplicated repositories (bench/dedup.py, through the CLI);
# writes BENCHMARKS.md. Installs what it compares against (Debian packages; rage with
# cargo).
#
#   bash bench/peers.sh [--work DIR] [--reps N] [--out FILE]   (see bench/peers.py)
#
# Takes about half an hour on 2 cores with the default 3 repetitions, and ~20 GiB of
# scratch space (default /tmp/coffer-peers). Run it on a quiet machine: the figures
# are only as steady as the machine is.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in age:age restic:restic borg:borgbackup zstd:zstd openssl:openssl /usr/bin/time:time; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "==> installing ${need[*]} (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v rage >/dev/null; then
  echo "==> installing rage 0.11.1 (cargo install; a few minutes)" >&2
  cargo install rage --version 0.11.1 --locked >/dev/null 2>&1 ||
    echo "rage did not build; the report leaves it out" >&2
fi
echo "==> building coffer (release)" >&2
cargo build --release --locked -q -p coffer-cli
python3 bench/peers.py "$@"
# The week of daily backups on deduplicated repositories (issue 15's targets), Coffer
# through its CLI against restic and borg: replaces its section of BENCHMARKS.md.
python3 bench/dedup.py --benchmarks BENCHMARKS.md
