"""Real peers for the delivery integration tests (issue 4): a DNS server, scripted
SMTP receivers and sluice-sink, all on loopback. Fixtures: conftest_delivery.py.

DnsServer (fixture `dns_server`)
    Debian's dnsmasq on 127.0.0.1 at a free high port (UDP and TCP), answering
    only from its configuration for the zone `test`:

        dns_server.mx("d1.test", [(10, "mx1.d1.test"), (20, "mx2.d1.test")])
        dns_server.a("mx1.d1.test", "127.0.0.2")      # repeat for more addresses
        dns_server.aaaa("mx6.d1.test", "::1")
        dns_server.null_mx("null.test")                 # RFC 7505: MX 0 "."
        dns_server.apply()                              # write the config, (re)start
        args = ["--dns", dns_server.spec]               # "127.0.0.1:PORT"

    A name under `test` that is not configured is NXDOMAIN; a configured name
    without the asked type is NOERROR with no answer (so an A-only domain has
    an implicit MX). Names outside the zone are NXDOMAIN too (`local=/#/`;
    `outside="refused"` gives dnsmasq's REFUSED instead). Answers carry no
    SOA, so a resolver caches NXDOMAIN/NODATA for its own default negative
    TTL; positive TTLs are `ttl` (default 1 s).
    dnsmasq reads its configuration only at start (SIGHUP rereads hosts files,
    not --mx-host), so apply() restarts it on the SAME port: queries in that
    window of a few ms get ICMP port-unreachable. It runs with
    --keep-in-foreground, not --no-daemon: with --no-daemon dnsmasq serves TCP
    in its main process and stops answering UDP while a client keeps a TCP
    connection open (see tests/dns/resolver_test.cc). As root it drops to the
    user nobody after reading the configuration. --log-queries goes to
    `dns_server.log_path`; `dns_server.queries()` parses it. Stopped by PID
    (SIGTERM; dnsmasq then ends its TCP children) at fixture teardown.
    `dns_query()` is a small stub resolver (UDP, or TCP) for the self-tests.

DeadDns (fixture `dead_dns`)
    A UDP socket (and a TCP listener on the same port) on 127.0.0.1 that
    never answers: `dead_dns.spec`, `dead_dns.queries()` counts packets seen.

ScriptedReceiver (fixture `receiver_factory`)
    A small asyncio SMTP server written here (the `receiver` entry point at the
    bottom of this file), run as its own /usr/bin/python3 subprocess on a
    chosen 127.0.0.x address and port, so it cannot deadlock the tests. Not
    aiosmtpd: aiosmtpd 1.4 hard-codes the 220 greeting (no 421 at connect),
    reads the whole DATA body before any hook runs (no drop mid-DATA), never
    advertises PIPELINING, and writes replies only from handler return values
    (no multi-line greeting or EHLO variations, no delayed 354). The framing
    here is strict and recorded rather than forgiving:
      - commands are lines ending in CRLF; a bare LF ends a line but is
        recorded as a violation;
      - DATA ends only at CRLF "." CRLF (a "." line after a bare-LF line is
        data); one leading dot is removed from lines starting with "."; bare
        CR/LF in the body and lines over 1000 octets are violations;
      - pipelined commands are processed in order; a command whose successor
        was already received before its reply was sent is marked `pipelined`
        (never a false positive; segments arriving later are not seen as
        pipelined). Without PIPELINING advertised that is a violation, and so
        is anything sent after DATA before the 354.
    Behaviour is chosen at start (see RECEIVER_OPTIONS below):

        r = receiver_factory("127.0.0.2", tempfail_first=True, permfail=["bad*@*"])
        r.messages()           # accepted transactions, with the body as bytes
        r.connections()        # per connection: peer, open count, commands, ...
        r.peak_connections()   # most TCP connections open at once
        r.violations()         # protocol violations by the client

    Every event is a JSON line in `r.record_path`, written as it happens, so
    connections the client keeps open are visible too, and written BEFORE
    the reply it concerns leaves: once a client has read a reply (or the 221
    or 421 before a close), its record is in the file. Only closes by the
    client are recorded after the fact (wait_for them). Times are
    time.monotonic() (CLOCK_MONOTONIC: comparable with the test process).
    tempfail_first counts RCPTs per address within one receiver process:
    two MX receivers of one domain each defer an address's first attempt.
    The fixture fails a passing test at teardown when a receiver saw a
    violation (check_clean=False to allow), or when a receiver died.

SinkPeer (fixture `sink_factory`)
    build/tools/sluice-sink (docs/TOOLS.md) on 127.0.0.x with --store and
    --stats-json; `sink.stored()` gives the messages, `sink.stats()` the
    counters. For volume (it is C++ and digest-checks sluice-blast mail).

delivery_world (fixture)
    All of the above wired: MX records for some domains pointing at loopback
    addresses, a receiver (or sink, or nothing) on each address, one shared
    port, and `world.sluice_args()` == ["--dns", "127.0.0.1:D", "--mx-port", "P"]
    or `world.delivery_toml()` == '[delivery]\\ndns = ["127.0.0.1:D"]\\nmx_port = P\\n'
    (sluice.toml's keys, src/config/delivery_table.cc).
    MX host names are generated: 127.0.0.2 is "mx-127-0-0-2.test".

Ports: one free port per test (fixture `mx_port`), the same on every
127.0.0.x host, because the relay under test uses one --mx-port for all MX
hosts. Linux answers all of 127/8 on lo.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import ipaddress
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

if __name__ != "__main__":
    # The receiver subprocess needs only the standard library (and starts faster
    # without pytest); the test side uses the suite's helpers.
    from sluice_harness import scaled, sluice_bin

HERE = Path(__file__).resolve()
PYTHON = "/usr/bin/python3"
DEFAULT_ZONE = "test"


def dnsmasq_bin() -> str:
    return os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")


def tools_dir() -> Path:
    env = os.environ.get("SLUICE_TOOLS_DIR")
    return Path(env) if env else sluice_bin().parent / "tools"


class PeerError(AssertionError):
    """A peer could not be started or misbehaved; the message says why."""


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port above 10000 free for both UDP and TCP on `host` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
        if port > 10000:
            return port
    raise PeerError("no free UDP+TCP port found in 50 attempts")


def free_mx_port() -> int:
    """A TCP port free on every 127.0.0.x address: free on the wildcard."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", 0))
            port = s.getsockname()[1]
        if port > 10000:
            return port
    raise PeerError("no free TCP port found in 50 attempts")


def _stop_pid(proc: Optional[subprocess.Popen], grace: float = 5.0) -> Optional[int]:
    """SIGTERM, wait `grace` s, SIGKILL: only this one process, by its PID."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    return proc.returncode


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------
# A tiny stub resolver (self-tests; no dig on the machine)
# --------------------------------------------------------------------------

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsAnswer:
    """A parsed response: rcode, flags, answer records as (name, type, ttl, data).

    data: A/AAAA -> address string; MX -> (preference, exchange) with the root
    as "."; CNAME/NS -> name; other types -> raw bytes."""

    def __init__(self, rcode: int, truncated: bool, authoritative: bool, answers: list, additional: list):
        self.rcode = rcode
        self.truncated = truncated
        self.authoritative = authoritative
        self.answers = answers
        self.additional = additional

    @property
    def rcode_name(self) -> str:
        return RCODES.get(self.rcode, str(self.rcode))

    def of_type(self, qtype: str) -> list:
        t = QTYPES[qtype]
        return [r for r in self.answers if r[1] == t]

    def mx(self) -> list:
        """[(preference, exchange)] sorted."""
        return sorted(r[3] for r in self.of_type("MX"))

    def addresses(self) -> list:
        return sorted(r[3] for r in self.answers if r[1] in (1, 28))

    def ttls(self) -> list:
        return [r[2] for r in self.answers]

    def __repr__(self) -> str:
        return f"DnsAnswer({self.rcode_name}, tc={self.truncated}, answers={self.answers})"


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _decode_name(msg: bytes, off: int) -> tuple:
    """(name, offset after the name in place). Follows compression pointers."""
    labels = []
    end = None
    for _ in range(128):  # bounded: a pointer loop is a malformed message
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        if n == 0:
            name = ".".join(labels) if labels else "."
            return name, (end if end is not None else off + 1)
        labels.append(msg[off + 1 : off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    raise PeerError("DNS name with a compression loop")


def _parse_rr(msg: bytes, off: int) -> tuple:
    name, off = _decode_name(msg, off)
    rtype, _rclass, ttl, rdlen = struct.unpack(">HHIH", msg[off : off + 10])
    off += 10
    rdata = msg[off : off + rdlen]
    if rtype == 1 and rdlen == 4:
        data = socket.inet_ntop(socket.AF_INET, rdata)
    elif rtype == 28 and rdlen == 16:
        data = socket.inet_ntop(socket.AF_INET6, rdata)
    elif rtype == 15:
        pref = struct.unpack(">H", rdata[:2])[0]
        data = (pref, _decode_name(msg, off + 2)[0])
    elif rtype in (2, 5):
        data = _decode_name(msg, off)[0]
    else:
        data = bytes(rdata)
    return (name.lower(), rtype, ttl, data), off + rdlen


def dns_query(server: tuple, name: str, qtype: Union[str, int] = "A", *, tcp: bool = False,
              timeout: float = 2.0) -> DnsAnswer:
    """One query to server=(host, port), recursion desired; raises
    socket.timeout when nothing answers within `timeout`."""
    t = QTYPES[qtype] if isinstance(qtype, str) else qtype
    qid = random.randrange(1 << 16)
    pkt = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack(">HH", t, 1)
    deadline = time.monotonic() + timeout
    if tcp:
        with socket.create_connection(server, timeout=timeout) as s:
            s.sendall(struct.pack(">H", len(pkt)) + pkt)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    raise PeerError(f"DNS server closed the TCP connection after {len(data)} bytes")
                data += chunk
            resp = data[2 : 2 + struct.unpack(">H", data[:2])[0]]
    else:
        with socket.socket(socket.AF_INET6 if ":" in server[0] else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(pkt, server)
            while True:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                resp = s.recv(65536)
                if len(resp) >= 12 and struct.unpack(">H", resp[:2])[0] == qid:
                    break
    rid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", resp[:12])
    if rid != qid or not flags & 0x8000:
        raise PeerError(f"not a response to query {qid}: {resp[:12]!r}")
    off = 12
    for _ in range(qd):
        _, off = _decode_name(resp, off)
        off += 4
    answers, additional = [], []
    for _ in range(an):
        rr, off = _parse_rr(resp, off)
        answers.append(rr)
    for _ in range(ns):
        _, off = _parse_rr(resp, off)
    for _ in range(ar):
        rr, off = _parse_rr(resp, off)
        additional.append(rr)
    return DnsAnswer(flags & 0xF, bool(flags & 0x0200), bool(flags & 0x0400), answers, additional)


# --------------------------------------------------------------------------
# dnsmasq
# --------------------------------------------------------------------------

_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def _check_name(name: str, what: str) -> str:
    n = name.strip().lower().rstrip(".")
    if not n or len(n) > 253 or not all(_LABEL_RE.match(label) for label in n.split(".")):
        raise ValueError(f"{what} {name!r} is not a valid DNS name")
    return n


class DnsServer:
    """dnsmasq serving a test zone; see the module docstring."""

    def __init__(self, workdir: Path, *, zones: Sequence[str] = (DEFAULT_ZONE,), ttl: int = 1,
                 outside: str = "nxdomain", host: str = "127.0.0.1"):
        if outside not in ("nxdomain", "refused"):
            raise ValueError(f"outside must be 'nxdomain' or 'refused', not {outside!r}")
        if not 0 <= ttl <= 86400:
            raise ValueError(f"ttl {ttl} out of range")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.zones = [_check_name(z, "zone") for z in zones]
        self.ttl = ttl
        self.outside = outside
        self.host = host
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.conf_path = self.workdir / "dnsmasq.conf"
        self.log_path = self.workdir / "dnsmasq.log"
        self._mx: dict = {}  # domain -> [(pref, host)], or "null"
        self._addrs: dict = {}  # name -> [ip, ...] (v4 and v6)
        self._dirty = True
        self.restarts = 0

    # -- the zone ---------------------------------------------------------
    def _owner(self, name: str) -> str:
        n = _check_name(name, "owner name")
        if not any(n == z or n.endswith("." + z) for z in self.zones):
            raise ValueError(f"{name!r} is outside the served zones {self.zones}")
        return n

    def mx(self, domain: str, records: Iterable) -> "DnsServer":
        """Sets (replaces) the MX records of `domain`: [(preference, host), ...]."""
        d = self._owner(domain)
        recs = []
        for rec in records:
            pref, host = rec
            if not isinstance(pref, int) or not 0 <= pref <= 65535:
                raise ValueError(f"MX preference {pref!r} of {domain} is not 0..65535")
            if host.strip() == ".":
                raise ValueError("use null_mx() for MX 0 '.'")
            recs.append((pref, _check_name(host, "MX host")))
        if not recs:
            raise ValueError(f"no MX records for {domain}; use remove() or null_mx()")
        self._mx[d] = recs
        self._dirty = True
        return self

    def null_mx(self, domain: str) -> "DnsServer":
        """RFC 7505: the single record MX 0 "." (the domain accepts no mail)."""
        self._mx[self._owner(domain)] = "null"
        self._dirty = True
        return self

    def _addr(self, name: str, ip: Union[str, Sequence[str]], version: int) -> "DnsServer":
        n = self._owner(name)
        for one in [ip] if isinstance(ip, str) else list(ip):
            a = ipaddress.ip_address(one)
            if a.version != version:
                raise ValueError(f"{one} is not an IPv{version} address")
            self._addrs.setdefault(n, [])
            if str(a) not in self._addrs[n]:
                self._addrs[n].append(str(a))
        self._dirty = True
        return self

    def a(self, name: str, ip: Union[str, Sequence[str]]) -> "DnsServer":
        """Adds A record(s) for `name`."""
        return self._addr(name, ip, 4)

    def aaaa(self, name: str, ip: Union[str, Sequence[str]]) -> "DnsServer":
        """Adds AAAA record(s) for `name`."""
        return self._addr(name, ip, 6)

    def remove(self, name: str) -> "DnsServer":
        """Drops every record of `name` (then NXDOMAIN, after apply())."""
        n = self._owner(name)
        self._mx.pop(n, None)
        self._addrs.pop(n, None)
        self._dirty = True
        return self

    def config_text(self) -> str:
        lines = [f"local=/{z}/" for z in self.zones]
        if self.outside == "nxdomain":
            lines.append("local=/#/")
        lines.append(f"local-ttl={self.ttl}")
        for d, recs in sorted(self._mx.items()):
            if recs == "null":
                lines.append(f"mx-host={d},.,0")
            else:
                lines += [f"mx-host={d},{h},{p}" for p, h in recs]
        for n, ips in sorted(self._addrs.items()):
            lines += [f"host-record={n},{ip}" for ip in ips]
        return "\n".join(lines) + "\n"

    # -- the process ------------------------------------------------------
    def _command(self) -> list:
        return [
            dnsmasq_bin(), "--keep-in-foreground", "--pid-file", "--no-resolv", "--no-hosts",
            "--bind-interfaces", f"--listen-address={self.host}", f"--port={self.port}",
            f"--conf-file={self.conf_path}", "--log-queries", "--log-facility=-",
        ]

    def _spawn(self, timeout: float) -> bool:
        """Starts dnsmasq on self.port; False if it exited (port taken)."""
        with open(self.log_path, "ab") as log:
            log.write(f"=== {' '.join(self._command())}\n".encode())
            log.flush()
            offset = log.tell()
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log, close_fds=True)
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                started = b"started, version" in f.read()
            if started and self._port_taken():
                return True
            time.sleep(0.01)
        _stop_pid(self.proc)
        raise PeerError(f"dnsmasq did not come up within {timeout}s on port {self.port}:\n{_tail(self.log_path)}")

    def _port_taken(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((self.host, self.port))
                return False
            except OSError:
                return True

    def apply(self, timeout: float = 5.0) -> "DnsServer":
        """Writes the configuration and starts dnsmasq, or restarts it on the
        same port (dnsmasq does not reread --mx-host on SIGHUP)."""
        if not os.access(dnsmasq_bin(), os.X_OK):
            raise PeerError(f"{dnsmasq_bin()} missing (Debian package dnsmasq-base; tools/deps.sh)")
        self.conf_path.write_text(self.config_text())
        first = self.port is None
        if self.proc is not None:
            _stop_pid(self.proc)
            self.restarts += 1
        for _attempt in range(5 if first else 50):
            if first:
                self.port = free_udp_tcp_port(self.host)
            if self._spawn(timeout):
                self._dirty = False
                return self
            if not first:
                time.sleep(0.05)  # the same port: wait for whoever holds it
        raise PeerError(f"dnsmasq could not start (port {self.port}):\n{_tail(self.log_path)}")

    start = apply

    def stop(self) -> Optional[int]:
        rc = _stop_pid(self.proc)
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def address(self) -> tuple:
        if self._dirty:
            raise PeerError("DnsServer has changes not applied: call dns.apply() first")
        if not self.alive():
            raise PeerError(f"dnsmasq is not running:\n{_tail(self.log_path)}")
        return (self.host, self.port)

    @property
    def spec(self) -> str:
        """'127.0.0.1:PORT' for sluice's --dns."""
        host, port = self.address
        return f"{host}:{port}"

    def query(self, name: str, qtype: str = "A", **kw) -> DnsAnswer:
        return dns_query(self.address, name, qtype, **kw)

    def log_text(self) -> str:
        return _tail(self.log_path, 1 << 22)

    def queries(self) -> list:
        """[(qtype, name)] from the query log, oldest first."""
        return [(m.group(1), m.group(2).lower()) for m in
                re.finditer(r"query\[(\w+)\] (\S+) from ", self.log_text())]


class DeadDns:
    """127.0.0.1:PORT that takes DNS queries (UDP, and TCP connections into the
    backlog) and never answers."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = free_udp_tcp_port(host)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.udp.setblocking(False)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind((host, self.port))
        self.tcp.listen(64)
        self._seen = 0

    @property
    def address(self) -> tuple:
        return (self.host, self.port)

    @property
    def spec(self) -> str:
        return f"{self.host}:{self.port}"

    def queries(self) -> int:
        """UDP packets received so far (drains the socket; bounded)."""
        for _ in range(100000):
            try:
                self.udp.recv(65536)
            except BlockingIOError:
                break
            self._seen += 1
        return self._seen

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


# --------------------------------------------------------------------------
# ScriptedReceiver: the test side
# --------------------------------------------------------------------------

# Behaviour options of a receiver, with their defaults. "count" options take
# False/0 (off), True (always) or N (only the first N times).
RECEIVER_OPTIONS = {
    "hostname": None,  # greeting / EHLO name; default "mx-<ip>.test"
    # RCPT
    "tempfail_first": False,  # True or [globs]: 451 4.3.0 to each address's first RCPT, 250 later
    "permfail": [],  # globs: 550 5.1.1
    "tempfail": [],  # globs: 451 4.7.1
    "rcpt_rules": [],  # [[glob, "NNN x.y.z text"], ...] checked first; a 421 also closes
    "max_rcpts": 0,  # >0: 452 4.5.3 past this many accepted RCPTs in one transaction
    # connection
    "connect_421": False,  # count: greeting "421 4.3.2 ..." then close
    "max_connections": 0,  # >0: "421 4.7.0 ... too many connections" past this many open
    "idle_timeout_s": 120.0,  # 421 4.4.2 and close after this long without a command
    # DATA
    "drop_during_data": False,  # count: close, no reply, once drop_after_bytes of body arrived
    "drop_after_bytes": 1,
    "data_reply": None,  # "NNN x.y.z text" as the final reply instead of 250 ...
    "data_reply_count": True,  # count for data_reply
    "size_limit": 52428800,  # SIZE advertised; 552 5.3.4 past it (MAIL SIZE= or body)
    # replies
    "no_ehlo": False,  # EHLO -> 502 5.5.1; the client must fall back to HELO
    "no_pipelining": False,  # do not advertise PIPELINING
    "extensions": None,  # EHLO keywords replacing the default list
    "multiline": False,  # every reply multi-line: "250-first", "250-...", "250 last"
    "slow_reply": {},  # {stage: ms}: hold the reply of that stage (stages below)
    "slow_reply_count": True,  # count for slow_reply (per stage)
}
STAGES = ("greeting", "ehlo", "helo", "mail", "rcpt", "data", "data_end", "rset", "noop", "quit")


def _count_json(v) -> int:
    """Count option -> JSON: 0 off, -1 always, N first N."""
    if v is True:
        return -1
    if v is False or v is None:
        return 0
    if isinstance(v, int) and v >= 0:
        return v
    raise ValueError(f"a count option takes True, False or N >= 0, not {v!r}")


def default_mx_name(ip: str) -> str:
    return "mx-" + ip.replace(".", "-").replace(":", "-") + "." + DEFAULT_ZONE


class ScriptedReceiver:
    """One receiver subprocess on host:port. Use via `receiver_factory`."""

    def __init__(self, workdir: Path, host: str, port: int, **options):
        unknown = set(options) - set(RECEIVER_OPTIONS)
        if unknown:
            raise ValueError(f"unknown receiver options {sorted(unknown)}; known: {sorted(RECEIVER_OPTIONS)}")
        opts = {**RECEIVER_OPTIONS, **options}
        for stage in opts["slow_reply"]:
            if stage not in STAGES:
                raise ValueError(f"slow_reply stage {stage!r} is not one of {STAGES}")
        for key in ("data_reply",):
            if opts[key] is not None and not re.match(r"^[2-5]\d\d [ -~]*$", opts[key]):
                raise ValueError(f"{key} must be 'NNN text', not {opts[key]!r}")
        for glob, reply in opts["rcpt_rules"]:
            if not re.match(r"^[2-5]\d\d [ -~]*$", reply):
                raise ValueError(f"rcpt_rules reply must be 'NNN text', not {reply!r}")
        tf = opts["tempfail_first"]
        globs = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self.record_path = self.workdir / "records.jsonl"
        self.stderr_path = self.workdir / "stderr.txt"
        self.config_path = self.workdir / "config.json"
        self.store_dir = self.workdir / "messages"
        self.check_clean = True
        self.config = {
            "host": host,
            "port": port,
            "hostname": opts["hostname"] or default_mx_name(host),
            "record": str(self.record_path),
            "store_dir": str(self.store_dir),
            "parent_pid": os.getpid(),
            "tempfail_first": ["*"] if tf is True else ([] if not tf else globs(tf)),
            "permfail": globs(opts["permfail"]),
            "tempfail": globs(opts["tempfail"]),
            "rcpt_rules": [list(r) for r in opts["rcpt_rules"]],
            "max_rcpts": int(opts["max_rcpts"]),
            "connect_421": _count_json(opts["connect_421"]),
            "max_connections": int(opts["max_connections"]),
            "idle_timeout_s": float(opts["idle_timeout_s"]),
            "drop_during_data": _count_json(opts["drop_during_data"]),
            "drop_after_bytes": max(1, int(opts["drop_after_bytes"])),
            "data_reply": opts["data_reply"],
            "data_reply_count": _count_json(opts["data_reply_count"]),
            "size_limit": int(opts["size_limit"]),
            "no_ehlo": bool(opts["no_ehlo"]),
            "no_pipelining": bool(opts["no_pipelining"]),
            "extensions": opts["extensions"],
            "multiline": bool(opts["multiline"]),
            "slow_reply": {k: int(v) for k, v in opts["slow_reply"].items()},
            "slow_reply_count": _count_json(opts["slow_reply_count"]),
        }
        self.proc: Optional[subprocess.Popen] = None
        self.expected_exit = False

    @property
    def hostname(self) -> str:
        return self.config["hostname"]

    def start(self, timeout: float = 10.0) -> "ScriptedReceiver":
        self.config_path.write_text(json.dumps(self.config, indent=1))
        self.store_dir.mkdir(exist_ok=True)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen([PYTHON, str(HERE), "receiver", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         close_fds=True)
        deadline = time.monotonic() + scaled(timeout)
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                _stop_pid(self.proc)
                raise PeerError(f"receiver on {self.host}:{self.port} not ready in {timeout}s:\n"
                                f"{_tail(self.stderr_path)}")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                b = os.read(self.proc.stdout.fileno(), 1)
                if not b:
                    self.proc.wait(timeout=5)
                    raise PeerError(f"receiver on {self.host}:{self.port} exited with {self.proc.returncode} before "
                                    f"'ready':\n{_tail(self.stderr_path)}")
                line += b
        if line != b"ready\n":
            _stop_pid(self.proc)
            raise PeerError(f"receiver said {line!r} instead of 'ready'")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> Optional[int]:
        self.expected_exit = True
        rc = _stop_pid(self.proc)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc

    def kill9(self) -> None:
        """The MX host crashes: SIGKILL (by PID), connections reset."""
        self.expected_exit = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)

    # -- reading the record ----------------------------------------------
    def records(self) -> list:
        try:
            data = self.record_path.read_bytes()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]

    def transactions(self) -> list:
        """Every transaction that reached DATA: status accepted / rejected /
        dropped / lost. `body` is the received body as bytes (unstuffed;
        partial for dropped and lost)."""
        out = []
        for r in self.records():
            if r["type"] == "message":
                r["body"] = base64.b64decode(r.pop("body_b64"))
                out.append(r)
        return out

    def messages(self) -> list:
        """Accepted transactions (the final reply was 2xx), in order. Keys: id,
        conn, peer, local, helo, esmtp, mail_from, mail_params, rcpts,
        rcpts_refused, body, size, sha256, t (per stage), reply, reply_sent,
        eml. reply_sent is False when the client had gone before a delayed
        final reply: the message was received, the client will retry it."""
        return [t for t in self.transactions() if t["status"] == "accepted"]

    def connections(self) -> list:
        """Per connection, in order: conn, peer, local, t_open, open (TCP
        connections open at this one's accept, itself included), refused
        (None, "max-connections" or "421-connect"), commands ([{t, cmd,
        code, reply, pipelined, delayed_ms}]), and once closed t_close and
        reason (quit, client-closed, dropped, refused, idle-timeout, 421)."""
        conns: dict = {}
        for r in self.records():
            if r["type"] == "connect":
                conns[r["conn"]] = {**r, "commands": [], "violations": [], "t_close": None, "reason": None}
            elif r["type"] == "cmd":
                conns[r["conn"]]["commands"].append(r)
            elif r["type"] == "violation":
                conns[r["conn"]]["violations"].append(r["what"])
            elif r["type"] == "close":
                conns[r["conn"]].update(t_close=r["t"], reason=r["reason"])
        for c in conns.values():
            c.pop("type", None)
        return [conns[k] for k in sorted(conns)]

    def open_connections(self) -> int:
        return sum(1 for c in self.connections() if c["t_close"] is None)

    def peak_connections(self) -> int:
        """Most TCP connections open at once (refused ones included)."""
        return max((c["open"] for c in self.connections()), default=0)

    def commands(self, verb: Optional[str] = None) -> list:
        """Every command line received, in order (optionally one verb); the
        final "." of DATA is included."""
        out = [r["cmd"] for r in self.records() if r["type"] == "cmd" and r["cmd"] is not None
               and r["stage"] != "idle" and not r["cmd"].startswith("<")]
        if verb is not None:
            out = [c for c in out if c.split(" ", 1)[0].upper() == verb.upper()]
        return out

    def rcpt_attempts(self, address: str) -> int:
        """RCPT commands seen for `address` (case-insensitive)."""
        a = address.lower()
        return sum(1 for c in self.commands("RCPT") if _addr_of(c).lower() == a)

    def violations(self) -> list:
        return [f"conn {r['conn']}: {r['what']}" for r in self.records() if r["type"] == "violation"]

    def errors(self) -> list:
        """Internal errors of the receiver itself (a bug here, not in sluice)."""
        return [r["what"] for r in self.records() if r["type"] == "error"]

    def assert_clean(self) -> None:
        v = self.violations()
        assert not v, f"receiver {self.host}:{self.port} saw protocol violations: {v[:20]}"
        e = self.errors()
        assert not e, f"receiver {self.host}:{self.port} internal errors: {e[:5]}"

    def wait_messages(self, n: int, timeout: float = 10.0) -> list:
        """Waits for at least n accepted messages; returns them."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(msgs)} of {n} messages at {self.host}:{self.port} after {timeout}s")
            time.sleep(0.05)

    def stderr_tail(self, n: int = 3000) -> str:
        return _tail(self.stderr_path, n)


def _addr_of(cmd: str) -> str:
    m = re.search(r"<([^<>]*)>", cmd)
    return m.group(1) if m else ""


# --------------------------------------------------------------------------
# sluice-sink on an MX address
# --------------------------------------------------------------------------


class SinkPeer:
    """build/tools/sluice-sink on host:port with --store and --stats-json."""

    def __init__(self, workdir: Path, host: str, port: int, *, script: Optional[str] = None,
                 args: Sequence[str] = (), hostname: Optional[str] = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self.store_dir = self.workdir / "store"
        self.stats_path = self.workdir / "stats.json"
        self.stderr_path = self.workdir / "stderr.txt"
        sink = tools_dir() / "sluice-sink"
        if not (sink.is_file() and os.access(sink, os.X_OK)):
            raise PeerError(f"sluice-sink not found at {sink} (build tools/sluice-sink, or set SLUICE_TOOLS_DIR)")
        self.cmd = [str(sink), "--listen", f"{host}:{port}", "--store", str(self.store_dir),
                    "--stats-json", str(self.stats_path), "--hostname", hostname or default_mx_name(host)]
        if script is not None:
            (self.workdir / "script.txt").write_text(script)
            self.cmd += ["--script", str(self.workdir / "script.txt")]
        self.cmd += list(args)
        self.proc: Optional[subprocess.Popen] = None
        self.expected_exit = False
        self.check_clean = False

    def start(self, timeout: float = 10.0) -> "SinkPeer":
        self.store_dir.mkdir(exist_ok=True)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         close_fds=True)
        deadline = time.monotonic() + scaled(timeout)
        while b"sluice-sink: ready" not in self.stderr_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _stop_pid(self.proc)
                raise PeerError(f"sluice-sink on {self.host}:{self.port} did not start:\n{_tail(self.stderr_path)}")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stats(self, timeout: float = 5.0) -> dict:
        """SIGUSR1, then the freshly written stats (keys in docs/TOOLS.md)."""
        before = self.stats_path.stat().st_mtime_ns if self.stats_path.exists() else 0
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.stats_path.exists() and self.stats_path.stat().st_mtime_ns != before:
                return json.loads(self.stats_path.read_text())
            time.sleep(0.02)
        raise PeerError("sluice-sink did not write its stats on SIGUSR1")

    def stored(self) -> list:
        """The stored messages (unstuffed bytes), in the sink's numbering."""
        files = sorted(self.store_dir.glob("*.eml"), key=lambda p: int(p.stem))
        return [p.read_bytes() for p in files]

    def peak_connections(self) -> int:
        return int(self.stats()["peak_concurrent"])

    def stop(self) -> Optional[int]:
        self.expected_exit = True
        return _stop_pid(self.proc)

    def assert_clean(self) -> None:
        pass

    def stderr_tail(self, n: int = 3000) -> str:
        return _tail(self.stderr_path, n)


# --------------------------------------------------------------------------
# A whole delivery world
# --------------------------------------------------------------------------


class DeliveryWorld:
    """DNS plus peers on one port; built by the `delivery_world` fixture."""

    def __init__(self, dns: DnsServer, port: int, peers: dict, down: Sequence[str]):
        self.dns = dns
        self.port = port
        self.peers = peers  # ip -> ScriptedReceiver | SinkPeer
        self.down = list(down)

    def sluice_args(self) -> list:
        """The relay's options for this world (flag names as planned for issue 4)."""
        return ["--dns", self.dns.spec, "--mx-port", str(self.port)]

    def delivery_toml(self, dns: Optional[Sequence[str]] = None, **keys) -> str:
        """A [delivery] table for sluice.toml: dns (default this world's
        dnsmasq; e.g. [dead_dns.spec, world.dns.spec]), mx_port, and `keys`
        (str, int, float, bool or lists of them), e.g. dns_timeout="500ms"."""
        servers = [self.dns.spec] if dns is None else list(dns)
        lines = ["[delivery]", f"dns = {_toml_value(servers)}", f"mx_port = {self.port}"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
        return "\n".join(lines) + "\n"

    def __getitem__(self, ip: str):
        return self.peers[ip]

    def receivers(self) -> dict:
        return {ip: p for ip, p in self.peers.items() if isinstance(p, ScriptedReceiver)}

    def messages(self) -> list:
        """Accepted messages of every ScriptedReceiver, each with 'host' (ip)."""
        out = []
        for ip, r in self.receivers().items():
            out += [{**m, "host": ip} for m in r.messages()]
        return out

    def delivered_to(self, rcpt: str) -> list:
        """Accepted messages that listed `rcpt` among their accepted recipients."""
        a = rcpt.lower()
        return [m for m in self.messages() if a in (x.lower() for x in m["rcpts"])]

    def wait_messages(self, n: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                by = {ip: len(r.messages()) for ip, r in self.receivers().items()}
                raise AssertionError(f"{len(msgs)} of {n} messages arrived after {timeout}s: {by}")
            time.sleep(0.05)

    def assert_clean(self) -> None:
        for p in self.peers.values():
            p.assert_clean()


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are valid TOML
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"no TOML form for {v!r}")


def parse_mx_spec(domain: str, spec) -> Union[str, list]:
    """delivery_world's mx= values: "ip" | ["ip", ...] (preference 10 each) |
    [(pref, "ip"), ...] | None (null MX). Returns "null" or [(pref, ip)]."""
    if spec is None:
        return "null"
    if isinstance(spec, str):
        spec = [spec]
    out = []
    for item in spec:
        pref, ip = (10, item) if isinstance(item, str) else item
        ipaddress.ip_address(ip)
        out.append((int(pref), ip))
    if not out:
        raise ValueError(f"empty MX list for {domain}")
    return out


# --------------------------------------------------------------------------
# ScriptedReceiver: the server (runs in its own process)
# --------------------------------------------------------------------------


class _Gone(Exception):
    """The client closed or reset the connection."""


class _Close(Exception):
    """The server ends the connection (after a 421, QUIT or a drop)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _count_left(limit: int, used: int) -> bool:
    return limit < 0 or used < limit


class _Server:
    """State shared by every connection of one receiver process."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.rec = open(cfg["record"], "a", buffering=1, encoding="utf-8")
        self.conn_seq = 0
        self.open_now = 0
        self.msg_seq = 0
        self.used = {"connect_421": 0, "drop_during_data": 0, "data_reply": 0}
        self.slow_used: dict = {}
        self.rcpt_seen: dict = {}

    def record(self, obj: dict) -> None:
        self.rec.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def take(self, what: str) -> bool:
        """Consumes one use of a count option; True when it applies now."""
        limit = self.cfg[what if what != "data_reply" else "data_reply_count"]
        if what == "data_reply" and self.cfg["data_reply"] is None:
            return False
        if limit == 0 or not _count_left(limit, self.used[what]):
            return False
        self.used[what] += 1
        return True

    def slow_ms(self, stage: str) -> int:
        ms = self.cfg["slow_reply"].get(stage, 0)
        if ms <= 0 or not _count_left(self.cfg["slow_reply_count"], self.slow_used.get(stage, 0)):
            return 0
        self.slow_used[stage] = self.slow_used.get(stage, 0) + 1
        return ms

    def decide_rcpt(self, addr: str, accepted_so_far: int) -> tuple:
        """(code, text) for RCPT TO:<addr>: rcpt_rules, max_rcpts, permfail,
        tempfail, tempfail_first, in that order."""
        a = addr.lower()
        self.rcpt_seen[a] = self.rcpt_seen.get(a, 0) + 1
        match = lambda globs: any(fnmatch.fnmatchcase(a, g.lower()) for g in globs)  # noqa: E731
        for glob, reply in self.cfg["rcpt_rules"]:
            if fnmatch.fnmatchcase(a, glob.lower()):
                return int(reply[:3]), reply[4:]
        if 0 < self.cfg["max_rcpts"] <= accepted_so_far:
            return 452, "4.5.3 Error: too many recipients"
        if match(self.cfg["permfail"]):
            return 550, f"5.1.1 <{addr}>: Recipient address rejected: User unknown"
        if match(self.cfg["tempfail"]):
            return 451, f"4.7.1 <{addr}>: Recipient address rejected: Try again later"
        if self.rcpt_seen[a] == 1 and match(self.cfg["tempfail_first"]):
            return 451, f"4.3.0 <{addr}>: First attempt deferred, try again"
        return 250, "2.1.5 Ok"


_ENH_RE = re.compile(r"^([245]\.\d{1,3}\.\d{1,3}) ")
_MAIL_RE = re.compile(r"^MAIL FROM:( ?)<([^<>]*)>(?: (.*))?$", re.I)
_RCPT_RE = re.compile(r"^RCPT TO:( ?)<([^<>]*)>(?: (.*))?$", re.I)


class _Conn(asyncio.Protocol):
    def __init__(self, server: _Server):
        self.srv = server
        self.cfg = server.cfg
        self.buf = bytearray()
        self.wake = asyncio.Event()
        self.eof = False
        self.lost = False
        self.transport = None
        self.helo: Optional[str] = None
        self.esmtp = False
        self.txn: Optional[dict] = None
        self.close_recorded: Optional[str] = None

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        srv = self.srv
        srv.conn_seq += 1
        srv.open_now += 1
        self.id = srv.conn_seq
        p = transport.get_extra_info("peername")
        s = transport.get_extra_info("sockname")
        self.peer = f"{p[0]}:{p[1]}"
        self.local = f"{s[0]}:{s[1]}"
        self.open_at_start = srv.open_now
        self.task = asyncio.ensure_future(self.run())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.wake.set()

    def eof_received(self):
        self.eof = True
        self.wake.set()
        return True  # keep the write side: a reply to a QUIT sent before FIN

    def connection_lost(self, exc) -> None:
        if not self.lost:
            self.lost = True
            self.srv.open_now -= 1
        self.eof = True
        self.wake.set()

    # -- plumbing ---------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def violation(self, what: str) -> None:
        self.srv.record({"type": "violation", "conn": self.id, "t": self.now(), "what": what})

    async def wait_data(self) -> None:
        if self.eof:
            raise _Gone()
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), self.cfg["idle_timeout_s"])
        except asyncio.TimeoutError:
            await self.send(421, f"4.4.2 {self.cfg['hostname']} Error: timeout exceeded", "idle",
                            closing="idle-timeout")
            raise _Close("idle-timeout")

    async def read_line(self, limit: int = 65536) -> bytes:
        """One line up to and including LF."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > limit:
                self.violation(f"line longer than {limit} bytes without LF")
                raise _Close("line-too-long")
            await self.wait_data()

    def format_reply(self, code: int, text: str) -> bytes:
        lines = text.split("\n")
        if self.cfg["multiline"] and len(lines) == 1:
            m = _ENH_RE.match(text)
            enh = m.group(1) + " " if m else ""
            lines = [text, f"{enh}(multiline reply, second line)", f"{enh}(multiline reply, last line)"]
        out = "".join(f"{code}-{line}\r\n" for line in lines[:-1]) + f"{code} {lines[-1]}\r\n"
        return out.encode("utf-8")

    def record_close(self, reason: str) -> None:
        if self.close_recorded is None:
            self.close_recorded = reason
            self.srv.record({"type": "close", "conn": self.id, "t": self.now(), "reason": reason})

    async def send(self, code: int, text: str, stage: str, cmd: Optional[str] = None, pipelined: bool = False, *,
                   closing: Optional[str] = None, before=None) -> bool:
        """Writes a reply (after the scripted delay of `stage`); False when the
        client was gone before it could be sent. Everything about it is
        recorded BEFORE the bytes leave: the command, before(sent) (the
        message record), and with `closing` the end of the connection. So a
        client that has read a reply finds its record already in the file."""
        delay = self.srv.slow_ms(stage)
        if delay:
            await asyncio.sleep(delay / 1000.0)
        # Sent means the client still had its side open: one that closed (FIN)
        # while a delayed reply was held will not read it.
        sent = not self.lost and not self.eof
        if before is not None:
            before(sent)
        rec = {"type": "cmd", "conn": self.id, "t": self.now(), "stage": stage, "cmd": cmd, "code": code,
               "reply": text.split("\n")[0], "pipelined": pipelined, "sent": sent}
        if delay:
            rec["delayed_ms"] = delay
        self.srv.record(rec)
        if closing is not None:
            self.record_close(closing)
        if not self.lost:
            self.transport.write(self.format_reply(code, text))
        return sent

    # -- the session ------------------------------------------------------
    async def run(self) -> None:
        reason = "client-closed"
        try:
            await self.session()
        except _Gone:
            reason = "client-closed"
        except _Close as c:
            reason = c.reason
        except Exception as e:  # a bug of this receiver: fail the test loudly
            reason = "receiver-error"
            self.srv.record({"type": "error", "conn": self.id, "t": self.now(), "what": repr(e)})
            import traceback

            traceback.print_exc()
        finally:
            if self.txn is not None and self.txn.get("in_data"):
                self.finish_txn("lost", None, False)
            self.record_close(reason)
            if not self.lost:
                if reason == "dropped":
                    self.transport.abort()
                else:
                    self.transport.close()

    async def session(self) -> None:
        cfg, srv = self.cfg, self.srv
        refused = None
        if cfg["max_connections"] > 0 and self.open_at_start > cfg["max_connections"]:
            refused = "max-connections"
        elif srv.take("connect_421"):
            refused = "421-connect"
        srv.record({"type": "connect", "conn": self.id, "t": self.now(), "peer": self.peer, "local": self.local,
                    "open": self.open_at_start, "refused": refused})
        if refused == "max-connections":
            await self.send(421, f"4.7.0 {cfg['hostname']} Error: too many connections", "greeting",
                            closing="refused")
            raise _Close("refused")
        if refused == "421-connect":
            await self.send(421, f"4.3.2 {cfg['hostname']} Service not available, closing channel", "greeting",
                            closing="refused")
            raise _Close("refused")
        await self.send(220, f"{cfg['hostname']} ESMTP sluice test receiver", "greeting")
        while True:
            raw = await self.read_line()
            if raw.endswith(b"\r\n"):
                body = raw[:-2]
            else:
                self.violation(f"command line ends in a bare LF: {raw[:100]!r}")
                body = raw[:-1]
            if b"\r" in body or b"\n" in body:
                self.violation(f"bare CR in a command line: {raw[:100]!r}")
            if len(raw) > 512:
                self.violation(f"command line longer than 512 octets ({len(raw)})")
            pipelined = len(self.buf) > 0
            line = body.decode("utf-8", "surrogateescape")
            if pipelined and not self.advertises("PIPELINING"):
                self.violation(f"pipelined {line[:60]!r} although PIPELINING was not advertised")
            verb = line.split(" ", 1)[0].upper()
            handler = getattr(self, "cmd_" + verb, None) if verb.isalpha() else None
            shown = line if len(line) <= 600 else line[:600] + "..."
            if handler is None:
                await self.send(500, "5.5.2 Error: command not recognized", "noop", shown, pipelined)
                continue
            await handler(line, shown, pipelined)

    def advertises(self, keyword: str) -> bool:
        return self.esmtp and keyword in self.extensions()

    def extensions(self) -> list:
        if self.cfg["extensions"] is not None:
            return list(self.cfg["extensions"])
        ext = [] if self.cfg["no_pipelining"] else ["PIPELINING"]
        return ext + [f"SIZE {self.cfg['size_limit']}", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"]

    async def cmd_EHLO(self, line: str, shown: str, pipelined: bool) -> None:
        arg = line[5:].strip()
        if self.cfg["no_ehlo"]:
            await self.send(502, "5.5.1 Error: command not implemented", "ehlo", shown, pipelined)
            return
        if not arg:
            await self.send(501, "5.5.4 Syntax: EHLO hostname", "ehlo", shown, pipelined)
            return
        self.helo, self.esmtp, self.txn = arg, True, None
        lines = [f"{self.cfg['hostname']} greets {arg}"] + self.extensions()
        await self.send(250, "\n".join(lines), "ehlo", shown, pipelined)

    async def cmd_HELO(self, line: str, shown: str, pipelined: bool) -> None:
        arg = line[5:].strip()
        if not arg:
            await self.send(501, "5.5.4 Syntax: HELO hostname", "helo", shown, pipelined)
            return
        self.helo, self.esmtp, self.txn = arg, False, None
        await self.send(250, self.cfg["hostname"], "helo", shown, pipelined)

    async def cmd_MAIL(self, line: str, shown: str, pipelined: bool) -> None:
        if self.helo is None:
            await self.send(503, "5.5.1 Error: send HELO/EHLO first", "mail", shown, pipelined)
            return
        if self.txn is not None:
            await self.send(503, "5.5.1 Error: nested MAIL command", "mail", shown, pipelined)
            return
        m = _MAIL_RE.match(line)
        if not m:
            await self.send(501, "5.5.4 Syntax: MAIL FROM:<address>", "mail", shown, pipelined)
            return
        if m.group(1):
            self.violation(f"space after 'MAIL FROM:': {shown!r}")
        params = m.group(3).split() if m.group(3) else []
        if params and not self.esmtp:
            await self.send(555, "5.5.4 MAIL parameters after HELO (no ESMTP)", "mail", shown, pipelined)
            return
        for p in params:
            k, _, v = p.partition("=")
            if k.upper() == "SIZE" and v.isdigit() and int(v) > self.cfg["size_limit"]:
                await self.send(552, "5.3.4 Error: message size exceeds fixed limit", "mail", shown, pipelined)
                return
        self.txn = {"mail_from": m.group(2), "mail_params": params, "rcpts": [], "rcpts_refused": [],
                    "t": {"mail": self.now(), "rcpt": []}}
        await self.send(250, "2.1.0 Ok", "mail", shown, pipelined)

    async def cmd_RCPT(self, line: str, shown: str, pipelined: bool) -> None:
        if self.txn is None:
            await self.send(503, "5.5.1 Error: need MAIL command", "rcpt", shown, pipelined)
            return
        m = _RCPT_RE.match(line)
        if not m:
            await self.send(501, "5.5.4 Syntax: RCPT TO:<address>", "rcpt", shown, pipelined)
            return
        if m.group(1):
            self.violation(f"space after 'RCPT TO:': {shown!r}")
        addr = m.group(2)
        self.txn["t"]["rcpt"].append(self.now())
        code, text = self.srv.decide_rcpt(addr, len(self.txn["rcpts"]))
        if code == 250:
            self.txn["rcpts"].append(addr)
        else:
            self.txn["rcpts_refused"].append({"rcpt": addr, "reply": f"{code} {text}"})
        await self.send(code, text, "rcpt", shown, pipelined, closing="421" if code == 421 else None)
        if code == 421:
            raise _Close("421")

    async def cmd_DATA(self, line: str, shown: str, pipelined: bool) -> None:
        if self.txn is None:
            await self.send(503, "5.5.1 Error: need MAIL command", "data", shown, pipelined)
            return
        if line.strip().upper() != "DATA":
            await self.send(501, "5.5.4 Syntax: DATA", "data", shown, pipelined)
            return
        if not self.txn["rcpts"]:
            await self.send(554, "5.5.1 Error: no valid recipients", "data", shown, pipelined)
            self.txn = None
            return
        if pipelined:
            self.violation("bytes sent after DATA before the 354 reply")
        txn = self.txn
        txn["t"]["data"] = self.now()
        txn["in_data"] = True
        txn["body"] = bytearray()
        if not await self.send(354, "End data with <CR><LF>.<CR><LF>", "data", shown, pipelined):
            raise _Gone()
        if self.srv.take("drop_during_data"):
            while len(self.buf) < self.cfg["drop_after_bytes"] and not self.eof:
                await self.wait_data()
            txn["body"] += self.buf  # raw (still stuffed) part received
            self.finish_txn("dropped", None, False)
            self.srv.record({"type": "cmd", "conn": self.id, "t": self.now(), "stage": "data_end",
                             "cmd": f"<{len(self.buf)} body bytes, connection dropped>", "code": 0,
                             "reply": "", "pipelined": False, "sent": False})
            raise _Close("dropped")
        await self.read_body(txn)
        txn["t"]["data_end"] = self.now()
        pipelined = len(self.buf) > 0
        if self.srv.take("data_reply"):
            code, text = int(self.cfg["data_reply"][:3]), self.cfg["data_reply"][4:]
        elif len(txn["body"]) > self.cfg["size_limit"]:
            code, text = 552, "5.3.4 Error: message size exceeds fixed limit"
        else:
            self.srv.msg_seq += 1
            txn["id"] = f"R{self.srv.msg_seq}"
            code, text = 250, f"2.0.0 Ok: queued as {txn['id']}"
        if code == 250:
            eml = Path(self.cfg["store_dir"]) / f"{txn['id']}.eml"
            part = eml.with_suffix(".part")  # renamed: a reader never sees half a file
            part.write_bytes(txn["body"])
            part.replace(eml)
            txn["eml"] = str(eml)
        status = "accepted" if code < 400 else "rejected"
        txn["in_data"] = False
        await self.send(code, text, "data_end", ".", pipelined, closing="421" if code == 421 else None,
                        before=lambda sent: self.finish_txn(status, f"{code} {text}", sent))
        if code == 421:
            raise _Close("421")

    async def read_body(self, txn: dict) -> None:
        """Until CRLF.CRLF; unstuffs into txn['body']."""
        body = txn["body"]
        prev_crlf = True  # the DATA line ended in CRLF
        long_lines = bare = 0
        while True:
            line = await self.read_line(limit=1 << 26)
            if prev_crlf and line == b".\r\n":
                break
            crlf = line.endswith(b"\r\n")
            content = line[:-2] if crlf else line[:-1]
            if not crlf or b"\r" in content:
                bare += 1
            if len(line) > 1000:
                long_lines += 1
            if line.startswith(b"."):
                line = line[1:]
            body += line
            prev_crlf = crlf
        if bare:
            self.violation(f"{bare} body line(s) with a bare CR or LF")
        if long_lines:
            self.violation(f"{long_lines} body line(s) longer than 1000 octets")

    def finish_txn(self, status: str, reply: Optional[str], sent: bool) -> None:
        txn, self.txn = self.txn, None
        body = bytes(txn.pop("body", b""))
        txn.pop("in_data", None)
        self.srv.record({
            "type": "message", "status": status, "id": txn.get("id"), "conn": self.id, "peer": self.peer,
            "local": self.local, "helo": self.helo, "esmtp": self.esmtp, "mail_from": txn["mail_from"],
            "mail_params": txn["mail_params"], "rcpts": txn["rcpts"], "rcpts_refused": txn["rcpts_refused"],
            "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "t": txn["t"], "reply": reply,
            "reply_sent": sent, "eml": txn.get("eml"), "body_b64": base64.b64encode(body).decode("ascii"),
        })

    async def cmd_RSET(self, line: str, shown: str, pipelined: bool) -> None:
        self.txn = None
        await self.send(250, "2.0.0 Ok", "rset", shown, pipelined)

    async def cmd_NOOP(self, line: str, shown: str, pipelined: bool) -> None:
        await self.send(250, "2.0.0 Ok", "noop", shown, pipelined)

    async def cmd_QUIT(self, line: str, shown: str, pipelined: bool) -> None:
        await self.send(221, "2.0.0 Bye", "quit", shown, pipelined, closing="quit")
        raise _Close("quit")

    async def cmd_VRFY(self, line: str, shown: str, pipelined: bool) -> None:
        await self.send(252, "2.5.0 Cannot VRFY user", "noop", shown, pipelined)

    async def cmd_BDAT(self, line: str, shown: str, pipelined: bool) -> None:
        # CHUNKING is never advertised, so BDAT is a client error; the bytes
        # that follow it would be read as commands (as by a real server).
        self.violation("BDAT although CHUNKING was not advertised")
        await self.send(502, "5.5.1 Error: command not implemented", "noop", shown, pipelined)


def _set_parent_death_signal(parent_pid: int) -> None:
    """The receiver goes when pytest goes, even after a SIGKILL of pytest."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        sys.exit(0)


def receiver_main(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    _set_parent_death_signal(cfg["parent_pid"])
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    srv = _Server(cfg)
    try:
        server = loop.run_until_complete(
            loop.create_server(lambda: _Conn(srv), cfg["host"], cfg["port"], reuse_address=True, backlog=1024))
    except OSError as e:
        print(f"receiver: cannot listen on {cfg['host']}:{cfg['port']}: {e}", file=sys.stderr)
        return 2
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print("ready", flush=True)
    loop.run_until_complete(stop)
    server.close()
    srv.rec.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "receiver":
        sys.exit(receiver_main(sys.argv[2]))
    print("usage: delivery_peers.py receiver CONFIG.json", file=sys.stderr)
    sys.exit(2)
