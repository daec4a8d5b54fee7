#!/usr/bin/python3
"""A big queue that waits: memory per queued recipient and CPU while idle.

Sluice accepts --messages one-recipient messages (sluice-blast, --domains
destination domains) that it cannot deliver yet, then sits on them:

  deferred   every destination routes to a closed port on 127.0.0.9: the
             first attempt fails at connect and each job waits for its retry
             ([retry] initial = 1h);
  throttled  every destination is rate-limited to one message per hour
             ([[shaping]] messages_per_hour = 1): after each domain's first
             delivery the rest waits in the ready queue for its token.

Reported: RSS after the backlog settled minus RSS of the idle daemon, per
queued recipient; and the daemon's CPU time over --idle seconds of waiting
(target: about zero: a throttled domain sleeps until its next token).

    bench/backlog.py [--messages 1000000] [--domains 10000] [--idle 10]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import cpu_seconds, free_port, status_kib  # noqa: E402


def queued_recipients(spool):
    """Sum of 'recipients' over the running daemon's queues (queue list --json)."""
    r = subprocess.run([common.sluice_bin(), "queue", "list", "--json", "--spool", str(spool)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return -1
    return sum(o["recipients"] + o["in_flight"] for o in json.loads(r.stdout))


def run(mode: str, work: Path, *, messages: int, domains: int, size=512, idle=10.0,
        connections=50) -> dict:
    """One backlog ("deferred" or "throttled") of `messages` one-recipient
    messages over `domains` domains; returns its memory and idle CPU."""
    if mode not in ("deferred", "throttled"):
        raise ValueError(f"unknown backlog mode {mode!r}")
    if mode == "deferred":
        toml = '[retry]\ninitial = "1h"\n'
    else:
        toml = '[[shaping]]\npattern = "*"\nmessages_per_hour = 1\n'
    cfg = work / f"{mode}.toml"
    cfg.write_text(toml)
    sink = None
    if mode == "throttled":
        sink_port = free_port("127.0.0.9")
        sink = subprocess.Popen([common.tool("sluice-sink"), "--listen", f"127.0.0.9:{sink_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        route = f"*=[127.0.0.9]:{sink_port}"
    else:
        route = f"*=[127.0.0.9]:{free_port('127.0.0.9')}"  # closed: connect fails
    try:
        with common.Sluice(work, ["--config", str(cfg), "--shards", "2", "--route", route],
                           name=f"backlog-{mode}", log=False) as s:
            time.sleep(1)
            base_rss = status_kib(s.pid, "VmRSS")
            start = time.monotonic()
            common.blast(s.port, messages, size, domains=domains, connections=connections,
                         timeout=1800)
            ingest = time.monotonic() - start
            # Settled: every recipient is in a queue (deferred, or waiting for
            # its token after each domain's first delivery) and nothing moves.
            expect = messages - (min(domains, messages) if mode == "throttled" else 0)
            deadline = time.monotonic() + 600
            n = queued_recipients(s.spool)
            while n < expect:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: only {n} of {expect} recipients queued after "
                                       "600 s")
                time.sleep(0.5)
                n = queued_recipients(s.spool)
            time.sleep(2)
            rss = status_kib(s.pid, "VmRSS")
            cpu0 = cpu_seconds(s.pid)
            time.sleep(idle)
            cpu1 = cpu_seconds(s.pid)
            queued = queued_recipients(s.spool)
            return {
                "mode": mode,
                "messages": messages,
                "queued": queued,
                "ingest_s": ingest,
                "rss_mib": rss / 1024,
                "base_rss_mib": base_rss / 1024,
                "bytes_per_recipient": (rss - base_rss) * 1024 / max(1, queued),
                "idle_s": idle,
                "idle_cpu_s": cpu1 - cpu0,
            }
    finally:
        if sink:
            common.stop_process(sink, timeout=10)


def measure(*, messages=1_000_000, domains=10_000, size=512, idle=10.0,
            modes=("deferred", "throttled"), work=None) -> list:
    own = work is None
    work = Path(work) if work else common.make_workdir("sluice-backlog-")
    try:
        out = []
        for m in modes:
            out.append(run(m, work, messages=messages, domains=domains, size=size, idle=idle))
            common.log(f"backlog {m}: {out[-1]['queued']:,} queued, "
                       f"{out[-1]['bytes_per_recipient']:.0f} B/recipient, "
                       f"{out[-1]['idle_cpu_s']:.2f} s CPU idle")
        return out
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def table(rows: list) -> str:
    idle = rows[0]["idle_s"] if rows else 0
    lines = ["| backlog | recipients queued | ingest | daemon RSS | bytes / queued recipient "
             f"| CPU over {idle:.0f} s of waiting |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['queued']:,} | {r['ingest_s']:.1f} s "
                     f"| {r['rss_mib']:.0f} MiB (idle daemon {r['base_rss_mib']:.0f} MiB) "
                     f"| {r['bytes_per_recipient']:.0f} | {r['idle_cpu_s']:.2f} s |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--domains", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--modes", default="deferred,throttled")
    args = ap.parse_args()
    common.raise_nofile()
    rows = measure(messages=args.messages, domains=args.domains, size=args.size, idle=args.idle,
                   modes=[m for m in args.modes.split(",") if m])
    print(table(rows))


if __name__ == "__main__":
    main()
