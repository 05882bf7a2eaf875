"""A person's view: a headless browser connects a TikTok account and reads the API docs.

The bridge serves real HTTP on a free port (sandbox platforms, the test MariaDB and Redis), with
AURAREELS_PUBLIC_URL set to its own address, so the authorize URL it hands out opens the TikTok
emulator's consent page under `/_sandbox/`. A second tiny server stands in for the dashboard
(AURAREELS_FRONTEND_URL) and confirms a pending link with its signed-in user's token, as the real
dashboard does. The browser clicks Allow or Deny and follows the redirects; the test reads where the
browser lands and what the API then lists. Without a dashboard of its own (`up`), the bridge's
sandbox page takes the token and confirms.

Needs the system's browser and its driver (installed by the test script) and the browser-driving
test dependency; the test fails (not skips) without them, so a CI run cannot pass without a browser.
"""
from __future__ import annotations

import shutil
import threading
from html import escape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bridge.app import create_app
from bridge.runtime import Runtime
from tests.conftest import auth

USER = 9001
SCREENSHOTS = "/tmp"


def _browser_tools() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("a headless browser is needed: apt-get install -y chromium chromium-driver", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("the browser driver library is needed: pip install -e '.[test]'", pytrace=False)
    return chromium, driver


class _Plugged:
    """A WSGI app known after the server has its port (the app's settings need the address)."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _serve(app) -> tuple[object, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, name=f"http-{server.server_port}", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


class Dashboard:
    """The stand-in for the AuraReels dashboard page the callback sends the browser to. Its visitor
    is signed in as `user`; for a pending link it does what the real dashboard does: it confirms
    the link with that user's token (from its server side) and shows the outcome in `#confirmed`."""

    def __init__(self):
        self.bridge_url = ""
        self.user = USER

    def __call__(self, environ, start_response):
        request = Request(environ)
        items = "".join(f"<li><b>{escape(k)}</b>: <span id='{escape(k)}'>{escape(v)}</span></li>"
                        for k, v in request.args.items())
        outcome = ""
        if request.args.get("status") == "pending":
            answer = httpx.post(f"{self.bridge_url}/wp-json/aurareels/v1/social/accounts/links/"
                                f"{request.args['link']}/confirm", headers=auth(self.user), timeout=10)
            body = answer.json()
            outcome = ("connected: " + ", ".join(a["platform"] for a in body["accounts"]) if answer.status_code == 200
                       else f"refused: {body['code']}")
        page = (f"<!doctype html><title>Social accounts</title><h1>Social accounts</h1><ul>{items}</ul>"
                f"<p id='confirmed'>{escape(outcome)}</p>")
        return Response(page, content_type="text/html; charset=utf-8")(environ, start_response)


@pytest.fixture
def live(rt):
    """The bridge and the dashboard on real ports; yields (bridge URL, dashboard URL, dashboard)."""
    plugged = _Plugged()
    bridge_server, bridge_url = _serve(plugged)
    front = Dashboard()
    front.bridge_url = bridge_url
    front_server, front_url = _serve(front)
    settings = rt.settings.with_overrides(public_url=bridge_url, frontend_url=front_url)
    plugged.app = create_app(runtime=Runtime.from_settings(settings, engine=rt.engine))
    yield bridge_url, front_url, front
    for server in (bridge_server, front_server):
        server.shutdown()
        server.server_close()


@pytest.fixture
def live_alone(rt):
    """The bridge alone, as `up` runs it: the callback sends the browser to the bridge's own
    sandbox stand-in of the dashboard page. Yields the bridge URL."""
    plugged = _Plugged()
    bridge_server, bridge_url = _serve(plugged)
    settings = rt.settings.with_overrides(public_url=bridge_url, frontend_url=bridge_url)
    plugged.app = create_app(runtime=Runtime.from_settings(settings, engine=rt.engine))
    yield bridge_url
    bridge_server.shutdown()
    bridge_server.server_close()


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = _browser_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-proxy-server", "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _start_connect(bridge_url: str, user: int = USER) -> dict:
    answer = httpx.post(f"{bridge_url}/wp-json/aurareels/v1/social/accounts/connect/tiktok", headers=auth(user),
                        json={}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["auth_url"].startswith(f"{bridge_url}/_sandbox/")
    return body


def _accounts(bridge_url: str, user: int = USER) -> list[dict]:
    answer = httpx.get(f"{bridge_url}/wp-json/aurareels/v1/social/accounts", headers=auth(user), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["accounts"]


def _consent_and_decide(browser, auth_url: str, button: str, screenshot: str | None = None) -> dict:
    from selenium.webdriver.common.by import By

    browser.get(auth_url)
    choice = _wait(browser, lambda d: d.find_element(By.ID, button))
    assert "tiktok" in browser.title.lower()
    assert browser.find_element(By.ID, "allow").is_displayed() and browser.find_element(By.ID, "deny").is_displayed()
    if screenshot:
        browser.save_screenshot(screenshot)
    choice.click()
    _wait(browser, lambda d: "/dashboard/social-accounts" in d.current_url)
    return {"url": browser.current_url, "query": parse_qs(urlsplit(browser.current_url).query)}


def test_allow_connects_the_account_once_the_dashboard_confirms(live, browser):
    from selenium.webdriver.common.by import By

    bridge_url, front_url, _ = live
    start = _start_connect(bridge_url)
    landed = _consent_and_decide(browser, start["auth_url"], "allow", f"{SCREENSHOTS}/aurareels-consent-tiktok.png")
    assert landed["url"].startswith(f"{front_url}/dashboard/social-accounts?status=pending&platform=tiktok&link=")
    assert "Social accounts" in browser.page_source  # the dashboard page rendered
    assert browser.find_element(By.ID, "confirmed").text == "connected: tiktok"
    accounts = _accounts(bridge_url)
    assert [a["platform"] for a in accounts] == ["tiktok"]
    assert accounts[0]["is_active"] is True and accounts[0]["account_name"] and accounts[0]["token_expires_at"]


def test_a_creator_approving_an_attackers_connect_links_nothing(live, browser):
    """The attack: another user starts the connect and sends the consent link to a creator, whose
    browser (signed in to the dashboard as the creator) approves it. The dashboard's confirmation
    is refused, and neither user has the account."""
    from selenium.webdriver.common.by import By

    bridge_url, front_url, front = live
    attacker = USER + 1
    start = _start_connect(bridge_url, user=attacker)
    landed = _consent_and_decide(browser, start["auth_url"], "allow")
    assert landed["query"]["status"] == ["pending"]
    assert browser.find_element(By.ID, "confirmed").text == "refused: link_not_found"
    assert front.user == USER and _accounts(bridge_url) == [] and _accounts(bridge_url, attacker) == []


def test_sandbox_stand_in_page_confirms_with_the_users_token(live_alone, browser):
    """`up`'s path: the callback lands on the bridge's own sandbox page, where the demo token is
    pasted and the link confirmed."""
    from selenium.webdriver.common.by import By

    bridge_url = live_alone
    start = _start_connect(bridge_url)
    _consent_and_decide(browser, start["auth_url"], "allow")
    assert "status=pending" not in browser.current_url  # the page drops the link from the address
    browser.find_element(By.ID, "token").send_keys(auth(USER)["Authorization"].split(" ", 1)[1])
    browser.find_element(By.ID, "confirm-button").click()
    result = _wait(browser, lambda d: (text := d.find_element(By.ID, "result").text) and text)
    browser.save_screenshot(f"{SCREENSHOTS}/aurareels-sandbox-confirm.png")
    assert result.startswith("Connected: "), result
    assert [a["platform"] for a in _accounts(bridge_url)] == ["tiktok"]


def test_deny_lands_on_the_dashboard_with_an_error(live, browser):
    bridge_url, front_url, _ = live
    start = _start_connect(bridge_url)
    landed = _consent_and_decide(browser, start["auth_url"], "deny")
    assert landed["url"].startswith(f"{front_url}/dashboard/social-accounts?")
    assert landed["query"]["status"] == ["error"] and landed["query"]["message"][0].strip()
    assert _accounts(bridge_url) == []


def test_docs_page_renders_every_operation_offline(live, browser):
    from selenium.webdriver.common.by import By

    bridge_url, _, _ = live
    browser.get(f"{bridge_url}/docs")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 20)
    rendered = {element.text.replace("\u200b", "") for element in
                browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    for path in ("/accounts", "/publish", "/posts/{post_id}", "/webhooks/meta", "/health", "/docs"):
        assert f"/aurareels/v1/social{path}" in rendered, sorted(rendered)
    assert "AuraReels Social Bridge" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    browser.save_screenshot(f"{SCREENSHOTS}/aurareels-docs.png")
    # every resource the page loaded came from the bridge itself
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(bridge_url) for url in loaded), loaded
