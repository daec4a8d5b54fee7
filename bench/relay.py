#!/usr/bin/python3
"""End-to-end relay, side by side in one run: the same load generator
(sluice-blast) drives

  (a) ceiling   blast -> sluice-sink directly (nothing relays);
  (b) Sluice    blast -> Sluice -> sinks: recipients spread over --domains
                destination domains (d0.example ...), whose MX records
                (dnsmasq on 127.0.0.1) point at four sink addresses
                127.0.0.2-5; Sluice resolves, queues per domain, and
                delivers over pipelined, reused connections; every message
                is fdatasynced before its 250 and retired (tombstoned) after
                delivery;
  (c) Postfix   blast -> a private Postfix -> sink, relayhost to the sink
                (the fair bulk settings of bench/lib.sh; no DNS at all);

and, as the outside reference, Postfix's smtp-source into Sluice relaying to
smtp-sink. A run ends when the sink has counted every message (SIGUSR1 stats);
rate = messages / (first byte sent .. last message at the sink). Runs are
interleaved and repeated: only ratios within one run mean anything here.

    bench/relay.py [--reps 3] [--messages 20000] [--postfix-messages 3000]
                   [--domains 1000] [--sizes 2048,20480] [--connections 50]

Prints a Markdown table: median (min-max) msgs/s per row, Sluice / Postfix,
Sluice / ceiling.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLUICE = os.environ.get("SLUICE_BIN", str(ROOT / "build" / "sluice"))
TOOLS = Path(os.environ.get("SLUICE_TOOLS_DIR", str(Path(SLUICE).parent / "tools")))
LIB = ROOT / "bench" / "lib.sh"
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from delivery_peers import DnsServer  # noqa: E402  (dnsmasq, shared with the tests)

SINK_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(host, port, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {host}:{port} never opened")


class Sink:
    """One sluice-sink process listening on 127.0.0.1 and the four MX addresses."""

    def __init__(self, work):
        self.port = free_port()
        self.stats_path = Path(work) / f"sink-{self.port}.json"
        cmd = [str(TOOLS / "sluice-sink"), "--stats-json", str(self.stats_path)]
        for h in ["127.0.0.1"] + SINK_HOSTS:
            cmd += ["--listen", f"{h}:{self.port}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def messages(self):
        before = self.stats_path.stat().st_mtime_ns if self.stats_path.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.stats_path.exists() and self.stats_path.stat().st_mtime_ns != before:
                break
            time.sleep(0.01)
        stats = json.loads(self.stats_path.read_text())
        if stats.get("digest_mismatch", 0):
            raise RuntimeError(f"sink saw {stats['digest_mismatch']} corrupted messages")
        return stats["messages"]

    def wait_for(self, n, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = self.messages()
            if got >= n:
                return time.monotonic()
            time.sleep(0.05)
        raise RuntimeError(f"sink got {self.messages()} of {n} messages in {seconds} s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def blast(port, messages, size, domains, connections):
    cmd = [str(TOOLS / "sluice-blast"), "--target", f"127.0.0.1:{port}", "--connections",
           str(connections), "--messages", str(messages), "--size", str(size), "--domains",
           str(domains), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"sluice-blast failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


def run_ceiling(args, size, work, dns):
    sink = Sink(work)
    try:
        start = time.monotonic()
        blast(sink.port, args.messages, size, args.domains, args.connections)
        end = sink.wait_for(args.messages, 60)
        return args.messages / (end - start)
    finally:
        sink.stop()


def start_sluice(work, sink_port, extra):
    port = free_port()
    spool = Path(work) / "sluice-spool"
    shutil.rmtree(spool, ignore_errors=True)
    p = subprocess.Popen([SLUICE, "serve", "--listen", f"127.0.0.1:{port}", "--spool", str(spool),
                          "--log", str(Path(work) / "sluice.log"), "--mx-port", str(sink_port)]
                         + extra, stdout=subprocess.DEVNULL,
                         stderr=open(Path(work).parent / "sluice-relay-bench.err", "ab"))
    wait_port("127.0.0.1", port)
    return p, port


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_sluice(args, size, work, dns):
    sink = Sink(work)
    p, port = start_sluice(work, sink.port, ["--dns", dns.spec])
    try:
        start = time.monotonic()
        blast(port, args.messages, size, args.domains, args.connections)
        end = sink.wait_for(args.messages, 300)
        return args.messages / (end - start)
    finally:
        stop(p)
        sink.stop()


def run_sluice_smtp_source(args, size, work, dns):
    """The outside reference: smtp-source -> Sluice -> smtp-sink (one route)."""
    sink_port = free_port()
    counter = Path(work) / "smtp-sink.count"
    sink = subprocess.Popen(["smtp-sink", "-u", "postfix", f"127.0.0.1:{sink_port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", sink_port)
    p, port = start_sluice(work, sink_port, ["--route", f"*=[127.0.0.1]:{sink_port}"])
    log = Path(work) / "sluice.log"
    try:
        n = args.postfix_messages * 2
        start = time.monotonic()
        r = subprocess.run(["smtp-source", "-s", "50", "-m", str(n), "-l", str(size), "-f",
                            "bench@source.test", "-t", "rcpt@dest.test", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {r.stderr.strip()}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count('"type":"Delivery"') >= n:
                return n / (time.monotonic() - start)
            time.sleep(0.05)
        raise RuntimeError("smtp-source -> sluice -> smtp-sink did not finish")
    finally:
        stop(p)
        sink.terminate()
        sink.wait()
        counter.unlink(missing_ok=True)


def run_postfix(args, size, work, dns):
    sink = Sink(work)
    port = free_port()
    pf = Path(work) / "postfix"
    subprocess.run(["bash", "-c", f"source {LIB}; postfix_setup {pf} {port} {sink.port}"],
                   check=True)
    try:
        wait_port("127.0.0.1", port)
        start = time.monotonic()
        blast(port, args.postfix_messages, size, args.domains, args.connections)
        end = sink.wait_for(args.postfix_messages, 600)
        return args.postfix_messages / (end - start)
    finally:
        subprocess.run(["postfix", "-c", str(pf / "etc"), "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        sink.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--postfix-messages", type=int, default=3000)
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--sizes", default="2048,20480")
    ap.add_argument("--rows", default="ceiling,sluice,postfix,reference")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = tempfile.mkdtemp(prefix="sluice-relay-")
    os.chmod(work, 0o755)  # Postfix daemons run as the postfix user
    dns = DnsServer(Path(work) / "dns", zones=("example",), ttl=3600)
    for i, h in enumerate(SINK_HOSTS):
        dns.a(f"mx{i}.sinks.example", h)
    for d in range(args.domains):
        dns.mx(f"d{d}.example", [(10, f"mx{d % len(SINK_HOSTS)}.sinks.example")])
    dns.apply()
    runners = {"ceiling": run_ceiling, "sluice": run_sluice, "postfix": run_postfix,
               "reference": run_sluice_smtp_source}
    wanted = [r for r in args.rows.split(",") if r]
    table = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            rates = {k: [] for k in wanted}
            for rep in range(args.reps):
                for name in wanted:
                    rate = runners[name](args, size, work, dns)
                    rates[name].append(rate)
                    print(f"size={size} rep={rep} {name}: {rate:.0f} msgs/s", file=sys.stderr,
                          flush=True)
            table.append((size, rates))
    finally:
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)
    cols = [c for c in ("ceiling", "sluice", "postfix", "reference") if c in wanted]
    names = {"ceiling": "blast→sink (ceiling)", "sluice": "blast→Sluice→sinks",
             "postfix": "blast→Postfix→sink", "reference": "smtp-source→Sluice→smtp-sink"}
    print("| message | " + " | ".join(names[c] for c in cols)
          + " | Sluice / Postfix | Sluice / ceiling |")
    print("|---" * (len(cols) + 3) + "|")
    for size, rates in table:
        med = {k: statistics.median(v) for k, v in rates.items()}
        cells = [f"{med[c]:.0f} ({min(rates[c]):.0f}–{max(rates[c]):.0f})" for c in cols]
        vs_pf = f"{med['sluice'] / med['postfix']:.1f}×" if "postfix" in med and "sluice" in med else "-"
        vs_ceiling = (f"{med['sluice'] / med['ceiling']:.2f}" if "ceiling" in med and "sluice" in med
                      else "-")
        print(f"| {size // 1024} KB | " + " | ".join(cells) + f" | {vs_pf} | {vs_ceiling} |")


if __name__ == "__main__":
    main()
