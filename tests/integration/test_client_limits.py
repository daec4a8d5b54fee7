"""Connections refused at accept: per-client-address limits for clients
outside relay_from, and no descriptor left behind when a refused client has
already reset."""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from sluice_harness import scaled

OUTSIDER = "127.0.0.1"  # relay_from is set to 127.0.0.2/32 below


def _connect(d, source: str = OUTSIDER) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(scaled(5))
    s.connect((d.host, d.port))
    return s


def _first_line(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0]


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_outsider_connections_per_address_are_limited(sluice_factory):
    d = sluice_factory(shards=2, relay_from="127.0.0.2/32",
                       config="[server]\nmax_connections_per_ip = 5\n")
    held = [_connect(d) for _ in range(5)]
    for s in held:
        assert _first_line(s).startswith(b"220 ")
    extra = _connect(d)
    line = _first_line(extra)
    assert line.startswith(b"421 4.7.0") and b"too many connections from 127.0.0.1" in line, line
    assert extra.recv(100) == b""  # closed after the reply
    # Another address is not affected, and relay_from clients are exempt.
    other = _connect(d, "127.0.0.3")
    assert _first_line(other).startswith(b"220 ")
    trusted = [_connect(d, "127.0.0.2") for _ in range(8)]
    for s in trusted:
        assert _first_line(s).startswith(b"220 ")
    # A slot frees when a connection closes.
    held.pop().close()
    deadline = time.monotonic() + scaled(5)
    while True:
        s = _connect(d)
        if _first_line(s).startswith(b"220 "):
            held.append(s)
            break
        s.close()
        assert time.monotonic() < deadline, "the closed connection's slot never came back"
        time.sleep(0.05)
    for s in held + trusted + [other, extra]:
        s.close()


def test_outsider_connection_rate_is_limited(sluice_factory):
    d = sluice_factory(shards=2, relay_from="127.0.0.2/32",
                       config="[server]\nmax_connection_rate_per_ip = 10\n")
    answers = []
    for _ in range(14):
        s = _connect(d, "127.0.0.4")
        answers.append(_first_line(s))
        s.close()
    ok = [a for a in answers if a.startswith(b"220 ")]
    refused = [a for a in answers if a.startswith(b"421 4.7.0")]
    # A minute window may turn during the test: then up to twice the rate.
    assert 10 <= len(ok) <= 14 and len(ok) + len(refused) == 14, answers
    if len(ok) == 10:
        assert all(b"per minute" in a for a in refused), refused


@pytest.mark.time_limit(90)
def test_refused_connections_that_reset_leave_no_descriptor(sluice_factory):
    """Past max_connections every new client gets 421 and is closed. A client
    that resets at once makes that send fail; the descriptor must still be
    closed (a close linked to the send used to be cancelled with it)."""
    d = sluice_factory(shards=2, config="[server]\nmax_connections = 4\n")
    held = []
    for _ in range(4):
        s = _connect(d, "127.0.0.2")
        assert _first_line(s).startswith(b"220 ")
        held.append(s)
    base = _fd_count(d.pid)
    linger_reset = struct.pack("ii", 1, 0)
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_reset)
        s.connect((d.host, d.port))
        s.close()  # RST at once, before the 421 can go
    deadline = time.monotonic() + scaled(5)
    while _fd_count(d.pid) > base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fd_count(d.pid) <= base, f"{_fd_count(d.pid) - base} descriptors leaked"
    # Still serving: one held connection goes, a new one gets its banner.
    held.pop().close()
    time.sleep(0.2)
    s = _connect(d, "127.0.0.2")
    assert _first_line(s).startswith(b"220 ")
    for c in held + [s]:
        c.close()
