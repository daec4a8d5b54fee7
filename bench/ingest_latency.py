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
            must grow on every shard within the window);
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
import shutil
import subprocess
import sys
import threading
import time
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


def measure(s: common.Sluice, o, seconds: float, event=None, done=None) -> tuple[dict, float]:
    """One blast window of `seconds`; `event()` runs 0.5 s in and `done()`
    must turn true before the window ends. Returns blast's report and when
    the event was done (s after the window's start)."""
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
        with common.Sink(work) as sink, \
                common.Sluice(work, ["--shards", str(SHARDS), "--pickup", str(pickup),
                                     "--route", f"*=[127.0.0.1]:{sink.port}"], name="relay") as s:
            for j in range(o.batch_domains):
                queue(s, "hold", "--domain", f"d{j}.example.com")
            queue(s, "hold", "--domain", "d1.example")
            common.log(f"baseline: {o.rate:.0f} msgs/s for {o.seconds:.0f} s")
            results["baseline"] = measure(s, o, o.seconds)
            n = o.prefill_mb * 1_000_000 // o.prefill_size
            common.log(f"prefill: {n} messages of {o.prefill_size} bytes to d1.example (held)")
            rep = common.blast(s.port, n, o.prefill_size, domains=2, connections=8,
                               extra=["--domain-weights", "0,1"])
            if rep["messages_ok"] != n:
                raise RuntimeError(f"prefill: {rep}")
            before = segments_removed(s)
            common.log(f"retire: release d1.example 0.5 s into the window (segments_removed {before})")
            results["retire"] = measure(
                s, o, o.seconds, lambda: queue(s, "release", "--domain", "d1.example"),
                lambda: all(a > b for a, b in zip(segments_removed(s), before)))
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
    print(row("1M-recipient batch ingested", bat, base,
              f"{o.recipients:,} recipients renamed in at 0.5 s, durably queued at {bat_end:.1f} s "
              f"of {o.batch_seconds:.0f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
