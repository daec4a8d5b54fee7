#!/usr/bin/python3
"""Inbound acceptance, side by side in one run, with two drivers:

  smtp-source (Postfix's, one message per session, 50 sessions) into
    (a) smtp-sink, which stores nothing (the client's own ceiling),
    (b) Sluice, fdatasyncing every message before its 250 (--no-delivery),
    (c) a private Postfix whose smtpd/cleanup fsync each message into the
        hold queue (durable, never delivered);
  sluice-blast (connections reused, pipelined, 50 connections) into
    (a) sluice-sink (the loopback ceiling), (b) Sluice, (c) the same Postfix.

Runs are interleaved and repeated; only the ratios within one run mean
anything on a noisy machine.

    bench/inbound.py [--driver smtp-source|blast|both] [--reps 3]
                     [--messages 10000] [--postfix-messages 4000]
                     [--sizes 2048,20480] [--connections 50]

Prints a Markdown table (median/min/max msgs/s, ratios) and peak memory:
Sluice's peak RSS (VmHWM) and the peak total PSS of Postfix's processes.
As a module: measure(...) returns the numbers; the run_* functions are one
run each (bench/suite.py interleaves them with the other benchmarks).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


# --- smtp-source driven ------------------------------------------------------


def run_source_sink(work: Path, size: int, messages: int) -> dict:
    """smtp-source -> smtp-sink: the outside reference's own ceiling."""
    with common.SmtpSink() as sink:
        return {"rate": common.smtp_source(sink.port, messages, size)}


def run_source_sluice(work: Path, size: int, messages: int) -> dict:
    """smtp-source -> Sluice (accept and fdatasync only)."""
    with common.Sluice(work, ["--no-delivery"]) as s:
        rate = common.smtp_source(s.port, messages, size)
        peak = s.peak_rss_kib()
        queued = s.queued_messages()
        if queued != messages:
            raise RuntimeError(f"sluice queued {queued} of {messages}")
        return {"rate": rate, "peak_rss_kib": peak}


def run_source_postfix(work: Path, size: int, messages: int) -> dict:
    """smtp-source -> Postfix (fsync into the hold queue)."""
    with common.Postfix(work) as pf:
        sampler = common.PeakSampler(pf.pss_kib)
        sampler.start()
        try:
            rate = common.smtp_source(pf.port, messages, size)
        finally:
            peak = sampler.finish()
        return {"rate": rate, "peak_pss_kib": peak}


# --- sluice-blast driven -----------------------------------------------------


def _blast_result(report: dict) -> dict:
    lat = report["latency_us"]
    return {"rate": report["messages_per_s"], "p50_us": lat["p50"], "p99_us": lat["p99"],
            "p999_us": lat["p999"]}


def run_blast_sink(work: Path, size: int, messages: int, connections=50) -> dict:
    """sluice-blast -> sluice-sink: the loopback ceiling (nothing stored)."""
    with common.Sink(work) as sink:
        r = _blast_result(common.blast(sink.port, messages, size, connections=connections))
        got = sink.messages()
        if got != messages:
            raise RuntimeError(f"sink counted {got} of {messages}")
        return r


def run_blast_sluice(work: Path, size: int, messages: int, connections=50) -> dict:
    """sluice-blast -> Sluice: inbound acceptance, every message fdatasynced
    (group commit) before its 250; rate over blast's whole run."""
    with common.Sluice(work, ["--no-delivery"]) as s:
        r = _blast_result(common.blast(s.port, messages, size, connections=connections))
        r["peak_rss_kib"] = s.peak_rss_kib()
        queued = s.queued_messages()
        if queued != messages:
            raise RuntimeError(f"sluice queued {queued} of {messages}")
        return r


def run_blast_postfix(work: Path, size: int, messages: int, connections=50) -> dict:
    """sluice-blast -> Postfix (hold queue, fsync per message)."""
    with common.Postfix(work) as pf:
        sampler = common.PeakSampler(pf.pss_kib)
        sampler.start()
        try:
            r = _blast_result(common.blast(pf.port, messages, size, connections=connections))
        finally:
            r_peak = sampler.finish()
        r["peak_pss_kib"] = r_peak
        return r


ROWS = {
    # name: (driver, label, runner, uses postfix_messages)
    "source_sink": ("smtp-source", "smtp-source → smtp-sink (no storage)", run_source_sink, False),
    "source_sluice": ("smtp-source", "smtp-source → Sluice (fsync)", run_source_sluice, False),
    "source_postfix": ("smtp-source", "smtp-source → Postfix (fsync)", run_source_postfix, True),
    "blast_sink": ("blast", "blast → sluice-sink (ceiling)", run_blast_sink, False),
    "blast_sluice": ("blast", "blast → Sluice (fsync)", run_blast_sluice, False),
    "blast_postfix": ("blast", "blast → Postfix (fsync)", run_blast_postfix, True),
}
RATIOS = {  # row: (Postfix row, ceiling row)
    "source_sluice": ("source_postfix", "source_sink"),
    "source_postfix": (None, "source_sink"),
    "blast_sluice": ("blast_postfix", "blast_sink"),
    "blast_postfix": (None, "blast_sink"),
}


def measure(*, reps=3, messages=10000, postfix_messages=4000, sizes=(2048, 20480),
            driver="smtp-source", connections=50, work=None) -> dict:
    """Runs the rows of `driver` ("smtp-source", "blast" or "both"),
    interleaved; returns {size: {row: [result, ...]}}."""
    names = [n for n, r in ROWS.items() if driver in ("both", r[0])]
    own = work is None
    work = Path(work) if work else common.make_workdir("sluice-inbound-")
    runners = {}
    for n in names:
        _, _, fn, pf = ROWS[n]
        count = postfix_messages if pf else messages
        if ROWS[n][0] == "blast":
            runners[n] = lambda size, fn=fn, c=count: fn(work, size, c, connections)
        else:
            runners[n] = lambda size, fn=fn, c=count: fn(work, size, c)
    try:
        return common.interleave(runners, names, list(sizes), reps)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def table(results: dict) -> str:
    """Markdown: one line per (size, row) with median (min–max), the ratio to
    Postfix and to the ceiling of the same driver, and peak memory."""
    lines = ["| message | row | msgs/s median (min–max) | / Postfix | / ceiling | peak memory |",
             "|---|---|---|---|---|---|"]
    for size, rows in results.items():
        med = {n: common.rates(r)["median"] for n, r in rows.items()}
        for n, res in rows.items():
            pf, ceil = RATIOS.get(n, (None, None))
            vs_pf = f"{med[n] / med[pf]:.1f}×" if pf in med else ""
            vs_ceil = f"{med[n] / med[ceil]:.2f}" if ceil in med else ""
            mem = ""
            if any("peak_rss_kib" in r for r in res):
                mem = f"RSS {max(r['peak_rss_kib'] for r in res) / 1024:.1f} MiB"
            elif any("peak_pss_kib" in r for r in res):
                mem = f"PSS {max(r['peak_pss_kib'] for r in res) / 1024:.1f} MiB"
            lines.append(f"| {size // 1024} KB | {ROWS[n][1]} | {common.fmt_rate(common.rates(res))} "
                         f"| {vs_pf} | {vs_ceil} | {mem} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--postfix-messages", type=int, default=4000)
    ap.add_argument("--sizes", default="2048,20480")
    ap.add_argument("--driver", choices=["smtp-source", "blast", "both"], default="smtp-source")
    ap.add_argument("--connections", type=int, default=50, help="blast connections")
    args = ap.parse_args()
    common.raise_nofile()
    results = measure(reps=args.reps, messages=args.messages,
                      postfix_messages=args.postfix_messages,
                      sizes=[int(s) for s in args.sizes.split(",")], driver=args.driver,
                      connections=args.connections)
    print(table(results))


if __name__ == "__main__":
    main()
