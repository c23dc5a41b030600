"""Sign-in limits live in the database: the per-address lockout holds across API processes and
restarts, keys are bounded, and one client trying one password on many addresses is slowed (429
`over_request_rate_limit`, as Supabase Auth's per-IP limit answers)."""

from __future__ import annotations

import uuid

import httpx
import psycopg

from koepon.localstack.api.testing import running_api
from koepon.settings import ANON_KEY


def _password(api: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{api}/auth/v1/token", params={"grant_type": "password"},
                      json={"email": email, "password": password}, headers={"apikey": ANON_KEY}, timeout=30)


def _sign_up(api: str, email: str, password: str) -> None:
    r = httpx.post(f"{api}/auth/v1/signup", json={"email": email, "password": password},
                   headers={"apikey": ANON_KEY}, timeout=30)
    assert r.status_code == 200, r.text


def test_the_lockout_is_shared_by_every_worker_and_survives_a_restart(db_url):
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    with running_api(db_url) as first, running_api(db_url) as second:
        _sign_up(first, email, "the-right-password")
        # Five wrong guesses spread over two workers.
        answers = [_password(api, email, f"guess-{i}") for i, api in enumerate([first, second] * 2 + [second])]
        assert [r.json()["error_code"] for r in answers] == ["invalid_credentials"] * 5
        for api in (first, second):
            r = _password(api, email, "the-right-password")
            assert (r.status_code, r.json()["error_code"]) == (429, "over_request_rate_limit")
    # A new process: still locked.
    with running_api(db_url) as restarted:
        r = _password(restarted, email, "the-right-password")
        assert (r.status_code, r.json()["error_code"]) == (429, "over_request_rate_limit")


def test_one_password_on_many_addresses_is_limited_per_client(fresh_db_url):
    with running_api(fresh_db_url, sign_in_sign_ups=30) as api:
        answers = [_password(api, f"target-{i}-{uuid.uuid4().hex[:6]}@example.com", "Password123!")
                   for i in range(30)]
        assert {(r.status_code, r.json()["error_code"]) for r in answers} == {(400, "invalid_credentials")}
        r = _password(api, f"target-x-{uuid.uuid4().hex[:6]}@example.com", "Password123!")
        assert (r.status_code, r.json()) == (429, {"code": 429, "error_code": "over_request_rate_limit",
                                                   "msg": "Request rate limit reached"})
        # Sign-ups share the bucket, as in Supabase Auth.
        r = httpx.post(f"{api}/auth/v1/signup", json={"email": f"n-{uuid.uuid4().hex[:6]}@example.com",
                                                      "password": "long-enough-pw"}, headers={"apikey": ANON_KEY})
        assert (r.status_code, r.json()["error_code"]) == (429, "over_request_rate_limit")


def test_lockout_keys_are_bounded_whatever_the_address(db_url):
    long_address = "a" * 200_000 + "@example.com"
    with running_api(db_url) as api:
        r = _password(api, long_address, "guess")
        assert (r.status_code, r.json()["error_code"]) == (400, "invalid_credentials")
    with psycopg.connect(db_url) as conn:
        longest, raw = conn.execute(
            "select max(char_length(key)), bool_or(key like '%%aaaa%%') from auth.koepon_auth_limit_hits").fetchone()
    assert longest <= 80 and raw is False
