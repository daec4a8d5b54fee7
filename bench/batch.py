#!/usr/bin/python3
"""The pickup directory under bulk load (docs/PICKUP.md), with --no-delivery:

  batch   one batch (NAME.batch/: manifest, a mail-merge template with three
          fields, a CSV of --recipients recipients over --domains domains)
          renamed into DIR/new while Sluice runs: the time from the rename
          until the batch is durably queued (Sluice's pickup.batch_queued line, which
          it prints after the commit and the Reception record), and Sluice's
          peak RSS (VmHWM), against the RSS of the same daemon idle;
  files   --files single-message files, two ways: renamed into DIR/new at
          once while Sluice runs (files per second from the first rename
          until every one has its Reception record: the producer's renames
          compete with Sluice's claims), and already in DIR/new when Sluice
          starts (files per second from the start until the last Reception
          record: the same measure as Postfix's below);
  postfix the same messages through Postfix's local submission into a
          private instance (bench/lib.sh postfix_setup, every message held:
          `header_checks = static:HOLD`): `sendmail` (postdrop) writes them
          into maildrop/ while Postfix is stopped, then Postfix starts and its
          pickup + cleanup move them into the queue: files per second from
          `postfix start` until every one is in hold/. The submission itself
          (sendmail processes, --postfix-parallel at a time) is timed too.

    bench/batch.py [--recipients 1000000] [--domains 10000] [--files 100000]
                   [--postfix-files N (default: --files)] [--postfix-parallel 8]
                   [--no-postfix] [--keep]

SLUICE_BIN picks the binary (default build/sluice; use a release build).
Prints a Markdown table. The work directory is on the real disk
($SLUICE_BENCH_TMP or /tmp), removed at the end unless --keep.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TEMPLATE = (
    "From: Example News <news@example.com>\r\n"
    "To: {{first_name}} <{{email}}>\r\n"
    "Subject: Your November offer, {{first_name}}\r\n"
    "\r\n"
    "Dear {{first_name}},\r\n"
    "\r\n"
    "your personal code is {{code}}. It is valid until the end of the month.\r\n"
    + "This newsletter line is the same for every recipient; it pads the body.\r\n" * 20
)


def make_batch(root: Path, recipients: int, domains: int) -> Path:
    """NAME.batch/ under root (not yet in new/)."""
    d = root / "bench.batch"
    d.mkdir(parents=True)
    (d / "manifest.toml").write_text('sender = "news@example.com"\ntemplate = "template.eml"\n'
                                     'recipients = "recipients.csv"\ncampaign = "bench"\n'
                                     'tenant = "t1"\n')
    (d / "template.eml").write_text(TEMPLATE, newline="")
    with open(d / "recipients.csv", "w", newline="") as f:
        f.write("email,first_name,code\r\n")
        chunk = []
        for i in range(recipients):
            chunk.append(f"user{i}@d{i % domains}.example.com,Name{i},C{i * 7919 % 1000003:07d}\r\n")
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return d


def message(i: int) -> str:
    return (f"From: Example News <news@example.com>\r\nTo: <user{i}@d{i % 1000}.example.com>\r\n"
            f"Subject: message {i}\r\nMessage-ID: <bench{i}@example.com>\r\n\r\n"
            + "A line of body text, the same in every message of the benchmark.\r\n" * 8)


def sluice_pickup(work: Path, name: str) -> tuple[common.Sluice, Path]:
    pickup = work / f"{name}-pickup"
    shutil.rmtree(pickup, ignore_errors=True)
    s = common.Sluice(work, ["--no-delivery", "--pickup", str(pickup)], name=name)
    return s, pickup


def wait_stderr(s: common.Sluice, needle: str, seconds: float) -> float:
    """Polls the daemon's stderr for needle; returns time.monotonic() when seen."""
    deadline = time.monotonic() + seconds
    with open(s.err_path, "rb") as f:
        buf = b""
        while time.monotonic() < deadline:
            buf += f.read()
            if needle.encode() in buf:
                return time.monotonic()
            if s.proc.poll() is not None:
                raise RuntimeError(f"sluice exited: {buf.decode(errors='replace')[-800:]}")
            time.sleep(0.005)
    raise RuntimeError(f"'{needle}' not seen within {seconds} s")


def run_batch(work: Path, recipients: int, domains: int) -> dict:
    common.log(f"batch: writing {recipients} recipients over {domains} domains")
    s, pickup = sluice_pickup(work, "batch")
    try:
        src = make_batch(pickup / "tmp", recipients, domains)
        csv_mb = (src / "recipients.csv").stat().st_size / 1e6
        time.sleep(0.5)
        idle_kib = common.status_kib(s.pid, "VmRSS")
        common.log("batch: renaming it into new/")
        t0 = time.monotonic()
        os.rename(src, pickup / "new" / "bench.batch")
        # The pickup.batch_queued line comes after the commit and the
        # Reception record (through the log-writer thread: a few ms late).
        t1 = wait_stderr(s, "key=pickup.batch_queued", 300)
        peak = s.peak_rss_kib()
        # The text view's last line: "-- 1 message, N recipients pending, B bytes"
        # (--json would print every recipient's state: 100+ MB for a million).
        out = subprocess.run([common.sluice_bin(), "queue", "messages", "--spool", str(s.spool), "--spool-only"],
                             capture_output=True, text=True, check=True, timeout=300).stdout.splitlines()[-1]
        if not out.startswith(f"-- 1 message, {recipients} recipients pending"):
            raise RuntimeError(f"expected one message with {recipients} recipients: {out}")
        spool_mb = sum(p.stat().st_size for p in s.spool.glob("[0-9]*/*") if p.is_file()) / 1e6
        return {"seconds": t1 - t0, "peak_rss_kib": peak, "idle_rss_kib": idle_kib,
                "csv_mb": csv_mb, "spool_mb": spool_mb}
    finally:
        s.stop()


def count_pickup_receptions(log: Path, state: dict) -> int:
    """Counts pickup Reception lines, reading only complete lines not yet read."""
    try:
        with open(log, "rb") as f:
            f.seek(state.get("offset", 0))
            data = f.read()
    except FileNotFoundError:
        return 0
    cut = data.rfind(b"\n") + 1
    state["count"] = state.get("count", 0) + data[:cut].count(b'"protocol":"pickup"')
    state["offset"] = state.get("offset", 0) + cut
    return state["count"]


def write_files(directory: Path, files: int) -> list:
    names = [f"m{i:07d}" for i in range(files)]
    for i, n in enumerate(names):
        with open(directory / n, "w", newline="") as f:
            f.write(f"X-Sluice-Envelope-From: <news@example.com>\r\n"
                    f"X-Sluice-Envelope-To: <user{i}@d{i % 1000}.example.com>\r\n" + message(i))
    os.sync()
    return names


def wait_receptions(s: common.Sluice, files: int) -> float:
    """Waits until `files` pickup Reception records; returns that moment."""
    state: dict = {}
    deadline = time.monotonic() + 600
    next_report = time.monotonic() + 5
    while count_pickup_receptions(s.log_path, state) < files:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {state.get('count')} of {files} files queued")
        if time.monotonic() > next_report:
            common.log(f"files: {state.get('count', 0)} queued")
            next_report += 5
        time.sleep(0.02)
    return time.monotonic()


def run_files_predropped(work: Path, files: int) -> dict:
    pickup = work / "predropped-pickup"
    shutil.rmtree(pickup, ignore_errors=True)
    for d in ("tmp", "new", "bad"):
        (pickup / d).mkdir(parents=True)
    common.log(f"files: writing {files} single-message files into new/, Sluice stopped")
    write_files(pickup / "new", files)
    time.sleep(0.5)
    t0 = time.monotonic()
    s = common.Sluice(work, ["--no-delivery", "--pickup", str(pickup)], name="predropped")
    try:
        t1 = wait_receptions(s, files)
        peak = s.peak_rss_kib()
        if s.queued_messages() != files:
            raise RuntimeError("queue does not hold every file")
        return {"rate": files / (t1 - t0), "seconds": t1 - t0, "peak_rss_kib": peak}
    finally:
        s.stop()
        shutil.rmtree(pickup, ignore_errors=True)


def run_files(work: Path, files: int) -> dict:
    common.log(f"files: writing {files} single-message files into tmp/")
    s, pickup = sluice_pickup(work, "files")
    try:
        tmp, new = pickup / "tmp", pickup / "new"
        names = write_files(tmp, files)
        time.sleep(0.5)
        common.log("files: renaming them into new/")
        t0 = time.monotonic()
        for n in names:
            os.rename(tmp / n, new / n)
        renamed = time.monotonic() - t0
        t1 = wait_receptions(s, files)
        peak = s.peak_rss_kib()
        if s.queued_messages() != files:
            raise RuntimeError("queue does not hold every file")
        return {"rate": files / (t1 - t0), "seconds": t1 - t0, "rename_seconds": renamed,
                "peak_rss_kib": peak}
    finally:
        s.stop()


def run_postfix(work: Path, files: int, parallel: int) -> dict:
    pf = common.Postfix(work)  # holds what smtpd takes; local submission: header_checks below
    try:
        etc = pf.dir / "etc"
        subprocess.run(["postconf", "-c", str(etc), "-e", "header_checks = static:HOLD"], check=True)
        subprocess.run(["postfix", "-c", str(etc), "stop"], check=True, capture_output=True)
        common.log(f"postfix: submitting {files} messages with sendmail ({parallel} at a time), "
                   "Postfix stopped")
        queue = pf.dir / "queue"
        bodies = [message(i).encode() for i in range(files)]
        env = dict(os.environ, MAIL_CONFIG=str(etc))

        def submit(i: int) -> None:
            r = subprocess.run(["/usr/sbin/sendmail", "-C", str(etc), "-f", "news@example.com",
                                f"user{i}@d{i % 1000}.example.com"], input=bodies[i],
                               capture_output=True, env=env, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"sendmail failed: {r.stderr[-300:]!r}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(submit, range(files)))
        submit_seconds = time.monotonic() - t0
        dropped = sum(1 for _ in (queue / "maildrop").iterdir())
        if dropped != files:
            raise RuntimeError(f"{dropped} of {files} files in maildrop/")
        os.sync()
        time.sleep(0.5)
        common.log("postfix: starting it; pickup takes maildrop/ into the queue")
        t0 = time.monotonic()
        subprocess.run(["postfix", "-c", str(etc), "start"], check=True, capture_output=True)
        pf.master = int((queue / "pid" / "master.pid").read_text().strip())
        sampler = common.PeakSampler(pf.pss_kib)
        sampler.start()
        deadline = time.monotonic() + 1800
        held = 0
        while True:
            held = sum(len(fs) for _, _, fs in os.walk(queue / "hold"))
            if held >= files:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {held} of {files} messages reached hold/")
            time.sleep(0.05)
        t1 = time.monotonic()
        peak = sampler.finish()
        return {"rate": files / (t1 - t0), "seconds": t1 - t0, "submit_rate": files / submit_seconds,
                "peak_pss_kib": peak}
    finally:
        pf.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipients", type=int, default=1_000_000)
    ap.add_argument("--domains", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--postfix-files", type=int, default=None)
    ap.add_argument("--postfix-parallel", type=int, default=8)
    ap.add_argument("--no-postfix", action="store_true")
    ap.add_argument("--no-batch", action="store_true")
    ap.add_argument("--no-files", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    common.raise_nofile()
    work = common.make_workdir("sluice-bench-batch-")
    common.log(f"work directory {work}, sluice {common.sluice_bin()}")
    results: dict = {}
    try:
        if not a.no_batch:
            results["batch"] = run_batch(work, a.recipients, a.domains)
            common.log(f"batch: {results['batch']}")
        if not a.no_files:
            results["files"] = run_files(work, a.files)
            common.log(f"files: {results['files']}")
            results["predropped"] = run_files_predropped(work, a.files)
            common.log(f"files, pre-dropped: {results['predropped']}")
        if not a.no_postfix:
            results["postfix"] = run_postfix(work, a.postfix_files or a.files, a.postfix_parallel)
            common.log(f"postfix: {results['postfix']}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("| measure | result |\n|---|---|")
    if "batch" in results:
        b = results["batch"]
        print(f"| batch of {a.recipients:,} recipients over {a.domains:,} domains "
              f"({b['csv_mb']:.1f} MB CSV): rename to durably queued | {b['seconds']:.2f} s |")
        print(f"| Sluice peak RSS (VmHWM) during the batch / idle | {b['peak_rss_kib'] / 1024:.0f} MiB "
              f"/ {b['idle_rss_kib'] / 1024:.0f} MiB |")
        print(f"| spool after the batch (one record) | {b['spool_mb']:.1f} MB |")
    if "files" in results:
        f = results["files"]
        print(f"| {a.files:,} files renamed into new/ at once while Sluice runs | {f['rate']:,.0f} "
              f"files/s ({f['seconds']:.1f} s; the producer's renames took "
              f"{f['rename_seconds']:.1f} s; peak RSS {f['peak_rss_kib'] / 1024:.0f} MiB) |")
        f = results["predropped"]
        print(f"| {a.files:,} files in new/ when Sluice starts: start to all queued | "
              f"{f['rate']:,.0f} files/s ({f['seconds']:.1f} s; peak RSS "
              f"{f['peak_rss_kib'] / 1024:.0f} MiB) |")
    if "postfix" in results:
        p = results["postfix"]
        n = a.postfix_files or a.files
        print(f"| {n:,} messages in maildrop/: Postfix pickup + cleanup into the queue | "
              f"{p['rate']:,.0f} files/s ({p['seconds']:.1f} s; peak PSS "
              f"{p['peak_pss_kib'] / 1024:.0f} MiB) |")
        print(f"| Postfix `sendmail` submission ({a.postfix_parallel} at a time) | "
              f"{p['submit_rate']:,.0f} messages/s |")
        if "files" in results:
            print(f"| Sluice / Postfix, files taken per second (pre-dropped / while running) | "
                  f"{results['predropped']['rate'] / p['rate']:.1f}x / "
                  f"{results['files']['rate'] / p['rate']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
