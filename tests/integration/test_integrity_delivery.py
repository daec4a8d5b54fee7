"""Mail integrity at delivery (issue 10): no mail loops, no backscatter.

- MX-is-me: a domain whose MX is the relay itself (one of its listening
  address:port pairs), or an MX host named like the relay, is not delivered
  to: with nothing else left the recipient bounces 5.4.6 "mail for DOMAIN
  loops back to myself"; with another MX the mail goes there.
- Two relays that route a domain to each other stop at the hop limit:
  554 5.4.6 from the one that sees too many Received: fields, one bounce.
- An address literal recipient (u@[127.0.0.5]) goes to that address, with
  no DNS lookup.
- A message from an untrusted client (outside relay_from, not
  authenticated; only mail to postmaster_address is taken from one) never
  gets a DSN: its bounce is only logged.

Peers as in test_delivery.py: dnsmasq for the zone `test`, receivers and
sinks on 127.0.0.x:mx_port, DSNs collected at snd.test's MX (127.0.0.9).
"""

from __future__ import annotations

import smtplib
import time

import pytest

from sluice_harness import CLIENT_HELO, HOSTNAME, expect_line, expect_queued, have_ipv6_loopback, scaled, wait_for
from test_delivery import SENDER, SENDER_HOST, msg, records, relay_config, send, start_relay, wait_dsns

LOOP_TEXT = "loops back to myself"


def settle(relay, seconds: float = 2.0) -> list:
    """The accounting log after `seconds` more of the relay's work."""
    time.sleep(scaled(seconds))
    return relay.log_records()


def test_mx_pointing_at_the_relay_bounces_once(sluice_factory, delivery_world):
    world = delivery_world(mx={"self.test": "127.0.0.10", "snd.test": SENDER_HOST}, down=["127.0.0.10"])
    # The relay also listens where self.test's MX points, on the MX port.
    relay = start_relay(sluice_factory, world, args=["--listen", f"127.0.0.10:{world.port}"])
    qid = send(relay, ["u@self.test"], msg("loop", to="u@self.test"))
    ((m, dsn),) = wait_dsns(world[SENDER_HOST], 1)
    (r,) = dsn["recipients"]
    assert r["final_recipient"] == "rfc822; u@self.test" and r["status"] == "5.4.6", r
    assert "mail for self.test loops back to myself" in r["diagnostic"], r
    log = settle(relay)
    kinds = [(x["type"], x.get("recipient")) for x in log]
    # The message, its DSN; one bounce, the DSN's delivery: nothing else, ever.
    assert sorted(kinds) == sorted([("Reception", None), ("Reception", None), ("Bounce", "u@self.test"),
                                    ("Delivery", SENDER)]), kinds
    [bounce] = [x for x in log if x["type"] == "Bounce"]
    assert bounce["id"] == qid and bounce["enhanced"] == "5.4.6" and LOOP_TEXT in bounce["text"], bounce


def test_mx_named_like_the_relay_is_skipped(sluice_factory, delivery_world):
    world = delivery_world(mx={"snd.test": SENDER_HOST, "two.test": [(20, "127.0.0.12")]},
                           receivers={"127.0.0.11": {}})
    # one.test's only MX and two.test's preferred one carry the relay's own
    # name; that name resolves to a receiver that must never be contacted.
    world.dns.mx("one.test", [(10, HOSTNAME)])
    world.dns.mx("two.test", [(10, HOSTNAME), (20, "mx-127-0-0-12.test")])
    world.dns.a(HOSTNAME, "127.0.0.11").apply()
    relay = start_relay(sluice_factory, world)
    send(relay, ["a@one.test"], msg("one", to="a@one.test"))
    send(relay, ["b@two.test"], msg("two", to="b@two.test"))
    world["127.0.0.12"].wait_messages(1)
    ((m, dsn),) = wait_dsns(world[SENDER_HOST], 1)
    (r,) = dsn["recipients"]
    assert r["final_recipient"] == "rfc822; a@one.test" and r["status"] == "5.4.6", r
    assert world["127.0.0.11"].connections() == []
    # The receiver has the message before the relay has read its 250 and
    # logged the delivery: wait for the record, do not race it.
    [d] = wait_for(lambda: [x for x in records(relay, "Delivery") if x["recipient"] == "b@two.test"], timeout=10,
                   what="b@two.test's Delivery record")
    assert d["ip"] == "127.0.0.12", d


def test_two_relays_routing_to_each_other_stop_at_the_hop_limit(sluice_factory, delivery_world):
    """Relay A routes ping.test to B, B routes it back to A: each pass adds a
    Received: field, and the hop limit (5 here) ends it with one bounce."""
    world = delivery_world(mx={"snd.test": SENDER_HOST}, down=["127.0.0.21", "127.0.0.22"])
    port = world.port
    hop_limit = "[server]\nmax_hops = 5\n"
    a = sluice_factory(delivery=True, config=relay_config() + hop_limit,
                       args=[*world.sluice_args(), "--listen", f"127.0.0.21:{port}",
                             "--route", f"ping.test=[127.0.0.22]:{port}", "--route", f"snd.test=[{SENDER_HOST}]:{port}"])
    b = sluice_factory(delivery=True, config=relay_config() + hop_limit,
                       args=[*world.sluice_args(), "--listen", f"127.0.0.22:{port}",
                             "--route", f"ping.test=[127.0.0.21]:{port}", "--route", f"snd.test=[{SENDER_HOST}]:{port}"])
    send(a, ["u@ping.test"], msg("ping", to="u@ping.test"))
    ((m, dsn),) = wait_dsns(world[SENDER_HOST], 1, timeout=30)
    (r,) = dsn["recipients"]
    assert r["status"] == "5.4.6" and "Too many hops" in r["diagnostic"], r
    settle(a)
    receptions = len(a.reception_records()) + len(b.reception_records())
    bounces = records(a, "Bounce") + records(b, "Bounce")
    # The client's copy, hops 1..5 (one Received: each), the DSN: bounded.
    assert receptions == 7, receptions
    assert len(bounces) == 1 and bounces[0]["code"] == 554, bounces
    assert world[SENDER_HOST].messages() == [m]


def test_address_literal_is_delivered_without_dns(sluice_factory, delivery_world):
    world = delivery_world(mx={"snd.test": SENDER_HOST}, sinks={"127.0.0.5": {}})
    relay = start_relay(sluice_factory, world)
    body = msg("literal", to="u@[127.0.0.5]")
    qid = send(relay, ["u@[127.0.0.5]"], body)
    wait_for(lambda: world["127.0.0.5"].stored(), 15, what="the message at the sink")
    [stored] = world["127.0.0.5"].stored()
    assert stored.endswith(body) and f"id {qid}".encode() in stored
    [d] = wait_for(lambda: records(relay, "Delivery"), 10, what="the Delivery record")
    assert d["recipient"] == "u@[127.0.0.5]" and d["ip"] == "127.0.0.5" and d["mx"] == "127.0.0.5", d
    assert not [q for q in world.dns.queries() if "127.0.0.5" in q[1] or "[" in q[1]], world.dns.queries()


def test_ipv6_address_literal(sluice_factory, delivery_world):
    if not have_ipv6_loopback():
        pytest.skip("no ::1 on this machine")
    world = delivery_world(mx={"snd.test": SENDER_HOST}, receivers={"::1": {}})
    relay = start_relay(sluice_factory, world)
    body = msg("literal6", to="u@[IPv6:::1]")
    send(relay, ["u@[IPv6:::1]"], body)
    [m] = world["::1"].wait_messages(1)
    assert m["rcpts"] == ["u@[IPv6:::1]"] and m["body"].endswith(body), m["rcpts"]
    [d] = wait_for(lambda: records(relay, "Delivery"), 10, what="the Delivery record")
    assert d["ip"] == "::1" and d["mx"] == "::1", d


def test_no_dsn_for_an_untrusted_submitter(sluice_factory, delivery_world):
    world = delivery_world(mx={"null.test": None, "snd.test": SENDER_HOST})
    config = relay_config() + '[server]\npostmaster_address = "ops@null.test"\n'
    relay = sluice_factory(delivery=True, relay_from="127.0.0.2/32", args=world.sluice_args(), config=config)
    # An outsider (127.0.0.1) writes to postmaster: taken, sent to
    # postmaster_address, which bounces (null MX). Its sender gets nothing.
    c = relay.session()
    expect_line(c.cmd(f"MAIL FROM:<{SENDER}>"), "250 2.1.0 Ok")
    expect_line(c.cmd("RCPT TO:<postmaster>"), "250 2.1.5 Ok")
    expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
    c.send(b"Subject: to postmaster\r\n\r\nhello\r\n.\r\n")
    untrusted = expect_queued(c.reply())
    wait_for(lambda: records(relay, "Bounce"), 15, what="the bounce")
    wait_for(lambda: f"no DSN for {untrusted}: untrusted submitter" in relay.stderr_tail(), 5,
             what="the note on stderr")
    # A trusted client's bounce to the same place does get its DSN, so the
    # wait above was long enough for one to have come.
    s = smtplib.SMTP(relay.host, relay.port, local_hostname=CLIENT_HELO, timeout=scaled(10),
                     source_address=("127.0.0.2", 0))
    try:
        s.sendmail(SENDER, ["bob@null.test"], msg("trusted", to="bob@null.test"))
    finally:
        s.close()
    ((m, dsn),) = wait_dsns(world[SENDER_HOST], 1)
    assert [r["final_recipient"] for r in dsn["recipients"]] == ["rfc822; bob@null.test"], dsn
    settle(relay, 1.0)
    assert len(world[SENDER_HOST].messages()) == 1
    bounced = {(b["id"], b["recipient"]) for b in records(relay, "Bounce")}
    assert (untrusted, "ops@null.test") in bounced, bounced
