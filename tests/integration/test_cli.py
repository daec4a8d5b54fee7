"""The command line outside `serve`: check-config exit codes and messages,
usage errors, and the queue commands on an empty or missing spool."""

import json
import subprocess

from sluice_harness import require_sluice_bin


def run(*args, timeout=30):
    return subprocess.run([str(require_sluice_bin()), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_check_config_accepts_a_good_file(tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_text('[server]\nlisten = ["127.0.0.1:2626"]\nmax_recipients = 50\n'
                   '[spool]\ndir = "/tmp/x"\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout
    assert "127.0.0.1:2626" in r.stdout


def test_check_config_names_unknown_key_and_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nlisten = ["127.0.0.1:2626"]\n\nmax_recipeints = 5\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:4" in r.stderr
    assert "max_recipeints" in r.stderr


def test_check_config_names_bad_value(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nmax_recipients = 0\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:2" in r.stderr and "server.max_recipients" in r.stderr


def test_check_config_rejects_bad_flags():
    assert run("check-config", "--relay-from", "10.0.0.0/99").returncode == 2
    assert run("check-config", "--listen", "nowhere").returncode == 2
    assert run("check-config", "--max-recipients", "lots").returncode == 2
    r = run("check-config", "--no-such-flag")
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_check_config_names_bad_shaping_rule(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[shaping]]\npattern = "*"\nmax_connections = 0\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:3: shaping.max_connections: must be between 1 and 100000, got 0" in r.stderr
    cfg.write_text('[[shaping]]\npattern = "*"\n\n[[shaping]]\nmax_connections = 5\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:4: shaping: missing key 'pattern'" in r.stderr
    cfg.write_text('[[shaping]]\npattern = "example.com"\n[[shaping]]\npattern = "Example.com"\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:4: shaping.pattern: 'example.com' already has a rule at line 2" in r.stderr


def test_check_config_names_bad_next_hop(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[route]]\ndomain = "*"\nnext_hop = "::1:2526"\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:3: route.next_hop:" in r.stderr and "needs brackets" in r.stderr
    cfg.write_text('[[route]]\ndomain = "*"\nnext_hop = "[127.0.0.2]:0"\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml:3: route.next_hop:" in r.stderr and "bad port '0'" in r.stderr


def test_check_config_shows_delivery_settings_from_file_and_flags(tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_text('[delivery]\ndns = ["127.0.0.1:5353"]\nmx_port = 2600\n'
                   '[[route]]\ndomain = "*"\nnext_hop = "[127.0.0.2]:2526"\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert ("delivery on, mx port 2600, dns 127.0.0.1:5353, source address any, "
            "control dir ./var/spool/control, routes *=[127.0.0.2]:2526") in r.stdout
    # Flags win; --dns and --route replace the file's lists.
    r = run("check-config", "--config", str(cfg), "--no-delivery", "--dns", "127.0.0.1:53",
            "--dns", "[::1]", "--mx-port", "2526", "--source-address", "127.0.0.1",
            "--route", "example.com=[::1]:2527", "--route=*.example.com=relay.example.net",
            "--control-dir", "/run/sluice")
    assert r.returncode == 0, r.stderr
    assert ("delivery off, mx port 2526, dns 127.0.0.1:53 [::1]:53, source address 127.0.0.1, "
            "control dir /run/sluice, routes example.com=[::1]:2527 "
            "*.example.com=[relay.example.net]:25") in r.stdout


def test_check_config_rejects_bad_delivery_flags():
    cases = [
        (["--mx-port", "0"], "delivery.mx_port: must be between 1 and 65535, got 0"),
        (["--mx-port", "65536"], "--mx-port: must be between 1 and 65535, got 65536"),
        (["--mx-port", "smtp"], "--mx-port: not a non-negative integer"),
        (["--dns", "localhost:53"], "delivery.dns: 'localhost:53' is not ADDR:PORT"),
        (["--source-address", "127.0.0.1:25"], "delivery.source_address"),
        (["--route", "*"], "--route: expected PATTERN=NEXT_HOP, got '*'"),
        (["--route", "*=[::1"], "--route '*=[::1': '[::1' is not a next hop"),
        (["--route", "e*.com=h"], "'e*.com' is not a domain pattern"),
        (["--route", "*=a", "--route", "*=b"], "route.domain: '*' has two routes"),
        (["--control-dir"], "--control-dir needs a value"),
    ]
    for args, message in cases:
        r = run("check-config", *args)
        assert r.returncode == 2, args
        assert message in r.stderr, (args, r.stderr)


def test_built_in_defaults_are_valid():
    r = run("check-config")
    assert r.returncode == 0, r.stderr
    assert "127.0.0.1:2525" in r.stdout and "./var/spool" in r.stdout


def test_usage_errors_exit_2():
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("queue").returncode == 2
    assert run("--help").returncode == 0


def test_queue_commands_on_an_empty_and_a_missing_spool(tmp_path):
    (tmp_path / "spool" / "0").mkdir(parents=True)
    r = run("queue", "messages", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 0 and r.stdout == "queue is empty\n" and "spool-only view" in r.stderr, r
    r = run("queue", "messages", "--spool", str(tmp_path / "spool"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [], r
    r = run("queue", "messages", "--spool", str(tmp_path / "missing"))
    assert r.returncode == 1 and "missing" in r.stderr
    # The live commands need a running daemon.
    r = run("queue", "list", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 1 and "no running sluice" in r.stderr
    assert run("queue", "suspend", "--spool", str(tmp_path / "spool")).returncode == 2
    assert run("queue", "frobnicate", "--spool", str(tmp_path / "spool")).returncode == 2
    r = run("queue", "show", "--spool", str(tmp_path / "spool"), "0CRAR9BEAEG81")
    assert r.returncode == 1 and "no queued message" in r.stderr
    assert run("queue", "show", "--spool", str(tmp_path / "spool"), "not-an-id").returncode == 2


def test_serve_creates_a_nested_spool_directory(tmp_path):
    """The built-in default spool is ./var/spool: its parents may not exist."""
    import signal
    import socket
    import time
    from sluice_harness import free_port
    port = free_port()
    proc = subprocess.Popen([str(require_sluice_bin()), "serve", "--listen", f"127.0.0.1:{port}",
                             "--shards", "1"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.05)
        assert (tmp_path / "var" / "spool" / "0").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_check_config_loads_the_tls_and_auth_files(tmp_path):
    """check-config loads what serve would: certificate and key (that they
    match), the password file and the outbound CA file; a bad one exits 2
    naming it, before the daemon ever starts."""
    from tls_peers import make_cert
    cert, key = make_cert(tmp_path / "a", "a")
    other_cert, other_key = make_cert(tmp_path / "b", "b")
    users = tmp_path / "users"
    users.write_text("")  # no users yet is a valid file
    cfg = tmp_path / "tls.toml"

    def check(tls: str, auth: str = "", delivery: str = ""):
        cfg.write_text(f"[tls]\n{tls}\n[auth]\n{auth}\n[delivery]\n{delivery}\n")
        return run("check-config", "--config", str(cfg))

    r = check(f'cert_file = "{cert}"\nkey_file = "{key}"', f'password_file = "{users}"',
              f'tls_ca_file = "{other_cert}"')
    assert r.returncode == 0, r.stderr
    assert f"tls {cert}, auth {users}, outbound verification against delivery.tls_ca_file" in r.stdout
    r = check(f'cert_file = "{tmp_path}/missing.crt"\nkey_file = "{key}"')
    assert r.returncode == 2 and "missing.crt" in r.stderr, r.stderr
    r = check(f'cert_file = "{cert}"\nkey_file = "{other_key}"')  # a key of another certificate
    assert r.returncode == 2 and "key" in r.stderr, r.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    r = check(f'cert_file = "{garbage}"\nkey_file = "{key}"')
    assert r.returncode == 2 and "garbage.pem" in r.stderr, r.stderr
    users.write_text("alice:not-a-hash\n")
    r = check("", f'password_file = "{users}"')
    assert r.returncode == 2 and "users" in r.stderr and ":1" in r.stderr, r.stderr
    r = check("", "", f'tls_ca_file = "{garbage}"')
    assert r.returncode == 2 and "delivery.tls_ca_file" in r.stderr, r.stderr
    r = check("", "", "")
    assert r.returncode == 0 and "tls off, auth off" in r.stdout, (r.stdout, r.stderr)
    # Every failure above was reported before "configuration ok" was said.
    cfg.write_text(f'[tls]\ncert_file = "{cert}"\nkey_file = "{other_key}"\n')
    r = run("check-config", "--config", str(cfg))
    assert r.returncode == 2 and "configuration ok" not in r.stdout, r.stdout
