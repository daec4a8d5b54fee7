"""The injection API's limits and accounting (docs/HTTP.md "Injection",
docs/METRICS.md "HTTP") over real loopback sockets: the per-shard cap on
injections waiting for the spool (http.max_inject_in_flight: 503 with
Retry-After and a JSON error, counted), the HTTP peer's address in the
Reception record, and the sluice_http_* counters following a known sequence
of requests exactly, every scrape accepted by `promtool check metrics`.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from sluice_harness import scaled, wait_for
from test_delivery import records
from test_http import Http, new_token, tokens_config
from test_metrics import check_with_promtool, scrape, wait_scrape

PATH = "/api/inject/v1"


def doc(n_rcpt: int = 1, body: str = "hi") -> bytes:
    rcpts = [{"email": f"r{i}@d1.test"} for i in range(n_rcpt)]
    return json.dumps({"envelope_sender": "a@snd.test",
                       "content": f"From: a@snd.test\r\nTo: r0@d1.test\r\nSubject: x\r\n\r\n{body}\r\n",
                       "recipients": rcpts}).encode()


def request(token, body: bytes) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {PATH} HTTP/1.1\r\nHost: relay\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
def relay(sluice_factory, tmp_path):
    def start(**http):
        token, line = new_token("app")
        path = tmp_path / "tokens"
        path.write_text(line + "\n")
        r = sluice_factory(shards=1, config=tokens_config(path, **http))
        r.token = token
        return r
    return start


@pytest.mark.time_limit(40)
def test_injections_past_the_cap_get_503_and_are_counted(relay):
    """max_inject_in_flight = 1 on one shard: many requests whose last byte
    arrives at once find the first one's commit in flight; those get 503
    with Retry-After, the rest 200, and /metrics counts both exactly."""
    r = relay(max_inject_in_flight=1)
    ok = busy = 0
    for _round in range(6):
        clients = [Http(r.http_port) for _ in range(24)]
        body = doc(body="x" * 3000)
        req = request(r.token, body)
        for c in clients:
            c.send(req[:-1])
        time.sleep(0.3)  # every request is waiting for its last byte
        for c in clients:
            c.send(req[-1:])
        for c in clients:
            code, headers, data = c.response()
            answer = json.loads(data)
            if code == 200:
                ok += 1
            else:
                assert code == 503, data
                assert headers["retry-after"] == "1"
                assert "http.max_inject_in_flight" in answer["error"] and answer["status"] == 503
                busy += 1
            c.close()
        if busy > 0:
            break
    assert busy > 0, "no request ever found the cap reached"
    assert ok > 0
    s = wait_scrape(r, lambda s: s.total("sluice_http_injected_messages_total") == ok,
                    f"{ok} injections")
    assert s.total("sluice_http_injections_refused_total", reason="busy") == busy
    assert s.total("sluice_http_responses_total", **{"class": "5xx"}) == busy
    assert len(records(r, "Reception")) == ok
    print(f"cap 1: {ok} injected, {busy} refused busy")


@pytest.mark.time_limit(30)
def test_reception_record_names_the_http_peer(relay):
    r = relay()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.3", 0))  # another loopback source address than the default
    s.settimeout(scaled(10))
    s.connect(("127.0.0.1", r.http_port))
    s.sendall(request(r.token, doc()))
    data = b""
    while b"}\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200 "), data
    qid = json.loads(data.split(b"\r\n\r\n", 1)[1])["queue_id"]
    wait_for(lambda: [x for x in records(r, "Reception") if x["id"] == qid], timeout=10,
             what="the Reception record")
    rec = [x for x in records(r, "Reception") if x["id"] == qid][0]
    assert rec["client"] == "127.0.0.3" and rec["protocol"] == "http", rec


@pytest.mark.time_limit(30)
def test_http_counters_follow_the_requests(relay):
    r = relay(max_inject_bytes=8192)
    first = scrape(r)
    check_with_promtool(first.text)
    assert first.total("sluice_http_injected_messages_total") == 0
    assert first.total("sluice_http_connections_open") == 0

    def one(req: bytes) -> int:
        c = Http(r.http_port)
        c.send(req)
        code, _h, _d = c.response()
        c.close()
        return code

    assert one(request(r.token, doc(3))) == 200                  # 1 message, 3 recipients
    assert one(request(r.token, doc(1))) == 200                  # 1 message, 1 recipient
    assert one(request(r.token, b'{"envelope_sender": 1}')) == 400  # bad_request
    assert one(request(None, doc())) == 401                      # unauthorized
    assert one(request("nope", doc())) == 401                    # unauthorized
    assert one(request(r.token, doc(body="y" * 9000))) == 413    # too_large
    assert one(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n") == 200  # not an injection
    held = [Http(r.http_port), Http(r.http_port)]  # open, idle
    s = wait_scrape(r, lambda s: s.total("sluice_http_connections_open") == 2
                    and s.total("sluice_http_injected_messages_total") == 2, "the counters")
    check_with_promtool(s.text)
    assert s.total("sluice_http_injected_recipients_total") == 4
    assert s.total("sluice_http_injections_refused_total", reason="bad_request") == 1
    assert s.total("sluice_http_injections_refused_total", reason="unauthorized") == 2
    assert s.total("sluice_http_injections_refused_total", reason="too_large") == 1
    assert s.total("sluice_http_injections_refused_total", reason="busy") == 0
    assert s.total("sluice_http_responses_total", **{"class": "2xx"}) == 3
    assert s.total("sluice_http_responses_total", **{"class": "4xx"}) == 4
    assert s.total("sluice_http_responses_total", **{"class": "5xx"}) == 0
    assert s.total("sluice_http_connections_total", outcome="accepted") == 9
    for c in held:
        c.close()
