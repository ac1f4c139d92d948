#!/usr/bin/env python3
"""Where a cold start's time goes before the first poll, per binary, from a perf trace.

Run by bench/scripts/cold-start-phases.sh, which records the trace around
`latchkey-bench cold-start`. For every exec of a binary from the bench's release dir it takes:

  exec   the kernel has loaded the binary (sched:sched_process_exec)
  main   Rust's runtime starts (its first poll(2), on fds 0-2, before main)
  poll   the main thread connects to the runtime API (its first connect(2))

and counts the page faults taken before main, and between main and the poll. exec->main is the loader
(relocations) and page faults; main->poll is what main does before it polls. Medians per binary.
"""
import re
import statistics
import sys
from collections import defaultdict

LINE = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):\s*(.*)")


def phases(lines, release_dir):
    procs = {}
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        _comm, pid, tid, at, event, rest = m.groups()
        pid, tid, at = int(pid), int(tid), float(at) * 1000.0
        if event == "sched:sched_process_exec":
            name = re.search(r"filename=(\S+)", rest).group(1)
            if name.startswith(release_dir) and not name.endswith("latchkey-bench"):
                procs[pid] = {"name": name.rsplit("/", 1)[1], "exec": at, "faults": 0, "later": 0}
            continue
        p = procs.get(pid)
        if p is None:
            continue
        if event == "exceptions:page_fault_user":
            if "main" not in p:
                p["faults"] += 1
            elif "poll" not in p:
                p["later"] += 1
        elif event == "syscalls:sys_enter_poll" and "main" not in p:
            p["main"] = at
        elif event == "syscalls:sys_enter_connect" and tid == pid and "poll" not in p:
            p["poll"] = at
    by_name = defaultdict(list)
    for p in procs.values():
        if "main" in p and "poll" in p:
            by_name[p["name"]].append(p)
    return by_name


def main():
    trace, release_dir = sys.argv[1], sys.argv[2].rstrip("/") + "/"
    with open(trace) as f:
        by_name = phases(f, release_dir)
    if not by_name:
        sys.exit(f"no exec of a binary from {release_dir} in {trace}")
    med = statistics.median
    print(
        "| binary | execs | exec → main | page faults before main "
        "| main → first poll | page faults in it | exec → first poll |"
    )
    print("|---|---|---|---|---|---|---|")
    order = sorted(by_name, key=lambda n: (n != "hello-lambda", n))
    for name in order:
        ps = by_name[name]
        print(
            f"| `{name}` | {len(ps)} | {med(p['main'] - p['exec'] for p in ps):.2f} ms "
            f"| {med(p['faults'] for p in ps):.0f} "
            f"| {med(p['poll'] - p['main'] for p in ps):.2f} ms "
            f"| {med(p['later'] for p in ps):.0f} "
            f"| {med(p['poll'] - p['exec'] for p in ps):.2f} ms |"
        )


if __name__ == "__main__":
    main()
