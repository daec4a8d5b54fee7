"""`sluice queue ...` as an operator uses it (issue 11, docs/QUEUE.md): every
command against a running relay with real receivers on loopback (the
delivery world of test_delivery.py: dnsmasq, scripted receivers), each
command's --json parsed with json.loads, exit codes and messages for unknown
ids and domains, holds and suspensions across restarts (clean and kill -9),
delete without a DSN but with a Deletion record, and `queue shape` totals
against the queue itself.

Receivers that answer 451 to every RCPT (tempfail=["*"]) keep mail queued;
retries an hour apart keep it deferred for the length of a test.
"""

from __future__ import annotations

import json
import re
import time

from sluice_harness import wait_for
from test_delivery import SENDER_HOST, msg, records, send, start_relay, wait_finals

SLOW_RETRY = {"initial": "1h", "max_interval": "2h", "max_age": "1d"}
TEST_ID = "0CRAR9BEAEG81"  # a well-formed queue id that no test queues


def q(relay, *args, ok=True):
    """Runs `sluice queue ARGS --spool S`; with ok, asserts exit 0."""
    r = relay.cli("queue", *args, "--spool", str(relay.spool))
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def qjson(relay, *args):
    return json.loads(q(relay, *args, "--json").stdout)


def out(r) -> str:
    return r.stdout.decode()


def err(r) -> str:
    return r.stderr.decode()


def assert_aligned(text: str, columns: list) -> list:
    """The first line is a header naming `columns` in order; every cell of a
    left-aligned column starts where its header starts. Returns the rows."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = lines[0]
    starts = [header.index(c) for c in columns]
    assert starts == sorted(starts), header
    rows = []
    for ln in lines[1:]:
        if ln.startswith("--"):
            continue
        rows.append(ln)
        for s in starts[1:]:
            # A column boundary: the cell before it ends with padding.
            assert len(ln) <= s or ln[s - 1] == " ", (header, ln)
    return rows


def deferred_world(delivery_world, domains=("d1.test", "d2.test")):
    mx = {d: "127.0.0.2" for d in domains}
    mx["snd.test"] = SENDER_HOST
    return delivery_world(mx=mx, receivers={"127.0.0.2": dict(tempfail=["*"])})


def test_stats_is_one_json_document_with_totals(sluice_factory, delivery_world):
    world = deferred_world(delivery_world)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    send(relay, ["a@d1.test", "b@d1.test"], msg("one"))
    send(relay, ["c@d2.test"], msg("two", to="c@d2.test"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 3, timeout=10, what="deferrals")
    r = q(relay, "stats")
    doc = json.loads(out(r))  # the whole output is one document (jq parses it)
    assert [s["shard"] for s in doc["shards"]] == list(range(relay.shards)), doc
    for key in ("jobs_received", "deferred", "delivered", "live_messages", "deleted"):
        assert doc["totals"][key] == sum(s[key] for s in doc["shards"]), (key, doc)
    assert doc["totals"]["deferred"] == 3 and doc["totals"]["live_messages"] == 2, doc
    assert json.loads(out(q(relay, "stats", "--json")))["shards"][0]["shard"] == 0


def test_list_is_an_aligned_table_and_json(sluice_factory, delivery_world):
    world = deferred_world(delivery_world)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    send(relay, ["a@d1.test", "b@d1.test"], msg("one"))
    send(relay, ["c@d2.test"], msg("two", to="c@d2.test"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 3, timeout=10, what="deferrals")
    q(relay, "suspend", "d2.test", "--reason", "their maintenance")
    cols = ["DOMAIN", "READY", "DEFERRED", "IN-FLIGHT", "HELD", "RCPTS", "CONNS", "OLDEST",
            "NEXT-ATTEMPT", "STATE"]
    text = out(q(relay, "list"))
    rows = assert_aligned(text, cols)
    by_domain = {r.split()[0]: r for r in rows}
    assert set(by_domain) == {"d1.test", "d2.test"}, text
    assert by_domain["d2.test"].rstrip().endswith("suspended"), text
    assert by_domain["d1.test"].rstrip().endswith("active"), text
    listed = qjson(relay, "list")
    assert isinstance(listed, list) and {d["domain"] for d in listed} == {"d1.test", "d2.test"}
    d1 = next(d for d in listed if d["domain"] == "d1.test")
    assert d1["deferred"] == 1 and d1["recipients"] == 2 and d1["held"] == 0, d1


def test_messages_show_pending_recipients_last_error_attempts_next_retry(sluice_factory, delivery_world):
    world = deferred_world(delivery_world)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    qid = send(relay, ["a@d1.test", "b@d1.test", "c@d2.test"], msg("mailq"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 3, timeout=10, what="deferrals")
    now = time.time()
    (m,) = qjson(relay, "messages")
    assert m["id"] == qid and m["recipients"] == ["a@d1.test", "b@d1.test", "c@d2.test"], m
    for s in m["recipient_states"]:
        assert s["state"] == "deferred" and s["attempts"] == 1, s
        assert s["error"].startswith("451 4.7.1"), s
        assert 3500 <= s["next_us"] / 1e6 - now <= 3600, s
    assert [s["domain"] for s in m["recipient_states"]] == ["d1.test", "d1.test", "d2.test"]

    cols = ["ID", "AGE", "SIZE", "SENDER", "RECIPIENT", "STATE", "ATTEMPTS", "NEXT-RETRY", "LAST-ERROR"]
    text = out(q(relay, "messages"))
    rows = assert_aligned(text, cols)
    assert len(rows) == 3 and rows[0].startswith(qid) and rows[1].startswith(" "), text
    assert all("deferred" in r and "451 4.7.1" in r and "in 59m" in r for r in rows), text
    assert "1 message, 3 recipients pending" in text, text
    only_d2 = out(q(relay, "messages", "--domain", "d2.test"))
    assert "c@d2.test" in only_d2 and "a@d1.test" not in only_d2, only_d2

    # Without the daemon: the spool alone, and it says so.
    assert relay.stop() == 0
    r = q(relay, "messages")
    assert "spool-only view" in err(r), err(r)
    assert out(r).count("queued") == 3, out(r)
    (m,) = qjson(relay, "messages")
    assert {s["state"] for s in m["recipient_states"]} == {"queued"}, m


def test_show_prints_the_envelope_then_the_message(sluice_factory, delivery_world):
    world = deferred_world(delivery_world)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    qid = send(relay, ["a@d1.test", "c@d2.test"], msg("postcat me"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 2, timeout=10, what="deferrals")
    text = out(q(relay, "show", qid))
    envelope, message = text.split("*** MESSAGE ***\n", 1)
    assert envelope.startswith("*** ENVELOPE ***\n"), text
    for needed in (f"id:         {qid}", "sender:     <alice@snd.test>", "client:     127.0.0.1",
                   "recipients: 2 (2 pending)"):
        assert needed in envelope, envelope
    rows = assert_aligned(envelope.split("recipients: 2 (2 pending)\n", 1)[1],
                          ["RECIPIENT", "STATE", "ATTEMPTS", "NEXT-RETRY", "LAST-ERROR"])
    assert len(rows) == 2 and all("deferred" in r and "451" in r for r in rows), rows
    assert "Subject: postcat me" in message and message.startswith("Received:"), message
    body = out(q(relay, "show", qid, "--body"))
    assert body == message
    env_only = out(q(relay, "show", qid, "--envelope"))
    assert "Subject:" not in env_only and "*** " not in env_only and "a@d1.test" in env_only
    doc = qjson(relay, "show", qid)
    assert doc["envelope"]["id"] == qid and doc["message"] == message
    assert [s["state"] for s in doc["envelope"]["recipient_states"]] == ["deferred", "deferred"]
    assert q(relay, "show", qid, "--envelope", "--body", ok=False).returncode == 2


def test_errors_for_unknown_ids_and_domains(sluice_factory, delivery_world):
    world = deferred_world(delivery_world)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    for verb in ("bounce", "delete", "hold"):
        r = q(relay, verb, "--id", TEST_ID, ok=False)
        assert r.returncode == 1 and f"no queued mail with id {TEST_ID}" in err(r), (verb, err(r))
    for verb in ("bounce", "delete"):
        r = q(relay, verb, "--domain", "nosuch.test", ok=False)
        assert r.returncode == 1 and "no mail queued for nosuch.test" in err(r), (verb, err(r))
    r = q(relay, "release", "--id", TEST_ID, ok=False)
    assert r.returncode == 1 and "is not held" in err(r), err(r)
    r = q(relay, "release", "--domain", "nosuch.test", ok=False)
    assert r.returncode == 1 and "domain nosuch.test is not held" in err(r), err(r)
    r = q(relay, "resume", "d0.exmaple", ok=False)
    assert r.returncode == 1 and "d0.exmaple is not suspended" in err(r), err(r)
    r = q(relay, "flush", "nosuch.test", ok=False)
    assert r.returncode == 1 and "no mail queued for nosuch.test" in err(r), err(r)
    # Ids and domains no longer share an argument; a bad id is a usage error.
    for args in (("bounce", TEST_ID), ("bounce",), ("delete", "--id", TEST_ID, "--domain", "d1.test"),
                 ("hold", "--id", "not-an-id"), ("suspend",), ("suspend", "d1.test", "--for", "soon"),
                 ("frobnicate",)):
        r = q(relay, *args, ok=False)
        assert r.returncode == 2, (args, r.returncode, err(r))
        assert len(err(r).splitlines()) < 25, "a queue usage error prints the queue usage only"
    # Suspending a domain with nothing queued is allowed (in advance), with a warning.
    r = q(relay, "suspend", "d0.exmaple")
    assert "no mail queued for d0.exmaple; suspended anyway" in err(r), err(r)
    assert [s["domain"] for s in qjson(relay, "suspensions")] == ["d0.exmaple"]
    assert "d0.exmaple" in out(q(relay, "resume", "d0.exmaple"))
    assert qjson(relay, "suspensions") == []


def test_delete_sends_no_dsn_and_logs_deletion(sluice_factory, delivery_world):
    world = deferred_world(delivery_world, ("d1.test", "d2.test", "d3.test"))
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    q1 = send(relay, ["a@d1.test", "b@d1.test", "c@d2.test"], msg("delete by id"))
    q2 = send(relay, ["d@d3.test"], msg("delete by domain", to="d@d3.test"))
    q3 = send(relay, ["e@d2.test"], msg("stays", to="e@d2.test"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 5, timeout=10, what="deferrals")
    r = q(relay, "delete", "--id", q1)
    assert "deleted 3 queued recipients of message " + q1 in out(r), out(r)
    doc = qjson(relay, "delete", "--domain", "d3.test")
    assert doc == {"action": "delete", "domain": "d3.test", "recipients": 1, "in_flight": 0}, doc
    got = wait_for(lambda: (lambda d: d if len(d) == 4 else None)(records(relay, "Deletion")), timeout=5,
                   what="Deletion records")
    assert sorted((d["id"], d["recipient"]) for d in got) == sorted(
        [(q1, "a@d1.test"), (q1, "b@d1.test"), (q1, "c@d2.test"), (q2, "d@d3.test")]), got
    assert all("deleted by the administrator" in d["text"] for d in got), got
    wait_for(lambda: {m["id"] for m in qjson(relay, "messages")} == {q3}, timeout=5,
             what="deleted messages leave the spool")
    time.sleep(1.0)
    assert records(relay, "Bounce") == [] and world[SENDER_HOST].messages() == [], "no DSN for a delete"
    stats = qjson(relay, "stats")
    assert stats["totals"]["deleted"] == 4 and stats["totals"]["dsns"] == 0, stats


def test_bounce_by_id_and_domain_sends_dsns(sluice_factory, delivery_world):
    world = deferred_world(delivery_world)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    q1 = send(relay, ["a@d1.test"], msg("bounce by id"))
    send(relay, ["c@d2.test"], msg("bounce by domain", to="c@d2.test"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 2, timeout=10, what="deferrals")
    assert "bounced 1 queued recipients of message " + q1 in out(q(relay, "bounce", "--id", q1))
    assert "bounced 1 queued recipients of domain d2.test" in out(q(relay, "bounce", "--domain", "d2.test"))
    world[SENDER_HOST].wait_messages(2)
    assert len(records(relay, "Bounce")) == 2


def test_hold_and_release_by_id_survive_a_kill9(sluice_factory, delivery_world):
    """A held message is not delivered, not even after a crash (which loses
    the retry schedule and tries every recovered job at once): the hold is
    in <spool>/admin.state. Released, it goes at once."""
    world = delivery_world(mx={"d1.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": dict(tempfail_first=True)})
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    qid = send(relay, ["bob@d1.test"], msg("hold me"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 1, timeout=10, what="the deferral")
    assert "held 1 queued recipients of message " + qid in out(q(relay, "hold", "--id", qid))
    assert f"hold-id {qid}" in (relay.spool / "admin.state").read_text()
    relay.kill9()
    relay.start()
    q(relay, "flush")
    time.sleep(2.0)
    assert world["127.0.0.2"].rcpt_attempts("bob@d1.test") == 1, "a held message was attempted"
    (m,) = qjson(relay, "messages")
    assert m["recipient_states"][0]["state"] == "held", m
    (d,) = qjson(relay, "list")
    assert d["held"] == 1 and d["ready"] == 0, d
    assert "held" in out(q(relay, "messages"))
    assert "released 1 queued recipients" in out(q(relay, "release", "--id", qid))
    [f] = wait_finals(relay, 1)
    assert f["type"] == "Delivery" and f["id"] == qid, f
    assert qid not in (relay.spool / "admin.state").read_text()
    r = q(relay, "release", "--id", qid, ok=False)
    assert r.returncode == 1


def test_hold_a_domain_in_advance_across_a_clean_restart(sluice_factory, delivery_world):
    world = delivery_world(mx={"d1.test": "127.0.0.2", "d2.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": {}})
    relay = start_relay(sluice_factory, world)
    r = q(relay, "hold", "--domain", "d1.test")
    assert "no mail queued for d1.test; held anyway" in err(r), err(r)
    qid = send(relay, ["a@d1.test", "b@d2.test"], msg("half held"))
    [f] = wait_finals(relay, 1)
    assert f["recipient"] == "b@d2.test", f
    time.sleep(1.0)
    assert world["127.0.0.2"].rcpt_attempts("a@d1.test") == 0
    assert relay.stop() == 0
    relay.start()
    time.sleep(2.0)
    assert world["127.0.0.2"].rcpt_attempts("a@d1.test") == 0, "the domain hold was lost at restart"
    (m,) = qjson(relay, "messages")
    states = {s["recipient"]: s["state"] for s in m["recipient_states"]}
    assert states == {"a@d1.test": "held", "b@d2.test": "done"}, states
    (d,) = [d for d in qjson(relay, "list") if d["domain"] == "d1.test"]
    assert d["held_domain"] is True and d["held"] == 1, d
    assert "released 1 queued recipients of domain d1.test" in out(q(relay, "release", "--domain", "d1.test"))
    wait_finals(relay, 2)
    assert world["127.0.0.2"].rcpt_attempts("a@d1.test") == 1
    del qid


def test_suspension_with_duration_and_reason_survives_restart_and_ends_by_itself(sluice_factory,
                                                                                 delivery_world):
    world = delivery_world(mx={"d1.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": {}})
    relay = start_relay(sluice_factory, world)
    r = q(relay, "suspend", "d1.test", "--for", "8s", "--reason", "receiver maintenance (ticket 42)")
    assert re.search(r"suspended d1.test until \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", out(r)), out(r)
    suspended_at = time.time()
    qid = send(relay, ["a@d1.test"], msg("wait for the window"))
    (s,) = qjson(relay, "suspensions")
    assert s["domain"] == "d1.test" and s["reason"] == "receiver maintenance (ticket 42)", s
    assert abs(s["until_us"] / 1e6 - (suspended_at + 8)) < 2 and s["recipients"] == 1, s
    rows = assert_aligned(out(q(relay, "suspensions")), ["DOMAIN", "SINCE", "UNTIL", "LEFT", "RCPTS", "REASON"])
    assert len(rows) == 1 and rows[0].endswith("receiver maintenance (ticket 42)"), rows
    relay.kill9()
    relay.start()
    (s2,) = qjson(relay, "suspensions")
    assert s2["reason"] == s["reason"] and s2["until_us"] == s["until_us"], s2
    time.sleep(max(0.0, suspended_at + 6 - time.time()))
    assert world["127.0.0.2"].rcpt_attempts("a@d1.test") == 0, "delivered during the suspension"
    [f] = wait_finals(relay, 1, timeout=15)
    assert f["type"] == "Delivery" and f["id"] == qid, f
    assert time.time() >= suspended_at + 7.5, "delivered before the suspension ended"
    assert qjson(relay, "suspensions") == []
    r = q(relay, "resume", "d1.test", ok=False)
    assert r.returncode == 1 and "not suspended" in err(r)


def test_indefinite_suspension_survives_a_clean_restart(sluice_factory, delivery_world):
    world = delivery_world(mx={"d1.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": {}})
    relay = start_relay(sluice_factory, world)
    send(relay, ["a@d1.test"], msg("after resume"))
    # The sink accepts at once, so suspend first, then queue more.
    wait_finals(relay, 1)
    q(relay, "suspend", "d1.test")
    send(relay, ["b@d1.test"], msg("held by the suspension"))
    assert relay.stop() == 0
    relay.start()
    time.sleep(2.0)
    assert world["127.0.0.2"].rcpt_attempts("b@d1.test") == 0, "a restart lifted the suspension"
    (s,) = qjson(relay, "suspensions")
    assert s["until_us"] == 0 and s["recipients"] == 1, s
    assert "until resumed" in out(q(relay, "suspensions")) or "resumed by hand" in out(q(relay, "suspensions"))
    q(relay, "resume", "d1.test")
    wait_finals(relay, 2)


def test_shape_totals_match_the_queue(sluice_factory, delivery_world):
    domains = [f"d{i}.test" for i in range(1, 6)]
    world = deferred_world(delivery_world, domains)
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    per_domain = {"d1.test": 4, "d2.test": 3, "d3.test": 2, "d4.test": 1, "d5.test": 1}
    n = 0
    for d, count in per_domain.items():
        send(relay, [f"u{i}@{d}" for i in range(count)], msg(f"shape {d}", to=f"u0@{d}"))
        n += count
    wait_for(lambda: len(records(relay, "TransientFailure")) == n, timeout=15, what="deferrals")
    shape = qjson(relay, "shape")
    assert shape["source"] == "daemon" and shape["buckets"][0] == "0-5m" and shape["buckets"][-1] == "160m+"
    assert shape["total"]["total"] == n == sum(shape["total"]["counts"]) == shape["total"]["counts"][0]
    queued = sum(d["recipients"] + d["in_flight"] for d in qjson(relay, "list"))
    assert shape["total"]["total"] == queued, (shape, queued)
    assert {d["domain"]: d["total"] for d in shape["domains"]} == per_domain, shape
    assert [d["domain"] for d in shape["domains"]][:2] == ["d1.test", "d2.test"], "largest first"
    top = qjson(relay, "shape", "--top", "2")
    assert [d["domain"] for d in top["domains"]] == ["d1.test", "d2.test"]
    assert top["other"] == {"domains": 3, "total": 4, "counts": [4, 0, 0, 0, 0, 0, 0]}, top
    text = out(q(relay, "shape", "--top", "2"))
    lines = text.splitlines()
    assert lines[0].split() == ["DOMAIN", "TOTAL", "0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m",
                                "160m+"], text
    assert lines[1].split()[:3] == ["TOTAL", str(n), str(n)] and lines[-1].split()[:4] == ["(3", "other)", "4", "4"]
    widths = {len(ln) for ln in lines}
    assert len(widths) == 1, "right-aligned columns end together"
    spool_only = qjson(relay, "shape", "--spool-only")
    assert spool_only["source"] == "spool" and spool_only["total"]["total"] == n, spool_only


def test_flush_and_json_everywhere(sluice_factory, delivery_world):
    world = delivery_world(mx={"d1.test": "127.0.0.2", "snd.test": SENDER_HOST},
                           receivers={"127.0.0.2": dict(tempfail_first=True)})
    relay = start_relay(sluice_factory, world, retry=SLOW_RETRY)
    qid = send(relay, ["a@d1.test"], msg("flush"))
    wait_for(lambda: len(records(relay, "TransientFailure")) == 1, timeout=10, what="the deferral")
    assert qjson(relay, "flush", "d1.test") == {"domains_flushed": 1}
    [f] = wait_finals(relay, 1)
    assert f["id"] == qid and f["attempt"] == 2
    assert "flushed" in out(q(relay, "flush"))
    assert json.loads(out(q(relay, "suspend", "d1.test", "--for", "1h", "--json")))["domain"] == "d1.test"
    assert qjson(relay, "resume", "d1.test") == {"domain": "d1.test", "resumed": True}
    assert qjson(relay, "messages") == []
    assert out(q(relay, "messages")) == "queue is empty\n"


def test_views_work_without_delivery(sluice):
    """A daemon with --no-delivery queues only: the views show the spool and
    say why there is no delivery state; acting on delivery is an error."""
    qid = send(sluice, ["a@d1.test", "b@d2.test"], msg("no delivery"))
    r = q(sluice, "messages")
    assert "delivery is disabled" in err(r) and "spool-only view" in err(r), err(r)
    assert qid in out(r) and out(r).count("queued") == 2, out(r)
    shape = qjson(sluice, "shape")
    assert shape["source"] == "spool" and shape["total"]["total"] == 2, shape
    assert qjson(sluice, "list") == []
    r = q(sluice, "hold", "--id", qid, ok=False)
    assert r.returncode == 1 and "delivery is disabled" in err(r), err(r)
    assert "*** ENVELOPE ***" in out(q(sluice, "show", qid))
