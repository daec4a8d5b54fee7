"""Helpers shared by the sluice integration tests.

- `Sluice`: one `sluice serve` process on a fresh spool, a free loopback port
  and an accounting log, plus wrappers around the `sluice queue` CLI.
- `SmtpClient`: a raw-socket SMTP client that sends exact bytes and parses
  replies (multi-line aware), with a timeout on every read.
- Small assertion helpers for the reply texts of docs/PROTOCOL.md.

Every wait here is bounded; nothing loops forever.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import pytest


# The daemon's diagnostics (docs/DIAGNOSTICS.md): one logfmt line per event,
# `ts=... level=... key=... [shard=N] msg=... field=...`.
READY_KEY = "key=server.ready "
_DIAG_PAIR = re.compile(r'([a-z0-9_.]+)=("(?:[^"\\]|\\.)*"|[^ ]+)')
_DIAG_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _diag_unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    out, body, i = [], value[1:-1], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            e = body[i + 1]
            if e == "x":
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_DIAG_ESCAPES.get(e, e))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def diag_events(text: str, key: Optional[str] = None) -> list:
    """Every diagnostic line of `text` as a dict (values unescaped), or
    only those with `key`."""
    events = []
    for line in text.splitlines():
        if " key=" not in line:
            continue
        event = {m.group(1): _diag_unquote(m.group(2)) for m in _DIAG_PAIR.finditer(line)}
        if key is None or event.get("key") == key:
            events.append(event)
    return events


def diag_messages(text: str, key: Optional[str] = None) -> list:
    """The `msg` of every diagnostic line (of `key`), unescaped."""
    return [e.get("msg", "") for e in diag_events(text, key)]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "build" / "sluice"
HOSTNAME = "mx.sluice.test"
CLIENT_HELO = "client.sluice.test"

# Crockford base32: digits and letters without I, L, O, U.
ID_PATTERN = r"[0-9A-HJKMNP-TV-Z]{13}"
ID_RE = re.compile(rf"^{ID_PATTERN}$")
QUEUED_RE = re.compile(rf"^250 2\.0\.0 Ok: queued as ({ID_PATTERN})$")

DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024


def timeout_scale() -> float:
    try:
        return max(0.1, float(os.environ.get("SLUICE_TIMEOUT_SCALE", "1")))
    except ValueError:
        return 1.0


def scaled(seconds: float) -> float:
    return seconds * timeout_scale()


def sluice_bin() -> Path:
    return Path(os.environ.get("SLUICE_BIN", str(DEFAULT_BIN)))


def sanitized_build() -> bool:
    """True when SLUICE_BIN is an ASan build (tools/test's sanitizer pass):
    its allocator keeps freed memory in quarantine, so RSS says nothing."""
    try:
        return b"__asan_init" in sluice_bin().read_bytes()
    except OSError:
        return False


def require_sluice_bin() -> Path:
    path = sluice_bin()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"sluice binary not found or not executable at {path} "
            "(build it into build/ or set SLUICE_BIN)",
            pytrace=False,
        )
    return path


def have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def listen_spec(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def norm_addr(addr: str) -> str:
    """'<a@b>' -> 'a@b', '<>' -> '' (null sender), 'a@b' -> 'a@b'."""
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        return addr[1:-1]
    return addr


# --------------------------------------------------------------------------
# Replies and the raw client
# --------------------------------------------------------------------------


class ProtocolError(AssertionError):
    """The server sent something that is not a well-formed SMTP reply."""


class ConnectionClosed(ConnectionError):
    """The server closed the connection while a reply was expected."""


@dataclass
class Reply:
    code: int
    lines: list  # text after "NNN-" / "NNN ", one per reply line, no CRLF
    raw: bytes

    @property
    def first(self) -> str:
        """The first line as sent, e.g. '250 2.0.0 Ok'."""
        return f"{self.code} {self.lines[0]}".rstrip()

    @property
    def last(self) -> str:
        return f"{self.code} {self.lines[-1]}".rstrip()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> Optional[str]:
        m = re.match(r"^(\d\.\d{1,3}\.\d{1,3})(?: |$)", self.lines[0])
        return m.group(1) if m else None

    @property
    def full_lines(self) -> list:
        """Every line as sent: '250-PIPELINING', ..., '250 SMTPUTF8'."""
        out = []
        for i, line in enumerate(self.lines):
            sep = " " if i == len(self.lines) - 1 else "-"
            out.append(f"{self.code}{sep}{line}")
        return out

    def __str__(self) -> str:
        return self.raw.decode("utf-8", "replace").rstrip("\r\n")


class SmtpClient:
    """Raw-socket SMTP client. Every read has a deadline."""

    def __init__(self, host: str, port: int, timeout: float = 10.0, nodelay: bool = True):
        self.host = host
        self.port = port
        self.timeout = scaled(timeout)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False

    # -- sending ---------------------------------------------------------
    def send(self, data) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_line(self, line) -> None:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")

    # -- receiving -------------------------------------------------------
    def _fill(self, deadline: float) -> None:
        if self.eof:
            raise ConnectionClosed(f"connection closed by server; unread {bytes(self.buf)!r}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout(f"timed out waiting for the server; unread {bytes(self.buf)!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise socket.timeout(f"timed out waiting for the server; unread {bytes(self.buf)!r}")
        except ConnectionResetError:
            self.eof = True
            raise ConnectionClosed(f"connection reset by server; unread {bytes(self.buf)!r}")
        if not chunk:
            self.eof = True
            raise ConnectionClosed(f"connection closed by server; unread {bytes(self.buf)!r}")
        self.buf += chunk

    def _deadline(self, timeout: Optional[float]) -> float:
        return time.monotonic() + (scaled(timeout) if timeout is not None else self.timeout)

    def _line_until(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            self._fill(deadline)

    def _reply_until(self, deadline: float) -> Reply:
        raw = b""
        lines = []
        code = None
        while True:
            try:
                line = self._line_until(deadline)
            except socket.timeout as e:
                if raw:
                    raise socket.timeout(f"timed out in the middle of a reply: {raw!r}; {e}")
                raise
            raw += line
            if not line.endswith(b"\r\n"):
                raise ProtocolError(f"reply line not terminated by CRLF: {line!r}")
            body = line[:-2]
            m = re.match(rb"^(\d{3})([ -]|$)(.*)$", body, re.S)
            if not m:
                raise ProtocolError(f"malformed reply line: {line!r} (reply so far {raw!r})")
            this_code = int(m.group(1))
            if code is not None and this_code != code:
                raise ProtocolError(f"reply code changed inside a multi-line reply: {raw!r}")
            code = this_code
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) != b"-":
                return Reply(code, lines, raw)

    def read_line(self, timeout: Optional[float] = None) -> bytes:
        return self._line_until(self._deadline(timeout))

    def reply(self, timeout: Optional[float] = None) -> Reply:
        """Reads one complete (possibly multi-line) reply."""
        return self._reply_until(self._deadline(timeout))

    def replies(self, n: int, timeout: Optional[float] = None) -> list:
        """Reads n replies; `timeout` bounds the whole batch."""
        deadline = self._deadline(timeout)
        out = []
        for _ in range(n):
            try:
                out.append(self._reply_until(deadline))
            except (socket.timeout, ConnectionClosed) as e:
                raise type(e)(f"got {len(out)} of {n} replies (last ones {[str(r) for r in out[-3:]]}); {e}") from e
        return out

    def cmd(self, line, timeout: Optional[float] = None) -> Reply:
        self.send_line(line)
        return self.reply(timeout)

    def banner(self) -> Reply:
        return self.reply()

    def ehlo(self, name: str = CLIENT_HELO) -> Reply:
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, f"EHLO failed: {r}"
        return r

    def greet(self, name: str = CLIENT_HELO) -> "SmtpClient":
        b = self.banner()
        assert b.code == 220, f"banner: {b}"
        self.ehlo(name)
        return self

    def pending(self, wait: float = 0.3) -> bytes:
        """Whatever the server sends within `wait` seconds (consumed)."""
        deadline = time.monotonic() + wait
        while not self.eof:
            try:
                self._fill(deadline)
            except (socket.timeout, ConnectionClosed):
                break
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def assert_silent(self, wait: float = 0.3) -> None:
        data = self.pending(wait)
        assert data == b"", f"server sent unexpected bytes: {data!r}"

    def wait_closed(self, timeout: float = 5.0) -> bytes:
        """Waits for EOF (or reset); returns unread bytes seen before it."""
        deadline = time.monotonic() + scaled(timeout)
        while not self.eof:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                break
            except socket.timeout:
                raise AssertionError(
                    f"server did not close the connection within {timeout}s; unread {bytes(self.buf)!r}"
                )
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Assertions on replies
# --------------------------------------------------------------------------


def expect(reply: Reply, code: int, enhanced: Optional[str] = None, *words: str) -> Reply:
    """Code, enhanced code and key words (case-insensitive) of a reply."""
    assert reply.code == code, f"expected {code} {enhanced or ''} {words}, got {reply!s}"
    if enhanced is not None:
        assert reply.enhanced == enhanced, f"expected enhanced code {enhanced}, got {reply!s}"
    low = reply.text.lower()
    for w in words:
        assert w.lower() in low, f"expected {w!r} in reply, got {reply!s}"
    return reply


def expect_line(reply: Reply, line: str) -> Reply:
    """Exact text of a one-line reply, e.g. '250 2.0.0 Ok'."""
    assert len(reply.lines) == 1 and reply.first == line, f"expected {line!r}, got {reply!s}"
    return reply


def expect_queued(reply: Reply) -> str:
    """'250 2.0.0 Ok: queued as <ID>' -> ID."""
    m = QUEUED_RE.match(reply.first) if len(reply.lines) == 1 else None
    assert m, f"expected '250 2.0.0 Ok: queued as <ID>', got {reply!s}"
    return m.group(1)


def queued_id_from_smtplib(code: int, resp: bytes) -> str:
    text = f"{code} {resp.decode('utf-8', 'replace')}"
    m = QUEUED_RE.match(text)
    assert m, f"expected '250 2.0.0 Ok: queued as <ID>', got {text!r}"
    return m.group(1)


# Exact texts from docs/PROTOCOL.md.
OK = "250 2.0.0 Ok"
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
DATA_GO = "354 End data with <CR><LF>.<CR><LF>"
BYE = "221 2.0.0 Bye"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first"
NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
NO_VALID_RCPT = "554 5.5.1 Error: no valid recipients"
UNKNOWN_CMD = "500 5.5.2 Error: command not recognized"
BAD_SYNTAX_CMD = "500 5.5.2 Error: bad command syntax"
LINE_TOO_LONG = "500 5.5.6 Error: line too long"
NOT_IMPLEMENTED = "502 5.5.1 Error: command not implemented"
TOO_BIG = "552 5.3.4 Error: message size exceeds fixed limit"
TOO_MANY_RCPTS = "452 4.5.3 Error: too many recipients"
BARE_CRLF = "550 5.6.0 Error: bare CR or LF in message (RFC 5321 2.3.8)"
DATA_LINE_TOO_LONG = "550 5.6.0 Error: message line too long"
BDAT_SYNTAX = "501 5.5.4 Syntax: BDAT size [LAST]"
DATA_AFTER_BDAT = "503 5.5.1 Error: DATA after BDAT"
HELP_TEXT = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"
VRFY_TEXT = "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RCPT = "501 5.1.3 Bad recipient address syntax"
MAIL_SYNTAX = "501 5.5.4 Syntax: MAIL FROM:<address>"
RCPT_SYNTAX = "501 5.5.4 Syntax: RCPT TO:<address>"


def too_many_errors(host: str = HOSTNAME) -> str:
    return f"421 4.7.0 {host} Error: too many errors"


def too_many_connections(host: str = HOSTNAME) -> str:
    return f"421 4.7.0 {host} Error: too many connections"


def timeout_exceeded(host: str = HOSTNAME) -> str:
    return f"421 4.4.2 {host} Error: timeout exceeded"


def shutting_down(host: str = HOSTNAME) -> str:
    return f"421 4.3.2 {host} Service shutting down"


def unsupported_option(name: str) -> str:
    return f"555 5.5.4 Unsupported option: {name}"


def bad_param_value(name: str) -> str:
    return f"501 5.5.4 Bad value for parameter {name}"


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------


def make_message(
    subject: str = "test",
    body: Iterable[str] = ("Hello.",),
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.net",
    date: bool = False,
    message_id: bool = False,
    extra_headers: Sequence[str] = (),
) -> bytes:
    """An RFC 5322 message with CRLF line ends, ending with CRLF."""
    headers = [f"From: <{sender}>", f"To: <{to}>", f"Subject: {subject}"]
    if date:
        headers.append("Date: Mon, 1 Jan 2024 00:00:00 +0000")
    if message_id:
        headers.append(f"Message-ID: <{subject.replace(' ', '.')}@client.sluice.test>")
    headers.extend(extra_headers)
    text = "\r\n".join(headers) + "\r\n\r\n" + "".join(line + "\r\n" for line in body)
    return text.encode("utf-8")


def dot_stuff(body: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2) for a CRLF message ending in CRLF."""
    out = re.sub(rb"(?m)^\.", b"..", body)
    return out


def check_stored(
    stored: bytes,
    qid: str,
    sent: bytes,
    *,
    esmtp: Optional[bool] = True,
    headers_added: Optional[bool] = None,
) -> bytes:
    """The stored message is Sluice's headers followed by exactly `sent`.

    Returns the prepended part. `esmtp`: the session began with EHLO (then
    the Received header must say "with ESMTP"). `headers_added`: True -> Date: and
    Message-ID: must be in the prepended part; False -> they must not be;
    None -> not checked.
    """
    assert stored.endswith(sent), (
        f"stored message of {qid} does not end with the bytes sent "
        f"(stored {len(stored)} bytes, sent {len(sent)}); stored tail {stored[-200:]!r}, "
        f"sent tail {sent[-200:]!r}"
    )
    prefix = stored[: len(stored) - len(sent)]
    assert prefix.startswith(b"Received:"), f"stored message of {qid} does not start with Received: {prefix[:300]!r}"
    assert prefix.endswith(b"\r\n"), f"prepended headers of {qid} do not end with CRLF: {prefix!r}"
    assert re.search(rb"(?<!\r)\n", prefix) is None, f"bare LF in the prepended headers of {qid}: {prefix!r}"
    if esmtp:
        assert b"with ESMTP" in prefix, f"Received header of {qid} lacks 'with ESMTP': {prefix!r}"
    else:  # a HELO session: RFC 3848 says "with SMTP"; accept either
        assert re.search(rb"with E?SMTP", prefix), f"Received header of {qid} lacks 'with SMTP': {prefix!r}"
    assert re.search(rb"\bid\s+<?" + qid.encode() + rb"\b", prefix), f"Received header lacks 'id {qid}': {prefix!r}"
    if headers_added is not None:
        has_date = re.search(rb"(?im)^Date:", prefix) is not None
        has_msgid = re.search(rb"(?im)^Message-ID:", prefix) is not None
        if headers_added:
            assert has_date and has_msgid, f"Date:/Message-ID: not added for {qid}: {prefix!r}"
        else:
            assert not has_date and not has_msgid, f"Date:/Message-ID: added although present, {qid}: {prefix!r}"
    return prefix


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------


@dataclass
class QueueEntry:
    id: str
    age: str
    size: int
    sender: str
    rcptcount: int
    line: str


class DaemonError(AssertionError):
    pass


def with_require_from(config: Optional[str], require_from: Optional[bool]) -> Optional[str]:
    """`config` with server.require_from set (None: left to Sluice's default, or
    to the config text when it names require_from itself)."""
    if require_from is None or (config is not None and "require_from" in config):
        return config
    line = f"require_from = {'true' if require_from else 'false'}"
    if config is None:
        return f"[server]\n{line}\n"
    if re.search(r"^\[server\][ \t]*$", config, re.M):
        return re.sub(r"^\[server\][ \t]*$", lambda m: f"{m.group(0)}\n{line}", config, count=1,
                      flags=re.M)
    return config.rstrip("\n") + f"\n\n[server]\n{line}\n"


class Sluice:
    """One `sluice serve` process. Use through the `sluice_factory` fixture."""

    def __init__(
        self,
        workdir: Path,
        *,
        spool: Optional[Path] = None,
        log: Optional[Path] = None,
        config: Optional[str] = None,
        args: Sequence[str] = (),
        shards: int = 2,
        hostname: str = HOSTNAME,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_recipients: Optional[int] = 1000,
        relay_from: Optional[str] = None,
        listen_hosts: Sequence[str] = ("127.0.0.1",),
        delivery: bool = False,
        require_from: Optional[bool] = False,
        http: bool = True,
    ):
        self.bin = require_sluice_bin()
        # Ingestion tests keep their mail queued: without --no-delivery the
        # daemon would resolve test domains through /etc/resolv.conf.
        self.delivery = delivery
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.spool = spool or (workdir / "spool")
        self.spool.mkdir(parents=True, exist_ok=True)
        self.log_path = log or (workdir / "accounting.log")
        self.stderr_path = workdir / "stderr.txt"
        self.stdout_path = workdir / "stdout.txt"
        # server.require_from defaults to true in Sluice; most tests send bare
        # "Subject: x" fragments, so the harness turns it off unless a test
        # asks for it (require_from=True) or for Sluice's default (None).
        self.config_text = with_require_from(config, require_from)
        self.config_path = workdir / "sluice.toml" if self.config_text is not None else None
        self.extra_args = list(args)
        self.shards = shards
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.relay_from = relay_from
        self.listen_hosts = list(listen_hosts)
        self.ports: dict = {}
        # The HTTP listener (docs/HTTP.md) gets a free port of its own, so
        # that relays never share the default 127.0.0.1:8025; http=False
        # leaves http.listen to the configuration.
        self.http = http
        self.http_port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.expected_exit = False
        self.returncode: Optional[int] = None
        self._clients: list = []

    # -- life cycle ------------------------------------------------------
    def command(self) -> list:
        cmd = [str(self.bin), "serve"]
        for host in self.listen_hosts:
            cmd += ["--listen", listen_spec(host, self.ports[host])]
        cmd += ["--spool", str(self.spool), "--shards", str(self.shards), "--log", str(self.log_path)]
        cmd += ["--hostname", self.hostname]
        if self.http:
            cmd += ["--http", f"127.0.0.1:{self.http_port}"]
        if self.relay_from is not None:
            cmd += ["--relay-from", self.relay_from]
        if self.max_message_size is not None:
            cmd += ["--max-message-size", str(self.max_message_size)]
        if self.max_recipients is not None:
            cmd += ["--max-recipients", str(self.max_recipients)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        if not self.delivery:
            cmd += ["--no-delivery"]
        cmd += self.extra_args
        return cmd

    def admin(self, line: str, timeout: float = 10.0) -> list:
        """Sends one control command to every shard's socket (server/control_socket.h);
        returns the replies, shard by shard."""
        replies = []
        for n in range(self.shards):
            path = self.spool / "control" / f"{n}.sock"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(scaled(timeout))
                s.connect(str(path))
                s.sendall(line.encode() + b"\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            replies.append(data.decode())
        return replies

    def start(self, ready_timeout: float = 20.0) -> "Sluice":
        if self.config_path is not None:
            self.config_path.write_text(self.config_text)
        last_err = ""
        for _attempt in range(3):
            self.ports = {h: free_port(h) for h in self.listen_hosts}
            self.http_port = None
            while self.http and self.http_port in (None, *self.ports.values()):
                # free_port() can hand out the port it just gave the SMTP
                # listener (both are closed again before sluice binds them).
                self.http_port = free_port("127.0.0.1")
            self.expected_exit = False
            self.returncode = None
            with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
                err.write(f"=== {' '.join(self.command())}\n".encode())
                err.flush()
                self._stderr_offset = err.tell()
                self.proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True
                )
            try:
                self.wait_ready(ready_timeout)
                return self
            except DaemonError as e:
                last_err = str(e)
                if self.proc.poll() is None:
                    self._terminate()
                    raise
                if "in use" not in last_err.lower():
                    raise
        raise DaemonError(f"could not start sluice (port collisions?): {last_err}")

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            text = self.stderr_since_start()
            if READY_KEY in text:
                return
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise DaemonError(
                    f"sluice exited with {self.proc.returncode} before its ready line ({READY_KEY.strip()}); "
                    f"command {' '.join(self.command())}; stderr:\n{text[-3000:]}"
                )
            time.sleep(0.02)
        raise DaemonError(f"sluice did not print its ready line ({READY_KEY.strip()}) within {timeout}s; stderr:\n{self.stderr_since_start()[-3000:]}")

    def stderr_since_start(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(getattr(self, "_stderr_offset", 0))
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.ports[self.listen_hosts[0]]

    @property
    def host(self) -> str:
        return self.listen_hosts[0]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise DaemonError(f"sluice died (exit {self.proc.returncode}); stderr:\n{self.stderr_tail()}")

    def signal(self, sig: int) -> None:
        self.expected_exit = True
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        """Waits for the process to exit; raises AssertionError on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sluice (pid {self.proc.pid}) did not exit within {timeout}s")
        return self.returncode

    def _terminate(self, timeout: float = 10.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.returncode = self.proc.returncode
        return self.returncode

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns the exit status."""
        self.expected_exit = True
        self.close_clients()
        return self._terminate(timeout)

    def kill9(self) -> None:
        self.expected_exit = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode

    # -- clients ---------------------------------------------------------
    def connect(self, host: Optional[str] = None, timeout: float = 10.0) -> SmtpClient:
        host = host or self.host
        c = SmtpClient(host, self.ports[host], timeout=timeout)
        self._clients.append(c)
        return c

    def session(self, helo: str = CLIENT_HELO, host: Optional[str] = None) -> SmtpClient:
        """Connected, banner read, EHLO done."""
        return self.connect(host).greet(helo)

    def smtp(self, timeout: float = 30.0, host: Optional[str] = None) -> smtplib.SMTP:
        host = host or self.host
        s = smtplib.SMTP(host, self.ports[host], local_hostname=CLIENT_HELO, timeout=scaled(timeout))
        self._clients.append(s)
        return s

    def close_clients(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        self._clients.clear()

    # -- spool and CLI ---------------------------------------------------
    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin), *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(timeout)
        )

    def queue_list(self) -> list:
        """The spool's messages (`queue messages --json --spool-only`: the files,
        whether or not the daemon runs) as QueueEntry(id, age, size, sender,
        rcptcount, line)."""
        entries = []
        for m in self.queue_json():
            assert ID_RE.match(m["id"]), f"bad queue id in queue messages: {m!r}"
            entries.append(QueueEntry(m["id"], f"{m['age_s']}s", m["size"], m["sender"] or "<>",
                                      len(m["recipients"]), json.dumps(m)))
        return entries

    def queue_ids(self) -> set:
        return {e.id for e in self.queue_list()}

    def queue_json(self) -> list:
        r = self.cli("queue", "messages", "--spool", str(self.spool), "--json", "--spool-only")
        assert r.returncode == 0, f"sluice queue messages --json failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
        return json.loads(r.stdout.decode("utf-8"))  # one JSON array

    def queue_json_by_id(self) -> dict:
        return {m["id"]: m for m in self.queue_json()}

    def queue_show(self, qid: str, timeout: float = 60.0) -> bytes:
        r = self.cli("queue", "show", "--spool", str(self.spool), qid, "--body", timeout=timeout)
        assert r.returncode == 0, f"sluice queue show {qid} failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
        return r.stdout

    def tmp_files(self) -> list:
        return sorted(str(p) for p in self.spool.rglob("*.tmp"))

    def msg_files(self) -> list:
        return sorted(self.spool.glob("*/*.msg"))

    def corrupt_files(self) -> list:
        d = self.spool / "corrupt"
        return sorted(str(p) for p in d.iterdir()) if d.is_dir() else []

    def wait_no_tmp(self, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            tmps = self.tmp_files()
            if not tmps or time.monotonic() > deadline:
                return tmps
            time.sleep(0.05)

    # -- accounting log --------------------------------------------------
    def log_records(self) -> list:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n")[:-1]:  # only complete lines
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise AssertionError(f"accounting log line is not JSON: {line[:300]!r}: {e}")
        return out

    def reception_records(self) -> list:
        return [r for r in self.log_records() if r.get("type") == "Reception"]

    def wait_reception_ids(self, ids: Iterable[str], timeout: float = 10.0) -> dict:
        """Waits until every id has a Reception record; returns id -> record."""
        want = set(ids)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            recs = {r.get("id"): r for r in self.reception_records()}
            if want <= set(recs) or time.monotonic() > deadline:
                return recs
            time.sleep(0.1)


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
