"""Shared pieces of the end-to-end benchmarks (bench/inbound.py, relay.py,
backlog.py, and the suite bench/suite.py behind bench/run): where the
binaries are, ports, the peers (sluice-sink, smtp-sink, sluice serve, a
private Postfix), the two load generators (sluice-blast, smtp-source),
memory/CPU probes and the median/min/max summary.

Binaries: $SLUICE_BIN (default build/sluice) and $SLUICE_TOOLS_DIR (default
the tools/ directory next to SLUICE_BIN). configure() changes both at run
time (the suite points them at its release build).

Every peer is a context manager that stops its processes by PID.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "bench" / "lib.sh"
# The four MX addresses of the relay benchmark (all on loopback).
SINK_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
SENDER = "bench@source.test"

_paths = {
    "sluice": Path(os.environ.get("SLUICE_BIN", str(ROOT / "build" / "sluice"))),
    "tools": None,
}
if os.environ.get("SLUICE_TOOLS_DIR"):
    _paths["tools"] = Path(os.environ["SLUICE_TOOLS_DIR"])


def configure(sluice_bin=None, tools_dir=None):
    """Points the benchmarks at other binaries (e.g. a release build)."""
    if sluice_bin:
        _paths["sluice"] = Path(sluice_bin)
    if tools_dir:
        _paths["tools"] = Path(tools_dir)


def sluice_bin() -> str:
    return str(_paths["sluice"])


def tool(name: str) -> str:
    d = _paths["tools"] or _paths["sluice"].parent / "tools"
    return str(d / name)


_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress on stderr, stamped with seconds since the import."""
    print(f"[{time.monotonic() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(hard, want)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def make_workdir(prefix: str) -> Path:
    """A temporary directory on the real disk (not tmpfs: fsyncs must cost
    what they cost), readable by the postfix user."""
    base = os.environ.get("SLUICE_BENCH_TMP") or None
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(work, 0o755)  # Postfix daemons run as the postfix user
    return work


def free_port(host="127.0.0.1") -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, host="127.0.0.1", seconds=15.0, proc=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        try:
            socket.create_connection((host, port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {host}:{port} never opened")


def stop_process(p: subprocess.Popen, sig=signal.SIGTERM, timeout=60.0) -> None:
    if p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# ---------------------------------------------------------------------------
# /proc probes
# ---------------------------------------------------------------------------


def status_kib(pid: int, key: str) -> int:
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process, its live descendants, and the children
    each of them has reaped (Postfix's master and its daemons)."""
    children: dict = {}
    stats: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(d))
                stats[int(d)] = sum(int(x) for x in fields[11:15])
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        total += stats.get(pid, 0)
    return total / os.sysconf("SC_CLK_TCK")


def pss_tree_kib(root_pid: int) -> int:
    """Total PSS of a process and all its descendants."""
    children: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakSampler(threading.Thread):
    """Samples fn() every 0.2 s and keeps the largest value."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.peak, self.halt = fn, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, self.fn())
            except Exception:
                pass
            time.sleep(0.2)

    def finish(self) -> int:
        self.halt.set()
        self.join()
        return self.peak


# ---------------------------------------------------------------------------
# Load generators
# ---------------------------------------------------------------------------


def blast(port: int, messages: int, size: int, *, domains=1, connections=50, host="127.0.0.1",
          extra=(), timeout=900) -> dict:
    """Runs sluice-blast to completion; returns its JSON report. Fails on any
    refused or unsent message."""
    cmd = [tool("sluice-blast"), "--target", f"{host}:{port}", "--connections", str(connections),
           "--messages", str(messages), "--size", str(size), "--domains", str(domains),
           "--json", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"sluice-blast failed ({r.returncode}): "
                           f"{(r.stdout + r.stderr).strip()[-500:]}")
    return json.loads(r.stdout)


def smtp_source(port: int, messages: int, size: int, *, sessions=50, host="127.0.0.1",
                timeout=600) -> float:
    """Postfix's smtp-source: `sessions` parallel sessions, one message per
    session (no reuse, no pipelining). Returns messages per second."""
    start = time.monotonic()
    r = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                        "-f", SENDER, "-t", "rcpt@dest.test", f"{host}:{port}"],
                       capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {r.stderr.strip()[-500:]}")
    return messages / elapsed


# ---------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------


class Sink:
    """A sluice-sink on 127.0.0.1 (and, with mx_hosts, on the four MX
    addresses too), one port. Counts through its SIGUSR1 JSON stats."""

    def __init__(self, work: Path, mx_hosts=False, extra=()):
        self.port = free_port()
        self.stats_path = Path(work) / f"sink-{self.port}.json"
        cmd = [tool("sluice-sink"), "--stats-json", str(self.stats_path), *extra]
        for h in ["127.0.0.1"] + (SINK_HOSTS if mx_hosts else []):
            cmd += ["--listen", f"{h}:{self.port}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def stats(self) -> dict:
        before = self.stats_path.stat().st_mtime_ns if self.stats_path.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.stats_path.exists() and self.stats_path.stat().st_mtime_ns != before:
                break
            time.sleep(0.01)
        stats = json.loads(self.stats_path.read_text())
        if stats.get("digest_mismatch", 0):
            raise RuntimeError(f"sink saw {stats['digest_mismatch']} corrupted messages")
        return stats

    def messages(self) -> int:
        return self.stats()["messages"]

    def require_signed(self, n: int, row: str) -> None:
        """Fails unless at least n messages at the sink carried a
        DKIM-Signature field: a signing row that did not sign measured
        something else."""
        stats = self.stats()
        signed = stats.get("dkim_signed")
        if signed is None:
            raise RuntimeError(f"{row}: this sluice-sink does not count DKIM-Signature fields "
                               "(rebuild tools/sluice-sink)")
        if signed < n:
            raise RuntimeError(f"{row}: only {signed} of {stats['messages']} messages at the "
                               f"sink carry a DKIM-Signature (expected {n}): the row did not sign")

    def wait_for(self, n: int, seconds: float) -> float:
        """Waits until the sink has counted n messages; returns that moment
        (time.monotonic())."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.messages() >= n:
                return time.monotonic()
            time.sleep(0.05)
        raise RuntimeError(f"sink got {self.messages()} of {n} messages in {seconds} s")

    def stop(self):
        stop_process(self.proc, timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SmtpSink:
    """Postfix's smtp-sink (stores nothing; -c keeps a running count)."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["smtp-sink", "-u", "postfix", f"127.0.0.1:{self.port}",
                                      "1000"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def stop(self):
        stop_process(self.proc, timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Sluice:
    """`sluice serve` on a fresh spool under `work`. `args` are extra serve
    flags (--no-delivery, --dns, --route, --config, ...); with log, an
    accounting log (needed by deliveries())."""

    def __init__(self, work: Path, args=(), name="sluice", log=True):
        self.work = Path(work)
        self.port = free_port()
        self.spool = self.work / f"{name}-spool"
        self.log_path = self.work / f"{name}.log"
        shutil.rmtree(self.spool, ignore_errors=True)
        # A fresh log: deliveries() counts the records of this run only.
        self.log_path.unlink(missing_ok=True)
        self.err_path = self.work / f"{name}.err"
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sluice_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--spool",
                 str(self.spool), *(["--log", str(self.log_path)] if log else []), *args],
                stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"sluice did not start: {self.err_path.read_text()[-500:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_kib(self) -> int:
        return status_kib(self.proc.pid, "VmHWM")

    def queued_messages(self) -> int:
        out = subprocess.run([sluice_bin(), "queue", "messages", "--spool", str(self.spool), "--json",
                              "--spool-only"], capture_output=True, text=True, check=True, timeout=120).stdout
        return len(json.loads(out))

    def deliveries(self) -> int:
        """Delivery records in the accounting log so far."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text().count('"type":"Delivery"')

    def stop(self):
        stop_process(self.proc, timeout=120)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.spool, ignore_errors=True)


class Postfix:
    """A private Postfix (bench/lib.sh postfix_setup) on a free port, with its
    own configuration and queue under work/postfix; relay_port None holds
    every message (accepted, fsynced into the hold queue, never delivered).
    tls=(cert, key) turns on STARTTLS in smtpd with that certificate and
    opportunistic TLS in the smtp client (postfix_setup's TLS arguments).
    extra_main_cf: more main.cf lines (e.g. OpenDkim.postfix_main_cf())."""

    def __init__(self, work: Path, relay_port=None, tls=None, extra_main_cf=()):
        if shutil.which("postfix") is None and not Path("/usr/sbin/postfix").exists():
            raise RuntimeError("postfix is not installed (bench/run installs it)")
        self.port = free_port()
        self.dir = Path(work) / "postfix"
        relay = "hold" if relay_port is None else str(relay_port)
        tls_args = f' "{tls[0]}" "{tls[1]}"' if tls else ""
        env = dict(os.environ, POSTFIX_EXTRA_MAIN_CF="\n".join(extra_main_cf))
        subprocess.run(["bash", "-c", f'source "{LIB}"; postfix_setup "{self.dir}" {self.port} '
                        f"{relay}{tls_args}"], check=True, timeout=60, env=env)
        try:
            wait_port(self.port)
            self.master = int((self.dir / "queue" / "pid" / "master.pid").read_text().strip())
        except Exception:
            self.stop()
            raise

    def pss_kib(self) -> int:
        return pss_tree_kib(self.master)

    def stop(self):
        subprocess.run(["postfix", "-c", str(self.dir / "etc"), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        # `postfix stop` returns before master has gone; wait for it (by PID)
        # so the next run's port and queue are really free.
        deadline = time.monotonic() + 10
        master = getattr(self, "master", None)
        while master and time.monotonic() < deadline:
            try:
                os.kill(master, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def opendkim_exe() -> str | None:
    """Debian's opendkim (in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("opendkim")
    if found:
        return found
    return "/usr/sbin/opendkim" if os.access("/usr/sbin/opendkim", os.X_OK) else None


class OpenDkim:
    """Debian's OpenDKIM as a private signing milter (Postfix's way to sign):
    `opendkim -f` (foreground, so its PID is ours to stop) with its own
    configuration under work/opendkim, listening on inet:PORT@127.0.0.1,
    signing every message (SigningTable refile `*`) with one RSA key of
    `bits` bits for d=bench.example, s=b, relaxed/relaxed like Sluice's
    default, no syslog. The key (opendkim-genkey) is made once per work
    directory and reused. postfix_main_cf() is what Postfix needs to use it;
    milter_default_action = tempfail, so a milter failure shows up as
    refused messages (blast fails) instead of unsigned mail."""

    def __init__(self, work: Path, bits=2048, domain="bench.example", selector="b"):
        exe = opendkim_exe()
        genkey = shutil.which("opendkim-genkey") or "/usr/sbin/opendkim-genkey"
        if exe is None or not os.access(genkey, os.X_OK):
            raise RuntimeError("opendkim / opendkim-genkey are not installed "
                               "(tools/deps.sh installs opendkim and opendkim-tools)")
        work = Path(work)
        keys = work / f"opendkim-keys-{bits}"
        key = keys / f"{selector}.private"
        if not key.exists():
            keys.mkdir(mode=0o700, exist_ok=True)
            subprocess.run([genkey, "-b", str(bits), "-d", domain, "-s", selector, "-D",
                            str(keys)], check=True, capture_output=True, timeout=60)
        self.dir = work / "opendkim"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(mode=0o700)
        self.port = free_port()
        (self.dir / "KeyTable").write_text(f"{selector}._domainkey.{domain} "
                                           f"{domain}:{selector}:{key}\n")
        (self.dir / "SigningTable").write_text(f"* {selector}._domainkey.{domain}\n")
        conf = self.dir / "opendkim.conf"
        conf.write_text("\n".join([
            "Syslog no", "SyslogSuccess no", "LogWhy no", "Mode s",
            "Canonicalization relaxed/relaxed", "OversignHeaders From",
            f"KeyTable file:{self.dir / 'KeyTable'}",
            f"SigningTable refile:{self.dir / 'SigningTable'}",
            "InternalHosts 127.0.0.1", f"Socket inet:{self.port}@127.0.0.1",
            # The key is a throwaway under the work directory, usually in
            # /tmp, which the safe-key check refuses (a writable ancestor):
            # without this OpenDKIM tempfails every message.
            "RequireSafeKeys no",
            f"PidFile {self.dir / 'opendkim.pid'}", ""]))
        self.err_path = self.dir / "opendkim.err"
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen([exe, "-f", "-x", str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=err)
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"opendkim did not start: {self.err_path.read_text()[-500:]}")

    def postfix_main_cf(self) -> list:
        milter = f"inet:127.0.0.1:{self.port}"
        return [f"smtpd_milters = {milter}", f"non_smtpd_milters = {milter}",
                "milter_default_action = tempfail"]

    def stop(self):
        stop_process(self.proc, timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def relay_dns(work: Path, domains: int):
    """dnsmasq (tests/integration/delivery_peers.DnsServer) serving MX records
    for d0.example .. d{domains-1}.example, spread over mx0..mx3.sinks.example
    = SINK_HOSTS. The caller stops it (dns.stop())."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from delivery_peers import DnsServer  # dnsmasq, shared with the tests
    dns = DnsServer(Path(work) / "dns", zones=("example",), ttl=3600)
    for i, h in enumerate(SINK_HOSTS):
        dns.a(f"mx{i}.sinks.example", h)
    for d in range(domains):
        dns.mx(f"d{d}.example", [(10, f"mx{d % len(SINK_HOSTS)}.sinks.example")])
    dns.apply()
    return dns


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


def summary(values) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": list(vals)}


def fmt_rate(s: dict) -> str:
    """'median (min–max)' of a summary()."""
    if not s or s.get("median") is None:
        return "–"
    return f"{s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f})"


def interleave(rows: dict, order, sizes, reps: int, on_result=None, label=None) -> dict:
    """Runs rows[name](size) for every rep, size and name, interleaved (rep
    outermost, so a slow moment of the machine hits every row alike).
    Each runner returns a float (msgs/s) or a dict with a "rate" key.
    `label(rep)` names the repetition in the log (default "rep N/REPS").
    Returns {size: {name: [result dict, ...]}}."""
    out = {size: {name: [] for name in order} for size in sizes}
    for rep in range(reps):
        for size in sizes:
            for name in order:
                r = rows[name](size)
                if not isinstance(r, dict):
                    r = {"rate": r}
                out[size][name].append(r)
                tag = label(rep) if label else f"rep {rep + 1}/{reps}"
                log(f"{tag} size={size} {name}: {r['rate']:,.0f} msgs/s")
                if on_result:
                    on_result(rep, size, name, r)
    return out


def rates(results: list) -> dict:
    """summary() of the "rate" of a row's results."""
    return summary([r["rate"] for r in results])
