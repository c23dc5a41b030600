"""The mail catcher alone: SMTP in (aiosmtpd), Mailpit's HTTP API out (the shapes of
axllent/mailpit server/apiv1), the plain page, and `koepon mail` reading it."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from koepon.localstack.mail.testing import running_mail

KOEPON = str(Path(sys.executable).with_name("koepon"))
SUMMARY_KEYS = {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created", "Username",
                "Tags", "Size", "Attachments", "Snippet"}
MESSAGE_KEYS = {"ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject", "ListUnsubscribe",
                "Date", "Tags", "Username", "Text", "HTML", "Size", "Inline", "Attachments"}


@pytest.fixture()
def catcher():
    with running_mail() as (url, smtp_port):
        yield url, smtp_port


def send(port: int, to: str, subject: str, text: str, html: str | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = "こえポン！ <noreply@koepon.local>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(msg)


def test_mailpit_api_shapes(catcher):
    url, port = catcher
    send(port, "a@example.com", "【こえポン！】確認 / Confirm", "コード 123456", "<p>コード <b>123456</b></p>")
    send(port, "b@example.com", "second", "plain only")
    page = httpx.get(f"{url}/api/v1/messages").json()
    assert set(page) == {"total", "unread", "count", "messages_count", "messages_unread", "start", "tags", "messages"}
    assert (page["total"], page["unread"], page["count"], page["start"]) == (2, 2, 2, 0)
    newest, oldest = page["messages"]
    assert set(newest) == SUMMARY_KEYS and newest["Subject"] == "second"
    assert oldest["From"] == {"Name": "こえポン！", "Address": "noreply@koepon.local"}
    assert oldest["To"] == [{"Name": "", "Address": "a@example.com"}] and oldest["Snippet"] == "コード 123456"
    full = httpx.get(f"{url}/api/v1/message/{oldest['ID']}").json()
    assert set(full) == MESSAGE_KEYS and "<b>123456</b>" in full["HTML"] and full["Text"].strip() == "コード 123456"
    assert httpx.get(f"{url}/api/v1/messages").json()["unread"] == 1  # reading marks it read
    assert httpx.get(f"{url}/api/v1/message/latest").json()["ID"] == newest["ID"]
    missing = httpx.get(f"{url}/api/v1/message/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert httpx.get(f"{url}/api/v1/messages", params={"start": 1, "limit": 1}).json()["messages"][0]["ID"] == \
        oldest["ID"]
    found = httpx.get(f"{url}/api/v1/search", params={"query": "to:a@example.com"}).json()
    assert [m["ID"] for m in found["messages"]] == [oldest["ID"]] and found["messages_count"] == 1
    assert "【こえポン！】確認" in httpx.get(f"{url}/").text
    assert "<b>123456</b>" in httpx.get(f"{url}/view/{oldest['ID']}.html").text
    r = httpx.request("DELETE", f"{url}/api/v1/messages", json={"IDs": [newest["ID"]]})
    assert (r.status_code, r.text) == (200, "ok")
    assert [m["ID"] for m in httpx.get(f"{url}/api/v1/messages").json()["messages"]] == [oldest["ID"]]
    httpx.request("DELETE", f"{url}/api/v1/messages")
    assert httpx.get(f"{url}/api/v1/messages").json()["total"] == 0


def test_koepon_mail_prints_the_last_message_to_an_address(catcher):
    url, port = catcher
    send(port, "fan@example.com", "older", "first code 111111")
    send(port, "fan@example.com", "newer", "second code 222222")
    send(port, "other@example.com", "not this", "333333")
    res = subprocess.run([KOEPON, "mail", "--url", url, "--to", "fan@example.com", "--last"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "newer" in res.stdout and "222222" in res.stdout
    assert "older" not in res.stdout and "333333" not in res.stdout
    listing = subprocess.run([KOEPON, "mail", "--url", url], capture_output=True, text=True, timeout=60).stdout
    assert listing.count("@example.com") == 3


def test_koepon_mail_says_when_the_catcher_is_not_running():
    from koepon.localstack.services import free_port

    res = subprocess.run([KOEPON, "mail", "--url", f"http://127.0.0.1:{free_port()}"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode != 0 and "koepon up" in res.stderr and "Traceback" not in res.stderr


def test_koepon_status_names_the_mail_catcher():
    import json

    res = subprocess.run([KOEPON, "status", "--json"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["mail_url"] == "http://127.0.0.1:54324" and "mail" in info["services"]
