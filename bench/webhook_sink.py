"""A fast local webhook receiver for the benchmarks (docs/WEBHOOKS.md): an
HTTP/1.1 keep-alive server on 127.0.0.1 that answers 200 to every POST (or
503 while `down`) and counts the records of each body without decoding it
(a record starts with {"type":", which a JSON string value cannot hold
unescaped). Used by bench/webhook.py and relay.py's sluice_webhook row."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        sink = self.server.sink
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 503 if sink.down else 200
        if status == 200:
            n = body.count(b'{"type":"')
            with sink.lock:
                sink.records += n
                sink.batches += 1
                sink.bytes += len(body)
                now = time.monotonic()
                sink.first = sink.first or now
                sink.last = now
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class WebhookSink:
    def __init__(self):
        self.lock = threading.Lock()
        self.records = self.batches = self.bytes = 0
        self.first = self.last = 0.0
        self.down = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def wait_for(self, records: int, timeout: float) -> float:
        """Monotonic time at which `records` had arrived; raises on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.records >= records:
                    return self.last
            time.sleep(0.01)
        raise RuntimeError(f"webhook sink: {self.records} of {records} records in {timeout} s")

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
