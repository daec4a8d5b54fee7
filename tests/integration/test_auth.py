"""AUTH PLAIN and LOGIN (RFC 4954) with users from `sluice passwd`: offered
only over TLS by default, relaying for authenticated clients from any
network, wrong passwords and the per-address lockout, require_tls and
require_auth per listener, swaks as a real AUTH client."""

from __future__ import annotations

import base64
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from sluice_harness import (
    CLIENT_HELO,
    diag_events,
    HOSTNAME,
    expect_line,
    free_port,
    listen_spec,
    make_message,
    queued_id_from_smtplib,
    scaled,
    sluice_bin,
    wait_for,
)
from tls_peers import client_context, make_cert, plain_auth, starttls, tls_args

USER, PASSWORD = "alice", "correct horse battery"
# Loopback is NOT a relay network here: only AUTH lets mail out.
NO_RELAY = "10.99.0.0/16"


def passwd(path, user, password, expect_rc=0):
    proc = subprocess.run([str(sluice_bin()), "passwd", user, "--password-file", str(path)],
                          input=(password + "\n").encode(), capture_output=True,
                          timeout=scaled(30))
    assert proc.returncode == expect_rc, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users"
    passwd(path, USER, PASSWORD)
    return path


@pytest.fixture
def auth_sluice(sluice_factory, tmp_path, users):
    cert, key = make_cert(tmp_path / "certs")
    return sluice_factory(relay_from=NO_RELAY,
                          args=tls_args(cert, key) + ["--password-file", str(users)])


def test_passwd_writes_pbkdf2_entries(tmp_path):
    path = tmp_path / "users"
    out = passwd(path, "bob", "one").stdout.decode()
    assert "password set for bob" in out
    passwd(path, "carol", "two")
    passwd(path, "bob", "three")  # replaced, not added
    lines = path.read_text().splitlines()
    assert [l.split(":", 1)[0] for l in lines] == ["bob", "carol"], lines
    assert all(l.split(":", 1)[1].startswith("$pbkdf2-sha256$20000$") for l in lines), lines
    assert (path.stat().st_mode & 0o777) == 0o600
    passwd(path, "bad:name", "x", expect_rc=2)
    passwd(path, "dave", "", expect_rc=2)
    proc = subprocess.run([str(sluice_bin()), "passwd", "x"], input=b"pw\n", capture_output=True,
                          timeout=scaled(30))
    assert proc.returncode == 2 and b"password-file" in proc.stderr


def test_auth_not_offered_before_tls(auth_sluice):
    with auth_sluice.connect() as c:
        c.banner()
        lines = c.ehlo().full_lines
        assert not any(l.startswith("250-AUTH") for l in lines), lines
        r = c.cmd(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}")
        expect_line(r, "538 5.7.11 Encryption required for requested authentication mechanism")
        starttls(c)
        assert "250-AUTH PLAIN LOGIN" in c.ehlo().full_lines


def test_auth_plain_lets_an_outside_client_relay(auth_sluice):
    with smtplib.SMTP(auth_sluice.host, auth_sluice.port, local_hostname=CLIENT_HELO,
                      timeout=scaled(10)) as s:
        s.starttls(context=client_context())
        s.ehlo()
        s.mail("alice@example.com")
        code, resp = s.rcpt("bob@example.net")
        assert (code, resp) == (550, b"5.7.1 <bob@example.net>: Relay access denied")
        s.rset()
        s.login(USER, PASSWORD)  # smtplib picks PLAIN
        s.mail("alice@example.com")
        s.rcpt("bob@example.net")
        code, resp = s.data(make_message(subject="authenticated"))
        qid = queued_id_from_smtplib(code, resp)
    assert b"with ESMTPSA id " + qid.encode() in auth_sluice.queue_show(qid)


def test_auth_login_with_swaks(auth_sluice, swaks_bin):
    proc = subprocess.run(
        [swaks_bin, "--server", f"127.0.0.1:{auth_sluice.port}", "--tls", "--auth", "LOGIN",
         "--auth-user", USER, "--auth-password", PASSWORD, "--from", "alice@example.com",
         "--to", "bob@example.net", "--helo", CLIENT_HELO],
        capture_output=True, timeout=scaled(30))
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out
    assert "235 2.7.0 Authentication successful" in out
    assert "250 2.0.0 Ok: queued as" in out


def test_wrong_passwords_lock_the_address(auth_sluice):
    with auth_sluice.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        c.ehlo()
        for _ in range(2):
            expect_line(c.cmd(f"AUTH PLAIN {plain_auth(USER, 'wrong')}"),
                        "535 5.7.8 Error: authentication failed")
        # LOGIN with an unknown user costs the same and counts the same.
        assert c.cmd("AUTH LOGIN").first == "334 VXNlcm5hbWU6"
        assert c.cmd(base64.b64encode(b"mallory").decode()).first == "334 UGFzc3dvcmQ6"
        r = c.cmd(base64.b64encode(b"guess").decode())
        expect_line(r, f"421 4.7.0 {HOSTNAME} Error: too many failed authentication attempts")
        c.wait_closed()
    # Locked: even the right password is refused, unchecked, for now.
    with auth_sluice.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        c.ehlo()
        r = c.cmd(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}")
        expect_line(r, f"421 4.7.0 {HOSTNAME} Error: too many failed authentication attempts")
    # Diagnostics reach stderr through the log-writer thread: wait for them.
    wait_for(lambda: diag_events(auth_sluice.stderr_since_start(), "auth.locked_out"), 5,
             what="the auth.locked_out line")
    err = auth_sluice.stderr_since_start()
    failed = diag_events(err, "auth.failed")
    assert any(e["user"] == "alice" and e["peer"] == "127.0.0.1" for e in failed), err
    assert any(e["locked_out"] == "true" and "address locked out" in e["msg"] for e in failed), err
    assert any(e["peer"] == "127.0.0.1" for e in diag_events(err, "auth.locked_out")), err


def test_lock_expires(sluice_factory, tmp_path, users):
    cert, key = make_cert(tmp_path / "certs")
    config = "[auth]\nmax_failures = 1\nlock_s = 1\n"
    d = sluice_factory(relay_from=NO_RELAY, config=config,
                       args=tls_args(cert, key) + ["--password-file", str(users)])
    with d.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        c.ehlo()
        r = c.cmd(f"AUTH PLAIN {plain_auth(USER, 'nope')}")
        assert r.code == 421, r
    time.sleep(1.3)
    with d.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        c.ehlo()
        expect_line(c.cmd(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}"),
                    "235 2.7.0 Authentication successful")


def test_auth_syntax_errors(auth_sluice):
    with auth_sluice.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        c.ehlo()
        expect_line(c.cmd("AUTH CRAM-MD5"), "504 5.5.4 Error: unsupported authentication mechanism")
        expect_line(c.cmd("AUTH PLAIN !!!"), "501 5.5.2 Error: cannot decode response")
        assert c.cmd("AUTH PLAIN").first == "334"
        expect_line(c.cmd("*"), "501 5.0.0 Error: authentication cancelled")
        expect_line(c.cmd("MAIL FROM:<a@example.com>"), "250 2.1.0 Ok")
        expect_line(c.cmd(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}"),
                    "503 5.5.1 Error: MAIL transaction in progress")


def test_require_tls_and_auth_per_listener(sluice_factory, tmp_path, users):
    cert, key = make_cert(tmp_path / "certs")
    strict_port = free_port()
    strict = listen_spec("127.0.0.1", strict_port)
    config = (f'[tls]\nrequire_tls_on = ["{strict}"]\n'
              f'[auth]\nrequire_auth_on = ["{strict}"]\nallow_plaintext = true\n')
    d = sluice_factory(relay_from="127.0.0.0/8", config=config,
                       args=tls_args(cert, key) + ["--password-file", str(users),
                                                   "--listen", strict])
    # d.port's listener is relaxed: plaintext mail from a relay network is fine.
    with d.connect() as c:
        c.greet()
        expect_line(c.cmd("MAIL FROM:<a@example.com>"), "250 2.1.0 Ok")
    # The strict one wants TLS, then AUTH, before MAIL.
    from sluice_harness import SmtpClient
    with SmtpClient("127.0.0.1", strict_port) as c:
        c.greet()
        expect_line(c.cmd("MAIL FROM:<a@example.com>"),
                    "530 5.7.0 Must issue a STARTTLS command first")
        expect_line(c.cmd(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}"),
                    "530 5.7.0 Must issue a STARTTLS command first")
        starttls(c)
        c.ehlo()
        expect_line(c.cmd("MAIL FROM:<a@example.com>"), "530 5.7.0 Authentication required")
        expect_line(c.cmd(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}"),
                    "235 2.7.0 Authentication successful")
        expect_line(c.cmd("MAIL FROM:<a@example.com>"), "250 2.1.0 Ok")


def test_sighup_reloads_users(auth_sluice, users):
    import os
    import signal
    passwd(users, "newbie", "fresh")
    os.kill(auth_sluice.pid, signal.SIGHUP)
    deadline = time.monotonic() + scaled(10)
    while "reloaded" not in auth_sluice.stderr_since_start() and time.monotonic() < deadline:
        time.sleep(0.05)
    with auth_sluice.connect() as c:
        c.banner()
        c.ehlo()
        starttls(c)
        c.ehlo()
        expect_line(c.cmd(f"AUTH PLAIN {plain_auth('newbie', 'fresh')}"),
                    "235 2.7.0 Authentication successful")


def test_password_checks_run_off_the_shard(sluice_factory, tmp_path, users):
    """PBKDF2 (~15 ms a check) runs on helper threads: while a burst of fresh
    passwords is being checked, another client on the same shard is answered
    at once instead of waiting behind them."""
    config = "[auth]\nallow_plaintext = true\nmax_failures = 1000\n"
    d = sluice_factory(relay_from=NO_RELAY, config=config, shards=1,
                       args=["--password-file", str(users)])
    comms = {p.read_text().strip() for p in Path(f"/proc/{d.proc.pid}/task").glob("*/comm")}
    assert {"helper-0", "helper-1"} <= comms, comms
    burst = [d.session() for _ in range(12)]
    probe = d.session()
    start = time.monotonic()
    for i, c in enumerate(burst):  # distinct wrong passwords: no cache can answer
        c.send_line(f"AUTH PLAIN {plain_auth(USER, f'wrong-{i}')}")
    time.sleep(0.005)
    sent = time.monotonic()
    expect_line(probe.cmd("NOOP"), "250 2.0.0 Ok")
    probe_rtt = time.monotonic() - sent
    for c in burst:
        expect_line(c.reply(timeout=scaled(30)), "535 5.7.8 Error: authentication failed")
    checks = time.monotonic() - start
    # Inline, the NOOP would wait for most of the burst; on helpers it waits
    # for none of it.
    assert probe_rtt < checks / 2, (probe_rtt, checks)
