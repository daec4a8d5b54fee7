"""The live status page (GET /, docs/HTTP.md "The status page") in a real
headless Chromium driven by Selenium: the page loads with no token and a
Content-Security-Policy, refuses to show data with a wrong token, shows
throughput and queue numbers that move while mail flows through a real
delivery world, and its Suspend button suspends a destination, which the
admin API then confirms.

Skips (with the reason) only when chromium, chromedriver or the selenium
bindings are missing (tools/deps.sh installs them: chromium chromium-driver
python3-selenium). Run it with /usr/bin/python3, whose dist-packages hold
Debian's selenium.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request

import pytest

from sluice_harness import scaled
from test_delivery import SENDER_HOST, msg, relay_config, send
from test_http import new_token, tokens_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser(profile: str):
    """A headless Chromium under chromedriver, or a skip saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip(f"python3-selenium is not installed ({e})")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.skip(f"{path} is missing (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(scaled(30))
    driver.set_script_timeout(scaled(10))
    return driver


def api(relay, token: str, path: str):
    req = urllib.request.Request(f"http://127.0.0.1:{relay.http_port}/api/admin/v1/{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=scaled(10)) as r:
        return json.loads(r.read())


def text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent;")


def wait_page(driver, ok, what: str, timeout: float = 20.0):
    """Polls the page until ok(driver) is true; fails with the page's status line."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = ok(driver)
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what} within {timeout}s; status line: "
                                 f"{text(driver, 'status')!r}")
        time.sleep(0.2)


@pytest.fixture
def profile():
    d = tempfile.mkdtemp(prefix="sluice-chromium-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_status_page_follows_mail_and_suspends(sluice_factory, delivery_world, tmp_path, profile):
    driver = browser(profile)
    try:
        run(driver, sluice_factory, delivery_world, tmp_path)
    finally:
        driver.quit()


def run(driver, sluice_factory, delivery_world, tmp_path):
    world = delivery_world(mx={"d1.test": "127.0.0.2", "d2.test": "127.0.0.4", "snd.test": SENDER_HOST},
                           down=["127.0.0.4"])
    token, line = new_token("ops")
    (tmp_path / "tokens").write_text(line + "\n")
    relay = sluice_factory(delivery=True, args=world.sluice_args(),
                           config=relay_config(retry={"initial": "1h"}) + tokens_config(tmp_path / "tokens"))
    base = f"http://127.0.0.1:{relay.http_port}"

    # The page itself: no token, HTML, a CSP that names no other origin.
    with urllib.request.urlopen(base + "/", timeout=scaled(10)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "http" not in csp, csp
        # Inline code is allowed by hash, so a script that runs proves the hash right.
        assert "'unsafe-inline'" not in csp and "script-src 'sha256-" in csp, csp
        page = r.read().decode()
    assert "<script src" not in page and "://" not in page

    driver.get(base + "/status")
    assert driver.title == "Sluice status"
    token_box = driver.find_element("id", "token")

    # A wrong token: the page says the API refused it and shows no numbers.
    token_box.send_keys("0" * 64)
    driver.find_element("id", "save").click()
    wait_page(driver, lambda d: "not valid" in text(d, "status"), "the refused token")
    assert text(driver, "in-total") == "-"

    driver.find_element("id", "token").send_keys(token)
    driver.find_element("id", "save").click()
    wait_page(driver, lambda d: text(d, "status").startswith("updated"), "a first update")
    assert text(driver, "in-total") == "0" and text(driver, "out-total") == "0"
    # The token lives in this tab's sessionStorage, not in the page's markup.
    assert driver.execute_script("return sessionStorage.getItem('sluice.token');") == token

    # Mail flows: 12 messages to d1.test (delivered), 2 to d2.test (its MX is
    # down, so they stay deferred), spread over a few poll intervals.
    errors = []

    def sender():
        try:
            for i in range(12):
                send(relay, [f"u{i}@d1.test"], msg(f"status {i}", to=f"u{i}@d1.test"))
                time.sleep(0.5)
            for i in range(2):
                send(relay, [f"v{i}@d2.test"], msg(f"deferred {i}", to=f"v{i}@d2.test"))
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=sender)
    t.start()
    max_in = max_out = 0.0
    seen_totals = set()
    deadline = time.monotonic() + scaled(40)
    while (t.is_alive() or text(driver, "out-total") != "12") and time.monotonic() < deadline:
        max_in = max(max_in, float(text(driver, "in-rate")))
        max_out = max(max_out, float(text(driver, "out-rate")))
        seen_totals.add(text(driver, "in-total"))
        time.sleep(0.25)
    t.join(timeout=scaled(30))
    assert not errors, errors
    assert text(driver, "out-total") == "12", text(driver, "status")
    wait_page(driver, lambda d: text(d, "in-total") == "14", "14 messages accepted")
    assert max_in > 0 and max_out > 0, (max_in, max_out)
    assert len(seen_totals) >= 3, seen_totals  # the total moved while mail flowed
    delivered_row = driver.execute_script(
        "return document.querySelector('#outcomes tr[data-outcome=delivered] td:nth-child(2)').textContent;")
    assert delivered_row == "12"

    # d2.test: queued and deferred, listed among the most deferred.
    wait_page(driver, lambda d: d.execute_script(
        "return document.querySelector('#deferred tr[data-domain=\"d2.test\"]') !== null;"),
        "d2.test among the deferred destinations")
    assert int(text(driver, "depth-now")) >= 2
    points = driver.execute_script("return document.getElementById('depth-line').getAttribute('points');")
    assert len(points.split()) >= 5, points  # the queue-depth line has history

    # Suspend d2.test from the page (the tables are redrawn every 2 s, so find
    # the button and click it in one script).
    clicked = driver.execute_script(
        "const b = document.querySelector('#deferred button[data-action=suspend][data-domain=\"d2.test\"]');"
        "if (!b) return false; b.click(); return true;")
    assert clicked
    wait_page(driver, lambda d: "suspend d2.test" in text(d, "action-result"), "the suspend answer")
    assert '"domain":"d2.test"' in text(driver, "action-result"), text(driver, "action-result")
    suspensions = api(relay, token, "suspensions")
    assert [s["domain"] for s in suspensions] == ["d2.test"], suspensions
    assert suspensions[0]["reason"] == "suspended from the status page"
    # The page shows it: the row's state, the counter, and Resume instead of Suspend.
    wait_page(driver, lambda d: text(d, "suspended-count") == "1", "one suspension")
    wait_page(driver, lambda d: d.execute_script(
        "return document.querySelector('#busiest button[data-action=resume][data-domain=\"d2.test\"]') !== null;"),
        "a Resume button for d2.test")

    # Resume from the page too.
    driver.execute_script(
        "document.querySelector('#busiest button[data-action=resume][data-domain=\"d2.test\"]').click();")
    wait_page(driver, lambda d: "resume d2.test" in text(d, "action-result"), "the resume answer")
    assert api(relay, token, "suspensions") == []
    # No CSP violation or script error in the console.
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"
              and "401" not in e.get("message", "")]  # the wrong token's refused requests
    assert severe == [], severe
