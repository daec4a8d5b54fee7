"""Every SMTP-level refusal leaves a Rejection record in the accounting log
(source "smtp"): what was refused, from whom, and the reply; AUTH's
argument never appears."""

from __future__ import annotations

import json
import socket
import time

from sluice_harness import scaled


def _records(d, want: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        lines = d.log_path.read_text().splitlines() if d.log_path.exists() else []
        recs = [json.loads(line) for line in lines]
        rej = [r for r in recs if r["type"] == "Rejection" and r.get("source") == "smtp"]
        if len(rej) >= want or time.monotonic() > deadline:
            return rej
        time.sleep(0.05)


def _outsider(d) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(scaled(5))
    s.connect((d.host, d.port))
    return s


def _exchange(s: socket.socket, lines: list) -> bytes:
    data = b""
    for line in lines:
        s.sendall(line + b"\r\n")
        time.sleep(0.05)
    s.settimeout(1.0)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def test_relay_denied_and_bad_commands_are_logged(sluice_factory):
    d = sluice_factory(relay_from="127.0.0.2/32")
    s = _outsider(d)
    out = _exchange(s, [b"EHLO outside.example", b"MAIL FROM:<spammer@example.com>",
                        b"RCPT TO:<victim@example.net>", b"BOGUS", b"NOOP " + b"x" * 3000])
    assert b"550 5.7.1" in out and b"500 5.5.2" in out and b"500 5.5.6" in out, out
    rej = _records(d, 3)
    by_reply = {r["reply"][:9]: r for r in rej}
    relay = by_reply["550 5.7.1"]
    assert relay["command"] == "RCPT" and "victim@example.net" in relay["argument"]
    assert relay["client"] == "127.0.0.1" and relay["helo"] == "outside.example"
    assert relay["sender"] == "spammer@example.com"
    assert by_reply["500 5.5.2"]["command"] == ""
    assert by_reply["500 5.5.6"]["command"] == "" and by_reply["500 5.5.6"]["argument"] == ""
    s.close()


def test_message_refused_after_data_is_logged(sluice_factory):
    d = sluice_factory(max_message_size=2048)
    s = socket.create_connection((d.host, d.port), timeout=scaled(5))
    out = _exchange(s, [b"EHLO big.example", b"MAIL FROM:<a@example.com>",
                        b"RCPT TO:<b@example.net>", b"DATA",
                        b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 100 + b"."])
    assert b"552 5.3.4" in out, out
    rej = _records(d, 1)
    assert any(r["command"] == "DATA" and r["reply"].startswith("552 5.3.4") for r in rej), rej
    s.close()


def test_auth_arguments_never_reach_the_log(sluice_factory):
    d = sluice_factory()
    s = socket.create_connection((d.host, d.port), timeout=scaled(5))
    # AUTH is not offered without a password file: 502, logged without its argument.
    out = _exchange(s, [b"EHLO a.example", b"AUTH PLAIN AHVzZXIAc2VjcmV0"])
    assert b"502 5.5.1" in out, out
    rej = _records(d, 1)
    auth = [r for r in rej if r["command"] == "AUTH"]
    assert auth and all(r["argument"] == "" for r in auth)
    assert "AHVzZXIAc2VjcmV0" not in d.log_path.read_text()
    s.close()


def test_shutdown_replies_are_not_rejections(sluice_factory):
    d = sluice_factory()
    s = socket.create_connection((d.host, d.port), timeout=scaled(5))
    assert s.recv(1024).startswith(b"220")
    d.stop()
    assert _records(d, 1, timeout=0.5) == []
