"""Inbound TLS with real peers: STARTTLS (RFC 3207) and implicit TLS
(RFC 8314) against Python's ssl, `openssl s_client -starttls smtp` and
`swaks --tls`; bad input (plaintext injected after STARTTLS, garbage instead
of a ClientHello, a client that vanishes mid-handshake, STARTTLS twice); and
a SIGHUP certificate reload that keeps running connections."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from sluice_harness import (
    CLIENT_HELO,
    HOSTNAME,
    SmtpClient,
    expect_line,
    expect_queued,
    free_port,
    make_message,
    queued_id_from_smtplib,
    scaled,
    sluice_bin,
)
from tls_peers import (
    client_context,
    implicit_client,
    make_cert,
    openssl_bin,
    peer_cn,
    starttls,
    tls_args,
    tls_listen_arg,
)


@pytest.fixture
def certs(tmp_path):
    return make_cert(tmp_path / "certs")


@pytest.fixture
def tls_sluice(sluice_factory, certs):
    cert, key = certs
    return sluice_factory(args=tls_args(cert, key))


def ehlo_lines(c: SmtpClient) -> list:
    return c.ehlo().full_lines


def test_ehlo_offers_starttls_only_before_tls(tls_sluice):
    with tls_sluice.connect() as c:
        c.banner()
        assert "250-STARTTLS" in ehlo_lines(c)
        starttls(c)
        lines = ehlo_lines(c)
        assert not any("STARTTLS" in l for l in lines), lines
        # STARTTLS twice: 503, and the session goes on.
        expect_line(c.cmd("STARTTLS"), "503 5.5.1 Error: TLS already active")
        expect_line(c.cmd("NOOP"), "250 2.0.0 Ok")


def test_smtplib_starttls_queues_with_esmtps(tls_sluice):
    with smtplib.SMTP(tls_sluice.host, tls_sluice.port, local_hostname=CLIENT_HELO,
                      timeout=scaled(10)) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        s.starttls(context=client_context())
        s.ehlo()
        assert not s.has_extn("starttls")
        s.mail("alice@example.com")
        s.rcpt("bob@example.net")
        code, resp = s.data(make_message(subject="over tls"))
        qid = queued_id_from_smtplib(code, resp)
    shown = tls_sluice.queue_show(qid)
    assert b"with ESMTPS id " + qid.encode() in shown, shown[:400]
    assert b"Subject: over tls" in shown


def test_openssl_s_client_starttls(tls_sluice):
    script = (
        "EHLO s-client.test\r\n"
        "MAIL FROM:<alice@example.com>\r\n"
        "RCPT TO:<bob@example.net>\r\n"
        "DATA\r\n"
        "Subject: s_client\r\n\r\nhello\r\n.\r\n"
        "QUIT\r\n"
    )
    proc = subprocess.run(
        [openssl_bin(), "s_client", "-starttls", "smtp", "-quiet", "-connect",
         f"127.0.0.1:{tls_sluice.port}", "-servername", HOSTNAME],
        input=script.encode(), capture_output=True, timeout=scaled(30))
    out = proc.stdout.decode(errors="replace")
    assert "250 2.0.0 Ok: queued as" in out, (out, proc.stderr.decode(errors="replace"))
    assert "221 2.0.0 Bye" in out


def test_swaks_tls(tls_sluice, swaks_bin):
    proc = subprocess.run(
        [swaks_bin, "--server", f"127.0.0.1:{tls_sluice.port}", "--tls", "--from",
         "alice@example.com", "--to", "bob@example.net", "--helo", CLIENT_HELO],
        capture_output=True, timeout=scaled(30))
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out
    assert "TLS started with cipher" in out, out
    assert "250 2.0.0 Ok: queued as" in out


def test_plaintext_injected_after_starttls_is_discarded(tls_sluice):
    with tls_sluice.connect() as c:
        c.banner()
        c.ehlo()
        # One packet: STARTTLS and commands that must never run.
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\n")
        r = c.reply()
        assert r.first == "220 2.0.0 Ready to start TLS", r
        time.sleep(0.2)
        assert not c.buf, f"replies to injected commands: {bytes(c.buf)!r}"
        c.sock = client_context().wrap_socket(c.sock, server_hostname=HOSTNAME)
        c.ehlo()
        # The injected MAIL did not happen: there is no transaction.
        expect_line(c.cmd("RCPT TO:<bob@example.net>"), "503 5.5.1 Error: need MAIL command")
        expect_line(c.cmd("MAIL FROM:<alice@example.com>"), "250 2.1.0 Ok")


def test_session_resets_after_starttls(tls_sluice):
    with tls_sluice.connect() as c:
        c.banner()
        c.ehlo()
        expect_line(c.cmd("MAIL FROM:<alice@example.com>"), "250 2.1.0 Ok")
        starttls(c)
        # No HELO any more, no transaction.
        expect_line(c.cmd("MAIL FROM:<alice@example.com>"), "503 5.5.1 Error: send HELO/EHLO first")


def test_garbage_instead_of_client_hello(tls_sluice):
    with tls_sluice.connect() as c:
        c.banner()
        c.ehlo()
        expect_line(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        c.send(b"EHLO not-a-client-hello\r\nMAIL FROM:<a@b>\r\n")
        leftover = c.wait_closed(timeout=10)
        # At most a TLS alert (record type 0x15), never an SMTP reply.
        assert not leftover or leftover[:1] == b"\x15", leftover
    # The daemon is fine and serves the next client over TLS.
    test_ehlo_offers_starttls_only_before_tls(tls_sluice)
    tls_sluice.assert_alive()


def test_client_vanishing_mid_handshake(tls_sluice):
    for _ in range(5):
        with tls_sluice.connect() as c:
            c.banner()
            c.ehlo()
            expect_line(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
            # The first bytes of a TLS 1.2+ ClientHello record, then gone.
            c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        time.sleep(0.05)
    tls_sluice.assert_alive()
    with tls_sluice.connect() as c:
        c.greet()


@pytest.fixture
def implicit_sluice(sluice_factory, certs):
    cert, key = certs
    port = free_port()
    d = sluice_factory(args=tls_args(cert, key) + tls_listen_arg(port))
    d.tls_port = port
    return d


def test_implicit_tls_listener(implicit_sluice):
    c = implicit_client("127.0.0.1", implicit_sluice.tls_port)
    try:
        b = c.banner()
        assert b.first == f"220 {HOSTNAME} ESMTP Sluice", b
        lines = ehlo_lines(c)
        assert not any("STARTTLS" in l for l in lines), lines
        expect_line(c.cmd("STARTTLS"), "503 5.5.1 Error: TLS already active")
        expect_line(c.cmd("MAIL FROM:<alice@example.com>"), "250 2.1.0 Ok")
        expect_line(c.cmd("RCPT TO:<bob@example.net>"), "250 2.1.5 Ok")
        expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        c.send(make_message(subject="implicit") + b".\r\n")
        qid = expect_queued(c.reply())
        expect_line(c.cmd("QUIT"), "221 2.0.0 Bye")
    finally:
        c.close()
    assert b"with ESMTPS" in implicit_sluice.queue_show(qid)
    # The plain listener still speaks plaintext with STARTTLS on offer.
    with implicit_sluice.connect() as p:
        p.banner()
        assert "250-STARTTLS" in ehlo_lines(p)


def test_implicit_tls_with_smtp_ssl_and_plaintext_garbage(implicit_sluice):
    with smtplib.SMTP_SSL("127.0.0.1", implicit_sluice.tls_port, local_hostname=CLIENT_HELO,
                          context=client_context(), timeout=scaled(10)) as s:
        s.ehlo()
        s.mail("alice@example.com")
        s.rcpt("bob@example.net")
        code, resp = s.data(make_message())
        queued_id_from_smtplib(code, resp)
    # A plaintext client on the TLS port: no SMTP in clear, just a close.
    sock = socket.create_connection(("127.0.0.1", implicit_sluice.tls_port), timeout=scaled(10))
    try:
        sock.sendall(b"EHLO plain\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"220" not in data and b"250" not in data, data
    finally:
        sock.close()
    implicit_sluice.assert_alive()


def test_sighup_reloads_certificate_and_keeps_connections(sluice_factory, tmp_path):
    cert, key = make_cert(tmp_path / "live", "server", HOSTNAME)
    d = sluice_factory(args=tls_args(cert, key))
    # A TLS session opened before the reload.
    old = d.connect()
    old.banner()
    old.ehlo()
    starttls(old)
    assert peer_cn(old.sock) == HOSTNAME
    # New certificate in place, then SIGHUP.
    new_cert, new_key = make_cert(tmp_path / "next", "server", "renewed.sluice.test")
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    os.kill(d.pid, signal.SIGHUP)
    deadline = time.monotonic() + scaled(10)
    while "reloaded" not in d.stderr_since_start() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "SIGHUP: TLS certificate and password file reloaded" in d.stderr_since_start()
    with d.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        assert peer_cn(c.sock) == "renewed.sluice.test"
        c.ehlo()
    # The old connection still works on its old context.
    old.ehlo()
    expect_line(old.cmd("MAIL FROM:<alice@example.com>"), "250 2.1.0 Ok")
    expect_line(old.cmd("QUIT"), "221 2.0.0 Bye")
    old.close()
    # A broken file on reload keeps the working certificate.
    key.write_text("not a key\n")
    os.kill(d.pid, signal.SIGHUP)
    deadline = time.monotonic() + scaled(10)
    while "reload failed" not in d.stderr_since_start() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload failed, keeping the previous ones" in d.stderr_since_start()
    with d.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        assert peer_cn(c.sock) == "renewed.sluice.test"
    d.assert_alive()


def test_bad_certificate_fails_start(tmp_path):
    bad = tmp_path / "bad.crt"
    bad.write_text("junk\n")
    proc = subprocess.run(
        [str(sluice_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--spool",
         str(tmp_path / "spool"), "--shards", "1", "--hostname", HOSTNAME, "--no-delivery"]
        + tls_args(bad, bad),
        capture_output=True, timeout=scaled(30))
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, err
    assert "TLS certificate" in err and "bad.crt" in err, err
