#!/usr/bin/python3
"""HTTP injection against Postfix's SMTP acceptance, in one run (issue 14's
targets: single-recipient injections over keep-alive at least 20x Postfix;
one request with 100,000 templated recipients durable in under 0.5 s).

Each repetition, interleaved:
  - a queue-only Sluice (--no-delivery) with [http] on a free port and a
    fresh token; bench/inject_http.py's clients POST single-recipient 2 KB
    messages for SECONDS (every 200 is a durable spool record);
  - a private Postfix holding every message (bench/lib.sh postfix_setup),
    fed by Postfix's own smtp-source (50 sessions);
  - the same Sluice takes one POST with 100,000 templated recipients; the
    time from sending to the 200 (after the batch record's group commit).
Prints each repetition and the medians, and the ratio of the medians.

  bench/inject_vs_postfix.py [--reps 3 --seconds 8 --postfix-messages 4000]
"""

import argparse
import json
import multiprocessing
import socket
import statistics
import subprocess
import time
from pathlib import Path

import common
import inject_http


def start_sluice(work: Path) -> tuple:
    token_out = subprocess.run([common.sluice_bin(), "http-token", "bench"], capture_output=True,
                               text=True, check=True).stdout
    token = token_out.split("token: ")[1].split()[0]
    line = token_out.split("line: ")[1].split()[0]
    (work / "tokens").write_text(line + "\n")
    http_port = common.free_port()
    (work / "sluice.toml").write_text(
        f'[http]\nlisten = "127.0.0.1:{http_port}"\ntokens_file = "{work / "tokens"}"\n')
    relay = common.Sluice(work, args=["--no-delivery", "--config", str(work / "sluice.toml")])
    common.wait_port(http_port, proc=relay.proc)
    return relay, http_port, token


def inject_rate(port: int, token: str, seconds: float) -> float:
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=inject_http.worker,
                                     args=(port, token, 25, seconds, 2048, q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    if any(r[1] for r in results):
        raise RuntimeError(f"{sum(r[1] for r in results)} injections were not answered 200")
    return sum(r[0] for r in results) / seconds


def big_template_seconds(port: int, token: str, recipients: int) -> float:
    doc = json.dumps({
        "envelope_sender": "news@snd.test",
        "template": "From: news@snd.test\r\nTo: {{email}}\r\nSubject: Hello {{name}}\r\n\r\n"
                    "Dear {{name}}, this is your letter.\r\n",
        "recipients": [{"email": f"u{i}@d{i % 1000}.test", "name": f"N{i}"}
                       for i in range(recipients)]}).encode()
    head = (f"POST /api/inject/v1 HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(doc)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.monotonic()
        s.sendall(head + doc)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - start
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the templated injection failed: {reply[:300]!r}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--postfix-messages", type=int, default=4000)
    ap.add_argument("--recipients", type=int, default=100_000)
    a = ap.parse_args()
    common.configure()
    common.raise_nofile()
    work = common.make_workdir("sluice-inject-vs-postfix")
    inject, postfix, template = [], [], []
    for rep in range(a.reps):
        relay, http_port, token = start_sluice(work)
        try:
            inject.append(inject_rate(http_port, token, a.seconds))
            template.append(big_template_seconds(http_port, token, a.recipients))
        finally:
            relay.stop()
        with common.Postfix(work) as pf:
            postfix.append(common.smtp_source(pf.port, a.postfix_messages, 2048))
        print(f"rep {rep + 1}: HTTP inject {inject[-1]:,.0f} msgs/s, Postfix smtp-source "
              f"{postfix[-1]:,.0f} msgs/s ({inject[-1] / postfix[-1]:.1f}x); "
              f"{a.recipients:,} templated recipients durable in {template[-1]:.3f} s", flush=True)
    mi, mp = statistics.median(inject), statistics.median(postfix)
    print(f"medians: HTTP inject {mi:,.0f} msgs/s (min {min(inject):,.0f}, max {max(inject):,.0f}), "
          f"Postfix {mp:,.0f} msgs/s (min {min(postfix):,.0f}, max {max(postfix):,.0f}): "
          f"{mi / mp:.1f}x; templated batch {statistics.median(template):.3f} s "
          f"(max {max(template):.3f} s)")


if __name__ == "__main__":
    main()
