"""The DKIM rows of the relay benchmark (issue 13) still run and still sign:

- sluice-sink counts messages carrying a DKIM-Signature field, and
  Sink.require_signed, which every signing row calls, fails when a message
  arrived unsigned (so a row that stopped signing fails instead of reporting
  a flattering number);
- the postfix_opendkim row's private OpenDKIM milter signs what Postfix
  relays with a 2048-bit RSA key, and the signatures verify (python3-dkim,
  given the TXT record opendkim-genkey wrote; a changed body fails);
- bench/relay.py with the DKIM rows, in a tiny configuration, prints both
  issue-13 ratios.

Needs Postfix, dnsmasq, opendkim and opendkim-tools, python3-dkim
(tools/deps.sh); uses the binaries of SLUICE_BIN's build directory.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

import dkim  # python3-dkim

from sluice_harness import scaled, sluice_bin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import common  # noqa: E402  (bench/common.py: the peers the benchmarks use)


def require(*cmds):
    missing = [c for c in cmds if not shutil.which(c) and not Path(f"/usr/sbin/{c}").exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} (tools/deps.sh installs them)", pytrace=False)
    tools = sluice_bin().parent / "tools"
    for exe in ("sluice-blast", "sluice-sink"):
        if not os.access(tools / exe, os.X_OK):
            pytest.fail(f"{exe} is not built next to SLUICE_BIN", pytrace=False)
    common.configure(sluice_bin(), tools)


@pytest.fixture
def work():
    """A work directory the postfix user can traverse (pytest's tmp_path is
    private to root)."""
    d = common.make_workdir("sluice-bench-dkim-test-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def send(port: int, message: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=scaled(10)) as s:
        s.sendmail("a@source.test", ["r@d0.example"], message)


def test_sink_counts_signed_messages_and_require_signed_fails_on_unsigned(work):
    require()
    with common.Sink(work) as sink:
        # A signature in the body or under another name does not count.
        send(sink.port, "From: <a@source.test>\r\nSubject: x\r\n\r\nDKIM-Signature: v=1\r\n")
        send(sink.port, "X-DKIM-Signature: v=1\r\nFrom: <a@source.test>\r\n\r\nbody\r\n")
        assert sink.stats()["dkim_signed"] == 0
        with pytest.raises(RuntimeError, match="only 0 of 2 messages .* did not sign"):
            sink.require_signed(1, "row")
        send(sink.port, "dkim-signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\nFrom: <a@source.test>"
                        "\r\n\r\nbody\r\n")
        assert sink.stats()["dkim_signed"] == 1
        sink.require_signed(1, "row")
        with pytest.raises(RuntimeError, match="only 1 of 3"):
            sink.require_signed(3, "row")


def txt_record(keys: Path) -> bytes:
    """The p= record of opendkim-genkey's b.txt, joined as DNS would."""
    text = (keys / "b.txt").read_text()
    return "".join(re.findall(r'"([^"]*)"', text)).encode()


@pytest.mark.slow
@pytest.mark.time_limit(120)
def test_postfix_opendkim_signs_every_message_verifiably(work):
    require("postfix", "opendkim", "opendkim-genkey")
    store = work / "store"
    store.mkdir()
    n = 6
    with common.Sink(work, extra=["--store", str(store)]) as sink, \
            common.OpenDkim(work) as milter, \
            common.Postfix(work, sink.port, extra_main_cf=milter.postfix_main_cf()) as pf:
        common.blast(pf.port, n, 2048, connections=2)
        sink.wait_for(n, scaled(60))
        sink.require_signed(n, "postfix_opendkim")
    record = txt_record(work / "opendkim-keys-2048")
    key = base64.b64decode(re.search(rb"p=([A-Za-z0-9+/=]+)", record).group(1))
    assert len(key) == 294  # the DER SubjectPublicKeyInfo of a 2048-bit RSA key

    def dnsfunc(name, timeout=5):
        return record if name.rstrip(b".") == b"b._domainkey.bench.example" else None

    messages = sorted(store.glob("*.eml"))
    assert len(messages) == n
    for path in messages:
        msg = path.read_bytes()
        sig = re.search(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", msg, re.M | re.S | re.I)
        assert sig, msg[:500]
        tags = dkim.util.parse_tag_value(re.sub(rb"\s", b"", sig.group(1)))
        assert (tags[b"a"], tags[b"d"], tags[b"s"], tags[b"c"]) == \
            (b"rsa-sha256", b"bench.example", b"b", b"relaxed/relaxed")
        assert dkim.verify(msg, dnsfunc=dnsfunc), path
        # The verifier is not trivially passing: a changed body fails.
        assert not dkim.verify(msg.replace(b"\r\n\r\n", b"\r\n\r\nchanged ", 1), dnsfunc=dnsfunc)


@pytest.mark.slow
@pytest.mark.time_limit(300)
def test_relay_py_runs_the_dkim_rows():
    require("postfix", "dnsmasq", "opendkim", "opendkim-genkey")
    env = dict(os.environ, SLUICE_BIN=str(sluice_bin()))
    env.pop("SLUICE_TOOLS_DIR", None)
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "relay.py"), "--reps", "1",
                        "--messages", "200", "--postfix-messages", "100", "--domains", "10",
                        "--sizes", "2048", "--rows",
                        "sluice,sluice_ed25519,sluice_rsa,postfix,postfix_opendkim"],
                       capture_output=True, text=True, timeout=scaled(280), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    head = lines[0].split(" | ")
    for col in ("blast → Postfix + OpenDKIM RSA-2048 (milter) → sink",
                "Sluice RSA / Postfix + OpenDKIM", "Sluice Ed25519 / Sluice"):
        assert col in " | ".join(head), r.stdout
    row = lines[2].split(" | ")
    assert row[0] == "| 2 KB" and re.fullmatch(r"[0-9.]+×", row[-2]), r.stdout
    assert re.fullmatch(r"[0-9.]+ \|", row[-1]), r.stdout
