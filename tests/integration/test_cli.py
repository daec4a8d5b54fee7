"""The command line outside `serve`: check-config exit codes and messages,
usage errors, and the queue commands on an empty or missing spool."""

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
    r = run("queue", "list", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 0 and r.stdout == ""
    r = run("queue", "list", "--spool", str(tmp_path / "missing"))
    assert r.returncode == 1 and "missing" in r.stderr
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
