"""sluice-blast and sluice-sink (tools/, docs/TOOLS.md): blast against sink
with every body digest checked, every scripted sink behaviour seen through
Python's smtplib, and blast against the real daemon.

The tools are found next to the daemon: $SLUICE_TOOLS_DIR, else
<dir of SLUICE_BIN>/tools (build/tools for build/sluice)."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from sluice_harness import CLIENT_HELO, free_port, scaled, sluice_bin


def tools_dir() -> Path:
    env = os.environ.get("SLUICE_TOOLS_DIR")
    return Path(env) if env else sluice_bin().parent / "tools"


def tool(name: str) -> str:
    p = tools_dir() / name
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"{name} not found at {p} (build it, or set SLUICE_TOOLS_DIR)", pytrace=False)
    return str(p)


class Sink:
    def __init__(self, workdir: Path, args=(), script: str | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.stats_path = workdir / "stats.json"
        self.stderr_path = workdir / "sink.stderr"
        cmd = [tool("sluice-sink"), "--listen", f"127.0.0.1:{self.port}", "--stats-json", str(self.stats_path)]
        if script is not None:
            (workdir / "script.txt").write_text(script)
            cmd += ["--script", str(workdir / "script.txt")]
        cmd += list(args)
        self.cmd = cmd
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + scaled(10)
        while b"sluice-sink: ready" not in self.stderr_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sink did not start: {self.stderr_path.read_text()}")
            time.sleep(0.02)

    def stats(self) -> dict:
        """SIGUSR1, then the freshly written stats file."""
        before = self.stats_path.stat().st_mtime_ns if self.stats_path.exists() else 0
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + scaled(5)
        while time.monotonic() < deadline:
            if self.stats_path.exists() and self.stats_path.stat().st_mtime_ns != before:
                return json.loads(self.stats_path.read_text())
            time.sleep(0.02)
        raise AssertionError("sink did not write its stats on SIGUSR1")

    def stop(self) -> dict:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        assert self.proc.returncode == 0, f"sink exited {self.proc.returncode}: {self.stderr_path.read_text()}"
        return json.loads(self.stats_path.read_text())

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname=CLIENT_HELO, timeout=scaled(10))


@pytest.fixture
def sink_factory(tmp_path):
    sinks = []

    def start(**kwargs) -> Sink:
        s = Sink(tmp_path / f"sink{len(sinks)}", **kwargs)
        sinks.append(s)
        return s

    yield start
    for s in sinks:
        if s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGKILL)
            s.proc.wait(timeout=5)


def blast(*args, timeout=60, check=True) -> dict:
    cmd = [tool("sluice-blast"), "--json", *args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(timeout))
    if check:
        assert r.returncode == 0, f"{cmd} exited {r.returncode}: {r.stdout!r} {r.stderr!r}"
    report = json.loads(r.stdout)
    report["_rc"] = r.returncode
    return report


MESSAGE = b"From: <a@x.example>\r\nSubject: t\r\n\r\nhello\r\n.dot line\r\n"


# -- blast -> sink -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", [["--pipelining", "on"], ["--pipelining", "off"], ["--bdat"]],
                         ids=["pipelined-data", "lockstep-data", "bdat"])
def test_blast_into_sink_digests_and_counts(sink_factory, tmp_path, mode):
    store = tmp_path / "store"
    store.mkdir()
    sink = sink_factory(args=["--store", str(store), "--threads", "2"])
    n = 1500
    rep = blast("--target", f"127.0.0.1:{sink.port}", "--connections", "12", "--messages", str(n),
                "--size", "3000", "--recipients", "3", "--domains", "4", *mode)
    stats = sink.stop()
    assert rep["messages_ok"] == n and rep["messages_failed"] == 0 and rep["messages_not_sent"] == 0
    assert rep["recipients_ok"] == 3 * n
    assert rep["latency_us"]["count"] == n
    assert rep["latency_us"]["p50"] <= rep["latency_us"]["p99"] <= rep["latency_us"]["max"]
    assert stats["messages"] == n
    assert stats["recipients"] == 3 * n
    assert stats["digest_ok"] == n
    assert stats["digest_mismatch"] == 0 and stats["digest_missing"] == 0
    assert stats["connections"] == 12 and stats["peak_concurrent"] <= 12
    assert sum(d["recipients"] for d in stats["domains"].values()) == 3 * n
    assert set(stats["domains"]) == {f"d{i}.example" for i in range(4)}
    if mode == ["--bdat"]:
        assert stats["bdat_messages"] == n
    else:
        assert stats["data_messages"] == n
    files = list(store.glob("*.eml"))
    assert len(files) == n
    ids = set()
    for f in files:
        data = f.read_bytes()
        m = re.search(rb"^X-Blast-Id: (\d+)\r$", data, re.M)
        assert m, f"{f} lacks X-Blast-Id"
        ids.add(int(m.group(1)))
    assert ids == set(range(n))


def test_blast_stored_bytes_are_exact(sink_factory, tmp_path):
    """A sample message with dot lines comes out of the sink byte for byte."""
    samples = tmp_path / "samples"
    samples.mkdir()
    body = b"line\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
    (samples / "a.eml").write_bytes(b"From: <s@x.example>\r\nSubject: sample\r\n\r\n" + body)
    store = tmp_path / "store"
    store.mkdir()
    sink = sink_factory(args=["--store", str(store)])
    blast("--target", f"127.0.0.1:{sink.port}", "--messages", "5", "--sample-dir", str(samples))
    stats = sink.stop()
    assert stats["digest_ok"] == 5
    for f in store.glob("*.eml"):
        data = f.read_bytes()
        assert data.endswith(b"\r\n\r\n" + body), data
        assert b"X-Blast-Digest: crc32c=" in data


# -- scripted sink behaviour through smtplib ------------------------------------------------

SCRIPT = """\
# test script
match=*@slow.example action=delay=400
match=drop@* action=drop-data
match=*@t.example action=tempfail
match=*@p.example action=permfail
"""


def test_sink_builtin_and_scripted_refusals(sink_factory):
    sink = sink_factory(script=SCRIPT)
    for rcpt, code in [("tempfail@x.example", 451), ("permfail@x.example", 550),
                       ("bob@t.example", 451), ("bob@p.example", 550)]:
        with sink.smtp() as s:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail("a@x.example", [rcpt], MESSAGE)
            assert e.value.recipients[rcpt][0] == code
    with sink.smtp() as s:  # mixed: the good recipient gets the message
        refused = s.sendmail("a@x.example", ["ok@x.example", "permfail@x.example"], MESSAGE)
        assert refused == {"permfail@x.example": (550, b"5.1.1 Recipient rejected (sink script)")}
    stats = sink.stop()
    assert stats["tempfail"] == 2 and stats["permfail"] == 3 and stats["messages"] == 1


def test_sink_drop_mid_data(sink_factory):
    sink = sink_factory(script=SCRIPT)
    s = sink.smtp()
    s.ehlo()
    assert s.mail("a@x.example")[0] == 250
    assert s.rcpt("drop@x.example")[0] == 250
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.data(MESSAGE)
    s.close()
    stats = sink.stop()
    assert stats["dropped"] == 1 and stats["messages"] == 0


def test_sink_delay(sink_factory):
    sink = sink_factory(script=SCRIPT)
    with sink.smtp() as s:
        t0 = time.monotonic()
        s.sendmail("a@x.example", ["fast@x.example"], MESSAGE)
        fast = time.monotonic() - t0
        t0 = time.monotonic()
        s.sendmail("a@x.example", ["bob@slow.example"], MESSAGE)
        slow = time.monotonic() - t0
    assert slow >= 0.4, slow
    assert fast < scaled(0.3), fast
    stats = sink.stop()
    assert stats["delayed"] == 1 and stats["messages"] == 2


def test_sink_421_at_connect(sink_factory):
    sink = sink_factory(script="match=* action=421-connect\n")
    with pytest.raises(smtplib.SMTPConnectError) as e:
        sink.smtp()
    assert e.value.smtp_code == 421
    stats = sink.stop()
    assert stats["refused_script"] == 1 and stats["messages"] == 0


def test_sink_max_connections(sink_factory):
    sink = sink_factory(args=["--max-connections", "2"])
    a, b = sink.smtp(), sink.smtp()
    with pytest.raises(smtplib.SMTPConnectError) as e:
        sink.smtp()
    assert e.value.smtp_code == 421
    a.quit()
    time.sleep(0.2)
    c = sink.smtp()  # room again
    c.sendmail("a@x.example", ["x@y.example"], MESSAGE)
    for s in (b, c):
        s.quit()
    stats = sink.stop()
    assert stats["refused_max_connections"] == 1
    assert stats["peak_concurrent"] == 2
    assert stats["connections"] == 4


def test_sink_size_and_extensions(sink_factory):
    sink = sink_factory(args=["--size", "100", "--no-pipelining", "--no-chunking", "--no-8bitmime"])
    with sink.smtp() as s:
        s.ehlo()
        assert not s.has_extn("pipelining") and not s.has_extn("chunking") and not s.has_extn("8bitmime")
        assert s.has_extn("size") and s.esmtp_features["size"] == "100"
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@x.example", ["x@y.example"], MESSAGE + b"x" * 200 + b"\r\n")
        assert e.value.smtp_code == 552


def test_blast_counts_refusals_and_fails(sink_factory):
    sink = sink_factory(script="match=*@d1.example action=permfail\n")
    rep = blast("--target", f"127.0.0.1:{sink.port}", "--connections", "4", "--messages", "200",
                "--domains", "2", check=False)
    assert rep["_rc"] != 0  # unexpected failures
    assert rep["messages_ok"] + rep["messages_failed"] == 200
    assert rep["messages_failed"] > 0 and rep["replies_4xx_5xx"].get("550", 0) == rep["messages_failed"]
    rep2 = blast("--target", f"127.0.0.1:{sink.port}", "--messages", "20", "--domains", "2",
                 "--expect-failures", check=False)
    assert rep2["_rc"] == 0
    stats = sink.stop()
    assert stats["messages"] == rep["messages_ok"] + rep2["messages_ok"]


def test_blast_rate_limit(sink_factory):
    sink = sink_factory()
    t0 = time.monotonic()
    rep = blast("--target", f"127.0.0.1:{sink.port}", "--connections", "4", "--messages", "100", "--rate", "200")
    took = time.monotonic() - t0
    assert rep["messages_ok"] == 100
    assert took >= 0.45, took  # 100 messages at 200/s start over ~0.5 s
    sink.stop()


# -- blast -> the real daemon ------------------------------------------------------------

@pytest.mark.time_limit(120)
def test_blast_into_sluice_queues_exactly_n(sluice):
    n = 800
    rep = blast("--target", f"{sluice.host}:{sluice.port}", "--connections", "16", "--messages", str(n),
                "--recipients", "2", "--domains", "3", timeout=100)
    assert rep["messages_ok"] == n and rep["messages_failed"] == 0
    assert rep["server_pipelining"] is True
    entries = sluice.queue_list()
    assert len(entries) == n, len(entries)
    assert all(e.rcptcount == 2 for e in entries)
