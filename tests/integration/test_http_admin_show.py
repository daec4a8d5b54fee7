"""GET /api/admin/v1/message?id=ID (docs/HTTP.md): one queued message shown
whole by the daemon, like `sluice queue show ID --json`: the envelope read
from the record by its home shard (on a helper thread), every recipient
with the state of the job that holds it on whichever shard owns its domain,
the headers and body with body=1 (cut at 1 MiB, "truncated"), one
recipient with recipient=ADDRESS; 404 for an unknown id, 400 for a bad one,
401 without a token. With 2 and 3 shards, so the home shard, the domains'
owner shards and the shard answering the HTTP request differ.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from sluice_harness import wait_for
from test_delivery import SENDER, msg, records, relay_config, send
from test_http import SLOW_RETRY, call, new_token, token_relay, tokens_config  # noqa: F401

API = "/api/admin/v1/message"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CONTENT_MAX = 1 << 20  # kHttpShowContentMax


def id_shard(qid: str) -> int:
    """The shard that wrote the message: the low 8 bits of its id."""
    v = 0
    for ch in qid:
        v = (v << 5) | CROCKFORD.index(ch)
    return v & 0xFF


@pytest.fixture
def show_relay(sluice_factory, delivery_world, tmp_path):
    """d1/d2 defer every RCPT (mail stays queued), d4 accepts, d3 holds
    its reply to the end of DATA for a minute (a delivery in flight)."""

    def start(shards: int):
        world = delivery_world(
            mx={"d1.test": "127.0.0.2", "d2.test": "127.0.0.2", "d3.test": "127.0.0.3",
                "d4.test": "127.0.0.4"},
            receivers={"127.0.0.2": dict(tempfail=["*"]),
                       "127.0.0.3": dict(slow_reply={"data_end": 60000}),
                       "127.0.0.4": dict()})
        token, line = new_token("ops")
        path = tmp_path / "tokens"
        path.write_text(line + "\n")
        relay = sluice_factory(shards=shards, delivery=True, args=[*world.sluice_args()],
                               config=relay_config(retry=SLOW_RETRY) + tokens_config(path))
        return relay, token, world

    return start


def show(relay, token, qid, **params):
    query = urllib.parse.urlencode({"id": qid, **params})
    return call(relay, "GET", f"{API}?{query}", token)


def cli_show(relay, qid, *flags):
    r = relay.cli("queue", "show", qid, *flags, "--spool", str(relay.spool), "--json")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


@pytest.mark.time_limit(150)
@pytest.mark.parametrize("shards", [2, 3])
def test_show_a_deferred_message_from_every_shard(show_relay, shards):
    relay, token, _world = show_relay(shards)
    # Messages from several connections, until two home shards are seen.
    ids = []
    while len({id_shard(i) for i in ids}) < 2 and len(ids) < 24:
        ids.append(send(relay, ["a@d1.test", "B@d1.test", "c@d2.test", "ok@d4.test"],
                        msg(f"m{len(ids)}", to="a@d1.test", body=("Hello.", "Second line."))))
        last_sent = time.monotonic()
    assert len({id_shard(i) for i in ids}) >= 2, ids
    wait_for(lambda: len(records(relay, "TransientFailure")) == 3 * len(ids), timeout=30,
             what="deferrals")
    wait_for(lambda: len(records(relay, "Delivery")) == len(ids), timeout=30, what="d4 deliveries")
    # A recipient no shard holds reads "new" for 2 s after arrival (it may
    # be on its way to its owner shard), "final" after.
    time.sleep(max(0.0, last_sent + 2.5 - time.monotonic()))

    for qid in ids:
        # Asked on fresh connections: the answering shard varies too.
        for _ in range(2):
            code, _, doc = show(relay, token, qid)
            assert code == 200, doc
            assert doc["id"] == qid and doc["shard"] == id_shard(qid), doc
            assert doc["sender"] == SENDER and doc["client"] == "127.0.0.1", doc
            assert doc["helo"] == "client.sluice.test" and doc["protocol"] == "ESMTP", doc
            assert doc["recipients_total"] == 4 and doc["recipients_pending"] == 3, doc
            assert doc["recipients_truncated"] is False and "content" not in doc, doc
            assert "campaign" not in doc and "tenant" not in doc, doc
            rs = doc["recipients"]
            assert [r["recipient"] for r in rs] == ["a@d1.test", "B@d1.test", "c@d2.test",
                                                    "ok@d4.test"], rs
            assert [r["index"] for r in rs] == [0, 1, 2, 3]
            for r in rs[:3]:
                assert r["state"] == "deferred" and r["pending"] is True, r
                assert r["attempts"] == 1 and r["next_us"] > doc["arrival_us"], r
                assert r["error"].startswith("451") and 0 <= r["shard"] < shards, r
            assert rs[0]["domain"] == rs[1]["domain"] == "d1.test" and rs[2]["domain"] == "d2.test"
            assert rs[0]["shard"] == rs[1]["shard"], rs  # one owner per domain
            assert rs[3]["state"] == "final" and rs[3]["pending"] is False, rs[3]
            assert rs[3]["shard"] is None and rs[3]["domain"] == "d4.test", rs[3]

        # The same as the CLI, which reads the spool itself.
        cli = cli_show(relay, qid)
        env = cli["envelope"]
        assert env["size"] == doc["size"] and env["arrival_us"] == doc["arrival_us"], (env, doc)
        assert [(r["recipient"], r["state"], r["error"]) for r in env["recipient_states"][:3]] == \
               [(r["recipient"], r["state"], r["error"]) for r in rs[:3]], (env, rs)

        # body=1: the headers and the body, exactly what the CLI prints.
        code, _, full = show(relay, token, qid, body=1)
        assert code == 200, full
        content = full["content"]
        assert content["text"] == cli["message"], (content, cli["message"])
        assert content["truncated"] is False and content["size"] == doc["size"], content
        assert "Subject: m" in content["text"] and "Second line.\r\n" in content["text"], content
        assert content["text"].startswith("Received: "), content["text"][:200]

    qid = ids[-1]
    # recipient=: one recipient (ASCII case ignored), its index kept.
    code, _, one = show(relay, token, qid, recipient="b@D1.TEST")
    assert code == 200 and [r["index"] for r in one["recipients"]] == [1], one
    assert one["recipients"][0]["state"] == "deferred" and one["recipients_total"] == 4, one
    code, _, err = show(relay, token, qid, recipient="nobody@d1.test")
    assert code == 404 and "nobody@d1.test" in err["error"], err

    # Unknown, malformed, incomplete, unauthenticated.
    code, _, err = show(relay, token, "0000000000000")
    assert code == 404 and "0000000000000" in err["error"], err
    code, _, err = show(relay, token, "not-an-id")
    assert code == 400 and "id" in err["error"], err
    code, _, err = call(relay, "GET", API, token)
    assert code == 400 and "id=" in err["error"], err
    code, _, err = show(relay, token, qid, body=2)
    assert code == 400 and "body" in err["error"], err
    code, _, err = show(relay, token, qid, recipient="")
    assert code == 400 and "recipient" in err["error"], err
    code, _, err = show(relay, token, qid, recipient="a@x\nlist")
    assert code == 400, err
    code, headers, err = call(relay, "GET", f"{API}?id={qid}")
    assert code == 401 and headers["www-authenticate"].startswith("Bearer"), err
    code, headers, err = call(relay, "POST", f"{API}?id={qid}", token)
    assert code == 405 and headers["allow"] == "GET, HEAD", err

    # A deleted message is gone.
    code, _, done = call(relay, "POST", "/api/admin/v1/delete", token, f"id={qid}")
    assert code == 200, done
    wait_for(lambda: show(relay, token, qid)[0] == 404, timeout=15, interval=0.2, what="the deleted message gone")


@pytest.mark.time_limit(120)
def test_show_a_message_in_flight_and_a_large_body_cut(show_relay):
    relay, token, _world = show_relay(3)
    # The receiver holds its answer to the end of DATA: the job is in flight.
    qid = send(relay, ["x@d3.test"], msg("slow", to="x@d3.test"))

    def in_flight():
        code, _, doc = show(relay, token, qid)
        assert code == 200, doc
        return doc["recipients"][0]["state"] == "in-flight" and doc

    doc = wait_for(in_flight, timeout=20, interval=0.2, what="the delivery in flight")
    r = doc["recipients"][0]
    assert r["pending"] is True and r["domain"] == "d3.test" and 0 <= r["shard"] < 3, r
    assert doc["recipients_pending"] == 1, doc

    # Past 1 MiB the content is cut, and says so.
    big_body = [("%07d " % i) + "x" * 70 for i in range(16000)]  # about 1.25 MB
    big = send(relay, ["q@d1.test"], msg("big", to="q@d1.test", body=big_body))
    code, _, doc = show(relay, token, big, body=1)
    assert code == 200, doc.get("error") if isinstance(doc, dict) else doc
    c = doc["content"]
    assert c["truncated"] is True and c["size"] == doc["size"] > CONTENT_MAX, (c["size"], doc["size"])
    assert len(c["text"].encode("latin-1")) == CONTENT_MAX, len(c["text"])
    assert "0000000 xxxx" in c["text"] and "0015999" not in c["text"]


@pytest.mark.time_limit(60)
def test_show_without_delivery_every_recipient_is_queued(token_relay):  # noqa: F811
    relay, token = token_relay(shards=2)  # queue-only: --no-delivery
    qid = send(relay, ["a@d1.test", "b@d2.test"], msg("kept", to="a@d1.test"))
    time.sleep(2.5)  # past the "new" window: still "queued"
    code, _, doc = show(relay, token, qid, body=1)
    assert code == 200, doc
    assert [(r["recipient"], r["state"], r["pending"]) for r in doc["recipients"]] == \
           [("a@d1.test", "queued", True), ("b@d2.test", "queued", True)], doc
    assert doc["recipients_pending"] == 2 and doc["shard"] == id_shard(qid), doc
    assert "Subject: kept" in doc["content"]["text"], doc["content"]
