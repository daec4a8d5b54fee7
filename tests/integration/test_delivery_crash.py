"""kill -9 of the relay in the middle of delivering, then a restart on the same
spool (issue 4): every recipient ends delivered or bounced, none is lost, and
a recipient is delivered twice only in the documented window (the receiver's
250 came, the final note was not yet durable: docs/ARCHITECTURE.md).

Peers: four recipient domains on four scripted receivers (each reply to the
final dot held 40 ms, so deliveries are still going when the kill comes),
some recipients refused with 550 (bounces, whose DSNs go to snd.test), and
the sender's MX collecting the DSNs.
"""

from __future__ import annotations

import threading
import time

import pytest

from sluice_harness import scaled, wait_for
from test_delivery import SENDER, SENDER_HOST, msg, records, relay_config, send_many

DOMAINS = [f"c{i}.test" for i in range(4)]
HOSTS = [f"127.0.0.{i + 2}" for i in range(4)]
MAX_CONN = 3  # per domain: bounds what can be in flight at the kill


def recipients_of(i: int) -> list:
    """Message i goes to two domains; every 9th second recipient is refused."""
    a = f"u{i}@{DOMAINS[i % 4]}"
    b = f"{'bad' if i % 9 == 0 else 'v'}{i}@{DOMAINS[(i + 1) % 4]}"
    return [a, b]


@pytest.mark.time_limit(120)
@pytest.mark.parametrize("shards", [2, 3])
def test_kill9_during_delivery_loses_nothing(sluice_factory, delivery_world, shards):
    n = 240
    world = delivery_world(
        mx={**dict(zip(DOMAINS, HOSTS)), "snd.test": SENDER_HOST},
        default=dict(slow_reply={"data_end": 40}, permfail=["bad*@*"]),
        receivers={SENDER_HOST: {}})
    shaping = [{"pattern": d, "max_connections": MAX_CONN} for d in DOMAINS]
    relay = sluice_factory(delivery=True, shards=shards, args=world.sluice_args(),
                           config=relay_config(shaping=shaping))
    items = [(recipients_of(i), msg(f"crash {i}", to=recipients_of(i)[0])) for i in range(n)]
    # Two clients at once, so ingestion and delivery overlap.
    ids: dict = {}

    def client(part):
        for (rcpts, body), qid in zip(part, send_many(relay, part)):
            ids[rcpts[0]] = qid

    threads = [threading.Thread(target=client, args=(items[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=scaled(60))
    assert len(ids) == n, f"only {len(ids)} of {n} messages were queued"
    receivers = [world[h] for h in HOSTS]
    # Kill when about a third of the transactions are done.
    wait_for(lambda: sum(len(r.transactions()) for r in receivers) >= 2 * n // 3, timeout=30,
             what="deliveries under way")
    relay.kill9()
    t_kill = time.monotonic()
    done_before = sum(len(r.transactions()) for r in receivers)
    assert done_before < 2 * n, "everything was delivered before the kill: slow the receivers down"
    relay.start()

    good = {r for rcpts, _ in items for r in rcpts if not r.startswith("bad")}
    bad = {r for rcpts, _ in items for r in rcpts if r.startswith("bad")}

    def accepted() -> dict:
        got: dict = {}
        for r in receivers:
            for m in r.messages():
                for x in m["rcpts"]:
                    got.setdefault(x, []).append(m)
        return got

    def bounced() -> set:
        return {b["recipient"] for b in records(relay, "Bounce")}

    try:
        wait_for(lambda: good <= set(accepted()) and bad <= bounced(), timeout=60,
                 what="every recipient delivered or bounced after the restart")
    except AssertionError as e:
        missing = sorted(good - set(accepted()))
        unbounced = sorted(bad - bounced())
        raise AssertionError(f"{e}: never accepted {missing[:10]} ({len(missing)}), no Bounce "
                             f"record for {unbounced[:10]} ({len(unbounced)}), queue now "
                             f"{sorted(relay.queue_ids())[:10]}, corrupt files {relay.corrupt_files()}") from None
    got = accepted()
    assert set(got) == good, f"unexpected recipients accepted: {sorted(set(got) - good)[:10]}"
    # Duplicates. A receiver that was holding its 250 when the relay died
    # keeps a copy the relay never heard about ("reply_sent": False): every
    # MTA resends those; at most one per connection. A copy whose 250 did
    # reach the relay is sent again only in the documented window: the 250
    # came, the final outcome was not yet written by the home shard's ledger.
    # A connection starts its next message right after a 250, so that is
    # about one more per connection (the receiver holds each reply 40 ms);
    # a slow build (ASan) sees a few of these.
    dups = {x: ms for x, ms in got.items() if len(ms) > 1}
    unacknowledged = window = 0
    for x, ms in dups.items():
        assert len(ms) == 2, (x, len(ms))
        first = min(ms, key=lambda m: m["t"]["data_end"])
        assert t_kill - first["t"]["data_end"] < 1.0, (
            f"{x} delivered twice, its first copy {t_kill - first['t']['data_end']:.3f}s before the kill")
        if first["reply_sent"]:
            window += 1
        else:
            unacknowledged += 1
    in_flight_bound = 2 * MAX_CONN * len(DOMAINS)
    print(f"shards={shards}: {done_before} transactions before the kill; recipients delivered twice: "
          f"{unacknowledged} whose 250 never reached the relay, {window} in the 250-to-durable window "
          f"(bound {in_flight_bound}: two per connection)")
    assert unacknowledged + window <= in_flight_bound, sorted(dups)
    # Every body arrived intact.
    for rcpts, body in items:
        for x in rcpts:
            for m in got.get(x, []):
                assert m["body"].endswith(body), x
    # Each refused recipient got a DSN (a repeat only for a bounce right at the kill).
    sender = world[SENDER_HOST]
    wait_for(lambda: {x for m in sender.messages() for x in dsn_recipients(m)} >= bad, timeout=20,
             what="a DSN for every refused recipient")
    for m in sender.messages():
        assert m["mail_from"] == "" and m["rcpts"] == [SENDER], m
    # Everything is final: the spool empties.
    wait_for(lambda: relay.queue_ids() == set(), timeout=20, what="an empty spool")
    assert relay.corrupt_files() == []


def dsn_recipients(m) -> list:
    import re

    return re.findall(r"Final-Recipient: rfc822; (\S+)", m["body"].decode("utf-8", "replace"))


def blast(*args, timeout=60) -> dict:
    import json
    import subprocess

    from delivery_peers import tools_dir

    cmd = [str(tools_dir() / "sluice-blast"), "--json", *args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(timeout))
    assert r.returncode == 0, f"{cmd} exited {r.returncode}: {r.stdout!r} {r.stderr!r}"
    return json.loads(r.stdout)


@pytest.mark.time_limit(180)
@pytest.mark.slow
def test_kill9_under_volume_with_sinks(sluice_factory, sink_factory, mx_port):
    """3,000 blast messages for 20 domains routed to four sluice-sinks that hold
    each reply 30 ms; kill -9 when about a third has arrived, restart: every
    message arrives (digest-checked by the sinks), and the copies that
    arrive twice are no more than what could be in flight or in the
    250-to-durable window at the kill."""
    import re
    import time as _time

    n, domains = 3000, 20
    hosts = [f"127.0.0.{i}" for i in range(2, 6)]
    sinks = [sink_factory(h, script="match=* action=delay=30\n") for h in hosts]
    routes = []
    for j in range(domains):
        routes += ["--route", f"d{j}.example=[{hosts[j % 4]}]:{mx_port}"]
    shaping = [{"pattern": "*", "max_connections": 2}]
    relay = sluice_factory(delivery=True, shards=2, args=routes, config=relay_config(shaping=shaping))
    rep = blast("--target", f"{relay.host}:{relay.port}", "--connections", "8", "--messages", str(n),
                "--recipients", "1", "--domains", str(domains), "--size", "1500")
    assert rep["messages_ok"] == n, rep

    def arrived() -> int:
        return sum(len(list(s.store_dir.glob("*.eml"))) for s in sinks)

    wait_for(lambda: arrived() >= n // 3, timeout=60, what="a third delivered")
    relay.kill9()
    t_kill = _time.time()
    before = arrived()
    assert before < n, "everything was delivered before the kill"
    relay.start()
    wait_for(lambda: arrived() >= n, timeout=90, interval=0.2, what="every message delivered after the restart")
    wait_for(lambda: relay.queue_ids() == set(), timeout=30, what="an empty spool")
    _time.sleep(1.0)
    copies: dict = {}
    recent = 0
    for s in sinks:
        for p in s.store_dir.glob("*.eml"):
            head = p.read_bytes()[:4096]
            m = re.search(rb"X-Blast-Id: (\d+)", head)
            assert m, p
            copies.setdefault(int(m.group(1)), []).append(p)
            if t_kill - 0.5 <= p.stat().st_mtime <= t_kill:
                recent += 1
        st = s.stats()
        assert st["digest_mismatch"] == 0 and st["digest_missing"] == 0, st
    assert set(copies) == set(range(n)), f"missing: {sorted(set(range(n)) - set(copies))[:20]}"
    dups = sum(len(v) - 1 for v in copies.values())
    connections = domains * 2
    print(f"{before} of {n} delivered before the kill; {dups} delivered twice; {recent} stored in the last "
          f"0.5 s before the kill; {connections} connections at most")
    assert all(len(v) <= 2 for v in copies.values())
    for k, v in copies.items():
        if len(v) > 1:  # the first copy came in the last moments before the kill
            first = min(p.stat().st_mtime for p in v)
            assert t_kill - 0.5 <= first <= t_kill + 0.05, (k, t_kill - first)
    assert dups <= connections + recent, (dups, connections, recent)
