#!/usr/bin/env bash
# The backup pipeline's throughput and memory, against `tar -c | zstd -T2` (the
# compression ceiling) on the same corpus in the same run.
#
#   bash bench/pipeline.sh [work-dir]     (default /tmp/coffer-bench; needs ~12 GiB free)
#
# Corpora: a mixed tree of 1 GiB (small text files from /usr/share, copies of shipped
# binaries, random and zero-filled large files), and flat files of 256 MiB and 4 GiB
# (half random, half text) for the memory comparison. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/coffer-bench}
mkdir -p "$work"
export COFFER_BENCH_KEY_HEX=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

cargo build --release --locked -p coffer-adapters --example pipeline_bench >/dev/null
bin=target/release/examples/pipeline_bench

# `yes | head` ends yes with SIGPIPE, which pipefail would turn into a failure.
text() { yes "$1" 2>/dev/null | head -c "$2" || true; }

make_mixed() {
  local dir=$1
  [ -e "$dir/.done" ] && return
  rm -rf "$dir"; mkdir -p "$dir"
  # Many small, compressible files: documentation shipped in Debian packages.
  cp -r /usr/share/doc "$dir/doc" 2>/dev/null || true
  cp -r /usr/share/man "$dir/man" 2>/dev/null || true
  cp -r /usr/lib/x86_64-linux-gnu "$dir/libs" 2>/dev/null || true
  # Then large files up to 1 GiB in all: incompressible, and text-like.
  local have=$(du -sb "$dir" | cut -f1)
  local want=$((1 << 30))
  local i=0
  while [ "$have" -lt "$want" ]; do
    local left=$((want - have)); local size=$(( left < (128 << 20) ? left : (128 << 20) ))
    if (( i % 2 )); then head -c "$size" /dev/urandom > "$dir/random-$i.bin"
    else text "coffer benchmark line $i with some repetitive text" "$size" > "$dir/text-$i.log"; fi
    have=$((have + size)); i=$((i + 1))
  done
  touch "$dir/.done"
}

make_flat() {
  local file=$1 size=$2
  [ -e "$file" ] && return
  mkdir -p "$(dirname "$file")"
  { head -c $((size / 2)) /dev/urandom; text "a log line that compresses well" $((size / 2)); } > "$file"
}

measure() { # label, command... -> "label|wall|user+sys|maxrss_kib"
  local label=$1; shift
  local out; out=$( { /usr/bin/time -f "TIME %e %U %S %M" "$@" >/dev/null; } 2>&1 | grep '^TIME' )
  read -r _ wall user sys rss <<<"$out"
  echo "$label|$wall|$(echo "$user + $sys" | bc)|$rss"
}

make_mixed "$work/mixed"
make_flat "$work/flat-256M/data" $((256 << 20))
make_flat "$work/flat-4G/data" $((4 << 30))
mixed_bytes=$(du -sb "$work/mixed" | cut -f1)

echo "| run | input | wall s | CPU s | MiB/s | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- | --- |"
row() { # label input bytes measure-output
  IFS='|' read -r label wall cpu rss <<<"$3"
  printf '| %s | %s | %s | %s | %.0f | %.1f |\n' "$label" "$1" "$wall" "$cpu" "$(echo "$2 / 1048576 / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}
for round in 1 2; do
  rm -rf "$work/store"
  row "mixed 1 GiB" "$mixed_bytes" "$(measure "tar -c, zstd -3 -T2 (ceiling)" bash -c "tar -C '$work' -cf - mixed | zstd -3 -T2 -q > /dev/null")"
  rm -rf "$work/store"
  row "mixed 1 GiB" "$mixed_bytes" "$(measure "coffer pipeline, 1 thread" "$bin" backup "$work/store" 1 "$work/mixed")"
  rm -rf "$work/store"
  row "mixed 1 GiB" "$mixed_bytes" "$(measure "coffer pipeline, 2 threads" "$bin" backup "$work/store" 2 "$work/mixed")"
done
for size in 256M 4G; do
  rm -rf "$work/store" "$work/restored"
  bytes=$(stat -c %s "$work/flat-$size/data")
  row "flat $size" "$bytes" "$(measure "coffer backup, 2 threads" "$bin" backup "$work/store" 2 "$work/flat-$size/data")"
  row "flat $size" "$bytes" "$(measure "coffer restore" "$bin" restore "$work/store" "$work/restored")"
done
rm -rf "$work/store" "$work/restored"
