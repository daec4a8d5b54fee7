"""The benchmark suite still runs: bench/run --quick (a few hundred messages,
one repetition, every part: the interleaved rows with Postfix and dnsmasq
(and the DKIM rows, Postfix with its OpenDKIM milter),
the concurrency sweep and its gnuplot PNG, the backlog, the microbenchmarks)
into a copy of docs/BENCHMARKS.md, and each script's command line in a tiny
configuration. The numbers are not checked, only that every part produced
them and that the report around the generated section survives.

Needs Postfix (smtp-source, smtp-sink, postfix), dnsmasq and gnuplot
(tools/deps.sh installs them); uses the binaries of SLUICE_BIN's build
directory (no build, no install)."""

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
sys.path.insert(0, str(ROOT / "bench"))
import suite  # noqa: E402  (bench/suite.py: write_doc and the row ids)


def require_peers():
    missing = [c for c in ("smtp-source", "smtp-sink", "postfix", "dnsmasq", "gnuplot",
                           "opendkim", "opendkim-genkey")
               if not shutil.which(c) and not Path(f"/usr/sbin/{c}").exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} (tools/deps.sh installs them)", pytrace=False)
    if not os.access(sluice_bin().parent / "tools" / "sluice-blast", os.X_OK):
        pytest.fail("sluice-blast is not built next to SLUICE_BIN", pytrace=False)


def env():
    e = dict(os.environ)
    e.pop("SLUICE_BENCH_BUILD", None)
    return e


# -- the generated section of BENCHMARKS.md (pure) --------------------------------------


def test_write_doc_replaces_only_between_markers(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text(f"# B\n\nintro\n\n{suite.BEGIN}\nold numbers\n{suite.END}\n\n## analysis\n"
                   "kept\n")
    suite.write_doc(doc, "new numbers\n")
    text = doc.read_text()
    assert "old numbers" not in text
    assert f"{suite.BEGIN}\nnew numbers\n{suite.END}" in text
    assert text.startswith("# B\n\nintro\n") and text.endswith("## analysis\nkept\n")


def test_write_doc_appends_a_section_when_markers_are_missing(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text("# B\nhand-written\n")
    suite.write_doc(doc, "numbers\n")
    text = doc.read_text()
    assert text.startswith("# B\nhand-written\n")
    assert text.count(suite.BEGIN) == 1 and text.rstrip().endswith(suite.END)


def test_write_doc_refuses_swapped_markers(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text(f"{suite.END}\nx\n{suite.BEGIN}\n")
    with pytest.raises(RuntimeError, match="before"):
        suite.write_doc(doc, "numbers\n")
    assert doc.read_text() == f"{suite.END}\nx\n{suite.BEGIN}\n"


def test_suite_rejects_unknown_rows():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "suite.py"), "--skip-rows", "nope"],
                       capture_output=True, text=True, timeout=scaled(30))
    assert r.returncode == 2 and "unknown row 'nope'" in r.stderr


# -- bench/soak's accounting and flatness checks (pure) --------------------------------


def _record(kind, qid, **kw):
    r = {"type": kind, "id": qid, "sender": "s@x.test"}
    if kind == "Reception":
        r.update(recipients=["r@d0.example"], helo="blast.sluice.test", protocol="ESMTP")
    else:
        r.update(recipient="r@d0.example", domain="d0.example")
    r.update(kw)
    return json.dumps(r) + "\n"


def test_soak_accounting_finds_lost_stale_and_duplicate_messages(tmp_path):
    import soak
    import soak_clients
    log = tmp_path / "acct.log"
    lines = [_record("Reception", "A"),  # never final, not spooled: lost
             _record("Delivery", "B"), _record("Reception", "B"),  # final before its Reception
             _record("Reception", "C"),  # still queued
             _record("Reception", "D"), _record("Delivery", "D"), _record("Delivery", "D"),
             _record("Reception", "E"), _record("Bounce", "E")]  # final, yet still spooled
    text = "".join(lines)
    log.write_text(text[:len(text) // 2])  # the tally reads whole lines only
    tally = soak.LogTally(log, {})
    tally.update()
    log.write_text(text)
    tally.update()
    assert tally.counts["Reception"] == 5 and tally.finals() == 4
    a = soak.account(tally, {"C": "s@x.test", "E": "s@x.test"}, {"messages": 3}, 0,
                     soak_clients.Results(), blast_ok=5)
    assert a["lost"] == 1 and a["queued"] == 1
    problems = "\n".join(a["problems"])
    assert "1 accepted messages are neither final nor in the spool (e.g. A)" in problems
    assert "1 messages are in the spool though the log says they are final (e.g. E)" in problems
    assert "1 final records of messages never received" in problems
    assert "sink counted" not in problems  # 3 Delivery records, 3 at the sink
    assert "5 messages got a 250 but only 5" not in problems


def test_soak_flatness_flags_growth_and_not_noise():
    import soak
    flat = [{"t": t, "rss_kib": 50000 + (t % 3) * 500, "fds": 300, "queue": 1000}
            for t in range(0, 600, 10)]
    f = soak.flatness(flat, 60, 600)
    assert f["judged"] and not any(f[k]["grew"] for k in soak.GROWTH_FLOOR)
    leak = [dict(s, rss_kib=50000 + s["t"] * 100) for s in flat]
    f = soak.flatness(leak, 60, 600)
    assert f["rss_kib"]["grew"] and f["rss_kib"]["slope_per_min"] == pytest.approx(6000)
    assert not soak.flatness(flat[:8], 60, 600)["judged"]


# -- bench/run --quick ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.time_limit(300)
def test_bench_run_quick(tmp_path):
    require_peers()
    build = sluice_bin().parent
    doc = tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "docs" / "BENCHMARKS.md", doc)
    before = doc.read_text()
    png, out = tmp_path / "plot.png", tmp_path / "results.json"
    args = [str(ROOT / "bench" / "run"), "--build-dir", str(build), "--no-install", "--no-build",
            "--quick", "--doc", str(doc), "--plot", str(png), "--json", str(out)]
    micro = (build / "bench" / "sluice_bench").exists()
    if not micro:
        args.append("--no-micro")
    r = subprocess.run(args, capture_output=True, text=True, timeout=scaled(280), env=env(),
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bench/run: elapsed" in r.stderr

    res = json.loads(out.read_text())
    assert res["errors"] == []
    rows = res["throughput"]["2048"]
    assert set(rows) == set(suite.ROWS)
    for name, results in rows.items():
        assert len(results) == 1 and results[0]["rate"] > 0, (name, results)
    if "private network namespace" in res["network"]:
        # Every throughput row again with the namespace's lo at MTU 1500.
        rows = res["throughput"]["2048@1500"]
        assert set(rows) == set(suite.ROWS) - set(suite.DKIM_ROWS)  # default MTU only
        assert all(results[0]["rate"] > 0 for results in rows.values())
        assert "2 KB, MTU 1500" in doc.read_text()
    assert set(res["concurrency"]) == {"1", "10"}
    assert [b["mode"] for b in res["backlog"]] == ["deferred", "throttled"]
    assert res["backlog"][0]["queued"] == 400
    if micro:
        assert res["micro"]["benchmarks"]

    text = doc.read_text()
    # Hand-written parts outside the markers are untouched.
    head = before.split(suite.BEGIN)[0] if suite.BEGIN in before else before
    assert text.startswith(head)
    if suite.END in before:
        assert text.endswith(before.split(suite.END, 1)[1])
    section = text.split(suite.BEGIN, 1)[1].split(suite.END, 1)[0]
    for label, *_ in suite.ROWS.values():
        assert f"| {label} |" in section, label
    assert "Targets of issue 3" in section
    # Issue 13's two ratios, from the DKIM rows (each of which checked at the
    # sink that every message it counted was signed).
    assert "Sluice / Postfix + OpenDKIM relay, both signing with RSA-2048 = **" in section
    assert "Sluice relay signing with Ed25519 / without signing = **" in section
    assert "OpenDKIM 2." in section
    assert "| CPU |" in section and "| Sluice | `" in section and "Postfix 3." in section
    assert f"]({png.name})" in section  # linked relative to the document
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.time_limit(240)
@pytest.mark.parametrize("script,args,expect", [
    ("inbound.py", ["--reps", "1", "--messages", "200", "--postfix-messages", "100", "--sizes",
                    "2048", "--driver", "both"], ["blast → Sluice (fsync)", "smtp-source → Postfix"]),
    ("relay.py", ["--reps", "1", "--messages", "200", "--postfix-messages", "100", "--domains",
                  "10", "--sizes", "2048"], ["blast → Sluice → sinks", "| 2 KB |"]),
    ("backlog.py", ["--messages", "200", "--domains", "10", "--idle", "0.5"],
     ["| deferred | 200 |", "| throttled |"]),
    # The retire window needs each shard past its 64 MiB segment: the
    # default 200 MB prefill stays.
    ("ingest_latency.py", ["--rate", "300", "--seconds", "4", "--batch-seconds", "5", "--recipients", "20000",
                           "--batch-domains", "10"],
     ["| baseline | 1,2", "| segments retired |", "| 20,000-recipient batch ingested |"]),
])
def test_bench_script_command_lines(script, args, expect):
    require_peers()
    e = env()
    e["SLUICE_BIN"] = str(sluice_bin())
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True,
                       text=True, timeout=scaled(220), env=e)
    assert r.returncode == 0, r.stderr[-3000:]
    for s in expect:
        assert s in r.stdout, r.stdout


@pytest.mark.slow
@pytest.mark.time_limit(240)
def test_bench_soak_short_run(tmp_path):
    """bench/soak (issue 9's soak, normally 30 minutes by hand) for 20 s:
    the rate probe, blast at half of it, tricklers, TLS clients, every kind
    of failing domain, sampling, and the end-of-run accounting. The numbers
    are not judged (20 s is too short for the flatness check), only that
    every part ran and that nothing was lost."""
    if not os.access("/usr/sbin/dnsmasq", os.X_OK) or not shutil.which("openssl"):
        pytest.fail("dnsmasq or openssl is missing (tools/deps.sh installs them)", pytrace=False)
    build = sluice_bin().parent
    for exe in (build / "tools" / "sluice-blast", build / "tools" / "sluice-sink"):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} is not built next to SLUICE_BIN", pytrace=False)
    report, out = tmp_path / "soak.md", tmp_path / "soak.json"
    r = subprocess.run([str(ROOT / "bench" / "soak"), "--build-dir", str(build), "--no-build",
                        "--seconds", "20", "--probe-messages", "300", "--rate-fraction", "0.5",
                        "--domains", "50", "--sample-seconds", "2", "--drain-seconds", "20",
                        "--tricklers", "6", "--tls-clients", "2", "--report", str(report),
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=scaled(220), env=env(),
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    a = res["accounting"]
    assert res["problems"] == [] and a["lost"] == 0, res["problems"]
    assert res["max_rate_measured"] and res["max_rate"] > 0
    assert a["received"] > 0 and a["sink"] == a["delivered"] > 0
    assert a["bounced"] > 0 and a["deferrals"] > 0 and a["dsns"] > 0
    for helo in ("blast.sluice.test", "trickle.soak.test", "tls.soak.test"):
        assert a["by_helo"].get(helo, 0) >= a["acked"][helo] > 0, (helo, a)
    assert len(res["minutes"]) == 1 and len(res["samples"]) >= 5
    text = report.read_text()
    assert "| min | RSS MiB | fds | queue |" in text and "**Lost: 0.**" in text
    assert "Flatness not judged" in text and "Result: **PASS**" in text
