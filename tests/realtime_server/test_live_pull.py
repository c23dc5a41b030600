"""The live pull end to end: a fan watches their order topic with supabase-js, the order is paid
through a signed Stripe webhook, the ten results arrive in draw order; nobody else gets them.
The launch feed carries rare pulls, anonymous unless the fan opted in; presence counts watchers.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import psycopg
import pytest
from realtime import AsyncRealtimeClient

from koepon.localstack.fakes import events as ev
from koepon.localstack.fakes.serve import running_payments
from koepon.settings import ANON_KEY, STRIPE_WEBHOOK_SECRET
from supabase import create_client

from .conftest import JsClient

GACHA = "00000000-0000-4000-d000-000000000001"  # seed: published, 10 pulls ¥3000
FAN = ("fan@koepon.local", "koepon-fan-pass")


@pytest.fixture(scope="module")
def payments(api_url):
    with running_payments(api_url) as pay:
        yield pay


def _new_fan(api_url: str, name: str = "Second Fan") -> tuple[str, str, str]:
    email, password = f"rt-{uuid.uuid4().hex[:10]}@example.com", "long-enough-pw"
    sb = create_client(api_url, ANON_KEY)
    res = sb.auth.sign_up({"email": email, "password": password})
    sb.rpc("update_my_profile", {"p_display_name": name, "p_birth_date": "1990-01-01"}).execute()
    return email, password, res.user.id


def _order(api_url: str, email: str, password: str, gacha: str = GACHA) -> dict:
    sb = create_client(api_url, ANON_KEY)
    sb.auth.sign_in_with_password({"email": email, "password": password})
    return sb.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": 10,
                                   "p_idempotency_key": uuid.uuid4().hex}).execute().data


def _pay(pay_url: str, order: dict) -> str:
    """Pays the order through a signed Stripe webhook; returns the PaymentIntent id."""
    [event] = ev.stripe_outcome_events(order["order_id"], order["amount_jpy"], "succeeded")
    body = ev.dumps(event)
    r = httpx.post(f"{pay_url}/webhooks/stripe", content=body, headers=ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET),
                   timeout=10)
    assert r.status_code == 200, r.text
    return event["data"]["object"]["id"]


def _signed_in(js, email, password) -> JsClient:
    c = js()
    c.send(op="auth", email=email, password=password)
    assert c.wait(lambda e: e["ev"] == "auth")["ok"]
    return c


def test_the_fan_receives_ten_results_in_draw_order_and_a_second_fan_is_refused(
        js, api_url, seeded_db_url, payments):
    order = _order(api_url, *FAN)
    topic = f"order:{order['order_id']}"
    fan = _signed_in(js, *FAN)
    fan.send(op="channel", name="o", topic=topic, broadcast=["results", "status", "refund"],
             config={"private": True})
    assert fan.status("o")["status"] == "SUBSCRIBED"

    email, password, _ = _new_fan(api_url)
    other = _signed_in(js, email, password)
    other.send(op="channel", name="o", topic=topic, broadcast=["results"], config={"private": True})
    refused = other.status("o")
    assert refused["status"] == "CHANNEL_ERROR"
    assert refused["error"] == f"Unauthorized: You do not have permissions to read from this Channel topic: {topic}"
    # an anonymous client is refused too
    anon = js()
    anon.send(op="channel", name="o", topic=topic, broadcast=["results"], config={"private": True})
    assert anon.status("o")["status"] == "CHANNEL_ERROR"

    _pay(payments.payments_url, order)
    msg = fan.wait(lambda e: e["ev"] == "broadcast" and e["msg"]["event"] == "results", 15)["msg"]
    results = msg["payload"]
    with psycopg.connect(seeded_db_url) as conn:
        drawn = conn.execute("select p.id, p.gacha_item_id::text, p.rarity, p.pity, p.nonce from app.pulls p "
                             "where p.order_id = %s order by p.nonce", (order["order_id"],)).fetchall()
        medals = conn.execute("select medals from app.orders where id = %s", (order["order_id"],)).fetchone()[0]
    assert len(drawn) == 10
    assert [(p["pull_id"], p["item_id"], p["rarity"], p["pity"], p["nonce"]) for p in results["pulls"]] == \
        [tuple(r) for r in drawn]
    assert [p["index"] for p in results["pulls"]] == list(range(1, 11))
    assert results["order_id"] == order["order_id"] and results["status"] == "fulfilled"
    assert results["medals"] == medals
    assert all(p["name"] for p in results["pulls"])
    text = json.dumps(msg)
    assert "seed" not in text.replace("seed_id", "") and "roll" not in text, "no seed or roll in the broadcast"
    assert msg["meta"]["id"], "a broadcast from the database carries its message id"
    # exactly one results message; the refused clients received nothing at all
    time.sleep(0.5)
    assert len(fan.matching(lambda e: e["ev"] == "broadcast")) == 1
    assert other.matching(lambda e: e["ev"] == "broadcast") == []
    assert anon.matching(lambda e: e["ev"] == "broadcast") == []


def test_a_refund_is_broadcast_on_the_order_topic(js, api_url, seeded_db_url, payments):
    order = _order(api_url, *FAN)
    pi_id = _pay(payments.payments_url, order)
    fan = _signed_in(js, *FAN)
    fan.send(op="channel", name="o", topic=f"order:{order['order_id']}", broadcast=["refund"],
             config={"private": True})
    assert fan.status("o")["status"] == "SUBSCRIBED"
    [event] = ev.stripe_outcome_events(order["order_id"], order["amount_jpy"], "refunded", pi_id=pi_id)
    body = ev.dumps(event)
    r = httpx.post(f"{payments.payments_url}/webhooks/stripe", content=body,
                   headers=ev.stripe_sign(body, STRIPE_WEBHOOK_SECRET), timeout=10)
    assert r.status_code == 200, r.text
    refund = fan.wait(lambda e: e["ev"] == "broadcast" and e["msg"]["event"] == "refund", 15)["msg"]["payload"]
    assert refund == {"order_id": order["order_id"], "refunded_jpy": order["amount_jpy"],
                      "amount_jpy": order["amount_jpy"], "fully_refunded": True}


def _rare_gacha(db_url: str) -> str:
    """A gacha of the test fixture that always draws an SSR (one item at 100%)."""
    with psycopg.connect(db_url, autocommit=True) as conn:  # econ_test: installed with the test helpers
        vtuber = conn.execute("select econ_test.vtuber(%s)", (f"v-{uuid.uuid4().hex[:8]}@example.com",)).fetchone()[0]
        items = [{"name": "shining-confession", "rarity": "SSR", "rate_ppm": 1000000}]
        return str(conn.execute("select econ_test.gacha(%s, %s)", (vtuber, json.dumps(items))).fetchone()[0])


def test_launch_feed_is_anonymous_unless_the_fan_opted_in_and_counts_watchers(js, api_url, seeded_db_url, payments):
    gacha = _rare_gacha(seeded_db_url)
    feed = f"gacha:{gacha}:feed"
    watcher = js()  # anonymous: the feed is public to read, nobody may write to it
    watcher.send(op="channel", name="f", topic=feed, broadcast=["rare_pull"], presence=True,
                 config={"private": True, "presence": {"key": "anon-watcher"}})
    assert watcher.status("f")["status"] == "SUBSCRIBED"
    watcher.send(op="track", name="f", payload={"watching": True})
    assert watcher.wait(lambda e: e["ev"] == "tracked")["result"] == "ok"
    watcher.send(op="send", name="f", event="rare_pull", payload={"fake": True})  # refused silently
    watcher.wait(lambda e: e["ev"] == "sent")

    shy_email, shy_pw, _ = _new_fan(api_url, "Shy Fan")
    proud_email, proud_pw, _ = _new_fan(api_url, "Proud Fan")
    proud = create_client(api_url, ANON_KEY)
    proud.auth.sign_in_with_password({"email": proud_email, "password": proud_pw})
    assert proud.rpc("set_show_in_launch_feed", {"p_show": True}).execute().data == {"show_in_launch_feed": True}

    async def count_watchers():
        py = AsyncRealtimeClient(api_url.replace("http", "ws") + "/realtime/v1", ANON_KEY)
        await py.connect()
        ch = py.channel(feed, {"config": {"private": True, "presence": {"key": "py-watcher"}}})
        ch.on_presence_sync(lambda: None)  # a watcher count listens to presence, which enables it
        joined = []
        await ch.subscribe(lambda s, e: joined.append(s))
        deadline = time.monotonic() + 10
        while not joined and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await ch.track({"watching": True})
        while len(ch.presence_state()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        keys = set(ch.presence_state())
        await py.close()
        return keys

    assert asyncio.run(count_watchers()) == {"anon-watcher", "py-watcher"}

    for email, pw in ((shy_email, shy_pw), (proud_email, proud_pw)):
        _pay(payments.payments_url, _order(api_url, email, pw, gacha))
    deadline = time.monotonic() + 15
    while len(watcher.matching(lambda e: e["ev"] == "broadcast")) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    pulls = [e["msg"]["payload"] for e in watcher.matching(lambda e: e["ev"] == "broadcast")]
    assert len(pulls) == 20, pulls
    assert all(p["rarity"] == "SSR" and p["gacha_id"] == gacha for p in pulls)
    assert [p["fan"] for p in pulls] == [None] * 10 + ["Proud Fan"] * 10
    assert all("fake" not in p for p in pulls), "a client must not be able to broadcast on the launch feed"
