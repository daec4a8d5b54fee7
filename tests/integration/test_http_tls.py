"""HTTPS on the HTTP listener (`[http] tls = true`, docs/HTTP.md "HTTPS") over
real loopback sockets, with the certificate the SMTP TLS tests generate:
Python's http.client and `openssl s_client` read /metrics and the admin API
over TLS, an injection goes through HTTPS, plain HTTP and garbage get no
answer and do not disturb a client in the middle of its keep-alive session,
a handshake that never finishes is cut, and /metrics counts the handshakes.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time
import warnings

import pytest

from sluice_harness import require_sluice_bin, scaled, wait_for
from test_http import new_token, tokens_config
from test_metrics import check_with_promtool, Scrape
from tls_peers import client_context, make_cert, openssl_bin, tls_args


@pytest.fixture
def https_relay(sluice_factory, tmp_path):
    """A queue-only relay serving HTTPS with one admin token: (relay, token, cert)."""

    def start(**http):
        cert, key = make_cert(tmp_path / "certs")
        token, line = new_token("ops")
        path = tmp_path / "tokens"
        path.write_text(line + "\n")
        relay = sluice_factory(shards=1, args=tls_args(cert, key),
                               config=tokens_config(path, tls=True, **http))
        return relay, token, cert

    return start


def https(relay, timeout: float = 10.0) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", relay.http_port, timeout=scaled(timeout),
                                       context=client_context())


def metrics_over_tls(relay) -> Scrape:
    c = https(relay)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        assert r.status == 200, r.status
        return Scrape(r.read().decode())
    finally:
        c.close()


@pytest.mark.time_limit(30)
def test_metrics_and_admin_over_https_keep_alive(https_relay):
    relay, token, cert = https_relay()
    c = https(relay)
    c.request("GET", "/metrics")
    r = c.getresponse()
    text = r.read().decode()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/plain"), r.status
    check_with_promtool(text)
    # The same connection, kept alive: the admin API with the token.
    c.request("GET", "/api/admin/v1/stats", headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    doc = json.loads(r.read())
    assert r.status == 200 and isinstance(doc, dict), doc
    c.request("GET", "/api/admin/v1/stats")
    r = c.getresponse()
    r.read()
    assert r.status == 401
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
    c.close()


@pytest.mark.time_limit(30)
def test_openssl_s_client_gets_metrics(https_relay):
    relay, _token, _cert = https_relay()
    p = subprocess.run(
        [openssl_bin(), "s_client", "-quiet", "-connect", f"127.0.0.1:{relay.http_port}",
         "-servername", "relay.test"],
        input=b"GET /metrics HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n",
        capture_output=True, timeout=scaled(20))
    out = p.stdout.decode(errors="replace")
    assert out.startswith("HTTP/1.1 200 OK\r\n"), (out[:300], p.stderr[-500:])
    assert "sluice_http_tls_handshakes_total" in out


@pytest.mark.time_limit(30)
def test_injection_over_https(https_relay):
    relay, token, _cert = https_relay()
    doc = {"envelope_sender": "a@snd.test",
           "content": "From: a@snd.test\r\nTo: b@d1.test\r\nSubject: tls\r\n\r\nhi\r\n",
           "recipients": [{"email": "b@d1.test"}]}
    c = https(relay)
    c.request("POST", "/api/inject/v1", body=json.dumps(doc),
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse()
    answer = json.loads(r.read())
    c.close()
    assert r.status == 200 and answer["recipients"] == 1, answer


def raw_https(relay) -> ssl.SSLSocket:
    s = socket.create_connection(("127.0.0.1", relay.http_port), timeout=scaled(10))
    return client_context().wrap_socket(s, server_hostname="relay.test")


def read_response(s: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        chunk = s.recv(65536)
        assert chunk
        rest += chunk
    return head


@pytest.mark.time_limit(30)
def test_bad_handshakes_do_not_disturb_other_clients(https_relay):
    relay, _token, _cert = https_relay()
    good = raw_https(relay)  # mid-session: handshake done, one request answered
    good.sendall(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
    assert read_response(good).startswith(b"HTTP/1.1 200 ")

    # Plain HTTP to the HTTPS port: no HTTP answer, the connection closes.
    plain = socket.create_connection(("127.0.0.1", relay.http_port), timeout=scaled(10))
    plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
    got = b""
    while True:
        try:
            chunk = plain.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    assert not got.startswith(b"HTTP/"), got[:100]
    plain.close()
    # Garbage that looks like a TLS record header, then a close.
    junk = socket.create_connection(("127.0.0.1", relay.http_port), timeout=scaled(10))
    junk.sendall(b"\x16\x03\x01\x00\x10" + b"\xff" * 16)
    junk.settimeout(scaled(5))
    try:
        while junk.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    junk.close()
    # A TLS 1.0-only client: refused (tls.min_version is 1.2).
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with socket.create_connection(("127.0.0.1", relay.http_port), timeout=scaled(10)) as s:
                old.wrap_socket(s, server_hostname="relay.test")
    except ValueError:
        pass  # this OpenSSL cannot even offer TLS 1.0

    # The good client's session goes on, on the same connection.
    for _ in range(3):
        good.sendall(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
        assert read_response(good).startswith(b"HTTP/1.1 200 ")
    good.close()
    relay.assert_alive()

    def counted():
        s = metrics_over_tls(relay)
        return s if s.total("sluice_http_tls_handshakes_total", outcome="failed") >= 2 else None

    s = wait_for(counted, timeout=10, what="the failed handshakes counted")
    assert s.total("sluice_http_tls_handshakes_total", outcome="ok") >= 2


@pytest.mark.time_limit(30)
def test_a_handshake_that_never_finishes_is_cut(https_relay):
    relay, _token, _cert = https_relay(request_timeout_s=1)
    s = socket.create_connection(("127.0.0.1", relay.http_port), timeout=scaled(10))
    t0 = time.monotonic()
    s.settimeout(scaled(8))
    try:
        got = s.recv(4096)  # nothing sent: the server waits for a ClientHello
    except ConnectionResetError:
        got = b""
    assert got == b"", got
    waited = time.monotonic() - t0
    assert 0.8 <= waited <= scaled(4), waited
    s.close()


@pytest.mark.time_limit(30)
def test_http_tls_needs_a_certificate(tmp_path):
    conf = tmp_path / "sluice.toml"
    conf.write_text("[http]\ntls = true\n")
    p = subprocess.run([str(require_sluice_bin()), "check-config", "--config", str(conf)],
                       capture_output=True, timeout=scaled(30))
    assert p.returncode != 0
    assert b"http.tls needs tls.cert_file and tls.key_file" in p.stderr, p.stderr


@pytest.mark.time_limit(30)
def test_a_request_followed_by_close_notify_is_answered(https_relay):
    """The request and the client's close_notify leave in one write (what a
    client that half-closes does): the request is still answered, with
    Connection: close, then the server's own close_notify."""
    relay, _token, _cert = https_relay()
    s = socket.create_connection(("127.0.0.1", relay.http_port), timeout=scaled(10))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = client_context().wrap_bio(inc, out, server_hostname="relay.test")

    def flush():
        d = out.read()
        if d:
            s.sendall(d)

    def pump() -> bool:
        d = s.recv(65536)
        if not d:
            inc.write_eof()
        else:
            inc.write(d)
        return bool(d)

    while True:
        try:
            o.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            assert pump(), "closed during the handshake"
    flush()
    o.write(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
    with pytest.raises(ssl.SSLWantReadError):
        o.unwrap()  # queues close_notify; the server's comes later
    flush()
    data = b""
    while True:
        try:
            chunk = o.read(65536)
            if not chunk:
                break
            data += chunk
        except ssl.SSLWantReadError:
            if not pump():
                break
        except ssl.SSLZeroReturnError:
            break
    s.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200]
    assert b"\r\nConnection: close" in data.split(b"\r\n\r\n")[0]
