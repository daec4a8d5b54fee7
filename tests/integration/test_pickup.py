"""The pickup directory (docs/PICKUP.md): single-message files dropped into
DIR/new are queued exactly once, by inotify while running and by the
start-up scan after a stop; bad files go to DIR/bad with NAME.error; two
daemons on one directory never take the same file; a crash at each claim
step (SLUICE_TEST_ABORT_AT) loses and duplicates nothing; `sluice inject`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sluice_harness import require_sluice_bin, wait_for

ENVELOPE = (
    "X-Sluice-Envelope-From: <sender@example.com>\r\n"
    "X-Sluice-Envelope-To: <{rcpt}>\r\n"
)


def message(i: int, rcpt: str | None = None, envelope: bool = True) -> tuple[bytes, bytes]:
    """(file bytes, the body Sluice must store)."""
    rcpt = rcpt or f"rcpt{i}@example.net"
    body = (f"From: <sender@example.com>\r\nTo: <{rcpt}>\r\nSubject: pickup {i}\r\n\r\n"
            f"Message number {i}.\r\n").encode()
    head = ENVELOPE.format(rcpt=rcpt).encode() if envelope else b""
    return head + body, body


def drop(pickup: Path, name: str, data: bytes) -> None:
    """As a producer should: write in tmp/, rename into new/."""
    tmp = pickup / "tmp" / name
    tmp.write_bytes(data)
    os.rename(tmp, pickup / "new" / name)


def make_dirs(pickup: Path) -> None:
    for d in ("tmp", "new", "bad"):
        (pickup / d).mkdir(parents=True, exist_ok=True)


def pickup_receptions(d) -> list:
    return [r for r in d.reception_records() if r.get("protocol") == "pickup"]


def wait_queued(d, n: int, timeout: float = 15.0) -> list:
    wait_for(lambda: len(pickup_receptions(d)) >= n, timeout, what=f"{n} pickup receptions")
    return pickup_receptions(d)


def claimed_files(d) -> list:
    return sorted(d.spool.glob("*/claimed/*"))


def queued_by_rcpt(daemons) -> dict:
    """recipient -> list of queue entries, over every daemon's spool."""
    out: dict = {}
    for d in daemons:
        for m in d.queue_json():
            for r in m["recipients"]:
                out.setdefault(r, []).append((d, m))
    return out


def test_files_dropped_while_running_are_queued_once(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    for sub in ("tmp", "new", "bad"):
        assert (pickup / sub).is_dir()
        assert (pickup / sub).stat().st_mode & 0o777 == 0o700
    sent = {}
    for i in range(20):
        data, body = message(i)
        drop(pickup, f"msg{i}", data)
        sent[f"rcpt{i}@example.net"] = body
    recs = wait_queued(d, 20)
    assert len(recs) == 20
    wait_for(lambda: not list((pickup / "new").iterdir()) and not claimed_files(d), 5,
             what="new/ and claimed/ empty")
    by_rcpt = queued_by_rcpt([d])
    assert set(by_rcpt) == set(sent)
    for rcpt, entries in by_rcpt.items():
        assert len(entries) == 1, f"{rcpt} queued {len(entries)} times"
        _, m = entries[0]
        assert m["sender"] == "sender@example.com"
        stored = d.queue_show(m["id"])
        assert stored.endswith(sent[rcpt]), stored
        prefix = stored[: len(stored) - len(sent[rcpt])]
        assert prefix.startswith(b"Received: by ")
        assert b"with local (pickup) id " + m["id"].encode() in prefix
        assert b"X-Sluice-Envelope" not in stored
    assert not list((pickup / "bad").iterdir())


def test_sendmail_t_recipients_and_bcc_removed(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    data = (b"From: \"Alice\" <alice@example.com>\nTo: bob@example.net, Carol <carol@example.org>\n"
            b"Cc: dave@example.com\nBcc: secret@example.org\nSubject: t\n\nbody line\n")
    drop(pickup, "t1", data)
    wait_queued(d, 1)
    [m] = d.queue_json()
    assert m["sender"] == "alice@example.com"
    assert sorted(m["recipients"]) == sorted(
        ["bob@example.net", "carol@example.org", "dave@example.com", "secret@example.org"])
    stored = d.queue_show(m["id"])
    assert b"secret@example.org" not in stored.split(b"\r\n\r\n", 1)[0].split(b"Subject")[1]
    assert b"Bcc" not in stored
    assert stored.endswith(b"Subject: t\r\n\r\nbody line\r\n")  # bare LF normalised to CRLF


def test_files_dropped_while_stopped_are_taken_at_start(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    make_dirs(pickup)
    for i in range(10):
        drop(pickup, f"early{i}", message(i)[0])
    # a producer that wrote straight into new/ (no inotify event will come)
    (pickup / "new" / "direct").write_bytes(message(99)[0])
    d = sluice_factory(args=["--pickup", str(pickup)])
    recs = wait_queued(d, 11)
    assert len(recs) == 11
    by_rcpt = queued_by_rcpt([d])
    assert all(len(v) == 1 for v in by_rcpt.values()) and len(by_rcpt) == 11
    # a second start finds nothing more to do
    d.stop()
    d2 = sluice_factory(spool=d.spool, args=["--pickup", str(pickup)])
    time.sleep(0.5)
    assert len(queued_by_rcpt([d2])) == 11
    assert all(len(v) == 1 for v in queued_by_rcpt([d2]).values())


BAD_FILES = {
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00garbage\xff\xfe", "NUL"),
    "binary_no_nul": (b"\x89PNG\r\n\x1a\n\xff\xfe\xfd", "not a header field"),
    "truncated_header": (b"From: a@example.com\r\nTo: b@example.net\r\nSubj", "not a header field"),
    "header_without_body_separator": (b"From: a@example.com\r\nTo: b@example.net\r\n", "truncated"),
    "no_recipients": (b"From: a@example.com\r\nSubject: nobody\r\n\r\nx\r\n", "no recipients"),
    "bad_address": (b"X-Sluice-Envelope-From: <a@example.com>\r\nX-Sluice-Envelope-To: <not an address>\r\n"
                    b"Subject: x\r\n\r\nx\r\n", "bad envelope recipient"),
    "bad_header_address": (b"From: a@example.com\r\nTo: b@@example.net\r\n\r\nx\r\n", "bad recipient"),
    "enormous_line": (b"From: a@example.com\r\nTo: b@example.net\r\n\r\n" + b"x" * 70000 + b"\r\n",
                      "line length"),
    "empty": (b"", "empty file"),
    "bare_cr": (b"From: a@example.com\rTo: b@example.net\r\n\r\nx\r\n", "bare CR"),
    "too_big": (b"From: a@example.com\r\nTo: b@example.net\r\n\r\n" + (b"y" * 70 + b"\r\n") * 20000,
                "size limit"),
}


def test_bad_files_go_to_bad_with_a_reason(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)], max_message_size=1024 * 1024)
    for name, (data, _) in BAD_FILES.items():
        drop(pickup, name, data)
    drop(pickup, "good", message(1)[0])
    bad = pickup / "bad"
    # The note is written before the file is moved beside it: wait for both.
    wait_for(lambda: all((bad / f"{n}.error").exists() and (bad / n).exists() for n in BAD_FILES),
             15, what="every bad file rejected")
    for name, (data, words) in BAD_FILES.items():
        assert (bad / name).read_bytes() == data, f"{name}: content changed"
        reason = (bad / f"{name}.error").read_text()
        assert words in reason, f"{name}: {reason!r} lacks {words!r}"
        assert reason.startswith(("line ", "file: ")), reason
    wait_queued(d, 1)
    assert len(d.queue_json()) == 1
    rejections = {r["file"]: r for r in d.log_records() if r.get("type") == "Rejection"}
    assert set(rejections) == set(BAD_FILES)
    for name, r in rejections.items():
        assert r["source"] == "pickup"
        assert BAD_FILES[name][1] in r["reason"]
    assert not list((pickup / "new").iterdir())
    assert not claimed_files(d)


def test_unwritable_bad_directory_keeps_the_file(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    # bad/ that cannot take files (a plain file in its place: works as root too)
    os.rename(pickup / "bad", pickup / "bad.real")
    (pickup / "bad").write_text("not a directory\n")
    drop(pickup, "junk", b"\x01\x02 junk without headers")
    wait_for(lambda: "cannot move it to" in d.stderr_since_start(), 10, what="the error logged")
    [kept] = claimed_files(d)
    assert kept.read_bytes() == b"\x01\x02 junk without headers"
    assert not d.queue_json()
    # bad/ back: the next start processes the claimed file again
    d.stop()
    (pickup / "bad").unlink()
    os.rename(pickup / "bad.real", pickup / "bad")
    d2 = sluice_factory(spool=d.spool, args=["--pickup", str(pickup)])
    # The .error note is written before the file moves: wait for both.
    wait_for(lambda: any(p.suffix == ".error" for p in (pickup / "bad").iterdir())
             and not claimed_files(d2), 10, what="the file in bad/")


@pytest.mark.time_limit(120)
def test_two_daemons_never_take_the_same_file(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    a = sluice_factory(args=["--pickup", str(pickup)])
    b = sluice_factory(args=["--pickup", str(pickup)])
    n = 400
    for i in range(n):
        drop(pickup, f"m{i:04d}", message(i)[0])
    wait_for(lambda: len(pickup_receptions(a)) + len(pickup_receptions(b)) >= n, 30,
             what=f"{n} receptions over both daemons")
    time.sleep(0.5)
    assert len(pickup_receptions(a)) + len(pickup_receptions(b)) == n
    by_rcpt = queued_by_rcpt([a, b])
    assert len(by_rcpt) == n
    dupes = {r: len(v) for r, v in by_rcpt.items() if len(v) != 1}
    assert not dupes, f"queued more than once: {list(dupes.items())[:5]}"
    print(f"daemon a took {len(pickup_receptions(a))}, daemon b took {len(pickup_receptions(b))}")
    assert not list((pickup / "new").iterdir())
    assert not claimed_files(a) and not claimed_files(b)


@pytest.mark.parametrize("point", ["after-claim", "after-commit"])
def test_crash_at_each_claim_step_then_restart(sluice_factory, tmp_path, monkeypatch, point):
    pickup = tmp_path / "pickup"
    make_dirs(pickup)
    n = 5
    for i in range(n):
        drop(pickup, f"c{i}", message(i)[0])
    monkeypatch.setenv("SLUICE_TEST_ABORT_AT", point)
    d = sluice_factory(args=["--pickup", str(pickup)])
    d.expected_exit = True
    wait_for(lambda: not d.alive(), 10, what=f"abort at {point}")
    assert f"SLUICE_TEST_ABORT_AT={point}" in d.stderr_since_start()
    # files of one loop turn are claimed (and committed) together
    assert claimed_files(d), "nothing left claimed by the crash"
    if point == "after-commit":
        # records are durable, their claimed files still there
        assert d.queue_json()
    else:
        assert not d.queue_json()
    monkeypatch.delenv("SLUICE_TEST_ABORT_AT")
    d2 = sluice_factory(spool=d.spool, args=["--pickup", str(pickup)])
    wait_for(lambda: len(queued_by_rcpt([d2])) == n and not claimed_files(d2)
             and not list((pickup / "new").iterdir()), 15, what="every file queued")
    by_rcpt = queued_by_rcpt([d2])
    dupes = {r: len(v) for r, v in by_rcpt.items() if len(v) != 1}
    assert not dupes, f"queued more than once after a crash {point}: {dupes}"
    assert not list((pickup / "bad").iterdir())
    if point == "after-commit":
        wait_for(lambda: "already queued (removed)" in d2.stderr_since_start(), 10,
                 what="the recovery note")
    else:
        wait_for(lambda: "to process again" in d2.stderr_since_start(), 10,
                 what="the recovery note")


def test_pickup_and_spool_on_different_filesystems_refused(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to try")
    bin_ = require_sluice_bin()
    pickup = shm / f"sluice-pickup-test-{os.getpid()}"
    try:
        r = subprocess.run([str(bin_), "serve", "--listen", "127.0.0.1:1", "--spool", str(tmp_path / "spool"),
                            "--pickup", str(pickup), "--hostname", "mx.sluice.test"],
                           capture_output=True, timeout=20)
        assert r.returncode == 1
        assert b"different filesystems" in r.stderr
    finally:
        for sub in ("tmp", "new", "bad"):
            if (pickup / sub).is_dir():
                (pickup / sub).rmdir()
        if pickup.is_dir():
            pickup.rmdir()


def run_inject(args, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([str(require_sluice_bin()), "inject", *args], input=data,
                          capture_output=True, timeout=20)


def test_inject(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    body = b"Subject: injected\n\nhello\n"
    # --config: the daemon's, with server.require_from off (sluice_harness).
    r = run_inject(["--config", str(d.config_path), "--pickup", str(pickup), "--from",
                    "a@example.com", "--to", "b@example.net",
                    "--to", "c@example.org"], body)
    assert r.returncode == 0, r.stderr
    name = r.stdout.decode().strip()
    assert name and "/" not in name
    r2 = run_inject(["--pickup", str(pickup), "-t"],
                    b"From: x@example.com\nTo: y@example.net\nBcc: z@example.org\n\nbody\n")
    assert r2.returncode == 0, r2.stderr
    wait_queued(d, 2)
    msgs = {m["sender"]: m for m in d.queue_json()}
    assert sorted(msgs["a@example.com"]["recipients"]) == ["b@example.net", "c@example.org"]
    assert sorted(msgs["x@example.com"]["recipients"]) == ["y@example.net", "z@example.org"]
    assert d.queue_show(msgs["a@example.com"]["id"]).endswith(b"Subject: injected\r\n\r\nhello\r\n")
    assert not list((pickup / "tmp").iterdir())


def test_inject_fails_clearly(tmp_path):
    missing = tmp_path / "nope"
    r = run_inject(["--pickup", str(missing), "--from", "a@example.com", "--to", "b@example.net"],
                   b"From: a@example.com\nSubject: x\n\nx\n")
    assert r.returncode == 1
    assert b"missing" in r.stderr and str(missing).encode() in r.stderr
    assert not missing.exists()
    make_dirs(tmp_path / "p")
    r = run_inject(["--pickup", str(tmp_path / "p"), "-t"], b"Subject: nobody\n\nx\n")
    assert r.returncode == 1
    assert b"no recipients" in r.stderr
    r = run_inject(["--pickup", str(tmp_path / "p")], b"Subject: x\n\nx\n")
    assert r.returncode == 2
