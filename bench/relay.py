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
  (e) sluice_scraped: (b) while a thread scrapes the relay's metrics every
                second through a control socket (`metrics`, the text GET
                /metrics serves; issue 14's target: within 2% of (b));
  (d) the same with DKIM: sluice_rsa / sluice_ed25519 sign every message
                (dkim default_domain, RSA-2048 / Ed25519); postfix_opendkim
                is (c) with Debian's OpenDKIM as Postfix's milter signing
                every message with an RSA-2048 key. Each signing row fails
                unless every message at the sink carries a DKIM-Signature;

and, as the outside reference, Postfix's smtp-source into Sluice relaying to
smtp-sink. A run ends when the sink has counted every message (SIGUSR1 stats);
rate = messages / (first byte sent .. last message at the sink). Runs are
interleaved and repeated: only ratios within one run mean anything here.

    bench/relay.py [--reps 3] [--messages 20000] [--postfix-messages 3000]
                   [--domains 1000] [--sizes 2048,20480] [--connections 50]
                   [--rows ceiling,sluice,postfix,reference]
                   (also sluice_rsa, sluice_ed25519, postfix_opendkim, sluice_scraped)

Prints a Markdown table: median (min-max) msgs/s per row, Sluice / Postfix,
Sluice / ceiling, and with the DKIM rows Sluice RSA / Postfix + OpenDKIM and
Sluice Ed25519 / Sluice; then the median CPU per message of the relay under
test (less sensitive to other jobs than the rates). As a module:
Relay(work, domains) owns the dnsmasq and runs one measurement per call;
measure(...) returns the numbers.
"""
from __future__ import annotations

import argparse
import os
import contextlib
import shutil
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from webhook_sink import WebhookSink  # noqa: E402

LABELS = {"ceiling": "blast → sluice-sink (ceiling)",
          "sluice": "blast → Sluice → sinks (1 MX per domain, dnsmasq)",
          "sluice_rsa": "blast → Sluice, DKIM RSA-2048 → sinks",
          "sluice_ed25519": "blast → Sluice, DKIM Ed25519 → sinks",
          "sluice_scraped": "blast → Sluice → sinks, metrics scraped every second",
          "sluice_webhook": "blast → Sluice → sinks, every record POSTed to a webhook",
          "postfix": "blast → Postfix → sink (relayhost)",
          "postfix_opendkim": "blast → Postfix + OpenDKIM RSA-2048 (milter) → sink",
          "reference": "smtp-source → Sluice → smtp-sink"}


def thread_cpu_seconds(pid: int, name: str) -> float:
    """User + system CPU of the process's threads whose names start with `name`."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().strip().startswith(name):
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


class Relay:
    """The relay benchmark's fixtures: a work directory and dnsmasq serving
    MX records for `domains` domains. Each run_* is one measurement and
    returns {"rate": msgs/s, ...}."""

    def __init__(self, work: Path, domains=1000, connections=50):
        self.work = Path(work)
        self.domains = domains
        self.connections = connections
        self.dns = common.relay_dns(self.work, domains)

    def close(self):
        self.dns.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _blast(self, port, messages, size, connections=None):
        return common.blast(port, messages, size, domains=self.domains,
                            connections=connections or self.connections)

    def run_ceiling(self, size: int, messages: int, connections=None) -> dict:
        with common.Sink(self.work) as sink:
            start = time.monotonic()
            self._blast(sink.port, messages, size, connections)
            end = sink.wait_for(messages, 60)
            return {"rate": messages / (end - start)}

    def dkim_config(self, algorithm: str) -> list:
        """--config for a relay that signs every message (the default
        domain's signer signs whatever From: blast writes)."""
        keys = self.work / f"dkim-{algorithm}"
        if not (keys / "b.private").exists():
            keys.mkdir(exist_ok=True)
            common.subprocess.run([str(common.sluice_bin()), "dkim", "keygen", "--domain", "bench.example",
                                   "--selector", "b", "--algorithm", algorithm, "--out", str(keys)],
                                  check=True, capture_output=True)
        conf = keys / "sluice.toml"
        conf.write_text(f'[dkim]\ndefault_domain = "bench.example"\n[[dkim.signer]]\n'
                        f'domain = "bench.example"\nselector = "b"\nkey_file = "{keys / "b.private"}"\n')
        return ["--config", str(conf)]

    @staticmethod
    def _scrape_every_second(control: Path, stop: threading.Event, scrapes: list) -> None:
        """What Prometheus does to /metrics, through shard 0's control socket."""
        while not stop.wait(1.0):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.settimeout(10)
                    c.connect(str(control / "0.sock"))
                    c.sendall(b"metrics\n")
                    n = 0
                    while chunk := c.recv(65536):
                        n += len(chunk)
                scrapes.append(n)
            except OSError:
                scrapes.append(0)

    def webhook_config(self, url: str) -> list:
        """--config for a relay with one webhook that gets every record."""
        conf = self.work / "webhook.toml"
        conf.write_text(f'[[webhook]]\nname = "bench"\nurl = "{url}"\n')
        return ["--config", str(conf)]

    def run_sluice(self, size: int, messages: int, connections=None, dkim=None, scrape=False,
                   webhook=False) -> dict:
        extra = self.dkim_config(dkim) if dkim else []
        with contextlib.ExitStack() as stack:
            hook = stack.enter_context(WebhookSink()) if webhook else None
            if hook:
                extra = self.webhook_config(hook.url)
            result = self._run_sluice(size, messages, connections, dkim, scrape, extra, hook)
        return result

    def _run_sluice(self, size, messages, connections, dkim, scrape, extra, hook) -> dict:
        with common.Sink(self.work, mx_hosts=True) as sink, \
                common.Sluice(self.work, ["--dns", self.dns.spec, "--mx-port", str(sink.port), *extra],
                              name="relay") as s:
            stop, scrapes = threading.Event(), []
            scraper = threading.Thread(target=self._scrape_every_second,
                                       args=(s.spool / "control", stop, scrapes)) if scrape else None
            cpu0 = common.cpu_seconds(s.pid)
            start = time.monotonic()
            if scraper:
                scraper.start()
            self._blast(s.port, messages, size, connections)
            end = sink.wait_for(messages, 300)
            cpu = common.cpu_seconds(s.pid) - cpu0
            if scraper:
                stop.set()
                scraper.join()
                if not scrapes or min(scrapes) == 0:
                    raise RuntimeError(f"sluice_scraped: a scrape failed or none ran: {scrapes}")
            if dkim:
                sink.require_signed(messages, f"sluice_{dkim}")
            domains = len(sink.stats().get("domains", {}))
            out = {"rate": messages / (end - start), "peak_rss_kib": s.peak_rss_kib(),
                   "domains_seen": domains, "cpu_us_per_msg": cpu * 1e6 / messages,
                   "shard_threads_cpu_s": thread_cpu_seconds(s.pid, "sluice-shard")}
            if hook:
                # Every line of the log (a Reception and a Delivery per
                # message) must arrive; the shards write the last ones a
                # moment after the sink counted the last message.
                deadline = time.monotonic() + 10
                while (want := s.log_path.read_bytes().count(b'{"type":"')) < 2 * messages \
                        and time.monotonic() < deadline:
                    time.sleep(0.01)
                last = hook.wait_for(want, 60)
                out.update(webhook_records=want, webhook_lag_s=max(0.0, last - end),
                           webhook_events_per_s=want / (last - start),
                           webhook_thread_cpu_s=thread_cpu_seconds(s.pid, "webhook"))
            return out

    def run_postfix(self, size: int, messages: int, connections=None, opendkim=False) -> dict:
        """blast -> Postfix -> sink; with opendkim, Postfix's smtpd hands every
        message to a private OpenDKIM milter (common.OpenDkim, RSA-2048)."""
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(common.Sink(self.work))
            milter = stack.enter_context(common.OpenDkim(self.work)) if opendkim else None
            extra = milter.postfix_main_cf() if milter else []
            pf = stack.enter_context(common.Postfix(self.work, sink.port, extra_main_cf=extra))
            cpu0 = self._postfix_cpu(pf, milter)
            start = time.monotonic()
            self._blast(pf.port, messages, size, connections)
            end = sink.wait_for(messages, 600)
            cpu = self._postfix_cpu(pf, milter) - cpu0
            if opendkim:
                sink.require_signed(messages, "postfix_opendkim")
            return {"rate": messages / (end - start), "cpu_us_per_msg": cpu * 1e6 / messages}

    @staticmethod
    def _postfix_cpu(pf, milter) -> float:
        """CPU seconds of Postfix's master, its daemons (live and reaped) and
        the OpenDKIM milter, if any."""
        cpu = common.tree_cpu_seconds(pf.master)
        return cpu + (common.cpu_seconds(milter.proc.pid) if milter else 0.0)

    def run_reference(self, size: int, messages: int) -> dict:
        """The outside reference: smtp-source -> Sluice -> smtp-sink (one route)."""
        with common.SmtpSink() as sink, \
                common.Sluice(self.work, ["--route", f"*=[127.0.0.1]:{sink.port}"],
                              name="reference") as s:
            start = time.monotonic()
            common.smtp_source(s.port, messages, size)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if s.deliveries() >= messages:
                    return {"rate": messages / (time.monotonic() - start)}
                time.sleep(0.05)
            raise RuntimeError(f"smtp-source -> sluice -> smtp-sink: {s.deliveries()} of "
                               f"{messages} delivered in 300 s")


def measure(*, reps=3, messages=20000, postfix_messages=3000, domains=1000, connections=50,
            sizes=(2048, 20480), rows=("ceiling", "sluice", "postfix", "reference"),
            work=None) -> dict:
    """Interleaved runs; returns {size: {row: [result, ...]}}."""
    own = work is None
    work = Path(work) if work else common.make_workdir("sluice-relay-")
    try:
        with Relay(work, domains, connections) as relay:
            runners = {
                "ceiling": lambda size: relay.run_ceiling(size, messages),
                "sluice": lambda size: relay.run_sluice(size, messages),
                "sluice_rsa": lambda size: relay.run_sluice(size, messages, dkim="rsa"),
                "sluice_ed25519": lambda size: relay.run_sluice(size, messages, dkim="ed25519"),
                "sluice_scraped": lambda size: relay.run_sluice(size, messages, scrape=True),
                "sluice_webhook": lambda size: relay.run_sluice(size, messages, webhook=True),
                "postfix": lambda size: relay.run_postfix(size, postfix_messages),
                "postfix_opendkim": lambda size: relay.run_postfix(size, postfix_messages,
                                                                   opendkim=True),
                # smtp-source opens a session per message: twice Postfix's count
                # keeps this row's duration comparable.
                "reference": lambda size: relay.run_reference(size, postfix_messages * 2),
            }
            return common.interleave(runners, list(rows), list(sizes), reps)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


# Ratio columns: (heading, numerator row, denominator row, format). A column
# appears when the run has both rows.
RATIOS = [("Sluice / Postfix", "sluice", "postfix", "{:.1f}×"),
          ("Sluice / ceiling", "sluice", "ceiling", "{:.2f}"),
          ("Sluice RSA / Postfix + OpenDKIM", "sluice_rsa", "postfix_opendkim", "{:.1f}×"),
          ("Sluice Ed25519 / Sluice", "sluice_ed25519", "sluice", "{:.2f}"),
          ("Sluice scraped / Sluice", "sluice_scraped", "sluice", "{:.3f}"),
          ("Sluice webhook / Sluice", "sluice_webhook", "sluice", "{:.3f}")]


def table(results: dict) -> str:
    cols = [c for c in LABELS if any(c in rows for rows in results.values())]
    ratios = [r for r in RATIOS if r[1] in cols and r[2] in cols]
    lines = ["| message | " + " | ".join([LABELS[c] for c in cols] + [r[0] for r in ratios])
             + " |", "|---" * (len(cols) + len(ratios) + 1) + "|"]
    for size, rows in results.items():
        s = {k: common.rates(v) for k, v in rows.items()}
        med = {k: v["median"] for k, v in s.items()}
        cells = [common.fmt_rate(s[c]) for c in cols]
        cells += [fmt.format(med[a] / med[b]) if med.get(b) else "–" for _, a, b, fmt in ratios]
        lines.append(f"| {size // 1024} KB | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(results: dict) -> str:
    """Median CPU per relayed message of the relay under test (Sluice's
    process; Postfix's master with every daemon, plus the OpenDKIM milter),
    from the first message sent to the last at the sink: moved far less by
    other jobs on the machine than the rates. Load generator and sink not
    included."""
    cols = [c for c in LABELS
            if any(rows.get(c) and "cpu_us_per_msg" in rows[c][0] for rows in results.values())]
    if not cols:
        return ""
    lines = ["| CPU µs / message | " + " | ".join(LABELS[c] for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for size, rows in results.items():
        cells = [f"{statistics.median(r['cpu_us_per_msg'] for r in rows[c]):,.0f}"
                 if rows.get(c) else "–" for c in cols]
        lines.append(f"| {size // 1024} KB | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    rows = [r for r in args.rows.split(",") if r]
    for r in rows:
        if r not in LABELS:
            ap.error(f"unknown row {r!r} (one of {', '.join(LABELS)})")
    common.raise_nofile()
    results = measure(reps=args.reps, messages=args.messages,
                      postfix_messages=args.postfix_messages, domains=args.domains,
                      connections=args.connections,
                      sizes=[int(s) for s in args.sizes.split(",")], rows=rows)
    print(table(results))
    cpu = cpu_table(results)
    if cpu:
        print("\n" + cpu)


if __name__ == "__main__":
    main()
