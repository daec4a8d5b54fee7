#!/usr/bin/python3
"""The whole benchmark suite, as run by bench/run (which installs the Debian
packages and builds the release binaries first):

  1. throughput rows, interleaved, --reps times, per message size:
       blast -> sluice-sink (the loopback ceiling)
       blast -> Sluice, blast -> Postfix           (inbound acceptance, fsync)
       blast -> Sluice -> sinks, blast -> Postfix -> sink   (end-to-end relay)
       the same relay rows signing every message with DKIM: Sluice with
       RSA-2048 and with Ed25519, Postfix with OpenDKIM as its milter
       (RSA-2048); default MTU only (--no-dkim leaves them out)
       smtp-source -> smtp-sink, -> Sluice, -> Postfix, -> Sluice -> smtp-sink
                                                   (the outside reference)
  2. throughput against concurrency (blast --connections 1,5,10,...) for the
     ceiling, Sluice inbound and Sluice relay; a gnuplot PNG;
  3. a waiting backlog (bench/backlog.py): memory per queued recipient, CPU
     while idle;
  4. the Google Benchmark microbenchmarks (JSON);
  5. optionally bench/batch.py (pickup batches), when it exists (--batch);
  6. optionally bench/tls.py (STARTTLS in, TLS relay, against Postfix with
     TLS; --tls).

It then rewrites the generated part of docs/BENCHMARKS.md (between
<!-- bench/run:begin --> and <!-- bench/run:end -->; everything outside is
hand-written and kept), saves the plot as docs/bench-concurrency.png and
the raw numbers as JSON (--json, default BUILD_DIR/bench-results.json).

    bench/suite.py --build-dir build-release [--reps 3] [--quick] ...
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import backlog  # noqa: E402
import common  # noqa: E402
import inbound  # noqa: E402
import relay  # noqa: E402
import tls  # noqa: E402

BEGIN = "<!-- bench/run:begin -->"
END = "<!-- bench/run:end -->"

# Row id: (label, what it is, Postfix row to compare with, ceiling row)
# The DKIM rows (issue 13): measured at the default MTU only, and left out
# with --no-dkim.
DKIM_ROWS = ("relay_sluice_rsa", "relay_sluice_ed25519", "relay_postfix_opendkim")
ROWS = {
    "ceiling": ("blast → sluice-sink", "loopback ceiling", None, None),
    "in_sluice": ("blast → Sluice", "inbound, fsync", "in_postfix", "ceiling"),
    "in_postfix": ("blast → Postfix", "inbound, fsync", None, "ceiling"),
    "relay_sluice": ("blast → Sluice → sinks", "relay, 1,000 MX domains", "relay_postfix",
                     "ceiling"),
    "relay_postfix": ("blast → Postfix → sink", "relay, relayhost", None, "ceiling"),
    "relay_sluice_rsa": ("blast → Sluice, DKIM RSA-2048 → sinks", "relay, every message signed",
                         "relay_postfix_opendkim", "ceiling"),
    "relay_sluice_ed25519": ("blast → Sluice, DKIM Ed25519 → sinks",
                             "relay, every message signed", "relay_postfix_opendkim", "ceiling"),
    "relay_postfix_opendkim": ("blast → Postfix + OpenDKIM → sink",
                               "relay, OpenDKIM milter signs (RSA-2048)", None, "ceiling"),
    "src_sink": ("smtp-source → smtp-sink", "outside reference ceiling", None, "ceiling"),
    "src_sluice": ("smtp-source → Sluice", "inbound, fsync", "src_postfix", "src_sink"),
    "src_postfix": ("smtp-source → Postfix", "inbound, fsync", None, "src_sink"),
    "src_relay": ("smtp-source → Sluice → smtp-sink", "relay, one route", None, "src_sink"),
}


def sh(cmd, **kw) -> str:
    """stdout of a command, stripped; "" when it fails or is missing."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fdatasync_ms(directory: Path, n=200) -> float:
    """Median latency of write(2 KiB) + fdatasync in `directory`."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for i in range(n):
            os.pwrite(fd, b"x" * 2048, i * 2048)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def machine(work: Path) -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    flags = Path("/proc/cpuinfo").read_text()
    src_fs = sh(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", str(work)])
    os_name = ""
    if Path("/etc/os-release").exists():
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
        os_name = m.group(1) if m else ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx2": " avx2" in flags,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": os_name,
        "disk": src_fs or "unknown",
        "fdatasync_2k_ms": round(fdatasync_ms(work), 3),
    }


def versions(build_dir: Path) -> dict:
    commit = sh(["git", "-C", str(common.ROOT), "rev-parse", "--short=12", "HEAD"])
    # Only what the measured binaries are built from counts as "uncommitted".
    dirty = sh(["git", "-C", str(common.ROOT), "status", "--porcelain", "--", "src", "include",
                "tools", "bench", "meson.build", "meson_options.txt"])
    compiler = ""
    try:  # meson's log names the compiler it configured the build with
        m = re.search(r"C\+\+ compiler for the host machine: \S+ \((\w+) ([^ )]+)",
                      (build_dir / "meson-logs" / "meson-log.txt").read_text())
        compiler = f"{m.group(1).upper() if m.group(1) == 'gcc' else m.group(1)} {m.group(2)}" \
            if m else ""
    except OSError:
        pass
    buildtype = ""
    try:
        opts = json.loads((build_dir / "meson-info" / "intro-buildoptions.json").read_text())
        buildtype = next(o["value"] for o in opts if o["name"] == "buildtype")
    except (OSError, StopIteration, ValueError):
        pass

    def pc(name):
        return sh(["pkg-config", "--modversion", name])

    dnsmasq = sh(["dnsmasq", "--version"]).splitlines()
    return {
        "sluice": commit + (" + uncommitted changes to its sources" if dirty else ""),
        "buildtype": buildtype,
        "compiler": compiler,
        "liburing": pc("liburing"),
        "abseil": pc("absl_base"),
        "wolfssl": pc("wolfssl"),
        "benchmark": pc("benchmark"),
        "postfix": sh(["postconf", "-d", "-h", "mail_version"]),
        "opendkim": (sh([common.opendkim_exe() or "opendkim", "-V"]).splitlines() or [""])[0]
        .rpartition(" v")[2],
        "dnsmasq": dnsmasq[0].split()[2] if dnsmasq and len(dnsmasq[0].split()) > 2 else "",
    }


# ---------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------


def set_loopback_mtu(mtu: int) -> None:
    """Only inside the suite's own network namespace: never the host's lo."""
    subprocess.run(["ip", "link", "set", "lo", "mtu", str(mtu)], check=True)


def mtus(args) -> list:
    """The loopback MTUs to measure at: the first is the namespace's own
    (65536); the others only where the suite runs in its own namespace."""
    if os.environ.get("SLUICE_BENCH_NETNS") != "1":
        if len(args.mtus) > 1:
            common.log("bench: not in a private network namespace: "
                       f"MTU {args.mtus[1:]} rows skipped (the host's lo is not touched)")
        return args.mtus[:1]
    return args.mtus


def size_key(size: int, mtu: int, default_mtu: int) -> str:
    """Throughput results are keyed by size, and by MTU when not the default."""
    return str(size) if mtu == default_mtu else f"{size}@{mtu}"


def throughput(args, work: Path, rel: relay.Relay) -> dict:
    m, pm, sm = args.messages, args.postfix_messages, args.source_messages
    c = args.connections
    runners = {
        "ceiling": lambda size: inbound.run_blast_sink(work, size, m, c),
        "in_sluice": lambda size: inbound.run_blast_sluice(work, size, m, c),
        "in_postfix": lambda size: inbound.run_blast_postfix(work, size, pm, c),
        "relay_sluice": lambda size: rel.run_sluice(size, m),
        "relay_postfix": lambda size: rel.run_postfix(size, pm),
        "relay_sluice_rsa": lambda size: rel.run_sluice(size, m, dkim="rsa"),
        "relay_sluice_ed25519": lambda size: rel.run_sluice(size, m, dkim="ed25519"),
        "relay_postfix_opendkim": lambda size: rel.run_postfix(size, pm, opendkim=True),
        "src_sink": lambda size: inbound.run_source_sink(work, size, sm),
        "src_sluice": lambda size: inbound.run_source_sluice(work, size, sm),
        "src_postfix": lambda size: inbound.run_source_postfix(work, size, pm),
        "src_relay": lambda size: rel.run_reference(size, pm * 2),
    }
    order = [r for r in ROWS if r not in args.skip_rows and (args.dkim or r not in DKIM_ROWS)]

    def note_load(rep, size, name, r):
        r["load"] = loadavg()

    # Interleaved with the repetition outermost, then the MTU: a slow moment
    # of the machine hits every row and both MTUs alike.
    levels = mtus(args)
    out = {}
    for rep in range(args.reps):
        for mtu in levels:
            if len(levels) > 1:
                set_loopback_mtu(mtu)
                common.log(f"bench: loopback MTU {mtu}")
            rows_here = [r for r in order if mtu == levels[0] or r not in DKIM_ROWS]
            one = common.interleave(runners, rows_here, args.sizes, 1, on_result=note_load,
                                    label=lambda _, rep=rep, mtu=mtu: f"rep {rep + 1}/{args.reps} mtu={mtu}")
            for size, rows in one.items():
                dest = out.setdefault(size_key(size, mtu, levels[0]), {n: [] for n in rows_here})
                for n, results in rows.items():
                    dest[n].extend(results)
    if len(levels) > 1:
        set_loopback_mtu(levels[0])
    return out


def concurrency(args, work: Path, rel: relay.Relay) -> dict:
    """{connections: {series: [rate, ...]}} for the ceiling, Sluice inbound
    and Sluice relay (2 KB); the message count grows with the connections so
    each point lasts long enough to mean something."""
    size = 2048
    out = {}
    for rep in range(args.sweep_reps):
        for conns in args.sweep:
            n = min(args.messages, args.sweep_base + args.sweep_per_connection * conns)
            point = out.setdefault(conns, {"ceiling": [], "inbound": [], "relay": []})
            point["ceiling"].append(inbound.run_blast_sink(work, size, n, conns)["rate"])
            point["inbound"].append(inbound.run_blast_sluice(work, size, n, conns)["rate"])
            point["relay"].append(rel.run_sluice(size, n, conns)["rate"])
            common.log(f"concurrency {conns}: " + ", ".join(
                f"{k} {v[-1]:,.0f}" for k, v in point.items()) + " msgs/s")
    return out


def microbenchmarks(args, build_dir: Path, out_json: Path) -> dict:
    exe = build_dir / "bench" / "sluice_bench"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing (meson compile -C {build_dir} bench/sluice_bench)")
    cmd = [str(exe), f"--benchmark_out={out_json}", "--benchmark_out_format=json",
           f"--benchmark_repetitions={args.micro_reps}", "--benchmark_report_aggregates_only=true",
           f"--benchmark_min_time={args.micro_min_time}"]
    if args.micro_filter:
        cmd.append(f"--benchmark_filter={args.micro_filter}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"sluice_bench failed: {r.stderr.strip()[-500:]}")
    return json.loads(out_json.read_text())


def tls_part(args, work: Path) -> dict:
    """bench/tls.py's rows, interleaved among themselves (a separate block:
    they need certificates and their own Postfix configuration)."""
    if args.quick:
        return tls.measure(reps=1, keys=("rsa",), handshakes=40, per_round=20, messages=200,
                           postfix_messages=100, relay_messages=200, relay_postfix_messages=100,
                           work=work / "tls")
    return tls.measure(reps=args.reps, work=work / "tls")


def batch(args) -> str:
    """bench/batch.py (written separately), run as a command: its stdout
    (Markdown) goes into the report as is."""
    script = HERE / "batch.py"
    if not script.exists():
        return ""
    env = dict(os.environ, SLUICE_BIN=common.sluice_bin(),
               SLUICE_TOOLS_DIR=str(Path(common.tool("sluice-blast")).parent))
    r = subprocess.run([sys.executable, str(script), *args.batch_args], capture_output=True,
                       text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"bench/batch.py failed: {r.stderr.strip()[-500:]}")
    return r.stdout.strip()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def plot(sweep: dict, png: Path, work: Path) -> None:
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        raise RuntimeError("gnuplot is not installed (bench/run installs gnuplot-nox)")
    data = work / "concurrency.dat"
    with open(data, "w") as f:
        f.write("# connections ceiling inbound relay (median msgs/s)\n")
        for conns in sorted(sweep):
            p = sweep[conns]
            f.write(f"{conns} " + " ".join(f"{statistics.median(p[k]):.1f}"
                                           for k in ("ceiling", "inbound", "relay")) + "\n")
    png.parent.mkdir(parents=True, exist_ok=True)
    script = f"""
set terminal pngcairo size 900,560 noenhanced font ",11"
set output "{png}"
set title "Throughput against concurrency (sluice-blast, 2 KB messages, this machine)"
set xlabel "concurrent connections (sluice-blast --connections)"
set ylabel "messages / s"
set logscale x
set xtics ({", ".join(str(c) for c in sorted(sweep))})
set grid
set key top left
set yrange [0:*]
plot "{data}" using 1:2 with linespoints lw 2 title "blast -> sluice-sink (ceiling)", \\
     "{data}" using 1:3 with linespoints lw 2 title "blast -> Sluice inbound (fsync)", \\
     "{data}" using 1:4 with linespoints lw 2 title "blast -> Sluice -> sinks (relay)"
"""
    subprocess.run([gnuplot], input=script, text=True, check=True, capture_output=True,
                   timeout=60)


def size_label(key) -> str:
    """"2048" -> "2 KB"; "2048@1500" -> "2 KB, MTU 1500"."""
    size, _, mtu = str(key).partition("@")
    return f"{int(size) // 1024} KB" + (f", MTU {mtu}" if mtu else "")


def ratio(a, b, fmt="{:.2f}"):
    if a is None or not b:
        return ""
    return fmt.format(a / b)


def cpu_note(rows: dict, a: str, b: str, fmt="{:.2f}") -> str:
    """"; CPU per message X µs / Y µs" for two relay rows (bench/relay.py's
    cpu_us_per_msg medians), or "" when either lacks it. Steadier than the
    rates on a shared machine."""
    med = {}
    for n in (a, b):
        vals = [r["cpu_us_per_msg"] for r in rows.get(n, []) if "cpu_us_per_msg" in r]
        if not vals:
            return ""
        med[n] = statistics.median(vals)
    return (f"; CPU per message {med[a]:,.0f} µs / {med[b]:,.0f} µs, i.e. "
            f"{fmt.format(med[b] / med[a])} by CPU" if med[a] else "")


def render(res: dict, doc_dir: Path, png: Path | None) -> str:
    L = []
    mc, v = res["machine"], res["versions"]
    started = res["started"]
    L.append(f"Generated by `bench/run` on {started} in {res['elapsed_s'] / 60:.1f} min "
             f"(load average {res['load_start']} at the start, {res['load_end']} at the end; "
             "other jobs on the machine move the absolute numbers, compare ratios within "
             "this run). Settings: " + res["settings"] + ".")
    L.append("")
    L.append("| machine | |")
    L.append("|---|---|")
    L.append(f"| CPU | {mc['cpu']}, {mc['cores']} cores{' (AVX2)' if mc['avx2'] else ''} |")
    L.append(f"| memory | {mc['memory_gib']} GiB |")
    L.append(f"| kernel, OS | Linux {mc['kernel']}, {mc['os']} |")
    L.append(f"| disk | {mc['disk']} (write 2 KiB + `fdatasync`: {mc['fdatasync_2k_ms']} ms) |")
    L.append(f"| network | {res['network']} |")
    L.append("")
    L.append("| versions | |")
    L.append("|---|---|")
    L.append(f"| Sluice | `{v['sluice']}`, {v['buildtype']} build, {v['compiler']} |")
    L.append(f"| libraries | liburing {v['liburing']}, abseil {v['abseil']}, wolfSSL "
             f"{v['wolfssl']}, Google Benchmark {v['benchmark']} |")
    L.append(f"| peers | Postfix {v['postfix']} (`smtp-source`, `smtp-sink`, private "
             f"instances), OpenDKIM {v.get('opendkim') or '?'} (milter), dnsmasq {v['dnsmasq']} |")
    L.append("")

    tp = res.get("throughput")
    if tp:
        L.append("### Throughput (msgs/s)")
        L.append("")
        L.append("Ratios compare medians. *Ceiling* is the same client into a sink "
                 "that stores nothing (blast → sluice-sink for blast rows, smtp-source → "
                 "smtp-sink for smtp-source rows).")
        L.append("")
        L.append("| message | row | what | median | min | max | / Postfix | / ceiling "
                 "| p50 / p99 latency | peak memory |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for size, rows in tp.items():
            med = {n: common.rates(r)["median"] for n, r in rows.items()}
            for n, results in rows.items():
                label, what, pf, ceil = ROWS[n]
                s = common.rates(results)
                lat = ""
                if results and "p50_us" in results[0]:
                    p50 = statistics.median(r["p50_us"] for r in results) / 1000
                    p99 = statistics.median(r["p99_us"] for r in results) / 1000
                    lat = f"{p50:.2f} / {p99:.2f} ms"
                mem = ""
                if any("peak_rss_kib" in r for r in results):
                    mem = f"RSS {max(r['peak_rss_kib'] for r in results) / 1024:.1f} MiB"
                elif any(r.get("peak_pss_kib") for r in results):
                    mem = f"PSS {max(r['peak_pss_kib'] for r in results) / 1024:.1f} MiB"
                vs_pf = ratio(med[n], med.get(pf), "{:.1f}×") if pf else ""
                vs_ceil = ratio(med[n], med.get(ceil)) if ceil else ""
                L.append(f"| {size_label(size)} | {label} | {what} | {s['median']:,.0f} "
                         f"| {s['min']:,.0f} | {s['max']:,.0f} | {vs_pf} | {vs_ceil} | {lat} "
                         f"| {mem} |")
        L.append("")
        L.append("Targets of issue 3, and of issues 9 and 13 where named (medians, same run):")
        L.append("")
        for size, rows in tp.items():
            med = {n: common.rates(r)["median"] for n, r in rows.items()}
            checks = []
            if "ceiling" in med and "src_sink" in med:
                x = med["ceiling"] / med["src_sink"]
                checks.append(f"blast → sluice-sink / smtp-source → smtp-sink = **{x:.1f}×** "
                              f"(target ≥ 3×: {'met' if x >= 3 else 'NOT met'})")
            if "in_sluice" in med and "in_postfix" in med:
                x = med["in_sluice"] / med["in_postfix"]
                checks.append(f"Sluice / Postfix inbound, both driven by blast = **{x:.1f}×** "
                              f"(target ≥ 30×: {'met' if x >= 30 else 'NOT met'})")
            if "@" in str(size) and "relay_sluice" in med and "relay_postfix" in med:
                x = med["relay_sluice"] / med["relay_postfix"]
                checks.append(f"Sluice / Postfix relay = **{x:.1f}×** "
                              f"(issue 9 target at MTU 1500 ≥ 25×: {'met' if x >= 25 else 'NOT met'})")
            if "relay_sluice_rsa" in med and med.get("relay_postfix_opendkim"):
                x = med["relay_sluice_rsa"] / med["relay_postfix_opendkim"]
                checks.append(f"Sluice / Postfix + OpenDKIM relay, both signing with RSA-2048 = "
                              f"**{x:.1f}×** (issue 13 target ≥ 15×: "
                              f"{'met' if x >= 15 else 'NOT met'})"
                              + cpu_note(rows, "relay_sluice_rsa", "relay_postfix_opendkim", "{:.1f}×"))
            if "relay_sluice_ed25519" in med and med.get("relay_sluice"):
                x = med["relay_sluice_ed25519"] / med["relay_sluice"]
                checks.append(f"Sluice relay signing with Ed25519 / without signing = **{x:.2f}** "
                              f"(issue 13 target ≥ 0.90: {'met' if x >= 0.9 else 'NOT met'})"
                              + cpu_note(rows, "relay_sluice_ed25519", "relay_sluice"))
            base = str(size).partition("@")[0]
            if "@" in str(size) and base in tp:
                base_med = {n: common.rates(r)["median"] for n, r in tp[base].items()}
                for n in ("in_sluice", "relay_sluice"):
                    if n in med and base_med.get(n):
                        checks.append(f"{ROWS[n][0]} at this MTU / at the default MTU = "
                                      f"**{med[n] / base_med[n]:.2f}**")
            for c in checks:
                L.append(f"- {size_label(size)}: {c}")
        L.append(f"- whole suite: {res['elapsed_s'] / 60:.1f} min (target < 15 min: "
                 f"{'met' if res['elapsed_s'] < 900 else 'NOT met'})")
        L.append("")

    sw = res.get("concurrency")
    if sw:
        L.append("### Throughput against concurrency (2 KB, msgs/s)")
        L.append("")
        if png:
            rel = os.path.relpath(png, doc_dir)
            L.append(f"![throughput against concurrency]({rel})")
            L.append("")
        L.append("| connections | blast → sluice-sink | blast → Sluice (fsync) "
                 "| blast → Sluice → sinks |")
        L.append("|---|---|---|---|")
        for conns in sorted(sw, key=int):
            p = sw[conns]
            L.append(f"| {conns} | " + " | ".join(f"{statistics.median(p[k]):,.0f}"
                                                   for k in ("ceiling", "inbound", "relay"))
                     + " |")
        L.append("")

    bl = res.get("backlog")
    if bl:
        L.append("### A waiting backlog (`bench/backlog.py`)")
        L.append("")
        L.append(backlog.table(bl))
        L.append("")

    mb = res.get("micro")
    if mb:
        L.append("### Microbenchmarks (Google Benchmark, medians)")
        L.append("")
        L.append("| benchmark | time per iteration | throughput |")
        L.append("|---|---|---|")
        for b in mb.get("benchmarks", []):
            if b.get("aggregate_name", "median") != "median":
                continue
            name = b.get("run_name", b["name"])
            t = b["real_time"]
            unit = b.get("time_unit", "ns")
            thr = []
            if b.get("items_per_second"):
                thr.append(f"{b['items_per_second'] / 1e6:.2f} M items/s")
            if b.get("bytes_per_second"):
                thr.append(f"{b['bytes_per_second'] / 1e9:.2f} GB/s")
            thr = ", ".join(thr)
            L.append(f"| `{name}` | {t:,.1f} {unit} | {thr} |")
        L.append("")

    if res.get("batch"):
        L.append("### Pickup batches (`bench/batch.py`)")
        L.append("")
        L.append(res["batch"])
        L.append("")

    if res.get("tls"):
        L.append("### TLS (`bench/tls.py`, 2 KB, msgs/s)")
        L.append("")
        L.append(tls.report(res["tls"]))
        L.append("")

    if res.get("errors"):
        L.append("### Parts that failed in this run")
        L.append("")
        for e in res["errors"]:
            L.append(f"- {e}")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def write_doc(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section}{END}"
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        if b < a:
            raise RuntimeError(f"{doc}: {END} before {BEGIN}")
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip() + "\n\n## Latest `bench/run`\n\n" + block + "\n"
    tmp = doc.with_suffix(doc.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(doc)


# ---------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.environ.get("SLUICE_BENCH_BUILD",
                                                          str(common.ROOT / "build-release")))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="2048,20480")
    ap.add_argument("--messages", type=int, default=20000,
                    help="blast messages into sinks and Sluice")
    ap.add_argument("--postfix-messages", type=int, default=3000,
                    help="messages into Postfix (and 2× this for smtp-source → Sluice → smtp-sink)")
    ap.add_argument("--source-messages", type=int, default=10000,
                    help="smtp-source messages into smtp-sink and Sluice")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--mtus", default="65536,1500",
                    help="loopback MTUs of the throughput rows; all but the first only in "
                         "the suite's own network namespace (bench/run's unshare --net)")
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--skip-rows", default="", help="comma-separated row ids to leave out")
    ap.add_argument("--dkim", action=argparse.BooleanOptionalAction, default=True,
                    help="the DKIM relay rows (Sluice RSA-2048 and Ed25519, Postfix + OpenDKIM; "
                         "default MTU only)")
    ap.add_argument("--sweep", default="1,5,10,25,50,100", help="connection counts ('' = none)")
    ap.add_argument("--sweep-reps", type=int, default=2)
    ap.add_argument("--sweep-base", type=int, default=2000)
    ap.add_argument("--sweep-per-connection", type=int, default=200)
    ap.add_argument("--backlog-messages", type=int, default=300_000, help="0: skip the backlog")
    ap.add_argument("--backlog-domains", type=int, default=10_000)
    ap.add_argument("--backlog-idle", type=float, default=10.0)
    ap.add_argument("--micro", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--micro-reps", type=int, default=3)
    ap.add_argument("--micro-min-time", type=float, default=0.2)
    ap.add_argument("--micro-filter", default="")
    ap.add_argument("--batch", action="store_true", help="also run bench/batch.py if it exists")
    ap.add_argument("--batch-args", default="--recipients 300000 --files 10000",
                    help="arguments for bench/batch.py (default: sized for the 15-minute budget)")
    ap.add_argument("--tls", action="store_true",
                    help="also run bench/tls.py's rows (TLS against Postfix with TLS, ~4 min)")
    ap.add_argument("--quick", action="store_true",
                    help="a tiny configuration (a few hundred messages, 1 rep): checks the suite")
    ap.add_argument("--doc", default=str(common.ROOT / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--plot", default=str(common.ROOT / "docs" / "bench-concurrency.png"))
    ap.add_argument("--json", default="", help="raw results (default BUILD_DIR/bench-results.json)")
    ap.add_argument("--no-write", action="store_true", help="print the section, write no doc")
    ap.add_argument("--keep-work", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.sizes = 1, "2048"
        args.messages, args.postfix_messages, args.source_messages = 300, 200, 300
        args.domains, args.sweep, args.sweep_reps = 20, "1,10", 1
        args.sweep_base, args.sweep_per_connection = 100, 20
        args.backlog_messages, args.backlog_domains, args.backlog_idle = 400, 20, 1.0
        args.micro_reps, args.micro_min_time = 1, 0.01
        args.micro_filter = args.micro_filter or "BM_Crc32c/4096|BM_ParseCommandMix"
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.mtus = [int(s) for s in args.mtus.split(",") if s]
    args.sweep = [int(s) for s in args.sweep.split(",") if s]
    args.skip_rows = [r for r in args.skip_rows.split(",") if r]
    for r in args.skip_rows:
        if r not in ROWS:
            ap.error(f"unknown row {r!r}: one of {', '.join(ROWS)}")
    args.batch_args = args.batch_args.split()
    if args.reps < 1 or args.sweep_reps < 1:
        ap.error("--reps and --sweep-reps must be at least 1")
    return args


def network_note() -> str:
    ns = os.environ.get("SLUICE_BENCH_NETNS")
    if ns == "1":
        return "a private network namespace (`unshare --net`, loopback only)"
    return "the host's loopback (no private network namespace)"


def main(argv=None) -> int:
    t0 = time.monotonic()
    args = parse_args(argv)
    build_dir = Path(args.build_dir).resolve()
    common.configure(build_dir / "sluice", build_dir / "tools")
    for exe in (common.sluice_bin(), common.tool("sluice-blast"), common.tool("sluice-sink")):
        if not os.access(exe, os.X_OK):
            print(f"bench/suite.py: {exe} is missing: build it first (bench/run does)",
                  file=sys.stderr)
            return 2
    for cmd in ("smtp-source", "smtp-sink", "postfix", "dnsmasq") + \
            (("opendkim", "opendkim-genkey") if args.dkim else ()):
        if not shutil.which(cmd) and not Path(f"/usr/sbin/{cmd}").exists():
            print(f"bench/suite.py: {cmd} is missing (bench/run installs it)", file=sys.stderr)
            return 2
    common.raise_nofile()
    work = common.make_workdir("sluice-suite-")
    res = {"started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
           "load_start": loadavg(), "network": network_note(), "errors": []}
    res["settings"] = (f"{args.reps} repetition{'s' if args.reps > 1 else ''}, sizes {', '.join(f'{s // 1024} KB' for s in args.sizes)}, "
                       f"blast {args.messages:,} messages over {args.connections} connections "
                       f"({args.postfix_messages:,} into Postfix), smtp-source "
                       f"{args.source_messages:,} messages over 50 sessions, "
                       f"{args.domains:,} relay domains"
                       + ("; DKIM rows (same counts; every message signed, checked at the sink)"
                          if args.dkim else "; no DKIM rows")
                       + f"; concurrency sweep: {args.sweep_reps} "
                       f"repetition{'s' if args.sweep_reps > 1 else ''} of "
                       f"{args.sweep_base:,} + {args.sweep_per_connection} × connections messages; "
                       f"backlog {args.backlog_messages:,} messages over "
                       f"{args.backlog_domains:,} domains")
    common.log(f"bench: work directory {work}, load average {res['load_start']}")
    res["machine"] = machine(work)
    res["versions"] = versions(build_dir)
    failed = False
    png = Path(args.plot).resolve() if args.plot else None
    try:
        with relay.Relay(work, args.domains, args.connections) as rel:
            res["throughput"] = throughput(args, work, rel)
            if args.sweep:
                res["concurrency"] = concurrency(args, work, rel)
        if args.backlog_messages > 0:
            res["backlog"] = backlog.measure(messages=args.backlog_messages,
                                             domains=args.backlog_domains,
                                             idle=args.backlog_idle, work=work)
        if args.micro:
            common.log("microbenchmarks ...")
            res["micro"] = microbenchmarks(args, build_dir, work / "micro.json")
        if args.batch:
            res["batch"] = batch(args)
        if args.tls:
            res["tls"] = tls_part(args, work)
        if res.get("concurrency") and png:
            plot(res["concurrency"], png, work)
    except Exception as e:  # report what was measured, then fail
        failed = True
        traceback.print_exc()
        res["errors"].append(f"{type(e).__name__}: {e}")
    res["load_end"] = loadavg()
    res["elapsed_s"] = time.monotonic() - t0 + float(os.environ.get("SLUICE_BENCH_PRE_S", "0"))
    doc = Path(args.doc).resolve()
    section = render(res, doc.parent, png if res.get("concurrency") else None)
    out_json = Path(args.json) if args.json else build_dir / "bench-results.json"
    out_json.write_text(json.dumps(res, indent=1, default=str))
    if args.no_write or failed:
        print(section)
        if failed:
            print(f"bench: FAILED; {doc} left unchanged; work directory kept: {work}",
                  file=sys.stderr)
    else:
        write_doc(doc, section)
        common.log(f"bench: wrote {doc}" + (f" and {png}" if png and res.get('concurrency')
                                            else "") + f"; raw numbers in {out_json}")
    if not failed and not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    common.log(f"bench: elapsed {res['elapsed_s'] / 60:.1f} min ({res['elapsed_s']:.0f} s), "
               f"load average {res['load_start']} -> {res['load_end']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
