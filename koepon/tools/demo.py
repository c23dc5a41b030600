"""`koepon demo`: one fan's whole journey against the running local stack, printed step by step.

Everything goes through the real `supabase` client (Auth, PostgREST RPCs, Storage, Realtime) and
the payment service's HTTP endpoints; the payment itself is delivered by the same code as `koepon pay`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid

import click
import httpx

from ..localstack.seed import ADMIN, HOSHI, HOSHI_GACHA
from ..settings import ANON_KEY, API_PORT, PAYMENTS_PORT, SERVICE_ROLE_KEY
from .pay import pay


class DemoError(click.ClickException):
    pass


def _client(api_url: str):
    from supabase import create_client

    return create_client(api_url, ANON_KEY)


def _post(url: str, token: str, json: dict | None = None) -> dict:
    r = httpx.post(url, json=json or {}, headers={"Authorization": f"Bearer {token}"}, timeout=15)
    data = r.json()
    if r.status_code >= 300:
        raise DemoError(f"POST {url}: HTTP {r.status_code} {data.get('code')}: {data.get('message')}")
    return data


class OrderWatch:
    """The fan's Realtime channel `order:<id>` (private), watched from a background event loop."""

    def __init__(self, api_url: str, access_token: str, order_id: str, timeout: float = 15):
        self.results: queue.Queue = queue.Queue()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.client = None
        asyncio.run_coroutine_threadsafe(self._join(api_url, access_token, order_id, timeout),
                                         self.loop).result(timeout + 5)

    async def _join(self, api_url: str, access_token: str, order_id: str, timeout: float) -> None:
        from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

        self.client = AsyncRealtimeClient(api_url.replace("http", "ws", 1) + "/realtime/v1", ANON_KEY)
        await self.client.connect()
        await self.client.set_auth(access_token)
        channel = self.client.channel(f"order:{order_id}", {"config": {"private": True}})
        channel.on_broadcast("results", lambda msg: self.results.put(msg["payload"]))
        states: asyncio.Queue = asyncio.Queue()
        await channel.subscribe(lambda state, err: states.put_nowait((state, err)))
        state, err = await asyncio.wait_for(states.get(), timeout)
        if state != RealtimeSubscribeStates.SUBSCRIBED:
            raise DemoError(f"could not join order:{order_id} on Realtime: {state} {err}")

    def close(self) -> None:
        if self.client is not None:
            asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def run_demo(api_url: str = f"http://127.0.0.1:{API_PORT}",
             payments_url: str = f"http://127.0.0.1:{PAYMENTS_PORT}", gacha_id: str = HOSHI_GACHA,
             provider: str = "stripe", echo=click.echo) -> dict:
    step = iter(range(1, 100))

    def say(title: str, detail: str = "") -> None:
        echo(click.style(f"[{next(step):2}] {title}", bold=True) + (f"\n     {detail}" if detail else ""))

    try:
        httpx.get(f"{payments_url}/health", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        raise DemoError(f"the payment service at {payments_url} does not answer ({exc}): run `koepon up`") from exc

    fan = _client(api_url)
    email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    res = fan.auth.sign_up({"email": email, "password": "demo-password-123",
                            "options": {"data": {"display_name": "Demo fan"}}})
    token = res.session.access_token
    say("A fan signs up", f"{email} (user {res.user.id})")

    profile = fan.rpc("update_my_profile", {"p_display_name": "Demo fan", "p_birth_date": "1995-04-01"}).execute().data
    say("They set their birth date", f"birth_date {profile.get('birth_date')}: an adult, no minors' caps")

    gacha = fan.rpc("get_gacha", {"p_gacha_id": gacha_id}).execute().data
    odds = ", ".join(f"{i['rarity']} {i['name']!r} {i['odds_percent']}%" for i in gacha["items"])
    say(f"They read the odds of {gacha['title']!r}",
        f"{odds}\n     total {gacha['odds_total_percent']}%, 10 pulls for ¥{gacha['price_ten']}")

    order = fan.rpc("create_order", {"p_gacha_id": gacha_id, "p_pull_count": 10,
                                     "p_idempotency_key": uuid.uuid4().hex}).execute().data
    say("They order a 10-pull", f"order {order['order_id']}: ¥{order['amount_jpy']} {order['currency']}, "
        f"{order['status']} until {order['expires_at']}")

    if provider == "stripe":
        pi = _post(f"{payments_url}/payments/stripe/payment-intents", token, {"order_id": order["order_id"]})
        say("The payment service creates a Stripe PaymentIntent",
            f"{pi['payment_intent_id']} for ¥{pi['amount']} (client secret for Stripe Elements: "
            f"{pi['client_secret'][:14]}…)")
    else:
        s = _post(f"{payments_url}/payments/komoju/sessions", token,
                  {"order_id": order["order_id"], "return_url": "https://koepon.example/return"})
        say("The payment service creates a KOMOJU session", f"{s['session_id']}: {s['session_url']}")

    watch = OrderWatch(api_url, token, order["order_id"])
    say("The gacha animation waits on Realtime", f"private channel order:{order['order_id']} joined "
        "(only this fan may join it)")
    try:
        lines: list[str] = []
        pay(order["order_id"], provider=provider, outcome="succeeded", payments_url=payments_url, api_url=api_url,
            echo=lines.append)
        say(f"{provider} confirms the payment (signed webhook, as `koepon pay` sends it)", "\n     ".join(lines))
        try:
            live = watch.results.get(timeout=15)
        except queue.Empty as exc:
            raise DemoError("the results did not arrive over Realtime within 15 s") from exc
    finally:
        watch.close()
    say("The ten results arrive over Realtime, in draw order", "\n     ".join(
        f"{p['index']:2}. {p['rarity']:>3} {p['name']}{' (pity)' if p['pity'] else ''}" for p in live["pulls"]))

    got = fan.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data
    pulls = got.get("pulls", [])
    if got["status"] != "fulfilled" or len(pulls) != 10:
        raise DemoError(f"the order is {got['status']} with {len(pulls)} pulls, expected fulfilled with 10")
    if [p["name"] for p in live["pulls"]] != [p["item_name"] for p in pulls]:
        raise DemoError("the results over Realtime differ from the order's pulls")
    say("The order page agrees (get_order)", f"{len(pulls)} pulls, the same items in the same order")

    rewards = fan.rpc("list_my_rewards", {}).execute().data
    balances = fan.rpc("get_medal_balances", {}).execute().data
    bal = next(b for b in balances if b["vtuber_id"] == gacha["vtuber_id"])
    say("Rewards and oshi medals", f"{len(rewards)} rewards in the box; {bal['balance']} medals for "
        f"{bal['vtuber_name']} (+{got['medals_granted']})")

    items = fan.rpc("list_exchange_items", {"p_vtuber_id": gacha["vtuber_id"]}).execute().data["items"]
    item = min((i for i in items if i["available_now"]), key=lambda i: i["medal_cost"])
    ex = fan.rpc("exchange_medals", {"p_exchange_item_id": item["id"], "p_quantity": 1,
                                     "p_idempotency_key": uuid.uuid4().hex}).execute().data
    balances = fan.rpc("get_medal_balances", {}).execute().data
    bal = next(b for b in balances if b["vtuber_id"] == gacha["vtuber_id"])
    say("They exchange medals", f"{item['name']!r} for {item['medal_cost']} medals; balance now {bal['balance']} "
        f"(exchange {ex.get('exchange_id') or ex.get('id')})")

    reward = next(r for r in fan.rpc("list_my_rewards", {}).execute().data if not r["revoked"])
    # Fans cannot sign reward objects: the payment service authorises the download as the fan and
    # signs it with the service role for one minute.
    dl = _post(f"{payments_url}/payments/rewards/{reward['id']}/download", token)
    body = httpx.get(dl["signed_url"], timeout=10)
    body.raise_for_status()
    say("They download a reward through a signed URL",
        f"{reward['name']!r}: {len(body.content)} bytes ({dl['remaining_today']} downloads left today)")

    refund = fan.rpc("request_refund", {"p_order_id": order["order_id"],
                                        "p_reason": "Demo: the voice files would not play"}).execute().data
    say("They request a refund", f"refund {refund['refund_id']}: {refund['status']}")

    admin = _client(api_url)
    admin_token = admin.auth.sign_in_with_password({"email": ADMIN.email, "password": ADMIN.password}
                                                   ).session.access_token
    reviewed = admin.rpc("review_refund", {"p_refund_id": refund["refund_id"], "p_approve": True,
                                           "p_reason": "Demo approval"}).execute().data
    say("The admin approves it", f"¥{reviewed['amount_jpy']} approved")

    ex = _post(f"{payments_url}/payments/refunds/{refund['refund_id']}/execute", admin_token)
    deadline = time.monotonic() + 15
    while True:
        got = fan.rpc("get_order", {"p_order_id": order["order_id"]}).execute().data
        if got["refunded_jpy"] >= got["amount_jpy"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if got["refunded_jpy"] < got["amount_jpy"]:
        raise DemoError("the provider's refund event did not arrive within 15 s")
    balances = fan.rpc("get_medal_balances", {}).execute().data
    bal = next(b for b in balances if b["vtuber_id"] == gacha["vtuber_id"])
    revoked = sum(1 for r in fan.rpc("list_my_rewards", {}).execute().data if r["revoked"])
    say(f"{provider} refunds it (provider refund {ex['provider_refund_id']}; its webhook completes the refund)",
        f"order refunded ¥{got['refunded_jpy']}; {revoked} rewards revoked; medals now {bal['balance']}")

    _vtuber_side(api_url, say)
    return {"order_id": order["order_id"], "refund_id": refund["refund_id"], "user_id": res.user.id}


def _vtuber_side(api_url: str, say) -> None:
    """The other side of the counter: the VTuber's sales for the day and their open statement."""
    from supabase import create_client

    # The scheduled job adds new sales to the rollups every minute; the demo runs it now, once the
    # refund is older than the job's two-second margin.
    time.sleep(2.1)
    service = create_client(api_url, SERVICE_ROLE_KEY)
    ran = service.rpc("service_refresh_rollups", {}).execute().data
    vtuber = _client(api_url)
    vtuber.auth.sign_in_with_password({"email": HOSHI.email, "password": HOSHI.password})
    today = vtuber.rpc("get_my_sales", {}).execute().data
    day = today["days"][-1] if today["days"] else {}
    t = today["totals"]
    say(f"The VTuber ({HOSHI.email}) reads their sales (rollups fresh through {ran['through']})",
        f"last day {day.get('jst_date', '-')}: {day.get('paid_orders', 0)} paid orders, "
        f"gross ¥{day.get('gross_jpy', 0)}, "
        f"refunds ¥{day.get('refunds_jpy', 0)}, {day.get('paying_fans', 0)} paying fans\n"
        f"     30 days: gross ¥{t['gross_jpy']}, net ¥{t['net_jpy']}, their share ¥{t['vtuber_share_jpy']}, "
        f"ARPPU ¥{t.get('arppu_jpy') or 0}")
    st = vtuber.rpc("get_my_payout_statement", {}).execute().data
    say(f"And their open statement for {st['month']}",
        f"gross ¥{st['gross_jpy']} - refunds ¥{st['refunds_jpy']} - chargebacks ¥{st['chargebacks_jpy']} "
        f"= net ¥{st['net_jpy']}; share {st['share_bps'] / 100:g}% = ¥{st['vtuber_share_jpy']} "
        f"(consumption tax inside ¥{st['consumption_tax_in_share_jpy']}); "
        f"payable ¥{st['payable_jpy']} ({st['status']})")
