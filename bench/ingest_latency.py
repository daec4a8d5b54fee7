#!/usr/bin/python3
"""Inbound 250 latency while the pickup ingests a 1M-recipient batch, and
while spool segments are retired (issue "Runtime redesign": the p99 must stay
within 2x of the p99 without them).

One relay (delivery on, --shards 2, every domain routed to one sluice-sink,
--pickup DIR). sluice-blast sends --rate messages/s of --size bytes over
--connections sessions to d0.example (delivered to the sink as it arrives:
a steady relay, not an idle queue); blast's latency is from the end of the
data to the final reply (the 250, sent after the fdatasync). Three
measured windows, each one blast run:

  baseline  --seconds of the steady load alone;
  retire    segments full of delivered mail are retired: beforehand (not
            measured) --prefill-mb of --prefill-size messages to d1.example,
            held (`sluice queue hold --domain`), fill the shards' segments
            past their 64 MiB rotation; the window starts, and 0.5 s in the
            domain is released, so the backlog is delivered, tombstoned and
            its segments unlinked while the load runs (`segments_removed`
            must grow within the window; on both shards when the prefill
            connections were spread evenly);
  batch     a NAME.batch/ of --recipients recipients over --batch-domains
            domains (bench/batch.py's template and CSV; the domains held
            beforehand, so the batch is queued, not delivered) is renamed
            into DIR/new 0.5 s into the window of --batch-seconds, which
            must see Sluice's pickup.batch_queued line.

Prints p50/p99/p99.9/max per window and the ratios of the p99s to the
baseline's as a Markdown table; exits 1 if blast lost or refused messages.

    bench/ingest_latency.py [--rate 1000] [--seconds 10] [--recipients 1000000]
                            [--prefill-mb 200] [--keep]

SLUICE_BIN picks the binary (default build/sluice; use a release or
debugoptimized build). About 2 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import batch  # noqa: E402
import common  # noqa: E402

SHARDS = 2


class Blast(threading.Thread):
    """One sluice-blast run in the background; .report is its JSON."""

    def __init__(self, port: int, args):
        super().__init__(daemon=True)
        self.cmd = [common.tool("sluice-blast"), "--target", f"127.0.0.1:{port}", "--json", *args]
        self.report: dict = {}
        self.error = ""

    def run(self):
        r = subprocess.run(self.cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            self.error = f"sluice-blast exited {r.returncode}: {(r.stdout + r.stderr)[-500:]}"
        try:
            self.report = json.loads(r.stdout)
        except json.JSONDecodeError:
            self.error = self.error or f"sluice-blast printed no JSON: {r.stdout[-300:]}"

    def result(self) -> dict:
        self.join()
        if self.error:
            raise RuntimeError(self.error)
        return self.report


def queue(s: common.Sluice, *args) -> str:
    r = subprocess.run([common.sluice_bin(), "queue", *args, "--spool", str(s.spool)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"sluice queue {' '.join(args)}: {r.stderr.strip()[-300:]}")
    return r.stdout


def segments_removed(s: common.Sluice) -> list:
    doc = json.loads(queue(s, "stats", "--json"))
    return [int(sh.get("segments_removed", 0)) for sh in doc["shards"]]


def thread_cpu(pid: int) -> dict:
    """Thread name -> CPU seconds (user + system) so far, summed over threads
    of one name."""
    out: dict = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


class SlowCalls:
    """strace -ttt -T of the shard threads (--strace): their slowest
    syscalls, and their longest stretches between two syscalls (work in
    user space, or waiting for a CPU)."""

    def __init__(self, pid: int, out: Path):
        self.out = out
        self.names = {}
        args = ["strace", "-qq", "-ttt", "-T", "-y", "-o", str(out)]
        for task in Path(f"/proc/{pid}/task").iterdir():
            name = (task / "comm").read_text().strip()
            if name.startswith("shard-"):
                args += ["-p", task.name]
                self.names[int(task.name)] = name
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attached (a few ms); the window has not started yet

    def stop(self, n=6) -> list:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        calls, gaps, last_end = [], [], {}
        for line in self.out.read_text(errors="replace").splitlines():
            m = re.match(r"^(\d+)\s+([0-9.]+)\s+(?:<\.\.\. )?([a-z_0-9]+)(.*?)(?:<([0-9.]+)>)?$", line)
            if not m:
                continue
            tid, t, name, rest = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
            who = self.names.get(tid, str(tid))
            if "resumed>" not in line and tid in last_end:
                gaps.append((t - last_end[tid], f"{who}: between syscalls, before {name}{rest[:60]}"))
            if m.group(5) is not None:
                dur = float(m.group(5))
                last_end[tid] = t + (dur if "resumed>" not in line else 0)
                if name != "io_uring_enter" or ", 0, 1, IORING_ENTER_GETEVENTS" not in rest:
                    calls.append((dur, f"{who}: {name}{rest[:110]}"))
        return sorted(calls, reverse=True)[:n] + sorted(gaps, reverse=True)[:n]


def commit_buckets(http_port: int) -> dict:
    """(shard, le) -> count of sluice_spool_commit_duration_seconds."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^sluice_spool_commit_duration_seconds_bucket\{shard="(\d+)",le="([^"]+)"\} (\d+)',
                         text, re.M):
        out[(int(m.group(1)), m.group(2))] = int(m.group(3))
    return out


def slow_commits(before: dict, after: dict, over_s=0.05) -> str:
    """Per shard: group commits in the window, how many took longer than
    over_s, and the bucket the slowest fell in."""
    parts = []
    for shard in sorted({k[0] for k in after}):
        total = after[(shard, "+Inf")] - before.get((shard, "+Inf"), 0)
        les = sorted((float(k[1]), after[k] - before.get(k, 0)) for k in after
                     if k[0] == shard and k[1] != "+Inf")
        fast = max((n for le, n in les if le <= over_s), default=0)
        slowest = next((le for le, n in les if n == total), float("inf"))
        parts.append(f"shard {shard}: {total} commits, {total - fast} over {over_s * 1000:.0f} ms, "
                     f"slowest <= {slowest * 1000:g} ms")
    return "; ".join(parts)


class Perf:
    """perf record of the shard threads (--perf): where their CPU went."""

    def __init__(self, pid: int, out: Path):
        self.out = out
        tids = [t.name for t in Path(f"/proc/{pid}/task").iterdir()
                if (t / "comm").read_text().strip().startswith(("shard-", "pickup-"))]
        self.proc = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-t", ",".join(tids),
                                      "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self, n=12) -> list:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        r = subprocess.run(["perf", "report", "-i", str(self.out), "--stdio", "--no-children", "-g", "none",
                            "--sort", "comm,sym", "-q"], capture_output=True, text=True, timeout=120)
        return [line.rstrip()[:150] for line in r.stdout.splitlines() if line.strip()][:n]


def measure(s: common.Sluice, o, seconds: float, event=None, done=None) -> tuple[dict, float]:
    """One blast window of `seconds`; `event()` runs 0.5 s in and `done()`
    must turn true before the window ends. Returns blast's report and when
    the event was done (s after the window's start). Logs the CPU seconds
    each thread used in the window, and with --strace the shard threads'
    slowest syscalls."""
    tracer = SlowCalls(s.pid, s.work / f"strace-{time.monotonic():.0f}.txt") if o.strace else None
    perf = Perf(s.pid, s.work / f"perf-{time.monotonic():.0f}.data") if o.perf else None
    cpu0, commits0 = thread_cpu(s.pid), commit_buckets(s.http_port)
    rep, ended = _measure(s, o, seconds, event, done)
    cpu1, commits1 = thread_cpu(s.pid), commit_buckets(s.http_port)
    common.log("  spool group commits: " + slow_commits(commits0, commits1))
    used = sorted(((cpu1.get(k, 0) - cpu0.get(k, 0), k) for k in cpu1), reverse=True)
    common.log("  CPU s by thread: " + ", ".join(f"{k} {v:.2f}" for v, k in used if v >= 0.01))
    if perf:
        for line in perf.stop():
            common.log(f"  perf: {line}")
    if tracer:
        for dur, what in tracer.stop():
            common.log(f"  strace: {dur * 1000:.2f} ms {what}")
    return rep, ended


def _measure(s: common.Sluice, o, seconds: float, event, done) -> tuple[dict, float]:
    t0 = time.monotonic()
    b = Blast(s.port, ["--connections", str(o.connections), "--rate", str(o.rate), "--duration",
                       str(int(seconds)), "--size", str(o.size), "--domains", "1"])
    b.start()
    if event is None:
        return b.result(), 0.0
    time.sleep(0.5)
    event()
    while not done():
        if time.monotonic() - t0 > seconds:
            b.result()
            raise RuntimeError(f"the event did not end within the {seconds:.0f} s window; make it longer")
        time.sleep(0.02)
    ended = time.monotonic() - t0
    return b.result(), ended


def row(name: str, rep: dict, base: dict | None, note: str) -> str:
    lat = rep["latency_us"]
    ratio = f"{lat['p99'] / base['latency_us']['p99']:.2f}x" if base else "1"
    return (f"| {name} | {rep['messages_ok']:,} | {lat['p50'] / 1000:.2f} | {lat['p99'] / 1000:.2f} | "
            f"{lat['p999'] / 1000:.2f} | {lat['max'] / 1000:.1f} | {ratio} | {note} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000, help="inbound messages/s (default 1000)")
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--seconds", type=float, default=10, help="baseline and retire window (s)")
    ap.add_argument("--batch-seconds", type=float, default=10, help="batch window (s)")
    ap.add_argument("--recipients", type=int, default=1_000_000)
    ap.add_argument("--batch-domains", type=int, default=100)
    ap.add_argument("--prefill-mb", type=int, default=200)
    ap.add_argument("--prefill-size", type=int, default=60000)
    ap.add_argument("--strace", action="store_true",
                    help="strace -T the shard threads in each window: its slowest calls (slows them)")
    ap.add_argument("--perf", action="store_true",
                    help="perf record the shard and pickup threads in each window: their top symbols")
    ap.add_argument("--keep", action="store_true")
    o = ap.parse_args()
    common.raise_nofile()
    work = common.make_workdir("sluice-bench-ingest-")
    common.log(f"work directory {work}, sluice {common.sluice_bin()}")
    pickup = work / "pickup"
    for d in ("tmp", "new", "bad"):
        (pickup / d).mkdir(parents=True)
    src = batch.make_batch(pickup / "tmp", o.recipients, o.batch_domains)
    results = {}
    try:
        http_port = common.free_port()
        with common.Sink(work) as sink, \
                common.Sluice(work, ["--shards", str(SHARDS), "--pickup", str(pickup), "--http",
                                     f"127.0.0.1:{http_port}", "--route", f"*=[127.0.0.1]:{sink.port}"],
                              name="relay") as s:
            s.http_port = http_port
            for j in range(o.batch_domains):
                queue(s, "hold", "--domain", f"d{j}.example.com")
            queue(s, "hold", "--domain", "d1.example")
            common.log(f"baseline: {o.rate:.0f} msgs/s for {o.seconds:.0f} s")
            results["baseline"] = measure(s, o, o.seconds)
            n = o.prefill_mb * 1_000_000 // o.prefill_size
            common.log(f"prefill: {n} messages of {o.prefill_size} bytes to d1.example (held)")
            rep = common.blast(s.port, n, o.prefill_size, domains=2, connections=16,
                               extra=["--domain-weights", "0,1"])
            if rep["messages_ok"] != n:
                raise RuntimeError(f"prefill: {rep}")
            before = segments_removed(s)
            common.log(f"retire: release d1.example 0.5 s into the window (segments_removed {before})")
            results["retire"] = measure(
                s, o, o.seconds, lambda: queue(s, "release", "--domain", "d1.example"),
                lambda: any(a > b for a, b in zip(segments_removed(s), before)))
            results["retire_segments"] = [a - b for a, b in zip(segments_removed(s), before)]
            common.log(f"batch: {o.recipients} recipients renamed into new/ 0.5 s into the window")
            results["batch"] = measure(
                s, o, o.batch_seconds, lambda: os.rename(src, pickup / "new" / src.name),
                lambda: b"key=pickup.batch_queued" in Path(s.err_path).read_bytes())
    finally:
        if not o.keep:
            shutil.rmtree(work, ignore_errors=True)
    base = results["baseline"][0]
    ret, ret_end = results["retire"]
    bat, bat_end = results["batch"]
    print(f"Inbound {o.rate:.0f} msgs/s of {o.size} B over {o.connections} connections, "
          f"{SHARDS} shards, latency end of data -> 250 (ms):\n")
    print("| window | messages | p50 | p99 | p99.9 | max | p99 / baseline | what happened |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("baseline", base, None, f"{o.seconds:.0f} s of steady load"))
    print(row("segments retired", ret, base,
              f"{o.prefill_mb} MB backlog released at 0.5 s; segments removed per shard "
              f"{results['retire_segments']} by {ret_end:.1f} s of {o.seconds:.0f} s"))
    print(row(f"{o.recipients:,}-recipient batch ingested", bat, base,
              f"{o.recipients:,} recipients renamed in at 0.5 s, durably queued at {bat_end:.1f} s "
              f"of {o.batch_seconds:.0f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
