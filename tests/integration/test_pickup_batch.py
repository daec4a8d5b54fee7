"""Batches in the pickup directory (docs/PICKUP.md, "Batches"): a directory
NAME.batch/ (manifest.toml, a template with {{field}} placeholders, a CSV of
recipients) renamed into DIR/new is queued exactly once as ONE spool record
(the template stored once, each recipient's values in the envelope), by
inotify while running and by the start-up scan after a stop; bad rows are
skipped and reported in DIR/bad/NAME.error; a bad manifest or template
rejects the batch whole; a crash at each step (SLUICE_TEST_ABORT_AT, and a
kill -9 in the middle of a large batch) loses and duplicates nothing; two
daemons on one directory never take the same batch; `sluice inject --batch`.

Every daemon runs with --no-delivery (the harness default): the record is
checked through `sluice queue messages --json` and `sluice queue show`."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sluice_harness import require_sluice_bin, wait_for

MANIFEST = 'sender = "news@example.com"\ntemplate = "template.eml"\nrecipients = "recipients.csv"\n'

TEMPLATE = (
    "From: Example News <news@example.com>\r\n"
    "To: \"{{name}}\" <{{email}}>\r\n"
    "Subject: Hello {{name}}\r\n"
    "\r\n"
    "Dear {{name}},\r\n"
    "your city is {{ city }}; {{{{not a field}} stays.\r\n"
)


def render(name: str, email: str, city: str) -> bytes:
    return (f"From: Example News <news@example.com>\r\n"
            f"To: \"{name}\" <{email}>\r\n"
            f"Subject: Hello {name}\r\n"
            f"\r\n"
            f"Dear {name},\r\n"
            f"your city is {city}; " "{{not a field}} stays.\r\n").encode()


def make_dirs(pickup: Path) -> None:
    for d in ("tmp", "new", "bad"):
        if not (pickup / d).exists():  # bad/ may be a plain file on purpose
            (pickup / d).mkdir(parents=True)


def write_batch(root: Path, name: str, files: dict) -> Path:
    d = root / name
    d.mkdir(parents=True)
    for fname, data in files.items():
        (d / fname).write_bytes(data.encode() if isinstance(data, str) else data)
    return d


def drop_batch(pickup: Path, name: str, files: dict) -> None:
    """As a producer should: build it in tmp/, rename the directory into new/."""
    make_dirs(pickup)
    write_batch(pickup / "tmp", name, files)
    os.rename(pickup / "tmp" / name, pickup / "new" / name)


def csv_rows(rows) -> str:
    return "email,name,city\r\n" + "".join(f"{e},{n},{c}\r\n" for e, n, c in rows)


def people(n: int, domains: int = 50, prefix: str = "p"):
    return [(f"{prefix}{i}@d{i % domains}.example", f"Name{i}", f"City{i % 7}") for i in range(n)]


def batch_files(rows, manifest: str = MANIFEST, template: str = TEMPLATE) -> dict:
    return {"manifest.toml": manifest, "template.eml": template, "recipients.csv": csv_rows(rows)}


def receptions(d) -> list:
    return [r for r in d.reception_records() if r.get("protocol") == "pickup"]


def claimed(d) -> list:
    return sorted(d.spool.glob("*/claimed/*"))


def spool_bytes(d) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(d.spool.glob("[0-9]*/*")) if p.is_file())


def all_recipients(daemons) -> dict:
    """recipient -> [(daemon, message)] over every daemon's spool."""
    out: dict = {}
    for d in daemons:
        for m in d.queue_json():
            for r in m["recipients"]:
                out.setdefault(r, []).append((d, m))
    return out


def test_batch_is_one_record_with_the_template_once(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    rows = people(300)
    marker = "".join(f"Unique paragraph line {i} " + "x" * 60 + "\r\n" for i in range(40))
    manifest = MANIFEST + 'campaign = "nov-2026"\ntenant = "acme"\n'
    drop_batch(pickup, "news.batch", batch_files(rows, manifest, TEMPLATE + marker))
    wait_for(lambda: receptions(d), 15, what="the batch's Reception record")
    [rec] = receptions(d)
    assert rec["recipients"] == [r[0] for r in rows]
    assert (rec["campaign"], rec["tenant"], rec["skipped"]) == ("nov-2026", "acme", 0)
    assert rec["sender"] == "news@example.com"
    wait_for(lambda: not claimed(d) and not list((pickup / "new").iterdir()), 10,
             what="new/ and claimed/ empty")
    [m] = d.queue_json()
    assert m["id"] == rec["id"]
    assert m["recipients"] == [r[0] for r in rows]
    assert m["merge_fields"] == ["name", "email", "city"]
    assert m["values"] == [[n, e, c] for e, n, c in rows]
    assert (m["campaign"], m["tenant"]) == ("nov-2026", "acme")
    # One body on disk for 300 recipients: the template itself.
    assert spool_bytes(d).count(marker.encode()) == 1
    stored = d.queue_show(m["id"])
    assert stored.endswith((TEMPLATE + marker).encode())
    assert b"with local (pickup) id " + m["id"].encode() in stored
    # Each recipient's own message, rendered from the stored template.
    for e, n, c in (rows[0], rows[123], rows[-1]):
        r = d.cli("queue", "show", "--spool", str(d.spool), m["id"], "--body", "--recipient", e)
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith(render(n, e, c) + marker.encode()), r.stdout[-600:]
    assert not list((pickup / "bad").iterdir())


def test_batch_without_placeholders_is_one_message_for_all(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    template = "From: news@example.com\nSubject: same for all\n\nHello {{{{everyone}}.\n"
    drop_batch(pickup, "plain.batch", batch_files(people(5), template=template))
    wait_for(lambda: receptions(d), 15, what="the batch queued")
    [m] = d.queue_json()
    assert len(m["recipients"]) == 5
    assert "merge_fields" not in m and "values" not in m and "campaign" not in m
    # The stored body is the message itself, the escape resolved.
    assert d.queue_show(m["id"]).endswith(
        b"From: news@example.com\r\nSubject: same for all\r\n\r\nHello {{everyone}}.\r\n")


def test_batches_dropped_while_stopped_are_taken_at_start(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    make_dirs(pickup)
    for k in range(3):
        drop_batch(pickup, f"early{k}.batch", batch_files(people(10, prefix=f"b{k}-")))
    d = sluice_factory(args=["--pickup", str(pickup)])
    wait_for(lambda: len(receptions(d)) == 3, 15, what="3 batches queued")
    by_rcpt = all_recipients([d])
    assert len(by_rcpt) == 30 and all(len(v) == 1 for v in by_rcpt.values())
    d.stop()
    d2 = sluice_factory(spool=d.spool, args=["--pickup", str(pickup)])
    time.sleep(0.5)
    assert len(d2.queue_json()) == 3


def test_bad_rows_are_skipped_and_reported(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    csv = ("email,name,city\n"                     # line 1
           "ok1@example.net,One,Oslo\n"            # 2
           "not an address,Two,Rome\n"             # 3
           "ok2@example.net,\"Two, Jr\",Rio\n"     # 4
           "ok3@example.net,Three\n"               # 5: a field short
           "ok1@example.net,Again,Oslo\n"          # 6: duplicate
           f"ok4@example.net,{'y' * 70000},Big\n"  # 7: enormous line
           "ok5@example.net,\"Multi\nLine\",Lima\n"  # 8-9: line break in a value
           "\n"                                    # 10: blank, ignored
           "ok6@example.net,Six,Paris\n"           # 11
           "ok7@example.net,\"Open,Never closed\n")  # 12: truncated quoted field
    drop_batch(pickup, "rows.batch", {"manifest.toml": MANIFEST, "template.eml": TEMPLATE,
                                      "recipients.csv": csv})
    wait_for(lambda: receptions(d), 15, what="the batch queued")
    [rec] = receptions(d)
    assert rec["recipients"] == ["ok1@example.net", "ok2@example.net", "ok6@example.net"]
    assert rec["skipped"] == 6
    [m] = d.queue_json()
    assert m["values"][1] == ["Two, Jr", "ok2@example.net", "Rio"]
    note = (pickup / "bad" / "rows.batch.error").read_text()
    lines = note.splitlines()
    assert lines[0].startswith("line 3: bad address 'not an address'"), note
    assert lines[1] == "line 5: 2 fields, the header row has 3", note
    assert lines[2] == "line 6: duplicate recipient <ok1@example.net>", note
    assert lines[3] == "line 7: record longer than 65536 bytes", note
    assert lines[4].startswith("line 8: field 'name': a line break"), note
    assert lines[5].startswith("line 12: unterminated quoted field"), note
    assert lines[6] == "batch accepted: 3 recipients queued, 6 rows of recipients.csv skipped"
    assert not (pickup / "bad" / "rows.batch").exists()  # the batch itself was accepted


TOO_LONG = "x" * 70000  # past the 64 KiB default of server.max_data_line_length
BAD_BATCHES = {
    # name: (files, words in the reason)
    "binary_manifest": ({"manifest.toml": b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe", "template.eml": TEMPLATE,
                         "recipients.csv": csv_rows(people(2))}, "manifest.toml"),
    "no_manifest": ({"template.eml": TEMPLATE, "recipients.csv": csv_rows(people(2))},
                    "manifest.toml: missing"),
    "unknown_key": ({"manifest.toml": MANIFEST + 'colour = "red"\n', "template.eml": TEMPLATE,
                     "recipients.csv": csv_rows(people(2))}, "manifest.toml line 4: unknown key 'colour'"),
    "bad_sender": ({"manifest.toml": MANIFEST.replace("news@example.com", "news@@example"),
                    "template.eml": TEMPLATE, "recipients.csv": csv_rows(people(2))}, "sender: bad address"),
    "no_template": ({"manifest.toml": MANIFEST, "recipients.csv": csv_rows(people(2))},
                    "template.eml: missing"),
    "binary_template": ({"manifest.toml": MANIFEST, "template.eml": b"From: a\r\n\r\n\x00\x01\x02",
                         "recipients.csv": csv_rows(people(2))}, "template.eml line 3: NUL byte"),
    "truncated_template": ({"manifest.toml": MANIFEST, "template.eml": "From: a@example.com\r\nSubj",
                            "recipients.csv": csv_rows(people(2))}, "not a header field"),
    "unknown_placeholder": ({"manifest.toml": MANIFEST,
                             "template.eml": "Subject: x\r\n\r\nHi {{name}}, {{nmae}}!\r\n",
                             "recipients.csv": csv_rows(people(2))},
                            "template.eml line 3, column 14: unknown field 'nmae'"),
    "unterminated_placeholder": ({"manifest.toml": MANIFEST, "template.eml": "Subject: {{name\r\n\r\nx\r\n",
                                  "recipients.csv": csv_rows(people(2))},
                                 "template.eml line 1, column 10: unterminated placeholder"),
    "enormous_template_line": ({"manifest.toml": MANIFEST, "template.eml": f"Subject: x\r\n\r\n{TOO_LONG}\r\n",
                                "recipients.csv": csv_rows(people(2))}, "template.eml line 3: line of 70002 bytes"),
    "no_email_column": ({"manifest.toml": MANIFEST, "template.eml": "Subject: {{name}}\r\n\r\nx\r\n",
                         "recipients.csv": "address,name\r\na@example.net,A\r\n"},
                        "recipients.csv line 1: header row has no 'email' column"),
    "empty_recipients": ({"manifest.toml": MANIFEST, "template.eml": TEMPLATE, "recipients.csv": ""},
                         "recipients.csv: empty file: no header row"),
    "binary_recipients": ({"manifest.toml": MANIFEST, "template.eml": TEMPLATE,
                           "recipients.csv": bytes(range(256)) * 4}, "recipients.csv"),
    "all_addresses_bad": ({"manifest.toml": MANIFEST, "template.eml": TEMPLATE,
                           "recipients.csv": "email,name,city\r\nnope,A,B\r\n@example.net,C,D\r\n"},
                          "batch: no valid recipient in recipients.csv (2 rows skipped)"),
    "truncated_csv_header": ({"manifest.toml": MANIFEST, "template.eml": TEMPLATE,
                              "recipients.csv": "email,\"na"}, "header row: unterminated quoted field"),
    "no_recipients_file": ({"manifest.toml": MANIFEST, "template.eml": TEMPLATE},
                           "recipients.csv: missing"),
}


def test_malformed_batches_are_rejected_whole(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    for name, (files, _) in BAD_BATCHES.items():
        drop_batch(pickup, f"{name}.batch", files)
    # a symbolic link instead of the recipients file
    secret = tmp_path / "secret.csv"
    secret.write_text(csv_rows(people(2)))
    make_dirs(pickup)
    b = write_batch(pickup / "tmp", "symlink.batch", {"manifest.toml": MANIFEST, "template.eml": TEMPLATE})
    (b / "recipients.csv").symlink_to(secret)
    os.rename(b, pickup / "new" / "symlink.batch")
    drop_batch(pickup, "good.batch", batch_files(people(3)))
    expected = {**{n: w for n, (_, w) in BAD_BATCHES.items()}, "symlink": "recipients.csv: a symbolic link"}
    bad = pickup / "bad"
    # The note is written before the batch is moved beside it: wait for both.
    wait_for(lambda: all((bad / f"{n}.batch.error").exists() and (bad / f"{n}.batch").exists()
                         for n in expected), 20, what="every bad batch rejected")
    for name, words in expected.items():
        reason = (bad / f"{name}.batch.error").read_text()
        assert words in reason, f"{name}: {reason!r} lacks {words!r}"
        assert (bad / f"{name}.batch").is_dir(), f"{name}: the batch is not in bad/"
    assert (bad / "unknown_key.batch" / "manifest.toml").read_text() == BAD_BATCHES["unknown_key"][0]["manifest.toml"]
    wait_for(lambda: receptions(d), 10, what="the good batch queued")
    assert [len(m["recipients"]) for m in d.queue_json()] == [3]
    rejections = {r["file"]: r for r in d.log_records() if r.get("type") == "Rejection"}
    assert set(rejections) == {f"{n}.batch" for n in expected}
    for name, words in expected.items():
        assert words in rejections[f"{name}.batch"]["reason"]
    assert not list((pickup / "new").iterdir()) and not claimed(d)


def test_batch_recipient_limits_from_config(sluice_factory, tmp_path):
    """[pickup] max_batch_recipients and max_recipients_file_size, at the
    edge: exactly the limit is queued, one more rejects the batch whole;
    `sluice inject --batch` checks the same limits before dropping."""
    pickup = tmp_path / "pickup"
    # Three rows with long names: a recipients file of 1,000+ bytes (the
    # smallest file size limit allowed is 1 KiB).
    three = [(f"s{i}@d{i}.example", f"Name{i}" + "y" * 330, "C") for i in range(3)]
    limit = len(csv_rows(three).encode())
    assert limit >= 1024
    config = f"[pickup]\nmax_batch_recipients = 3\nmax_recipients_file_size = {limit}\n"
    d = sluice_factory(args=["--pickup", str(pickup)], config=config)
    drop_batch(pickup, "three.batch", batch_files(three))
    wait_for(lambda: receptions(d), 10, what="the batch at the limit queued")
    [m] = d.queue_json()
    assert m["recipients"] == [r[0] for r in three]
    # Four short rows, a small file: too many recipients.
    four = [(f"f{i}@d.example", "N", "C") for i in range(4)]
    drop_batch(pickup, "four.batch", batch_files(four))
    # Three rows, one byte over the file size limit.
    over = list(three)
    over[0] = (over[0][0], over[0][1] + "x", over[0][2])
    drop_batch(pickup, "big.batch", batch_files(over))
    bad = pickup / "bad"
    wait_for(lambda: (bad / "four.batch.error").exists() and (bad / "big.batch.error").exists(), 10,
             what="both batches over the limits rejected")
    assert "more than 3" in (bad / "four.batch.error").read_text()
    assert f"{limit} bytes" in (bad / "big.batch.error").read_text()
    assert len(d.queue_json()) == 1
    # inject reads the same configuration and refuses before dropping.
    src = write_batch(tmp_path, "src", batch_files(four))
    r = run_inject(["--config", str(d.config_path), "--pickup", str(pickup), "--batch",
                    str(src / "manifest.toml")])
    assert r.returncode == 1 and b"more than 3" in r.stderr, r.stderr
    assert not list((pickup / "new").iterdir()) and not list((pickup / "tmp").iterdir())


def test_directories_not_named_batch_are_left_alone(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    make_dirs(pickup)
    write_batch(pickup / "new", "notabatch", batch_files(people(2)))
    d = sluice_factory(args=["--pickup", str(pickup)])
    drop_batch(pickup, "real.batch", batch_files(people(2, prefix="r")))
    wait_for(lambda: receptions(d), 10, what="the real batch queued")
    time.sleep(0.3)
    assert (pickup / "new" / "notabatch" / "manifest.toml").exists()
    assert len(d.queue_json()) == 1


def test_unwritable_bad_keeps_a_rejected_batch_claimed(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    os.rename(pickup / "bad", pickup / "bad.real")
    (pickup / "bad").write_text("not a directory\n")  # works as root too
    files = BAD_BATCHES["unknown_placeholder"][0]
    drop_batch(pickup, "broken.batch", files)
    wait_for(lambda: "cannot move it to" in d.stderr_since_start(), 10, what="the error logged")
    [kept] = claimed(d)
    assert kept.is_dir() and (kept / "template.eml").read_bytes() == files["template.eml"].encode()
    # An acceptable batch with bad rows is queued anyway; its note goes to stderr.
    drop_batch(pickup, "rows.batch", {"manifest.toml": MANIFEST, "template.eml": TEMPLATE,
                                      "recipients.csv": csv_rows(people(2)) + "bogus,x,y\r\n"})
    wait_for(lambda: receptions(d), 10, what="the batch with a bad row queued")
    wait_for(lambda: "line 4: bad address 'bogus'" in d.stderr_since_start(), 10,
             what="the bad row's note")
    assert [len(m["recipients"]) for m in d.queue_json()] == [2]
    d.stop()
    (pickup / "bad").unlink()
    os.rename(pickup / "bad.real", pickup / "bad")
    d2 = sluice_factory(spool=d.spool, args=["--pickup", str(pickup)])
    wait_for(lambda: not claimed(d2) and any(p.suffix == ".error" for p in (pickup / "bad").iterdir()),
             10, what="the claimed batch moved to bad/")
    [moved] = [p for p in (pickup / "bad").iterdir() if p.is_dir()]
    assert (moved / "template.eml").read_bytes() == files["template.eml"].encode()
    assert len(d2.queue_json()) == 1


@pytest.mark.time_limit(180)
def test_two_daemons_never_take_the_same_batch(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    a = sluice_factory(args=["--pickup", str(pickup)])
    b = sluice_factory(args=["--pickup", str(pickup)])
    n = 40
    for k in range(n):
        drop_batch(pickup, f"b{k:03d}.batch", batch_files(people(25, prefix=f"k{k}-")))
    wait_for(lambda: len(receptions(a)) + len(receptions(b)) >= n, 60, what=f"{n} batches over both")
    time.sleep(0.5)
    assert len(receptions(a)) + len(receptions(b)) == n
    by_rcpt = all_recipients([a, b])
    assert len(by_rcpt) == n * 25
    dupes = {r: len(v) for r, v in by_rcpt.items() if len(v) != 1}
    assert not dupes, f"queued more than once: {list(dupes.items())[:5]}"
    print(f"daemon a took {len(receptions(a))} batches, daemon b {len(receptions(b))}")
    assert not list((pickup / "new").iterdir()) and not claimed(a) and not claimed(b)


def big_batch(n: int, prefix: str = "big") -> dict:
    """A batch whose recipients file is well over one read chunk (1 MiB)."""
    rows = "".join(f"{prefix}{i}@d{i % 997}.example,Person {i},Town {i % 13}\n" for i in range(n))
    return {"manifest.toml": MANIFEST + 'campaign = "crash"\n', "template.eml": TEMPLATE,
            "recipients.csv": "email,name,city\n" + rows}


def check_exactly_once(d, n: int, prefix: str = "big") -> None:
    msgs = d.queue_json()
    assert len(msgs) == 1, f"{len(msgs)} records for one batch"
    [m] = msgs
    assert len(m["recipients"]) == n
    assert m["recipients"][0] == f"{prefix}0@d0.example" and m["recipients"][-1] == f"{prefix}{n - 1}@d{(n - 1) % 997}.example"
    assert m["values"][7] == ["Person 7", f"{prefix}7@d7.example", "Town 7"]


@pytest.mark.time_limit(180)
@pytest.mark.parametrize("point", ["after-claim", "batch-mid-csv", "after-commit", "batch-mid-release"])
def test_crash_at_each_batch_step_then_restart(sluice_factory, tmp_path, monkeypatch, point):
    pickup = tmp_path / "pickup"
    n = 60000  # about 2.5 MB of CSV: several read chunks
    drop_batch(pickup, "crash.batch", big_batch(n))
    monkeypatch.setenv("SLUICE_TEST_ABORT_AT", point)
    d = sluice_factory(args=["--pickup", str(pickup)])
    d.expected_exit = True
    wait_for(lambda: not d.alive(), 30, what=f"abort at {point}")
    assert f"SLUICE_TEST_ABORT_AT={point}" in d.stderr_since_start()
    [left] = claimed(d)
    assert left.is_dir()
    if point == "batch-mid-release":
        assert left.name.endswith(".pickup.done")
        assert not (left / "manifest.toml").exists() and (left / "recipients.csv").exists()
    if point in ("after-commit", "batch-mid-release"):
        assert len(d.queue_json()) == 1  # durable, the claimed directory still there
    else:
        assert not d.queue_json()
    monkeypatch.delenv("SLUICE_TEST_ABORT_AT")
    d2 = sluice_factory(spool=d.spool, args=["--pickup", str(pickup)])
    wait_for(lambda: d2.queue_json() and not claimed(d2), 60, what="the batch queued once")
    check_exactly_once(d2, n)
    assert not list((pickup / "new").iterdir()) and not list((pickup / "bad").iterdir())
    if point in ("after-commit", "batch-mid-release"):
        wait_for(lambda: "already queued (removed)" in d2.stderr_since_start(), 10,
                 what="the recovery note")
    else:
        wait_for(lambda: "to process again" in d2.stderr_since_start(), 10,
                 what="the recovery note")


@pytest.mark.time_limit(240)
def test_kill9_during_a_large_batch(sluice_factory, tmp_path):
    """kill -9 at random moments while a 200,000-recipient batch is read,
    committed and released; after the last restart it is queued exactly once."""
    pickup = tmp_path / "pickup"
    n = 200000
    drop_batch(pickup, "large.batch", big_batch(n))
    rng = random.Random(5)
    d = sluice_factory(args=["--pickup", str(pickup)])
    spool = d.spool
    for round_ in range(4):
        time.sleep(rng.uniform(0.02, 0.6))
        d.kill9()
        d = sluice_factory(spool=spool, args=["--pickup", str(pickup)])
    wait_for(lambda: d.queue_json() and not claimed(d), 90, what="the batch queued once")
    check_exactly_once(d, n)


def run_inject(args) -> subprocess.CompletedProcess:
    return subprocess.run([str(require_sluice_bin()), "inject", *args], capture_output=True, timeout=60)


def test_inject_batch(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)])
    src = write_batch(tmp_path, "src", batch_files(people(20)))
    r = run_inject(["--pickup", str(pickup), "--batch", str(src / "manifest.toml")])
    assert r.returncode == 0, r.stderr
    name = r.stdout.decode().strip()
    assert name.endswith(".batch") and "/" not in name
    wait_for(lambda: receptions(d), 10, what="the injected batch queued")
    [m] = d.queue_json()
    assert m["recipients"] == [p[0] for p in people(20)]
    assert not list((pickup / "tmp").iterdir())
    # Checked before anything is dropped.
    bad = write_batch(tmp_path, "bad", BAD_BATCHES["unknown_placeholder"][0])
    # --config: the daemon's, with server.require_from off (the template has no From).
    r = run_inject(["--config", str(d.config_path), "--pickup", str(pickup), "--batch",
                    str(bad / "manifest.toml")])
    assert r.returncode == 1
    assert b"unknown field 'nmae'" in r.stderr and b"line 3, column 14" in r.stderr
    r = run_inject(["--pickup", str(pickup), "--batch", str(tmp_path / "nowhere" / "manifest.toml")])
    assert r.returncode == 1 and b"cannot read" in r.stderr
    r = run_inject(["--pickup", str(tmp_path / "missing"), "--batch", str(src / "manifest.toml")])
    assert r.returncode == 1 and b"missing" in r.stderr and not (tmp_path / "missing").exists()
    r = run_inject(["--pickup", str(pickup), "--batch", str(src / "manifest.toml"), "--to", "x@example.com"])
    assert r.returncode == 2
    time.sleep(0.3)
    assert len(d.queue_json()) == 1 and not list((pickup / "tmp").iterdir())
