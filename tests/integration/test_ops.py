"""Day-one operations (deploy/README.md): what an operator sees without
configuring anything. The accounting log is on by default and its place is
printed; the `ready` line says where mail goes and who may relay; systemd's
Type=notify readiness (READY=1 only once the port accepts), STOPPING=1 and
watchdog pings; SIGUSR1 reopens the log for logrotate; check-config checks
the folders for the service user and warns about a short host name;
SLUICE_CONFIG; one-line usage errors and `COMMAND --help`; long HTML lines
accepted and delivered re-encoded."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sluice_harness import HOSTNAME, diag_messages, free_port, require_sluice_bin, scaled, wait_for

# The built-in defaults with no configuration file, whatever the machine has
# in /etc/sluice.
NO_CONFIG = {**os.environ, "SLUICE_CONFIG": ""}


def run(*args, env=None, cwd=None, timeout=30):
    return subprocess.run([str(require_sluice_bin()), *args], capture_output=True, text=True,
                          timeout=timeout, env=env or NO_CONFIG, cwd=cwd)


class Daemon:
    """`sluice serve` with the given arguments in `cwd`, stderr to a file."""

    def __init__(self, cwd: Path, args, env=None):
        self.cwd = cwd
        self.port = free_port()
        self.stderr_path = cwd / "stderr.txt"
        cmd = [str(require_sluice_bin()), "serve", "--listen", f"127.0.0.1:{self.port}",
               "--shards", "1", "--hostname", HOSTNAME, *args]
        self.err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, stderr=self.err, stdout=subprocess.DEVNULL,
                                     env=env or NO_CONFIG)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def ready_line(self, timeout: float = 20) -> str:
        def line():
            for msg in diag_messages(self.stderr(), "server.ready"):
                return msg
            assert self.proc.poll() is None, self.stderr()
            return None
        return wait_for(line, timeout=scaled(timeout), what="the ready line")

    def send(self, rcpt: str = "bob@example.net", body: bytes = b"From: alice@example.com\r\nSubject: hi\r\n\r\nHello.\r\n") -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=scaled(10)) as c:
            c.sendmail("alice@example.com", [rcpt], body)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=scaled(30))
        self.err.close()
        return rc


@pytest.fixture
def daemons():
    started = []

    def start(cwd: Path, *args, env=None) -> Daemon:
        d = Daemon(cwd, list(args), env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def records(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- the accounting log and the ready line -------------------------------

def test_log_is_on_by_default_beside_the_spool(tmp_path, daemons):
    """No --log, no configuration: ./var/log/sluice.log, named in the ready
    line, with the Reception of a message sent."""
    d = daemons(tmp_path, "--no-delivery")
    ready = d.ready_line()
    assert "; log ./var/log/sluice.log;" in ready, ready
    assert "; delivery off (queue only);" in ready, ready
    assert "; relay from 127.0.0.0/8,::1/128;" in ready, ready
    assert "; spool ./var/spool;" in ready and ready.startswith("ready: 1 shards, listening on 127.0.0.1:"), ready
    d.send()
    log = tmp_path / "var" / "log" / "sluice.log"
    recs = wait_for(lambda: [r for r in records(log) if r["type"] == "Reception"], timeout=scaled(10),
                    what="a Reception record in the default log")
    assert recs[0]["recipients"] == ["bob@example.net"], recs


def test_empty_log_path_turns_the_log_off(tmp_path, daemons):
    d = daemons(tmp_path, "--no-delivery", "--log", "")
    assert "; log off;" in d.ready_line()
    d.send()
    assert d.stop() == 0
    assert not (tmp_path / "var" / "log").exists()
    # The same from the file: log.file = "".
    cfg = tmp_path / "c.toml"
    cfg.write_text('[log]\nfile = ""\n')
    r = run("check-config", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0 and "log off" in r.stdout, (r.stdout, r.stderr)


def test_ready_line_says_delivery_resolvers_and_routes(tmp_path, daemons):
    d = daemons(tmp_path, "--dns", "127.0.0.1:5399", "--route", "*=[127.0.0.2]:2599",
                "--relay-from", "127.0.0.1/32", "--log", str(tmp_path / "a.log"))
    ready = d.ready_line()
    assert f"; log {tmp_path / 'a.log'};" in ready, ready
    assert f"; delivery live, helo {HOSTNAME}, dns 127.0.0.1:5399, route *=[127.0.0.2]:2599;" in ready, ready
    assert "; relay from 127.0.0.1/32;" in ready, ready


def rotated_log(tmp_path, daemons):
    """A daemon that logged one record to acct.log, then the file renamed
    to acct.log.1 as logrotate does: (daemon, log path, rotated path)."""
    log = tmp_path / "acct.log"
    d = daemons(tmp_path, "--no-delivery", "--log", str(log))
    d.ready_line()
    d.send("first@example.net")
    wait_for(lambda: len(records(log)) == 1, timeout=scaled(10), what="the first record")
    rotated = tmp_path / "acct.log.1"
    log.rename(rotated)
    return d, log, rotated


def test_sigusr1_reopens_the_log(tmp_path, daemons):
    """logrotate renames the file and sends SIGUSR1 (deploy/logrotate.d/sluice):
    the next records go to a new file under the old name."""
    d, log, rotated = rotated_log(tmp_path, daemons)
    d.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "SIGUSR1: reopened" in d.stderr(), timeout=scaled(10), what="the reopen")
    d.send("second@example.net")
    wait_for(lambda: len(records(log)) == 1, timeout=scaled(10), what="a record in the new file")
    assert records(log)[0]["recipients"] == ["second@example.net"]
    assert [r["recipients"] for r in records(rotated)] == [["first@example.net"]]


def test_log_reopen_command_returns_once_the_daemon_writes_the_new_file(tmp_path, daemons):
    """`sluice log reopen` (logrotate's postrotate) signals the spool's daemon
    and returns only when it has the file under the configured name open;
    without a daemon it says so and exits 1."""
    d, log, rotated = rotated_log(tmp_path, daemons)
    r = run("log", "reopen", "--log", str(log), cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"writes {log}" in r.stdout, r.stdout
    assert log.exists()  # the daemon made it before the command returned
    d.send("second@example.net")
    wait_for(lambda: len(records(log)) == 1, timeout=scaled(10), what="a record in the new file")
    assert [r["recipients"] for r in records(rotated)] == [["first@example.net"]]
    r = run("log", "rotate", cwd=tmp_path)
    assert r.returncode != 0 and "log takes one command: reopen" in r.stderr, r.stderr
    assert d.stop() == 0
    r = run("log", "reopen", "--log", str(log), cwd=tmp_path)
    assert r.returncode == 1 and "no daemon on spool" in r.stderr, (r.stdout, r.stderr)


# --- systemd Type=notify ---------------------------------------------------

def notify_socket(tmp_path: Path) -> tuple:
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    return s, str(path)


def test_sd_notify_ready_after_the_port_accepts(tmp_path, daemons):
    """READY=1 (with STATUS=) arrives once every listener is bound: a connect
    made the moment it arrives succeeds. SIGTERM sends STOPPING=1."""
    sock, path = notify_socket(tmp_path)
    sock.settimeout(scaled(20))
    env = {**NO_CONFIG, "NOTIFY_SOCKET": path}
    d = daemons(tmp_path, "--no-delivery", env=env)
    message = sock.recv(4096).decode()
    # Not a moment later: the port must already accept.
    socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
    lines = message.split("\n")
    assert lines[0] == "READY=1", message
    assert lines[1].startswith("STATUS=1 shards, listening on 127.0.0.1:"), message
    d.proc.send_signal(signal.SIGTERM)
    assert sock.recv(4096).decode().startswith("STOPPING=1"), "no STOPPING=1"
    assert d.stop() == 0


def test_sd_notify_watchdog_and_abstract_socket(tmp_path, daemons):
    """WATCHDOG_USEC: WATCHDOG=1 every half period. '@name' is an abstract
    socket."""
    name = f"sluice-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(scaled(20))
    env = {**NO_CONFIG, "NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "200000"}
    d = daemons(tmp_path, "--no-delivery", env=env)
    assert sock.recv(4096).startswith(b"READY=1\n")
    t0 = time.monotonic()
    pings = [sock.recv(4096) for _ in range(3)]
    assert pings == [b"WATCHDOG=1"] * 3, pings
    assert time.monotonic() - t0 < scaled(2)
    # WATCHDOG_PID naming another process: no pings.
    assert d.stop() == 0
    sock.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name + "-2")
    sock.settimeout(scaled(20))
    env = {**env, "NOTIFY_SOCKET": "@" + name + "-2", "WATCHDOG_PID": "1"}
    d2 = daemons(tmp_path, "--no-delivery", env=env)
    assert sock.recv(4096).startswith(b"READY=1\n")
    sock.settimeout(0.6)
    with pytest.raises(socket.timeout):
        sock.recv(4096)
    assert d2.stop() == 0


# --- check-config ----------------------------------------------------------

def test_check_config_checks_folders_for_the_service_user(tmp_path):
    """A spool under a folder only root may write: fine for root, an error
    (exit 2, naming the key and folder) for --user nobody."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    args = ["check-config", "--hostname", HOSTNAME, "--spool", str(locked / "spool"),
            "--pickup", str(locked / "pickup")]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert f"folders ok for root: spool {locked / 'spool'}, log {locked / 'log' / 'sluice.log'}" in r.stdout
    r = run(*args, "--user", "nobody")
    assert r.returncode == 2, r.stdout
    assert f"spool.dir {locked / 'spool'}: does not exist, and nobody cannot create it in {locked}" in r.stderr
    assert f"log.file's folder {locked / 'log'}: does not exist" in r.stderr
    assert f"pickup.dir {locked / 'pickup'}: does not exist" in r.stderr
    # An existing folder that nobody cannot write.
    (locked / "spool").mkdir()
    locked.chmod(0o755)
    r = run(*args, "--user", "nobody")
    assert r.returncode == 2
    assert f"spool.dir {locked / 'spool'}: is not writable by nobody" in r.stderr, r.stderr
    # Handed over to nobody: fine.
    subprocess.run(["chown", "nobody", str(locked), str(locked / "spool")], check=True)
    r = run(*args, "--user", "nobody")
    assert r.returncode == 0, r.stderr
    assert run(*args, "--user", "no-such-user-here").returncode == 2


def test_single_label_host_name_is_a_warning(tmp_path, daemons):
    r = run("check-config", "--hostname", "vm", "--spool", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert "warning: host name 'vm' is not fully qualified" in r.stderr
    r = run("check-config", "--hostname", "vm.example.org", "--spool", str(tmp_path / "s"))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    d = daemons(tmp_path, "--no-delivery", "--hostname", "vm")
    d.ready_line()
    wait_for(lambda: diag_messages(d.stderr(), "config.warning"), 10, what="the warning")
    warnings = diag_messages(d.stderr(), "config.warning")
    assert any(m.startswith("host name 'vm' is not fully qualified") for m in warnings), d.stderr()


# --- the configuration file's default place ------------------------------

def test_sluice_config_is_used_without_config_and_config_wins(tmp_path):
    a = tmp_path / "a.toml"
    a.write_text(f'[server]\nhostname = "a.example"\n[spool]\ndir = "{tmp_path}/spool-a"\n')
    b = tmp_path / "b.toml"
    b.write_text(f'[server]\nhostname = "b.example"\n[spool]\ndir = "{tmp_path}/spool-b"\n')
    env = {**os.environ, "SLUICE_CONFIG": str(a)}
    r = run("check-config", env=env)
    assert r.returncode == 0 and f"spool {tmp_path}/spool-a" in r.stdout, (r.stdout, r.stderr)
    r = run("check-config", "--config", str(b), env=env)
    assert r.returncode == 0 and f"spool {tmp_path}/spool-b" in r.stdout, (r.stdout, r.stderr)
    # A named file that is missing is an error, not the defaults.
    r = run("check-config", env={**os.environ, "SLUICE_CONFIG": str(tmp_path / "missing.toml")})
    assert r.returncode == 2 and "missing.toml" in r.stderr
    # The queue commands read it too: the spool of a.toml.
    (tmp_path / "spool-a" / "0").mkdir(parents=True)
    r = run("queue", "messages", env=env)
    # An empty spool, no daemon: the spool-only view of spool-a.
    assert r.returncode == 0 and r.stdout == "queue is empty\n", (r.stdout, r.stderr)
    assert "spool-a" in r.stderr and "spool-b" not in r.stderr, r.stderr
    r = run("queue", "messages", env={**os.environ, "SLUICE_CONFIG": str(b)})
    assert r.returncode == 1 and "spool-b" in r.stderr, r.stderr


# --- usage -------------------------------------------------------------------

def test_usage_errors_are_one_line_and_help_is_per_command():
    r = run("serve", "--bogus")
    assert r.returncode == 2
    assert r.stderr == "sluice: unknown option --bogus (see 'sluice help')\n", r.stderr
    r = run("serve", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: sluice serve [options]\n\n  serve "), r.stdout
    assert "  --listen ADDR:PORT" in r.stdout and "queue messages" not in r.stdout
    r = run("help", "check-config")
    assert r.returncode == 0 and "--user NAME" in r.stdout and "inject" not in r.stdout.split("options")[0]
    r = run("queue", "--help")
    assert r.returncode == 0 and "queue list|messages|show" in r.stdout, r.stdout
    assert "passwd USER" not in r.stdout
    r = run("help", "frobnicate")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    r = run("help")
    assert r.returncode == 0 and "commands:" in r.stdout


def test_inject_error_lines_count_the_users_file(tmp_path):
    """inject --from/--to prepends envelope lines; an error's line number is
    still the line of the user's file."""
    pickup = tmp_path / "pickup"
    for sub in ("tmp", "new", "bad"):
        (pickup / sub).mkdir(parents=True)
    bad = b"Subject: x\nFrom: a@example.com\nno colon on this line\n\nbody\n"
    r = subprocess.run([str(require_sluice_bin()), "inject", "--pickup", str(pickup), "--from", "a@example.com",
                        "--to", "b@example.net", "--to", "c@example.net"], input=bad, capture_output=True,
                       env=NO_CONFIG, timeout=30)
    assert r.returncode == 1
    assert b"line 3:" in r.stderr, r.stderr


# --- long lines --------------------------------------------------------------

def html_campaign() -> tuple:
    """A multipart/alternative campaign as a bulk sender's tool makes it: the
    HTML part 8bit with a line of more than 1,500 characters. Built with the
    email package, then checked to have kept the long line."""
    from email.message import EmailMessage
    html = ("<html><body><table>" + "".join(
        f'<tr><td style="padding:4px;color:#333">Caf\u00e9 item {i} = a&amp;b</td></tr>' for i in range(30))
        + "</table></body></html>\n")
    html_bytes = html.encode()
    assert len(html_bytes) > 1500
    root = EmailMessage()
    root["From"] = "news@example.com"
    root["To"] = "bob@d1.example"
    root["Subject"] = "November campaign"
    root.set_content("Plain text version.\n")
    root.add_alternative(html_bytes, maintype="text", subtype="html", cte="8bit",
                         params={"charset": "utf-8"})
    raw = root.as_bytes(policy=email.policy.SMTP.clone(max_line_length=None))
    assert max(len(line) for line in raw.split(b"\r\n")) > 1500, raw[:3000]
    return raw, html_bytes


def test_long_html_line_is_accepted_and_delivered_conformant(sluice_factory, delivery_world, dead_dns):
    """The default accepts a 1,500-character HTML line (Postfix does); what
    leaves has no line over 998 octets (the receiver flags any as a
    violation) and the HTML decodes to exactly what was sent."""
    world = delivery_world(receivers={"127.0.0.2": {}})
    relay = sluice_factory(delivery=True, args=["--dns", dead_dns.spec, "--route", f"*=[127.0.0.2]:{world.port}"])
    raw, html = html_campaign()
    with relay.smtp() as c:
        c.ehlo("client.sluice.test")
        c.sendmail("news@example.com", ["bob@d1.example"], raw)
    r = world["127.0.0.2"]
    r.wait_messages(1)
    (m,) = r.messages()
    body = m["body"] if isinstance(m["body"], bytes) else bytes(m["body"], "latin-1")
    assert max(len(line) for line in body.split(b"\r\n")) <= 998
    received = email.message_from_bytes(body, policy=email.policy.default)
    parts = [p for p in received.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[1]["Content-Transfer-Encoding"] == "quoted-printable"
    # Identical, in the canonical CRLF form every message travels in.
    assert parts[1].get_payload(decode=True) == html.replace(b"\n", b"\r\n")
    assert parts[0].get_content().rstrip() == "Plain text version."


def test_every_reception_protocol_is_documented():
    """Each `protocol` value the code writes into a Reception record is listed
    in docs/PROTOCOL.md's Reception row (DSN receptions were not)."""
    import re
    root = Path(__file__).resolve().parents[2]
    row = next(line for line in (root / "docs" / "PROTOCOL.md").read_text().splitlines()
               if line.startswith("| `Reception` |"))
    values = set()
    for path in [*(root / "src" / "server").glob("*.cc"), *(root / "src" / "pickup").glob("*.cc")]:
        values |= set(re.findall(r'protocol = "([A-Za-z]+)"', path.read_text()))
    values |= {"SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"}  # connection.cc's ProtocolName
    assert {"DSN", "pickup"} <= values, values
    missing = sorted(v for v in values if f"`{v}`" not in row)
    assert not missing, f"not in docs/PROTOCOL.md: {missing}"


def test_sighup_without_changes_says_nothing_changed(tmp_path, daemons):
    """SIGHUP reloads the whole configuration (test_reload.py); with no file
    changed and no TLS, password or DKIM file it says so and re-reads nothing."""
    d = daemons(tmp_path, "--no-delivery")
    d.ready_line()
    d.proc.send_signal(signal.SIGHUP)
    line = "reloaded: configuration unchanged"
    wait_for(lambda: diag_messages(d.stderr(), "config.reloaded"), timeout=scaled(10),
             what="the SIGHUP line")
    assert diag_messages(d.stderr(), "config.reloaded") == [line]  # nothing re-read after it
    assert "TLS certificate" not in d.stderr() and "DKIM" not in d.stderr()
