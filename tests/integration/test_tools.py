"""Third-party SMTP clients against the daemon: swaks and Postfix's
smtp-source. Both are required tools (CI installs swaks and postfix)."""

import random
import re
import subprocess
import time

import pytest

from sluice_harness import (
    ID_PATTERN,
    check_stored,
    free_port,
    norm_addr,
    scaled,
)


def run_tool(cmd, timeout):
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(timeout))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{cmd[0]} did not finish within {timeout}s; stdout tail {(e.stdout or b'')[-2000:]!r}")


# -- swaks ------------------------------------------------------------------------

def test_swaks_pipeline(sluice, swaks_bin, tmp_path):
    data = (
        "From: <swaks@example.com>\n"
        "To: <bob@example.net>\n"
        "Subject: swaks pipelined\n"
        "\n"
        "line one\n"
        ".a line starting with a dot\n"
        "..two\n"
        "last line"  # swaks adds the final CRLF
    )
    f = tmp_path / "message.eml"
    f.write_text(data)
    r = run_tool([
        swaks_bin, "--server", sluice.host, "--port", str(sluice.port),
        "--helo", "swaks.sluice.test",
        "--from", "swaks@example.com", "--to", "bob@example.net,carol@example.org",
        "--pipeline", "--data", f"@{f}", "--timeout", "20",
    ], timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, f"swaks failed ({r.returncode}):\n{out}\n{r.stderr.decode(errors='replace')}"
    assert "PIPELINING" in out, out
    m = re.search(rf"250 2\.0\.0 Ok: queued as ({ID_PATTERN})", out)
    assert m, f"no 'queued as' in swaks transcript:\n{out}"
    qid = m.group(1)
    meta = sluice.queue_json_by_id()
    assert set(meta) == {qid}
    assert norm_addr(meta[qid]["sender"]) == "swaks@example.com"
    assert sorted(norm_addr(x) for x in meta[qid]["recipients"]) == ["bob@example.net", "carol@example.org"]
    assert meta[qid]["helo"] == "swaks.sluice.test"
    sent = data.replace("\n", "\r\n").encode() + b"\r\n"
    check_stored(sluice.queue_show(qid), qid, sent, headers_added=True)


# -- smtp-source ----------------------------------------------------------------

@pytest.fixture(scope="module")
def smtp_source_sample(smtp_source_bin):
    """What smtp-source sends for -l 2048, captured with an aiosmtpd sink."""
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.original_content)
            return "250 2.0.0 Ok"

    sink = Sink()
    port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    ctl.start()
    try:
        r = run_tool([smtp_source_bin, "-m", "1", "-l", "2048", "-f", "from@example.com",
                      "-t", "to@example.net", f"127.0.0.1:{port}"], timeout=30)
        assert r.returncode == 0, r
    finally:
        ctl.stop()
    [msg] = sink.messages
    head, payload = msg.split(b"\r\n\r\n", 1)
    assert head.startswith(b"From: <from@example.com>\r\nTo: <to@example.net>\r\n"), head
    return head, payload


HEAD_RE = re.compile(
    rb"From: <from@example\.com>\r\nTo: <to@example\.net>\r\nDate: [^\r\n]+\r\nMessage-Id: <[^\r\n]+>\r\n\r\n"
)


def check_smtp_source_message(d, qid, payload):
    stored = d.queue_show(qid)
    start = stored.find(b"From: <from@example.com>\r\n")
    assert start > 0, f"{qid}: no From header in stored message: {stored[:500]!r}"
    sent = stored[start:]
    m = HEAD_RE.match(sent)
    assert m, f"{qid}: unexpected header block {sent[:300]!r}"
    assert sent[m.end():] == payload, f"{qid}: payload differs from what smtp-source sends"
    check_stored(stored, qid, sent, esmtp=None, headers_added=False)  # smtp-source says HELO


@pytest.mark.slow
@pytest.mark.time_limit(180)
def test_smtp_source_ten_thousand(sluice, smtp_source_bin, smtp_source_sample):
    _, payload = smtp_source_sample
    n = 10_000
    t0 = time.monotonic()
    r = run_tool([smtp_source_bin, "-s", "50", "-m", str(n), "-l", "2048",
                  "-f", "from@example.com", "-t", "to@example.net", "-M", "source.sluice.test",
                  f"{sluice.host}:{sluice.port}"], timeout=120)
    elapsed = time.monotonic() - t0
    print(f"smtp-source: {n} messages in {elapsed:.1f}s ({n / elapsed:.0f}/s)")
    assert r.returncode == 0, (
        f"smtp-source failed ({r.returncode}) after {elapsed:.1f}s: "
        f"{r.stderr.decode(errors='replace')[-2000:]}"
    )
    sluice.assert_alive()

    entries = sluice.queue_list()
    assert len(entries) == n, f"queue messages has {len(entries)} lines, expected {n}"
    ids = [e.id for e in entries]
    assert len(set(ids)) == n, "duplicate ids in queue messages"
    for e in entries:
        assert norm_addr(e.sender) == "from@example.com" and e.rcptcount == 1, e.line

    recs = sluice.wait_reception_ids(ids, timeout=15)
    missing = set(ids) - set(recs)
    assert not missing, f"{len(missing)} queued ids have no Reception record, e.g. {sorted(missing)[:5]}"
    receptions = sluice.reception_records()
    assert len(receptions) == n, f"{len(receptions)} Reception records, expected {n}"
    assert {r["id"] for r in receptions} == set(ids)

    meta = sluice.queue_json_by_id()
    for qid in random.Random(1).sample(ids, 5):
        js = meta[qid]
        assert js["helo"] == "source.sluice.test" and js["client"] == "127.0.0.1", js
        assert [norm_addr(x) for x in js["recipients"]] == ["to@example.net"], js
        rec = recs[qid]
        assert rec["type"] == "Reception" and rec["helo"] == "source.sluice.test", rec
        assert norm_addr(rec["sender"]) == "from@example.com", rec
        assert [norm_addr(x) for x in rec["recipients"]] == ["to@example.net"], rec
        assert rec["client"] == "127.0.0.1" and isinstance(rec["size"], int), rec
        check_smtp_source_message(sluice, qid, payload)


@pytest.mark.time_limit(90)
def test_smtp_source_one_connection_many_recipients(sluice, smtp_source_bin, smtp_source_sample):
    """-d: all messages over one connection per session; -r 10 recipients each."""
    _, payload = smtp_source_sample
    r = run_tool([smtp_source_bin, "-d", "-s", "2", "-m", "200", "-r", "10", "-l", "2048",
                  "-f", "from@example.com", "-t", "to@example.net",
                  f"{sluice.host}:{sluice.port}"], timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    entries = sluice.queue_list()
    assert len(entries) == 200
    assert all(e.rcptcount == 10 for e in entries), [e.line for e in entries if e.rcptcount != 10][:5]
    js = sluice.queue_json_by_id()[entries[0].id]
    assert sorted(norm_addr(x) for x in js["recipients"]) == sorted(
        ["to@example.net"] + [f"{i}to@example.net" for i in range(2, 11)]), js
    check_smtp_source_message(sluice, entries[0].id, payload)
