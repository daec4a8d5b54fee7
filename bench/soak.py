#!/usr/bin/python3
"""The load-and-soak benchmark (issue 9, "Load and soak"); bench/soak runs it
in a private network namespace. Not run in CI: an engineer runs it by hand.

  1. The maximum relay rate: blast -> Sluice -> sinks, 2 KB messages over
     --connections, recipients spread over --domains normal domains (MX
     records from dnsmasq pointing at a sluice-sink on 127.0.0.2-5); rate =
     messages / (first byte .. last message at the sink). --max-rate skips it.
  2. The soak, for --minutes, into a fresh Sluice with the same peers:
     - sluice-blast at --rate-fraction of that rate (--rate), one blast run
       per minute so each minute has its own blast p50/p99;
     - tricklers (Python, bench/soak_clients.py): DATA as 3-byte lines or
       1,448-byte segments a few ms apart, each message ending in "." and
       expecting 250;
     - TLS sessions: STARTTLS and a full handshake per message (a
       self-signed certificate, as bench/tls.py makes);
     - DNS failures: recipient domains whose MX lookup gets SERVFAIL (a
       responder here), never an answer (a dead server dnsmasq forwards to),
       NXDOMAIN, or a null MX;
     - deferrals: the sink answers 451 to half the recipients of some
       domains (delivered on a retry) and to all of one (they expire).
     Retries and the queue lifetime are short (--max-age, default a sixth of
     the run, at most 5 min; four retries in it), so the queue reaches a
     steady state early and expirations happen during the run.
  3. Every --sample-seconds (10): Sluice's RSS, open descriptors, queue depth
     (live messages, `sluice queue stats`) and the accounting log's counts;
     one line per minute with the 250 latency (p50/p99) of the Python
     clients' messages and blast's.
  4. At the end (load stopped, the queue drained for --drain-seconds, Sluice
     stopped cleanly): every message accepted (a Reception record) must be
     final (Delivery, Bounce or Expiration) or still in the spool; the sink
     must have counted one message per Delivery record; every client's 250
     must have its Reception; no client may have missed a 250; RSS, fds and
     queue depth after the warm-up (--max-age plus one retry) must stay
     flat: the last third's mean within 20 % (plus a small floor) of the
     first third's; slopes are reported. Exit 1 when any check fails.

Prints a Markdown report (or writes it to --report) for docs/BENCHMARKS.md.
Trusts the peers it starts; every wait is bounded; everything it starts is
stopped by PID; only loopback addresses are used.

    bench/soak.py --build-dir build-release [--minutes 30] [--rate-fraction 0.7]
                  [--max-rate N] [--report FILE] ...     (--help for all)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import soak_clients  # noqa: E402
import suite  # noqa: E402  (machine and version facts for the report)
import tls  # noqa: E402  (make_cert)

SIZE = 2048
SENDER_DOMAINS = ["blast.sluice.test", "trickle.soak.test", "tls.soak.test"]  # DSNs go here
# The failing domains, after the normal ones (d<N>.example, d<N+1>...):
# behaviour: (how many domains, blast weight of each (a normal domain weighs
# 1), the accounting records each must produce in any run).
SPECIAL = {
    # the sink answers 451 to half their recipients (at random): delivered on a retry
    "defer-half": (4, 10, ("TransientFailure", "Delivery")),
    # 451 always: retried until --max-age, then Expiration and a DSN
    "defer-all": (1, 5, ("TransientFailure",)),
    # the MX lookup gets SERVFAIL: retried, then expires
    "servfail": (1, 10, ("TransientFailure",)),
    # the MX lookup is never answered (dns_timeout, dns_tries): retried, then expires
    "dns-timeout": (1, 10, ("TransientFailure",)),
    # no such domain: Bounce and a DSN at once
    "nxdomain": (1, 5, ("Bounce",)),
    # MX 0 "." (RFC 7505): Bounce and a DSN at once
    "null-mx": (1, 5, ("Bounce",)),
}
GROWTH_LIMIT = 1.2  # last third's mean / first third's, after the warm-up
GROWTH_FLOOR = {"rss_kib": 4096, "fds": 20, "queue": 200}  # and at least this much more
MIN_FLAT_SAMPLES = 6  # fewer samples after the warm-up: too short to judge


# ---------------------------------------------------------------------------
# Domains, DNS and the sink's script
# ---------------------------------------------------------------------------


class Domains:
    """The recipient domains: d0..d{normal-1}.example deliver; then SPECIAL."""

    def __init__(self, normal: int):
        self.normal = normal
        self.special = {}  # behaviour -> [domain, ...]
        self.weights = [1] * normal
        for kind, (count, weight, _) in SPECIAL.items():
            first = len(self.weights)
            self.special[kind] = [f"d{first + i}.example" for i in range(count)]
            self.weights += [weight] * count
        self._cum = []
        total = 0
        for w in self.weights:
            total += w
            self._cum.append(total)

    def pick_rcpt(self) -> str:
        d = random.choices(range(len(self.weights)), cum_weights=self._cum)[0]
        return f"u{random.randrange(100000)}@d{d}.example"

    def kinds(self) -> dict:
        """{failing domain: its behaviour}."""
        return {d: kind for kind, ds in self.special.items() for d in ds}

    def failing_share(self) -> float:
        return 1 - self.normal / self._cum[-1]

    def sink_script(self) -> str:
        rules = [f"match=*@{d} action=tempfail percent=50" for d in self.special["defer-half"]]
        rules += [f"match=*@{d} action=tempfail" for d in self.special["defer-all"]]
        return "\n".join(rules) + "\n"


class ServfailDns:
    """A UDP DNS responder on 127.0.0.1 answering SERVFAIL to every query
    (dnsmasq forwards the servfail domain to it)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.halt.is_set():
            try:
                q, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            if len(q) < 12:
                continue
            rd = struct.unpack("!H", q[2:4])[0] & 0x0100
            flags = 0x8000 | rd | 0x0080 | 2  # QR, RD as asked, RA, RCODE 2
            self.sock.sendto(q[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + q[12:], addr)

    def stop(self):
        self.halt.set()
        self.thread.join()
        self.sock.close()


def start_dns(work: Path, domains: Domains):
    """dnsmasq (tests/integration/delivery_peers.DnsServer) for the zones
    `example` and `test`, with the failing domains forwarded to a SERVFAIL
    responder and to a server that never answers. Returns (dnsmasq, [the
    two helpers])."""
    sys.path.insert(0, str(common.ROOT / "tests" / "integration"))
    from delivery_peers import DeadDns, DnsServer

    servfail, dead = ServfailDns(), DeadDns()
    forward = {d: servfail.port for d in domains.special["servfail"]}
    forward.update({d: dead.port for d in domains.special["dns-timeout"]})

    class SoakDns(DnsServer):
        def config_text(self):
            return super().config_text() + "".join(
                f"server=/{d}/127.0.0.1#{p}\n" for d, p in forward.items())

    dns = SoakDns(work / "dns", zones=("example", "test"), ttl=3600)
    for i, h in enumerate(common.SINK_HOSTS):
        dns.a(f"mx{i}.sinks.example", h)
    mx_of = lambda i: [(10, f"mx{i % len(common.SINK_HOSTS)}.sinks.example")]  # noqa: E731
    for i in range(domains.normal):
        dns.mx(f"d{i}.example", mx_of(i))
    for i, d in enumerate(domains.special["defer-half"] + domains.special["defer-all"]
                          + SENDER_DOMAINS):
        dns.mx(d, mx_of(i))
    for d in domains.special["null-mx"]:
        dns.null_mx(d)
    dns.apply()  # nxdomain: simply not configured
    return dns, [servfail, dead]


# ---------------------------------------------------------------------------
# Sluice: configuration, probes
# ---------------------------------------------------------------------------


def sluice_args(work: Path, args, dns, sink, cert) -> list:
    conf = work / "soak.toml"
    conf.write_text(f'[retry]\nintervals = ["{int(args.retry_s * 1000)}ms"]\n'
                    f'max_age = "{int(args.max_age_s * 1000)}ms"\n')
    return ["--config", str(conf), "--dns", dns.spec, "--mx-port", str(sink.port),
            "--tls-cert", str(cert[0]), "--tls-key", str(cert[1])]


def queue_depth(spool: Path) -> int:
    """Live messages in the running daemon's spool, over all shards."""
    out = subprocess.run([common.sluice_bin(), "queue", "stats", "--spool", str(spool)],
                         capture_output=True, text=True, timeout=30).stdout
    # One JSON document: {"shards": [...], "totals": {...}} (queue-tools).
    return json.loads(out)["totals"].get("live_messages", 0) if out.strip() else 0


def probe(pid: int, spool: Path) -> dict:
    """RSS, open descriptors and queue depth of a running Sluice."""
    return {"rss_kib": common.status_kib(pid, "VmRSS"), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "queue": queue_depth(spool)}


def max_relay_rate(work: Path, args, dns, sink, cert) -> float:
    """blast -> a fresh Sluice -> the sink, normal domains only."""
    before = sink.messages()
    with common.Sluice(work, sluice_args(work, args, dns, sink, cert), name="probe") as s:
        start = time.monotonic()
        common.blast(s.port, args.probe_messages, SIZE, domains=args.domains,
                     connections=args.connections)
        end = sink.wait_for(before + args.probe_messages, 600)
    return args.probe_messages / (end - start)


# ---------------------------------------------------------------------------
# The accounting log, read as it grows
# ---------------------------------------------------------------------------


class LogTally:
    """Counts the accounting log's records by type and follows every
    accepted message (DSNs included: they have a Reception, protocol "DSN")
    until it is final, reading only what was appended since the last call.
    `open` maps a received message's id to its recipients not yet final
    (small: the queue, not the run). Shards write their own lines, so a
    final record can come before its message's Reception: it waits in
    `unmatched` until then; what is left there at the end is a final record
    of a message never received (a duplicate)."""

    FINAL = ("Delivery", "Bounce", "Expiration")

    def __init__(self, path: Path, kinds: dict):
        self.path, self.pos, self.rest = Path(path), 0, b""
        self.kinds = kinds  # failing domain -> its behaviour (SPECIAL)
        self.by_kind = {}  # behaviour -> {record type: count}
        self.counts = {t: 0 for t in ("Reception", "TransientFailure") + self.FINAL}
        self.by_helo = {}  # Reception records per client HELO name ("DSN" for DSNs)
        self.open = {}  # id -> recipients not final yet
        self.unmatched = {}  # id -> final records seen before (or without) a Reception

    def update(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        self.pos += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        for line in data[:cut].splitlines():
            self._line(json.loads(line))

    def _line(self, r: dict) -> None:
        kind = r.get("type")
        if kind not in self.counts:
            return
        self.counts[kind] += 1
        if kind == "Reception":
            helo = "DSN" if r.get("protocol") == "DSN" else r.get("helo", "")
            self.by_helo[helo] = self.by_helo.get(helo, 0) + 1
            early = self.unmatched.pop(r["id"], 0)
            n = len(r.get("recipients", [])) - early
            if n > 0:
                self.open[r["id"]] = self.open.get(r["id"], 0) + n
            elif n < 0:
                self.unmatched[r["id"]] = -n
            return
        if r.get("domain") in self.kinds:
            seen = self.by_kind.setdefault(self.kinds[r["domain"]], {})
            seen[kind] = seen.get(kind, 0) + 1
        if kind in self.FINAL:
            left = self.open.get(r["id"])
            if left is None:
                self.unmatched[r["id"]] = self.unmatched.get(r["id"], 0) + 1
            elif left <= 1:
                del self.open[r["id"]]
            else:
                self.open[r["id"]] = left - 1

    def finals(self) -> int:
        return sum(self.counts[t] for t in self.FINAL)


# ---------------------------------------------------------------------------
# The soak
# ---------------------------------------------------------------------------


def percentiles_ms(values: list) -> tuple:
    """(p50, p99) in milliseconds, or (None, None) for no values."""
    if not values:
        return None, None
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1000  # noqa: E731
    return pick(0.50), pick(0.99)


def start_blast(port: int, rate: float, seconds: float, args, domains: Domains, seed: int):
    cmd = [common.tool("sluice-blast"), "--target", f"127.0.0.1:{port}",
           "--connections", str(args.connections), "--duration", f"{seconds:.3f}",
           "--rate", f"{rate:.1f}", "--size", str(SIZE), "--domains", str(len(domains.weights)),
           "--domain-weights", ",".join(map(str, domains.weights)), "--seed", str(seed),
           "--expect-failures", "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Soak:
    """One soak run against a started Sluice: blast minute by minute, the
    Python clients throughout, samples every args.sample_s."""

    def __init__(self, sluice: common.Sluice, args, domains: Domains, rate: float):
        self.s, self.args, self.domains, self.rate = sluice, args, domains, rate
        self.tally = LogTally(sluice.log_path, domains.kinds())
        self.clients = soak_clients.Clients(
            "127.0.0.1", sluice.port, domains.pick_rcpt, tricklers=args.tricklers,
            tls=args.tls_clients)
        self.samples = []  # {"t": seconds since start, rss_kib, fds, queue, counts...}
        self.minutes = []  # one dict per blast segment (a minute)
        self.blast = []  # blast's JSON report per segment
        self.t0 = time.monotonic()
        self.next_sample = self.t0

    def sample(self) -> dict:
        if self.s.proc.poll() is not None:
            raise RuntimeError(f"sluice exited {self.s.proc.returncode} during the soak: "
                               f"{self.s.err_path.read_text()[-1000:]}")
        self.tally.update()
        row = probe(self.s.pid, self.s.spool)
        row.update(t=time.monotonic() - self.t0, **self.tally.counts)
        self.samples.append(row)
        return row

    def run(self) -> None:
        self.clients.start()
        total, k = self.args.duration_s, 0
        common.log(f"soak: {total:.0f} s, blast at {self.rate:,.0f} msgs/s, "
                   f"{self.args.tricklers} tricklers, {self.args.tls_clients} TLS clients")
        print(MINUTE_HEADER, file=sys.stderr, flush=True)
        while (elapsed := time.monotonic() - self.t0) < total - 0.5:
            self._segment(k, min(60.0, total - elapsed))
            k += 1
        self.clients.stop()

    def _segment(self, k: int, seconds: float) -> None:
        """One blast run of `seconds`, sampling while it runs."""
        start, before = time.monotonic(), (self.samples[-1] if self.samples else None)
        proc = start_blast(self.s.port, self.rate, seconds, self.args, self.domains, k + 1)
        while proc.poll() is None:
            if time.monotonic() >= self.next_sample:
                self.sample()
                self.next_sample += self.args.sample_s
            time.sleep(min(0.2, max(0.0, self.next_sample - time.monotonic())))
        out, err = proc.communicate()
        try:
            report = json.loads(out)
        except ValueError:
            raise RuntimeError(f"sluice-blast exited {proc.returncode}: {err.strip()[-500:]}")
        self.blast.append(report)
        row = self.sample()  # the minute's last sample; the next one not right after it
        self.next_sample = max(self.next_sample, time.monotonic() + self.args.sample_s / 2)
        self.minutes.append(minute_line(k, start - self.t0, before, row, report,
                                        self.clients.results.since(start)))
        print(format_minute(self.minutes[-1]), file=sys.stderr, flush=True)


MINUTE_HEADER = ("| min | RSS MiB | fds | queue | accepted | delivered | deferrals | bounced+expired "
                 "| clients' 250 p50 / p99 ms (n) | blast 250 p50 / p99 ms | blast msgs/s |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|")


def minute_line(k, t_start, before, row, blast_report, latencies) -> dict:
    """One minute: the last sample's gauges, the counts since the last
    minute, the clients' and blast's 250 latency."""
    prev = before or {}
    diff = lambda key: row[key] - prev.get(key, 0)  # noqa: E731
    lat = blast_report.get("latency_us", {})
    p50, p99 = percentiles_ms(latencies)
    return {"minute": k + 1, "t_start": t_start, "rss_kib": row["rss_kib"], "fds": row["fds"],
            "queue": row["queue"], "accepted": diff("Reception"),
            "delivered": diff("Delivery"), "deferrals": diff("TransientFailure"),
            "failed": diff("Bounce") + diff("Expiration"),
            "clients_p50_ms": p50, "clients_p99_ms": p99, "clients_n": len(latencies),
            "blast_p50_ms": lat.get("p50", 0) / 1000, "blast_p99_ms": lat.get("p99", 0) / 1000,
            "blast_rate": blast_report.get("messages_per_s", 0),
            "blast_failed": blast_report.get("messages_failed", 0)
            + blast_report.get("messages_not_sent", 0)}


def _ms(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def format_minute(m: dict) -> str:
    return (f"| {m['minute']} | {m['rss_kib'] / 1024:.1f} | {m['fds']} | {m['queue']:,} "
            f"| {m['accepted']:,} | {m['delivered']:,} | {m['deferrals']:,} | {m['failed']:,} "
            f"| {_ms(m['clients_p50_ms'])} / {_ms(m['clients_p99_ms'])} ({m['clients_n']}) "
            f"| {_ms(m['blast_p50_ms'])} / {_ms(m['blast_p99_ms'])} | {m['blast_rate']:,.0f} |")


# ---------------------------------------------------------------------------
# The end: drain, stop, account
# ---------------------------------------------------------------------------


def drain(soak: Soak, seconds: float) -> None:
    """Samples every 2 s until the queue is empty or `seconds` pass (what is
    left then waits for a retry: the accounting counts it as queued)."""
    deadline = time.monotonic() + seconds
    while soak.sample()["queue"] > 0 and time.monotonic() < deadline:
        time.sleep(2)


def spooled(spool: Path) -> dict:
    """{id: sender} of the messages in the spool (read from the files)."""
    out = subprocess.run([common.sluice_bin(), "queue", "messages", "--json", "--spool",
                          str(spool)], capture_output=True, text=True, check=True,
                         timeout=600).stdout
    # One JSON array (queue-tools), or the older one object per line.
    try:
        rows = json.loads(out) if out.strip() else []
    except json.JSONDecodeError:
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["id"]: r.get("sender", "") for r in rows}


def account(tally: LogTally, spool: dict, sink_stats: dict, sink_before: int, clients,
            blast_ok: int) -> dict:
    """The loss checks (see the module docstring). Each "problem" is a
    sentence; none means nothing was lost."""
    problems = []
    lost = [i for i in tally.open if i not in spool]
    if lost:
        problems.append(f"{len(lost)} accepted messages are neither final nor in the spool "
                        f"(e.g. {', '.join(lost[:5])})")
    stale = [i for i in spool if i not in tally.open]
    if stale:
        problems.append(f"{len(stale)} messages are in the spool though the log says they are "
                        f"final (e.g. {', '.join(stale[:5])})")
    if tally.unmatched:
        problems.append(f"{sum(tally.unmatched.values())} final records of messages never "
                        "received (duplicates?)")
    sink_got = sink_stats["messages"] - sink_before
    if sink_got != tally.counts["Delivery"]:
        problems.append(f"the sink counted {sink_got:,} messages for "
                        f"{tally.counts['Delivery']:,} Delivery records")
    if sink_stats.get("digest_mismatch"):
        problems.append(f"the sink saw {sink_stats['digest_mismatch']} corrupted messages")
    acked = {"blast.sluice.test": blast_ok,
             "trickle.soak.test": sum(v for k, v in clients.ok.items() if k.startswith("trickle")),
             "tls.soak.test": clients.ok["tls"]}
    for helo, n in acked.items():
        if tally.by_helo.get(helo, 0) < n:
            problems.append(f"{helo}: {n:,} messages got a 250 but only "
                            f"{tally.by_helo.get(helo, 0):,} Reception records")
    for kind, (_, _, expect) in SPECIAL.items():
        for t in expect:
            if not tally.by_kind.get(kind, {}).get(t):
                problems.append(f"no {t} record for the {kind} domains: that part of the mix "
                                "did not happen")
    failed = sum(clients.failed.values())
    if failed:
        problems.append(f"{failed} client messages did not get their 250: "
                        + "; ".join(f"{k} {r}: {n}" for (k, r), n in clients.failed.items()))
    return {"received": tally.counts["Reception"], "delivered": tally.counts["Delivery"],
            "bounced": tally.counts["Bounce"], "expired": tally.counts["Expiration"],
            "deferrals": tally.counts["TransientFailure"], "dsns": tally.by_helo.get("DSN", 0),
            "queued": len(tally.open) - len(lost), "spooled": len(spool), "sink": sink_got,
            "by_helo": dict(tally.by_helo), "acked": acked, "by_kind": tally.by_kind, "lost": len(lost),
            "problems": problems}


def client_summary(results) -> dict:
    """Per kind of Python client, over the whole run: messages and the
    p50 / p99 of their 250 latency."""
    with results.lock:
        kinds = sorted({k for _, k, _ in results.latencies})
        out = {}
        for kind in kinds:
            p50, p99 = percentiles_ms([s for _, k, s in results.latencies if k == kind])
            out[kind] = {"n": results.ok[kind], "p50_ms": p50, "p99_ms": p99}
    return out


def slope_per_min(points: list) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else 60 * sum((t - mx) * (v - my) for t, v in points) / var


def flatness(samples: list, warmup_s: float, end_s: float) -> dict:
    """Per gauge: the first and last third's means after the warm-up (and
    before the drain), the slope, and whether it grew."""
    window = [s for s in samples if warmup_s <= s["t"] <= end_s]
    if len(window) < MIN_FLAT_SAMPLES:
        return {"judged": False, "samples": len(window)}
    third = len(window) // 3
    out = {"judged": True, "samples": len(window)}
    for key, floor in GROWTH_FLOOR.items():
        first = statistics.mean(s[key] for s in window[:third])
        last = statistics.mean(s[key] for s in window[-third:])
        out[key] = {"first": first, "last": last,
                    "slope_per_min": slope_per_min([(s["t"], s[key]) for s in window]),
                    "grew": last > max(first * GROWTH_LIMIT, first + floor)}
    return out


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def _gauge_line(name: str, key: str, f: dict, unit) -> str:
    g = f[key]
    return (f"| {name} | {unit(g['first'])} | {unit(g['last'])} | "
            f"{g['last'] / g['first'] if g['first'] else 0:.2f} | {unit(g['slope_per_min'])} "
            f"| {'**grew**' if g['grew'] else 'flat'} |")


def flat_table(f: dict, warmup_s: float) -> list:
    if not f["judged"]:
        return [f"Flatness not judged: {f['samples']} samples after the {warmup_s:.0f} s "
                f"warm-up (at least {MIN_FLAT_SAMPLES} needed)."]
    mib = lambda v: f"{v / 1024:.1f} MiB"  # noqa: E731
    num = lambda v: f"{v:,.1f}"  # noqa: E731
    return [f"After the {warmup_s:.0f} s warm-up ({f['samples']} samples), first third against "
            f"last third (grew = last > {GROWTH_LIMIT:g} × first and more than a floor of "
            f"{GROWTH_FLOOR['rss_kib'] // 1024} MiB / {GROWTH_FLOOR['fds']} fds / "
            f"{GROWTH_FLOOR['queue']} messages):", "",
            "| gauge | first third mean | last third mean | last / first | slope per minute "
            "| verdict |", "|---|---|---|---|---|---|",
            _gauge_line("RSS", "rss_kib", f, mib), _gauge_line("open descriptors", "fds", f, num),
            _gauge_line("queue depth (live messages)", "queue", f, num)]


def report(res: dict) -> str:
    a, args, m = res["accounting"], res["args"], res["machine"]
    d = args["duration_s"]
    length = f"{d / 60:g} min" if d >= 60 else f"{d:g} s"
    lines = [f"Run {res['started']}: **{length}** at "
             f"{args['rate_fraction']:g} × the maximum relay rate ({res['max_rate']:,.0f} msgs/s"
             f"{' measured' if res['max_rate_measured'] else ', given'}) = blast at "
             f"{res['rate']:,.0f} msgs/s of 2 KB over {args['connections']} connections, "
             f"{args['tricklers']} tricklers, {args['tls_clients']} TLS clients, "
             f"{res['failing_share']:.1%} of blast's recipients in failing domains; "
             f"retry every {args['retry_s']:g} s, queue lifetime {args['max_age_s']:g} s. "
             f"{m['cpu']}, {m['cores']} cores; load average {res['load_start']} at the start, "
             f"{res['load_end']} at the end; {res['network']}, loopback MTU {res['mtu']}; "
             f"Sluice {res['versions']['sluice']} ({res['versions']['buildtype']}).", "",
             MINUTE_HEADER] + [format_minute(x) for x in res["minutes"]]
    lines += ["", f"Messages: {a['received']:,} accepted (blast {a['by_helo'].get('blast.sluice.test', 0):,}, "
              f"tricklers {a['by_helo'].get('trickle.soak.test', 0):,}, TLS "
              f"{a['by_helo'].get('tls.soak.test', 0):,}, DSNs {a['dsns']:,}); {a['delivered']:,} Delivery records "
              f"(the sink counted {a['sink']:,}), "
              f"{a['bounced']:,} bounced, {a['expired']:,} expired, {a['deferrals']:,} deferrals "
              f"on the way; {a['queued']:,} still queued at the end ({a['spooled']:,} messages "
              f"in the spool). **Lost: {a['lost']}.**", ""]
    lines += ["The Python clients' 250 latency over the whole run (p50 / p99): " + "; ".join(
        f"{kind} {_ms(c['p50_ms'])} / {_ms(c['p99_ms'])} ms ({c['n']:,} messages)"
        for kind, c in res["clients"].items()) + ".", ""]
    lines += ["Failing domains, records in the accounting log: " + "; ".join(
        f"{kind}: " + ", ".join(f"{n:,} {t}" for t, n in sorted(a["by_kind"].get(kind, {}).items()))
        for kind in SPECIAL) + ".", ""]
    lines += flat_table(res["flatness"], args["warmup_s"])
    verdict = "PASS" if not res["problems"] else "FAIL: " + "; ".join(res["problems"])
    lines += ["", f"Result: **{verdict}**"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def soak_run(args, work: Path, domains: Domains, dns, sink, cert) -> dict:
    """Steps 1-4 with the peers up; returns the results (report())."""
    res = {"max_rate": args.max_rate, "max_rate_measured": not args.max_rate}
    if not args.max_rate:
        common.log(f"soak: measuring the maximum relay rate ({args.probe_messages:,} messages)")
        res["max_rate"] = max_relay_rate(work, args, dns, sink, cert)
    res["rate"] = res["max_rate"] * args.rate_fraction
    common.log(f"soak: maximum relay rate {res['max_rate']:,.0f} msgs/s; blast at "
               f"{res['rate']:,.0f}")
    sink_before = sink.messages()
    with common.Sluice(work, sluice_args(work, args, dns, sink, cert), name="soak") as s:
        soak = Soak(s, args, domains, res["rate"])
        try:
            soak.run()
        finally:
            soak.clients.stop()
        end_s = time.monotonic() - soak.t0
        common.log(f"soak: load stopped; draining for up to {args.drain_s:g} s")
        drain(soak, args.drain_s)
        s.stop()
        soak.tally.update()
        res["sluice_exit"] = s.proc.returncode
        left = spooled(s.spool)
    blast_ok = sum(r.get("messages_ok", 0) for r in soak.blast)
    res["accounting"] = account(soak.tally, left, sink.stats(), sink_before,
                                soak.clients.results, blast_ok)
    res["flatness"] = flatness(soak.samples, args.warmup_s, end_s)
    res["minutes"], res["samples"] = soak.minutes, soak.samples
    res["clients"] = client_summary(soak.clients.results)
    res["problems"] = list(res["accounting"]["problems"])
    if res["sluice_exit"] != 0:
        res["problems"].append(f"sluice exited {res['sluice_exit']} on SIGTERM")
    for key in GROWTH_FLOOR:
        if res["flatness"].get(key, {}).get("grew"):
            res["problems"].append(f"{key} grew")
    return res


def loopback_mtu() -> str:
    """lo's MTU in this network namespace (/sys shows the host's)."""
    out = suite.sh(["ip", "-o", "link", "show", "lo"]).split()
    return out[out.index("mtu") + 1] if "mtu" in out else "?"


def run(args) -> dict:
    work = common.make_workdir("sluice-soak-")
    res = {"started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
           "load_start": suite.loadavg(), "network": suite.network_note(),
           "mtu": loopback_mtu(),
           "machine": suite.machine(work), "versions": suite.versions(Path(args.build_dir)),
           "args": vars(args), "work": str(work)}
    domains = Domains(args.domains)
    res["failing_share"] = domains.failing_share()
    cert = tls.make_cert(work / "certs", "ec")
    script = work / "sink.script"
    script.write_text(domains.sink_script())
    dns, helpers = start_dns(work, domains)
    try:
        with common.Sink(work, mx_hosts=True, extra=["--script", str(script)]) as sink:
            res.update(soak_run(args, work, domains, dns, sink, cert))
    except BaseException:
        common.log(f"soak: failed; work directory kept: {work}")
        raise
    finally:
        dns.stop()
        for h in helpers:
            (h.stop if hasattr(h, "stop") else h.close)()
    res["load_end"] = suite.loadavg()
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return res


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.environ.get("SLUICE_BENCH_BUILD", "build-release"))
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=0, help="run length in seconds "
                    "(overrides --minutes; for tests)")
    ap.add_argument("--rate-fraction", type=float, default=0.7)
    ap.add_argument("--max-rate", type=float, default=0, help="msgs/s; skips the measurement")
    ap.add_argument("--probe-messages", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=50, help="blast connections")
    ap.add_argument("--domains", type=int, default=1000, help="normal recipient domains")
    ap.add_argument("--tricklers", type=int, default=24)
    ap.add_argument("--tls-clients", type=int, default=4)
    ap.add_argument("--sample-seconds", dest="sample_s", type=float, default=10)
    ap.add_argument("--max-age", dest="max_age_s", type=float, default=0,
                    help="queue lifetime, s (default: a sixth of the run, 10 s to 300 s)")
    ap.add_argument("--drain-seconds", dest="drain_s", type=float, default=60)
    ap.add_argument("--report", default="", help="write the Markdown report here")
    ap.add_argument("--json", default="", help="write the raw results here")
    ap.add_argument("--keep-work", action="store_true")
    args = ap.parse_args(argv)
    args.duration_s = args.seconds or args.minutes * 60
    if args.duration_s < 5 or not 0 < args.rate_fraction <= 1 or args.connections < 1 \
            or args.probe_messages < 1 or args.sample_s <= 0 or args.domains < 1:
        ap.error("need a run of 5 s or more, 0 < --rate-fraction <= 1, and positive counts")
    args.max_age_s = args.max_age_s or min(300.0, max(10.0, args.duration_s / 6))
    args.retry_s = args.max_age_s / 4
    args.warmup_s = args.max_age_s + args.retry_s  # the queue's steady state
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.configure(Path(args.build_dir) / "sluice", Path(args.build_dir) / "tools")
    for exe in (common.sluice_bin(), common.tool("sluice-blast"), common.tool("sluice-sink")):
        if not os.access(exe, os.X_OK):
            print(f"bench/soak.py: {exe} is missing: build it first (bench/soak does)",
                  file=sys.stderr)
            return 2
    common.raise_nofile()
    res = run(args)
    text = report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    if args.report:
        Path(args.report).write_text(text)
        common.log(f"soak: report written to {args.report}")
    else:
        print(text)
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
