"""A webhook receiver for the tests (docs/WEBHOOKS.md): a real HTTP/1.1
server on 127.0.0.1 that records every POSTed batch and answers as told.

    r = WebhookReceiver(port)      # not listening yet: connections are refused
    r.start(); r.status = 500      # up, answering 500 to every POST
    r.status = 200                 # up and accepting
    r.stop()                       # down again: listener and open connections closed

`batches` holds the accepted ones (2xx), `attempts` every POST seen. Each
batch keeps its headers and its decoded JSON array.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.owner.lock:
            self.server.owner.connections.add(self.request)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.owner.lock:
                self.server.owner.connections.discard(self.request)

    def log_message(self, *args):
        pass

    def do_POST(self):
        owner = self.server.owner
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        status = owner.status
        if owner.delay:
            time.sleep(owner.delay)
        with owner.lock:
            owner.attempts.append((time.monotonic(), status))
            if 200 <= status < 300:
                owner.batches.append({"path": self.path, "headers": dict(self.headers),
                                      "records": json.loads(body)})
        reply = b"ok\n" if status < 300 else b"failing\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class WebhookReceiver:
    def __init__(self, port: int, host: str = "127.0.0.1", tls=None, url_host: str = None):
        """tls: (cert_path, key_path) to serve https; url_host: the name in url."""
        self.host, self.port = host, port
        self.tls = tls
        self.url_host = url_host or host
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        self.batches: list = []
        self.attempts: list = []
        self.connections: set = set()
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.url_host}:{self.port}/hook"

    def start(self) -> "WebhookReceiver":
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            for c in list(self.connections):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server = None

    def records(self) -> list:
        with self.lock:
            return [r for b in self.batches for r in b["records"]]

    def failed_attempts(self) -> int:
        with self.lock:
            return sum(1 for _, s in self.attempts if not 200 <= s < 300)
