"""DKIM signing checked by real verifiers (issue 13).

Keys come from `sluice dkim keygen`; dnsmasq serves the TXT records it
prints; the relay delivers to sluice-sink --store; every stored message is
verified with python3-dkim (Ed25519 through python3-nacl), asking the
dnsmasq through dnspython, AND with OpenDKIM (`opendkim -t`, its verifier
run on a file, with the same TXT records given as TestDNSData: OpenDKIM's
resolver cannot be pointed at a port). A message changed after signing must
fail both, so a verifier that passes everything would fail the tests.
"""

from __future__ import annotations

import json
import re
import signal
import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest

import dkim  # python3-dkim
import dns.resolver  # python3-dnspython

from delivery_peers import DnsServer
from sluice_harness import CLIENT_HELO, SmtpClient, expect, wait_for
from test_pickup_batch import batch_files, drop_batch

SENDER_DOMAIN = "snd.test"
PLATFORM = "platform.test"

pytestmark = pytest.mark.skipif(shutil.which("opendkim") is None and not Path("/usr/sbin/opendkim").exists(),
                                reason="opendkim missing (tools/deps.sh)")


# --------------------------------------------------------------------------
# Keys, DNS and verifiers


def keygen(sluice_bin, out: Path, domain: str, selector: str, *extra: str) -> tuple:
    """Runs `sluice dkim keygen`; returns (key file, TXT record name, strings)."""
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([str(sluice_bin), "dkim", "keygen", "--domain", domain, "--selector", selector,
                        "--out", str(out), *extra], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    key = out / f"{selector}.private"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (out / f"{selector}.txt").read_text() == r.stdout
    m = re.fullmatch(r'(\S+)\. IN TXT ((?:"[^"]*" ?)+)\n', r.stdout)
    assert m, r.stdout
    strings = re.findall(r'"([^"]*)"', m.group(2))
    assert all(len(s) <= 255 for s in strings)
    return key, m.group(1), strings


def serve_txt(dns_server: DnsServer, records: dict) -> None:
    """Adds TXT records ({name: [strings]}) to the dnsmasq and restarts it."""
    base = DnsServer.config_text

    def text(self=dns_server):
        lines = [f"txt-record={name}," + ",".join(f'"{s}"' for s in strings)
                 for name, strings in records.items()]
        return base(self) + "\n".join(lines) + "\n"

    dns_server.config_text = text
    dns_server._dirty = True
    dns_server.apply()


# The signers configured with simple header canonicalization.
SIMPLE_HEADER_SIGNERS = {("snd.test", "e")}


def opendkim_rewrites_headers(message: bytes) -> bool:
    """OpenDKIM's test mode passes headers the milter way (name, value without
    its leading blanks) and rebuilds them as "Name: value": a field written
    "From:   x" or "From:x" is hashed as "From: x", so a simple-header
    signature over it fails in OpenDKIM although it is right (python3-dkim
    passes it; checked with signatures made by python3-dkim as well)."""
    head = message.split(b"\r\n\r\n", 1)[0]
    return any(re.match(rb"[^ \t:]+:(?! [^ \t])", line) for line in head.split(b"\r\n")
               if line and line[:1] not in b" \t")


class Verifiers:
    def __init__(self, dns_server: DnsServer, records: dict, workdir: Path):
        self.dns_server = dns_server
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # OpenDKIM: the same records as a TestDNSData file, "name value".
        data = workdir / "dnsdata"
        data.write_text("".join(f"{n} {''.join(s)}\n" for n, s in records.items()))
        self.conf = workdir / "opendkim.conf"
        # Its default checks only the first 3 signatures ("neutral" for the rest).
        self.conf.write_text(f"Mode v\nTestDNSData file:{data}\nSyslog no\nMaximumSignaturesToVerify 10\n")
        self.count = 0

    def dnsfunc(self, name, timeout=5):
        r = dns.resolver.Resolver(configure=False)
        host, port = self.dns_server.address
        r.nameservers = [host]
        r.port = port
        r.lifetime = timeout
        q = name.decode().rstrip(".") if isinstance(name, bytes) else name.rstrip(".")
        try:
            answer = r.resolve(q, "TXT")
        except Exception:
            return None
        return b"".join(b"".join(rr.strings) for rr in answer)

    def python(self, message: bytes) -> list:
        """[(d, s, passed)] for every DKIM-Signature, top to bottom."""
        d = dkim.DKIM(message)
        out = []
        sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
        for i, sig in enumerate(sigs):
            tags = dkim.util.parse_tag_value(re.sub(rb"\s", b"", sig))
            try:
                ok = d.verify(idx=i, dnsfunc=self.dnsfunc)
            except dkim.DKIMException:  # e.g. "body hash mismatch"
                ok = False
            out.append((tags[b"d"].decode(), tags[b"s"].decode(), bool(ok)))
        return out

    def opendkim(self, message: bytes) -> dict:
        """{(d, s): "pass"|"fail"|...} from OpenDKIM's Authentication-Results."""
        self.count += 1
        path = self.workdir / f"m{self.count}.eml"
        path.write_bytes(message)
        r = subprocess.run(["/usr/sbin/opendkim", "-vv", "-x", str(self.conf), "-t", str(path)],
                           capture_output=True, text=True, timeout=30)
        text = r.stdout + r.stderr
        results = {}
        for m in re.finditer(r"dkim=(\w+)[^;]*?header\.d=([\w.-]+)[^;]*?header\.s=([\w.-]+)", text):
            results[(m.group(2), m.group(3))] = m.group(1)
        assert results, f"no DKIM result from opendkim:\n{text}"
        return results

    def check(self, message: bytes, expected: list) -> None:
        """Every signature in `expected` [(d, s)] passes both verifiers."""
        got = self.python(message)
        for d, s in expected:
            assert (d, s, True) in got, (d, s, got, message[:1500])
        od = self.opendkim(message)
        for d, s in expected:
            if (d, s) in SIMPLE_HEADER_SIGNERS and opendkim_rewrites_headers(message):
                continue  # see opendkim_rewrites_headers
            assert od.get((d, s)) == "pass", (d, s, od)

    def check_fails(self, message: bytes, expected: list) -> None:
        got = self.python(message)
        od = self.opendkim(message)
        for d, s in expected:
            assert (d, s, False) in got, (d, s, got)
            assert od.get((d, s)) not in (None, "pass"), (d, s, od)


@pytest.fixture
def dkim_world(tmp_path, dns_server, delivery_world, sluice_factory):
    """Keys for snd.test (RSA 2048 "r", Ed25519 "e") and platform.test (RSA
    1024 "p"), their TXT records in dnsmasq, a sink for d0.test/d1.test,
    and a relay signing with them. Returns (relay, sink, verifiers, pickup)."""
    from sluice_harness import sluice_bin

    keys = tmp_path / "keys"
    rsa, rsa_name, rsa_txt = keygen(sluice_bin(), keys, SENDER_DOMAIN, "r")
    ed, ed_name, ed_txt = keygen(sluice_bin(), keys, SENDER_DOMAIN, "e", "--algorithm", "ed25519")
    plat, plat_name, plat_txt = keygen(sluice_bin(), keys / "p", PLATFORM, "p", "--bits", "1024")
    assert rsa_txt[0].startswith("v=DKIM1; k=rsa; p=") and len(rsa_txt) == 2
    assert ed_txt == [ed_txt[0]] and ed_txt[0].startswith("v=DKIM1; k=ed25519; p=")
    # "up": the platform key under another selector, for a signature made
    # upstream (python3-dkim) before the message reaches the relay.
    records = {rsa_name: rsa_txt, ed_name: ed_txt, plat_name: plat_txt,
               plat_name.replace("p._domainkey", "up._domainkey"): plat_txt}
    # sluice-sink does not offer SMTPUTF8: u8.test goes to a scripted
    # receiver (aiosmtpd) that does, and keeps the bytes it got.
    world = delivery_world(mx={"d0.test": "127.0.0.2", "d1.test": "127.0.0.2", "u8.test": "127.0.0.3"},
                           sinks={"127.0.0.2": {}})
    serve_txt(dns_server, records)
    config = f"""
[retry]
initial = "1s"
[dkim]
default_domain = "{PLATFORM}"
[[dkim.signer]]
domain = "{SENDER_DOMAIN}"
selector = "r"
key_file = "{rsa}"
[[dkim.signer]]
domain = "{SENDER_DOMAIN}"
selector = "e"
key_file = "{ed}"
canonicalization = "simple/simple"
expire = "7d"
[[dkim.signer]]
domain = "{SENDER_DOMAIN}"
selector = "p"
key_file = "{plat}"
signing_domain = "{PLATFORM}"
[[dkim.signer]]
domain = "{PLATFORM}"
selector = "p"
key_file = "{plat}"
"""
    pickup = tmp_path / "pickup"
    relay = sluice_factory(delivery=True, config=config,
                           args=[*world.sluice_args(), "--pickup", str(pickup)])
    return relay, world["127.0.0.2"], Verifiers(dns_server, records, tmp_path / "verify"), pickup, world


ALL_THREE = [(SENDER_DOMAIN, "r"), (SENDER_DOMAIN, "e"), (PLATFORM, "p")]


def signature_lines(message: bytes) -> list:
    """The lines of the DKIM-Signature fields at the top of `message`."""
    out = []
    for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.startswith(b"DKIM-Signature:") or (out and line[:1] == b"\t"):
            out.append(line)
        else:
            break
    return out


def deliveries(relay) -> list:
    return [r for r in relay.log_records() if r.get("type") == "Delivery"]


def stored_for(sink, n: int, timeout: float = 30) -> list:
    wait_for(lambda: len(sink.stored()) >= n, timeout, what=f"{n} stored messages")
    return sink.stored()


def send_bdat(relay, sender: str, rcpt: str, body: bytes) -> None:
    """One message by BDAT LAST: the only way a body can end without CRLF."""
    with SmtpClient("127.0.0.1", relay.port) as c:
        expect(c.banner(), 220)
        expect(c.ehlo(CLIENT_HELO), 250)
        expect(c.cmd(f"MAIL FROM:<{sender}>"), 250)
        expect(c.cmd(f"RCPT TO:<{rcpt}>"), 250)
        c.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
        expect(c.reply(), 250)
        c.cmd("QUIT")


# --------------------------------------------------------------------------
# Tests


@pytest.mark.time_limit(120)
def test_every_kind_of_message_verifies_with_both_verifiers(dkim_world):
    relay, sink, verify, _, world = dkim_world
    cases = {
        "plain": b"From: News <news@snd.test>\r\nTo: a@d0.test\r\nSubject: plain\r\n"
                 b"Date: Mon, 7 Dec 2026 06:00:00 +0000\r\nMessage-ID: <plain@snd.test>\r\n\r\nHello.\r\n",
        # Oddly cased and folded headers, blanks everywhere.
        "folded": b"fROM:   News\r\n\t<news@SND.test>  \r\nTO: a@d0.test,\r\n  b@d0.test\r\n"
                  b"SUBJECT:  folded\r\n   over  lines\t\r\nMessage-ID: <folded@snd.test>\r\n\r\n"
                  b"  spaced   body \t\r\n\r\n\r\n",
        # Lines starting with dots (smtplib stuffs them, the relay unstuffs
        # and stuffs again on the way out).
        "dots": b"From: news@snd.test\r\nTo: a@d0.test\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.three\r\n",
        # 8-bit body (8BITMIME).
        "8bit": "From: news@snd.test\r\nTo: a@d0.test\r\nSubject: 8bit\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                "Grüße aus Köln, naïve café.\r\n".encode(),
        "empty": b"From: news@snd.test\r\nTo: a@d0.test\r\nSubject: empty body\r\n\r\n",
        # Already signed upstream (by the platform key, over fewer headers):
        # both the old and the new signatures verify.
        "presigned": None,
    }
    plat_key = Path(verify.workdir).parent.joinpath("keys", "p", "p.private").read_bytes()
    up = b"From: news@snd.test\r\nTo: a@d0.test\r\nSubject: presigned\r\n\r\nSigned before.\r\n"
    cases["presigned"] = dkim.sign(up, b"up", PLATFORM.encode(), plat_key,
                                   include_headers=[b"from", b"subject"]) + up
    with relay.smtp() as s:
        for name, msg in cases.items():
            opts = ["BODY=8BITMIME"] if name == "8bit" else []
            assert s.sendmail("bounce@snd.test", [f"{name}@d0.test"], msg, mail_options=opts) == {}
        # SMTPUTF8: UTF-8 in addresses and headers.
        utf8 = "From: José <josé@snd.test>\r\nTo: zoë@u8.test\r\nSubject: ¡hola!\r\n\r\nñ\r\n".encode()
        assert s.sendmail("bounce@snd.test", ["zoë@u8.test"], utf8, mail_options=["SMTPUTF8"]) == {}
    # Without a final CRLF, and with no header/body separator at all.
    send_bdat(relay, "bounce@snd.test", "nocrlf@d0.test",
              b"From: news@snd.test\r\nTo: a@d0.test\r\nSubject: no crlf\r\n\r\nlast line")
    send_bdat(relay, "bounce@snd.test", "headeronly@d0.test",
              b"From: news@snd.test\r\nTo: a@d0.test\r\nSubject: header only\r\n")
    stored = stored_for(sink, len(cases) + 2)
    assert len(stored) == len(cases) + 2
    (u8,) = world.wait_messages(1)
    assert "SMTPUTF8" in " ".join(u8["mail_params"]).upper() and "ñ".encode() in u8["body"]
    stored.append(u8["body"])
    for msg in stored:
        verify.check(msg, ALL_THREE)
        fields = signature_lines(msg)
        assert len([f for f in fields if f.startswith(b"DKIM-Signature:")]) >= 3
        assert all(len(line) <= 78 for line in fields), fields  # folded
        assert not re.search(rb"[;\s]l=", b"".join(fields))  # never a body length
    presigned = next(m for m in stored if b"Signed before." in m)
    # Three of ours on top of the upstream one; all four verify.
    assert verify.python(presigned) == [(PLATFORM, "p", True), (SENDER_DOMAIN, "e", True),
                                        (SENDER_DOMAIN, "r", True), (PLATFORM, "up", True)]
    verify.check(presigned, [(PLATFORM, "up")])
    # The accounting records name the signers.
    wait_for(lambda: len(deliveries(relay)) == len(stored), 10, what="Delivery records")
    for d in deliveries(relay):
        assert d["dkim"] == [{"d": "snd.test", "s": "r"}, {"d": "snd.test", "s": "e"},
                             {"d": "platform.test", "s": "p"}], d


@pytest.mark.time_limit(90)
def test_a_message_changed_after_signing_fails(dkim_world):
    relay, sink, verify, _, _ = dkim_world
    msg = (b"From: news@snd.test\r\nTo: a@d0.test\r\nSubject: original\r\n\r\n"
           b"Pay 10 EUR.\r\n")
    with relay.smtp() as s:
        s.sendmail("bounce@snd.test", ["x@d0.test"], msg)
    (stored,) = stored_for(sink, 1)
    verify.check(stored, ALL_THREE)
    verify.check_fails(stored.replace(b"Pay 10 EUR.", b"Pay 99 EUR."), ALL_THREE)
    verify.check_fails(stored.replace(b"Subject: original", b"Subject: changed"), ALL_THREE)
    # Over-signing: a second Subject added on top breaks every signature.
    verify.check_fails(b"Subject: injected\r\n" + stored, ALL_THREE)


@pytest.mark.time_limit(90)
def test_merge_batch_every_recipient_copy_verifies(dkim_world):
    relay, sink, verify, pickup, _ = dkim_world
    template = ("From: Example News <news@snd.test>\r\nTo: \"{{name}}\" <{{email}}>\r\n"
                "Subject: Hello {{name}}\r\n\r\nDear {{name}}, from {{city}}.\r\n.a dot line\r\n")
    manifest = ('sender = "bounce@snd.test"\ntemplate = "template.eml"\n'
                'recipients = "recipients.csv"\ncampaign = "c1"\n')
    rows = [(f"m{i}@d{i % 2}.test", f"Näme{i}", f"City{i}") for i in range(12)]
    drop_batch(pickup, "b.batch", batch_files(rows, manifest=manifest, template=template))
    stored = stored_for(sink, 12, timeout=40)
    bodies = set()
    for msg in stored:
        verify.check(msg, ALL_THREE)
        bodies.add(msg.split(b"\r\n\r\n", 1)[1])
    assert len(bodies) == 12  # each copy is its own rendering, signed on its own
    sigs = [re.search(rb"bh=([^;]+);", m.replace(b"\r\n\t", b"")).group(1) for m in stored]
    assert len(set(sigs)) == 12


@pytest.mark.time_limit(90)
def test_unknown_and_missing_from_use_the_default_domain(dkim_world):
    relay, sink, verify, _, _ = dkim_world
    with relay.smtp() as s:
        s.sendmail("b@other.test", ["u1@d0.test"],
                   b"From: someone@other.test\r\nTo: u1@d0.test\r\nSubject: other\r\n\r\nx\r\n")
        s.sendmail("b@other.test", ["u2@d0.test"], b"To: u2@d0.test\r\nSubject: no from\r\n\r\ny\r\n")
    stored = stored_for(sink, 2)
    for msg in stored:
        assert verify.python(msg) == [(PLATFORM, "p", True)], msg[:600]
        if b"\r\nFrom:" in msg:  # OpenDKIM refuses a message without From: (permerror)
            verify.check(msg, [(PLATFORM, "p")])


@pytest.mark.time_limit(60)
def test_check_config_names_a_bad_key(tmp_path):
    from sluice_harness import sluice_bin

    bad = tmp_path / "bad.private"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    small = tmp_path / "small.private"
    subprocess.run(["openssl", "genrsa", "-out", str(small), "512"], check=True, capture_output=True)
    for key in (bad, small, tmp_path / "missing.private"):
        conf = tmp_path / "c.toml"
        conf.write_text(f'[[dkim.signer]]\ndomain = "snd.test"\nselector = "s"\nkey_file = "{key}"\n')
        r = subprocess.run([str(sluice_bin()), "check-config", "--config", str(conf)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, r
        assert str(key) in r.stderr, r.stderr
    good, _, _ = keygen(sluice_bin(), tmp_path / "k", "snd.test", "s", "--algorithm", "ed25519")
    conf.write_text(f'[[dkim.signer]]\ndomain = "snd.test"\nselector = "s"\nkey_file = "{good}"\n')
    r = subprocess.run([str(sluice_bin()), "check-config", "--config", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "dkim 1 signers, 1 keys" in r.stdout, r


def dkim_stats(relay) -> tuple:
    stats = [json.loads(s) for s in relay.admin("stats")]
    return sum(s["dkim_signed"] for s in stats), sum(s["dkim_reused"] for s in stats)


@pytest.mark.time_limit(90)
def test_a_message_for_two_domains_is_signed_once(tmp_path, dns_server, delivery_world, sluice_factory):
    """One shard: both domains' jobs share the record, and its signature."""
    from sluice_harness import sluice_bin

    key, name, txt = keygen(sluice_bin(), tmp_path / "keys", SENDER_DOMAIN, "r")
    world = delivery_world(mx={"d0.test": "127.0.0.2", "d1.test": "127.0.0.2"}, sinks={"127.0.0.2": {}})
    serve_txt(dns_server, {name: txt})
    relay = sluice_factory(delivery=True, shards=1, args=world.sluice_args(),
                           config=f'[[dkim.signer]]\ndomain = "{SENDER_DOMAIN}"\nselector = "r"\n'
                                  f'key_file = "{key}"\n')
    verify = Verifiers(dns_server, {name: txt}, tmp_path / "verify")
    with relay.smtp() as s:
        s.sendmail("b@snd.test", ["x@d0.test", "y@d1.test"],
                   b"From: news@snd.test\r\nTo: x@d0.test, y@d1.test\r\nSubject: twice\r\n\r\nOnce.\r\n")
    first, second = stored_for(world["127.0.0.2"], 2)
    for msg in (first, second):
        verify.check(msg, [(SENDER_DOMAIN, "r")])
    assert signature_lines(first) == signature_lines(second)
    wait_for(lambda: dkim_stats(relay) == (1, 1), 10, what="one signature made, one reused")


@pytest.mark.time_limit(90)
def test_sighup_reloads_keys_and_keeps_them_when_a_file_is_bad(tmp_path, dns_server, delivery_world,
                                                               sluice_factory):
    from sluice_harness import sluice_bin

    old_key, name, old_txt = keygen(sluice_bin(), tmp_path / "old", SENDER_DOMAIN, "s", "--algorithm", "ed25519")
    new_key, _, new_txt = keygen(sluice_bin(), tmp_path / "new", SENDER_DOMAIN, "s", "--algorithm", "ed25519")
    live = tmp_path / "live.private"
    shutil.copy(old_key, live)
    world = delivery_world(mx={"d0.test": "127.0.0.2"}, sinks={"127.0.0.2": {}})
    serve_txt(dns_server, {name: old_txt})
    relay = sluice_factory(delivery=True, args=world.sluice_args(),
                           config=f'[[dkim.signer]]\ndomain = "{SENDER_DOMAIN}"\nselector = "s"\n'
                                  f'key_file = "{live}"\n')
    old = Verifiers(dns_server, {name: old_txt}, tmp_path / "v-old")
    sink = world["127.0.0.2"]

    def send(n: int) -> bytes:
        with relay.smtp() as s:
            s.sendmail("b@snd.test", [f"u{n}@d0.test"],
                       f"From: news@snd.test\r\nTo: u{n}@d0.test\r\nSubject: {n}\r\n\r\nx\r\n".encode())
        return stored_for(sink, n)[n - 1]

    old.check(send(1), [(SENDER_DOMAIN, "s")])
    # A bad file: the reload is refused and the old key keeps signing.
    live.write_text("not a key\n")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "DKIM keys not reloaded" in relay.stderr_path.read_text(), 10, what="refused reload")
    assert str(live) in relay.stderr_path.read_text()
    old.check(send(2), [(SENDER_DOMAIN, "s")])
    # The rotated key: new messages carry it (the old record no longer verifies them).
    shutil.copy(new_key, live)
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "DKIM keys reloaded" in relay.stderr_path.read_text(), 10, what="reload")
    third = send(3)
    old.check_fails(third, [(SENDER_DOMAIN, "s")])
    serve_txt(dns_server, {name: new_txt})
    Verifiers(dns_server, {name: new_txt}, tmp_path / "v-new").check(third, [(SENDER_DOMAIN, "s")])
