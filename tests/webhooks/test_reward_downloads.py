"""Reward downloads: fans cannot sign reward objects; the payment service's endpoint authorises the
download as the fan and hands out a URL that lives one minute, so a refund stops it soon after."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import psycopg
import pytest
from click.testing import CliRunner
from webhook_support import sign_up_fan

from koepon.cli import main
from koepon.settings import SERVICE_ROLE_KEY
from supabase import create_client
from webhooks.blueprints import downloads

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: on sale
TEN_YEARS = 10 * 365 * 24 * 3600


def _fan_with_reward(api_url, pay, db_url):
    """A new fan with one paid single pull: (client, token, user id, reward id, order id, object path)."""
    sb, token, user_id = sign_up_fan(api_url, "dl", "Downloader")
    order = sb.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 1,
                                    "p_idempotency_key": uuid.uuid4().hex}).execute().data
    r = CliRunner().invoke(main, ["pay", order["order_id"], "--url", pay.payments_url, "--api-url", api_url])
    assert r.exit_code == 0 and "fulfilled" in r.output, r.output
    [reward] = sb.rpc("list_my_rewards", {}).execute().data
    with psycopg.connect(db_url) as conn:
        bucket, path = conn.execute("select content_bucket, content_path from app.user_rewards where id = %s",
                                    (reward["id"],)).fetchone()
    # The rewards bucket takes images, audio and video only (its allowed_mime_types).
    create_client(api_url, SERVICE_ROLE_KEY).storage.from_(bucket).upload(
        path, b"the reward bytes", {"upsert": "true", "content-type": "audio/mpeg"})
    return sb, token, user_id, reward["id"], order["order_id"], path


def _download(pay, token, reward_id, **kw):
    return httpx.post(f"{pay.payments_url}/payments/rewards/{reward_id}/download",
                      headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=10, **kw)


def _url_exp(signed_url):
    token = parse_qs(urlparse(signed_url).query)["token"][0]
    return jwt.decode(token, options={"verify_signature": False})["exp"]


def test_a_fan_cannot_sign_a_reward_object_even_right_after_an_authorised_download(stack):
    api_url, pay, db_url = stack
    sb, _, _, reward_id, _, path = _fan_with_reward(api_url, pay, db_url)
    dl = sb.rpc("request_download", {"p_user_reward_id": reward_id}).execute().data
    assert dl["path"] == path
    # Storage signs any lifetime its caller asks for (hosted too): a fan who may sign can mint a
    # ten-year link. So a fan may not sign at all.
    with pytest.raises(Exception, match="(?i)not.found"):
        sb.storage.from_("rewards").create_signed_url(path, TEN_YEARS)


def test_the_download_endpoint_authorises_as_the_fan_and_signs_for_one_minute(stack):
    api_url, pay, db_url = stack
    _, token, user_id, reward_id, _, _ = _fan_with_reward(api_url, pay, db_url)
    before = time.time()
    r = _download(pay, token, reward_id, json={"expiresIn": TEN_YEARS})  # nothing the caller sends changes it
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["user_reward_id"], got["downloads_today"], got["remaining_today"], got["expires_in"]) == \
        (reward_id, 1, 2, downloads.URL_SECONDS)
    assert downloads.URL_SECONDS <= 600
    assert _url_exp(got["signed_url"]) <= before + downloads.URL_SECONDS + 2
    body = httpx.get(got["signed_url"])
    assert (body.status_code, body.content) == (200, b"the reward bytes")
    with psycopg.connect(db_url) as conn:
        logged = conn.execute("select count(*) from app.downloads where user_id = %s", (user_id,)).fetchone()[0]
    assert logged == 1
    # Someone else's token: not in their box. No token, a bad id: refused before anything is asked.
    _, other_token, _, _, _, _ = _fan_with_reward(api_url, pay, db_url)
    r = _download(pay, other_token, reward_id)
    assert (r.status_code, r.json()["code"]) == (404, "reward_not_found")
    r = _download(pay, None, reward_id)
    assert (r.status_code, r.json()["code"]) == (401, "not_authenticated")
    r = _download(pay, token, "not-a-uuid")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_user_reward_id")


def test_the_endpoint_keeps_the_daily_limit_and_refuses_a_suspended_fan(stack):
    api_url, pay, db_url = stack
    _, token, user_id, reward_id, _, _ = _fan_with_reward(api_url, pay, db_url)
    assert [_download(pay, token, reward_id).status_code for _ in range(3)] == [200, 200, 200]
    r = _download(pay, token, reward_id)
    assert (r.status_code, r.json()["code"]) == (429, "download_limit_reached")
    _, token, user_id, reward_id, _, _ = _fan_with_reward(api_url, pay, db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update app.profiles set status = 'suspended' where user_id = %s", (user_id,))
    r = _download(pay, token, reward_id)
    assert (r.status_code, r.json()["code"]) == (403, "account_suspended")


def test_a_refund_stops_downloads_authorised_before_it_within_the_url_lifetime(stack, monkeypatch):
    api_url, pay, db_url = stack
    monkeypatch.setattr(downloads, "URL_SECONDS", 2)  # the same rule, with a lifetime a test can wait out
    _, token, _, reward_id, order_id, _ = _fan_with_reward(api_url, pay, db_url)
    r = _download(pay, token, reward_id)
    assert r.status_code == 200, r.text
    url = r.json()["signed_url"]
    assert httpx.get(url).status_code == 200
    run = CliRunner().invoke(main, ["pay", order_id, "--outcome", "refunded", "--url", pay.payments_url,
                                    "--api-url", api_url])
    assert run.exit_code == 0, run.output
    for _ in range(100):  # the provider's refund event arrives from the fake's thread
        with psycopg.connect(db_url) as conn:
            revoked = conn.execute("select revoked_at is not null from app.user_rewards where id = %s",
                                   (reward_id,)).fetchone()[0]
        if revoked:
            break
        time.sleep(0.05)
    assert revoked
    # At once: no new URL for the revoked reward.
    r = _download(pay, token, reward_id)
    assert (r.status_code, r.json()["code"]) == (409, "reward_revoked")
    # The URL handed out before the refund stops working when its lifetime ends.
    time.sleep(max(0.0, _url_exp(url) - time.time()) + 1.1)
    gone = httpx.get(url)
    assert gone.status_code == 400 and gone.json()["error"] == "InvalidJWT"
