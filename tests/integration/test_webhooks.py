"""Event webhooks (issue 14, docs/WEBHOOKS.md) over real loopback sockets:
the accounting log's records POSTed as JSON arrays to a Python receiver
(webhook_receiver.py) that can refuse connections, answer 500 or accept.

What must hold: every record of the log reaches the receiver (set
comparison with the accounting file, duplicates allowed only where the
at-least-once guarantee allows them), filtered by type, in batches; a
receiver that is down, then failing, then up gets everything, with a
bounded number of attempts (backoff); kill -9 of Sluice loses nothing and
repeats only the unacknowledged batches; a rotation while the receiver is
down loses nothing; and the accounting file keeps every record regardless.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter

import pytest

from sluice_harness import (diag_events, free_port, make_message, require_sluice_bin, scaled,
                            wait_for)
from test_delivery import SENDER, SENDER_HOST, relay_config
from test_metrics import Scrape, check_with_promtool
from webhook_receiver import WebhookReceiver

AUTH = "Bearer s3cret-token"


def post_failures(d, webhook: str) -> list:
    """The webhook.post_failed lines of one webhook so far."""
    return [e for e in diag_events(d.stderr_since_start(), "webhook.post_failed")
            if e.get("webhook") == webhook]


def hook_toml(name: str, url: str, **keys) -> str:
    lines = ["[[webhook]]", f'name = "{name}"', f'url = "{url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def key(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def log_records(path) -> list:
    """The whole lines of one log file, parsed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


def inject(d, tag: str, n: int) -> None:
    """n messages into the relay over one SMTP session."""
    s = d.smtp()
    for i in range(n):
        body = make_message(f"{tag} {i}", ["x"], sender=SENDER, to=f"r{i}@d1.test")
        s.sendmail(SENDER, [f"{tag}-{i}@d1.test"], body)
    s.quit()


def receptions(records: list, tag: str) -> Counter:
    """How often each of the tag's Reception records appears."""
    return Counter(r["recipients"][0] for r in records
                   if r.get("type") == "Reception" and r["recipients"][0].startswith(tag + "-"))


@pytest.fixture
def receiver():
    r = WebhookReceiver(free_port())
    yield r
    r.stop()


@pytest.mark.time_limit(60)
def test_every_record_reaches_the_receiver_filtered_and_batched(sluice_factory, delivery_world,
                                                                 receiver):
    """A relay run with deliveries and bounces: the unfiltered webhook gets
    exactly the log's records, the filtered one exactly its types; bodies are
    JSON arrays of at most batch_max_records, with the headers promised."""
    receiver.start()
    world = delivery_world(mx={"d1.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": dict(permfail=["bad*"])})
    finals_url = receiver.url.replace("/hook", "/finals")
    config = (relay_config()
              + hook_toml("all", receiver.url, batch_max_records=5, batch_max_wait_ms=200,
                          authorization=AUTH)
              + hook_toml("finals", finals_url, types=["Delivery", "Bounce"],
                          batch_max_wait_ms=200))
    d = sluice_factory(delivery=True, args=world.sluice_args(), config=config)
    s = d.smtp()
    n = 12
    for i in range(n):
        s.sendmail(SENDER, [f"ok{i}@d1.test", f"bad{i}@d1.test"],
                   make_message(f"m{i}", ["x"], sender=SENDER, to=f"ok{i}@d1.test"))
    s.quit()
    # 12 deliveries and 12 bounces, then 12 DSNs received and delivered.
    wait_for(lambda: Counter(r["type"] for r in d.log_records()) ==
             Counter({"Reception": 2 * n, "Delivery": 2 * n, "Bounce": n}),
             timeout=30, what="the relay's records in the log")
    logged = d.log_records()

    def got(path):
        with receiver.lock:
            return [r for b in receiver.batches if b["path"] == path for r in b["records"]]

    wait_for(lambda: len(got("/hook")) >= len(logged), timeout=15, what="every record at /hook")
    assert sorted(key(r) for r in got("/hook")) == sorted(key(r) for r in logged)
    want_finals = [r for r in logged if r["type"] in ("Delivery", "Bounce")]
    wait_for(lambda: len(got("/finals")) >= len(want_finals), timeout=15, what="/finals")
    assert sorted(key(r) for r in got("/finals")) == sorted(key(r) for r in want_finals)
    with receiver.lock:
        batches = [b for b in receiver.batches if b["path"] == "/hook"]
        finals = [b for b in receiver.batches if b["path"] == "/finals"]
    assert all(1 <= len(b["records"]) <= 5 for b in batches), [len(b["records"]) for b in batches]
    assert any(len(b["records"]) > 1 for b in batches + finals), "no batching observed"
    h = batches[0]["headers"]
    assert h["Content-Type"] == "application/json"
    assert h["Authorization"] == AUTH and h["X-Sluice-Webhook"] == "all"
    assert int(h["X-Sluice-Records"]) == len(batches[0]["records"])
    assert "Authorization" not in finals[0]["headers"]
    # The order of the log is kept within a webhook.
    assert [key(r) for r in got("/hook")] == [key(r) for r in logged]


@pytest.mark.time_limit(60)
def test_receiver_down_then_failing_then_up_gets_everything(sluice_factory, receiver):
    """Connections refused, then 500s, then 200: every record arrives, the
    attempts are bounded by the backoff, stderr tells the episode, and the
    accounting file has every record throughout."""
    d = sluice_factory(config=hook_toml("h", receiver.url, batch_max_records=7,
                                        batch_max_wait_ms=50, backoff_min_ms=100,
                                        backoff_max_ms=400, timeout_s=2))
    inject(d, "down", 20)
    wait_for(lambda: len(receptions(d.log_records(), "down")) == 20, timeout=10, what="the log")
    wait_for(lambda: post_failures(d, "h"), timeout=10,
             what="the first failure on stderr")
    time.sleep(1.0)
    receiver.status = 500
    receiver.start()
    time.sleep(2.0)
    failing = receiver.failed_attempts()
    # 2 s of 500s at delays of 50..400 ms (jittered): a handful, not a storm.
    assert 2 <= failing <= 20, failing
    assert receiver.records() == []
    receiver.status = 200
    wait_for(lambda: len(receptions(receiver.records(), "down")) == 20, timeout=10,
             what="every record after the receiver came back")
    assert "receiver back after" in d.stderr_since_start()
    assert len(receptions(d.log_records(), "down")) == 20
    # The episode on /metrics, which promtool accepts as it is.
    text = urllib.request.urlopen(f"http://127.0.0.1:{d.http_port}/metrics",
                                  timeout=scaled(10)).read().decode()
    check_with_promtool(text)
    m = Scrape(text)
    assert m.one("sluice_webhook_records_total", webhook="h") == 20
    assert m.one("sluice_webhook_posts_total", webhook="h", outcome="failed") >= failing
    assert m.one("sluice_webhook_posts_total", webhook="h", outcome="ok") >= 3
    assert m.one("sluice_webhook_failures_in_row", webhook="h") == 0


@pytest.mark.time_limit(60)
def test_kill9_loses_nothing_and_repeats_only_the_unacknowledged(sluice_factory, receiver):
    """Records acknowledged before kill -9 are not sent again; those after
    the last acknowledgement are sent after the restart; none is lost."""
    receiver.start()
    config = hook_toml("k", receiver.url, batch_max_records=4, batch_max_wait_ms=50,
                       backoff_min_ms=100, backoff_max_ms=300, timeout_s=2)
    d = sluice_factory(config=config)
    inject(d, "acked", 10)
    wait_for(lambda: len(receptions(receiver.records(), "acked")) == 10, timeout=10,
             what="the first records")
    time.sleep(0.3)  # the position is saved right after the 2xx
    receiver.status = 500
    inject(d, "pending", 10)
    wait_for(lambda: receiver.failed_attempts() >= 2, timeout=10, what="failed attempts")
    d.kill9()
    d2 = sluice_factory(spool=d.spool, log=d.log_path, config=config)
    assert "first start" not in d2.stderr_since_start()
    receiver.status = 200
    inject(d2, "after", 5)
    wait_for(lambda: len(receptions(receiver.records(), "after")) == 5
             and len(receptions(receiver.records(), "pending")) == 10,
             timeout=15, what="every record after the restart")
    got = receiver.records()
    assert set(receptions(got, "acked").values()) == {1}, receptions(got, "acked")
    assert sorted(key(r) for r in got) == sorted(key(r) for r in d2.log_records())


@pytest.mark.time_limit(60)
def test_rotation_while_the_receiver_is_down(sluice_factory, receiver, tmp_path):
    """logrotate's rename + `sluice log reopen` while the receiver refuses:
    once it is up, the records of both files arrive, each once; both files
    hold their records."""
    d = sluice_factory(config=hook_toml("r", receiver.url, batch_max_records=3,
                                        batch_max_wait_ms=50, backoff_min_ms=100,
                                        backoff_max_ms=300, timeout_s=2))
    inject(d, "before", 8)
    wait_for(lambda: len(receptions(d.log_records(), "before")) == 8, timeout=10, what="the log")
    rotated = d.log_path.with_name(d.log_path.name + ".1")
    os.rename(d.log_path, rotated)
    r = subprocess.run([str(require_sluice_bin()), "log", "reopen", "--spool", str(d.spool),
                        "--log", str(d.log_path)], capture_output=True, text=True,
                       timeout=scaled(20))
    assert r.returncode == 0, (r.stdout, r.stderr)
    inject(d, "after", 8)
    wait_for(lambda: len(receptions(d.log_records(), "after")) == 8, timeout=10,
             what="the new file")
    time.sleep(1.5)  # past the rotation grace, still down
    receiver.start()
    wait_for(lambda: len(receptions(receiver.records(), "before")) == 8
             and len(receptions(receiver.records(), "after")) == 8,
             timeout=15, what="the records of both files")
    got = receiver.records()
    assert set(receptions(got, "before").values()) == {1}
    assert set(receptions(got, "after").values()) == {1}
    # The accounting files keep everything, whatever the webhook did.
    assert len(receptions(log_records(rotated), "before")) == 8
    assert len(receptions(log_records(d.log_path), "after")) == 8


def test_bad_webhook_configuration_is_refused(tmp_path):
    """`sluice check-config` (and so `serve`) refuses a bad [[webhook]] with
    the file, line and key; a good one passes."""
    conf = tmp_path / "sluice.toml"
    spool = tmp_path / "spool"

    def check(text: str) -> subprocess.CompletedProcess:
        conf.write_text(text)
        return subprocess.run([str(require_sluice_bin()), "check-config", "--config", str(conf),
                               "--spool", str(spool)], capture_output=True, text=True,
                              timeout=scaled(20))

    r = check(hook_toml("x", "ftp://127.0.0.1/hook"))
    assert r.returncode == 2 and "sluice.toml:3: webhook.url: scheme 'ftp' is not http or https" in r.stderr, r
    r = check(hook_toml("x", "http://127.0.0.1:8/hook", types=["Delivered"]))
    assert r.returncode == 2 and "unknown record type 'Delivered'" in r.stderr, r
    r = check(hook_toml("x", "http://127.0.0.1:8/hook") + "[log]\nfile = \"\"\n")
    assert r.returncode == 2 and "log.file" in r.stderr, r
    r = check(hook_toml("x", "http://127.0.0.1:8/hook", types=["Bounce"], timeout_s=5))
    assert r.returncode == 0, r


@pytest.mark.time_limit(60)
def test_kill9_mid_post_repeats_at_most_the_batch_in_flight(sluice_factory, receiver):
    """kill -9 while a POST is in flight (the receiver takes 300 ms to
    answer): after the restart every record arrives, and the only records
    seen twice are those of the one batch that was in flight."""
    receiver.start()
    receiver.delay = 0.3
    config = hook_toml("m", receiver.url, batch_max_records=4, batch_max_wait_ms=20,
                       timeout_s=5)
    d = sluice_factory(config=config)
    inject(d, "mid", 24)
    wait_for(lambda: len(receiver.attempts) >= 2, timeout=10, what="two POSTs")
    time.sleep(0.15)  # inside the third POST's 300 ms
    d.kill9()
    receiver.delay = 0.0
    d2 = sluice_factory(spool=d.spool, log=d.log_path, config=config)
    wait_for(lambda: len(receptions(receiver.records(), "mid")) == 24, timeout=15,
             what="every record after the restart")
    time.sleep(0.3)
    seen = receptions(receiver.records(), "mid")
    twice = [r for r, n in seen.items() if n > 1]
    assert max(seen.values()) <= 2 and len(twice) <= 4, seen
    assert sorted(key(r) for r in d2.log_records()) == sorted(set(key(r) for r in receiver.records()))


@pytest.mark.time_limit(60)
@pytest.mark.slow
def test_a_hung_receiver_does_not_hold_up_the_stop(sluice_factory, receiver):
    """SIGTERM while a POST waits on a receiver that never answers (timeout_s
    30): the webhook gives up after its 5 s drain, the daemon exits cleanly,
    and the unacknowledged records go after the restart."""
    receiver.start()
    receiver.delay = 25.0
    config = hook_toml("hung", receiver.url, batch_max_wait_ms=20, timeout_s=30)
    d = sluice_factory(config=config)
    inject(d, "hung", 3)
    wait_for(lambda: len(receiver.connections) > 0, timeout=10, what="a POST in flight")
    time.sleep(0.3)
    start = time.monotonic()
    assert d.stop(timeout=20) == 0
    assert time.monotonic() - start < scaled(9), time.monotonic() - start
    assert "stopped with records not yet acknowledged" in d.stderr_since_start()
    receiver.delay = 0.0
    sluice_factory(spool=d.spool, log=d.log_path, config=config)
    wait_for(lambda: len(receptions(receiver.records(), "hung")) >= 3, timeout=15,
             what="the records after the restart")


@pytest.mark.time_limit(60)
def test_webhooks_are_independent(sluice_factory, receiver):
    """One receiver down does not hold up another: the live one gets every
    record at once, the other gets them all when it comes up."""
    receiver.start()
    other = WebhookReceiver(free_port())
    try:
        config = (hook_toml("up", receiver.url, batch_max_wait_ms=20)
                  + hook_toml("down", other.url, batch_max_wait_ms=20, backoff_min_ms=100,
                              backoff_max_ms=300, timeout_s=2))
        d = sluice_factory(config=config)
        inject(d, "ind", 10)
        wait_for(lambda: len(receptions(receiver.records(), "ind")) == 10, timeout=10,
                 what="every record at the live receiver")
        assert other.records() == []
        other.start()
        wait_for(lambda: len(receptions(other.records(), "ind")) == 10, timeout=10,
                 what="every record at the one that came up")
        assert set(receptions(receiver.records(), "ind").values()) == {1}
    finally:
        other.stop()


@pytest.mark.time_limit(60)
def test_https_with_a_verified_certificate(sluice_factory, tmp_path):
    """https://: the receiver's certificate must chain to webhook.tls_ca_file
    and match the URL's host. With it, records arrive; with the system
    store (which does not know this self-signed certificate), none does and
    stderr names the handshake."""
    from tls_peers import make_cert
    cert, key = make_cert(tmp_path / "tls", cn="localhost")
    good = WebhookReceiver(free_port(), tls=(cert, key), url_host="localhost").start()
    bad = WebhookReceiver(free_port(), tls=(cert, key), url_host="localhost").start()
    try:
        config = (hook_toml("tls", good.url, batch_max_wait_ms=20, tls_ca_file=str(cert))
                  + hook_toml("untrusted", bad.url, batch_max_wait_ms=20, backoff_min_ms=100,
                              backoff_max_ms=300, timeout_s=2))
        d = sluice_factory(config=config)
        inject(d, "tls", 5)
        wait_for(lambda: len(receptions(good.records(), "tls")) == 5, timeout=10,
                 what="the records over https")
        wait_for(lambda: post_failures(d, "untrusted"), timeout=10,
                 what="the untrusted receiver's failure")
        assert "TLS handshake" in d.stderr_since_start()
        assert bad.records() == []
    finally:
        good.stop()
        bad.stop()
