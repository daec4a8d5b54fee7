"""A spool that runs out of space mid-stream: the client whose message
cannot be written gets 451 4.3.0, nothing half-written stays queued, every
message that got 250 is intact, and the relay recovers once space returns.
Uses a small tmpfs as the spool (root only; skipped elsewhere)."""

import os
import smtplib
import subprocess

import pytest

from sluice_harness import queued_id_from_smtplib


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "spoolfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ~62 KB records go to the shard's segment; ~200 KB messages stream into
# their own files. Both paths must fail cleanly.
@pytest.mark.parametrize("lines", [800, 2600])
def test_full_spool_answers_451_and_loses_nothing(sluice_factory, small_fs, lines):
    d = sluice_factory(spool=small_fs / "spool", shards=1,
                       config="[spool]\nmin_free_bytes = 0\n")
    filler = small_fs / "filler"
    # Leave room for a handful of 60 KB messages, then run out.
    st = os.statvfs(small_fs)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - 700 * 1024))
    body = "Subject: fill\r\n\r\n" + ("x" * 76 + "\r\n") * lines
    acked, refused = [], []
    with d.smtp() as s:
        s.ehlo()
        for i in range(40):
            s.mail("s@example.com")
            s.rcpt("r@example.net")
            code, resp = s.data(f"X-Seq: {i}\r\n" + body)
            if code == 250:
                acked.append((queued_id_from_smtplib(code, resp), i))
            else:
                refused.append((code, resp))
                s.rset()
            if len(refused) >= 3:
                break
    assert refused, "the spool never filled up"
    for code, resp in refused:
        assert code == 451 and resp.startswith(b"4.3.0"), (code, resp)
    # Exactly the acknowledged messages are queued, each intact.
    assert d.queue_ids() == {qid for qid, _ in acked}
    for qid, seq in acked:
        stored = d.queue_show(qid)
        assert f"X-Seq: {seq}\r\n".encode() in stored
        assert stored.endswith(body.encode())
    assert d.tmp_files() == []
    # Space comes back: mail flows again.
    filler.unlink()
    with d.smtp() as s:
        assert s.sendmail("s@example.com", ["r@example.net"], "Subject: after\r\n\r\nok\r\n") == {}
    assert len(d.queue_ids()) == len(acked) + 1
