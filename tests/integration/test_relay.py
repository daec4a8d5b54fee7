"""relay_from: clients outside the networks may not relay (550 5.7.1)."""

import pytest

from sluice_harness import (
    DATA_GO,
    MAIL_OK,
    NO_VALID_RCPT,
    OK,
    RCPT_OK,
    expect,
    expect_line,
    expect_queued,
)


def relay_denied(reply, rcpt: str):
    expect(reply, 550, "5.7.1", "Relay access denied", rcpt)
    assert reply.first.endswith(": Relay access denied"), str(reply)
    assert f"<{rcpt}>" in reply.first, str(reply)


def test_relay_denied_outside_relay_from(sluice_factory):
    d = sluice_factory(relay_from="10.0.0.0/8")  # 127.0.0.1 is outside
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    relay_denied(c.cmd("RCPT TO:<b@example.net>"), "b@example.net")
    relay_denied(c.cmd("RCPT TO:<c@example.org>"), "c@example.org")
    expect_line(c.cmd("DATA"), NO_VALID_RCPT)
    expect_line(c.cmd("RSET"), OK)
    assert d.queue_list() == []


def test_relay_denied_with_bdat(sluice_factory):
    d = sluice_factory(relay_from="10.0.0.0/8,192.168.0.0/16")
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    relay_denied(c.cmd("RCPT TO:<b@example.net>"), "b@example.net")
    c.send(b"BDAT 5 LAST\r\nhello")
    expect_line(c.reply(), NO_VALID_RCPT)
    expect_line(c.cmd("NOOP"), OK)
    assert d.queue_list() == []


def test_relay_default_allows_loopback(sluice_factory):
    d = sluice_factory()  # no --relay-from: 127.0.0.0/8 and ::1
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: relay ok\r\n\r\nx\r\n.\r\n")
    qid = expect_queued(c.reply())
    assert d.queue_ids() == {qid}


@pytest.mark.parametrize("cidrs", ["127.0.0.1/32", "10.0.0.0/8,127.0.0.0/8", "0.0.0.0/0"])
def test_relay_allowed_inside_relay_from(sluice_factory, cidrs):
    d = sluice_factory(relay_from=cidrs)
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)


def test_relay_ipv6_only_denies_ipv4(sluice_factory):
    d = sluice_factory(relay_from="::1")
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    relay_denied(c.cmd("RCPT TO:<b@example.net>"), "b@example.net")


def test_relay_ipv4_only_denies_ipv6(sluice_factory, ipv6_loopback):
    if not ipv6_loopback:
        pytest.skip("no IPv6 loopback on this machine")
    d = sluice_factory(relay_from="127.0.0.0/8", listen_hosts=("::1",))
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    relay_denied(c.cmd("RCPT TO:<b@example.net>"), "b@example.net")
    assert d.queue_list() == []


def test_bare_postmaster_accepted_from_relay_clients(sluice_factory):
    """RFC 5321 4.5.1: <Postmaster> without a domain must be accepted. Sluice
    has no mailboxes: without server.postmaster_address only clients that may
    relay can write to it, outsiders get 550 (test_integrity_smtp.py)."""
    d = sluice_factory()
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<Postmaster>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: to postmaster\r\n\r\nx\r\n.\r\n")
    qid = expect_queued(c.reply())
    [js] = d.queue_json()
    assert js["id"] == qid
    [rcpt] = js["recipients"]
    assert rcpt.lower().startswith("postmaster"), js
