"""Payments fixtures: a gacha made with the economy test fixture (installed in every test database),
and calling the inbox as service_role."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from koepon.localstack.api.testing import running_api
from koepon.localstack.fakes.serve import running_payments

ITEMS = [{"name": "n", "rarity": "N", "rate_ppm": 700000}, {"name": "r", "rarity": "R", "rate_ppm": 300000}]


class Shop:
    """A published gacha (10-pull = ¥1000, 10 medals a pull) and helpers to order and to deliver events."""

    def __init__(self, url: str):
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            self.vtuber = str(conn.execute("select econ_test.vtuber(%s)",
                                           (f"v-{uuid.uuid4().hex[:8]}@example.com",)).fetchone()[0])
            self.gacha = str(conn.execute("select econ_test.gacha(%s, %s)",
                                          (self.vtuber, json.dumps(ITEMS))).fetchone()[0])

    def fan(self) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return str(conn.execute("select econ_test.fan(%s)",
                                    (f"f-{uuid.uuid4().hex[:8]}@example.com",)).fetchone()[0])

    def order(self, user: str | None = None, pulls: int = 10) -> tuple[str, str, int]:
        """(user id, order id, amount)."""
        user = user or self.fan()
        with psycopg.connect(self.url) as conn:
            _act(conn, user, "authenticated")
            o = conn.execute("select public.create_order(%s, %s, %s)",
                             (self.gacha, pulls, uuid.uuid4().hex)).fetchone()[0]
            conn.commit()
        return user, o["order_id"], o["amount_jpy"]

    def service(self, sql: str, params: tuple = ()):
        with psycopg.connect(self.url) as conn:
            _act(conn, None, "service_role")
            row = conn.execute(sql, params).fetchone()
            conn.commit()
            return row[0] if row else None

    def deliver(self, provider: str, event: dict) -> dict:
        return self.service("select public.service_record_payment_event(%s, %s, %s, %s)",
                            (provider, event["id"], event["type"], json.dumps(event)))

    def row(self, sql: str, params: tuple = ()):
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchone()


def _act(conn, user_id, role):
    claims = {"role": role} if user_id is None else {"sub": user_id, "role": role, "aud": "authenticated"}
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                 (json.dumps(claims), role))


@pytest.fixture(scope="module")
def shop(db_url) -> Shop:
    return Shop(db_url)


@pytest.fixture(scope="module", params=["direct", "api"])
def stack(request, seeded_db_url):
    """The local API and the payment service (with its fake providers) on free ports, per module:
    (api url, payments, database url). Every test using it runs on both of the payment service's
    transports: PostgreSQL directly (PAYMENTS_DATABASE_URL, what `koepon up` configures) and the
    Supabase API (without it)."""
    direct = seeded_db_url if request.param == "direct" else None
    with running_api(seeded_db_url) as api_url, running_payments(api_url, db_url=direct) as pay:
        yield api_url, pay, seeded_db_url
