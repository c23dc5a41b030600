"""Reveal previews through the payment service: the fan's own fresh order, URLs signed for one
minute, not counted as downloads; refused for someone else, after the window, after a refund."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import psycopg
from click.testing import CliRunner
from webhook_support import sign_up_fan

from koepon.cli import main
from koepon.settings import SERVICE_ROLE_KEY
from supabase import create_client
from webhooks.blueprints import downloads

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: on sale, audio items


def _fan_with_ten_pulls(api_url, pay, db_url):
    """A new fan with a paid 10-pull: (token, user id, order id, the set of its object paths)."""
    sb, token, user_id = sign_up_fan(api_url, "pv", "Previewer")
    order = sb.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 10,
                                    "p_idempotency_key": uuid.uuid4().hex}).execute().data
    r = CliRunner().invoke(main, ["pay", order["order_id"], "--url", pay.payments_url, "--api-url", api_url])
    assert r.exit_code == 0 and "fulfilled" in r.output, r.output
    with psycopg.connect(db_url) as conn:
        paths = {p for (p,) in conn.execute(
            "select r.content_path from app.user_rewards r join app.pulls p on p.id = r.pull_id "
            "where p.order_id = %s", (order["order_id"],))}
    storage = create_client(api_url, SERVICE_ROLE_KEY).storage.from_("rewards")
    for path in paths:
        storage.upload(path, f"bytes of {path}".encode(), {"upsert": "true", "content-type": "audio/mpeg"})
    return token, user_id, order["order_id"], paths


def _url_exp(signed_url):
    token = parse_qs(urlparse(signed_url).query)["token"][0]
    return jwt.decode(token, options={"verify_signature": False})["exp"]


def _previews(pay, token, order_id):
    return httpx.post(f"{pay.payments_url}/payments/orders/{order_id}/previews",
                      headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=10)


def test_previews_are_signed_for_a_minute_and_are_not_downloads(stack):
    api_url, pay, db_url = stack
    token, user_id, order_id, paths = _fan_with_ten_pulls(api_url, pay, db_url)
    before = time.time()
    r = _previews(pay, token, order_id)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["order_id"], got["expires_in"], len(got["previews"])) == (order_id, downloads.URL_SECONDS, 10)
    assert {p["path"] for p in got["previews"]} == paths
    for p in got["previews"]:
        assert p["mimetype"] == "audio/mpeg"
        assert _url_exp(p["signed_url"]) <= before + downloads.URL_SECONDS + 2
        body = httpx.get(p["signed_url"])
        assert (body.status_code, body.content) == (200, f"bytes of {p['path']}".encode())
    # Asked again (a reload of the reveal): still allowed, and still no download counted or logged.
    assert _previews(pay, token, order_id).status_code == 200
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from app.downloads where user_id = %s", (user_id,)).fetchone()[0] == 0


def test_previews_are_refused_to_others_after_the_window_and_after_a_refund(stack):
    api_url, pay, db_url = stack
    token, user_id, order_id, _ = _fan_with_ten_pulls(api_url, pay, db_url)
    other_token, _, _, _ = _fan_with_ten_pulls(api_url, pay, db_url)
    r = _previews(pay, other_token, order_id)
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found")
    r = _previews(pay, None, order_id)
    assert (r.status_code, r.json()["code"]) == (401, "not_authenticated")
    r = _previews(pay, token, "not-a-uuid")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_order_id")
    # A refund revokes the order's rewards: nothing is left to preview.
    run = CliRunner().invoke(main, ["pay", order_id, "--outcome", "refunded", "--url", pay.payments_url,
                                    "--api-url", api_url])
    assert run.exit_code == 0, run.output
    for _ in range(100):  # the provider's refund event arrives from the fake's thread
        r = _previews(pay, token, order_id)
        if r.status_code == 200 and not r.json()["previews"]:
            break
        time.sleep(0.05)
    assert (r.status_code, r.json()["previews"]) == (200, [])
    # Fifteen minutes after fulfilment the window is closed (the reward box remains).
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update app.orders set fulfilled_at = now() - interval '15 minutes' where id = %s", (order_id,))
    r = _previews(pay, token, order_id)
    assert (r.status_code, r.json()["code"]) == (409, "preview_window_closed")
