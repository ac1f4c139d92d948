#!/usr/bin/env bash
# Splits each binary's time to first poll into exec -> main and main -> poll, with perf
# tracepoints around `latchkey-bench cold-start` (see bench/notes/cold-start.md). Needs perf
# and the right to trace (root, or kernel.perf_event_paranoid <= -1), and the release binaries
# of `make bench`. The tracing adds a little to every fault and syscall, so compare the
# binaries with each other, not with the bench's own table.
set -euo pipefail
cd "$(dirname "$0")/../.."
release=${LATCHKEY_BIN_DIR:-$PWD/target/bench/release}
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
[ -x "$release/latchkey-bench" ] || { echo "no $release/latchkey-bench: run make bench first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$PWD/.local/venv/bin:$PATH"
BENCH_COLD_RUNS=${BENCH_COLD_RUNS:-15} perf record -q -o "$work/perf.data" \
  -e sched:sched_process_exec,syscalls:sys_enter_poll,syscalls:sys_enter_connect,exceptions:page_fault_user \
  -- env LATCHKEY_LOG_FILE="$work/functions.log" LATCHKEY_ROOT="$PWD" \
  "$release/latchkey-bench" cold-start --out "$work/cold-start.md" >"$work/bench.log" 2>&1 \
  || { cat "$work/bench.log" >&2; exit 1; }
perf script -i "$work/perf.data" -F comm,pid,tid,cpu,time,event,trace 2>/dev/null >"$work/trace.txt"
python3 bench/scripts/cold-start-phases.py "$work/trace.txt" "$release"
