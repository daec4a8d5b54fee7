"""PIPELINING (RFC 2920): many commands in one packet are answered in order."""

import time

import pytest

from sluice_harness import (
    BAD_RCPT,
    BYE,
    DATA_GO,
    MAIL_OK,
    OK,
    RCPT_OK,
    check_stored,
    expect_line,
    expect_queued,
    norm_addr,
    unsupported_option,
)


def _body(i: int) -> bytes:
    return f"Subject: pipelined {i}\r\nX-Seq: {i}\r\n\r\nmessage number {i}\r\n".encode()


def test_many_transactions_in_one_send(sluice):
    n = 10
    c = sluice.connect()
    c.banner()
    blob = [b"EHLO pipe.example\r\n"]
    for i in range(n):
        blob.append(f"MAIL FROM:<s{i}@example.com>\r\n".encode())
        blob.append(f"RCPT TO:<r{i}a@example.net>\r\nRCPT TO:<r{i}b@example.net>\r\n".encode())
        blob.append(b"DATA\r\n" + _body(i) + b".\r\n")
    blob.append(b"QUIT\r\n")
    c.send(b"".join(blob))
    replies = c.replies(1 + 5 * n + 1, timeout=30)
    assert replies[0].code == 250 and "PIPELINING" in replies[0].lines, str(replies[0])
    ids = []
    for i in range(n):
        mail, r1, r2, data, done = replies[1 + 5 * i: 6 + 5 * i]
        expect_line(mail, MAIL_OK)
        expect_line(r1, RCPT_OK)
        expect_line(r2, RCPT_OK)
        expect_line(data, DATA_GO)
        ids.append(expect_queued(done))
    expect_line(replies[-1], BYE)
    c.wait_closed(5)
    assert len(set(ids)) == n, ids
    meta = sluice.queue_json_by_id()
    assert set(meta) == set(ids)
    for i, qid in enumerate(ids):
        assert norm_addr(meta[qid]["sender"]) == f"s{i}@example.com"
        assert [norm_addr(r) for r in meta[qid]["recipients"]] == [f"r{i}a@example.net", f"r{i}b@example.net"]
        check_stored(sluice.queue_show(qid), qid, _body(i), headers_added=True)


def test_pipelined_groups_synchronised_at_data(sluice):
    """The RFC 2920 client: MAIL/RCPT/DATA in one send, the body after 354,
    and the next group in the same send as the end of the previous body."""
    n = 20
    c = sluice.session()
    ids = []
    group = lambda i: f"MAIL FROM:<s{i}@example.com>\r\nRCPT TO:<r{i}@example.net>\r\nDATA\r\n".encode()
    c.send(group(0))
    for i in range(n):
        mail, rcpt, data = c.replies(3)
        expect_line(mail, MAIL_OK)
        expect_line(rcpt, RCPT_OK)
        expect_line(data, DATA_GO)
        c.send(_body(i) + b".\r\n" + (group(i + 1) if i + 1 < n else b"QUIT\r\n"))
        ids.append(expect_queued(c.reply()))
    expect_line(c.reply(), BYE)
    assert sorted(sluice.queue_ids()) == sorted(ids)
    # one session: one shard, so the ids are strictly increasing
    assert ids == sorted(ids), ids


@pytest.mark.parametrize("verb,expected", [("NOOP", OK), ("RSET", OK)])
def test_thousand_pipelined_commands(sluice, verb, expected):
    c = sluice.session()
    c.send(f"{verb}\r\n".encode() * 1000)
    replies = c.replies(1000, timeout=30)
    for i, r in enumerate(replies):
        assert r.first == expected and len(r.lines) == 1, f"reply {i}: {r}"
    c.assert_silent(0.3)
    expect_line(c.cmd("NOOP"), OK)


def test_pipelined_mail_rset_pairs_in_order(sluice):
    c = sluice.session()
    c.send(b"".join(f"MAIL FROM:<s{i}@example.com>\r\nRSET\r\n".encode() for i in range(500)))
    replies = c.replies(1000, timeout=30)
    for i in range(0, 1000, 2):
        expect_line(replies[i], MAIL_OK)
        expect_line(replies[i + 1], OK)
    c.assert_silent(0.3)


def test_pipelined_transaction_with_failing_recipients(sluice):
    c = sluice.session()
    c.send(
        b"MAIL FROM:<a@example.com>\r\n"
        b"RCPT TO:<ok1@example.net>\r\n"
        b"RCPT TO:<broken@\r\n"
        b"RCPT TO:<ok2@example.net>\r\n"
        b"RCPT TO:<ok2b@example.net> NOTIFY=NEVER\r\n"
        b"RCPT TO:<ok3@example.net>\r\n"
        b"DATA\r\n"
    )
    mail, r1, bad, r2, param, r3, data = c.replies(7)
    expect_line(mail, MAIL_OK)
    expect_line(r1, RCPT_OK)
    expect_line(bad, BAD_RCPT)
    expect_line(r2, RCPT_OK)
    expect_line(param, unsupported_option("NOTIFY"))
    expect_line(r3, RCPT_OK)
    expect_line(data, DATA_GO)
    body = b"Subject: partial\r\n\r\nsome recipients failed\r\n"
    c.send(body + b".\r\n")
    qid = expect_queued(c.reply())
    [js] = sluice.queue_json()
    assert js["id"] == qid
    assert [norm_addr(r) for r in js["recipients"]] == ["ok1@example.net", "ok2@example.net", "ok3@example.net"], js
    check_stored(sluice.queue_show(qid), qid, body)


def test_commands_split_across_sends(sluice):
    """A command line may arrive in pieces, and pieces may hold several lines."""
    c = sluice.connect()
    c.banner()
    pieces = [b"EH", b"LO split.example\r", b"\nNO", b"OP\r\nNOOP", b"\r", b"\n", b"MAIL FROM:<a@exa", b"mple.com>\r\n"]
    for p in pieces:
        c.send(p)
        time.sleep(0.05)
    ehlo, n1, n2, mail = c.replies(4)
    assert ehlo.code == 250
    expect_line(n1, OK)
    expect_line(n2, OK)
    expect_line(mail, MAIL_OK)


def test_commands_byte_by_byte(sluice):
    c = sluice.connect()
    c.banner()
    for b in b"EHLO slow.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n":
        c.send(bytes([b]))
    ehlo, mail, rcpt = c.replies(3)
    assert ehlo.code == 250
    expect_line(mail, MAIL_OK)
    expect_line(rcpt, RCPT_OK)
