"""`sluice sendmail` / `sendmail`: a sendmail(8)-compatible submission
through the pickup directory, by a user who is not root. As deployed
(deploy/README.md), with the group `mail` standing in for `sluicedrop`: the
daemon (pickup.group) makes the pickup folders 0710/1730 of that group, and
a copy of the binary named `sendmail`, setgid to it, is run as `nobody`."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sluice_harness import HOSTNAME, require_sluice_bin, sanitized_build, scaled, wait_for

GROUP = "mail"  # in every Debian base system (base-passwd)


@pytest.fixture
def drop(tmp_path, sluice_factory):
    """A daemon with a group-writable pickup directory, a setgid `sendmail`
    and a configuration file `nobody` can read."""
    if sanitized_build():
        # A setgid process runs in secure mode: ASan ignores ASAN_OPTIONS and
        # LeakSanitizer cannot attach to it ("fatal error"). The optimised
        # integration pass runs these tests; the sanitizer pass runs the rest.
        pytest.skip("setgid binaries cannot run under LeakSanitizer")
    base = Path(tempfile.mkdtemp(prefix="sluice-sendmail-", dir="/tmp"))
    try:
        base.chmod(0o755)  # nobody must reach the binary, the file and the pickup folder
        pickup = base / "pickup"
        config = base / "sluice.toml"
        config.write_text(f'[server]\nhostname = "{HOSTNAME}"\n'
                          f'[pickup]\ndir = "{pickup}"\ngroup = "{GROUP}"\n')
        config.chmod(0o644)
        relay = sluice_factory(config=config.read_text())
        assert (pickup / "new").is_dir()
        gid = grp.getgrnam(GROUP).gr_gid
        st = (pickup / "new").stat()
        assert (st.st_gid, st.st_mode & 0o7777) == (gid, 0o1730)
        assert (pickup.stat().st_mode & 0o7777) == 0o710
        binary = base / "sendmail"
        shutil.copy(require_sluice_bin(), binary)
        os.chown(binary, 0, gid)
        binary.chmod(0o2755)
        yield relay, base, binary, config
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(binary: Path, config: Path, *args, message: bytes = b"Subject: hi\n\nHello.\n"):
    env = {"PATH": "/usr/bin:/bin", "SLUICE_CONFIG": str(config)}
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           str(binary), *args], input=message, capture_output=True, env=env,
                          timeout=scaled(30))


def queued(relay, n: int) -> list:
    return wait_for(lambda: (lambda q: q if len(q) >= n else None)(relay.queue_json()),
                    timeout=scaled(15), what=f"{n} queued messages")


def test_unprivileged_user_submits_through_setgid_sendmail(drop):
    relay, base, binary, config = drop
    r = as_nobody(binary, config, "-f", "alice@example.com", "-F", "Alice Example",
                  "bob@example.net, carol@example.org")
    assert r.returncode == 0, r.stderr
    (m,) = queued(relay, 1)
    assert m["sender"] == "alice@example.com"
    assert sorted(m["recipients"]) == ["bob@example.net", "carol@example.org"]
    stored = relay.queue_show(m["id"])
    assert b"From: Alice Example <alice@example.com>\r\n" in stored, stored
    assert b"Hello.\r\n" in stored
    # The default sender is the user's login name at server.hostname.
    r = as_nobody(binary, config, "dave@example.net")
    assert r.returncode == 0, r.stderr
    senders = sorted(m["sender"] for m in queued(relay, 2))
    assert senders == ["alice@example.com", f"nobody@{HOSTNAME}"]


def test_t_reads_recipients_from_the_header_and_dot_ends_without_i(drop):
    relay, base, binary, config = drop
    message = (b"From: app@example.com\nTo: a@example.net\nCc: b@example.net\nBcc: hidden@example.net\n"
               b"Subject: t\n\nfirst\n.\nafter the dot\n")
    r = as_nobody(binary, config, "-t", "-f", "app@example.com", message=message)
    assert r.returncode == 0, r.stderr
    (m,) = queued(relay, 1)
    assert sorted(m["recipients"]) == ["a@example.net", "b@example.net", "hidden@example.net"]
    stored = relay.queue_show(m["id"])
    assert b"Bcc" not in stored and b"first\r\n" in stored and b"after the dot" not in stored, stored
    # -oi: the dot line is text.
    r = as_nobody(binary, config, "-oi", "-f", "app@example.com", "x@example.net", message=message)
    assert r.returncode == 0, r.stderr
    (m2,) = [m for m in queued(relay, 2) if m["recipients"] == ["x@example.net"]]
    assert b"after the dot" in relay.queue_show(m2["id"])


def test_exit_codes_are_sendmails(drop, tmp_path):
    relay, base, binary, config = drop
    assert as_nobody(binary, config).returncode == 64  # no recipients
    assert as_nobody(binary, config, "-bp").returncode == 64
    r = as_nobody(binary, config, "-f", "a@example.com", "not an address")
    assert r.returncode in (65, 67), r.stderr
    r = as_nobody(binary, config, "a@example.net", message=b"Subject: x\n\x00\n")
    assert r.returncode == 65, r.stderr
    no_pickup = base / "none.toml"
    no_pickup.write_text(f'[server]\nhostname = "{HOSTNAME}"\n')
    no_pickup.chmod(0o644)
    assert as_nobody(binary, no_pickup, "a@example.net").returncode == 69
    # Without the setgid bit the folder cannot be reached: 73, and saying so
    # (not that the folder "is missing").
    plain = base / "plain" / "sendmail"
    plain.parent.mkdir(mode=0o755)
    shutil.copy(require_sluice_bin(), plain)
    plain.chmod(0o755)
    r = as_nobody(plain, config, "a@example.net")
    assert r.returncode == 73, r.stderr
    assert b"cannot be reached by this user" in r.stderr and b"missing" not in r.stderr, r.stderr
    assert relay.queue_json() == []


def test_sluice_sendmail_subcommand(drop):
    """`sluice sendmail ...` is the same command (as root here)."""
    relay, base, binary, config = drop
    r = subprocess.run([str(require_sluice_bin()), "sendmail", "-f", "root@example.com", "z@example.net"],
                       input=b"Subject: sub\n\nbody\n", capture_output=True, timeout=scaled(30),
                       env={**os.environ, "SLUICE_CONFIG": str(config)})
    assert r.returncode == 0, r.stderr
    (m,) = queued(relay, 1)
    assert m["recipients"] == ["z@example.net"]
