"""Fixtures of the sluice real-socket integration tests.

Run with Debian's python: `/usr/bin/python3 -m pytest tests/integration`.
See README.md for the environment variables.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sluice_harness import (  # noqa: E402
    Sluice,
    require_sluice_bin,
    scaled,
)
from conftest_delivery import *  # noqa: E402,F401,F403  (delivery peers: dns_server, receiver_factory, ...)

DEFAULT_TIME_LIMIT = 60.0  # seconds for setup + call of one test


# --------------------------------------------------------------------------
# Per-test wall-clock limit (pytest-timeout may not be installed).
# --------------------------------------------------------------------------


class TestTimeLimitExceeded(BaseException):
    """Raised by SIGALRM in the main thread. BaseException so that a broad
    `except Exception` in a test cannot swallow it."""

    __test__ = False


def _time_limit(item) -> float:
    marker = item.get_closest_marker("time_limit")
    limit = float(marker.args[0]) if marker and marker.args else DEFAULT_TIME_LIMIT
    return scaled(limit)


def _on_alarm(signum, frame):
    raise TestTimeLimitExceeded("test exceeded its time limit (see @pytest.mark.time_limit)")


def pytest_configure(config):
    # 2,000 concurrent connections need more descriptors; daemons started by
    # the fixtures inherit the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # One timer covers setup and call; it is cancelled after the call (or in
    # teardown when setup failed). Fixture finalizers have their own bounds.
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, _time_limit(item))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    signal.setitimer(signal.ITIMER_REAL, 0)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: ",
                     "WARNING: AddressSanitizer")


@pytest.fixture
def sluice_factory(tmp_path, request):
    """Starts `sluice serve` processes; stops each one by PID at the end.

    sluice_factory(config="[server]\\nidle_timeout_s = 2\\n", args=[...],
                   relay_from=..., max_message_size=..., max_recipients=...,
                   listen_hosts=("127.0.0.1", "::1"), spool=..., log=...)
    """
    require_sluice_bin()
    daemons: list = []

    def start(**kwargs) -> Sluice:
        n = len(daemons)
        d = Sluice(tmp_path / f"sluice{n}", **kwargs)
        daemons.append(d)
        d.start()
        return d

    yield start

    died = []
    for d in daemons:
        if d.proc is not None and d.proc.poll() is not None and not d.expected_exit:
            died.append(f"pid {d.proc.pid} exited with {d.proc.returncode} during the test")
        d.stop()
    # Under ASan/UBSan (tools/test), a report that does not kill the daemon
    # during the test, above all LeakSanitizer's at exit after SIGTERM, would
    # pass unseen: every run's stderr (appended across restarts) is checked.
    for d in daemons:
        text = d.stderr_path.read_text(errors="replace") if d.stderr_path.exists() else ""
        for marker in SANITIZER_MARKERS:
            if marker in text:
                died.append(f"{d.workdir}: sanitizer report ({marker})")
                break
    failed = any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    if failed or died:
        for d in daemons:
            print(f"--- sluice stderr ({d.workdir}) ---")
            print(d.stderr_tail(6000))
    if died:
        pytest.fail("sluice died unexpectedly or a sanitizer reported: " + "; ".join(died), pytrace=False)


@pytest.fixture
def sluice(sluice_factory) -> Sluice:
    """A daemon with the default options of the suite (see Sluice.__init__)."""
    return sluice_factory()


def _require_tool(path: str) -> str:
    found = shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    if not found:
        pytest.fail(f"required test tool {path} is missing (install swaks / postfix)", pytrace=False)
    return found


@pytest.fixture(scope="session")
def swaks_bin() -> str:
    return _require_tool(os.environ.get("SWAKS", "/usr/bin/swaks"))


@pytest.fixture(scope="session")
def smtp_source_bin() -> str:
    return _require_tool(os.environ.get("SMTP_SOURCE", "/usr/sbin/smtp-source"))


@pytest.fixture(scope="session")
def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
