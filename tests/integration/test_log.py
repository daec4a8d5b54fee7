"""The accounting log: one Reception record per queued message, matching
the queue (id, sender, recipients, client, helo)."""

import signal

from sluice_harness import (
    CLIENT_HELO,
    BARE_CRLF,
    expect_line,
    expect_queued,
    norm_addr,
)


def send(c, sender, rcpts, body: bytes, bdat=False):
    expect_line(c.cmd(f"MAIL FROM:<{sender}>"), "250 2.1.0 Ok")
    for r in rcpts:
        expect_line(c.cmd(f"RCPT TO:<{r}>"), "250 2.1.5 Ok")
    if bdat:
        c.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
    else:
        expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        c.send(body + b".\r\n")
    return c.reply()


def test_reception_records_match_queue(sluice):
    c = sluice.session()
    cases = [
        ("alice@example.com", ["bob@example.net"], False),
        ("", ["postmaster@example.net"], False),
        ("list@example.com", ["a@x.example", "b@y.example", "c@z.example"], False),
        ("chunks@example.com", ["d@example.net"], True),
    ]
    expected = {}
    for i, (sender, rcpts, bdat) in enumerate(cases):
        body = f"Subject: log {i}\r\n\r\nbody {i}\r\n".encode()
        qid = expect_queued(send(c, sender, rcpts, body, bdat))
        expected[qid] = (sender, rcpts, len(body))
    # a rejected message gets no Reception record
    r = send(c, "bad@example.com", ["e@example.net"], b"Subject: x\r\n\r\nbare\nlf\r\n")
    expect_line(r, BARE_CRLF)
    c.cmd("QUIT")

    recs = sluice.wait_reception_ids(expected, timeout=10)
    assert set(expected) <= set(recs), (
        f"Reception records missing for {set(expected) - set(recs)} (log records: {sluice.log_records()})"
    )
    receptions = sluice.reception_records()
    assert len(receptions) == len(expected), receptions
    queue = sluice.queue_json_by_id()
    assert set(queue) == set(expected)
    for qid, (sender, rcpts, size) in expected.items():
        rec = recs[qid]
        assert set(rec) >= {"type", "ts", "id", "sender", "recipients", "size", "client", "helo"}, rec
        assert rec["type"] == "Reception"
        assert norm_addr(rec["sender"]) == sender, rec
        assert [norm_addr(x) for x in rec["recipients"]] == rcpts, rec
        assert rec["client"] == "127.0.0.1", rec
        assert rec["helo"] == CLIENT_HELO, rec
        assert isinstance(rec["size"], int) and size <= rec["size"] <= size + 4096, rec
        assert rec["size"] == queue[qid]["size"] or rec["size"] == size, (rec, queue[qid])
        assert isinstance(rec["ts"], (int, float, str)), rec


def test_log_survives_graceful_stop(sluice):
    c = sluice.session()
    qid = expect_queued(send(c, "a@example.com", ["b@example.net"], b"Subject: s\r\n\r\nx\r\n"))
    c.close()
    sluice.signal(signal.SIGTERM)
    assert sluice.wait_exit(10) == 0
    ids = [r["id"] for r in sluice.reception_records()]
    assert ids == [qid], sluice.log_records()
