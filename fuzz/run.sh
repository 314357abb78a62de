#!/usr/bin/env bash
# Runs Coffer's fuzz targets (cargo-fuzz / libFuzzer), one after another, one process.
#
#   fuzz/run.sh smoke          every target for FUZZ_SMOKE_SECONDS (default 25) seconds
#   fuzz/run.sh long [runs]    every target for `runs` executions (default 10,000,000),
#                              each capped at FUZZ_MAX_SECONDS (default 1500 = 25 min)
#   fuzz/run.sh long [runs] TARGET...   only those targets
#
# Both build the targets, seed the corpora (seed-corpora.sh), and exit non-zero if any
# target crashed, timed out (-timeout=10 s per input) or ran out of memory
# (-rss_limit_mb=2048). Crash inputs land in fuzz/artifacts/<target>/, logs in
# fuzz/target/fuzz-logs/<target>.log, new corpus entries in fuzz/corpus/<target>/.
#
# Toolchain: the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags),
# so CI machines with stable only and this machine behave the same. cargo-fuzz is
# installed if missing. FUZZ_SANITIZER (default none; e.g. address) picks the sanitizer:
# the core forbids unsafe code, and without ASan the targets run about 3x faster;
# overflow checks and debug assertions are on either way.
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(header stream_open random_open envelope passphrase_envelope passphrase_unwrap seal_open_differential records chunker
  repo_pack_toc repo_index repo_tree repo_snapshot repo_config repo_keyfile repo_sealed_object repo_postcard_small)
mode="${1:-smoke}"
shift || true
case "$mode" in
  smoke) ;;
  long)
    runs="${1:-10000000}"
    shift || true
    ;;
  *)
    echo "usage: $0 smoke | long [runs] [target...]" >&2
    exit 2
    ;;
esac
if [ "$#" -gt 0 ]; then TARGETS=("$@"); fi
smoke_seconds="${FUZZ_SMOKE_SECONDS:-25}"
max_seconds="${FUZZ_MAX_SECONDS:-1500}"
sanitizer="${FUZZ_SANITIZER:-none}"

# Inputs larger than these only slow the fuzzer; streams need room for a chunk or two.
max_len() {
  case "$1" in
    stream_open | random_open) echo 40000 ;;
    seal_open_differential) echo 40000 ;;
    chunker) echo 20000 ;;
    # Repository plaintexts: room for a few dozen table entries, nodes or index entries.
    repo_pack_toc | repo_index | repo_tree) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

export RUSTC_BOOTSTRAP=1
cargo=(cargo)
if command -v rustup >/dev/null && rustup toolchain list | grep -q '^stable'; then
  cargo=(cargo +stable)
fi
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  "${cargo[@]}" install cargo-fuzz --locked
fi

echo "==> building fuzz targets (sanitizer: $sanitizer)"
"${cargo[@]}" fuzz build -s "$sanitizer"

echo "==> seeding corpora"
bash ./seed-corpora.sh

logs=target/fuzz-logs
mkdir -p "$logs"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  if [ "$mode" = smoke ]; then
    limit=(-max_total_time="$smoke_seconds")
  else
    limit=(-runs="$runs" -max_total_time="$max_seconds")
  fi
  before=$(find "artifacts/$t" -type f | wc -l)
  echo "==> $t: ${limit[*]}"
  set +e
  "${cargo[@]}" fuzz run -s "$sanitizer" "$t" -- "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -print_final_stats=1 >"$logs/$t.log" 2>&1
  rc=$?
  set -e
  after=$(find "artifacts/$t" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$logs/$t.log" | tail -1)
  status=ok
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    status="FAILED (exit $rc)"
    failed+=("$t")
    echo "---- $t: last lines of $logs/$t.log" >&2
    tail -n 40 "$logs/$t.log" >&2
    echo "---- newest files in fuzz/artifacts/$t:" >&2
    ls -t "artifacts/$t" | head -n 5 >&2 || true
  elif [ "$mode" = long ] && [ "${execs:-0}" -lt "$runs" ]; then
    status="ok (time cap ${max_seconds}s reached)"
  fi
  echo "    $t: ${execs:-?} executions, ${rate:-?} exec/s, ${secs:-?} s: $status"
  summary+=("$(printf '%-24s %12s %10s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${secs:-?}" "$status")")
done

echo
echo "==> fuzz $mode summary (sanitizer: $sanitizer)"
printf '%-24s %12s %10s %8s  %s\n' target executions exec/s seconds status
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/; reproduce with" \
    "RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer <target> <file>)" >&2
  exit 1
fi
echo "fuzz: no crash, timeout or out-of-memory"
