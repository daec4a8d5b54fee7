"""No blocking syscall on a shard thread in steady state (issue "Runtime
redesign"): under a steady relay load, and while the pickup directory is
being ingested, strace of the shard threads shows no file syscall (open*,
*stat*, unlink*, rename*, fsync, fdatasync, read, write, ...): a shard
thread leaves those to its ring or to a helper thread.

The relay runs with delivery on and two shards: sluice-blast sends at a
steady rate into it, every domain is routed to one sluice-sink, so each
shard both receives (spool commits) and delivers (spool reads, tombstones,
outbound SMTP). Once mail is flowing, strace attaches to the threads named
`shard-N` only (/proc/PID/task/*/comm; one `-p TID` each and no `-f`,
which would take in every thread of the process: the pickup, helper,
log-writer and HTTP threads may block, that is what they are for). While it
traces, single-message files and a merge batch are renamed into the pickup
directory, a burst of 144 MB of 60 KB messages fills a shard's 64 MiB
segment, and the trace lasts until the pickup has queued all of them, a
spool segment has been retired (delivered, tombstoned, unlinked) and the
sink has received more mail. Then strace detaches (SIGINT), before
the load ends: start-up and shutdown are not traced.

Every syscall seen must be in ALLOWED (each with the reason it is there),
and none may be in FORBIDDEN (nor be the last close of an unlinked file),
except the calls KNOWN lists: blocking calls the delivery engine still
makes on the shard thread, and glibc's one read of a procfs file, each matched narrowly (strace -y
shows the paths) and named by its source, to be removed from the list as
they move off the thread. The output also has to show the rings working
(io_uring_enter), or the trace proves nothing. The counts are printed.
Shown to fail twice: a stat("/") planted in TraceHeaders (every received
message, on its shard thread), and an LD_PRELOADed setsockopt() that calls
stat("/") first (a shard sets TCP_NODELAY on every connection): each fails
it with the newfstatat calls listed.
Bench versions with counts: bench/shard_syscalls.py, bench/pickup_syscalls.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from delivery_peers import tools_dir
from sluice_harness import sanitized_build, scaled, wait_for

# The file syscalls a shard thread must never make itself (docs/ARCHITECTURE.md,
# "Threads"): each can wait for the disk. read/write and their vector and
# positional forms are here too: on a socket or eventfd they would not block,
# but a shard's socket I/O goes through the ring, so any of them is a
# regression to look at.
FORBIDDEN = frozenset("""
    open openat openat2 creat open_by_handle_at name_to_handle_at
    stat lstat fstat newfstatat statx statfs fstatfs access faccessat faccessat2
    readlink readlinkat
    unlink unlinkat rmdir rename renameat renameat2 link linkat symlink symlinkat mkdir mkdirat
    truncate ftruncate fallocate fsync fdatasync sync syncfs sync_file_range
    read write pread64 pwrite64 readv writev preadv pwritev preadv2 pwritev2
    getdents getdents64 sendfile copy_file_range splice
    fchmod fchmodat fchown fchownat chmod chown utimensat flock fcntl
""".split())

# What a shard thread may call in steady state, and why. None of them waits
# for a disk; only io_uring_enter waits at all (for completions, on purpose).
ALLOWED = {
    "io_uring_enter": "the ring: submit, and wait for completions (the loop's only wait)",
    "futex": "FUTEX_WAKE: waking a helper, the pickup thread or the log writer; FUTEX_WAIT: a "
             "contended lock, mostly a glibc malloc arena's (a shard freeing what another "
             "allocated); printed below with the mapping the lock lives in",
    "mprotect": "the allocator growing a thread arena's heap",
    "madvise": "the allocator returning freed pages",
    "mmap": "the allocator growing an arena",
    "munmap": "the allocator releasing a large block",
    "brk": "the allocator growing the main heap",
    "socket": "an outbound SMTP connection's socket (the connect itself is a ring op)",
    "setsockopt": "TCP_NODELAY on an accepted or outbound connection",
    "shutdown": "ending a connection (Connection::Close)",
    "getpeername": "an accepted connection's client address",
    "getsockname": "a connection's local address",
    "close": "a socket, or a spool file the shard is done with (no flush on close on local "
             "file systems); but not the last close of an unlinked file (see KNOWN)",
}

# Blocking calls the shard threads are known to make today, each matched
# narrowly (strace -y line, with the paths of the fds) and owned by its
# source line, so that any other forbidden call still fails the test. All
# of them are the delivery engine's (src/delivery): remove an
# entry when its call moves to the ring or to a helper; the test then
# guards that too.
KNOWN = [
    # glibc's malloc reads /proc/sys/vm/overcommit_memory once per process,
    # the first time a thread arena's heap may shrink: procfs, no disk, once.
    (r"^openat\(AT_FDCWD(?:<[^>]*>)?, \"/proc/sys/vm/overcommit_memory\", O_RDONLY", "glibc malloc, once"),
    (r"^read\(\d+</proc/sys/vm/overcommit_memory>", "glibc malloc, once"),
    # Engine::ReadRecord openat()s a spool file it has no cached fd for (and
    # the spool directory first).
    (r"^openat\(AT_FDCWD(?:<[^>]*>)?, \"[^\"]*spool/\d+\", O_RDONLY\|O_CLOEXEC\|O_DIRECTORY",
     "engine_records.cc ReadRecord: the spool directory"),
    (r"^openat\(\d+<[^>]*spool/\d+>, \"[0-9A-Z]+\.(seg|msg)\", O_RDONLY", "engine_records.cc ReadRecord"),
    # The last close of an unlinked segment frees its blocks in the closing
    # thread: 24 ms for 64 MiB on this ext4 (mounted with discard), up to
    # 100 ms under load (bench/ingest_latency.py --strace). The ledger closes
    # its own fds through the ring; the engine's cached read fd of the
    # segment (engine_records.cc) can be the last one.
    (r"^close\(\d+<[^>]*spool/\d+/[0-9A-Z]+\.seg ?>?\(deleted\)", "engine_records.cc: last close"),
]


def futex_waits(lines, maps: str) -> Counter:
    """FUTEX_WAIT* calls by the mapping their address lies in (glibc's own
    data: main_arena; an anonymous mapping: a thread arena's heap)."""
    regions = []
    for m in re.finditer(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+[ \t]*([^\n]*)$", maps, re.M):
        regions.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3) or "[anonymous]"))
    out: Counter = Counter()
    for line in lines:
        m = re.match(r"^futex\((0x[0-9a-f]+), (FUTEX_WAIT\w*)", line)
        if m:
            addr = int(m.group(1), 16)
            where = next((os.path.basename(p) for lo, hi, p in regions if lo <= addr < hi), "unmapped")
            out[f"{m.group(2)} in {where}"] += 1
    return out


def shard_threads(pid: int) -> dict:
    """tid -> name of the threads called shard-N."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        if re.fullmatch(r"shard-\d+", name):
            out[int(task.name)] = name
    return out


class Strace:
    """strace attached to some threads (by TID), its output in a file."""

    def __init__(self, tids, out: Path):
        self.tids = sorted(tids)
        self.out = out
        self.err = out.with_suffix(".stderr")
        args = [shutil.which("strace") or "/usr/bin/strace", "-y", "-o", str(out)]
        for tid in self.tids:
            args += ["-p", str(tid)]
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def wait_attached(self) -> None:
        """Until strace says it attached to every thread."""
        def attached() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"strace exited {self.proc.returncode}: {self.err.read_text()[-2000:]}")
            text = self.err.read_text(errors="replace")
            return all(f"Process {tid} attached" in text for tid in self.tids)

        wait_for(attached, 10, what="strace attached to every shard thread")

    def stop(self) -> tuple[Counter, list]:
        """Detaches (SIGINT), then counts the syscalls by name; also returns
        every call as "name(args" (an unfinished call's first part)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        calls: Counter = Counter()
        lines = []
        for line in self.out.read_text(errors="replace").splitlines():
            # "TID name(args..." or, with one thread, "name(args...";
            # "<... name resumed>" continues an unfinished call: not counted again.
            m = re.match(r"^(?:\d+\s+)?(([a-z_0-9]+)\(.*)$", line)
            if m:
                calls[m.group(2)] += 1
                lines.append(m.group(1))
        return calls, lines


class PickupCounter:
    """Counts the accounting log's pickup Reception records, reading each line once."""

    def __init__(self, log: Path):
        self.log = log
        self.offset = 0
        self.count = 0

    def __call__(self) -> int:
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        cut = data.rfind(b"\n") + 1
        self.count += data[:cut].count(b'"protocol":"pickup"')
        self.offset += cut
        return self.count


def stored(sink) -> int:
    return sum(1 for e in os.scandir(sink.store_dir) if e.name.endswith(".eml"))


def segments_removed(relay) -> int:
    """The ledgers' count of spool segments retired (unlinked), all shards."""
    r = relay.cli("queue", "stats", "--spool", str(relay.spool), "--json")
    assert r.returncode == 0, r.stderr
    return sum(int(s.get("segments_removed", 0)) for s in json.loads(r.stdout)["shards"])


def drop_pickup(pickup: Path, files: int, batch_rcpts: int) -> None:
    """`files` single-message files and one merge batch of `batch_rcpts`
    recipients: written in tmp/, then renamed into new/ together."""
    tmp, new = pickup / "tmp", pickup / "new"
    names = []
    for i in range(files):
        name = f"m{i:05d}"
        (tmp / name).write_bytes(
            (f"X-Sluice-Envelope-From: <news@snd.example>\r\nX-Sluice-Envelope-To: <p{i}@d{i % 4}.example>\r\n"
             f"From: <news@snd.example>\r\nSubject: pickup {i}\r\n\r\nPickup message {i}.\r\n").encode())
        names.append(name)
    batch = tmp / "steady.batch"
    batch.mkdir()
    (batch / "manifest.toml").write_text(
        'sender = "news@snd.example"\ntemplate = "template.eml"\nrecipients = "recipients.csv"\n')
    (batch / "template.eml").write_bytes(
        b"From: <news@snd.example>\r\nTo: <{{email}}>\r\nSubject: Hello {{name}}\r\n\r\nDear {{name}}.\r\n")
    (batch / "recipients.csv").write_text(
        "email,name\r\n" + "".join(f"b{i}@d{i % 4}.example,N{i}\r\n" for i in range(batch_rcpts)), newline="")
    for name in names:
        os.rename(tmp / name, new / name)
    os.rename(batch, new / batch.name)


@pytest.mark.time_limit(60)
def test_shard_threads_make_no_blocking_syscall(sluice_factory, sink_factory, mx_port, tmp_path):
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed (tools/deps.sh installs it)", pytrace=False)
    if sanitized_build():
        # The sanitizer runtime makes syscalls of its own on the shard
        # threads (UBSan's vptr check probes a vtable by write()ing 16 bytes
        # of it into a fresh pipe); the optimised integration pass runs it.
        pytest.skip("the sanitizer runtime's own syscalls are not the relay's")
    files, batch_rcpts, burst_messages = 200, 2000, 2400  # 2,400 x 60 KB: 144 MB
    sink = sink_factory("127.0.0.2")
    pickup = tmp_path / "pickup"
    for d in ("tmp", "new", "bad"):
        (pickup / d).mkdir(parents=True)
    relay = sluice_factory(delivery=True, shards=2,
                           args=["--route", f"*=[127.0.0.2]:{mx_port}", "--pickup", str(pickup)])
    # A steady load well under capacity, longer than the test needs: blast
    # is stopped by PID at the end (the trace ends before it does).
    blast = subprocess.Popen(
        [str(tools_dir() / "sluice-blast"), "--target", f"{relay.host}:{relay.port}", "--connections", "4",
         "--rate", "300", "--duration", "40", "--domains", "4", "--size", "2048", "--expect-failures"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trace = None
    try:
        # Steady state: mail has gone all the way through, on both shards.
        wait_for(lambda: stored(sink) >= 200, 20, what="200 messages relayed to the sink")
        tids = shard_threads(relay.pid)
        assert sorted(tids.values()) == ["shard-0", "shard-1"], tids
        maps = Path(f"/proc/{relay.pid}/maps").read_text()
        trace = Strace(tids, tmp_path / "strace.txt")
        trace.wait_attached()
        t0 = time.monotonic()
        relayed_before = stored(sink)
        picked = PickupCounter(relay.log_path)
        drop_pickup(pickup, files, batch_rcpts)
        # A burst of 60 KB messages past the 64 MiB segment rotation of a
        # shard: its full segment is delivered, tombstoned and retired
        # (unlinked) while traced, as happens all the time under volume.
        burst = subprocess.run(
            [str(tools_dir() / "sluice-blast"), "--target", f"{relay.host}:{relay.port}", "--connections", "8",
             "--messages", str(burst_messages), "--size", "60000", "--domains", "4", "--json"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(30))
        assert burst.returncode == 0, burst.stdout + burst.stderr
        wait_for(lambda: picked() >= files + 1, 20, what="the pickup files and the batch queued")
        wait_for(lambda: segments_removed(relay) >= 1, 20, interval=0.2, what="a spool segment retired")
        # At least 3 s of traced steady load, and more mail through meanwhile.
        wait_for(lambda: time.monotonic() - t0 >= 3 and stored(sink) >= relayed_before + 200, 20,
                 what="200 more messages relayed while traced")
        calls, lines = trace.stop()
        traced_s = time.monotonic() - t0
        relayed = stored(sink) - relayed_before
    finally:
        if trace is not None and trace.proc.poll() is None:
            trace.proc.kill()
            trace.proc.wait(timeout=10)
        blast.kill()
        blast.wait(timeout=10)
    print(f"traced {', '.join(sorted(tids.values()))} for {traced_s:.1f} s: {relayed} messages relayed, "
          f"{files} pickup files and a batch of {batch_rcpts} recipients queued, "
          f"{burst_messages} messages of 60 KB relayed and a segment retired")
    for name, n in calls.most_common():
        print(f"  {name:20} {n:8}  {'FORBIDDEN' if name in FORBIDDEN else ALLOWED.get(name, 'NOT ALLOWED')}")
    for what, n in sorted(futex_waits(lines, maps).items()):
        print(f"  futex wait: {what} x{n}")
    assert calls["io_uring_enter"] > 0, f"the trace saw no ring activity: {dict(calls)}"
    forbidden, known = [], Counter()
    for line in lines:
        name = line.split("(", 1)[0]
        # close is allowed, but the last close of an unlinked file frees its
        # blocks there and then: that one blocks like an unlink.
        deleted_file = name == "close" and "(deleted)" in line and "socket:" not in line
        if name not in FORBIDDEN and not deleted_file:
            continue
        owner = next((why for pattern, why in KNOWN if re.match(pattern, line)), None)
        if owner is None:
            forbidden.append(line[:300])
        else:
            known[f"{name}: {owner}"] += 1
    for what, n in sorted(known.items()):
        print(f"  known, to be moved off the shard: {what} x{n}")
    assert not forbidden, "blocking syscalls on shard threads:\n" + "\n".join(forbidden[:20])
    unexpected = {k: v for k, v in calls.items() if k not in ALLOWED and k not in FORBIDDEN}
    assert not unexpected, f"syscalls on shard threads that are not in ALLOWED: {unexpected}"
