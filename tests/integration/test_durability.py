"""Durability: a 250 means the message survives kill -9; a restart on the
same spool finds every acknowledged message intact and nothing half-written."""

import random
import time

import pytest

from loadgen import Loader, verify_spool_after_restart
from sluice_harness import check_stored, expect_line, expect_queued, wait_for

@pytest.mark.slow
@pytest.mark.time_limit(240)
def test_kill9_mid_load(sluice_factory):
    first = sluice_factory()
    spool, log = first.spool, first.log_path
    loaders = []
    d = first
    seq_start = 0
    for round_no in range(2):
        ld = Loader(d.host, d.port, threads=8, seq_start=seq_start)
        loaders.append(ld)
        ld.start()
        # let it run until a good number of messages is acknowledged
        wait_for(lambda: len(ld.acked) >= 150 or not d.alive(), timeout=40, what="150 acknowledged messages")
        time.sleep(random.Random(round_no).uniform(0.0, 0.3))
        d.assert_alive()
        d.kill9()
        ld.finish()
        print(f"round {round_no}: {len(ld.acked)} acknowledged, {len(ld.sent)} sent with DATA, "
              f"{len(ld.rejected)} rejected, {len(ld.cut)} cut mid-body, {len(ld.errors)} client errors")
        assert not ld.rejected, f"unexpected rejections under load: {list(ld.rejected.items())[:5]}"
        assert len(ld.acked) >= 150
        seq_start += 100_000

        d = sluice_factory(spool=spool, log=log)
        meta = verify_spool_after_restart(d, loaders)

    # the restarted daemon takes mail, with an id newer than any in the spool
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<after@example.com>"), "250 2.1.0 Ok")
    expect_line(c.cmd("RCPT TO:<sink@example.net>"), "250 2.1.5 Ok")
    expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
    c.send(b"Subject: after restart\r\n\r\nx\r\n.\r\n")
    qid = expect_queued(c.reply())
    assert all(qid > old for old in meta), f"new id {qid} not above the newest spooled id {max(meta)}"


@pytest.mark.time_limit(60)
def test_kill9_mid_data_leaves_no_partial_message(sluice_factory):
    d = sluice_factory()
    c = d.session()
    expect_line(c.cmd("MAIL FROM:<a@example.com>"), "250 2.1.0 Ok")
    expect_line(c.cmd("RCPT TO:<b@example.net>"), "250 2.1.5 Ok")
    expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
    c.send(b"Subject: interrupted\r\n\r\n" + b"z" * 70 + b"\r\n" * 1)
    c.send((b"z" * 70 + b"\r\n") * 30000)  # ~2 MB, no end of data
    time.sleep(0.3)
    d.kill9()
    c.close()
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    assert d2.tmp_files() == []
    assert d2.queue_list() == []
    assert d2.corrupt_files() == []


def test_graceful_restart_keeps_queue(sluice_factory):
    d = sluice_factory()
    bodies = {}
    c = d.session()
    for i in range(5):
        expect_line(c.cmd(f"MAIL FROM:<g{i}@example.com>"), "250 2.1.0 Ok")
        expect_line(c.cmd("RCPT TO:<b@example.net>"), "250 2.1.5 Ok")
        expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        body = f"Subject: graceful {i}\r\n\r\nbody {i}\r\n".encode()
        c.send(body + b".\r\n")
        bodies[expect_queued(c.reply())] = body
    c.close()
    before = {e.id: (e.size, e.sender, e.rcptcount) for e in d.queue_list()}
    assert set(before) == set(bodies)
    assert d.stop() == 0
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    after = {e.id: (e.size, e.sender, e.rcptcount) for e in d2.queue_list()}
    assert after == before
    for qid, body in bodies.items():
        check_stored(d2.queue_show(qid), qid, body)


def _queue_two(d, body_size=5000):
    """Two messages in one session (so one shard); returns {id: body} in order."""
    bodies = {}
    c = d.session()
    for i in range(2):
        expect_line(c.cmd(f"MAIL FROM:<r{i}@example.com>"), "250 2.1.0 Ok")
        expect_line(c.cmd("RCPT TO:<b@example.net>"), "250 2.1.5 Ok")
        expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        line = f"message {i} MARKER-{i}-MARKER\r\n".encode()
        body = f"Subject: recovery {i}\r\n\r\n".encode() + line * max(1, body_size // len(line))
        c.send(body + b".\r\n")
        bodies[expect_queued(c.reply())] = body
    c.close()
    return bodies


def _spool_files(d, pattern):
    return sorted(p for p in d.spool.glob(f"*/{pattern}") if p.parent.name != "corrupt")


def test_recovery_removes_stale_tmp(sluice_factory):
    d = sluice_factory()
    bodies = _queue_two(d)
    assert d.stop() == 0
    stale = d.spool / "0" / "0CRZZZZZZZZZZ.tmp"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"half a message")
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    assert d2.tmp_files() == [], "stale .tmp file not removed at start-up"
    assert d2.queue_ids() == set(bodies)
    assert d2.corrupt_files() == []


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_recovery_sets_corrupt_message_file_aside(sluice_factory, damage):
    """Large messages (over the in-memory threshold) get their own <ID>.msg;
    a damaged one is moved to corrupt/ at start-up, the other one is kept."""
    d = sluice_factory()
    bodies = _queue_two(d, body_size=300_000)
    assert d.stop() == 0
    victim_id, good_id = list(bodies)
    victims = [p for p in _spool_files(d, "*.msg") if p.name == f"{victim_id}.msg"]
    assert victims, f"no {victim_id}.msg for a 300 kB message; spool holds {sorted(str(p) for p in d.spool.rglob('*'))}"
    victim = victims[0]
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x20
    else:
        del data[len(data) // 2:]
    victim.write_bytes(bytes(data))
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    assert d2.queue_ids() == {good_id}, f"after {damage} of {victim_id}: {d2.queue_ids()}"
    assert len(d2.corrupt_files()) >= 1, "damaged message not moved to corrupt/"
    assert not victim.exists(), "damaged message still in its shard directory"
    check_stored(d2.queue_show(good_id), good_id, bodies[good_id])


def _segment_holding(d, marker: bytes):
    for seg in _spool_files(d, "*.seg"):
        data = seg.read_bytes()
        at = data.find(marker)
        if at >= 0:
            return seg, at
    raise AssertionError(f"no segment holds {marker!r}; spool holds {sorted(str(p) for p in d.spool.rglob('*'))}")


def test_recovery_sets_corrupt_segment_record_aside(sluice_factory):
    """Small messages are records in a segment file; a record whose bytes
    changed is set aside, the neighbouring record is kept."""
    d = sluice_factory()
    bodies = _queue_two(d)
    assert d.stop() == 0
    victim_id, good_id = list(bodies)
    seg, at = _segment_holding(d, b"MARKER-0-MARKER")
    data = bytearray(seg.read_bytes())
    data[at] ^= 0x01
    seg.write_bytes(bytes(data))
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    assert d2.queue_ids() == {good_id}
    assert len(d2.corrupt_files()) >= 1, "damaged record not copied to corrupt/"
    check_stored(d2.queue_show(good_id), good_id, bodies[good_id])


def test_recovery_cuts_torn_segment_tail(sluice_factory):
    """A segment that ends inside its last record (a crash mid-append): the
    torn record is cut off, the records before it are kept, and new mail
    is accepted."""
    d = sluice_factory()
    bodies = _queue_two(d)
    assert d.stop() == 0
    first_id, last_id = list(bodies)
    seg, at = _segment_holding(d, b"MARKER-1-MARKER")
    with open(seg, "r+b") as f:
        f.truncate(at + 100)
    d2 = sluice_factory(spool=d.spool, log=d.log_path)
    assert d2.queue_ids() == {first_id}
    check_stored(d2.queue_show(first_id), first_id, bodies[first_id])
    c = d2.session()
    expect_line(c.cmd("MAIL FROM:<after@example.com>"), "250 2.1.0 Ok")
    expect_line(c.cmd("RCPT TO:<b@example.net>"), "250 2.1.5 Ok")
    expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
    c.send(b"Subject: after torn tail\r\n\r\nx\r\n.\r\n")
    new_id = expect_queued(c.reply())
    assert d2.queue_ids() == {first_id, new_id}
    assert new_id > last_id, "ids keep increasing across the restart"
