"""The soak's Python SMTP clients (bench/soak.py): tricklers and TLS
sessions, all coroutines of one asyncio loop on a background thread.

  trickler   sends its DATA the way a slow or distant client does: either
             as 3-byte lines ("a\\r\\n"), each its own TCP segment, or a
             ~20 KB body in MSS-sized 1,448-byte segments, `gap_s` apart
             (TCP_NODELAY); then "." and expects 250. A few messages per
             connection, then QUIT and a new connection (the approach of
             tests/integration/test_real_network.py, kept up for the whole
             run).
  tls        a new connection per message: EHLO, STARTTLS, a full TLS
             handshake (no certificate verification: the server's is
             self-signed), EHLO, one 2 KB message, QUIT.

Every message records the latency of its 250: from the end of its data
(".") to the reply. A client that gets anything but 250 (or nothing within
`reply_timeout_s`) counts a failure with the reason, then starts over on a
new connection. Trusts the server only to speak SMTP; every wait is bounded.
Recipients come from `pick_rcpt()` (the soak's weighted domains).
"""
from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
from collections import Counter

MSS = 1448  # a TCP segment's payload at MTU 1500 (with timestamps)
LINE = b"a\r\n"  # a 3-byte DATA line, one segment each
QUEUED_AS = re.compile(rb"queued as ([0-9A-Z]+)")


class Results:
    """What the clients saw, shared with the sampling thread (under a lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []  # (time.monotonic() of the 250, kind, seconds)
        self.ok = Counter()  # kind -> messages that got their 250
        self.failed = Counter()  # (kind, reason) -> count
        self.ids = []  # queue ids from the 250 replies

    def add_ok(self, kind: str, seconds: float, reply: bytes) -> None:
        m = QUEUED_AS.search(reply)
        with self.lock:
            self.latencies.append((time.monotonic(), kind, seconds))
            self.ok[kind] += 1
            if m:
                self.ids.append(m.group(1).decode())

    def add_failure(self, kind: str, reason: str) -> None:
        with self.lock:
            self.failed[(kind, reason)] += 1

    def since(self, t0: float) -> list:
        """Latencies (seconds) of the 250s seen at or after t0."""
        with self.lock:
            return [s for t, _, s in self.latencies if t >= t0]


class SmtpError(Exception):
    """An unexpected reply or a missing one; str() is the reason counted."""


class Conn:
    """One client connection: replies with a deadline, commands, pieces."""

    def __init__(self, reader, writer, timeout_s: float):
        self.r, self.w, self.timeout_s = reader, writer, timeout_s

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float) -> "Conn":
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, timeout_s)

    async def reply(self, want: int) -> bytes:
        """One whole reply; raises SmtpError unless its code is `want`."""
        lines = []
        while True:
            try:
                line = await asyncio.wait_for(self.r.readline(), self.timeout_s)
            except asyncio.TimeoutError:
                raise SmtpError(f"no reply within {self.timeout_s:.0f} s (wanted {want})")
            if not line:
                raise SmtpError(f"connection closed (wanted {want})")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        if not line[:3].isdigit() or int(line[:3]) != want:
            raise SmtpError(f"{line[:3].decode(errors='replace')} (wanted {want})")
        return b"".join(lines)

    async def command(self, text: bytes, want: int) -> bytes:
        self.w.write(text + b"\r\n")
        return await self.reply(want)

    async def send(self, data: bytes) -> None:
        self.w.write(data)
        await asyncio.wait_for(self.w.drain(), self.timeout_s)

    def close(self) -> None:
        self.w.close()


def trickle_pieces(mode: str, lines: int) -> list:
    """The body of a trickled message, cut into the segments it is sent in."""
    if mode == "lines":
        return [LINE] * lines
    body = b"".join(b"line %05d " % i + b"x" * 66 + b"\r\n" for i in range(256))  # ~20 KB
    return [body[i:i + MSS] for i in range(0, len(body), MSS)]


class Clients:
    """Runs `tricklers` trickling clients (half 3-byte lines, half MSS
    segments) and `tls` STARTTLS clients against host:port until stop()."""

    def __init__(self, host: str, port: int, pick_rcpt, *, tricklers=24, tls=4, gap_s=0.005,
                 lines=100, per_connection=5, tls_pause_s=0.2, reply_timeout_s=30.0):
        self.host, self.port, self.pick_rcpt = host, port, pick_rcpt
        self.tricklers, self.tls = tricklers, tls
        self.gap_s, self.lines, self.per_connection = gap_s, lines, per_connection
        self.tls_pause_s, self.reply_timeout_s = tls_pause_s, reply_timeout_s
        self.results = Results()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-clients", daemon=True)
        self._seq = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 120.0) -> None:
        """Lets every client finish the message it is in, then returns."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        tasks = [self._loop("trickle-lines" if i % 2 == 0 else "trickle-mss", self._trickle)
                 for i in range(self.tricklers)]
        tasks += [self._loop("tls", self._tls_session) for _ in range(self.tls)]
        await asyncio.gather(*tasks)

    async def _loop(self, kind: str, session) -> None:
        """One client for the whole run: a session after another; a failed
        one is counted, then the client starts over on a new connection."""
        while not self._stop.is_set():
            conn = None
            try:
                conn = await Conn.open(self.host, self.port, self.reply_timeout_s)
                await session(conn, kind)
            except SmtpError as e:
                self.results.add_failure(kind, str(e))
            except Exception as e:  # noqa: BLE001 (OSError, timeouts, TLS: counted, shown)
                self.results.add_failure(kind, type(e).__name__)
            finally:
                if conn is not None:
                    conn.close()
            if kind == "tls":
                await asyncio.sleep(self.tls_pause_s)

    async def _transaction(self, conn: Conn, helo: str) -> None:
        self._seq += 1
        await conn.command(b"MAIL FROM:<soak@%s>" % helo.encode(), 250)
        await conn.command(b"RCPT TO:<%s>" % self.pick_rcpt().encode(), 250)
        await conn.command(b"DATA", 354)
        # A From: field: Sluice refuses a message without one (550 5.6.0).
        await conn.send(b"From: <soak@%s>\r\nSubject: soak %d\r\nMessage-ID: <%d.%s>\r\n\r\n"
                        % (helo.encode(), self._seq, self._seq, helo.encode()))

    async def _finish(self, conn: Conn, kind: str) -> None:
        """Ends the message; records the latency of its 250."""
        start = time.monotonic()
        await conn.send(b".\r\n")
        reply = await conn.reply(250)
        self.results.add_ok(kind, time.monotonic() - start, reply)

    async def _trickle(self, conn: Conn, kind: str) -> None:
        pieces = trickle_pieces("lines" if kind == "trickle-lines" else "mss", self.lines)
        await conn.reply(220)
        await conn.command(b"EHLO trickle.soak.test", 250)
        for _ in range(self.per_connection):
            if self._stop.is_set():
                break
            await self._transaction(conn, "trickle.soak.test")
            for piece in pieces:
                await conn.send(piece)
                await asyncio.sleep(self.gap_s)
            await self._finish(conn, kind)
        await conn.command(b"QUIT", 221)

    async def _tls_session(self, conn: Conn, kind: str) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the soak's certificate is self-signed
        await conn.reply(220)
        await conn.command(b"EHLO tls.soak.test", 250)
        await conn.command(b"STARTTLS", 220)
        await asyncio.wait_for(conn.w.start_tls(ctx, server_hostname="localhost"),
                               self.reply_timeout_s)
        await conn.command(b"EHLO tls.soak.test", 250)
        await self._transaction(conn, "tls.soak.test")
        await conn.send((b"y" * 70 + b"\r\n") * 28)  # ~2 KB
        await self._finish(conn, kind)
        await conn.command(b"QUIT", 221)
