#!/usr/bin/python3
"""Single-recipient injections over keep-alive HTTP connections
(POST /api/inject/v1, docs/HTTP.md): PROCS processes, each with CONNS
connections, one request in flight per connection; prints messages/s
(every 200 means a durable spool record).

  bench/inject_http.py --port 8025 --token TOKEN [--procs 2 --conns 8 --seconds 10 --size 2048]

The relay must be running (queue-only, --no-delivery, keeps it to ingestion).
"""

import argparse
import json
import multiprocessing
import selectors
import socket
import time


def request(token: str, size: int, i: int) -> bytes:
    body_text = "x" * 76 + "\r\n"
    content = ("From: a@snd.test\r\nTo: b@d1.test\r\nSubject: bench\r\n\r\n"
               + body_text * max(1, size // len(body_text)))
    doc = json.dumps({"envelope_sender": "a@snd.test", "content": content,
                      "recipients": [{"email": f"u{i}@d1.test"}]}).encode()
    return (f"POST /api/inject/v1 HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(doc)}\r\n\r\n").encode() + doc


def worker(port, token, conns, seconds, size, out):
    req = request(token, size, 0)
    sel = selectors.DefaultSelector()
    bufs = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
    done = bad = 0
    lat = []
    sent_at = {s: time.monotonic() for s in bufs}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            bufs[s] += s.recv(65536)
            b = bufs[s]
            h = b.find(b"\r\n\r\n")
            if h < 0:
                continue
            head = b[:h].decode()
            length = int(head.lower().split("content-length:")[1].split("\r\n")[0])
            if len(b) < h + 4 + length:
                continue
            bufs[s] = b[h + 4 + length:]
            if head.startswith("HTTP/1.1 200"):
                done += 1
            else:
                bad += 1
            now = time.monotonic()
            lat.append(now - sent_at[s])
            sent_at[s] = now
            s.sendall(req)
    out.put((done, bad, lat))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8025)
    ap.add_argument("--token", required=True)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--size", type=int, default=2048)
    a = ap.parse_args()
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(a.port, a.token, a.conns, a.seconds, a.size, q))
          for _ in range(a.procs)]
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    for p in ps:
        p.join()
    done = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    p50 = lat[len(lat) // 2] * 1000 if lat else 0
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0
    print(f"{done / a.seconds:,.0f} msgs/s ({done} in {a.seconds:.0f} s, {bad} not 200) over "
          f"{a.procs * a.conns} keep-alive connections, {a.size} B messages; "
          f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
