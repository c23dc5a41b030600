"""The fans' actions: orders, exchanges, downloads, refunds, reads, and the invalid ones."""

from __future__ import annotations

import random
import time
import uuid

from ...localstack import seed as demo
from .clients import PAY_SCENARIOS, Api, Job, ok


class FanActions:
    """The fans' actions (a part of Soak: self is the running Soak)."""

    # -- fans --------------------------------------------------------------------------------------
    def fan_step(self, fan: Api, st: dict) -> None:
        rng = st["rng"]
        op = rng.choices(
            ["order", "order_bad", "exchange", "exchange_bad", "download", "refund", "read", "read_bad",
             "seed", "pay_bad", "medal_view"],
            [30, 6, 14, 3, 9, 5, 16, 5, 2, 2, 4])[0]
        getattr(self, f"fan_{op}")(fan, st, rng)
        time.sleep(rng.uniform(0.0, 0.05))

    def fan_order(self, fan: Api, st: dict, rng: random.Random) -> None:
        with self.lock:
            gacha = rng.choice(self.gachas)
        pulls = rng.choice([1, 1, 10])
        key = uuid.uuid4().hex
        r = fan.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": pulls, "p_idempotency_key": key},
                    expect=("gacha_sold_out", "gacha_not_on_sale", "spending_cap_exceeded"))
        if not ok(r):
            return
        order = r.json()
        with self.lock:
            self.all_orders.append(order["order_id"])
        st["orders"].append(order["order_id"])
        if rng.random() < 0.15:  # the client retries the same request: the same order
            again = fan.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": pulls, "p_idempotency_key": key},
                            kind="create_order (same key replayed)")
            if ok(again) and again.json()["order_id"] != order["order_id"]:
                self.rec.fail(f"create_order replay returned another order: {again.text[:200]}")
        if rng.random() < 0.08:  # the same key for another order: refused
            fan.rpc("create_order", {"p_gacha_id": gacha, "p_pull_count": 11 - pulls, "p_idempotency_key": key},
                    kind="create_order (key reused, other args)", invalid=True, expect=("idempotency_key_reused",))
        scenario = rng.choices([s for s, _ in PAY_SCENARIOS], [w for _, w in PAY_SCENARIOS])[0]
        provider = "komoju" if scenario.startswith("komoju") else "stripe"
        if scenario == "clock_expiry_then_paid":
            provider = rng.choice(["stripe", "komoju"])
        if provider == "stripe":
            p = fan.pay("/payments/stripe/payment-intents", {"order_id": order["order_id"]},
                        kind="payment service: create PaymentIntent")
            ref = p.json()["payment_intent_id"] if ok(p) else None
        else:
            p = fan.pay("/payments/komoju/sessions", {"order_id": order["order_id"],
                                                      "return_url": "https://koepon.example/return"},
                        kind="payment service: create KOMOJU session")
            ref = p.json()["session_id"] if ok(p) else None
        if ref is None:
            return
        job = Job(order["order_id"], order["amount_jpy"], pulls, provider, ref, scenario)
        with self.lock:
            self.jobs.append(job)
        self.provider_pay(job, rng)

    def fan_order_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        key = uuid.uuid4().hex
        case = rng.choice(["pulls_3", "pulls_0", "pulls_huge", "pulls_text", "key_empty", "key_long", "unknown",
                           "draft", "ended", "not_uuid", "null_gacha"])
        args = {"p_gacha_id": demo.HOSHI_GACHA, "p_pull_count": 1, "p_idempotency_key": key}
        expect = {"pulls_3": ("invalid_pull_count",), "pulls_0": ("invalid_pull_count",),
                  "pulls_huge": ("22003",), "pulls_text": ("22P02",),
                  "key_empty": ("invalid_idempotency_key",), "key_long": ("invalid_idempotency_key",),
                  "unknown": ("gacha_not_found",), "draft": ("gacha_not_found", "gacha_not_on_sale"),
                  "ended": ("gacha_not_on_sale",), "not_uuid": ("22P02",),
                  "null_gacha": ("gacha_not_found", "invalid_gacha_id")}[case]
        if case == "pulls_3":
            args["p_pull_count"] = 3
        elif case == "pulls_0":
            args["p_pull_count"] = 0
        elif case == "pulls_huge":
            args["p_pull_count"] = 10 ** 12
        elif case == "pulls_text":
            args["p_pull_count"] = "ten"
        elif case == "key_empty":
            args["p_idempotency_key"] = ""
        elif case == "key_long":
            args["p_idempotency_key"] = "k" * 201
        elif case == "unknown":
            args["p_gacha_id"] = str(uuid.uuid4())
        elif case == "draft":
            args["p_gacha_id"] = demo.LUNA_DRAFT_GACHA
        elif case == "ended":
            args["p_gacha_id"] = demo.ENDED_GACHA
        elif case == "not_uuid":
            args["p_gacha_id"] = "not-a-uuid"
        elif case == "null_gacha":
            args["p_gacha_id"] = None
        fan.rpc("create_order", args, kind=f"create_order (bad: {case})", invalid=True, expect=expect)

    def fan_exchange(self, fan: Api, st: dict, rng: random.Random) -> None:
        r = fan.rpc("get_medal_balances")
        if not ok(r):
            return
        balances = [b for b in r.json() if b["balance"] > 0]
        if not balances:
            return
        b = rng.choice(balances)
        with self.lock:
            items = list(self.exchange_items.get(b["vtuber_id"], []))
        if not items:
            return
        key = uuid.uuid4().hex
        args = {"p_exchange_item_id": rng.choice(items), "p_quantity": rng.choice([1, 1, 2, 3]),
                "p_idempotency_key": key}
        r = fan.rpc("exchange_medals", args, expect=("insufficient_medals", "out_of_stock", "exchange_limit_reached",
                                                     "exchange_not_available"))
        if ok(r) and rng.random() < 0.2:
            again = fan.rpc("exchange_medals", args, kind="exchange_medals (same key replayed)")
            if ok(again) and again.json()["exchange_id"] != r.json()["exchange_id"]:
                self.rec.fail("exchange_medals replay made a second exchange")

    def fan_exchange_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        case = rng.choice(["qty_0", "qty_11", "unknown", "retired", "key_empty", "other_vtuber_medals"])
        args = {"p_exchange_item_id": demo.EXCHANGE_ITEMS[demo.HOSHI_VTUBER][0], "p_quantity": 1,
                "p_idempotency_key": uuid.uuid4().hex}
        expect: tuple[str, ...]
        if case == "qty_0":
            args["p_quantity"], expect = 0, ("invalid_quantity",)
        elif case == "qty_11":
            args["p_quantity"], expect = 11, ("invalid_quantity",)
        elif case == "unknown":
            args["p_exchange_item_id"], expect = str(uuid.uuid4()), ("exchange_item_not_found",)
        elif case == "retired":
            args["p_exchange_item_id"], expect = demo.RETIRED_EXCHANGE_ITEM, ("exchange_not_available",)
        elif case == "key_empty":
            args["p_idempotency_key"], expect = "", ("invalid_idempotency_key",)
        else:
            self._exchange_without_medals(fan, args)
            return
        fan.rpc("exchange_medals", args, kind=f"exchange_medals (bad: {case})", invalid=True, expect=expect)

    def _exchange_without_medals(self, fan: Api, args: dict) -> None:
        """A fan short of Luna medals tries Luna's item: insufficient (never paid with Hoshi's medals).

        The provider may fulfil one of this fan's Luna orders between the look and the exchange,
        so an accepted exchange is legitimate only if the ledger shows Luna medals credited after
        the look and before the exchange's own entry.
        """
        kind = "exchange_medals (bad: other_vtuber_medals)"
        before = fan.rpc("list_medal_ledger", {"p_vtuber_id": demo.LUNA_VTUBER, "p_limit": 200},
                        kind="list_medal_ledger")
        if not ok(before) or (before.json() and before.json()[0]["new_balance"] >= 50):
            return
        seen = {e["id"] for e in before.json()}
        args["p_exchange_item_id"] = demo.EXCHANGE_ITEMS[demo.LUNA_VTUBER][0]
        r = fan.rpc("exchange_medals", args, kind=kind, expect=("insufficient_medals",))
        if not ok(r):
            return
        after = fan.rpc("list_medal_ledger", {"p_vtuber_id": demo.LUNA_VTUBER, "p_limit": 200},
                       kind="list_medal_ledger")
        if not ok(after):
            return
        entries = after.json()
        debit = next((e for e in entries if e["exchange_id"] == r.json()["exchange_id"]), None)
        credited = debit is not None and any(
            e["id"] not in seen and e["id"] < debit["id"] and e["delta"] > 0 for e in entries)
        if not credited:
            self.rec.fail(f"{kind}: accepted without Luna medals credited since the look: {r.text[:200]}")

    def fan_download(self, fan: Api, st: dict, rng: random.Random) -> None:
        r = fan.rpc("list_my_rewards", {"p_limit": 50})
        if not ok(r) or not r.json():
            return
        reward = rng.choice(r.json())
        fan.rpc("request_download", {"p_user_reward_id": reward["id"]},
                expect=("download_limit_reached", "reward_revoked"))

    def fan_refund(self, fan: Api, st: dict, rng: random.Random) -> None:
        if not st["orders"]:
            return
        oid = rng.choice(st["orders"])
        with self.lock:
            if oid in self.provider_refunded:
                return
            self.fan_refunding.add(oid)
        if rng.random() < 0.15:
            fan.rpc("request_refund", {"p_order_id": oid, "p_reason": rng.choice(["", " ", "x" * 501])},
                    kind="request_refund (bad reason)", invalid=True, expect=("invalid_refund_reason",))
            return
        r = fan.rpc("request_refund", {"p_order_id": oid, "p_reason": "soak: changed my mind"},
                    expect=("order_not_refundable", "order_already_refunded", "refund_already_requested"))
        if ok(r):
            self.refund_queue.put(r.json()["refund_id"])

    def fan_read(self, fan: Api, st: dict, rng: random.Random) -> None:
        which = rng.choice(["get_order", "list_my_orders", "list_my_rewards", "list_medal_ledger", "get_fairness",
                            "get_gacha", "get_my_spending_limits"])
        if which == "get_order":
            if st["orders"]:
                fan.rpc("get_order", {"p_order_id": rng.choice(st["orders"])})
        elif which == "get_gacha":
            with self.lock:
                g = rng.choice(self.gachas)
            fan.rpc("get_gacha", {"p_gacha_id": g})
        else:
            fan.rpc(which, {})

    def fan_read_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        case = rng.choice(["unknown_order", "other_fans_order", "pagination", "unknown_function", "other_reward"])
        if case == "unknown_order":
            fan.rpc("get_order", {"p_order_id": str(uuid.uuid4())}, kind="get_order (unknown)", invalid=True,
                    expect=("order_not_found",))
        elif case == "other_fans_order":
            with self.lock:
                others = [o for o in self.all_orders[-200:] if o not in st["orders"]]
            if others:
                fan.rpc("get_order", {"p_order_id": rng.choice(others)}, kind="get_order (another fan's)",
                        invalid=True, expect=("order_not_found",))
        elif case == "pagination":
            fan.rpc("list_my_orders", {"p_limit": rng.choice([0, 101, -1])}, kind="list_my_orders (bad page)",
                    invalid=True, expect=("invalid_pagination",))
        elif case == "unknown_function":
            fan.rpc("drop_all_tables", {}, kind="rpc (unknown function)", invalid=True, expect=("PGRST202",))
        else:
            fan.rpc("request_download", {"p_user_reward_id": str(uuid.uuid4())},
                    kind="request_download (not in my box)", invalid=True, expect=("reward_not_found",))

    def fan_seed(self, fan: Api, st: dict, rng: random.Random) -> None:
        if rng.random() < 0.5:
            fan.rpc("set_client_seed", {"p_seed": uuid.uuid4().hex[:16]})
        else:
            fan.rpc("rotate_fairness_seed", {})

    def fan_pay_bad(self, fan: Api, st: dict, rng: random.Random) -> None:
        case = rng.choice(["not_uuid", "unknown", "others", "no_token"])
        if case == "not_uuid":
            fan.pay("/payments/stripe/payment-intents", {"order_id": "1; drop table"},
                    kind="payment service: create PaymentIntent (bad order id)", invalid=True,
                    expect=("invalid_order_id",))
        elif case == "unknown":
            fan.pay("/payments/stripe/payment-intents", {"order_id": str(uuid.uuid4())},
                    kind="payment service: create PaymentIntent (unknown order)", invalid=True,
                    expect=("order_not_found",))
        elif case == "others":
            with self.lock:
                others = [o for o in self.all_orders[-200:] if o not in st["orders"]]
            if others:
                fan.pay("/payments/komoju/sessions", {"order_id": rng.choice(others),
                                                      "return_url": "https://koepon.example/r"},
                        kind="payment service: KOMOJU session (another fan's order)", invalid=True,
                        expect=("order_not_found", "order_not_payable"))
        else:
            fan.call("payment service: create PaymentIntent (no token)", "POST",
                     f"{self.stack.payments_url}/payments/stripe/payment-intents",
                     json={"order_id": str(uuid.uuid4())}, invalid=True, expect=("not_authenticated",),
                     headers={"Authorization": ""})

    def fan_medal_view(self, fan: Api, st: dict, rng: random.Random) -> None:
        r = fan.rpc("get_medal_balances")
        if ok(r):
            for b in r.json():
                if b["balance"] < 0:
                    self.rec.fail(f"negative balance visible to the fan: {b}")
