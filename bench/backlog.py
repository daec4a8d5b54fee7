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
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLUICE = os.environ.get("SLUICE_BIN", str(ROOT / "build" / "sluice"))
TOOLS = Path(os.environ.get("SLUICE_TOOLS_DIR", str(Path(SLUICE).parent / "tools")))


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queued_recipients(spool):
    """Sum of 'recipients' over the running daemon's queues (queue list --json)."""
    r = subprocess.run([SLUICE, "queue", "list", "--json", "--spool", str(spool)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return -1
    total = 0
    for line in r.stdout.splitlines():
        o = json.loads(line)
        total += o["recipients"] + o["in_flight"]
    return total


def run(mode, args, work):
    spool = work / f"spool-{mode}"
    shutil.rmtree(spool, ignore_errors=True)
    port = free_port()
    dead_port = free_port("127.0.0.9")
    if mode == "deferred":
        toml = '[retry]\ninitial = "1h"\n'
    else:
        toml = '[[shaping]]\npattern = "*"\nmessages_per_hour = 1\n'
    cfg = work / f"{mode}.toml"
    cfg.write_text(toml)
    route = f"*=[127.0.0.9]:{dead_port}" if mode == "deferred" else None
    sink = None
    extra = []
    if mode == "throttled":
        sink_port = free_port()
        sink = subprocess.Popen([str(TOOLS / "sluice-sink"), "--listen", f"127.0.0.9:{sink_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        route = f"*=[127.0.0.9]:{sink_port}"
    extra = ["--route", route]
    p = subprocess.Popen([SLUICE, "serve", "--listen", f"127.0.0.1:{port}", "--spool", str(spool),
                          "--config", str(cfg), "--shards", "2"] + extra,
                         stdout=subprocess.DEVNULL, stderr=open(work / f"{mode}.err", "wb"))
    try:
        wait_port(port)
        time.sleep(1)
        base_rss = status_kib(p.pid, "VmRSS")
        start = time.monotonic()
        r = subprocess.run([str(TOOLS / "sluice-blast"), "--target", f"127.0.0.1:{port}",
                            "--connections", "50", "--messages", str(args.messages), "--size",
                            str(args.size), "--domains", str(args.domains), "--json"],
                           capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(f"blast failed: {r.stderr[-300:]}")
        ingest = time.monotonic() - start
        # Settled: every recipient is in a queue (deferred or waiting for its
        # token) and nothing is moving.
        expect = args.messages - (args.domains if mode == "throttled" else 0)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = queued_recipients(spool)
            if n >= expect:
                break
            time.sleep(1)
        time.sleep(2)
        rss = status_kib(p.pid, "VmRSS")
        cpu0 = cpu_seconds(p.pid)
        time.sleep(args.idle)
        cpu1 = cpu_seconds(p.pid)
        queued = queued_recipients(spool)
        return {
            "mode": mode,
            "queued": queued,
            "ingest_s": ingest,
            "rss_mib": rss / 1024,
            "base_rss_mib": base_rss / 1024,
            "bytes_per_recipient": (rss - base_rss) * 1024 / max(1, queued),
            "idle_cpu_s": cpu1 - cpu0,
        }
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        if sink:
            sink.terminate()
            sink.wait()
        shutil.rmtree(spool, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--domains", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--modes", default="deferred,throttled")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = Path(tempfile.mkdtemp(prefix="sluice-backlog-"))
    try:
        rows = [run(m, args, work) for m in args.modes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| backlog | recipients queued | ingest | daemon RSS | bytes / queued recipient "
          f"| CPU over {args.idle:.0f} s of waiting |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['queued']:,} | {r['ingest_s']:.1f} s | {r['rss_mib']:.0f} MiB "
              f"(idle daemon {r['base_rss_mib']:.0f} MiB) | {r['bytes_per_recipient']:.0f} "
              f"| {r['idle_cpu_s']:.2f} s |")


if __name__ == "__main__":
    main()
