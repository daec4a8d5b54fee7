"""Spool integrity at the daemon level: one daemon per spool (the lock in
<spool>/lock), the file modes the daemon creates whatever umask it was started
with, and recovery of a segment whose record length field was damaged
(the rest of the segment used to be cut as an "unfinished write")."""

import os
import stat
import subprocess

import pytest

from sluice_harness import (check_stored, expect_line, expect_queued, free_port, listen_spec,
                            scaled, wait_for)


def _queue(d, n, tag):
    """Queues n small messages in one session; returns {id: body}."""
    bodies = {}
    c = d.session()
    for i in range(n):
        expect_line(c.cmd(f"MAIL FROM:<{tag}{i}@example.com>"), "250 2.1.0 Ok")
        expect_line(c.cmd("RCPT TO:<b@example.net>"), "250 2.1.5 Ok")
        expect_line(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        body = f"Subject: {tag} {i}\r\n\r\nbody {tag}-{i}-MARK\r\n".encode()
        c.send(body + b".\r\n")
        bodies[expect_queued(c.reply())] = body
    c.close()
    return bodies


def _second_daemon(d):
    """Runs `sluice serve` on d's spool with another port and more shards;
    returns the result."""
    cmd = [str(d.bin), "serve", "--listen", listen_spec("127.0.0.1", free_port()),
           "--spool", str(d.spool), "--shards", str(d.shards + 2), "--log", str(d.workdir / "second.log"),
           "--hostname", d.hostname, "--no-delivery"]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(15))


@pytest.mark.time_limit(60)
def test_second_daemon_on_same_spool_is_refused(sluice_factory):
    first = sluice_factory()
    before = _queue(first, 2, "before")
    sockets = sorted((first.spool / "control").glob("*.sock"))
    assert len(sockets) == first.shards

    second = _second_daemon(first)
    err = second.stderr.decode(errors="replace")
    assert second.returncode != 0, f"second daemon started on a locked spool: {err}"
    assert f"spool {first.spool} is in use by pid {first.pid}" in err, err
    assert "key=server.ready " not in err
    assert "recovered" not in err, f"the second daemon ran recovery: {err}"
    assert (first.spool / "lock").read_text().strip() == str(first.pid)
    assert not (first.spool / str(first.shards)).exists(), "the second daemon made a shard directory"

    # The first one is untouched: its control sockets, its queue, new mail.
    first.assert_alive()
    assert sorted((first.spool / "control").glob("*.sock")) == sockets
    assert all(reply.strip() for reply in first.admin("stats"))
    after = _queue(first, 2, "after")
    # `sluice queue` reads the spool directly, lock or not.
    assert first.queue_ids() == set(before) | set(after)
    for qid, body in after.items():
        check_stored(first.queue_show(qid), qid, body)

    # Once the first stops, a new daemon takes the spool and the queue.
    assert first.stop() == 0
    third = sluice_factory(spool=first.spool, log=first.log_path)
    assert (third.spool / "lock").read_text().strip() == str(third.pid)
    assert third.queue_ids() == set(before) | set(after)


@pytest.mark.time_limit(60)
def test_lock_survives_kill9_of_holder(sluice_factory):
    """The kernel drops the lock with the process: a stale lock file with a
    dead PID does not keep the next daemon out."""
    first = sluice_factory()
    bodies = _queue(first, 1, "k")
    first.kill9()
    second = sluice_factory(spool=first.spool, log=first.log_path)
    assert second.queue_ids() == set(bodies)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _proc_umask(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return None


@pytest.mark.time_limit(120)
@pytest.mark.parametrize("inherited", [0o000, 0o077])
def test_file_modes_every_start(sluice_factory, tmp_path, inherited):
    """The daemon sets its umask once before its shard threads start (they
    used to set it each, racing): every start, whatever umask it inherits,
    the process mask and the modes of what it creates are the same."""
    spool = tmp_path / "modes-spool"
    old = os.umask(inherited)
    try:
        for start in range(5):
            d = sluice_factory(spool=spool, shards=4)
            assert _proc_umask(d.pid) == 0o027, f"start {start}: umask {_proc_umask(d.pid):o}"
            _queue(d, 1, f"m{start}")
            for sock in (spool / "control").glob("*.sock"):
                assert _mode(sock) == 0o600, f"start {start}: {sock} mode {_mode(sock):o}"
            assert len(list((spool / "control").glob("*.sock"))) == 4
            assert _mode(spool / "control") == 0o700
            segments = list(spool.glob("*/*.seg"))
            assert segments, "no segment written"
            for seg in segments:
                assert _mode(seg) == 0o600, f"start {start}: {seg} mode {_mode(seg):o}"
            for n in range(4):
                assert _mode(spool / str(n)) == 0o700
            assert _mode(spool / "lock") == 0o600
            assert _mode(d.log_path) == 0o640
            assert d.stop() == 0
    finally:
        os.umask(old)


@pytest.mark.time_limit(60)
def test_damaged_length_field_loses_no_mail(sluice_factory):
    """A flipped bit in a record's length field (the issue's reproduction):
    every acknowledged message is still queued after the restart, nothing
    is cut or set aside, and the record's preamble is repaired."""
    d = sluice_factory(shards=1)
    bodies = _queue(d, 5, "len")
    assert d.stop() == 0
    segs = sorted(p for p in d.spool.glob("0/*.seg"))
    assert len(segs) == 1
    data = bytearray(segs[0].read_bytes())
    second = data.find(b"SLUICEQ1", 1)
    assert second > 0
    data[second + 8 + 5] ^= 0x10  # the length's sixth byte: far past the end
    segs[0].write_bytes(bytes(data))
    d2 = sluice_factory(spool=d.spool, log=d.log_path, shards=1)
    err = d2.stderr_since_start()
    assert d2.queue_ids() == set(bodies), err
    assert d2.corrupt_files() == []
    assert "repaired_preambles=1" in err, err
    assert "5 queued messages recovered, 0 unfinished removed" in err, err
    for qid, body in bodies.items():
        check_stored(d2.queue_show(qid), qid, body)


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "spoolfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.time_limit(90)
def test_failed_commits_leave_no_empty_segments(sluice_factory, small_fs):
    """On a full disk every failed flush used to leave an empty segment
    behind, kept across restarts; now the writer removes the segment it
    never got a record into."""
    d = sluice_factory(spool=small_fs / "spool", shards=1, config="[spool]\nmin_free_bytes = 0\n")
    filler = small_fs / "filler"
    st = os.statvfs(small_fs)
    with open(filler, "wb") as f:  # nothing left, not even a page
        f.write(b"\0" * (st.f_bavail * st.f_frsize))
    refused = 0
    codes = []
    with d.smtp() as s:
        s.ehlo()
        for i in range(6):
            s.mail("s@example.com")
            s.rcpt("r@example.net")
            code, _ = s.data(f"Subject: full {i}\r\n\r\n" + ("y" * 78 + "\r\n") * 100)
            codes.append(code)
            refused += code == 451
            if code != 250:
                s.rset()
    assert refused >= 3, f"the spool never refused mail: {codes}"
    def empty():
        return [p for p in (small_fs / "spool").glob("*/*.seg") if p.stat().st_size == 0]
    # The writer does not wait for its unlink before it answers 451.
    try:
        wait_for(lambda: not empty(), timeout=3, what="no empty segments")
    except AssertionError:
        raise AssertionError(f"empty segments left behind: {empty()}")
    assert d.stop() == 0
    filler.unlink()
    d2 = sluice_factory(spool=small_fs / "spool", shards=1, log=d.log_path,
                        config="[spool]\nmin_free_bytes = 0\n")
    assert empty() == []
    with d2.smtp() as s:
        assert s.sendmail("s@example.com", ["r@example.net"], "Subject: after\r\n\r\nok\r\n") == {}
    assert len(d2.queue_ids()) == 1


@pytest.mark.time_limit(90)
def test_segment_of_delivered_mail_goes_at_the_next_start(sluice_factory, delivery_world):
    """The ledger removes a segment once its records are all delivered, but
    not the one still being appended to; delivered before a stop, that one
    used to stay for good. Recovery removes a segment of retired records."""
    from test_delivery import SENDER_HOST, msg, relay_config, send, wait_finals

    world = delivery_world(mx={"d1.test": [(10, "127.0.0.2")], "snd.test": SENDER_HOST})
    relay = sluice_factory(delivery=True, shards=1, args=world.sluice_args(), config=relay_config())
    send(relay, ["bob@d1.test"], msg("delivered before the stop"))
    (rec,) = wait_finals(relay, 1)
    assert rec["type"] == "Delivery", rec
    assert relay.stop() == 0
    segments = list(relay.spool.glob("*/*.seg"))
    assert len(segments) == 1, segments
    again = sluice_factory(delivery=True, shards=1, spool=relay.spool, args=world.sluice_args(),
                           config=relay_config())
    assert "0 queued messages recovered" in again.stderr_since_start()
    assert not segments[0].exists(), "the delivered segment is still there"
    assert again.corrupt_files() == []
