"""CHUNKING (RFC 3030) over raw sockets: BDAT chunks are counted, never
scanned; error replies still swallow the announced chunk."""

import pytest

from sluice_harness import (
    BDAT_SYNTAX,
    DATA_AFTER_BDAT,
    HELP_TEXT,
    MAIL_OK,
    NEED_MAIL,
    NO_VALID_RCPT,
    OK,
    RCPT_OK,
    TOO_BIG,
    check_stored,
    expect_line,
    expect_queued,
)


def start_tx(c, sender="alice@example.com", rcpts=("bob@example.net",)):
    expect_line(c.cmd(f"MAIL FROM:<{sender}>"), MAIL_OK)
    for r in rcpts:
        expect_line(c.cmd(f"RCPT TO:<{r}>"), RCPT_OK)


def bdat(c, chunk: bytes, last: bool = False):
    c.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
    return c.reply(timeout=15)


CHUNKS = [
    b"From: <alice@example.com>\r\nSubject: chunked\r\n\r\n",
    b"line one\r\n.\r\n",  # would end DATA; in BDAT it is just content
    b"..two dots stay two dots\r\nQUIT\r\n",
    b"RSET\r\nMAIL FROM:<evil@example.com>\r\nlast line\r\n",
]


def test_bdat_chunks_then_last(sluice):
    c = sluice.session()
    start_tx(c)
    for ch in CHUNKS[:-1]:
        expect_line(bdat(c, ch), f"250 2.0.0 {len(ch)} octets received")
    qid = expect_queued(bdat(c, CHUNKS[-1], last=True))
    expect_line(c.cmd("NOOP"), OK)
    check_stored(sluice.queue_show(qid), qid, b"".join(CHUNKS))
    [entry] = sluice.queue_list()
    assert entry.id == qid and entry.rcptcount == 1


def test_bdat_pipelined(sluice):
    c = sluice.session()
    wire = b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n"
    for ch in CHUNKS[:-1]:
        wire += f"BDAT {len(ch)}\r\n".encode() + ch
    wire += f"BDAT {len(CHUNKS[-1])} LAST\r\n".encode() + CHUNKS[-1] + b"NOOP\r\n"
    c.send(wire)
    replies = c.replies(2 + len(CHUNKS) + 1)
    expect_line(replies[0], MAIL_OK)
    expect_line(replies[1], RCPT_OK)
    for r, ch in zip(replies[2:], CHUNKS[:-1]):
        expect_line(r, f"250 2.0.0 {len(ch)} octets received")
    qid = expect_queued(replies[-2])
    expect_line(replies[-1], OK)
    check_stored(sluice.queue_show(qid), qid, b"".join(CHUNKS))


def test_bdat_zero_last_ends_message(sluice):
    c = sluice.session()
    start_tx(c)
    first = b"Subject: zero last\r\n\r\nbody\r\n"
    expect_line(bdat(c, first), f"250 2.0.0 {len(first)} octets received")
    qid = expect_queued(bdat(c, b"", last=True))
    check_stored(sluice.queue_show(qid), qid, first)


def test_bdat_zero_last_only(sluice):
    c = sluice.session()
    start_tx(c)
    qid = expect_queued(bdat(c, b"", last=True))
    check_stored(sluice.queue_show(qid), qid, b"")


def test_bdat_large_chunk(sluice):
    c = sluice.session()
    start_tx(c)
    big = b"Subject: big chunk\r\n\r\n" + b"".join(b"%07d " % i + b"z" * 90 + b"\r\n" for i in range(20000))
    qid = expect_queued(bdat(c, big, last=True))
    check_stored(sluice.queue_show(qid), qid, big)


def test_bdat_without_mail(sluice):
    c = sluice.session()
    chunk = b"RSET\r\nNOOP\r\n"
    c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk + b"HELP\r\n")
    expect_line(c.reply(), NEED_MAIL)
    # the chunk was swallowed: the next reply is HELP's, not RSET's/NOOP's
    expect_line(c.reply(), HELP_TEXT)
    c.assert_silent(0.3)


def test_bdat_last_without_mail(sluice):
    c = sluice.session()
    chunk = b"NOOP\r\n"
    c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk + b"HELP\r\n")
    expect_line(c.reply(), NEED_MAIL)
    expect_line(c.reply(), HELP_TEXT)
    assert sluice.queue_list() == []


def test_bdat_without_valid_recipient(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<alice@example.com>"), MAIL_OK)
    chunk = b"NOOP\r\nNOOP\r\n"
    c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk + b"HELP\r\n")
    expect_line(c.reply(), NO_VALID_RCPT)
    expect_line(c.reply(), HELP_TEXT)
    c.assert_silent(0.3)
    assert sluice.queue_list() == []


def test_data_after_bdat(sluice):
    c = sluice.session()
    start_tx(c)
    ch = b"Subject: mixed\r\n\r\n"
    expect_line(bdat(c, ch), f"250 2.0.0 {len(ch)} octets received")
    expect_line(c.cmd("DATA"), DATA_AFTER_BDAT)
    expect_line(c.cmd("RSET"), OK)
    assert sluice.queue_list() == []


@pytest.mark.parametrize("line,swallowed", [
    ("BDAT", 0),
    ("BDAT abc", 0),
    ("BDAT -5", 0),
    ("BDAT 6 FIRST", 6),
    ("BDAT 6 LAST extra", 6),
    ("BDAT 6 LASTX", 6),
])
def test_bdat_bad_syntax(sluice, line, swallowed):
    c = sluice.session()
    start_tx(c)
    # if the size parsed, the 6 bytes "NOOP\r\n" are the chunk and are thrown
    # away; otherwise there is no chunk and the next line is a command
    c.send(f"{line}\r\n".encode() + (b"NOOP\r\n" if swallowed else b"") + b"HELP\r\n")
    expect_line(c.reply(), BDAT_SYNTAX)
    expect_line(c.reply(), HELP_TEXT)
    c.assert_silent(0.3)
    assert sluice.queue_list() == []


def test_bdat_message_too_large(sluice_factory):
    d = sluice_factory(max_message_size=10_000)
    c = d.session()
    start_tx(c)
    big = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n"
    big = big * 300  # ~24 kB
    c.send(f"BDAT {len(big)} LAST\r\n".encode() + big)
    expect_line(c.reply(timeout=15), TOO_BIG)
    expect_line(c.cmd("NOOP"), OK)
    assert d.queue_list() == []
    assert d.wait_no_tmp() == []


def test_bdat_then_data_transaction(sluice):
    c = sluice.session()
    start_tx(c)
    body1 = b"Subject: first via bdat\r\n\r\none\r\n"
    q1 = expect_queued(bdat(c, body1, last=True))
    start_tx(c)
    expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
    body2 = b"Subject: second via data\r\n\r\ntwo\r\n"
    c.send(body2 + b".\r\n")
    q2 = expect_queued(c.reply())
    assert q1 != q2
    check_stored(sluice.queue_show(q1), q1, body1)
    check_stored(sluice.queue_show(q2), q2, body2)


@pytest.mark.parametrize("verb,reply", [("RSET", OK), ("QUIT", "221 2.0.0 Bye")])
def test_bdat_transaction_abandoned(sluice, verb, reply):
    """Chunks received, then RSET or QUIT instead of LAST: nothing is queued."""
    c = sluice.session()
    start_tx(c)
    ch = b"Subject: abandoned\r\n\r\n" + b"w" * 5000 + b"\r\n"
    expect_line(bdat(c, ch), f"250 2.0.0 {len(ch)} octets received")
    expect_line(c.cmd(verb), reply)
    if verb == "RSET":
        # a fresh transaction is independent of the dropped chunks
        start_tx(c)
        body = b"Subject: fresh\r\n\r\nfresh\r\n"
        qid = expect_queued(bdat(c, body, last=True))
        assert sluice.queue_ids() == {qid}
        check_stored(sluice.queue_show(qid), qid, body)
    else:
        c.wait_closed(5)
        assert sluice.queue_list() == []
    assert sluice.wait_no_tmp() == []
