"""Expect: 100-continue on the HTTP listener (RFC 9110 10.1.1, docs/HTTP.md
"Injection") with raw sockets: `100 Continue` only once the head is judged
good, then the body and the 200; a bad token (401), a Content-Length past
http.max_inject_bytes (413) or an unknown expectation (417) answered at
once, with no 100, without the body being sent, and the connection closed;
so is a 503 while http.max_inject_in_flight injections wait for the spool;
a client that sends its body without waiting is simply served.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from sluice_harness import scaled
from test_http import Http, new_token, tokens_config

PATH = "/api/inject/v1"
DOC = json.dumps({"envelope_sender": "a@snd.test",
                  "content": "From: a@snd.test\r\nTo: b@d1.test\r\nSubject: x\r\n\r\nhi\r\n",
                  "recipients": [{"email": "b@d1.test"}]}).encode()


@pytest.fixture
def relay(sluice_factory, tmp_path):
    token, line = new_token("app")
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    r = sluice_factory(shards=1, config=tokens_config(path, max_inject_bytes=4096))
    r.token = token
    return r


def head(token, length: int, expect: str = "100-continue", path: str = PATH) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: relay\r\n{auth}Expect: {expect}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def status_line(c: Http, timeout: float = 5.0) -> bytes:
    """The first response line, read without consuming more than its head."""
    deadline = time.monotonic() + scaled(timeout)
    while b"\r\n\r\n" not in c.buf:
        if not c._fill(deadline):
            raise ConnectionError(f"closed; have {c.buf!r}")
    return c.buf.split(b"\r\n", 1)[0]


@pytest.mark.time_limit(30)
def test_100_continue_then_the_body_then_200(relay):
    c = Http(relay.http_port)
    c.send(head(relay.token, len(DOC)))
    assert status_line(c) == b"HTTP/1.1 100 Continue"
    assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), c.buf
    c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    assert c.buf == b""  # nothing else before the body
    c.send(DOC)
    code, _headers, body = c.response()
    assert code == 200, body
    assert json.loads(body)["recipients"] == 1
    # Keep-alive: a second one on the same connection.
    c.send(head(relay.token, len(DOC)))
    assert status_line(c) == b"HTTP/1.1 100 Continue"
    c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    c.send(DOC)
    code, _headers, body = c.response()
    assert code == 200, body
    c.close()


@pytest.mark.time_limit(30)
@pytest.mark.parametrize("token,length,expect,status", [
    (None, len(DOC), "100-continue", 401),
    ("wrong", len(DOC), "100-continue", 401),
    ("good", 10_000, "100-continue", 413),
    ("good", len(DOC), "something-else", 417),
])
def test_refused_before_the_body(relay, token, length, expect, status):
    c = Http(relay.http_port)
    c.send(head(relay.token if token == "good" else token, length, expect))
    code, headers, body = c.response()
    assert code == status, body
    assert headers["connection"] == "close"
    assert json.loads(body)["status"] == status
    if status == 401:
        assert headers["www-authenticate"].startswith("Bearer")
    assert b"100 Continue" not in c.buf
    assert c.closed(), "the connection should close: the unread body cannot be framed"
    c.close()


@pytest.mark.time_limit(30)
def test_body_sent_without_waiting_is_read(relay):
    c = Http(relay.http_port)
    c.send(head(relay.token, len(DOC)) + DOC)
    code, _headers, body = c.response()
    assert code == 200, body
    assert b"100 Continue" not in body
    c.close()


@pytest.mark.time_limit(30)
def test_admin_path_is_judged_on_its_token(relay):
    c = Http(relay.http_port)
    form = b"domain=example.com"
    c.send(f"POST /api/admin/v1/flush HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\n"
           f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n"
           f"Authorization: Bearer {relay.token}\r\n\r\n".encode())
    assert status_line(c) == b"HTTP/1.1 100 Continue"
    c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    c.send(form)
    code, _headers, body = c.response()
    # The body was read and the request routed: a queue-only relay says so.
    assert code == 409 and b"delivery is disabled" in body, body
    c.close()


@pytest.mark.time_limit(60)
def test_busy_is_answered_before_the_body(sluice_factory, tmp_path):
    """http.max_inject_in_flight = 1: while a large injection's commit is in
    flight, a second one that asks 100-continue gets the 503 straight away
    (no 100, no body sent) and the connection closes."""
    token, line = new_token("app")
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    r = sluice_factory(shards=1, config=tokens_config(path, max_inject_in_flight=1))
    big = json.dumps({"envelope_sender": "a@snd.test",
                      "content": "From: a@snd.test\r\nTo: b@d1.test\r\nSubject: big\r\n\r\n"
                                 + ("x" * 998 + "\r\n") * 8000,
                      "recipients": [{"email": "b@d1.test"}]}).encode()
    seen = []
    for _round in range(8):
        first = Http(r.http_port, timeout=30)
        req = head(token, len(big), expect="100-continue")
        first.send(req)
        assert status_line(first) == b"HTTP/1.1 100 Continue"
        first.buf = b""
        first.send(big[:-1])
        second = Http(r.http_port)
        time.sleep(0.2)
        first.send(big[-1:])
        second.send(head(token, len(DOC)))  # as the big one is being committed
        line2 = status_line(second)
        seen.append(line2)
        if line2.startswith(b"HTTP/1.1 503"):
            code, headers, body = second.response()
            assert headers["retry-after"] == "1" and headers["connection"] == "close"
            assert b"http.max_inject_in_flight" in body
            assert second.closed()
            assert first.response(timeout=30)[0] == 200
            break
        assert line2 == b"HTTP/1.1 100 Continue"
        second.close()
        assert first.response(timeout=30)[0] == 200
        first.close()
    assert seen[-1].startswith(b"HTTP/1.1 503"), seen
    print(f"busy at the head after {len(seen)} round(s)")
