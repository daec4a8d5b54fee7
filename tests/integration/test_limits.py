"""Limits: line length, bad bytes, error budget, timeouts, aborted DATA,
connection limits, and 2,000 concurrent connections."""

import os
import random
import resource
import selectors
import socket
import time

import pytest

from sluice_harness import (
    BAD_SYNTAX_CMD,
    BYE,
    DATA_GO,
    HELP_TEXT,
    LINE_TOO_LONG,
    MAIL_OK,
    OK,
    RCPT_OK,
    UNKNOWN_CMD,
    VRFY_TEXT,
    expect_line,
    scaled,
    timeout_exceeded,
    too_many_connections,
    too_many_errors,
)


# -- command line length ----------------------------------------------------

def test_overlong_command_line(sluice):
    c = sluice.session()
    c.send(b"NOOP " + b"x" * 3000 + b"\r\n")
    expect_line(c.reply(), LINE_TOO_LONG)
    expect_line(c.cmd("NOOP"), OK)


def test_huge_command_line_gets_one_reply(sluice):
    """100 kB without a line end: one 500 5.5.6 for the whole line, then in sync."""
    c = sluice.session()
    junk = b"MAIL FROM:<" + b"a" * 100_000 + b"@example.com>"
    for off in range(0, len(junk), 8192):
        c.send(junk[off:off + 8192])
    c.send(b"\r\nNOOP\r\n")
    expect_line(c.reply(timeout=10), LINE_TOO_LONG)
    expect_line(c.reply(), OK)
    c.assert_silent(0.3)
    # the discarded line opened no transaction
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)


def test_command_line_length_boundary(sluice):
    """max_line_length (2048) counts the CRLF."""
    c = sluice.session()
    prefix = b"VRFY "
    exact = prefix + b"v" * (2048 - 2 - len(prefix))
    assert len(exact + b"\r\n") == 2048
    c.send(exact + b"\r\n")
    expect_line(c.reply(), VRFY_TEXT)
    c.send(exact + b"v\r\n")
    expect_line(c.reply(), LINE_TOO_LONG)
    expect_line(c.cmd("NOOP"), OK)


# -- bad bytes and the error budget -------------------------------------------

@pytest.mark.parametrize("line", [b"NO\x00OP", b"\x00", b"NOOP\x00", b"NO\rOP", b"NOOP\r\rX", b"\rNOOP"])
def test_nul_or_bare_cr_in_command(sluice, line):
    c = sluice.session()
    c.send(line + b"\r\n")
    expect_line(c.reply(), BAD_SYNTAX_CMD)
    c.assert_silent(0.2)
    expect_line(c.cmd("NOOP"), OK)


@pytest.mark.parametrize("line", [b"NOOP\n", b"NO\nOP\r\n", b"MAIL FROM:<a@example.com>\n"])
def test_bare_lf_in_command(sluice, line):
    """A bare LF is never a line end that runs a command. Whether the server
    splits at it (and then also answers the remainder) or reads on to the
    CRLF, the first reply is 500 5.5.2 and the session stays in sync."""
    c = sluice.session()
    c.send(line + b"\r\nHELP\r\n")
    expect_line(c.reply(), BAD_SYNTAX_CMD)
    for _ in range(4):
        r = c.reply()
        if r.first == HELP_TEXT:
            break
        assert r.code == 500, f"a command ended by a bare LF was run: {r}"
    else:
        raise AssertionError("no HELP reply")
    c.assert_silent(0.2)
    # MAIL ended by a bare LF opened no transaction
    expect_line(c.cmd("RCPT TO:<b@example.net>"), "503 5.5.1 Error: need MAIL command")


def test_binary_garbage_then_too_many_errors(sluice_factory):
    d = sluice_factory(config="[server]\nmax_errors = 3\n")
    c = d.session()
    rng = random.Random(42)
    lines = []
    for _ in range(6):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(5, 200)))
        raw = raw.replace(b"\r", b"").replace(b"\n", b"")
        lines.append(b"\x00" + raw + b"\x00\xff")
    c.send(b"".join(line + b"\r\n" for line in lines))
    replies = c.replies(4, timeout=10)
    for r in replies[:3]:
        assert r.code == 500 and r.enhanced in ("5.5.2", "5.5.6"), str(r)
    expect_line(replies[3], too_many_errors())
    c.wait_closed(5)
    d.assert_alive()


def test_default_error_budget_is_ten(sluice):
    c = sluice.session()
    c.send(b"BOGUS\r\n" * 12)
    replies = c.replies(11, timeout=10)
    for r in replies[:10]:
        expect_line(r, UNKNOWN_CMD)
    expect_line(replies[10], too_many_errors())
    extra = c.wait_closed(5)
    assert extra == b"", f"replies after the 421: {extra!r}"


def test_errors_are_per_session(sluice_factory):
    d = sluice_factory(config="[server]\nmax_errors = 3\n")
    for _ in range(3):
        c = d.session()
        expect_line(c.cmd("BOGUS"), UNKNOWN_CMD)
        expect_line(c.cmd("BOGUS"), UNKNOWN_CMD)
        expect_line(c.cmd("NOOP"), OK)
        expect_line(c.cmd("QUIT"), BYE)


# -- timeouts -------------------------------------------------------------------

@pytest.mark.time_limit(30)
def test_idle_timeout(sluice_factory):
    d = sluice_factory(config="[server]\nidle_timeout_s = 2\n")
    c = d.session()
    t0 = time.monotonic()
    r = c.reply(timeout=8)
    elapsed = time.monotonic() - t0
    expect_line(r, timeout_exceeded())
    assert 1.5 <= elapsed <= scaled(6), f"421 after {elapsed:.2f}s with idle_timeout_s = 2"
    c.wait_closed(5)


@pytest.mark.time_limit(30)
def test_idle_timeout_partial_command(sluice_factory):
    """Trickling bytes of a command that never completes does not keep the
    session alive: the timer runs from the last complete command."""
    d = sluice_factory(config="[server]\nidle_timeout_s = 2\n")
    c = d.session()
    t0 = time.monotonic()
    got = b""
    for _ in range(20):  # 8 s of trickling, four times idle_timeout_s
        try:
            c.send(b"N")
        except OSError:
            break
        got = c.pending(0.4)  # not scaled: the trickle must beat idle_timeout_s
        if got or c.eof:
            break
    elapsed = time.monotonic() - t0
    assert got or c.eof, (
        f"no 421 4.4.2 during {elapsed:.1f}s of a command trickled one byte per 0.4s with "
        f"idle_timeout_s = 2 (the idle timer must not restart on every byte)")
    c.buf[:0] = got
    reply = c.reply(timeout=2)
    expect_line(reply, timeout_exceeded())
    assert elapsed <= scaled(6), f"421 only after {elapsed:.2f}s of trickled bytes"


@pytest.mark.time_limit(30)
@pytest.mark.slow
def test_activity_keeps_session_alive(sluice_factory):
    d = sluice_factory(config="[server]\nidle_timeout_s = 2\n")
    c = d.session()
    for _ in range(5):
        time.sleep(1.0)
        expect_line(c.cmd("NOOP"), OK)
    r = c.reply(timeout=8)
    expect_line(r, timeout_exceeded())


@pytest.mark.time_limit(30)
def test_data_timeout(sluice_factory):
    d = sluice_factory(config="[server]\ndata_timeout_s = 2\nidle_timeout_s = 30\n")
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: stalled\r\n\r\nhalf a mess")
    t0 = time.monotonic()
    r = c.reply(timeout=10)
    elapsed = time.monotonic() - t0
    expect_line(r, timeout_exceeded())
    assert 1.5 <= elapsed <= scaled(7), f"421 after {elapsed:.2f}s with data_timeout_s = 2"
    c.wait_closed(5)
    assert d.queue_list() == []
    assert d.wait_no_tmp() == []


# -- aborted DATA -----------------------------------------------------------------

@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_mid_data_leaves_nothing(sluice, how):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    expect_line(c.cmd("DATA"), DATA_GO)
    c.send(b"Subject: aborted\r\n\r\n" + b"partial line\r\n" * 20000)
    time.sleep(0.2)
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    assert sluice.wait_no_tmp(5) == [], "temp files left after an aborted DATA"
    assert sluice.queue_list() == []
    # the daemon is fine
    c2 = sluice.session()
    expect_line(c2.cmd("NOOP"), OK)


def test_disconnect_mid_bdat_leaves_nothing(sluice):
    c = sluice.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), MAIL_OK)
    expect_line(c.cmd("RCPT TO:<b@example.net>"), RCPT_OK)
    c.send(b"BDAT 100000 LAST\r\n" + b"y" * 50000)
    time.sleep(0.2)
    c.close()
    assert sluice.wait_no_tmp(5) == []
    assert sluice.queue_list() == []


# -- connection limits ------------------------------------------------------------

@pytest.mark.time_limit(60)
def test_max_connections(sluice_factory):
    d = sluice_factory(config="[server]\nmax_connections = 5\n")
    held = []
    for _ in range(5):
        c = d.connect()
        expect_line(c.banner(), f"220 {d.hostname} ESMTP Sluice")
        held.append(c)
    extra = d.connect()
    expect_line(extra.reply(), too_many_connections())
    extra.wait_closed(5)
    # the held sessions still work
    for c in held:
        expect_line(c.cmd("NOOP"), OK)
    # closing one makes room for one
    expect_line(held[0].cmd("QUIT"), BYE)
    held[0].wait_closed(5)
    deadline = time.monotonic() + scaled(5)
    while True:
        c = d.connect()
        r = c.reply()
        if r.code == 220 or time.monotonic() > deadline:
            break
        c.close()
        time.sleep(0.1)
    expect_line(r, f"220 {d.hostname} ESMTP Sluice")


@pytest.mark.slow
@pytest.mark.time_limit(120)
def test_two_thousand_concurrent_connections(sluice):
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft >= n + 200, f"RLIMIT_NOFILE {soft} too small"

    sel = selectors.DefaultSelector()
    socks = []
    bufs = {}
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((sluice.host, sluice.port))
            assert err in (0, 115), f"connect_ex: {os.strerror(err)}"  # 115 = EINPROGRESS
            socks.append(s)
            bufs[s] = bytearray()
            sel.register(s, selectors.EVENT_READ)

        def read_all(expect_prefix: bytes, what: str, timeout: float):
            done = set()
            deadline = time.monotonic() + scaled(timeout)
            while len(done) < n and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    s = key.fileobj
                    try:
                        data = s.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except ConnectionError:
                        data = b""
                    if not data:
                        sel.unregister(s)
                        if s not in done:
                            raise AssertionError(f"connection closed before {what}: {bytes(bufs[s])!r}")
                        continue
                    bufs[s] += data
                    if b"\r\n" in bufs[s] and s not in done:
                        line = bytes(bufs[s]).split(b"\r\n", 1)[0]
                        assert line.startswith(expect_prefix), f"{what}: {line!r}"
                        done.add(s)
                        del bufs[s][: len(line) + 2]
            assert len(done) == n, f"only {len(done)} of {n} connections got {what} within {timeout}s"

        read_all(b"220 " + sluice.hostname.encode() + b" ESMTP Sluice", "the banner", 60)
        sluice.assert_alive()
        # every one of them can talk: QUIT each one
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"QUIT\r\n")
            s.setblocking(False)
        read_all(BYE.encode(), "221", 60)
    finally:
        sel.close()
        for s in socks:
            s.close()
    # and the daemon still serves
    c = sluice.session()
    expect_line(c.cmd("NOOP"), OK)


def test_spool_short_of_space(sluice_factory):
    """[spool] min_free_bytes above the free space: MAIL gets 452 4.3.1."""
    d = sluice_factory(config="[spool]\nmin_free_bytes = 1125899906842624\n")  # 1 PiB
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), "452 4.3.1 Insufficient system storage")
    expect_line(c.cmd("RCPT TO:<b@example.net>"), "503 5.5.1 Error: need MAIL command")
    expect_line(c.cmd("NOOP"), OK)
    assert d.queue_list() == []
