"""The console's server without a browser: the configuration endpoint, the CSP on every answer, the
pinned libraries, and nothing outside the app's own files."""

from __future__ import annotations

from pathlib import Path

import httpx

from koepon.localstack.console import ROOT, ConsoleConfig, running_console

CFG = ConsoleConfig("http://127.0.0.1:1", "anon-key", "http://127.0.0.1:2", "http://127.0.0.1:3/stripe")


def test_config_csp_vendor_and_no_stray_files():
    with running_console(CFG) as url:
        cfg = httpx.get(f"{url}/config.json").json()
        assert cfg["supabase_url"] == "http://127.0.0.1:1" and cfg["anon_key"] == "anon-key"
        assert cfg["payments_url"] == "http://127.0.0.1:2"

        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        # The page may talk only to the API (HTTP and its websocket), the payment service and the card form.
        connect = next(d for d in csp.split("; ") if d.startswith("connect-src")).split()[1:]
        assert connect == ["'self'", "http://127.0.0.1:1", "ws://127.0.0.1:1", "http://127.0.0.1:2",
                           "http://127.0.0.1:3"]
        assert "<script>" not in page.text

        lib = httpx.get(f"{url}/vendor/supabase.js")
        assert lib.status_code == 200 and lib.headers["content-type"].startswith("text/javascript")
        assert httpx.get(f"{url}/vendor/chart.js").status_code == 200

        for stray in ("/package.json", "/package-lock.json", "/node_modules/chart.js/package.json",
                      "/../pyproject.toml", "/vendor/../../pyproject.toml", "/js/nothing.js"):
            assert httpx.get(f"{url}{stray}").status_code == 404, stray


def test_no_inline_script_or_handler_in_the_app_files():
    html = (ROOT / "index.html").read_text()
    assert "<script>" not in html and "<script type=\"importmap\"" not in html
    for path in (ROOT / "js").rglob("*.js"):
        text = path.read_text()
        assert "innerHTML" not in text, f"{path.name}: the console builds DOM with textContent only"
        assert "eval(" not in text and "new Function" not in text, path.name


def test_koepon_up_serves_the_console_on_54323_pointed_at_the_stack():
    from koepon.localstack.mail import MAIL_PORT
    from koepon.localstack.services import services
    from koepon.settings import API_PORT, CONSOLE_PORT, FAKES_PORT, PAYMENTS_PORT

    svc = {s.name: s for s in services()}["console"]
    assert svc.port == CONSOLE_PORT == 54323 and svc.health_path == "/health"
    argv = list(svc.argv)
    opts = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert argv[1:3] == ["-m", "koepon.localstack.console"]
    assert opts == {"--port": "54323", "--api-url": f"http://127.0.0.1:{API_PORT}",
                    "--payments-url": f"http://127.0.0.1:{PAYMENTS_PORT}",
                    "--stripe-api-base": f"http://127.0.0.1:{FAKES_PORT}/stripe",
                    "--mail-url": f"http://127.0.0.1:{MAIL_PORT}"}


class _Page:
    """What shot() uses of a Playwright page."""

    def __init__(self):
        self.shots = []

    def evaluate(self, _script):
        return []  # every control labelled

    def wait_for_timeout(self, _ms):
        pass

    def screenshot(self, path, full_page):
        self.shots.append(path)
        Path(path).write_bytes(b"png")


def test_screenshots_are_written_only_when_asked(monkeypatch, tmp_path):
    """A test run leaves docs/screenshots/ alone; KOEPON_SCREENSHOTS=1 (make screenshots) rewrites it."""
    from . import conftest

    monkeypatch.setattr(conftest, "SCREENSHOTS", tmp_path)
    page = _Page()
    monkeypatch.setattr(conftest, "WRITE_SCREENSHOTS", False)
    conftest.shot(page, "reveal")
    assert (page.shots, list(tmp_path.iterdir())) == ([], [])
    monkeypatch.setattr(conftest, "WRITE_SCREENSHOTS", True)
    conftest.shot(page, "reveal")
    assert [p.name for p in tmp_path.iterdir()] == ["reveal.png"]
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "KOEPON_SCREENSHOTS=1" in makefile
