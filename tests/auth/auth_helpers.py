"""Helpers of the auth tests: the mail catcher's Mailpit API, and the code and link in an e-mail."""

from __future__ import annotations

import re
import time
import uuid

import httpx


class Mailbox:
    """The catcher's HTTP API (the Mailpit shapes)."""

    def __init__(self, url: str, smtp_port: int):
        self.url = url
        self.smtp_port = smtp_port

    def messages(self, to: str) -> list[dict]:
        found = httpx.get(f"{self.url}/api/v1/search", params={"query": f"to:{to}"}).json()["messages"]
        return [httpx.get(f"{self.url}/api/v1/message/{m['ID']}").json() for m in found]

    def wait(self, to: str, count: int = 1, timeout: float = 10) -> list[dict]:
        """The newest `count` messages to `to` (newest first), waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages(to)
            if len(msgs) >= count:
                return msgs[:count]
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} message(s) to {to} expected, {len(msgs)} arrived")
            time.sleep(0.05)


def code_of(message: dict) -> str:
    m = re.search(r"Code: (\d{6})", message["Text"])
    assert m, message["Text"]
    return m.group(1)


def link_of(message: dict) -> str:
    m = re.search(r'href="([^"]+/verify\?[^"]+)"', message["HTML"])
    assert m, message["HTML"]
    return m.group(1).replace("&amp;", "&")


def new_email(tag: str = "fan") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def supabase_js_modules():
    """The pinned supabase-js the other supabase-js suites use (tests/api/test_client_checklist_js.py
    installs it into the same cache); installed here when missing, failing with the reason if npm cannot."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    default = Path.home() / ".cache" / "koepon" / "postgrest-js-checklist"
    cache = Path(os.environ.get("KOEPON_POSTGREST_JS_DIR", default))
    marker = cache / "node_modules" / "@supabase" / "supabase-js" / "package.json"
    if not marker.exists() or '"version": "2.119.1"' not in marker.read_text():
        if os.environ.get("KOEPON_SKIP_SUPABASE_JS") == "1":
            pytest.skip("KOEPON_SKIP_SUPABASE_JS=1: the supabase-js checks were explicitly opted out of")
        if not shutil.which("npm"):
            pytest.fail("npm is not installed (scripts/bootstrap.sh installs it)")
        cache.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(cache),
                              "@supabase/supabase-js@2.119.1", "typescript@5.9.3"],
                             capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            pytest.fail(f"npm install failed: {res.stderr[-2000:]}")
    return cache
