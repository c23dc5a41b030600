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
