"""Economy edges through the local API and the real `supabase` client: a download authorisation
gives the fan no Storage read (the payment service signs), and the pre-request hook answers HTTP
429 over a limit."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY
from supabase import create_client

FAN = ("fan@koepon.local", "koepon-fan-pass")
GACHA = "00000000-0000-4000-d000-000000000001"  # the seed's on-sale gacha


@pytest.fixture(scope="module")
def reward(seeded_db_url, api_url):
    """A reward of the seed fan from a paid order, with bytes in Storage."""
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        fan = str(conn.execute("select id from auth.users where email = %s", (FAN[0],)).fetchone()[0])
        order = conn.execute(
            """select (private.fulfill_order(
                 (private.create_order(%s, %s, 1, %s, now(), extensions.gen_random_bytes(32), 'cs')
                  ->> 'order_id')::uuid,
                 'stripe', %s, 300, 'JPY', now(), extensions.gen_random_bytes(32), 'cs') ->> 'order_id')""",
            (fan, GACHA, f"edges-{uuid.uuid4().hex}", f"pi_{uuid.uuid4().hex}")).fetchone()[0]
        rid, bucket, path = conn.execute(
            "select r.id, r.content_bucket, r.content_path from app.user_rewards r "
            "join app.pulls p on p.id = r.pull_id where p.order_id = %s", (order,)).fetchone()
        other = str(conn.execute("select tests.create_user(%s)", (f"other-{uuid.uuid4().hex[:6]}@t",)).fetchone()[0])
        other_email = conn.execute("select email from auth.users where id = %s", (other,)).fetchone()[0]
    svc = create_client(api_url, SERVICE_ROLE_KEY)
    # The rewards bucket takes images, audio and video only (its allowed_mime_types).
    svc.storage.from_(bucket).upload(path, b"the reward bytes", {"upsert": "true", "content-type": "audio/mpeg"})
    return {"id": str(rid), "bucket": bucket, "path": path, "other_email": other_email}


def _signed_in(api_url, email, password):
    sb = create_client(api_url, ANON_KEY)
    sb.auth.sign_in_with_password({"email": email, "password": password})
    return sb


def test_a_fan_never_signs_a_reward_object_even_after_an_authorised_download(api_url, reward):
    fan = _signed_in(api_url, *FAN)
    store = fan.storage.from_(reward["bucket"])
    res = fan.rpc("request_download", {"p_user_reward_id": reward["id"]}).execute().data
    assert (res["bucket"], res["path"], res["remaining_today"]) == (reward["bucket"], reward["path"], 2)
    # Signing is the payment service's job (service role, one minute): see docs/api-economy-edges.md.
    with pytest.raises(Exception, match="(?i)not.found"):
        store.create_signed_url(reward["path"], 60)
    # another fan, same object: refused, and their own request is "not found"
    other = _signed_in(api_url, reward["other_email"], "password123")
    with pytest.raises(Exception, match="(?i)not.found"):
        other.storage.from_(reward["bucket"]).create_signed_url(reward["path"], 60)
    with pytest.raises(APIError) as err:
        other.rpc("request_download", {"p_user_reward_id": reward["id"]}).execute()
    assert (err.value.code, err.value.message) == ("PT404", "reward_not_found")


def test_create_order_is_limited_to_five_a_minute_over_http(api_url, seeded_db_url, reward):
    fan = _signed_in(api_url, *FAN)
    balances = fan.rpc("get_medal_balances", {}).execute().data
    assert balances, "the seed fan holds medals (the reward fixture paid an order)"
    for _ in range(5):
        fan.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 1,
                                 "p_idempotency_key": uuid.uuid4().hex}).execute()
    with pytest.raises(APIError) as err:
        fan.rpc("create_order", {"p_gacha_id": GACHA, "p_pull_count": 1,
                                 "p_idempotency_key": uuid.uuid4().hex}).execute()
    assert (err.value.code, err.value.message) == ("PT429", "rate_limited")
    r = httpx.post(f"{api_url}/rest/v1/rpc/create_order",
                   headers={"apikey": ANON_KEY, "Authorization": f"Bearer {fan.auth.get_session().access_token}"},
                   json={"p_gacha_id": GACHA, "p_pull_count": 1, "p_idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 429 and r.json()["message"] == "rate_limited"
    # Only the create_order bucket is exhausted: the fan's other calls still answer, the same as before.
    assert fan.rpc("get_medal_balances", {}).execute().data == balances
    # The payment service (service_role) is never limited: with every rule at 1 a minute, 30 calls
    # in a row all answer and count nothing.
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        rules = conn.execute("select bucket, per_minute from app.rate_limit_rules").fetchall()
        hits = conn.execute("select count(*) from app.rate_limit_hits").fetchone()[0]
        conn.execute("update app.rate_limit_rules set per_minute = 1")
    try:
        svc = create_client(api_url, SERVICE_ROLE_KEY)
        answers = [svc.rpc("service_sweep_rate_limits", {}).execute().data for _ in range(30)]
        assert len(answers) == 30 and all(isinstance(a["deleted"], int) for a in answers)
    finally:
        with psycopg.connect(seeded_db_url, autocommit=True) as conn:
            for bucket, per_minute in rules:
                conn.execute("update app.rate_limit_rules set per_minute = %s where bucket = %s", (per_minute, bucket))
    with psycopg.connect(seeded_db_url) as conn:
        assert conn.execute("select count(*) from app.rate_limit_hits").fetchone()[0] <= hits
