#!/usr/bin/python3
"""TLS, Sluice against Postfix in one run (issue 6's benchmarks). The same
load generator, `sluice-blast --starttls` (wolfSSL through tls::Session, no
certificate verification), drives every row; certificates are made at run
time with `openssl req` (RSA 2048 and/or ECDSA P-256, --keys); 2 KB messages.

Inbound acceptance over STARTTLS (every message fdatasynced before its 250;
Sluice --no-delivery, Postfix holding what it accepts):
  hs_*       a new connection and a full TLS handshake per message:
             rounds of blast --connections N --messages N (N = --round,
             under Postfix's process limit and listen backlog), so every
             session does EHLO, STARTTLS, a handshake, EHLO, one message and
             QUIT; rate = messages / the rounds' summed wall time;
  rot_*      a new connection and a full handshake per message, driven
             like resume_*: one blast run, --connections C (50) slots,
             --messages-per-connection 1 (a slot opens its next connection
             when the previous one QUIT); the baseline for resume_*;
  resume_*   the same with --tls-resume: each slot offers the session
             (TLS 1.3 ticket) its previous connection got, so every
             handshake after a slot's first is a resumed one. Postfix is
             driven the same way (smtpd issues tickets under tlsmgr's shared
             key, and keeps a TLS 1.2 session cache); the row fails unless
             the server resumed most handshakes;
  session_*  50 connections, one handshake each, then many messages
             (how bulk clients submit).

End-to-end relay with outbound TLS (one destination, TLS on both legs):
  relay_ceiling  blast --starttls -> the receiver directly;
  relay_sluice   blast --starttls -> Sluice ([delivery] tls = "required",
                 a --route to the receiver) -> receiver;
  relay_postfix  blast --starttls -> Postfix (relayhost, smtpd and smtp TLS
                 "may", smtp_tls_connection_reuse, session caches) -> receiver.
  The receiver is a second Sluice with the same kind of certificate and
  --no-delivery (sluice-sink has no TLS); a run ends when its accounting log
  holds every message, and every one must have arrived over TLS
  (protocol ESMTPS), so a relay that fell back to plaintext fails the run.

Rows are interleaved and repeated (rep outermost); only the ratios within
one run mean anything on a shared machine.

    bench/tls.py [--reps 3] [--keys rsa,ec] [--handshakes 1000] [--round 200]
                 [--messages 20000] [--postfix-messages 3000]
                 [--relay-messages 10000] [--relay-postfix-messages 2000]
                 [--rows hs_sluice,...] [--json FILE]

Prints a Markdown table and the ratios. As a module: measure(...) returns
{key: {row: [result, ...]}}; report() renders it (bench/suite.py --tls).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SIZE = 2048
KEYS = {"rsa": "RSA 2048", "ec": "ECDSA P-256"}
# Row id: (label, what, Postfix row it is compared with, ceiling row)
ROWS = {
    "hs_sluice": ("blast → Sluice", "STARTTLS, new connection + full handshake per message",
                  "hs_postfix", None),
    "hs_postfix": ("blast → Postfix", "STARTTLS, new connection + full handshake per message",
                   None, None),
    "rot_sluice": ("blast → Sluice", "STARTTLS, new connection per message, full handshake, "
                   "50 slots", "rot_postfix", None),
    "rot_postfix": ("blast → Postfix", "STARTTLS, new connection per message, full handshake, "
                    "50 slots", None, None),
    "resume_sluice": ("blast → Sluice", "STARTTLS, new connection per message, with session "
                      "resumption, 50 slots", "resume_postfix", None),
    "resume_postfix": ("blast → Postfix", "STARTTLS, new connection per message, with session "
                       "resumption, 50 slots", None, None),
    "session_sluice": ("blast → Sluice", "STARTTLS once per connection, 50 connections",
                       "session_postfix", None),
    "session_postfix": ("blast → Postfix", "STARTTLS once per connection, 50 connections",
                        None, None),
    "relay_ceiling": ("blast → receiver", "STARTTLS, the relay rows' ceiling", None, None),
    "relay_sluice": ("blast → Sluice → receiver", "TLS in and out, 1 destination",
                     "relay_postfix", "relay_ceiling"),
    "relay_postfix": ("blast → Postfix → receiver", "TLS in and out, relayhost", None,
                      "relay_ceiling"),
}


def make_cert(directory: Path, key: str) -> tuple:
    """A self-signed certificate for localhost made with `openssl req`;
    returns (cert, key) paths. The key is world-readable: Postfix's smtpd
    reads it, and it is a throwaway under the work directory."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, priv = directory / f"{key}.crt", directory / f"{key}.key"
    newkey = {"rsa": ["-newkey", "rsa:2048"],
              "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]}[key]
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    subprocess.run([openssl, "req", "-x509", *newkey, "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(priv), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    priv.chmod(0o644)
    cert.chmod(0o644)
    return cert, priv


class LogCounter:
    """Counts lines of an accounting log (JSON lines) containing `needle`,
    reading only what was appended since the last call: polling a growing
    log must not cost the machine the benchmark is measuring."""

    def __init__(self, path: Path, needle: bytes):
        self.path, self.needle = Path(path), needle
        self.pos, self.rest, self.n = 0, b"", 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return 0
        self.pos += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        self.n += sum(1 for line in data[:cut].splitlines() if self.needle in line)
        return self.n


def _check_tls(r: dict, what: str) -> None:
    """Every blast session got TLS (blast ends sessions that do not)."""
    if r.get("tls_failed") or r.get("tls_established") != r.get("sessions"):
        raise RuntimeError(f"{what}: {r.get('tls_established')} of {r.get('sessions')} sessions "
                           f"got TLS, {r.get('tls_failed')} handshakes failed")


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children (the blast runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _blast_tls(port: int, messages: int, connections: int, extra=()) -> dict:
    r = common.blast(port, messages, SIZE, connections=connections,
                     extra=["--starttls", *extra])
    _check_tls(r, f"blast --starttls {' '.join(extra)} -> :{port}")
    return r


class Tls:
    """The TLS benchmark's fixtures: a work directory and one certificate per
    key type. Each run_* is one measurement returning {"rate": msgs/s, ...}."""

    def __init__(self, work: Path, keys=("rsa",)):
        self.work = Path(work)
        self.certs = {k: make_cert(self.work / "certs", k) for k in keys}

    def _sluice(self, key: str, args=(), name="sluice") -> common.Sluice:
        cert, priv = self.certs[key]
        return common.Sluice(self.work, ["--tls-cert", str(cert), "--tls-key", str(priv), *args],
                             name=name)

    def _postfix(self, key: str, relay_port=None) -> common.Postfix:
        return common.Postfix(self.work, relay_port, tls=self.certs[key])

    def _handshake_rounds(self, port: int, messages: int, per_round: int, server_cpu) -> dict:
        """Rounds of `n` connections with one message each; every connection
        does a full handshake. server_cpu() is the server's CPU seconds so
        far; the CPU of the server and of blast per message shows where a
        handshake's cost goes (both share the machine's cores)."""
        done, elapsed, handshakes = 0, 0.0, 0
        cpu0, client0 = server_cpu(), _children_cpu()
        while done < messages:
            n = min(per_round, messages - done)
            r = _blast_tls(port, n, n)
            done += r["messages_ok"]
            elapsed += r["elapsed_s"]
            handshakes += r["tls_established"]
        return {"rate": done / elapsed, "handshakes_per_s": handshakes / elapsed,
                "handshakes": handshakes,
                "server_cpu_ms": (server_cpu() - cpu0) * 1000 / done,
                "client_cpu_ms": (_children_cpu() - client0) * 1000 / done}

    def _rotating(self, port: int, messages: int, connections: int, resume: bool,
                  server_cpu) -> dict:
        """One blast run with a new connection per message in `connections`
        slots; with `resume` each slot offers its last TLS session. The
        server must have resumed at least 90 % of the handshakes that could
        be (every one but each slot's first), or the row is not what it
        says."""
        cpu0, client0 = server_cpu(), _children_cpu()
        extra = ["--messages-per-connection", "1"] + (["--tls-resume"] if resume else [])
        r = _blast_tls(port, messages, connections, extra)
        done, hs, resumed = r["messages_ok"], r["tls_established"], r["tls_resumed"]
        if resume and resumed < 0.9 * (hs - connections):
            raise RuntimeError(f":{port} resumed {resumed} of {hs} handshakes")
        if not resume and resumed:
            raise RuntimeError(f":{port} resumed {resumed} handshakes without --tls-resume")
        return {"rate": done / r["elapsed_s"], "handshakes_per_s": hs / r["elapsed_s"],
                "handshakes": hs, "resumed": resumed,
                "server_cpu_ms": (server_cpu() - cpu0) * 1000 / done,
                "client_cpu_ms": (_children_cpu() - client0) * 1000 / done}

    # -- inbound ---------------------------------------------------------------

    def run_rotating_sluice(self, key: str, messages: int, connections: int,
                            resume: bool) -> dict:
        with self._sluice(key, ["--no-delivery"]) as s:
            r = self._rotating(s.port, messages, connections, resume,
                               lambda: common.cpu_seconds(s.pid))
            r["peak_rss_kib"] = s.peak_rss_kib()
            queued = s.queued_messages()
            if queued != messages:
                raise RuntimeError(f"sluice queued {queued} of {messages}")
            return r

    def run_rotating_postfix(self, key: str, messages: int, connections: int,
                             resume: bool) -> dict:
        with self._postfix(key) as pf:
            return self._rotating(pf.port, messages, connections, resume,
                                  lambda: common.tree_cpu_seconds(pf.master))

    def run_hs_sluice(self, key: str, messages: int, per_round: int) -> dict:
        with self._sluice(key, ["--no-delivery"]) as s:
            r = self._handshake_rounds(s.port, messages, per_round,
                                       lambda: common.cpu_seconds(s.pid))
            r["peak_rss_kib"] = s.peak_rss_kib()
            queued = s.queued_messages()
            if queued != messages:
                raise RuntimeError(f"sluice queued {queued} of {messages}")
            return r

    def run_hs_postfix(self, key: str, messages: int, per_round: int) -> dict:
        with self._postfix(key) as pf:
            return self._handshake_rounds(pf.port, messages, per_round,
                                          lambda: common.tree_cpu_seconds(pf.master))

    def run_session_sluice(self, key: str, messages: int, connections=50) -> dict:
        with self._sluice(key, ["--no-delivery"]) as s:
            r = _blast_tls(s.port, messages, connections)
            queued = s.queued_messages()
            if queued != messages:
                raise RuntimeError(f"sluice queued {queued} of {messages}")
            return {"rate": r["messages_per_s"], "p50_us": r["latency_us"]["p50"],
                    "p99_us": r["latency_us"]["p99"], "peak_rss_kib": s.peak_rss_kib()}

    def run_session_postfix(self, key: str, messages: int, connections=50) -> dict:
        with self._postfix(key) as pf:
            r = _blast_tls(pf.port, messages, connections)
            return {"rate": r["messages_per_s"], "p50_us": r["latency_us"]["p50"],
                    "p99_us": r["latency_us"]["p99"]}

    # -- relay -----------------------------------------------------------------

    def _receiver(self, key: str) -> common.Sluice:
        return self._sluice(key, ["--no-delivery"], name="receiver")

    def _relay_through(self, port: int, receiver: common.Sluice, messages: int,
                       connections: int, seconds: float) -> dict:
        """blast --starttls into `port`; waits until the receiver logged
        every message, each received over TLS."""
        received = LogCounter(receiver.log_path, b'"type":"Reception"')
        start = time.monotonic()
        _blast_tls(port, messages, connections)
        deadline = start + seconds
        while received.count() < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receiver got {received.n} of {messages} in {seconds} s")
            time.sleep(0.05)
        end = time.monotonic()
        over_tls = LogCounter(receiver.log_path, b'"protocol":"ESMTPS"').count()
        if over_tls != messages:
            raise RuntimeError(f"only {over_tls} of {messages} messages reached the receiver "
                               "over TLS")
        return {"rate": messages / (end - start)}

    def run_relay_ceiling(self, key: str, messages: int, connections=50) -> dict:
        with self._receiver(key) as rx:
            r = _blast_tls(rx.port, messages, connections)
            return {"rate": r["messages_per_s"]}

    def run_relay_sluice(self, key: str, messages: int, connections=50) -> dict:
        conf = self.work / "tls-relay.toml"
        # "required": a delivery that could not get TLS is deferred, never
        # sent in the clear, so the row cannot quietly measure plaintext.
        conf.write_text('[delivery]\ntls = "required"\n')
        with self._receiver(key) as rx, \
                self._sluice(key, ["--config", str(conf), "--route",
                                   f"*=[127.0.0.1]:{rx.port}"], name="relay") as s:
            r = self._relay_through(s.port, rx, messages, connections, 300)
            plain = LogCounter(s.log_path, b'"tls":""').count()
            if plain:
                raise RuntimeError(f"sluice logged {plain} deliveries without TLS")
            r["peak_rss_kib"] = s.peak_rss_kib()
            return r

    def run_relay_postfix(self, key: str, messages: int, connections=50) -> dict:
        with self._receiver(key) as rx, self._postfix(key, rx.port) as pf:
            return self._relay_through(pf.port, rx, messages, connections, 600)


def measure(*, reps=3, keys=("rsa", "ec"), handshakes=1000, per_round=200, messages=20000,
            postfix_messages=3000, relay_messages=10000, relay_postfix_messages=2000,
            connections=50, rows=tuple(ROWS), work=None) -> dict:
    """Interleaved runs (rep, then key type, then row); returns
    {key: {row: [result, ...]}}."""
    own = work is None
    work = Path(work) if work else common.make_workdir("sluice-tls-")
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # Postfix's daemons run as the postfix user
    try:
        t = Tls(work, keys)
        c = connections
        runners = {
            "hs_sluice": lambda k: t.run_hs_sluice(k, handshakes, per_round),
            "hs_postfix": lambda k: t.run_hs_postfix(k, handshakes, per_round),
            "rot_sluice": lambda k: t.run_rotating_sluice(k, handshakes, c, False),
            "rot_postfix": lambda k: t.run_rotating_postfix(k, handshakes, c, False),
            "resume_sluice": lambda k: t.run_rotating_sluice(k, handshakes, c, True),
            "resume_postfix": lambda k: t.run_rotating_postfix(k, handshakes, c, True),
            "session_sluice": lambda k: t.run_session_sluice(k, messages, c),
            "session_postfix": lambda k: t.run_session_postfix(k, postfix_messages, c),
            "relay_ceiling": lambda k: t.run_relay_ceiling(k, relay_messages, c),
            "relay_sluice": lambda k: t.run_relay_sluice(k, relay_messages, c),
            "relay_postfix": lambda k: t.run_relay_postfix(k, relay_postfix_messages, c),
        }
        # common.interleave's second dimension is normally the message size;
        # here it is the key type (the message size is fixed at 2 KB).
        return common.interleave(runners, list(rows), list(keys), reps)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def targets(results: dict) -> list:
    """(key, what, ratio) of Sluice / Postfix medians for every pair."""
    out = []
    for key, rows in results.items():
        med = {n: common.rates(r)["median"] for n, r in rows.items()}
        for n, (_, what, pf, _) in ROWS.items():
            if pf and med.get(n) and med.get(pf):
                out.append((key, n, med[n] / med[pf]))
    return out


def table(results: dict) -> str:
    """Markdown: per key type and row, msgs/s median / min / max, the ratio
    to Postfix and to the ceiling, handshakes/s and memory."""
    lines = ["| certificate | row | what | median | min | max | / Postfix | / ceiling "
             "| handshakes/s | CPU ms per message: server / blast | Sluice peak RSS |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, rows in results.items():
        med = {n: common.rates(r)["median"] for n, r in rows.items()}
        for n, res in rows.items():
            label, what, pf, ceil = ROWS[n]
            s = common.rates(res)
            vs_pf = f"{med[n] / med[pf]:.1f}×" if pf in med and med[pf] else ""
            vs_ceil = f"{med[n] / med[ceil]:.2f}" if ceil in med and med[ceil] else ""
            hs = ""
            if res and "handshakes_per_s" in res[0]:
                hs = f"{common.summary([r['handshakes_per_s'] for r in res])['median']:,.0f}"
                if any(r.get("resumed") for r in res):
                    share = sum(r["resumed"] for r in res) / sum(r["handshakes"] for r in res)
                    hs += f" ({share:.0%} resumed)"
            cpu = ""
            if res and "server_cpu_ms" in res[0]:
                cpu = (f"{common.summary([r['server_cpu_ms'] for r in res])['median']:.2f} / "
                       f"{common.summary([r['client_cpu_ms'] for r in res])['median']:.2f}")
            mem = ""
            if any("peak_rss_kib" in r for r in res):
                mem = f"{max(r.get('peak_rss_kib', 0) for r in res) / 1024:.1f} MiB"
            lines.append(f"| {KEYS.get(key, key)} | {label} | {what} | {s['median']:,.0f} "
                         f"| {s['min']:,.0f} | {s['max']:,.0f} | {vs_pf} | {vs_ceil} | {hs} "
                         f"| {cpu} | {mem} |")
    return "\n".join(lines)


def report(results: dict) -> str:
    """table() followed by issue 6's target, per pair of rows (Markdown)."""
    lines = [table(results), "",
             "Sluice / Postfix over TLS (medians, same run; issue 6's target ≥ 5×):", ""]
    for key, row, ratio in targets(results):
        lines.append(f"- {KEYS.get(key, key)}, {ROWS[row][1]}: **{ratio:.1f}×** "
                     f"({'met' if ratio >= 5 else 'NOT met'})")
    lines += ["", "Every handshake is a full one except in the resume_* rows, where each of "
              "blast's connection slots offers the session its previous connection got "
              "(sluice-blast --tls-resume); rot_* are the same runs without it. The hs_* "
              "rows open their connections in rounds (separate blast runs), rot_* keep "
              "50 slots busy: compare resume_* with rot_*."]
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keys", default="rsa,ec", help="certificate key types: rsa, ec")
    ap.add_argument("--handshakes", type=int, default=1000,
                    help="messages (= connections = handshakes) of the hs_*, rot_* and "
                         "resume_* rows")
    ap.add_argument("--round", type=int, default=200,
                    help="connections opened at once in the hs_* rows")
    ap.add_argument("--messages", type=int, default=20000, help="session_sluice messages")
    ap.add_argument("--postfix-messages", type=int, default=3000,
                    help="session_postfix messages")
    ap.add_argument("--relay-messages", type=int, default=10000,
                    help="relay_sluice and relay_ceiling messages")
    ap.add_argument("--relay-postfix-messages", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=50,
                    help="blast connections (slots) of the rot, resume, session and relay "
                         "rows")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--json", default="", help="also write the raw results here")
    args = ap.parse_args(argv)
    args.keys = [k for k in args.keys.split(",") if k]
    args.rows = [r for r in args.rows.split(",") if r]
    for k in args.keys:
        if k not in KEYS:
            ap.error(f"unknown key type {k!r} (one of {', '.join(KEYS)})")
    for r in args.rows:
        if r not in ROWS:
            ap.error(f"unknown row {r!r} (one of {', '.join(ROWS)})")
    if not args.keys or not args.rows:
        ap.error("--keys and --rows need at least one entry")
    for name in ("reps", "handshakes", "round", "messages", "postfix_messages",
                 "relay_messages", "relay_postfix_messages", "connections"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    common.raise_nofile()
    results = measure(reps=args.reps, keys=args.keys, handshakes=args.handshakes,
                      per_round=args.round, messages=args.messages,
                      postfix_messages=args.postfix_messages,
                      relay_messages=args.relay_messages,
                      relay_postfix_messages=args.relay_postfix_messages,
                      connections=args.connections, rows=args.rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
