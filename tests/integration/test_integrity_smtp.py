"""Mail integrity at the door (issue 10): the hop limit (554 5.4.6, over
DATA, BDAT and the pickup directory), <postmaster> and outsiders, duplicate
recipients, the EHLO/HELO argument check and duplicate MAIL parameters.

"Outsider" here is a client outside relay_from and not authenticated: the
daemon runs with --relay-from 127.0.0.2/32 and the client connects from
127.0.0.1. A trusted client binds its socket to 127.0.0.2.
"""

from __future__ import annotations

import os
import smtplib

from sluice_harness import (
    CLIENT_HELO,
    DATA_GO,
    HOSTNAME,
    MAIL_OK,
    NEED_HELO,
    NO_VALID_RCPT,
    RCPT_OK,
    expect,
    expect_line,
    expect_queued,
    scaled,
    wait_for,
)

TOO_MANY_HOPS = "554 5.4.6 Too many hops"
OUTSIDERS = "127.0.0.2/32"  # the tests' client connects from 127.0.0.1


def hops(n: int) -> bytes:
    return b"".join(b"Received: from h%d.example by h%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i + 1)
                    for i in range(n))


def config(**server) -> str:
    lines = ["[server]"]
    for k, v in server.items():
        lines.append(f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


def data_txn(c, body: bytes, rcpt: str = "bob@example.net"):
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), MAIL_OK)
    expect_line(c.cmd(f"RCPT TO:<{rcpt}>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(body + b".\r\n")
    return c.reply()


# --------------------------------------------------------------------------
# The hop limit


def test_hop_limit_over_data(sluice_factory):
    d = sluice_factory(config=config(max_hops=5))
    c = d.session()
    ok = data_txn(c, hops(5) + b"Subject: five hops\r\n\r\nbody\r\n")
    qid = expect_queued(ok)
    expect_line(data_txn(c, hops(6) + b"Subject: six hops\r\n\r\nbody\r\n"), TOO_MANY_HOPS)
    # Received: lines in the body, or folded inside another field, are no hops.
    body = hops(5) + b"X-Note: x\r\n Received: folded\r\n\r\n" + hops(30)
    qid2 = expect_queued(data_txn(c, body))
    assert d.queue_ids() == {qid, qid2}
    assert [r["id"] for r in d.reception_records()] == [qid, qid2]


def test_hop_limit_over_bdat(sluice_factory):
    d = sluice_factory(config=config(max_hops=3))
    c = d.session()
    body = hops(4) + b"Subject: bdat\r\n\r\nbody\r\n"
    first, rest = body[:30], body[30:]
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<bob@example.net>"), RCPT_OK)
    c.send(b"BDAT %d\r\n" % len(first) + first)
    expect(c.reply(), 250, "2.0.0")
    c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
    expect_line(c.reply(), TOO_MANY_HOPS)
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), MAIL_OK)  # the transaction was reset
    assert d.queue_list() == []


def test_default_hop_limit_is_50(sluice_factory):
    d = sluice_factory()
    c = d.session()
    expect_queued(data_txn(c, hops(50) + b"\r\nx\r\n"))
    expect_line(data_txn(c, hops(51) + b"\r\nx\r\n"), TOO_MANY_HOPS)
    assert len(d.queue_list()) == 1


def test_hop_limit_in_the_pickup_directory(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)], config=config(max_hops=2))
    head = b"X-Sluice-Envelope-From: <alice@example.com>\r\nX-Sluice-Envelope-To: <bob@example.net>\r\n"
    for name, n in (("loop", 3), ("fine", 2)):
        tmp = pickup / "tmp" / name
        tmp.write_bytes(head + hops(n) + b"Subject: %s\r\n\r\nbody\r\n" % name.encode())
        os.rename(tmp, pickup / "new" / name)
    wait_for(lambda: (pickup / "bad" / "loop.error").exists() and d.reception_records(), 15,
             what="the looping file refused and the other queued")
    assert "too many hops: 3 Received:" in (pickup / "bad" / "loop.error").read_text()
    rejections = [r for r in d.log_records() if r["type"] == "Rejection"]
    assert len(rejections) == 1 and rejections[0]["file"] == "loop", rejections
    assert "too many hops" in rejections[0]["reason"]
    [m] = d.queue_json()
    assert m["recipients"] == ["bob@example.net"]


# --------------------------------------------------------------------------
# postmaster and outsiders


def test_outsider_cannot_reach_postmaster_without_postmaster_address(sluice_factory):
    d = sluice_factory(relay_from=OUTSIDERS)
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<Postmaster>"), "550 5.7.1 <Postmaster>: Relay access denied")
    expect_line(c.cmd(f"RCPT TO:<postmaster@{HOSTNAME.upper()}>"),
                f"550 5.7.1 <postmaster@{HOSTNAME.upper()}>: Relay access denied")
    expect_line(c.cmd("DATA"), NO_VALID_RCPT)
    assert d.queue_list() == []


def test_outsider_postmaster_goes_to_postmaster_address_once(sluice_factory):
    d = sluice_factory(relay_from=OUTSIDERS, config=config(postmaster_address="ops@corp.example"))
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<postmaster>"), RCPT_OK)
    expect_line(c.cmd(f"RCPT TO:<PostMaster@{HOSTNAME}>"), RCPT_OK)  # the same mailbox again
    expect(c.cmd("RCPT TO:<bob@example.net>"), 550, "5.7.1", "Relay access denied")
    expect(c.cmd("RCPT TO:<ops@corp.example>"), 550, "5.7.1", "Relay access denied")  # only via postmaster
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: hello postmaster\r\n\r\nbody\r\n.\r\n")
    qid = expect_queued(c.reply())
    [m] = d.queue_json()
    assert m["id"] == qid and m["recipients"] == ["ops@corp.example"], m
    [rec] = d.reception_records()
    assert rec["recipients"] == ["ops@corp.example"], rec


def test_trusted_client_postmaster_and_duplicates(sluice_factory):
    d = sluice_factory(relay_from=OUTSIDERS)
    s = smtplib.SMTP(d.host, d.port, local_hostname=CLIENT_HELO, timeout=scaled(10),
                     source_address=("127.0.0.2", 0))
    try:
        s.ehlo()
        assert s.mail("alice@example.com")[0] == 250
        for r in ("Postmaster", f"postmaster@{HOSTNAME}", "bob@example.net", "bob@EXAMPLE.NET",
                  "Bob@example.net", "bob@example.net"):
            assert s.rcpt(r)[0] == 250, r
        code, resp = s.data(b"Subject: dups\r\n\r\nbody\r\n")
        assert code == 250, resp
    finally:
        s.close()
    [m] = d.queue_json()
    assert m["recipients"] == [f"postmaster@{HOSTNAME}", "bob@example.net", "Bob@example.net"], m


# --------------------------------------------------------------------------
# EHLO/HELO arguments and duplicate parameters


def test_helo_argument_is_checked_and_never_echoed_raw(sluice_factory):
    d = sluice_factory()
    c = d.connect()
    expect(c.banner(), 220)
    for bad in (b"EHLO evil\x1b[2J.example", b"EHLO two words", b"EHLO caf\xc3\xa9.example",
                b"HELO <script>", b"EHLO a\x7fb"):
        c.send(bad + b"\r\n")
        r = c.reply()
        expect(r, 501, "5.5.4", "invalid")
        assert b"\x1b" not in r.raw and b"\xc3" not in r.raw and b"\x7f" not in r.raw, r.raw
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), NEED_HELO)
    for good in ("my_host.local", "[127.0.0.1]", "[IPv6:::1]", "198.51.100.7", "DESKTOP-ABC"):
        r = c.cmd(f"EHLO {good}")
        assert r.code == 250 and r.lines[0] == f"{HOSTNAME} Hello {good}", r
    qid = expect_queued(data_txn(c, b"Subject: x\r\n\r\nx\r\n"))
    [rec] = d.wait_reception_ids([qid]).values()
    assert rec["helo"] == "DESKTOP-ABC", rec


def test_duplicate_mail_parameters_are_refused(sluice_factory):
    d = sluice_factory()
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<alice@example.com> SIZE=1 SIZE=2"), "555 5.5.4 Duplicate parameter: SIZE")
    expect_line(c.cmd("MAIL FROM:<alice@example.com> BODY=7BIT body=8BITMIME"),
                "555 5.5.4 Duplicate parameter: BODY")
    expect_line(c.cmd("MAIL FROM:<alice@example.com> SMTPUTF8 SMTPUTF8"),
                "555 5.5.4 Duplicate parameter: SMTPUTF8")
    expect_line(c.cmd("MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME"), MAIL_OK)
    assert d.queue_list() == []
