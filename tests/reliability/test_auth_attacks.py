"""Authentication attacks through the local API: forged, stale and confused tokens, privilege
claims a fan cannot sign, refresh-token reuse after rotation, brute force against the lockout.

Each forged token is tried on a read (get_my_profile) and on the most valuable write there is
(service_fulfill_order on a real pending order): both must be refused with 401 and a PGRST30x
code, and the order must stay pending with no pull, no medal and no reward.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import httpx
import psycopg
import pytest
from reliability_support import (
    ADMIN,
    FAN,
    HOSHI_GACHA,
    Client,
    anon,
    b64url,
    raise_rate_limits,
    raw_token,
    sign_in,
    sign_up,
    token,
    user_claims,
)

from koepon.settings import ANON_KEY, JWT_SECRET

WRONG_KEY = "not-the-project-secret-but-long-enough-to-look-real"


@pytest.fixture(scope="module")
def api(api_url, seeded_db_url):
    raise_rate_limits(seeded_db_url)
    return api_url


@pytest.fixture(scope="module")
def fan(api) -> Client:
    return sign_in(api, FAN)


@pytest.fixture(scope="module")
def pending_order(fan, seeded_db_url) -> str:
    r = fan.rpc("create_order", {"p_gacha_id": HOSHI_GACHA, "p_pull_count": 1, "p_idempotency_key": "auth-attack"})
    assert r.status_code == 200, r.text
    return r.json()["order_id"]


def _hs(alg_name: str, digest, header_claims: tuple[dict, dict], key: str = JWT_SECRET) -> str:
    header, claims = header_claims
    head = b64url(__import__("json").dumps({**header, "alg": alg_name}).encode())
    body = b64url(__import__("json").dumps(claims).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64url(sig)}"


def forgeries(fan_token: str) -> dict[str, str]:
    fan_uid = FAN[2]
    admin_uid = ADMIN[2]
    service = {"role": "service_role", "iss": "supabase-demo", "exp": int(time.time()) + 3600}
    fan_c = user_claims(fan_uid)
    head, payload, sig = fan_token.split(".")
    import json

    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = b64url(json.dumps({**claims, "role": "service_role"}).encode())
    return {
        "expired": token(user_claims(fan_uid, ttl=-3600)),
        "not_yet_valid": token({**fan_c, "nbf": int(time.time()) + 3600}),
        "issued_in_the_future": token({**fan_c, "iat": int(time.time()) + 3600}),
        "alg_none_service_role": raw_token({"alg": "none", "typ": "JWT"}, service),
        "alg_None_service_role": raw_token({"alg": "None", "typ": "JWT"}, service),
        "alg_NONE_with_signature": raw_token({"alg": "NONE", "typ": "JWT"}, service, b"x" * 32),
        "alg_none_fan": raw_token({"alg": "none"}, fan_c),
        "hs512_confusion": token(service, alg="HS512"),
        "hs384_confusion": token(service, alg="HS384"),
        "rs256_header_hmac_signature": _hs("RS256", hashlib.sha256, ({"typ": "JWT"}, service)),
        "es256_header_hmac_signature": _hs("ES256", hashlib.sha256, ({"typ": "JWT"}, service)),
        "wrong_key_service_role": token(service, key=WRONG_KEY),
        "wrong_key_fan": token(fan_c, key=WRONG_KEY),
        "empty_key_service_role": _hs("HS256", hashlib.sha256, ({"typ": "JWT"}, service), key=""),
        "kid_injection": token(service, key=WRONG_KEY, headers={"kid": "../../../../dev/null"}),
        "fan_as_service_role_wrong_key": token({**fan_c, "role": "service_role"}, key=WRONG_KEY),
        "fan_admin_claims_wrong_key": token({**fan_c, "app_metadata": {"role": "admin", "roles": ["admin"]},
                                             "user_role": "admin", "is_admin": True}, key=WRONG_KEY),
        "admin_sub_wrong_key": token(user_claims(admin_uid), key=WRONG_KEY),
        "fan_token_payload_edited_to_service_role": f"{head}.{tampered}.{sig}",
        "fan_token_signature_stripped": f"{head}.{payload}.",
        "truncated": fan_token[:-5],
        "two_tokens": f"{fan_token} {token(service, key=WRONG_KEY)}",
    }


def _pristine(db_url: str, order_id: str) -> tuple:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(
            "select o.status, (select count(*) from app.pulls p where p.order_id = o.id), "
            "(select count(*) from app.medal_ledger l where l.order_id = o.id), "
            "(select count(*) from app.user_rewards r join app.pulls p on p.id = r.pull_id where p.order_id = o.id) "
            "from app.orders o where o.id = %s", (order_id,)).fetchone()


def test_forged_and_stale_tokens_are_refused_and_change_nothing(api, fan, pending_order, seeded_db_url):
    before = _pristine(seeded_db_url, pending_order)
    assert before == ("pending", 0, 0, 0)
    accepted = {}
    for name, forged in forgeries(fan.token).items():
        c = Client(api, forged, name)
        for fn, args in (("get_my_profile", {}),
                         ("service_fulfill_order", {"p_order_id": pending_order, "p_provider": "stripe",
                                                    "p_provider_payment_id": f"pi_{name}", "p_amount": 300,
                                                    "p_currency": "JPY"}),
                         ("list_vtuber_applications", {"p_status": "pending"})):
            r = c.rpc(fn, args)
            if r.status_code != 401 or not r.json().get("code", "").startswith("PGRST30"):
                accepted[(name, fn)] = (r.status_code, r.text[:200])
        r = c.get("gachas")
        if r.status_code != 401:
            accepted[(name, "GET /gachas")] = (r.status_code, r.text[:200])
        # /auth/v1/user must not answer for a forged token either.
        r = c.request("GET", "/auth/v1/user")
        if r.status_code != 401:
            accepted[(name, "/auth/v1/user")] = (r.status_code, r.text[:200])
        c.close()
    assert accepted == {}
    assert _pristine(seeded_db_url, pending_order) == before


def test_the_real_service_key_is_what_it_takes(api, fan, pending_order, seeded_db_url):
    """Control: the same call with the genuine service key is accepted, so the refusals above are
    the signature checks at work (not a broken call)."""
    r = Client(api, __import__("koepon.settings", fromlist=["x"]).SERVICE_ROLE_KEY).rpc(
        "service_prepare_payment", {"p_order_id": pending_order})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending"


def test_user_controlled_metadata_never_grants_privilege(api):
    """A fan may write user_metadata (PUT /auth/v1/user data): it lands in the next access
    token, correctly signed. Neither it nor app_metadata/role fields in the body grant anything."""
    c = sign_up(api, name="escalator")
    r = c.request("PUT", "/auth/v1/user", json={
        "data": {"role": "admin", "is_admin": True, "roles": ["admin", "vtuber"], "user_role": "service_role"},
        "app_metadata": {"role": "admin"}, "role": "service_role"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "authenticated" and r.json()["app_metadata"].get("role") is None
    r = httpx.post(f"{api}/auth/v1/token", params={"grant_type": "refresh_token"},
                   json={"refresh_token": c.refresh_token}, headers={"apikey": ANON_KEY})
    assert r.status_code == 200, r.text
    c.token = r.json()["access_token"]
    import jwt

    claims = jwt.decode(c.token, JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["role"] == "authenticated" and claims["user_metadata"]["role"] == "admin"
    r = c.rpc("list_vtuber_applications", {"p_status": "pending"})
    assert (r.status_code, r.json()["message"]) == (403, "admin_only"), r.text
    r = c.rpc("admin_grant_role", {"p_user_id": c.uid, "p_role": "admin", "p_reason": "me"})
    assert (r.status_code, r.json()["message"]) == (403, "admin_only"), r.text
    r = c.rpc("service_fail_order", {"p_order_id": str(uuid.uuid4()), "p_status": "failed"})
    assert r.status_code == 403 and r.json()["code"] == "42501", r.text
    r = c.rpc("create_gacha", {"p_title": "mine", "p_start_at": "2030-01-01T00:00:00Z",
                               "p_end_at": "2030-02-01T00:00:00Z", "p_description": "x", "p_price_single": 100,
                               "p_price_ten": 1000, "p_medals_per_pull": 10, "p_ten_pull_bonus_medals": 0,
                               "p_total_pull_cap": None, "p_pity_pulls": None, "p_pity_rarity": None})
    assert r.status_code in (400, 403) and r.json()["message"] in ("not_a_vtuber", "invalid_argument"), r.text


def _refresh(api: str, rt: str) -> httpx.Response:
    return httpx.post(f"{api}/auth/v1/token", params={"grant_type": "refresh_token"},
                      json={"refresh_token": rt}, headers={"apikey": ANON_KEY})


def test_refresh_token_reuse_after_rotation_revokes_the_session(api, seeded_db_url):
    c = sign_up(api, name="rotator", birth_date=None)
    r1 = c.refresh_token
    first = _refresh(api, r1)
    assert first.status_code == 200
    r2 = first.json()["refresh_token"]
    assert r2 != r1
    # Within the reuse interval a concurrent client gets the SAME child, never a new branch.
    again = _refresh(api, r1)
    assert again.status_code == 200 and again.json()["refresh_token"] == r2
    # Later, the spent token is a stolen one: refused, and the whole session ends.
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("update auth.refresh_tokens set updated_at = now() - interval '5 minutes' where token = %s",
                     (r1,))
    stolen = _refresh(api, r1)
    assert stolen.status_code == 400 and stolen.json()["error_code"] == "refresh_token_already_used", stolen.text
    legit = _refresh(api, r2)
    assert legit.status_code == 400, legit.text
    assert legit.json()["error_code"] in ("refresh_token_not_found", "refresh_token_already_used", "session_not_found")
    # Random and empty refresh tokens
    for bad in ("x" * 24, "", "' or 1=1 --", r1 + "a"):
        r = _refresh(api, bad)
        assert r.status_code == 400, (bad, r.text)


def _password(api: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{api}/auth/v1/token", params={"grant_type": "password"},
                      json={"email": email, "password": password}, headers={"apikey": ANON_KEY})


def test_brute_force_hits_the_lockout(api):
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(api, email=email, password="the-right-password", birth_date=None)
    guesses = [f"guess-{i:04d}" for i in range(5)]
    for g in guesses:
        r = _password(api, email, g)
        assert (r.status_code, r.json()["error_code"]) == (400, "invalid_credentials"), r.text
    # Locked: even the right password is refused now, and case/space variants of the address
    # are the same account.
    for variant in (email, email.upper(), f"  {email}  "):
        r = _password(api, variant, "the-right-password")
        assert r.status_code == 429, (variant, r.text)
        assert r.json()["error_code"] == "over_request_rate_limit"
    # Further guesses while locked are refused without checking the password.
    for i in range(20):
        assert _password(api, email, f"more-{i}").status_code == 429
    # The lockout is per account: another user still signs in.
    assert _password(api, FAN[0], FAN[1]).status_code == 200


def test_unknown_and_known_addresses_fail_alike(api):
    """No account enumeration through the error: same status and body for an unknown address."""
    email = f"known-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(api, email=email, password="the-right-password", birth_date=None)
    known = _password(api, email, "wrong-password")
    unknown = _password(api, f"nobody-{uuid.uuid4().hex[:8]}@example.com", "wrong-password")
    assert known.status_code == unknown.status_code == 400
    assert known.json() == unknown.json()


def test_sign_in_timing_does_not_reveal_registered_addresses(api):
    known_emails = []
    for _ in range(5):
        email = f"timing-{uuid.uuid4().hex[:8]}@example.com"
        sign_up(api, email=email, password="the-right-password", birth_date=None)
        known_emails.append(email)

    def timed(email: str) -> float:
        t = time.perf_counter()
        r = _password(api, email, "wrong-password")
        assert r.status_code == 400
        return time.perf_counter() - t

    # Interleaved, two rounds, so both kinds see the same load; the fastest answers compare.
    known_times, unknown_times = [], []
    for _ in range(2):
        for e in known_emails:
            known_times.append(timed(e))
            unknown_times.append(timed(f"ghost-{uuid.uuid4().hex[:8]}@example.com"))
    known, unknown = min(known_times), min(unknown_times)
    # Known addresses run bcrypt (cost 10, tens of ms); the fastest answers must stay alike, both ways.
    assert known < unknown * 1.5 + 0.005, f"known {known * 1000:.1f} ms vs unknown {unknown * 1000:.1f} ms"
    assert unknown < known * 1.5 + 0.005, f"unknown {unknown * 1000:.1f} ms vs known {known * 1000:.1f} ms"
    assert known > 0.01, f"known {known * 1000:.1f} ms: no bcrypt comparison at all?"

    # The lockout does not tell them apart either: five failures lock a made-up address exactly as
    # they lock a registered one (same status and body on the sixth attempt).
    ghost = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
    sixth = {}
    for email in (known_emails[0], ghost):
        for _ in range(5 if email == ghost else 3):  # known_emails[0] has two failures from above
            assert _password(api, email, "wrong-password").status_code == 400
        sixth[email] = _password(api, email, "wrong-password")
    assert [r.status_code for r in sixth.values()] == [429, 429], [r.text for r in sixth.values()]
    assert sixth[known_emails[0]].json() == sixth[ghost].json()


def test_anon_key_is_not_a_user(api):
    """The anon key is a valid token for role anon: it must not reach signed-in RPCs."""
    r = anon(api).rpc("get_my_profile")
    assert r.status_code in (401, 403)
    assert r.json()["message"] in ("not_authenticated",) or r.json()["code"] == "42501", r.text


def test_nul_and_overlong_auth_inputs_are_4xx(api):
    """NUL characters (PostgreSQL text cannot hold them) and passwords over bcrypt's 72 bytes: a
    GoTrue-shaped 4xx from every auth endpoint, never a 500 or a dropped connection."""
    email = f"nul-{uuid.uuid4().hex[:8]}@example.com"
    session = sign_up(api, email=email, password="the-right-password", birth_date=None)
    h = {"apikey": ANON_KEY}
    cases = {
        "signup email": (httpx.post(f"{api}/auth/v1/signup", headers=h,
                                    json={"email": "a\x00b@example.com", "password": "long-enough"}),
                         400, "validation_failed"),
        "signup data": (httpx.post(f"{api}/auth/v1/signup", headers=h,
                                   json={"email": f"d-{uuid.uuid4().hex[:8]}@example.com", "password": "long-enough",
                                         "data": {"display_name": "a\x00"}}), 400, "validation_failed"),
        "signup long password": (httpx.post(f"{api}/auth/v1/signup", headers=h,
                                            json={"email": f"l-{uuid.uuid4().hex[:8]}@example.com",
                                                  "password": "p" * 73}), 400, "validation_failed"),
        "token email": (_password(api, "a\x00b@example.com", "x"), 400, "invalid_credentials"),
        "token password": (_password(api, email, "the-right-password\x00"), 400, "invalid_credentials"),
        "token long password": (_password(api, email, "p" * 200), 400, "invalid_credentials"),
        "refresh token": (httpx.post(f"{api}/auth/v1/token", params={"grant_type": "refresh_token"}, headers=h,
                                     json={"refresh_token": "a\x00b"}), 400, "refresh_token_not_found"),
        "user data": (httpx.put(f"{api}/auth/v1/user", json={"data": {"x": "\x00"}},
                                headers={**h, "Authorization": f"Bearer {session.token}"}), 400, "validation_failed"),
        "user long password": (httpx.put(f"{api}/auth/v1/user", json={"password": "é" * 40},
                                         headers={**h, "Authorization": f"Bearer {session.token}"}),
                               400, "validation_failed"),
    }
    def error_code(r):
        try:
            return r.json().get("error_code")
        except ValueError:
            return None

    wrong = {k: f"{r.status_code} {r.text[:200]}" for k, (r, status, code) in cases.items()
             if (r.status_code, error_code(r)) != (status, code)}
    assert wrong == {}
    # The account still works with its own password.
    assert _password(api, email, "the-right-password").status_code == 200
