"""DATA framing over raw sockets: only <CRLF>.<CRLF> ends DATA, the SMTP
smuggling look-alikes never do, dot-unstuffing, terminators split across
sends, empty bodies."""

import random
import time

import pytest

from sluice_harness import (
    BARE_CRLF,
    DATA_GO,
    MAIL_OK,
    OK,
    RCPT_OK,
    check_stored,
    dot_stuff,
    expect_line,
    expect_queued,
    norm_addr,
)


def open_data(c, sender="alice@example.com", rcpt="bob@example.net"):
    expect_line(c.cmd(f"MAIL FROM:<{sender}>"), MAIL_OK)
    expect_line(c.cmd(f"RCPT TO:<{rcpt}>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)


SMUGGLED = (
    b"MAIL FROM:<evil@attacker.example>\r\n"
    b"RCPT TO:<victim@example.net>\r\n"
    b"DATA\r\n"
    b"From: <ceo@example.com>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n"
)

LOOKALIKES = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CR": b"\r.\r",
    "CRLF.CR+X": b"\r\n.\rX",
    "CR.CRLF": b"\r.\r\n",
    "CR.LF": b"\r.\n",
    "LF.CR": b"\n.\r",
    "CRLF.CR.LF": b"\r\n.\r.\n",
}


@pytest.mark.parametrize("name", list(LOOKALIKES))
def test_smuggling_lookalike_never_ends_data(sluice, name):
    look = LOOKALIKES[name]
    body = b"From: <alice@example.com>\r\nSubject: smuggle " + name.encode() + b"\r\n\r\nhello" + look + SMUGGLED
    wire = body + b"\r\n.\r\n"
    # self-check: the real end is the only <CRLF>.<CRLF>
    assert wire.find(b"\r\n.\r\n") == len(wire) - 5
    c = sluice.session()
    open_data(c)
    c.send(wire)
    expect_line(c.reply(timeout=10), BARE_CRLF)
    # exactly one reply: the smuggled MAIL/RCPT/DATA were never executed
    expect_line(c.cmd("NOOP"), OK)
    c.assert_silent(0.3)
    # and the session is in its initial state: no open transaction
    expect_line(c.cmd("RSET"), OK)
    assert sluice.queue_list() == []
    assert sluice.wait_no_tmp() == []


@pytest.mark.parametrize("name", ["LF.LF", "LF.CRLF", "CRLF.LF", "CR.CR"])
def test_smuggling_lookalike_split_across_sends(sluice, name):
    """The same, with the look-alike and the smuggled commands in separate packets."""
    look = LOOKALIKES[name]
    c = sluice.session()
    open_data(c)
    c.send(b"Subject: split smuggle\r\n\r\nhello")
    time.sleep(0.05)
    for b in look:
        c.send(bytes([b]))
        time.sleep(0.02)
    c.assert_silent(0.2)
    c.send(SMUGGLED)
    c.assert_silent(0.2)
    c.send(b"\r\n.\r\n")
    expect_line(c.reply(timeout=10), BARE_CRLF)
    expect_line(c.cmd("NOOP"), OK)
    c.assert_silent(0.3)
    assert sluice.queue_list() == []


@pytest.mark.parametrize("body", [
    b"Subject: bare lf\r\n\r\nline one\nline two\r\n",
    b"Subject: bare cr\r\n\r\nline one\rline two\r\n",
    b"Subject: bare lf in header\nX: y\r\n\r\nbody\r\n",
    b"Subject: trailing bare lf\r\n\r\nbody\n\r\n",
    b"Subject: lone cr before end\r\n\r\nbody\r\r\n",
])
def test_bare_cr_or_lf_rejected(sluice, body):
    c = sluice.session()
    open_data(c)
    c.send(body + b".\r\n")
    expect_line(c.reply(timeout=10), BARE_CRLF)
    expect_line(c.cmd("NOOP"), OK)
    assert sluice.queue_list() == []


def test_after_rejected_smuggling_a_real_message_works(sluice):
    c = sluice.session()
    open_data(c, sender="first@example.com")
    c.send(b"Subject: x\r\n\r\nhello\n.\n" + SMUGGLED + b"\r\n.\r\n")
    expect_line(c.reply(), BARE_CRLF)
    open_data(c, sender="second@example.com")
    body = b"Subject: legit\r\n\r\nlegit body\r\n"
    c.send(body + b".\r\n")
    qid = expect_queued(c.reply())
    [entry] = sluice.queue_list()
    assert entry.id == qid and norm_addr(entry.sender) == "second@example.com", entry.line
    check_stored(sluice.queue_show(qid), qid, body)


SPLITS = {
    "CR|LF.|CRLF": [b"\r", b"\n.", b"\r\n"],
    "CRLF|.|CR|LF": [b"\r\n", b".", b"\r", b"\n"],
    "CRLF.|CRLF": [b"\r\n.", b"\r\n"],
    "CRLF.CR|LF": [b"\r\n.\r", b"\n"],
    "CR|LF|.|CR|LF": [b"\r", b"\n", b".", b"\r", b"\n"],
}


@pytest.mark.parametrize("name", list(SPLITS))
def test_terminator_split_across_sends(sluice, name):
    c = sluice.session()
    open_data(c)
    head = b"Subject: split end\r\n\r\nbody line"
    c.send(head)
    pieces = SPLITS[name]
    for p in pieces[:-1]:
        time.sleep(0.05)
        c.send(p)
        c.assert_silent(0.15)  # DATA has not ended yet
    time.sleep(0.05)
    c.send(pieces[-1])
    qid = expect_queued(c.reply(timeout=10))
    check_stored(sluice.queue_show(qid), qid, head + b"\r\n")


def test_whole_message_byte_by_byte(sluice):
    c = sluice.session()
    open_data(c)
    body = b"Subject: bytes\r\n\r\n.dot\r\nline\r\n"
    for b in dot_stuff(body) + b".\r\n":
        c.send(bytes([b]))
    qid = expect_queued(c.reply(timeout=10))
    check_stored(sluice.queue_show(qid), qid, body)


def test_dot_unstuffing_split_between_dots(sluice):
    c = sluice.session()
    open_data(c)
    pieces = [b"Subject: s\r\n\r\n", b".", b".dotline\r\n.", b".\r\n", b".", b"\r\n"]
    for p in pieces:
        c.send(p)
        time.sleep(0.05)
    qid = expect_queued(c.reply(timeout=10))
    check_stored(sluice.queue_show(qid), qid, b"Subject: s\r\n\r\n.dotline\r\n.\r\n")


def test_empty_message(sluice):
    c = sluice.session()
    open_data(c)
    c.send(b".\r\n")
    qid = expect_queued(c.reply(timeout=10))
    stored = sluice.queue_show(qid)
    check_stored(stored, qid, b"")
    [entry] = sluice.queue_list()
    assert entry.id == qid


def test_first_line_stuffed_dot(sluice):
    c = sluice.session()
    open_data(c)
    c.send(b"..first\r\n.\r\n")
    qid = expect_queued(c.reply(timeout=10))
    check_stored(sluice.queue_show(qid), qid, b".first\r\n")


def test_data_end_pipelined_with_next_command(sluice):
    c = sluice.session()
    open_data(c)
    body = b"Subject: then noop\r\n\r\nx\r\n"
    c.send(body + b".\r\nNOOP\r\nMAIL FROM:<n@example.com>\r\n")
    qid = expect_queued(c.reply())
    expect_line(c.reply(), OK)
    expect_line(c.reply(), MAIL_OK)
    check_stored(sluice.queue_show(qid), qid, body)


@pytest.mark.time_limit(90)
def test_stuffed_dots_across_buffer_boundaries(sluice):
    """~400 kB of lines that start with dots, sent in 16 KiB slices: every
    '\\r\\n..' that straddles a receive buffer boundary must be unstuffed once."""
    rng = random.Random(5321)
    lines = []
    total = 0
    while total < 400_000:
        n = rng.randint(0, 300)
        line = "." * rng.randint(1, 3) + "".join(rng.choice("abc. ") for _ in range(n))
        lines.append(line)
        total += len(line) + 2
    body = ("Subject: dots\r\n\r\n" + "".join(line + "\r\n" for line in lines)).encode()
    wire = dot_stuff(body) + b".\r\n"
    c = sluice.session()
    open_data(c)
    for off in range(0, len(wire), 16384):
        c.send(wire[off:off + 16384])
        time.sleep(0.002)
    qid = expect_queued(c.reply(timeout=30))
    check_stored(sluice.queue_show(qid), qid, body)
