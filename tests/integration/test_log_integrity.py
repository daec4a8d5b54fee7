"""The accounting log on a filesystem that fills up (issue "Mail integrity").

The log goes to a small tmpfs (root only; skipped with the reason
elsewhere). Mail keeps arriving (queued on another filesystem) while the log
cannot be written: records must be whole lines or absent, never a fragment
with the next record glued to it. The shard keeps its whole lines (up to
limits::kLogBufferMax) and retries; past that bound records are dropped and
counted, and stderr says so in a few lines with the count. Once space
returns, the kept records and the new ones are logged whole, and the count
on stderr is exactly the number of acknowledged messages without a record.
"""

import json
import os
import re
import signal
import smtplib
import subprocess
import time

import pytest

from sluice_harness import queued_id_from_smtplib, scaled, wait_for

# 400 recipients with 60-character local parts: ~30 KB per Reception record,
# so ~35 records exceed the 1 MiB a shard keeps while writes fail.
RECIPIENTS = [f"{'r' * 52}{i:08d}@example.net" for i in range(400)]
MESSAGE = "Subject: log integrity\r\n\r\nbody\r\n"


@pytest.fixture
def log_fs(tmp_path):
    mnt = tmp_path / "logfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def send_one(d) -> str:
    """One message to RECIPIENTS on a fresh connection (so the shards share
    the work); returns its queue id."""
    with d.smtp() as s:
        s.ehlo()
        code, resp = s.mail("sender@example.com")
        assert code == 250, (code, resp)
        for r in RECIPIENTS:
            code, resp = s.rcpt(r)
            assert code == 250, (code, resp)
        code, resp = s.data(MESSAGE)
        return queued_id_from_smtplib(code, resp)


def strict_records(path) -> list:
    """Every line of the log, each one strict JSON holding exactly one record."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"the log ends inside a line: {data[-200:]!r}"
    records = []
    for n, raw in enumerate(data.split(b"\n")[:-1], 1):
        # Strict: UTF-8 and no NaN/Infinity; json.loads refuses control characters.
        def no_constant(name, raw=raw, n=n):
            raise AssertionError(f"line {n}: non-JSON constant {name}: {raw[:200]!r}")
        try:
            rec = json.loads(raw.decode("utf-8", "strict"), parse_constant=no_constant)
        except ValueError as e:
            raise AssertionError(f"line {n} is not one JSON record ({e}): {raw[:300]!r}")
        assert isinstance(rec, dict), raw[:200]
        # A quote inside a value is escaped, so a raw "type": is a key:
        # two of them would be two records on one line.
        types = raw.count(b'"type":')
        assert types == 1, f"line {n} holds {types} records: {raw[:300]!r}"
        records.append(rec)
    return records


def log_lines_of(d) -> list:
    return [l for l in d.stderr_since_start().splitlines() if "accounting log:" in l]


@pytest.mark.time_limit(150)
@pytest.mark.parametrize("shards", [1, 2])
@pytest.mark.slow
def test_full_log_filesystem_never_tears_the_log(sluice_factory, log_fs, shards):
    log = log_fs / "sluice.log"
    d = sluice_factory(log=log, shards=shards, max_recipients=len(RECIPIENTS))
    free = os.statvfs(log_fs).f_bavail * os.statvfs(log_fs).f_frsize
    filler = log_fs / "filler"
    filler.write_bytes(b"\0" * (free - 100 * 1024))

    # Fill the rest: sends until a write fails, then enough to overflow
    # what every shard keeps.
    acked = []
    for _ in range(30):
        acked.append(send_one(d))
        time.sleep(0.02)
        if any("write failed" in l for l in log_lines_of(d)):
            break
    failed = [l for l in log_lines_of(d) if "write failed" in l]
    assert failed, f"the log never failed; stderr: {log_lines_of(d)}"
    assert "No space left on device" in failed[0], failed
    for _ in range(40 * shards):
        acked.append(send_one(d))
    # While full, the log is still whole lines (the torn write was cut back).
    during = strict_records(log)
    assert 0 < len(during) < len(acked)

    # Space returns: the kept records and new ones are written whole.
    filler.unlink()
    wait_for(lambda: any("writes recovered" in l for l in log_lines_of(d)), 10,
             what="the log's recovery line")
    after = [send_one(d) for _ in range(5)]
    acked += after
    wait_for(lambda: set(after) <= {r.get("id") for r in strict_records(log)}, 10,
             what="Reception records of the messages sent after space returned")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(scaled(20)) == 0

    records = strict_records(log)
    ids = [r["id"] for r in records if r["type"] == "Reception"]
    assert len(ids) == len(set(ids)), "a record was written twice"
    assert set(ids) <= set(acked)
    for r in records:
        assert r["recipients"] == RECIPIENTS and r["sender"] == "sender@example.com", r["id"]
    lines = log_lines_of(d)
    lost = sum(int(m.group(1)) for l in lines
               if "recovered" in l or "since the last report" in l
               for m in [re.search(r"(\d+) records lost", l)] if m)
    assert lost > 0, lines
    # Exactly the acknowledged messages without a record were counted lost.
    assert len(acked) - len(ids) == lost, (len(acked), len(ids), lines)
    # Reported, not once per record: a line when it started, one when it ended.
    assert len(lines) <= 2 + shards, lines
    assert re.search(r"writes recovered after [0-9.]+ s: \d+ records lost, \d+ write errors",
                     "\n".join(lines)), lines


@pytest.mark.time_limit(90)
def test_stop_while_the_log_cannot_be_written(sluice_factory, log_fs):
    """A daemon stopped while its log's filesystem is still full stops
    promptly (the log does not hold the shard), keeps the file whole lines,
    and says on stderr how many records were lost."""
    log = log_fs / "sluice.log"
    d = sluice_factory(log=log, shards=1, max_recipients=len(RECIPIENTS))
    st = os.statvfs(log_fs)
    (log_fs / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 40 * 1024))
    acked = [send_one(d) for _ in range(6)]
    wait_for(lambda: any("write failed" in l for l in log_lines_of(d)), 10,
             what="the log's failure line")
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(scaled(20)) == 0
    assert time.monotonic() - started < scaled(10)
    ids = [r["id"] for r in strict_records(log)]
    lines = log_lines_of(d)
    m = re.search(r"(\d+) records lost since the last report, writes still failing "
                  r"\(No space left on device\)", "\n".join(lines))
    assert m, lines
    assert int(m.group(1)) == len(acked) - len(ids) > 0, (lines, len(acked), ids)
