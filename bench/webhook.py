#!/usr/bin/python3
"""Webhook throughput (docs/WEBHOOKS.md, issue 14's target: at least
20,000 events/s to a local receiver, and relaying within 5% of a relay
without a webhook). Two measurements:

  drain   Sluice (--no-delivery) runs with one webhook whose receiver
          answers 503; --events synthetic Delivery records (~330 bytes,
          the size of a real one) are appended to its accounting log; the
          receiver starts accepting and the clock runs until it has counted
          every record: the webhook's own rate (read, filter, batch, POST)
          with default batching (1,000 records or 1 MiB).
  relay   bench/relay.py's `sluice` row against `sluice_webhook` (the same
          relay with a webhook receiving every Reception and Delivery),
          interleaved: the ratio of their rates, and how far behind the
          relay the webhook finished.

    bench/webhook.py [--events 200000] [--reps 1] [--messages 10000]
                     [--sizes 2048] [--no-relay]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import relay  # noqa: E402
from webhook_sink import WebhookSink  # noqa: E402

RECORD = ('{"type":"Delivery","ts":"2026-12-07T18:00:00.000000Z","id":"%012dAAAA",'
          '"sender":"bounces@news.example.com","recipient":"user%d@d%d.example",'
          '"domain":"d%d.example","mx":"mx1.d%d.example","ip":"192.0.2.7","code":250,'
          '"enhanced":"2.0.0","text":"2.0.0 Ok: queued as 4XyZ12","attempt":1,'
          '"queue_time_s":0.042,"tls":"TLSv1.3 TLS_AES_256_GCM_SHA384"}\n')


def drain(work: Path, events: int) -> dict:
    with WebhookSink() as hook:
        hook.down = True
        conf = work / "drain.toml"
        conf.write_text(f'[[webhook]]\nname = "drain"\nurl = "{hook.url}"\n'
                        f'backoff_min_ms = 10\nbackoff_max_ms = 20\n')
        with common.Sluice(work, ["--no-delivery", "--config", str(conf)], name="drain") as s:
            time.sleep(0.5)  # the webhook has taken its place at the log's end
            with open(s.log_path, "a") as log:
                for i in range(events):
                    d = i % 1000
                    log.write(RECORD % (i, i, d, d, d))
            size = s.log_path.stat().st_size
            start = time.monotonic()
            hook.down = False
            last = hook.wait_for(events, 120)
            return {"events": events, "seconds": last - start, "events_per_s": events / (last - start),
                    "batches": hook.batches, "mb_per_s": size / (last - start) / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--sizes", default="2048")
    ap.add_argument("--no-relay", action="store_true")
    args = ap.parse_args()
    common.raise_nofile()
    work = common.make_workdir("sluice-webhook-")
    d = drain(work, args.events)
    print(f"drain: {d['events']:,} events in {d['seconds']:.2f} s = {d['events_per_s']:,.0f} events/s "
          f"({d['mb_per_s']:.1f} MB/s, {d['batches']} POSTs)")
    if args.no_relay:
        return
    results = relay.measure(reps=args.reps, messages=args.messages, rows=("sluice", "sluice_webhook"),
                            sizes=[int(s) for s in args.sizes.split(",")], work=work)
    print(relay.table(results))
    print("\n" + relay.cpu_table(results))
    for size, rows in results.items():
        for row in ("sluice", "sluice_webhook"):
            cpu = sorted(r["shard_threads_cpu_s"] * 1e6 / args.messages for r in rows.get(row, []))
            if cpu:
                print(f"{size // 1024} KB {row}: shard threads' CPU µs/message, median "
                      f"{cpu[len(cpu) // 2]:.0f} (min {cpu[0]:.0f}, max {cpu[-1]:.0f})")
        for r in rows.get("sluice_webhook", []):
            print(f"{size // 1024} KB: webhook got {r['webhook_records']:,} records, "
                  f"{r['webhook_events_per_s']:,.0f} events/s over the run, "
                  f"finished {r['webhook_lag_s']:.2f} s after the last delivery; CPU: webhook "
                  f"thread {r['webhook_thread_cpu_s'] * 1e6 / r['webhook_records']:.1f} µs/record")


if __name__ == "__main__":
    main()
