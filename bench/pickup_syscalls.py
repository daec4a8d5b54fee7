#!/usr/bin/env python3
"""Does shard 0 make blocking file syscalls while the pickup ingests?

Sluice runs with --no-delivery and --pickup DIR. Single-message files
(--files) are written into DIR/tmp and renamed into DIR/new, and one batch of
--recipients recipients is renamed in after them; while Sluice takes them,
strace attaches to every `shard-N` thread (not `pickup-0`, the pickup's own
thread, nor the helpers) for --seconds. Prints the syscall counts of the
shard threads and of the pickup thread (traced alike, to show where the file
work went), and exits 1 when a shard thread made a blocking file syscall
(shard_syscalls.py's list: open*, *stat*, unlink*, rename*, fsync, read,
write, getdents, ...). Issue 12: "no blocking syscall on a shard thread in
steady state".

    bench/pickup_syscalls.py [--sluice build/sluice] [--files 20000]
                             [--recipients 200000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import batch  # noqa: E402
import common  # noqa: E402
from shard_syscalls import BLOCKING  # noqa: E402


def threads(pid: int, pattern: str) -> dict:
    """tid -> name of the threads whose name matches `pattern`."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        if re.fullmatch(pattern, name):
            out[int(task.name)] = name
    return out


def trace(groups: dict, seconds: float, out: Path) -> dict:
    """Syscall counts per group of threads ({group: {tid: name}})."""
    args = ["strace", "-qq", "-o", str(out)]
    owner = {}
    for group, tids in groups.items():
        for tid in tids:
            args += ["-p", str(tid)]
            owner[tid] = group
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.terminate()
    proc.wait(timeout=30)
    calls = {group: Counter() for group in groups}
    for line in out.read_text(errors="replace").splitlines():
        m = re.match(r"^(\d+)\s+([a-z_0-9]+)\(", line)
        if m and int(m.group(1)) in owner:
            calls[owner[int(m.group(1))]][m.group(2)] += 1
    return calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", help="the sluice binary (default: build/sluice)")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--recipients", type=int, default=200000)
    ap.add_argument("--seconds", type=float, default=3.0)
    opts = ap.parse_args()
    common.configure(opts.sluice, None)
    common.raise_nofile()
    work = common.make_workdir("pickup-syscalls")
    s, pickup = batch.sluice_pickup(work, "pickup")
    try:
        tmp, new = pickup / "tmp", pickup / "new"
        names = batch.write_files(tmp, opts.files)
        src = batch.make_batch(tmp, opts.recipients, 1000)
        groups = {"shard": threads(s.pid, r"shard-\d+"), "pickup": threads(s.pid, r"pickup-\d+")}
        strace_out = work / "strace.txt"
        start = time.monotonic()
        for name in names:
            os.rename(tmp / name, new / name)
        os.rename(src, new / src.name)
        left_before = len(os.listdir(new))
        calls = trace(groups, opts.seconds, strace_out)
        left_after = len(os.listdir(new))
        batch.wait_stderr(s, "pickup.batch_queued", 600)
        elapsed = time.monotonic() - start
    finally:
        s.stop()
    print(f"{opts.files} files and a batch of {opts.recipients} recipients; traced "
          f"{opts.seconds:.0f} s while new/ went from {left_before} to {left_after} entries; "
          f"all queued after {elapsed:.1f} s")
    blocking = {}
    for group, tids in groups.items():
        print(f"{group} threads: {', '.join(sorted(tids.values())) or 'none'}")
        for name, n in calls[group].most_common():
            mark = ""
            if BLOCKING.match(name):
                mark = "   <- blocking"
                if group == "shard":
                    blocking[name] = n
            print(f"  {name:24} {n:8}{mark}")
    if blocking:
        print(f"FAIL: blocking syscalls on shard threads while the pickup ingests: {blocking}")
        return 1
    print("OK: no blocking file syscall on a shard thread while the pickup ingests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
