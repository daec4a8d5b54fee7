"""bench/tls.py still runs: its command line in a tiny configuration (a few
dozen messages, one repetition, one key type), every row against the real
peers (sluice serve with an openssl-made certificate, a private Postfix with
smtpd and smtp TLS). The numbers are not checked, only that every row was
measured over TLS (bench/tls.py itself fails a row whose sessions did not
all get TLS, or whose messages reached the receiver in the clear), plus the
argument checks and the incremental log counter (pure).

Needs Postfix and openssl (tools/deps.sh installs them); uses the binaries of
SLUICE_BIN's build directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sluice_harness import scaled, sluice_bin

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "tls.py"
sys.path.insert(0, str(ROOT / "bench"))
import tls as tlsbench  # noqa: E402  (bench/tls.py)


def run_tls(*args, timeout=30):
    e = dict(os.environ, SLUICE_BIN=str(sluice_bin()))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=scaled(timeout), env=e)


@pytest.mark.parametrize("args,message", [
    (["--keys", "dsa"], "unknown key type 'dsa'"),
    (["--rows", "hs_sluice,nope"], "unknown row 'nope'"),
    (["--handshakes", "0"], "--handshakes must be at least 1"),
    (["--rows", ""], "need at least one entry"),
])
def test_bad_arguments_are_refused(args, message):
    r = run_tls(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_log_counter_counts_only_complete_new_lines(tmp_path):
    log = tmp_path / "acct.log"
    c = tlsbench.LogCounter(log, b'"type":"Reception"')
    assert c.count() == 0  # no file yet
    log.write_bytes(b'{"type":"Reception","a":1}\n{"type":"Delivery"}\n{"type":"Rec')
    assert c.count() == 1  # the half line is not counted yet
    with open(log, "ab") as f:
        f.write(b'eption"}\n{"type":"Reception"}\n')
    assert c.count() == 3
    assert c.count() == 3  # nothing new


@pytest.mark.slow
@pytest.mark.time_limit(200)
def test_bench_tls_runs_every_row(tmp_path):
    for cmd in ("postfix", "openssl"):
        if not shutil.which(cmd) and not Path(f"/usr/sbin/{cmd}").exists():
            pytest.fail(f"{cmd} is missing (tools/deps.sh installs it)", pytrace=False)
    if not os.access(sluice_bin().parent / "tools" / "sluice-blast", os.X_OK):
        pytest.fail("sluice-blast is not built next to SLUICE_BIN", pytrace=False)
    out = tmp_path / "tls.json"
    r = run_tls("--reps", "1", "--keys", "rsa", "--handshakes", "30", "--round", "15",
                "--messages", "60", "--postfix-messages", "40", "--relay-messages", "60",
                "--relay-postfix-messages", "40", "--connections", "5", "--json", str(out),
                timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())["rsa"]
    assert set(res) == set(tlsbench.ROWS)
    for name, results in res.items():
        assert len(results) == 1 and results[0]["rate"] > 0, (name, results)
    for name in ("hs_sluice", "hs_postfix", "rot_sluice", "rot_postfix", "resume_sluice",
                 "resume_postfix"):
        assert res[name][0]["handshakes"] >= 30  # one per message, at least
    for name in ("rot_sluice", "rot_postfix"):
        assert res[name][0]["resumed"] == 0
    for name in ("resume_sluice", "resume_postfix"):
        assert res[name][0]["resumed"] > 0, res[name]
    for label, what, *_ in tlsbench.ROWS.values():
        assert f"| {label} | {what} |" in r.stdout
    assert "% resumed)" in r.stdout
    assert "compare resume_* with rot_*" in r.stdout


def test_report_ratios_and_targets():
    res = {"rsa": {"hs_sluice": [{"rate": 300.0, "handshakes_per_s": 300.0, "server_cpu_ms": 2.0,
                                  "client_cpu_ms": 0.7}],
                   "hs_postfix": [{"rate": 200.0, "handshakes_per_s": 200.0,
                                   "server_cpu_ms": 2.5, "client_cpu_ms": 0.9}],
                   "relay_ceiling": [{"rate": 10000.0}],
                   "relay_sluice": [{"rate": 4000.0}, {"rate": 6000.0}, {"rate": 5000.0}],
                   "relay_postfix": [{"rate": 400.0}]}}
    assert [(k, r, round(x, 2)) for k, r, x in tlsbench.targets(res)] == [
        ("rsa", "hs_sluice", 1.5), ("rsa", "relay_sluice", 12.5)]
    text = tlsbench.report(res)
    assert "| RSA 2048 | blast → Sluice → receiver | TLS in and out, 1 destination | 5,000 " \
           "| 4,000 | 6,000 | 12.5× | 0.50 |" in text
    assert "| 2.00 / 0.70 |" in text
    assert "full handshake per message: **1.5×** (NOT met)" in text
    assert "1 destination: **12.5×** (met)" in text
