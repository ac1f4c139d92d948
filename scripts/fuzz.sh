#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that take hostile input, for a bounded time.
# Builds the fuzz/ crate (nightly, cargo-fuzz; scripts/install.sh installs both pieces it
# needs), then runs each target for FUZZ_SECONDS and fails if one crashes, or if nothing was
# fuzzed (no target listed, or a target that ran no input).
#
#   scripts/fuzz.sh                   every target, FUZZ_SECONDS (default 30) each
#   scripts/fuzz.sh csv_rows          one target
#   FUZZ_SECONDS=600 scripts/fuzz.sh  a longer hunt
#
# The corpus grows in fuzz/corpus/<target> (gitignored) from fuzz/seeds/<target>. A crash
# leaves its input in fuzz/artifacts/<target>/; fix the code, then keep the input in
# fuzz/regressions/<target>/ with a name that says what it is: `cargo test` replays it
# (shared/tests/fuzz_regressions.rs), and every run here starts from it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH="${FUZZ_SECONDS:-30}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
# -a: debug assertions and overflow checks on, as in the tests; -O: optimised (the default).
BUILD_FLAGS=(-O -a)

# Every target the crate declares, so that a new one is fuzzed without touching this script.
# A listing that fails, or lists nothing, is an error: a run that fuzzed nothing must not pass.
if ! listed="$(cargo "+$TOOLCHAIN" fuzz list)"; then
  echo "fuzz.sh: 'cargo +$TOOLCHAIN fuzz list' failed: are cargo-fuzz (scripts/install.sh) and the $TOOLCHAIN toolchain (rustup toolchain list) installed?" >&2
  exit 1
fi
mapfile -t declared < <(printf '%s\n' "$listed" | sed '/^[[:space:]]*$/d')
if [[ ${#declared[@]} -eq 0 ]]; then
  echo "fuzz.sh: 'cargo fuzz list' names no target" >&2
  exit 1
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${declared[@]}")
for target in "${targets[@]}"; do
  if ! printf '%s\n' "${declared[@]}" | grep -qxF -- "$target"; then
    echo "fuzz.sh: no fuzz target '$target' (there are: ${declared[*]})" >&2
    exit 1
  fi
done

started=$(date +%s)
cargo "+$TOOLCHAIN" fuzz build "${BUILD_FLAGS[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - started))s"

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="artifacts/$target/last-run.txt"
  # Corpus dirs: the first one receives new inputs; the others are read only.
  if cargo "+$TOOLCHAIN" fuzz run "${BUILD_FLAGS[@]}" "$target" \
    "corpus/$target" "seeds/$target" "regressions/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    # libFuzzer's final stats say how many inputs ran: none (or no figure) fuzzed nothing.
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    if [[ -z "$runs" || "$runs" -eq 0 ]]; then
      status=1
      echo "fuzz.sh: $target ran no input. The end of its log:" >&2
      tail -n 40 "$log" >&2
    else
      echo "fuzz.sh: $target: no crash in ${SECONDS_EACH}s ($runs runs)"
    fi
  else
    status=1
    echo "fuzz.sh: $target CRASHED; the input is in fuzz/artifacts/$target/. The end of its log:" >&2
    tail -n 40 "$log" >&2
  fi
done
exit $status
