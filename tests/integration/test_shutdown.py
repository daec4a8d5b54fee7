"""SIGTERM / SIGINT: idle sessions get 421 4.3.2, in-flight work finishes,
the daemon exits 0 within shutdown_grace_s."""

import signal
import socket
import time

import pytest

from loadgen import Loader, verify_spool_after_restart
from sluice_harness import (
    DATA_GO,
    MAIL_OK,
    RCPT_OK,
    ConnectionClosed,
    check_stored,
    expect_line,
    expect_queued,
    scaled,
    shutting_down,
    wait_for,
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_with_idle_sessions(sluice, sig):
    after_ehlo = sluice.session()
    after_banner = sluice.connect()
    after_banner.banner()
    between = sluice.session()
    expect_line(between.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(between.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(between.cmd("DATA"), DATA_GO)
    body = b"Subject: before shutdown\r\n\r\nx\r\n"
    between.send(body + b".\r\n")
    qid = expect_queued(between.reply())

    t0 = time.monotonic()
    sluice.signal(sig)
    for c in (after_ehlo, after_banner, between):
        expect_line(c.reply(timeout=10), shutting_down())
        c.wait_closed(5)
    rc = sluice.wait_exit(10)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit status {rc} after {sig!r}; stderr:\n{sluice.stderr_tail()}"
    assert elapsed < scaled(5), f"idle shutdown took {elapsed:.1f}s"
    # what was queued stays queued
    assert sluice.queue_ids() == {qid}
    check_stored(sluice.queue_show(qid), qid, body)
    assert sluice.tmp_files() == []


def test_sigterm_without_clients(sluice):
    t0 = time.monotonic()
    sluice.signal(signal.SIGTERM)
    assert sluice.wait_exit(10) == 0
    assert time.monotonic() - t0 < scaled(3)
    # the port is closed
    with pytest.raises(OSError):
        socket.create_connection((sluice.host, sluice.port), timeout=2).close()


@pytest.mark.time_limit(40)
def test_sigterm_lets_in_flight_data_finish(sluice_factory):
    d = sluice_factory(config="[server]\nshutdown_grace_s = 8\n")
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    first = b"Subject: in flight\r\n\r\nfirst half\r\n"
    second = b"second half\r\n"
    c.send(first)
    time.sleep(0.2)
    d.signal(signal.SIGTERM)
    time.sleep(0.5)
    c.send(second + b".\r\n")
    r = c.reply(timeout=10)
    qid = expect_queued(r)
    # then, between transactions, the session is told to go away
    expect_line(c.reply(timeout=10), shutting_down())
    c.wait_closed(5)
    assert d.wait_exit(10) == 0
    check_stored(d.queue_show(qid), qid, first + second)


@pytest.mark.time_limit(40)
def test_sigterm_grace_expires_for_stalled_data(sluice_factory):
    d = sluice_factory(config="[server]\nshutdown_grace_s = 2\n")
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: stalled\r\n\r\nnever finished")
    time.sleep(0.2)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait_exit(12)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit status {rc}"
    assert elapsed < scaled(6), f"exit took {elapsed:.1f}s with shutdown_grace_s = 2"
    try:
        c.pending(0.5)
    except ConnectionClosed:
        pass
    assert d.queue_list() == []
    assert d.tmp_files() == [], "temp file of the unfinished message left behind"


@pytest.mark.slow
@pytest.mark.time_limit(120)
def test_sigterm_under_load(sluice_factory):
    """SIGTERM while 8 clients send: exit 0 within the grace period, every
    acknowledged message queued intact, nothing half-written, and clients are
    only ever told 421 4.3.2 (an in-flight message is finished, not cut)."""
    d = sluice_factory(config="[server]\nshutdown_grace_s = 10\n")
    ld = Loader(d.host, d.port, threads=8)
    ld.start()
    wait_for(lambda: len(ld.acked) >= 100 or not d.alive(), timeout=30, what="100 acknowledged messages")
    d.assert_alive()
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait_exit(15)
    elapsed = time.monotonic() - t0
    ld.finish()
    print(f"{len(ld.acked)} acknowledged, {len(ld.sent)} sent with DATA, exit after {elapsed:.2f}s; "
          f"{len(ld.cut)} cut mid-body, rejected {list(ld.rejected.values())[:3]}, client errors {ld.errors[:3]}")
    assert rc == 0, f"exit status {rc}; stderr:\n{d.stderr_tail()}"
    assert elapsed < scaled(12), f"shutdown took {elapsed:.1f}s with shutdown_grace_s = 10"
    assert not ld.cut, f"messages cut off mid-body by a graceful shutdown: {list(ld.cut.items())[:5]}"
    for seq, (code, resp) in ld.rejected.items():
        assert code == 421 and resp.startswith(b"4.3.2"), f"message {seq}: {code} {resp!r}"
    # the spool as the stopped daemon left it (the CLI works offline)
    verify_spool_after_restart(d, [ld])
    # and as a restarted daemon sees it
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    verify_spool_after_restart(d2, [ld])
