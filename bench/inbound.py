#!/usr/bin/python3
"""Inbound acceptance, side by side in one run: Postfix's smtp-source pours
messages over 50 connections into (a) smtp-sink, which stores nothing (the
client's own ceiling), (b) Sluice, fsyncing every message before its 250, and
(c) a private Postfix whose smtpd/cleanup fsync each message into the hold
queue (durable, never delivered). Runs are interleaved and repeated; only the
ratios within one run mean anything on a noisy machine.

    bench/inbound.py [--reps 3] [--messages 10000] [--postfix-messages 4000]

Prints a Markdown table (median/min/max msgs/s, ratios) and peak memory:
Sluice's peak RSS (VmHWM) and the peak total PSS of Postfix's processes.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))
LIB = os.path.join(ROOT, "bench", "lib.sh")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
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


def pss_tree_kib(root_pid):
    """Total PSS of a process and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.peak, self.stop = fn, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.fn())
            except Exception:
                pass
            time.sleep(0.2)


def smtp_source(port, messages, size):
    start = time.monotonic()
    r = subprocess.run(["smtp-source", "-s", "50", "-m", str(messages), "-l", str(size),
                        "-f", "bench@source.test", "-t", "rcpt@dest.test",
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {r.stderr.strip()}")
    return messages / elapsed


def run_sink(messages, size, work):
    port = free_port()
    p = subprocess.Popen(["smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "1000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        return smtp_source(port, messages, size), 0
    finally:
        p.terminate()
        p.wait()


def run_sluice(messages, size, work):
    port = free_port()
    spool = os.path.join(work, "sluice-spool")
    shutil.rmtree(spool, ignore_errors=True)
    p = subprocess.Popen([SLUICE, "serve", "--listen", f"127.0.0.1:{port}", "--spool", spool,
                          "--log", os.path.join(work, "sluice.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def hwm():
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0
    try:
        wait_port(port)
        rate = smtp_source(port, messages, size)
        peak = hwm()
        listing = subprocess.run([SLUICE, "queue", "messages", "--spool", spool],
                                 capture_output=True, text=True, check=True).stdout
        queued = len(listing.splitlines())
        if queued != messages:
            raise RuntimeError(f"sluice queued {queued} of {messages}")
        return rate, peak
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def run_postfix(messages, size, work):
    port = free_port()
    pf = os.path.join(work, "postfix")
    subprocess.run(["bash", "-c", f"source {LIB}; postfix_setup {pf} {port} hold"], check=True)
    try:
        wait_port(port)
        with open(os.path.join(pf, "queue", "pid", "master.pid")) as f:
            master = int(f.read().strip())
        sampler = PeakSampler(lambda: pss_tree_kib(master))
        sampler.start()
        rate = smtp_source(port, messages, size)
        sampler.stop.set()
        sampler.join()
        return rate, sampler.peak
    finally:
        subprocess.run(["postfix", "-c", os.path.join(pf, "etc"), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--postfix-messages", type=int, default=4000)
    ap.add_argument("--sizes", default="2048,20480")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-bench-")
    os.chmod(work, 0o755)  # Postfix daemons run as the postfix user
    rows = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            rates = {"sink": [], "sluice": [], "postfix": []}
            mem = {"sluice": 0, "postfix": 0}
            for rep in range(args.reps):
                for name, fn, n in (("sink", run_sink, args.messages),
                                    ("sluice", run_sluice, args.messages),
                                    ("postfix", run_postfix, args.postfix_messages)):
                    rate, peak = fn(n, size, work)
                    rates[name].append(rate)
                    mem[name] = max(mem.get(name, 0), peak)
                    print(f"size={size} rep={rep} {name}: {rate:.0f} msgs/s"
                          + (f", peak {peak/1024:.1f} MiB" if peak else ""),
                          file=sys.stderr, flush=True)
            rows.append((size, rates, mem))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| message | smtp-sink (no storage) | Sluice (fsync) | Postfix (fsync) "
          "| Sluice / sink | Sluice / Postfix | Sluice peak RSS | Postfix peak PSS |")
    print("|---|---|---|---|---|---|---|---|")
    for size, rates, mem in rows:
        med = {k: statistics.median(v) for k, v in rates.items()}
        fmt = lambda k: f"{med[k]:.0f} ({min(rates[k]):.0f}–{max(rates[k]):.0f})"
        print(f"| {size // 1024} KB | {fmt('sink')} | {fmt('sluice')} | {fmt('postfix')} "
              f"| {med['sluice'] / med['sink']:.2f} | {med['sluice'] / med['postfix']:.1f}× "
              f"| {mem['sluice'] / 1024:.1f} MiB | {mem['postfix'] / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
