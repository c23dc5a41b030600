"""A fan's account in Chromium: the password reset through the local mail catcher (the e-mail's
link opens the console, which asks for the new password), the sessions list with a second device
signed out, and a deletion request that is cancelled."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from supabase_auth.errors import AuthApiError

from koepon.settings import ANON_KEY
from supabase import create_client

from .conftest import goto, new_email, shot, sign_in


def mail_to(mail_url: str, address: str, timeout: float = 10) -> dict:
    """The newest message to `address` in the catcher (its Mailpit API)."""
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(f"{mail_url}/api/v1/search", params={"query": f"to:{address}"}).json()["messages"]
        if found:
            return httpx.get(f"{mail_url}/api/v1/message/{found[0]['ID']}").json()
        assert time.monotonic() < deadline, f"no e-mail to {address} within {timeout} s"
        time.sleep(0.1)


def test_password_reset_through_the_mail_catcher_then_sessions_and_deletion(open_page, stack):
    email, old, new = new_email("console-reset"), "old-password-123", "new-password-456"
    create_client(stack.api_url, ANON_KEY).auth.sign_up({"email": email, "password": old})

    page, watch = open_page()
    goto(page, "#/reset", "#reset-request-form")
    page.get_by_label("登録したメールアドレス").fill(email)
    page.get_by_role("button", name="再設定メールを送る").click()
    assert stack.mail_url in page.wait_for_selector(".flash.ok").inner_text()

    message = mail_to(stack.mail_url, email)
    link = re.search(r'href="([^"]+/verify\?[^"]+)"', message["HTML"]).group(1).replace("&amp;", "&")
    assert "type=recovery" in link
    page.goto(link)  # Auth verifies the token and sends the browser back to the console, signed in
    page.wait_for_selector("#reset-password-form")
    page.wait_for_function("document.body.dataset.shown === '/reset'")
    shot(page, "password-reset")
    page.get_by_label("新しいパスワード").fill(new)
    page.get_by_role("button", name="パスワードを変更").click()
    page.wait_for_selector(".flash.ok:has-text('パスワードを変更しました')")

    page.locator("#signout").click()
    page.wait_for_selector("#signin-link")
    sign_in(page, email, new)

    # Two sessions: this browser and another device; the reset ended the sessions made before it.
    other_device = create_client(stack.api_url, ANON_KEY)
    other_device.auth.sign_in_with_password({"email": email, "password": new})
    goto(page, "#/account", "#sessions table")
    rows = page.locator("#sessions tbody tr")
    assert rows.count() == 2
    assert page.locator("#sessions tbody tr:has-text('この端末')").count() == 1
    page.locator("#signout-others").click()
    page.wait_for_selector(".flash.ok:has-text('他の端末からログアウトしました')")
    goto(page, "#/account", "#sessions table")
    assert page.locator("#sessions tbody tr").count() == 1
    with pytest.raises(AuthApiError):  # the other device can no longer refresh
        other_device.auth.refresh_session()

    # Deletion: refused without the confirmation tick, then requested, then withdrawn.
    page.locator("#delete-account").click()
    assert "確認のチェック" in page.wait_for_selector(".flash.error").inner_text()
    page.get_by_label("内容を理解しました").check()
    page.locator("#delete-account").click()
    page.wait_for_selector(".flash.ok:has-text('削除を申請しました')")
    shot(page, "account")
    page.locator("#cancel-deletion").click()
    page.wait_for_selector(".flash.ok:has-text('取り消しました')")
    watch.check()
