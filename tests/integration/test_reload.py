"""Configuration reload (`sluice reload`, SIGHUP; docs/CONFIGURATION.md,
"Reloading"): a real daemon with two shards, all of its settings in one
configuration file, real SMTP in and out to scripted receivers on loopback.

A changed route and a changed shaping rule take effect without a restart and
the reload says what changed; a changed listen address is refused, naming the
key, with the old configuration still serving; a broken file (SIGHUP or
`sluice reload`) keeps the old configuration; a new log path is written to."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
from pathlib import Path

import pytest

from sluice_harness import HOSTNAME, READY_KEY, diag_messages, free_port, require_sluice_bin, scaled, wait_for

SENDER = "sender@snd.test"


class Relay:
    """`sluice serve --config FILE` and nothing else on its command line, so
    a reload sees every setting the file has (flags would win over it)."""

    def __init__(self, workdir: Path, dns_spec: str, mx_port: int):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.mx_port = mx_port
        self.dns_spec = dns_spec
        self.config_path = workdir / "sluice.toml"
        self.log_path = workdir / "log" / "sluice.log"
        self.stderr_path = workdir / "stderr.txt"
        self.proc = None

    def config(self, *, route_to: str, listen_port: int | None = None, shaping: str = "",
               log: Path | None = None) -> str:
        return f"""
[server]
listen = ["127.0.0.1:{listen_port or self.port}"]
hostname = "{HOSTNAME}"
shards = 2
relay_from = "127.0.0.0/8"
[spool]
dir = "{self.workdir / 'spool'}"
[log]
file = "{log or self.log_path}"
[delivery]
dns = ["{self.dns_spec}"]
mx_port = {self.mx_port}
idle_connection = "30s"
[retry]
initial = "1s"
jitter = 0
[[route]]
domain = "*.example"
next_hop = "[{route_to}]:{self.mx_port}"
{shaping}
"""

    def write(self, text: str) -> None:
        self.config_path.write_text(text)

    def start(self) -> "Relay":
        self.err = open(self.stderr_path, "w")
        env = {**os.environ, "SLUICE_CONFIG": ""}
        self.proc = subprocess.Popen([str(require_sluice_bin()), "serve", "--config", str(self.config_path)],
                                     cwd=self.workdir, stderr=self.err, stdout=subprocess.DEVNULL, env=env)
        wait_for(lambda: self.alive() and READY_KEY in self.stderr(), scaled(20), what="ready")
        return self

    def alive(self) -> bool:
        assert self.proc.poll() is None, self.stderr()
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(30))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def reload(self) -> subprocess.CompletedProcess:
        env = {**os.environ, "SLUICE_CONFIG": ""}
        return subprocess.run([str(require_sluice_bin()), "reload", "--config", str(self.config_path)],
                              capture_output=True, text=True, timeout=scaled(60), env=env)

    def send(self, rcpt: str, subject: str, port: int | None = None) -> None:
        body = (f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                f"Message-ID: <{subject.replace(' ', '.')}@snd.test>\r\n\r\nHello.\r\n")
        with smtplib.SMTP("127.0.0.1", port or self.port, timeout=scaled(10)) as c:
            c.ehlo("client.sluice.test")
            c.sendmail(SENDER, [rcpt], body.encode())

    def records(self, path: Path | None = None) -> list:
        p = path or self.log_path
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


# As conftest.py's sluice_factory: a sanitizer report that does not kill the
# daemon (under tools/test's ASan pass) still fails the test.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: ",
                     "WARNING: AddressSanitizer")


@pytest.fixture
def relay(tmp_path, dead_dns, mx_port):
    r = Relay(tmp_path / "relay", dead_dns.spec, mx_port)
    yield r
    if r.proc is not None:
        r.stop()
        reports = [m for m in SANITIZER_MARKERS if m in r.stderr()]
        assert not reports, r.stderr()[-6000:]


def delivered(receiver) -> int:
    return len(receiver.messages())


def test_route_change_takes_effect_without_a_restart(relay, receiver_factory):
    a = receiver_factory("127.0.0.2")
    b = receiver_factory("127.0.0.3")
    relay.write(relay.config(route_to="127.0.0.2"))
    relay.start()
    pid = relay.proc.pid
    relay.send("u1@d1.example", "before")
    a.wait_messages(1)
    relay.write(relay.config(route_to="127.0.0.3"))
    r = relay.reload()
    assert r.returncode == 0, (r.stdout, r.stderr)
    expected = f'route "*.example" 127.0.0.2:{relay.mx_port} -> 127.0.0.3:{relay.mx_port}'
    assert r.stdout.strip() == f"sluice: reloaded: {expected}", r.stdout
    # The daemon's own line comes through its log-writer thread: wait for it.
    wait_for(lambda: f"reloaded: {expected}" in diag_messages(relay.stderr(), "config.reloaded"),
             10, what="the reloaded line")
    # The same domain (its connection to A may still be open) and a new one.
    relay.send("u2@d1.example", "after one")
    relay.send("u3@d2.example", "after two")
    b.wait_messages(2)
    assert delivered(a) == 1
    assert relay.proc.pid == pid and relay.alive()
    # Nothing changed: said so, exit 0.
    r = relay.reload()
    assert r.returncode == 0 and r.stdout.strip() == "sluice: reloaded: configuration unchanged", r


def test_shaping_change_applies_to_a_waiting_domain(relay, receiver_factory):
    a = receiver_factory("127.0.0.2")
    slow = '[[shaping]]\npattern = "slow.example"\nmessages_per_hour = 1\n'
    relay.write(relay.config(route_to="127.0.0.2", shaping=slow))
    relay.start()
    for i in range(3):
        relay.send(f"u{i}@slow.example", f"slow {i}")
    a.wait_messages(1)
    # One an hour: the other two wait in the domain's queue.
    with pytest.raises(AssertionError):
        a.wait_messages(2, timeout=3)
    fast = '[[shaping]]\npattern = "slow.example"\nmessages_per_second = 100\n'
    relay.write(relay.config(route_to="127.0.0.2", shaping=fast))
    r = relay.reload()
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert 'shaping "slow.example" messages_per_hour 1 -> 0' in r.stdout, r.stdout
    assert 'shaping "slow.example" messages_per_second 0 -> 100' in r.stdout, r.stdout
    a.wait_messages(3)


def test_listen_change_is_refused_and_the_old_configuration_serves(relay, receiver_factory):
    a = receiver_factory("127.0.0.2")
    b = receiver_factory("127.0.0.3")
    relay.write(relay.config(route_to="127.0.0.2"))
    relay.start()
    other = free_port()
    # A new listen port and a new route together: nothing of it applies.
    relay.write(relay.config(route_to="127.0.0.3", listen_port=other))
    r = relay.reload()
    assert r.returncode == 1, (r.stdout, r.stderr)
    line = "sluice: reload refused: server.listen needs a restart; nothing changed"
    assert r.stderr.strip() == line, r.stderr
    wait_for(lambda: line[len("sluice: "):] in diag_messages(relay.stderr(), "config.reload_refused"),
             10, what="the refused line")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", other), timeout=1).close()
    relay.send("u1@d1.example", "still old")
    a.wait_messages(1)
    assert delivered(b) == 0
    # The status file says the same to whoever asks next.
    status = (relay.workdir / "spool" / "reload.status").read_text().splitlines()
    assert status[0].startswith(f"{relay.proc.pid} ") and status[0].endswith(" refused"), status
    assert status[1] == line[len("sluice: "):]


def test_broken_file_keeps_the_old_configuration(relay, receiver_factory):
    a = receiver_factory("127.0.0.2")
    relay.write(relay.config(route_to="127.0.0.2"))
    relay.start()
    relay.write(relay.config(route_to="127.0.0.3") + "\n[server\n")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: diag_messages(relay.stderr(), "config.reload_failed"), scaled(10),
             what="the failure line")
    failed = diag_messages(relay.stderr(), "config.reload_failed")[0]
    assert failed.startswith("reload failed: "), failed
    assert "sluice.toml" in failed and failed.endswith("; still running the previous configuration"), failed
    relay.send("u1@d1.example", "after a bad sighup")
    a.wait_messages(1)
    assert relay.alive()
    # `sluice reload` checks the file first and sends nothing.
    r = relay.reload()
    assert r.returncode == 1 and "nothing sent to the daemon" in r.stderr, r
    assert len(diag_messages(relay.stderr(), "config.reload_failed")) == 1


def test_new_log_path_is_written_after_a_reload(relay, receiver_factory):
    a = receiver_factory("127.0.0.2")
    relay.write(relay.config(route_to="127.0.0.2"))
    relay.start()
    new_log = relay.workdir / "log2" / "new.log"
    relay.write(relay.config(route_to="127.0.0.2", log=new_log))
    r = relay.reload()
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f'log.file "{relay.log_path}" -> "{new_log}"' in r.stdout
    relay.send("u1@d1.example", "logged anew")
    a.wait_messages(1)
    wait_for(lambda: any(x.get("type") == "Delivery" for x in relay.records(new_log)), scaled(10),
             what="a Delivery record in the new log")
    assert not any(x.get("type") == "Delivery" for x in relay.records())


def test_reload_without_a_daemon_says_so(tmp_path):
    config = tmp_path / "sluice.toml"
    config.write_text(f'[spool]\ndir = "{tmp_path / "spool"}"\n')
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "lock").write_text("999999\n")  # stale: nobody holds it
    r = subprocess.run([str(require_sluice_bin()), "reload", "--config", str(config)],
                       capture_output=True, text=True, timeout=30, env={**os.environ, "SLUICE_CONFIG": ""})
    assert r.returncode == 1 and "is not locked" in r.stderr, r
