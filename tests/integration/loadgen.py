"""Load generation for the durability and shutdown tests: threads sending
distinct numbered messages with smtplib, and a check of the spool against
what was sent and acknowledged."""

import itertools
import random
import re
import smtplib
import threading
import time

from sluice_harness import CLIENT_HELO, check_stored, dot_stuff, norm_addr, queued_id_from_smtplib, scaled

SEQ_RE = re.compile(rb"\r\nX-Seq: (\d+)\r\n")


def numbered_body(seq: int, rng: random.Random) -> bytes:
    size = rng.choice([200, 2_000, 20_000, 150_000])
    filler_line = (f"{seq:06d} " + "abcdefghij" * 7 + "\r\n").encode()
    n = max(1, size // len(filler_line))
    return (
        f"From: <load{seq}@example.com>\r\nTo: <sink@example.net>\r\nSubject: load {seq}\r\n"
        f"X-Seq: {seq}\r\n\r\n".encode()
        + filler_line * n
        + f"end of message {seq}\r\n".encode()
    )


class Loader:
    """Threads sending distinct numbered messages with smtplib; records which
    ones got 250 and their ids. Bounded in messages and time."""

    def __init__(self, host, port, threads=8, max_messages=20_000, max_seconds=40.0, seq_start=0):
        self.host, self.port = host, port
        self.nthreads = threads
        self.max_messages = max_messages
        self.deadline = time.monotonic() + scaled(max_seconds)
        self.seq_start = seq_start
        self.seq = itertools.count(seq_start)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sent = {}  # seq -> body bytes (DATA was at least started)
        self.acked = {}  # seq -> queue id
        self.rejected = {}  # seq -> reply
        self.cut = {}  # seq -> error: 354 received, then no final reply
        self.errors = []
        self.threads = []

    def _next(self):
        with self.lock:
            n = next(self.seq)
        return n

    def _worker(self, wid):
        rng = random.Random(wid)
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                s = smtplib.SMTP(self.host, self.port, local_hostname=CLIENT_HELO, timeout=10)
            except OSError as e:
                self.errors.append(f"connect: {e}")
                time.sleep(0.05)
                continue
            try:
                s.ehlo()
                for _ in range(10):  # messages per connection
                    if self.stop.is_set() or time.monotonic() > self.deadline:
                        break
                    seq = self._next()
                    if seq >= self.seq_start + self.max_messages:
                        self.stop.set()
                        break
                    body = numbered_body(seq, rng)
                    code, resp = s.mail(f"load{seq}@example.com")
                    if code != 250:
                        self.rejected[seq] = (code, resp)
                        s.rset()
                        continue
                    code, resp = s.rcpt("sink@example.net")
                    if code != 250:
                        self.rejected[seq] = (code, resp)
                        s.rset()
                        continue
                    code, resp = s.docmd("DATA")
                    if code != 354:
                        self.rejected[seq] = (code, resp)
                        break
                    self.sent[seq] = body
                    try:
                        s.send(dot_stuff(body) + b".\r\n")
                        code, resp = s.getreply()
                    except (smtplib.SMTPException, OSError) as e:
                        self.cut[seq] = repr(e)  # the body was on its way: no final reply
                        raise
                    if code == 250:
                        self.acked[seq] = queued_id_from_smtplib(code, resp)
                    else:
                        self.rejected[seq] = (code, resp)
                s.quit()
            except (smtplib.SMTPException, OSError) as e:
                self.errors.append(repr(e))
            except AssertionError as e:  # malformed 250 reply
                self.errors.append(f"assertion: {e}")
                raise
            finally:
                s.close()

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=scaled(20))
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, f"{len(alive)} loader threads still running"


def verify_spool_after_restart(d, loaders):
    sent = {}
    acked = {}
    for ld in loaders:
        sent.update(ld.sent)
        acked.update(ld.acked)

    assert d.tmp_files() == [], f"temp files left after restart: {d.tmp_files()[:10]}"
    assert d.corrupt_files() == [], f"files moved to corrupt/: {d.corrupt_files()[:10]}"

    meta = d.queue_json_by_id()
    listed = {e.id for e in d.queue_list()}
    assert listed == set(meta), "queue messages and queue messages --json disagree"

    missing = {seq: qid for seq, qid in acked.items() if qid not in meta}
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged messages are missing after kill -9 + restart, "
        f"e.g. {sorted(missing.items())[:10]}"
    )

    seq_of_id = {qid: seq for seq, qid in acked.items()}
    for qid, js in sorted(meta.items()):
        stored = d.queue_show(qid)
        m = SEQ_RE.search(stored)
        assert m, f"{qid}: queued message without X-Seq (not one we sent?): {stored[:400]!r}"
        seq = int(m.group(1))
        assert seq in sent, f"{qid}: X-Seq {seq} was never sent with DATA"
        if qid in seq_of_id:
            assert seq_of_id[qid] == seq, f"{qid} was acknowledged for message {seq_of_id[qid]} but holds {seq}"
        # intact: exactly the bytes sent, after Sluice's own headers
        check_stored(stored, qid, sent[seq])
        assert norm_addr(js["sender"]) == f"load{seq}@example.com", js
        assert [norm_addr(r) for r in js["recipients"]] == ["sink@example.net"], js
    return meta
