"""Whole transactions through Python's smtplib: queueing, stored bytes,
recipients, size and recipient limits, dot-stuffing."""

import smtplib

import pytest

from sluice_harness import (
    DATA_GO,
    MAIL_OK,
    RCPT_OK,
    TOO_BIG,
    TOO_MANY_RCPTS,
    check_stored,
    expect_line,
    expect_queued,
    make_message,
    norm_addr,
    queued_id_from_smtplib,
)


def send_one(s: smtplib.SMTP, sender: str, rcpts, msg: bytes, mail_options=()) -> str:
    """MAIL/RCPT/DATA one by one; returns the queue id from the 250 reply."""
    s.ehlo_or_helo_if_needed()
    code, resp = s.mail(sender, list(mail_options))
    assert code == 250, (code, resp)
    for r in rcpts:
        code, resp = s.rcpt(r)
        assert code == 250, (r, code, resp)
    code, resp = s.data(msg)
    return queued_id_from_smtplib(code, resp)


def test_simple_message_queued(sluice):
    s = sluice.smtp()
    s.ehlo()
    msg = make_message("simple", ["Hello Bob,", "", "this is a test.", "-- ", "Alice"])
    qid = send_one(s, "alice@example.com", ["bob@example.net"], msg)
    s.quit()

    [entry] = sluice.queue_list()
    assert entry.id == qid
    assert norm_addr(entry.sender) == "alice@example.com", entry.line
    assert entry.rcptcount == 1, entry.line
    assert entry.size >= len(msg), entry.line

    [js] = sluice.queue_json()
    assert js["id"] == qid
    assert norm_addr(js["sender"]) == "alice@example.com"
    assert [norm_addr(r) for r in js["recipients"]] == ["bob@example.net"]
    assert js["client"] == "127.0.0.1", js
    assert js["helo"] == "client.sluice.test", js
    assert isinstance(js["age_s"], (int, float)) and js["age_s"] >= 0, js
    assert js["size"] == entry.size, (js, entry.line)

    stored = sluice.queue_show(qid)
    prefix = check_stored(stored, qid, msg, headers_added=True)
    assert b"client.sluice.test" in prefix or b"127.0.0.1" in prefix, prefix


def test_existing_date_and_message_id_kept(sluice):
    s = sluice.smtp()
    msg = make_message("has headers", ["body"], date=True, message_id=True)
    qid = send_one(s, "alice@example.com", ["bob@example.net"], msg)
    s.quit()
    check_stored(sluice.queue_show(qid), qid, msg, headers_added=False)


def test_sendmail_high_level(sluice):
    """smtplib.sendmail adds SIZE= (advertised) and pipelines nothing."""
    s = sluice.smtp()
    msg = make_message("sendmail", ["via sendmail()"])
    refused = s.sendmail("alice@example.com", ["bob@example.net", "carol@example.org"], msg)
    assert refused == {}
    s.quit()
    [js] = sluice.queue_json()
    assert sorted(norm_addr(r) for r in js["recipients"]) == ["bob@example.net", "carol@example.org"]
    check_stored(sluice.queue_show(js["id"]), js["id"], msg)


def test_several_transactions_one_session(sluice):
    s = sluice.smtp()
    ids = []
    msgs = [make_message(f"m{i}", [f"number {i}"]) for i in range(5)]
    for i, m in enumerate(msgs):
        ids.append(send_one(s, f"s{i}@example.com", [f"r{i}@example.net"], m))
    s.quit()
    assert len(set(ids)) == 5
    assert ids == sorted(ids), f"ids of one session must increase: {ids}"
    assert sluice.queue_ids() == set(ids)
    for qid, m in zip(ids, msgs):
        check_stored(sluice.queue_show(qid), qid, m)


@pytest.mark.time_limit(90)
def test_many_recipients(sluice):
    rcpts = [f"user{i:04d}@dest{i % 7}.example" for i in range(500)]
    s = sluice.smtp()
    msg = make_message("many rcpts", ["to 500 people"])
    qid = send_one(s, "list@example.com", rcpts, msg)
    s.quit()
    [entry] = sluice.queue_list()
    assert entry.id == qid and entry.rcptcount == 500, entry.line
    [js] = sluice.queue_json()
    assert [norm_addr(r) for r in js["recipients"]] == rcpts
    check_stored(sluice.queue_show(qid), qid, msg)


@pytest.mark.time_limit(120)
def test_twenty_megabyte_message(sluice_factory):
    d = sluice_factory(max_message_size=30 * 1024 * 1024)
    line = ("0123456789abcdefghijklmnopqrstuvwxyz" * 27)[:990]
    nlines = (20 * 1024 * 1024) // (len(line) + 2) + 1
    body = [f"{i:08d} {line}" for i in range(nlines)]
    msg = make_message("big", body)
    assert len(msg) > 20 * 1024 * 1024
    s = d.smtp(timeout=120)
    qid = send_one(s, "big@example.com", ["bob@example.net"], msg)
    s.quit()
    [entry] = d.queue_list()
    assert entry.id == qid and entry.size >= len(msg), entry.line
    check_stored(d.queue_show(qid, timeout=120), qid, msg)


def test_message_too_large_after_data(sluice_factory):
    d = sluice_factory(max_message_size=100_000)
    s = d.smtp()
    s.ehlo()
    code, resp = s.mail("alice@example.com")  # no SIZE=: the limit is found during DATA
    assert code == 250
    assert s.rcpt("bob@example.net")[0] == 250
    msg = make_message("too big", ["x" * 900] * 250)  # ~225 kB
    code, resp = s.data(msg)
    assert f"{code} {resp.decode()}" == TOO_BIG, (code, resp)
    # the session goes on and the next transaction works
    small = make_message("small", ["fits"])
    qid = send_one(s, "alice@example.com", ["bob@example.net"], small)
    s.quit()
    assert d.queue_ids() == {qid}
    assert d.wait_no_tmp() == []


def test_message_too_large_declared_size(sluice_factory):
    d = sluice_factory(max_message_size=100_000)
    s = d.smtp()
    msg = make_message("too big", ["y" * 900] * 250)
    with pytest.raises(smtplib.SMTPSenderRefused) as ei:
        s.sendmail("alice@example.com", ["bob@example.net"], msg)  # sends SIZE=
    assert f"{ei.value.smtp_code} {ei.value.smtp_error.decode()}" == TOO_BIG
    s.quit()
    assert d.queue_list() == []


def test_too_many_recipients(sluice_factory):
    d = sluice_factory(max_recipients=5)
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    for i in range(5):
        expect_line(c.cmd(f"RCPT TO:<r{i}@example.net>"), RCPT_OK)
    expect_line(c.cmd("RCPT TO:<r5@example.net>"), TOO_MANY_RCPTS)
    expect_line(c.cmd("RCPT TO:<r6@example.net>"), TOO_MANY_RCPTS)
    expect_line(c.cmd("DATA"), DATA_GO)
    body = b"Subject: five\r\n\r\nfive recipients\r\n"
    c.send(body + b".\r\n")
    qid = expect_queued(c.reply())
    [entry] = d.queue_list()
    assert entry.id == qid and entry.rcptcount == 5, entry.line
    [js] = d.queue_json()
    assert [norm_addr(r) for r in js["recipients"]] == [f"r{i}@example.net" for i in range(5)]


def test_dot_stuffing_round_trip(sluice):
    body = [
        ".",
        "..",
        "...",
        ".leading dot",
        "..two leading dots",
        "middle . dot",
        "trailing dot.",
        " .space first",
        ".\t",
        "",
        ".",
        "end",
    ]
    msg = make_message("dots", body)
    s = sluice.smtp()
    qid = send_one(s, "alice@example.com", ["bob@example.net"], msg)  # smtplib stuffs dots
    s.quit()
    check_stored(sluice.queue_show(qid), qid, msg)


def test_eight_bit_body(sluice):
    msg = ("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nK\u00e4se, \u00e9t\u00e9, \u65e5\u672c\r\n").encode("utf-8")
    msg += bytes(range(0x80, 0x100)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    s = sluice.smtp()
    s.ehlo()
    qid = send_one(s, "alice@example.com", ["bob@example.net"], msg, mail_options=["BODY=8BITMIME"])
    s.quit()
    check_stored(sluice.queue_show(qid), qid, msg)


def test_helo_session_queues(sluice):
    s = sluice.smtp()
    code, _ = s.helo("old.client.example")
    assert code == 250
    msg = make_message("helo", ["via HELO"])
    qid = send_one(s, "alice@example.com", ["bob@example.net"], msg)
    s.quit()
    js = sluice.queue_json_by_id()[qid]
    assert js["helo"] == "old.client.example", js
    check_stored(sluice.queue_show(qid), qid, msg, esmtp=None)


def test_data_line_limit(sluice_factory):
    """With server.max_data_line_length = 1000 (RFC 5321 4.5.3.1.6; the default
    takes 64 KiB), 998 characters + CRLF is the longest allowed body line."""
    from sluice_harness import DATA_LINE_TOO_LONG
    sluice = sluice_factory(config="[server]\nmax_data_line_length = 1000\n")
    c = sluice.session()
    ok = b"Subject: long lines\r\n\r\n" + b"a" * 998 + b"\r\n"
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(ok + b".\r\n")
    qid = expect_queued(c.reply())
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: too long\r\n\r\n" + b"b" * 999 + b"\r\nnext\r\n.\r\n")
    expect_line(c.reply(), DATA_LINE_TOO_LONG)
    assert sluice.queue_ids() == {qid}
    check_stored(sluice.queue_show(qid), qid, ok)


def exact_body(n: int) -> bytes:
    """A message of exactly n bytes (CRLF lines, no leading dots)."""
    head = b"Subject: boundary\r\n\r\n"
    rest = n - len(head)
    full, tail = divmod(rest, 80)
    body = head + (b"x" * 78 + b"\r\n") * full
    if tail:
        if tail < 2:  # move one byte into a shorter last full line
            body = body[:-80] + b"x" * 77 + b"\r\n"
            tail += 1
        body += b"y" * (tail - 2) + b"\r\n"
    assert len(body) == n
    return body


@pytest.mark.parametrize("transfer", ["DATA", "BDAT"])
def test_message_size_boundary(sluice_factory, transfer):
    """max_message_size bytes are accepted, one more is refused (after the end)."""
    limit = 10_000
    d = sluice_factory(max_message_size=limit)
    c = d.session()
    queued = []
    for n, ok in ((limit, True), (limit + 1, False)):
        body = exact_body(n)
        expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
        expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
        if transfer == "DATA":
            expect_line(c.cmd("DATA"), DATA_GO)
            c.send(body + b".\r\n")
        else:
            c.send(f"BDAT {n} LAST\r\n".encode() + body)
        r = c.reply()
        if ok:
            queued.append(expect_queued(r))
        else:
            expect_line(r, TOO_BIG)
    assert d.queue_ids() == set(queued)
