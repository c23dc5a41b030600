"""Sessions end when they should: sign-out (global, local, others), a password change elsewhere, a
ban (auth.users.banned_until), and a suspended fan cannot start paying at the payment service."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes.serve import running_payments
from koepon.settings import ANON_KEY

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: on sale
PASSWORD = "long-enough-pw"


@pytest.fixture(scope="module")
def stack(seeded_db_url):
    with running_api(seeded_db_url) as api_url, running_payments(api_url) as pay:
        yield api_url, pay, seeded_db_url


def _h(token=None):
    return {"apikey": ANON_KEY, "Authorization": f"Bearer {token or ANON_KEY}"}


def _sign_up(api_url):
    email = f"s-{uuid.uuid4().hex[:10]}@example.com"
    r = httpx.post(f"{api_url}/auth/v1/signup", json={"email": email, "password": PASSWORD}, headers=_h())
    assert r.status_code == 200, r.text
    return email, r.json()


def _sign_in(api_url, email, password=PASSWORD):
    return httpx.post(f"{api_url}/auth/v1/token?grant_type=password", json={"email": email, "password": password},
                      headers=_h())


def _refresh(api_url, refresh_token):
    return httpx.post(f"{api_url}/auth/v1/token?grant_type=refresh_token", json={"refresh_token": refresh_token},
                      headers=_h())


def _user(api_url, token):
    return httpx.get(f"{api_url}/auth/v1/user", headers=_h(token))


def _logout(api_url, token, scope=None):
    q = f"?scope={scope}" if scope else ""
    return httpx.post(f"{api_url}/auth/v1/logout{q}", headers=_h(token))


def _err(r):
    return r.status_code, r.json().get("error_code")


def test_a_signed_out_token_no_longer_reads_the_user(stack):
    api_url, _, _ = stack
    _, s = _sign_up(api_url)
    assert _user(api_url, s["access_token"]).status_code == 200
    assert _logout(api_url, s["access_token"]).status_code == 204  # GoTrue's default scope: global
    r = _user(api_url, s["access_token"])
    assert _err(r) == (403, "session_not_found")
    assert r.json()["msg"] == "Session from session_id claim in JWT does not exist"
    assert _err(_refresh(api_url, s["refresh_token"])) == (400, "refresh_token_not_found")


def test_logout_scopes_others_and_local(stack):
    api_url, _, _ = stack
    email, a = _sign_up(api_url)
    b, c = _sign_in(api_url, email).json(), _sign_in(api_url, email).json()
    # others: every session but the caller's ends.
    assert _logout(api_url, a["access_token"], "others").status_code == 204
    assert _user(api_url, a["access_token"]).status_code == 200
    assert _err(_user(api_url, b["access_token"])) == (403, "session_not_found")
    assert _err(_user(api_url, c["access_token"])) == (403, "session_not_found")
    a2 = _refresh(api_url, a["refresh_token"])
    assert a2.status_code == 200
    assert _err(_refresh(api_url, b["refresh_token"])) == (400, "refresh_token_not_found")
    # local: only the caller's ends.
    d = _sign_in(api_url, email).json()
    assert _logout(api_url, a2.json()["access_token"], "local").status_code == 204
    assert _err(_user(api_url, a2.json()["access_token"])) == (403, "session_not_found")
    assert _user(api_url, d["access_token"]).status_code == 200
    assert _err(_logout(api_url, d["access_token"], "everywhere")) == (400, "validation_failed")


def test_a_password_change_ends_the_other_sessions(stack):
    api_url, _, _ = stack
    email, a = _sign_up(api_url)
    thief = _sign_in(api_url, email).json()
    r = httpx.put(f"{api_url}/auth/v1/user", json={"password": "a-brand-new-password"}, headers=_h(a["access_token"]))
    assert r.status_code == 200, r.text
    assert _err(_refresh(api_url, thief["refresh_token"])) == (400, "refresh_token_not_found")
    assert _err(_user(api_url, thief["access_token"])) == (403, "session_not_found")
    # The session that changed it goes on.
    assert _user(api_url, a["access_token"]).status_code == 200
    assert _refresh(api_url, a["refresh_token"]).status_code == 200
    assert _sign_in(api_url, email, "a-brand-new-password").status_code == 200


def test_a_banned_user_cannot_sign_in_refresh_or_read_the_user(stack):
    api_url, _, db_url = stack
    email, s = _sign_up(api_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update auth.users set banned_until = now() + interval '1 day' where email = %s", (email,))
    r = _sign_in(api_url, email)
    assert _err(r) == (400, "user_banned") and r.json()["msg"] == "User is banned"
    r = _refresh(api_url, s["refresh_token"])
    assert _err(r) == (400, "user_banned") and r.json()["msg"] == "Invalid Refresh Token: User Banned"
    assert _err(_user(api_url, s["access_token"])) == (403, "user_banned")
    # A ban in the past is no ban.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update auth.users set banned_until = now() - interval '1 second' where email = %s", (email,))
    assert _sign_in(api_url, email).status_code == 200
    assert _user(api_url, s["access_token"]).status_code == 200


def test_a_suspended_fan_cannot_start_paying_for_an_order_made_before(stack):
    api_url, pay, db_url = stack
    _, s = _sign_up(api_url)
    rest = {**_h(s["access_token"]), "Content-Type": "application/json"}
    assert httpx.post(f"{api_url}/rest/v1/rpc/update_my_profile",
                      json={"p_display_name": "Payer", "p_birth_date": "1990-01-01"}, headers=rest).status_code == 200
    order = httpx.post(f"{api_url}/rest/v1/rpc/create_order", json={
        "p_gacha_id": GACHA, "p_pull_count": 1, "p_idempotency_key": uuid.uuid4().hex}, headers=rest).json()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update app.profiles set status = 'suspended' where user_id = %s", (s["user"]["id"],))
    auth = {"Authorization": f"Bearer {s['access_token']}"}
    r = httpx.post(f"{pay.payments_url}/payments/stripe/payment-intents", json={"order_id": order["order_id"]},
                   headers=auth)
    assert (r.status_code, r.json()["code"]) == (403, "account_suspended")
    r = httpx.post(f"{pay.payments_url}/payments/komoju/sessions",
                   json={"order_id": order["order_id"], "return_url": "https://koepon.example/r"}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (403, "account_suspended")
    seen = [q for q in httpx.get(pay.fake_url + "/_requests").json()
            if q["params"].get("metadata", {}).get("order_id") == order["order_id"]]
    assert seen == []
