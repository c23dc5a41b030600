"""Fuzzing the e-mail flows and the admin API: every body (wrong types, NULs, huge values) gets
GoTrue's 4xx answer `{code, error_code, msg}` or a 2xx, never a 500.

KOEPON_FUZZ_AUTH_EXAMPLES (default 40) sets the hypothesis examples per endpoint."""

from __future__ import annotations

import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY

EXAMPLES = int(os.environ.get("KOEPON_FUZZ_AUTH_EXAMPLES", "40"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=200),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=15), inner, max_size=3),
    max_leaves=10)
fields = ("email", "token", "token_hash", "type", "redirect_to", "code_challenge", "code_challenge_method",
          "create_user", "data", "options", "auth_code", "code_verifier", "password", "new_email",
          "email_confirm", "user_metadata", "app_metadata", "ban_duration", "should_soft_delete", "nonce")
bodies = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    f: json_values | st.emails() | st.sampled_from(["signup", "email", "recovery", "magiclink", "invite",
                                                    "email_change", "email_change_new", "s256", "plain", "24h",
                                                    "none", "-1h", "x\x00y", "123456"]) for f in fields}))
ENDPOINTS = [("POST", "/verify", False), ("POST", "/recover", False), ("POST", "/otp", False),
             ("POST", "/magiclink", False), ("POST", "/resend", False), ("POST", "/token?grant_type=pkce", False),
             ("POST", "/admin/users", True), ("POST", "/admin/generate_link", True), ("POST", "/invite", True),
             ("PUT", "/admin/users/00000000-0000-4000-a000-000000000001", True)]


def _assert_gotrue_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert body["code"] == r.status_code and isinstance(body["error_code"], str) and body["msg"], body


@pytest.mark.parametrize(("method", "path", "service"), ENDPOINTS)
def test_flow_bodies_never_500(api, method, path, service):
    key = SERVICE_ROLE_KEY if service else ANON_KEY
    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"{api}/auth/v1", headers=headers, timeout=30) as client:
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies)
        def run(body):
            if path.startswith("/admin/users/") and isinstance(body, dict):
                body.pop("password", None)  # keep the seeded admin's password
                body.pop("ban_duration", None)  # and keep them unbanned
            _assert_gotrue_answer(client.request(method, path, json=body))

        run()


def test_pkce_grant_with_a_nul_is_refused(api):
    # Found by the fuzzer: a NUL in auth_code reached PostgreSQL (500).
    r = httpx.post(f"{api}/auth/v1/token?grant_type=pkce", headers={"apikey": ANON_KEY},
                   json={"auth_code": "a\x00b", "code_verifier": "v"})
    assert (r.status_code, r.json()["error_code"]) == (400, "validation_failed")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["token", "type", "redirect_to"]), st.text(max_size=100), max_size=3))
def test_verify_links_never_500(api, params):
    r = httpx.get(f"{api}/auth/v1/verify", params=params, headers={"apikey": ANON_KEY}, follow_redirects=False)
    assert r.status_code in (303, 400), (r.status_code, r.text)
    if r.status_code == 303:
        assert r.headers["location"].startswith("http://127.0.0.1:3000")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(page=st.text(max_size=25), per_page=st.text(max_size=25))
def test_admin_pagination_never_500(api, page, per_page):
    h = {"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"}
    _assert_gotrue_answer(httpx.get(f"{api}/auth/v1/admin/users", params={"page": page, "per_page": per_page},
                                    headers=h))


@pytest.mark.parametrize("address", ["ñandú@example.com", "fan@exa_mple.com", "fan@-example.com", "a b@example.com"])
def test_an_address_outside_gotrue_format_is_refused_before_any_mail(api, address):
    """GoTrue checks an address with checkmail's format before mailing it; a non-ASCII local part
    would otherwise reach SMTP, which cannot carry it, and answer 500."""
    headers = {"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}
    r = httpx.post(f"{api}/auth/v1/magiclink", json={"email": address}, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "validation_failed"
