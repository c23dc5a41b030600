"""Shared set-up for the PostgREST conformance suites (tests/api/test_conformance_*.py).

Each suite runs the local API over a seeded database plus PostgREST's own spec fixture
(tests/api/sql/embed_fixture.sql), with `v2` exposed as a second schema, and states PostgREST's
answers as its test suite (test/spec/Feature/Query/*.hs) or its documentation gives them.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
import psycopg
from psycopg import sql

from koepon.settings import ANON_KEY, JWT_SECRET

FIXTURE = Path(__file__).with_name("sql") / "embed_fixture.sql"
FAN_A = uuid.UUID("aaaaaaaa-0000-4000-8000-0000000000aa")
FAN_B = uuid.UUID("bbbbbbbb-0000-4000-8000-0000000000bb")
GACHA = "00000000-0000-4000-d000-000000000001"
VTUBER = "00000000-0000-4000-b000-000000000001"
ANON = {"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}


def token(uid: uuid.UUID) -> dict[str, str]:
    now = int(time.time())
    tok = jwt.encode({"sub": str(uid), "role": "authenticated", "aud": "authenticated",
                      "iat": now, "exp": now + 600}, JWT_SECRET, algorithm="HS256")
    return {"apikey": ANON_KEY, "Authorization": f"Bearer {tok}"}


def install(db_url: str) -> None:
    """The fixture, two fans with one order each, and `public, v2` exposed."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FIXTURE.read_text())
        for n, uid in enumerate((FAN_A, FAN_B)):
            conn.execute("select tests.create_user(%s, '{}'::jsonb, %s)", (f"{uid}@example.com", uid))
            conn.execute("insert into app.orders (user_id, gacha_id, vtuber_id, pull_count, amount_jpy, "
                         "medals, idempotency_key, expires_at) values (%s, %s, %s, 1, 300, 10, %s, "
                         "now() + interval '1 hour')", (uid, GACHA, VTUBER, f"conformance-{n}"))
        conn.execute(sql.SQL("alter role authenticator in database {} set pgrst.db_schemas = 'public, v2'")
                     .format(sql.Identifier(conn.info.dbname)))


def get(api, path, **kw):
    r = api.get(path, **kw)
    return r.status_code, r.json()
