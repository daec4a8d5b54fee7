"""Prometheus metrics (issue 14) from a live relay: the control socket's
`metrics` and `sluice metrics` (docs/METRICS.md).

A relay delivers to the real peers of test_delivery.py (dnsmasq, scripted
receivers on 127.0.0.x): mail is delivered, deferred, bounced and expired,
and the numbers a scrape shows must follow, shard by shard summed, exactly
as the accounting log tells it. Every scrape is also given to Debian's
`promtool check metrics`, which must accept it without a single complaint.

Shards publish every second, so each check polls until the numbers agree
(or fails after a timeout naming what it saw).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from typing import Callable, Optional

import pytest

from sluice_harness import make_message, require_sluice_bin, scaled
from test_delivery import SENDER, SENDER_HOST, msg, records, send, start_relay, wait_finals
import test_outbound_tls as outbound_tls
from tls_peers import client_context, make_cert, tls_args

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's prometheus package (tools/deps.sh)")
    return path


def check_with_promtool(text: str) -> None:
    """`promtool check metrics` reads the exposition on stdin; any lint
    problem or parse error is printed and makes its exit code non-zero."""
    p = subprocess.run([promtool(), "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=scaled(60))
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0 and out.strip() == "", f"promtool rc={p.returncode}:\n{out}\n--- text ---\n{text[:3000]}"


def parse(text: str) -> list:
    """(name, {labels}, value) for every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in LABEL_RE.findall(m.group(2) or "")}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


class Scrape:
    def __init__(self, text: str):
        self.text = text
        self.samples = parse(text)

    def total(self, name: str, **labels) -> float:
        """The sum over every sample of `name` whose labels include `labels`."""
        return sum(v for n, l, v in self.samples if n == name and all(l.get(k) == x for k, x in labels.items()))

    def one(self, name: str, **labels) -> Optional[float]:
        got = [v for n, l, v in self.samples if n == name and all(l.get(k) == x for k, x in labels.items())]
        assert len(got) <= 1, (name, labels, got)
        return got[0] if got else None

    def count(self, name: str) -> int:
        return sum(1 for n, _, _ in self.samples if n == name)


def scrape(relay) -> Scrape:
    """`sluice metrics` through the daemon's control sockets."""
    p = relay.cli("metrics", "--control-dir", str(relay.spool / "control"))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return Scrape(p.stdout.decode())


SNAPSHOT_INTERVAL_S = 1.0  # how often a shard publishes (docs/METRICS.md)


def wait_scrape(relay, ok: Callable[[Scrape], bool], what: str, timeout: float = 15.0) -> Scrape:
    """The first scrape that shows `ok`, taken once every shard has published
    since: a scrape reads the other shards' last snapshots (one a second),
    so the numbers the caller asserts next, not only those `ok` looks at,
    are at least as new as the moment `ok` first held."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        s = scrape(relay)
        if ok(s):
            time.sleep(SNAPSHOT_INTERVAL_S + 0.3)
            s = scrape(relay)
            if ok(s):
                return s
        if time.monotonic() > deadline:
            interesting = "\n".join(line for line in s.text.splitlines()
                                    if line.startswith(("sluice_recipients_total", "sluice_messages_received",
                                                        "sluice_queue_", "sluice_dsns", "sluice_shaping")))
            raise AssertionError(f"metrics never showed {what} within {timeout}s:\n{interesting}")
        time.sleep(0.2)


def test_counts_follow_delivery_deferral_and_bounce(sluice_factory, delivery_world):
    """3 delivered, 2 bounced (550), 1 always deferred, 1 NXDOMAIN bounce, one
    DSN: the recipient counters, the queue of the deferred one, the latency
    histograms and the connection counters all say so, and promtool accepts
    every scrape."""
    world = delivery_world(mx={"d1.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": dict(permfail=["bad*@*"], tempfail=["slow@*"])})
    relay = start_relay(sluice_factory, world)
    first = scrape(relay)
    check_with_promtool(first.text)
    assert first.total("sluice_recipients_total") == 0
    assert first.count("sluice_metrics_snapshot_age_seconds") == relay.shards  # every shard published

    send(relay, ["good1@d1.test", "bad1@d1.test", "good2@d1.test", "bad2@d1.test", "slow@d1.test",
                 "good3@d1.test"], msg("mixed", to="good1@d1.test"))
    send(relay, ["bob@nowhere.test"], msg("nxdomain", to="bob@nowhere.test"))
    # good1-3, the DSN to alice (one DSN per message: two messages bounced) ...
    wait_finals(relay, 3 + 3 + 2)
    delivered = len(records(relay, "Delivery"))
    bounced = len(records(relay, "Bounce"))
    assert (delivered, bounced) == (5, 3), (delivered, bounced)

    def settled(s: Scrape) -> bool:
        return (s.total("sluice_recipients_total", outcome="delivered") == 5
                and s.total("sluice_recipients_total", outcome="bounced") == 3
                and s.total("sluice_recipients_total", outcome="deferred") >= 1
                and s.total("sluice_queue_recipients", domain="d1.test") == 1)

    s = wait_scrape(relay, settled, "5 delivered, 3 bounced, slow@d1.test deferred and queued")
    check_with_promtool(s.text)
    assert s.total("sluice_recipients_total", outcome="expired") == 0
    assert s.total("sluice_dsns_sent_total") == 2
    # Two messages from the client, two DSNs queued by the relay itself.
    assert s.total("sluice_messages_received_total", outcome="accepted") == 4
    assert s.total("sluice_messages_received_total", outcome="rejected") == 0
    assert s.total("sluice_inbound_connections_total", outcome="accepted") >= 2
    # The deferred recipient: its queue, its retry, its age.
    assert s.total("sluice_queue_messages", domain="d1.test") == 1
    assert s.total("sluice_queue_deferred_messages", domain="d1.test") in (0, 1)  # 0: due again
    assert s.total("sluice_queue_oldest_age_seconds", domain="d1.test") > 0
    assert s.total("sluice_queue_recipients", domain="other") == 0
    assert s.total("sluice_queue_domains") >= 1
    # Final outcomes (5 delivered, 3 bounced) in the latency histogram.
    assert s.total("sluice_delivery_duration_seconds_count") == 8
    inf = s.total("sluice_delivery_duration_seconds_bucket", le="+Inf")
    assert inf == 8, inf
    assert s.total("sluice_delivery_duration_seconds_sum") > 0
    # Every accepted message went through a spool group commit.
    assert s.total("sluice_spool_commit_duration_seconds_count") >= 1
    assert s.total("sluice_spool_written_bytes_total") > 0
    assert s.total("sluice_spool_free_bytes") > 0
    # MX lookups for d1, snd and nowhere, and their A records.
    assert s.total("sluice_dns_queries_total") >= 3
    # Each answered query is one observation; a retry's lookup may be in flight.
    assert 3 <= s.total("sluice_dns_query_duration_seconds_count") <= s.total("sluice_dns_queries_total")
    assert s.total("sluice_dns_query_failures_total") == 0  # NXDOMAIN is an answer
    assert s.total("sluice_outbound_connections_opened_total") >= 2
    assert s.total("sluice_outbound_connection_failures_total") == 0
    assert s.total("sluice_log_records_total", outcome="lost") == 0

    # GET /metrics serves the same text (server/http_api.cc calls MetricsText).
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.http_port}/metrics", timeout=scaled(10)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        over_http = Scrape(r.read().decode())
    assert over_http.total("sluice_recipients_total", outcome="bounced") == 3
    assert over_http.total("sluice_dsns_sent_total") == 2
    check_with_promtool(over_http.text)

    # Every shard answers the control command with the whole relay's view.
    for text in relay.admin("metrics"):
        other = Scrape(text)
        assert other.total("sluice_recipients_total", outcome="bounced") == 3
        assert other.count("sluice_metrics_snapshot_age_seconds") == relay.shards


def test_expiry_and_suspension(sluice_factory, delivery_world):
    """An always-deferred recipient expires (outcome expired, a DSN); a
    suspended domain shows in the shaping gauges and its own row."""
    world = delivery_world(mx={"d1.test": "127.0.0.2", "d2.test": "127.0.0.3", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": dict(tempfail=["late@*"])})
    relay = start_relay(sluice_factory, world, retry={"initial": "500ms", "factor": 1, "max_age": "2s"})
    relay_out = relay.cli("queue", "suspend", "d2.test", "--spool", str(relay.spool))
    assert relay_out.returncode == 0, relay_out.stderr
    send(relay, ["late@d1.test"], msg("expires", to="late@d1.test"))
    send(relay, ["held@d2.test"], msg("suspended", to="held@d2.test"))
    s = wait_scrape(relay, lambda s: s.total("sluice_recipients_total", outcome="expired") == 1
                    and s.total("sluice_dsns_sent_total") == 1, "one expiry and its DSN")
    assert s.total("sluice_recipients_total", outcome="deferred") >= 4  # 0, 0.5, 1, 1.5 s
    assert s.total("sluice_shaping_domains", state="suspended") == 1
    assert s.total("sluice_destination_suspended", domain="d2.test") == 1
    assert s.total("sluice_queue_recipients", domain="d2.test") == 1
    # The expiry came at max_age (2 s): past the 1 s bucket.
    assert s.total("sluice_delivery_duration_seconds_bucket", le="+Inf") - \
        s.total("sluice_delivery_duration_seconds_bucket", le="1") >= 1
    check_with_promtool(s.text)
    out = relay.cli("queue", "resume", "d2.test", "--spool", str(relay.spool))
    assert out.returncode == 0, out.stderr
    s = wait_scrape(relay, lambda s: s.total("sluice_recipients_total", outcome="delivered") >= 2
                    and s.total("sluice_shaping_domains", state="suspended") == 0,
                    "the resumed domain delivered")
    assert s.total("sluice_queue_recipients", domain="d2.test") == 0
    check_with_promtool(s.text)


def test_backoff_and_refused_connections(sluice_factory, delivery_world):
    """A 421 at RCPT backs d1.test off one step (limit ratio 0.5); a host
    that greets with 421 fails the outbound connection to d2.test."""
    world = delivery_world(
        mx={"d1.test": "127.0.0.2", "d2.test": "127.0.0.3", "snd.test": SENDER_HOST},
        receivers={"127.0.0.2": dict(rcpt_rules=[["x@*", "421 4.7.0 Too many connections, slow down"]]),
                   "127.0.0.3": dict(connect_421=True)})
    relay = start_relay(sluice_factory, world, retry={"initial": "1h", "max_interval": "2h", "max_age": "1d"})
    send(relay, ["a@d1.test", "x@d1.test"], msg("421 at rcpt"))
    send(relay, ["b@d2.test"], msg("421 greeting", to="b@d2.test"))
    s = wait_scrape(relay, lambda s: s.total("sluice_shaping_domains", state="backoff") == 2
                    and s.total("sluice_recipients_total", outcome="deferred") == 3,
                    "two destinations backing off, three deferrals")
    assert s.total("sluice_destination_limit_ratio", domain="d1.test") == 0.5
    assert s.total("sluice_queue_recipients", domain="d1.test") == 2
    assert s.total("sluice_queue_deferred_messages", domain="d2.test") == 1
    assert s.total("sluice_outbound_connection_failures_total") >= 1
    assert s.total("sluice_recipients_total", outcome="delivered") == 0
    assert s.total("sluice_queue_oldest_age_seconds", domain="d2.test") > 0
    check_with_promtool(s.text)


def test_inbound_rejections_and_tls(sluice_factory, tmp_path):
    """A DATA refused for want of From:, one STARTTLS that completes and one
    that breaks: received/rejected and the TLS counters."""
    cert, key = make_cert(tmp_path / "certs")
    relay = sluice_factory(args=tls_args(cert, key), require_from=True)
    with relay.smtp() as c:
        c.ehlo("client.sluice.test")
        assert c.mail(SENDER)[0] == 250
        assert c.rcpt("bob@d1.test")[0] == 250
        code, _ = c.data(b"Subject: no from\r\n\r\nbody\r\n")
        assert code == 550, code
    with relay.smtp() as c:
        c.starttls(context=client_context())
        c.ehlo("client.sluice.test")
        assert c.mail(SENDER)[0] == 250
        assert c.rcpt("bob@d1.test")[0] == 250
        assert c.data(make_message("tls", ["hi"], sender=SENDER, to="bob@d1.test"))[0] == 250
    with socket.create_connection(("127.0.0.1", relay.port), timeout=scaled(10)) as raw:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"EHLO x\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        raw.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        raw.sendall(b"\x16\x03\x01\x00\x05hello-not-tls" * 4)  # not a ClientHello
        raw.settimeout(scaled(5))
        try:
            while raw.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    # Other shards' numbers in a scrape are their last snapshot (up to 1 s
    # old): wait for every number asserted below, not only the TLS ones.
    s = wait_scrape(relay, lambda s: s.total("sluice_tls_handshakes_total", direction="inbound", outcome="failed") == 1
                    and s.total("sluice_tls_handshakes_total", direction="inbound", outcome="ok") == 1
                    and s.total("sluice_messages_received_total", outcome="rejected") == 1
                    and s.total("sluice_messages_received_total", outcome="accepted") == 1
                    and s.total("sluice_inbound_connections_total", outcome="accepted") == 3,
                    "one good and one broken inbound handshake, one message refused and one taken")
    assert s.total("sluice_messages_received_total", outcome="rejected") == 1
    assert s.total("sluice_messages_received_total", outcome="accepted") == 1
    assert s.total("sluice_smtp_rejections_total") >= 1
    assert s.total("sluice_inbound_connections_total", outcome="accepted") == 3
    # --no-delivery: the engine's families are described but have no samples.
    assert s.count("sluice_recipients_total") == 0
    assert "# TYPE sluice_recipients_total counter" in s.text
    check_with_promtool(s.text)


def test_outbound_tls_handshakes(sluice_factory, dns_server, tmp_path):
    """A relay delivers over STARTTLS to a second Sluice: one outbound
    handshake on the relay, one inbound on the receiver. A second relay that
    must verify the receiver's self-signed certificate counts a failure."""
    cert, key = make_cert(tmp_path / "certs", cn=outbound_tls.MX_HOST)
    receiver = sluice_factory(listen_hosts=("127.0.0.2",), args=tls_args(cert, key), shards=1)
    relay = outbound_tls.start_relay(sluice_factory, dns_server, receiver)
    outbound_tls.send(relay, "bob@d1.test", "over tls")
    s = wait_scrape(relay, lambda s: s.total("sluice_recipients_total", outcome="delivered") == 1,
                    "the delivery over TLS")
    assert s.total("sluice_tls_handshakes_total", direction="outbound", outcome="ok") == 1
    assert s.total("sluice_tls_handshakes_total", direction="outbound", outcome="failed") == 0
    r = wait_scrape(receiver, lambda s: s.total("sluice_messages_received_total", outcome="accepted") == 1,
                    "the receiver's reception")
    assert r.total("sluice_tls_handshakes_total", direction="inbound", outcome="ok") == 1
    check_with_promtool(s.text)

    strict = outbound_tls.start_relay(sluice_factory, dns_server, receiver, policy="verify")
    outbound_tls.send(strict, "carol@d1.test", "must verify")
    s = wait_scrape(strict, lambda s: s.total("sluice_tls_handshakes_total", direction="outbound",
                                              outcome="failed") >= 1,
                    "a failed verification")
    assert s.total("sluice_tls_handshakes_total", direction="outbound", outcome="ok") == 0
    assert s.total("sluice_recipients_total", outcome="deferred") >= 1


def test_cli_without_a_daemon(tmp_path):
    p = subprocess.run([str(require_sluice_bin()), "metrics", "--control-dir", str(tmp_path / "nothing-here")],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(30))
    assert p.returncode == 1
    assert b"no running sluice" in p.stderr, p.stderr
    assert p.stdout == b""
