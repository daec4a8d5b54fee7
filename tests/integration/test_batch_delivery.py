"""Batches from the pickup directory delivered end to end (issues 4 and 5):
dnsmasq MX records point the batch's domains at sluice-sink and scripted
receivers on 127.0.0.x; every recipient gets exactly one message, with its
own merged fields; a batch without placeholders is one message to many; the
campaign and tenant ids are on every delivery record.
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter

import pytest

from sluice_harness import wait_for
from test_pickup_batch import TEMPLATE, batch_files, drop_batch, render

CAMPAIGN_MANIFEST = ('sender = "news@snd.test"\ntemplate = "template.eml"\n'
                     'recipients = "recipients.csv"\ncampaign = "spring-sale"\ntenant = "acme"\n')


def start(sluice_factory, world, tmp_path):
    pickup = tmp_path / "pickup"
    relay = sluice_factory(delivery=True, args=[*world.sluice_args(), "--pickup", str(pickup)],
                           config='[retry]\ninitial = "1s"\nmax_age = "1m"\n')
    return relay, pickup


def deliveries(relay):
    return [r for r in relay.log_records() if r.get("type") == "Delivery"]


@pytest.mark.time_limit(90)
def test_merge_batch_every_recipient_gets_its_own_message(sluice_factory, delivery_world, tmp_path):
    world = delivery_world(mx={"d0.test": "127.0.0.2", "d1.test": "127.0.0.3",
                               "snd.test": "127.0.0.9"})
    relay, pickup = start(sluice_factory, world, tmp_path)
    rows = [(f"p{i}@d{i % 2}.test", f"Name{i}", f"City{i % 7}") for i in range(40)]
    drop_batch(pickup, "merge.batch", batch_files(rows, manifest=CAMPAIGN_MANIFEST))
    msgs = world.wait_messages(40, timeout=40)
    by_rcpt = Counter(r for m in msgs for r in m["rcpts"])
    assert all(n == 1 for n in by_rcpt.values()), [r for r, n in by_rcpt.items() if n > 1]
    assert set(by_rcpt) == {e for e, _, _ in rows}
    for m in msgs:
        assert len(m["rcpts"]) == 1  # one transaction per merged recipient
        (rcpt,) = m["rcpts"]
        e, n, c = next(r for r in rows if r[0] == rcpt)
        assert m["mail_from"] == "news@snd.test"
        # Sluice's trace headers above, then exactly this recipient's rendering.
        assert m["body"].endswith(render(n, e, c)), (rcpt, m["body"][-300:])
    # The template has no Message-ID: each merged copy got its own, once.
    ids = {}
    for m in msgs:
        parsed = email.message_from_bytes(m["body"], policy=email.policy.compat32)
        assert len(parsed.get_all("Message-ID")) == 1, m["rcpts"]
        ids[m["rcpts"][0]] = parsed["Message-ID"]
    assert len(set(ids.values())) == 40, ids
    row_of = {e: i for i, (e, _, _) in enumerate(rows)}  # N: the recipient's index in the record
    wait_for(lambda: len(deliveries(relay)) == 40, 10, what="40 Delivery records")
    for d in deliveries(relay):
        assert d["campaign"] == "spring-sale" and d["tenant"] == "acme", d
        assert ids[d["recipient"]] == f"<{d['id']}.{row_of[d['recipient']]}@mx.sluice.test>", d
    wait_for(lambda: not relay.queue_ids(), 10, what="the batch record retired")


@pytest.mark.time_limit(90)
def test_batch_without_placeholders_shares_one_body(sluice_factory, delivery_world, tmp_path):
    world = delivery_world(mx={"d0.test": "127.0.0.2", "d1.test": "127.0.0.3",
                               "snd.test": "127.0.0.9"})
    relay, pickup = start(sluice_factory, world, tmp_path)
    plain = "From: news@snd.test\r\nSubject: Same for all\r\n\r\nOne body.\r\n"
    rows = [(f"q{i}@d{i % 2}.test", "x", "y") for i in range(30)]
    drop_batch(pickup, "plain.batch", batch_files(rows, manifest=CAMPAIGN_MANIFEST, template=plain))
    msgs = world.wait_messages(2, timeout=30)
    wait_for(lambda: sum(len(m["rcpts"]) for m in world.messages()) >= 30, 30,
             what="30 recipients")
    msgs = world.messages()
    # Recipients of one domain share transactions (up to 100 per transaction).
    assert len(msgs) == 2, [len(m["rcpts"]) for m in msgs]
    assert sorted(r for m in msgs for r in m["rcpts"]) == sorted(e for e, _, _ in rows)
    for m in msgs:
        assert m["body"].endswith(plain.encode())
    # One message to many: one Message-ID, shared.
    shared = {email.message_from_bytes(m["body"], policy=email.policy.compat32)["Message-ID"] for m in msgs}
    assert len(shared) == 1, shared


@pytest.mark.time_limit(90)
def test_merge_batch_bounce_quotes_the_recipients_own_headers(sluice_factory, delivery_world,
                                                              tmp_path):
    world = delivery_world(mx={"d0.test": "127.0.0.2", "snd.test": "127.0.0.9"},
                           receivers={"127.0.0.2": dict(permfail=["bad*@*"])})
    relay, pickup = start(sluice_factory, world, tmp_path)
    rows = [("good@d0.test", "Good", "Oslo"), ("bad1@d0.test", "Bad One", "Rome")]
    drop_batch(pickup, "bounce.batch", batch_files(rows, manifest=CAMPAIGN_MANIFEST))
    dsn = None

    def got_dsn():
        nonlocal dsn
        for m in world["127.0.0.9"].messages():
            if m["mail_from"] == "":
                dsn = m
                return True
        return False

    wait_for(got_dsn, 30, what="the DSN to news@snd.test")
    assert dsn["rcpts"] == ["news@snd.test"]
    parsed = email.message_from_bytes(dsn["body"], policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    text = dsn["body"].decode(errors="replace")
    assert "bad1@d0.test" in text and "Subject: Hello Bad One" in text
    assert "good@d0.test" not in text.split("Content-Type: text/rfc822-headers")[0]
    bounces = [r for r in relay.log_records() if r.get("type") == "Bounce"]
    assert [b["recipient"] for b in bounces] == ["bad1@d0.test"]
    assert bounces[0]["campaign"] == "spring-sale"
