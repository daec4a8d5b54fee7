"""What inbox providers ask of bulk mail (issue 13; docs/BULK_SENDERS.md,
docs/PICKUP.md "Unsubscribe and Feedback-ID"):

- a batch whose manifest has [unsubscribe] and feedback_id_sender is
  delivered to sluice-sink --store: each recipient's copy has exactly one
  List-Unsubscribe with ITS values, percent-encoded, exactly one
  List-Unsubscribe-Post and the Feedback-ID; values built to break out of
  the URL or the header (">", ",", CRLF) add no header and no URI;
- bad [unsubscribe] settings, and templates that clash with them, reject
  the batch into bad/ with the reason (and `sluice inject --batch` refuses
  them before dropping anything);
- server.require_from (default on): no From: or two From: fields get
  550 5.6.0 at the end of DATA (one From:, a folded one, or From: only in
  the body are told apart), and a pickup file or template without exactly
  one goes to bad/.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import subprocess
from urllib.parse import quote

import pytest

from sluice_harness import make_message, require_sluice_bin, wait_for
from test_pickup import drop, make_dirs
from test_pickup_batch import drop_batch, write_batch

TEMPLATE = (
    "From: Example News <news@snd.test>\r\n"
    "To: <{{email}}>\r\n"
    "Subject: Offer for {{name}}\r\n"
    "\r\n"
    "Hello {{name}}, to unsubscribe: https://snd.test/u?t={{token|url}}\r\n"
)

MANIFEST = (
    'sender = "bounces@snd.test"\ntemplate = "template.eml"\nrecipients = "recipients.csv"\n'
    'campaign = "spring"\ntenant = "acme"\nfeedback_id_sender = "esp1"\n'
    "[unsubscribe]\n"
    'url = "https://unsub.snd.test/u?r={{email}}&t={{token}}"\n'
    'mailto = "unsub+{{token}}@snd.test?subject=unsubscribe"\n'
)

# email, name, token: tokens built to break out of the URL or the line.
ROWS = [
    ("plain@d0.test", "Plain", "tok-1"),
    ("a+b@d1.test", "Plus", "x y&z=1%2"),
    ("angle@d0.test", "Angle", "q>, <https://evil.test/x"),
    ("utf8@d1.test", "Utf", "t\u00e9st"),
    ("quote@d0.test", "Quote", '"a";b,c'),
]
# Rows the batch reader must skip: a line break in a value (CSV allows it in
# quotes) would otherwise end the header line.
BAD_ROWS = (
    '"crlf@d0.test",Crlf,"1\r\nBcc: stolen@evil.test"\r\n'
    '"lf@d1.test",Lf,"2\nX-Injected: yes"\r\n'
)


def csv_text(rows, extra: str = "") -> str:
    def field(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v

    return ("email,name,token\r\n" + "".join(",".join(field(v) for v in r) + "\r\n" for r in rows)
            + extra)


def enc(v: str) -> str:
    """RFC 3986 percent-encoding of all but the unreserved characters."""
    return quote(v, safe="")


def header_section(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def field_lines(raw: bytes, name: bytes) -> list:
    """Unfolded values of every header field called `name` (any case)."""
    out = []
    for line in header_section(raw).replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ").split(b"\r\n"):
        n, _, v = line.partition(b":")
        if n.strip().lower() == name.lower():
            out.append(v.strip())
    return out


@pytest.mark.time_limit(120)
def test_each_recipient_gets_its_own_unsubscribe_headers(sluice_factory, delivery_world, tmp_path):
    world = delivery_world(mx={"d0.test": "127.0.0.2", "d1.test": "127.0.0.3"},
                           sinks={"127.0.0.2": {}, "127.0.0.3": {}})
    pickup = tmp_path / "pickup"
    relay = sluice_factory(delivery=True, args=[*world.sluice_args(), "--pickup", str(pickup)],
                           config='[retry]\ninitial = "1s"\nmax_age = "1m"\n', require_from=None)
    drop_batch(pickup, "offer.batch", {"manifest.toml": MANIFEST, "template.eml": TEMPLATE,
                                       "recipients.csv": csv_text(ROWS, BAD_ROWS)})
    sinks = [world["127.0.0.2"], world["127.0.0.3"]]
    wait_for(lambda: sum(len(s.stored()) for s in sinks) >= len(ROWS), 60,
             what=f"{len(ROWS)} messages stored by the sinks")
    stored = [m for s in sinks for m in s.stored()]
    assert len(stored) == len(ROWS)
    by_to = {}
    for raw in stored:
        [to] = field_lines(raw, b"To")
        by_to[to.decode().strip("<>")] = raw
    assert set(by_to) == {e for e, _, _ in ROWS}
    for addr, name, token in ROWS:
        raw = by_to[addr]
        [lu] = field_lines(raw, b"List-Unsubscribe")
        assert lu.decode() == (f"<https://unsub.snd.test/u?r={enc(addr)}&t={enc(token)}>, "
                               f"<mailto:unsub+{enc(token)}@snd.test?subject=unsubscribe>"), raw
        assert field_lines(raw, b"List-Unsubscribe-Post") == [b"List-Unsubscribe=One-Click"]
        assert field_lines(raw, b"Feedback-ID") == [b"spring:acme:esp1"]
        assert len(field_lines(raw, b"From")) == 1
        # Each value is encoded: no '<', '>', ',' or space beyond the two URIs'.
        assert lu.count(b"<") == 2 and lu.count(b">") == 2 and lu.count(b",") == 1, lu
        # The fields are in the header, before the body, with the merged ones.
        assert field_lines(raw, b"Subject") == [f"Offer for {name}".encode()]
        assert raw.endswith(f"to unsubscribe: https://snd.test/u?t={enc(token)}\r\n".encode())
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        assert parsed.get_all("Bcc") is None and parsed.get_all("X-Injected") is None
        assert len(parsed.get_all("Message-ID")) == 1
    everything = b"".join(stored)
    assert b"stolen@evil.test" not in everything and b"X-Injected" not in everything
    # The rows with line breaks were skipped and reported, not sent.
    note = (pickup / "bad" / "offer.batch.error").read_text()
    assert "line 7: field 'token': a line break" in note and "line 9: field 'token'" in note, note
    assert "batch accepted: 5 recipients queued, 2 rows" in note, note
    wait_for(lambda: len([r for r in relay.log_records() if r.get("type") == "Delivery"]) == 5, 20,
             what="5 Delivery records")


def bad_batch(name: str, manifest_tail: str, template: str = TEMPLATE):
    return name, {"manifest.toml": MANIFEST.split("[unsubscribe]")[0] + manifest_tail,
                  "template.eml": template, "recipients.csv": csv_text(ROWS[:2])}


BAD = [
    (bad_batch("http-one-click.batch",
               '[unsubscribe]\nurl = "http://unsub.snd.test/u?r={{email}}"\none_click = true\n'),
     "manifest.toml line 9: unsubscribe.one_click with an http:// url: RFC 8058 requires https"),
    (bad_batch("unknown-field.batch", '[unsubscribe]\nurl = "https://unsub.snd.test/u?r={{nope}}"\n'),
     "manifest.toml: [unsubscribe] uses the field 'nope' but recipients.csv has only the columns "
     "email, name, token"),
    (bad_batch("unknown-key.batch", '[unsubscribe]\nurl = "https://u.snd.test/"\nlink = "x"\n'),
     "manifest.toml line 9: unknown key 'unsubscribe.link'"),
    (bad_batch("injection.batch",
               '[unsubscribe]\nurl = "https://u.snd.test/a>\\r\\nBcc: x@evil.test"\n'),
     "manifest.toml line 8: unsubscribe.url: "),
    (bad_batch("placeholder-host.batch", '[unsubscribe]\nurl = "https://{{name}}.snd.test/"\n'),
     "unsubscribe.url: bad host"),
    (bad_batch("clash.batch", '[unsubscribe]\nurl = "https://u.snd.test/"\n',
               TEMPLATE.replace("Subject:", "List-Unsubscribe: <mailto:x@snd.test>\r\nSubject:")),
     "template.eml line 3: List-Unsubscribe in the template and [unsubscribe] in manifest.toml"),
    (bad_batch("feedback-colon.batch", "",),  # campaign with ':' and a feedback_id_sender
     None),
    (bad_batch("no-from.batch", '[unsubscribe]\nurl = "https://u.snd.test/"\n',
               TEMPLATE.replace("From: Example News <news@snd.test>\r\n", "")),
     "template.eml: no From field in the header"),
    (bad_batch("two-from.batch", "", TEMPLATE.replace("To:", "From: other@snd.test\r\nTo:")),
     "template.eml line 2: a second From field"),
]


def test_bad_unsubscribe_settings_reject_the_batch(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)], require_from=None)
    cases = []
    for (name, files), reason in BAD:
        if name == "feedback-colon.batch":
            files["manifest.toml"] = files["manifest.toml"].replace('"spring"', '"spr:ing"')
            reason = "manifest.toml: campaign 'spr:ing' has a ':', Feedback-ID's separator"
        cases.append((name, files, reason))
        drop_batch(pickup, name, files)
    bad = pickup / "bad"
    # The note is written (and fsynced) before the batch is moved beside it:
    # wait for both.
    wait_for(lambda: all((bad / f"{n}.error").exists() and (bad / n).exists()
                         for n, _, _ in cases), 20, what="every bad batch rejected")
    for name, _, reason in cases:
        note = (bad / f"{name}.error").read_text()
        assert reason in note, (name, note)
        assert (bad / name).is_dir()
    assert d.queue_json() == []
    # `sluice inject --batch` refuses the same before dropping anything.
    (name, files), _ = BAD[0]
    src = write_batch(tmp_path, "src", files)
    r = subprocess.run([str(require_sluice_bin()), "inject", "--pickup", str(pickup), "--batch",
                        str(src / "manifest.toml")], capture_output=True, timeout=60)
    assert r.returncode == 1 and b"RFC 8058 requires https" in r.stderr, r.stderr
    assert not list((pickup / "tmp").iterdir()) and not list((pickup / "new").iterdir())


def test_template_list_unsubscribe_without_manifest_is_kept(sluice_factory, tmp_path):
    """No [unsubscribe]: the template's own field is its business (with
    {{field|url}} for encoded values); stored once, rendered per recipient."""
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)], require_from=None)
    template = TEMPLATE.replace(
        "Subject:", "List-Unsubscribe: <https://u.snd.test/?r={{email|url}}>\r\nSubject:")
    manifest = MANIFEST.split("[unsubscribe]")[0]
    drop_batch(pickup, "own.batch", {"manifest.toml": manifest, "template.eml": template,
                                     "recipients.csv": csv_text(ROWS[:2])})
    wait_for(lambda: d.queue_json(), 15, what="the batch queued")
    [m] = d.queue_json()
    r = d.cli("queue", "show", "--spool", str(d.spool), m["id"], "--recipient", "a+b@d1.test")
    assert r.returncode == 0, r.stderr
    assert field_lines(r.stdout, b"List-Unsubscribe") == [b"<https://u.snd.test/?r=a%2Bb%40d1.test>"]
    assert field_lines(r.stdout, b"Feedback-ID") == [b"spring:acme:esp1"]
    assert field_lines(r.stdout, b"List-Unsubscribe-Post") == []


# ---------------------------------------------------------------------------
# server.require_from over SMTP and in the pickup directory

def plain(head: str) -> bytes:
    return (head + "\r\nbody line\r\n").encode()


FROM_CASES = [
    ("one From", plain("From: a@example.com\r\nTo: b@example.net\r\nSubject: one\r\n"), 250),
    ("no From", plain("To: b@example.net\r\nSubject: none\r\n"), 550),
    ("From only in the body",
     b"To: b@example.net\r\nSubject: body\r\n\r\nFrom: a@example.com\r\n", 550),
    ("two From", plain("From: a@example.com\r\nTo: b@example.net\r\nFROM: c@example.com\r\n"), 550),
    ("folded From", plain("From:\r\n  \"A, folded\"\r\n  <a@example.com>\r\nTo: b@example.net\r\n"), 250),
    ("From and Reply-To mentioning From",
     plain("From: a@example.com\r\nReply-To: \"From: x\" <r@example.com>\r\nX-From: z\r\n"), 250),
]


def test_require_from_over_smtp(sluice_factory):
    d = sluice_factory(require_from=None)  # Sluice's default: on
    with d.smtp() as s:
        for what, msg, want in FROM_CASES:
            if want == 250:
                assert s.sendmail("a@example.com", ["b@example.net"], msg) == {}, what
                continue
            with pytest.raises(smtplib.SMTPDataError) as ei:
                s.sendmail("a@example.com", ["b@example.net"], msg)
            assert ei.value.smtp_code == 550, what
            text = ei.value.smtp_error.decode()
            assert text.startswith("5.6.0 Error: message has "), (what, text)
            assert ("more than one" if "two" in what else "no From:") in text, (what, text)
            # The session goes on: the next transaction works.
            s.rset()
    assert len(d.queue_json()) == sum(1 for _, _, w in FROM_CASES if w == 250)


def test_require_from_off_takes_everything(sluice_factory):
    d = sluice_factory(config="[server]\nrequire_from = false\n")
    with d.smtp() as s:
        for what, msg, _ in FROM_CASES:
            assert s.sendmail("a@example.com", ["b@example.net"], msg) == {}, what
        assert s.sendmail("a@example.com", ["b@example.net"], make_message("x")) == {}
    assert len(d.queue_json()) == len(FROM_CASES) + 1


def test_require_from_in_the_pickup_directory(sluice_factory, tmp_path):
    pickup = tmp_path / "pickup"
    d = sluice_factory(args=["--pickup", str(pickup)], require_from=None)
    make_dirs(pickup)
    env = b"X-Sluice-Envelope-From: <a@example.com>\r\nX-Sluice-Envelope-To: <b@example.net>\r\n"
    files = {
        "none": (env + b"Subject: x\r\n\r\nFrom: body@example.com\r\n",
                 "file: no From field in the header"),
        "two": (env + b"From: a@example.com\r\nfrom: c@example.com\r\n\r\nx\r\n",
                "line 4: a second From field"),
    }
    for name, (data, _) in files.items():
        drop(pickup, name, data)
    drop(pickup, "good", env + b"From:\r\n <a@example.com>\r\n\r\nx\r\n")
    bad = pickup / "bad"
    wait_for(lambda: all((bad / f"{n}.error").exists() for n in files), 15, what="both rejected")
    for name, (_, reason) in files.items():
        assert reason in (bad / f"{name}.error").read_text(), name
    wait_for(lambda: len(d.queue_json()) == 1, 15, what="the good file queued")
