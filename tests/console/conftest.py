"""Browser tests of the console: Debian's Chromium (installed by scripts/bootstrap.sh), headless,
driven by Playwright (pytest-playwright's fixtures, pointed at the system browser: no browser
download), against the whole stack on free ports — a seeded database of this module's own, the API
(with Realtime and Storage), the fake providers, the payment service (CORS for the console's origin)
and the console server. The fixed ports belong to `koepon up` and are never used here.

Every page is watched: a console error, an uncaught exception, a failed request or an HTTP answer
>= 400 that the journey did not announce with `watch.expect(...)` fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from koepon.localstack.api.storage import ensure_demo_bytes
from koepon.localstack.api.testing import running_api
from koepon.localstack.console import ConsoleConfig, running_console
from koepon.localstack.fakes.serve import running_payments
from koepon.localstack.mail.testing import running_mail
from koepon.localstack.services import free_port
from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The README's screenshots are rewritten only when asked (`make screenshots`), so that a test run
# leaves the tree as it found it; every run still checks each screen's labels where it would shoot.
WRITE_SCREENSHOTS = os.environ.get("KOEPON_SCREENSHOTS") == "1"
CONSOLE_MODULES = Path(__file__).resolve().parents[2] / "console" / "node_modules"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")


# pytest-playwright keeps one Playwright (and browser) for the whole session. Its sync API marks an
# asyncio loop as running in this thread between calls, so every later test that calls
# asyncio.run() (the Realtime tests) would fail with "cannot be called from a running event loop".
# The console's modules therefore get their own, stopped when the module ends; the plugin's launch
# arguments and browser_name are used as they are.
@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    yield pw
    pw.stop()
    assert asyncio._get_running_loop() is None, "Playwright left an event loop marked as running"


@pytest.fixture(scope="module")
def browser(playwright, browser_name, browser_type_launch_args):
    browser = getattr(playwright, browser_name).launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # The system Chromium, headless; --no-sandbox because the tests may run as root (CI does).
    return {**browser_type_launch_args, "executable_path": chromium_path(), "headless": True,
            "args": ["--no-sandbox", "--disable-dev-shm-usage"]}


@pytest.fixture(scope="module")
def browser_context_args():
    # Not the plugin's (session-scoped, it asks for its session Playwright): a person in Japan.
    return {"viewport": {"width": 1280, "height": 900}, "locale": "ja-JP", "timezone_id": "Asia/Tokyo",
            "accept_downloads": True}


@dataclass
class Stack:
    console_url: str
    api_url: str
    payments_url: str
    fake_url: str
    db_url: str
    mail_url: str


@pytest.fixture(scope="module")
def stack(seeded_db_url) -> Stack:
    if not (CONSOLE_MODULES / "@supabase" / "supabase-js").is_dir():
        pytest.fail("console/node_modules is missing: scripts/bootstrap.sh runs `npm ci` in console/")
    storage = Path(tempfile.mkdtemp(prefix="koepon-console-storage-"))
    ensure_demo_bytes(seeded_db_url, storage)  # real PNGs and MP3s, as `koepon up` writes them
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    # Auth's e-mail goes to a mail catcher of the module's own; its links may lead back to the console.
    auth = {"site_url": origin, "additional_redirect_urls": (f"{origin}/**",)}
    try:
        with running_mail() as (mail_url, smtp_port), \
                running_api(seeded_db_url, storage_root=storage, auth={**auth, "smtp_port": smtp_port}) as api, \
                running_payments(api, origin) as pay:
            cfg = ConsoleConfig(api, ANON_KEY, pay.payments_url, pay.fake_url + "/stripe", mail_url=mail_url)
            with running_console(cfg, port) as console:
                yield Stack(console, api, pay.payments_url, pay.fake_url, seeded_db_url, mail_url)
    finally:
        shutil.rmtree(storage, ignore_errors=True)


@dataclass
class Watch:
    """What a page did wrong: console errors, uncaught exceptions, failed requests, HTTP >= 400."""

    problems: list[str] = field(default_factory=list)
    allowed: list[tuple[re.Pattern, int]] = field(default_factory=list)
    seen_allowed: set[str] = field(default_factory=set)

    def expect(self, url_pattern: str, status: int) -> None:
        """Announce an HTTP refusal the journey provokes on purpose (and its console line)."""
        self.allowed.append((re.compile(url_pattern), status))

    def _allowed(self, url: str, status: int | None) -> bool:
        for pattern, st in self.allowed:
            if pattern.search(url or "") and (status is None or status == st):
                self.seen_allowed.add(pattern.pattern)
                return True
        return False

    def attach(self, page) -> None:
        def on_console(msg):
            if msg.type != "error":
                return
            url = (msg.location or {}).get("url", "")
            # Chromium logs every HTTP error answer as "Failed to load resource"; those are judged
            # by their response below.
            if msg.text.startswith("Failed to load resource") and self._allowed(url, None):
                return
            self.problems.append(f"console error: {msg.text} ({url})")

        def on_response(resp):
            if resp.status >= 400 and not self._allowed(resp.url, resp.status):
                self.problems.append(f"HTTP {resp.status} {resp.request.method} {resp.url}")

        def on_failed(req):
            failure = req.failure or ""
            # A download's blob: URL or a page left while a request was in flight is not a failure.
            if req.url.startswith("blob:") or "ERR_ABORTED" in failure:
                return
            self.problems.append(f"request failed: {req.method} {req.url} {failure}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        page.on("response", on_response)
        page.on("requestfailed", on_failed)

    def check(self) -> None:
        assert not self.problems, "the browser reported:\n" + "\n".join(self.problems)


@pytest.fixture()
def open_page(browser, browser_context_args, stack, tmp_path):
    """open_page() → (page, watch): a fresh browser context (its own storage: one person) on the console.
    Each page's last state is saved as a screenshot in the test's tmp_path (for a failure's post-mortem)."""
    contexts, watches = [], []

    def make():
        ctx = browser.new_context(**browser_context_args)
        ctx.set_default_timeout(20_000)
        page = ctx.new_page()
        watch = Watch()
        watch.attach(page)
        contexts.append(ctx)
        watches.append(watch)
        page.goto(stack.console_url + "/")
        page.wait_for_selector("body[data-ready='1']")
        return page, watch

    yield make
    for i, ctx in enumerate(contexts):
        for page in ctx.pages:
            page.screenshot(path=str(tmp_path / f"last-{i}.png"), full_page=True)
        ctx.close()
    for watch in watches:
        watch.check()


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter((el) => el.type !== 'hidden')
  .filter((el) => {
    const name = (el.labels && el.labels.length ? [...el.labels].map((l) => l.textContent).join('') : '') +
      (el.getAttribute('aria-label') || '') + (['BUTTON', 'A'].includes(el.tagName) ? el.textContent : '')
    return !name.trim()
  }).map((el) => el.outerHTML.slice(0, 120))"""


def assert_labelled(page) -> None:
    """Every control on the screen has an accessible name: a <label for>, aria-label, or its text."""
    missing = page.evaluate(UNLABELLED)
    assert not missing, f"controls without a label: {missing}"


def shot(page, name: str) -> None:
    """A main screen: its controls must all be labelled; with KOEPON_SCREENSHOTS=1 (`make
    screenshots`) it is also written to docs/screenshots/NAME.png for the README."""
    assert_labelled(page)
    if not WRITE_SCREENSHOTS:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(150)  # let the last paint land (fonts, canvas)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def goto(page, hash_path: str, ready: str) -> None:
    """Navigate inside the app (a reload when already there) and wait for the screen's own element."""
    if page.evaluate("location.hash") == hash_path:
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
    else:
        page.evaluate("h => { location.hash = h }", hash_path)
    # The app marks the body with the path of the screen it finished drawing.
    page.wait_for_function("p => document.body.dataset.shown === p", arg=hash_path.removeprefix("#"))
    page.wait_for_selector(ready)


def sign_in(page, email: str, password: str) -> None:
    goto(page, "#/signin", "#signin-form")
    page.get_by_label(re.compile("メールアドレス")).fill(email)
    page.get_by_label(re.compile("^パスワード")).fill(password)
    page.get_by_role("button", name="ログイン", exact=True).last.click()
    page.wait_for_selector("#who-email")


def new_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def service_client(api_url: str):
    from supabase import create_client

    return create_client(api_url, SERVICE_ROLE_KEY)
