"""sluice-blast --starttls (tools/blast, docs/TOOLS.md) against the real
daemon serving STARTTLS with a certificate made by openssl at test time,
against sluice-sink (which offers no STARTTLS), and against a server whose
"TLS" is garbage. The tools are found like in test_tools_blast_sink.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from sluice_harness import free_port, scaled, sluice_bin
from tls_peers import make_cert, tls_args


def tool(name: str) -> str:
    env = os.environ.get("SLUICE_TOOLS_DIR")
    p = (Path(env) if env else sluice_bin().parent / "tools") / name
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"{name} not found at {p} (build it, or set SLUICE_TOOLS_DIR)", pytrace=False)
    return str(p)


def blast(*args, timeout=60) -> tuple:
    """(exit status, JSON report, stderr)."""
    r = subprocess.run([tool("sluice-blast"), "--json", *args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=scaled(timeout))
    return r.returncode, json.loads(r.stdout), r.stderr.decode(errors="replace")


@pytest.fixture
def tls_sluice(sluice_factory, tmp_path):
    cert, key = make_cert(tmp_path / "certs")
    return sluice_factory(args=tls_args(cert, key))


@pytest.mark.parametrize("mode", [[], ["--bdat"], ["--pipelining", "off"]],
                         ids=["pipelined-data", "bdat", "lockstep"])
def test_blast_starttls_into_sluice(tls_sluice, mode):
    n, conns = 600, 8
    rc, rep, err = blast("--target", f"127.0.0.1:{tls_sluice.port}", "--connections", str(conns),
                         "--messages", str(n), "--starttls", "--domains", "3", *mode)
    assert rc == 0, (rep, err)
    assert rep["messages_ok"] == n and rep["messages_failed"] == 0
    assert rep["starttls"] is True
    assert rep["tls_established"] == rep["sessions"] == conns, rep
    assert rep["tls_failed"] == 0
    assert rep["tls_version"].startswith("TLSv1."), rep
    # The capabilities that count are the ones offered over TLS.
    assert rep["server_pipelining"] is True
    if "--bdat" in mode:
        assert rep["server_chunking"] is True
    entries = tls_sluice.queue_list()
    assert len(entries) == n
    # Sluice saw every message arrive over TLS (RFC 3848 "ESMTPS").
    shown = tls_sluice.queue_show(entries[0].id)
    assert b"with ESMTPS" in shown, shown[:400]
    assert b"X-Blast-Digest: crc32c=" in shown


def test_blast_starttls_without_server_support_sends_nothing(tmp_path):
    port = free_port()
    sink = subprocess.Popen([tool("sluice-sink"), "--listen", f"127.0.0.1:{port}", "--stats-json",
                             str(tmp_path / "stats.json")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        assert b"ready" in sink.stderr.readline()
        rc, rep, err = blast("--target", f"127.0.0.1:{port}", "--connections", "4", "--messages",
                             "50", "--starttls")
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    assert rc == 1
    assert "STARTTLS not offered" in err
    assert rep["messages_ok"] == 0 and rep["messages_not_sent"] == 50
    # Not retried: every new session would end the same way.
    assert rep["sessions"] == 4, rep
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["messages"] == 0


class FakeTlsServer:
    """Says 220, offers STARTTLS, answers 220 to it, then sends bytes that are
    no TLS record."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sessions = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            with c:
                c.settimeout(5)
                try:
                    c.sendall(b"220 fake ESMTP\r\n")
                    f = c.makefile("rb")
                    f.readline()  # EHLO
                    c.sendall(b"250-fake\r\n250 STARTTLS\r\n")
                    assert f.readline().strip() == b"STARTTLS"
                    c.sendall(b"220 2.0.0 go\r\n")
                    c.recv(4096)  # the ClientHello
                    c.sendall(b"this is not a TLS record at all\r\n" * 4)
                    c.recv(4096)  # an alert, or the close
                except (OSError, AssertionError):
                    pass

    def close(self):
        self.sock.close()


def test_blast_starttls_handshake_failure_is_counted():
    srv = FakeTlsServer()
    try:
        rc, rep, err = blast("--target", f"127.0.0.1:{srv.port}", "--connections", "2",
                             "--messages", "10", "--starttls", "--max-reconnects", "2",
                             timeout=30)
    finally:
        srv.close()
    assert rc == 1
    assert rep["messages_ok"] == 0
    assert rep["tls_established"] == 0
    assert rep["tls_failed"] == rep["sessions"] == 4, rep  # 2 + 2 replacements
    assert "sluice-blast: TLS:" in err


def test_blast_tls_servername_needs_a_value():
    r = subprocess.run([tool("sluice-blast"), "--target", "127.0.0.1:1", "--messages", "1",
                        "--tls-servername", ""], capture_output=True, timeout=scaled(10))
    assert r.returncode == 2
    assert b"bad flag or value" in r.stderr


def test_blast_tls_resume_resumes_each_slots_last_session(tls_sluice):
    # A new connection per message in 4 slots: each slot's first handshake is
    # a full one, every later one offers the ticket the slot's previous
    # connection got (after its first reply over TLS) and Sluice resumes it.
    n, conns = 40, 4
    rc, rep, err = blast("--target", f"127.0.0.1:{tls_sluice.port}", "--connections", str(conns),
                         "--messages", str(n), "--messages-per-connection", "1", "--starttls",
                         "--tls-resume")
    assert rc == 0, (rep, err)
    assert rep["messages_ok"] == n and rep["messages_failed"] == 0, rep
    # A slot that rotated while the last ids were still unclaimed opens one
    # more session that finds no work: at most one per slot.
    assert n <= rep["sessions"] == rep["tls_established"] <= n + conns, rep
    assert rep["tls_resume"] is True
    assert rep["tls_resumed"] > 0, rep
    assert rep["tls_resumed"] == rep["tls_established"] - conns, rep
    assert len(tls_sluice.queue_list()) == n


def test_blast_messages_per_connection_without_resume_does_full_handshakes(tls_sluice):
    n, conns = 12, 3
    rc, rep, err = blast("--target", f"127.0.0.1:{tls_sluice.port}", "--connections", str(conns),
                         "--messages", str(n), "--messages-per-connection", "2", "--starttls",
                         "--max-reconnects", "0")
    assert rc == 0, (rep, err)
    assert rep["messages_ok"] == n, rep
    # Planned rotations are not reconnects: --max-reconnects 0 does not stop them.
    assert n // 2 <= rep["sessions"] == rep["tls_established"] <= n // 2 + conns, rep
    assert rep["tls_resume"] is False and rep["tls_resumed"] == 0, rep


def test_blast_tls_resume_needs_starttls():
    r = subprocess.run([tool("sluice-blast"), "--target", "127.0.0.1:1", "--messages", "1",
                        "--tls-resume"], capture_output=True, timeout=scaled(10))
    assert r.returncode == 2
    assert b"--tls-resume needs --starttls" in r.stderr


class OpenSslSmtpServer:
    """A minimal SMTP server with STARTTLS on Python's ssl module (OpenSSL),
    counting the handshakes it resumed: blast's sessions must resume against
    an OpenSSL server too, not only against wolfSSL (Sluice)."""

    def __init__(self, cert, key):
        import ssl
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handshakes = self.resumed = self.messages = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        try:
            c.settimeout(10)
            c.sendall(b"220 openssl ESMTP\r\n")
            f = c.makefile("rb")
            f.readline()  # EHLO
            c.sendall(b"250-openssl\r\n250 STARTTLS\r\n")
            if f.readline().strip().upper() != b"STARTTLS":
                return
            c.sendall(b"220 go ahead\r\n")
            t = self.ctx.wrap_socket(c, server_side=True)
            with self.lock:
                self.handshakes += 1
                self.resumed += int(t.session_reused)
            f = t.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"DATA":
                    t.sendall(b"354 go\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    with self.lock:
                        self.messages += 1
                    t.sendall(b"250 ok\r\n")
                elif verb == b"QUIT":
                    t.sendall(b"221 bye\r\n")
                    t.close()
                    return
                else:
                    t.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


def test_blast_tls_resume_against_an_openssl_server(tmp_path):
    cert, key = make_cert(tmp_path / "certs")
    srv = OpenSslSmtpServer(cert, key)
    n, conns = 30, 3
    try:
        rc, rep, err = blast("--target", f"127.0.0.1:{srv.port}", "--connections", str(conns),
                             "--messages", str(n), "--messages-per-connection", "1",
                             "--starttls", "--tls-resume", "--max-reconnects", "0")
    finally:
        srv.close()
    assert rc == 0, (rep, err)
    assert rep["messages_ok"] == n == srv.messages, (rep, srv.messages)
    assert rep["tls_failed"] == 0, (rep, err)
    assert rep["tls_resumed"] == rep["tls_established"] - conns == srv.resumed, (rep, srv.resumed)
