#!/usr/bin/env python3
"""Which syscalls do the shard threads make in steady state?

blast -> Sluice -> sink over `--domains` MX domains (dnsmasq), as bench/relay.py
runs it; once mail flows, strace attaches to every `shard-N` thread (not the
helpers, not the main thread) for `--seconds`, then detaches before the load
ends, so start-up and shutdown are not counted. Prints the syscall counts
and exits 1 when a blocking file syscall (open*, *stat*, unlink*, fsync,
fdatasync, read, write, pread/pwrite, getdents, rename*) was seen: a shard
thread must leave those to the ring or to a helper thread (issue 12).

    bench/shard_syscalls.py [--sluice build/sluice] [--messages 40000] [--seconds 4]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BLOCKING = re.compile(r"^(open|openat|openat2|creat|stat|lstat|fstat|newfstatat|statx|statfs|fstatfs|"
                      r"statvfs|unlink|unlinkat|rename|renameat|renameat2|fsync|fdatasync|sync_file_range|"
                      r"read|write|pread64|pwrite64|readv|writev|getdents|getdents64)$")


def shard_threads(pid: int) -> dict:
    """tid -> name of the threads called shard-N (or the older sluice-shardN)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        if re.fullmatch(r"(sluice-)?shard-?\d+", name):
            out[int(task.name)] = name
    return out


def trace(tids, seconds: float, out: Path) -> Counter:
    """strace -c style counts per syscall name, over `seconds`."""
    args = ["strace", "-qq", "-o", str(out)]
    for tid in tids:
        args += ["-p", str(tid)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.terminate()
    proc.wait(timeout=30)
    calls = Counter()
    for line in out.read_text(errors="replace").splitlines():
        m = re.match(r"^(?:\d+\s+)?([a-z_0-9]+)\(", line)
        if m:
            calls[m.group(1)] += 1
        elif "resumed>" in line:
            continue
    return calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", help="the sluice binary (default: build/sluice)")
    ap.add_argument("--tools", help="the directory with sluice-blast and sluice-sink")
    ap.add_argument("--messages", type=int, default=40000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--domains", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=4.0)
    opts = ap.parse_args()
    common.configure(opts.sluice, opts.tools)
    common.raise_nofile()
    work = common.make_workdir("shard-syscalls")
    dns = common.relay_dns(work, opts.domains)
    try:
        with common.Sink(work, mx_hosts=True) as sink, \
                common.Sluice(work, ["--dns", dns.spec, "--mx-port", str(sink.port)], name="relay") as s:
            blaster = threading.Thread(target=common.blast, args=(s.port, opts.messages, opts.size),
                                       kwargs={"domains": opts.domains})
            blaster.start()
            # Steady state: mail has been flowing for a while.
            deadline = time.monotonic() + 60
            while sink.messages() < opts.messages // 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            before = sink.messages()
            tids = shard_threads(s.pid)
            calls = trace(tids, opts.seconds, work / "strace.txt")
            during = sink.messages() - before
            blaster.join()
            sink.wait_for(opts.messages, 300)
    finally:
        dns.stop()
    blocking = {k: v for k, v in calls.items() if BLOCKING.match(k)}
    print(f"shard threads traced: {', '.join(sorted(tids.values()))}; "
          f"{during} messages delivered while traced ({opts.seconds:.0f} s)")
    for name, n in calls.most_common():
        print(f"  {name:24} {n:8}{'   <- blocking' if name in blocking else ''}")
    if blocking:
        print(f"FAIL: blocking syscalls on shard threads: {blocking}")
        return 1
    print("OK: no blocking file syscall on a shard thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
