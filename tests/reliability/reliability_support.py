"""Shared helpers for the reliability suites: demo logins, tokens, raw HTTP, invariants."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path

import httpx
import jwt
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

# The seed's demo logins and fixed ids, under the names the tests import from here.
from koepon.localstack.seed import *  # noqa: F403
from koepon.settings import ANON_KEY, JWT_SECRET, SERVICE_ROLE_KEY

ROOT = Path(__file__).resolve().parents[2]


def documented_codes() -> set[str]:
    """Every snake_case `message` and every SQLSTATE/PGRST code named in docs/errors.md."""
    text = (ROOT / "docs" / "errors.md").read_text()
    codes = set(re.findall(r"`([a-z][a-z0-9_]+)`", text))
    codes |= set(re.findall(r"\b(PT\d{3}|PGRST\d{3}|PGRST\d{2}x|\d{2}[0-9A-Z]\d{2})\b", text))
    return codes


def raise_rate_limits(db_url: str, per_minute: int = 1_000_000) -> None:
    """The per-minute rate limits would turn a fuzz or attack run into a wall of 429s; the
    suites that are not about rate limits lift them in their own throwaway database."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update app.rate_limit_rules set per_minute = %s", (per_minute,))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join((b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                     b64url(signature)))


def token(claims: dict, key: str = JWT_SECRET, alg: str = "HS256", headers: dict | None = None) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def user_claims(uid: str, role: str = "authenticated", ttl: int = 600, **extra) -> dict:
    now = int(time.time())
    return {"sub": uid, "role": role, "aud": "authenticated", "iat": now, "exp": now + ttl,
            "session_id": str(uuid.uuid4()), **extra}


class Client:
    """A raw HTTP client of the local API as one identity (anon, a signed-in user, service)."""

    def __init__(self, base: str, access_token: str | None = None, name: str = "anon",
                 uid: str | None = None, refresh_token: str | None = None):
        self.base = base
        self.token = access_token
        self.name = name
        self.uid = uid
        self.refresh_token = refresh_token
        self.http = httpx.Client(base_url=base, timeout=30)

    def headers(self) -> dict:
        h = {"apikey": ANON_KEY}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def rpc(self, fn: str, args: dict | None = None) -> httpx.Response:
        return self.http.post(f"/rest/v1/rpc/{fn}", json=args or {}, headers=self.headers())

    def get(self, path: str, **params) -> httpx.Response:
        return self.http.get(f"/rest/v1/{path}", params=params, headers=self.headers())

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {**self.headers(), **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def close(self) -> None:
        self.http.close()


def sign_in(base: str, login: tuple[str, str, str], name: str | None = None) -> Client:
    email, password, uid = login
    r = httpx.post(f"{base}/auth/v1/token", params={"grant_type": "password"},
                   json={"email": email, "password": password}, headers={"apikey": ANON_KEY}, timeout=30)
    r.raise_for_status()
    body = r.json()
    return Client(base, body["access_token"], name or email.split("@")[0], uid, body["refresh_token"])


def sign_up(base: str, email: str | None = None, password: str = "reliability-pass-1",
            birth_date: str | None = "1990-01-01", name: str | None = None) -> Client:
    email = email or f"rel-{uuid.uuid4().hex[:12]}@example.com"
    r = httpx.post(f"{base}/auth/v1/signup", json={"email": email, "password": password},
                   headers={"apikey": ANON_KEY}, timeout=30)
    r.raise_for_status()
    body = r.json()
    c = Client(base, body["access_token"], name or email.split("@")[0], body["user"]["id"], body["refresh_token"])
    if birth_date:
        rr = c.rpc("update_my_profile", {"p_birth_date": birth_date})
        assert rr.status_code == 200, rr.text
    return c


def anon(base: str) -> Client:
    return Client(base, None, "anon")


def service(base: str) -> Client:
    return Client(base, SERVICE_ROLE_KEY, "service_role")


def table_counts(db_url: str, schema: str = "app") -> dict[str, int]:
    """Row counts of every table of a schema, read as `postgres`, which bypasses RLS (for "no partial write")."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'p') order by 1", (schema,))]
        return {n: conn.execute(f'select count(*) from {schema}."{n}"').fetchone()[0] for n in names}


def forged_service_tokens(uid: str = FAN[2]) -> dict[str, str]:  # noqa: F405
    """Tokens that must never be taken for a signed-in user (payment service, API)."""
    wrong = "not-the-project-secret-but-long-enough-to-look-real"
    return {
        "expired": token(user_claims(uid, ttl=-3600)),
        "wrong_key": token(user_claims(uid), key=wrong),
        "alg_none": raw_token({"alg": "none", "typ": "JWT"}, user_claims(uid)),
        "hs512": token(user_claims(uid), alg="HS512"),
        "anon_key": ANON_KEY,
        "service_role_key": SERVICE_ROLE_KEY,
        "no_subject": token({k: v for k, v in user_claims(uid).items() if k != "sub"}),
    }


# Fuzzing with hypothesis: reproducible (derandomized, no example database), no deadline (the
# stack shares two cores), no health check that would fail a slow strategy.
FUZZ_PROFILE = {"deadline": None, "database": None, "derandomize": True,
                "suppress_health_check": list(HealthCheck)}


def fuzz_operation(op, examples: int, counts: dict[str, int], check_case) -> None:
    """Runs `examples` valid and invalid schemathesis examples of one OpenAPI operation, counting
    them under "METHOD /path" in `counts`; check_case(case, label) sends one and records failures."""
    label = f"{op.method.upper()} {op.path}"
    strategy = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         op.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=examples, **FUZZ_PROFILE)
    @given(strategy)
    def run(case):
        counts[label] = counts.get(label, 0) + 1
        check_case(case, label)

    run()
