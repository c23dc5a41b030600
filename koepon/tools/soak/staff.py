"""The VTubers' and the admin's actions."""

from __future__ import annotations

import queue
import random
import time
import uuid

from ...localstack import seed as demo
from .clients import Api, ok


class StaffActions:
    """The VTubers' and the admin's actions (a part of Soak: self is the running Soak)."""

    # -- VTubers -----------------------------------------------------------------------------------
    def vtuber_step(self, vt: Api, st: dict) -> None:
        rng = st["rng"]
        op = rng.choices(["new_gacha", "bad_gacha", "exchange_item", "uploads", "read"], [3, 2, 1, 2, 3])[0]
        if op == "new_gacha":
            self.vtuber_new_gacha(vt, st, rng)
        elif op == "bad_gacha":
            self.vtuber_bad_gacha(vt, st, rng)
        elif op == "uploads":
            self.vtuber_uploads(vt, st, rng)
        elif op == "exchange_item":
            args = {"p_name": f"soak item {uuid.uuid4().hex[:6]}", "p_medal_cost": rng.choice([10, 20, 50]),
                    "p_content_path": f"{st['vtuber_id']}/exchange/soak-{uuid.uuid4().hex[:8]}.png",
                    "p_total_stock": rng.choice([None, 3, 20]), "p_per_fan_limit": rng.choice([None, 2]),
                    "p_per_fan_daily_limit": rng.choice([None, 1])}
            if rng.random() < 0.2:  # forgot to upload: refused, nothing created
                vt.rpc("create_exchange_item", args, kind="create_exchange_item (content not uploaded)",
                       invalid=True, expect=("content_object_missing",))
            self.upload(vt, args["p_content_path"])
            r = vt.rpc("create_exchange_item", args)
            if ok(r):
                with self.lock:
                    self.exchange_items.setdefault(st["vtuber_id"], []).append(r.json()["id"])
            vt.rpc("create_exchange_item", {"p_name": "free", "p_medal_cost": 0, "p_content_path": "x/y.png"},
                   kind="create_exchange_item (bad cost)", invalid=True,
                   expect=("invalid_medal_cost", "invalid_content_path"))
        else:
            vt.rpc("list_my_gachas", {})
        time.sleep(rng.uniform(0.2, 0.6))

    def vtuber_new_gacha(self, vt: Api, st: dict, rng: random.Random) -> None:
        now = time.time()
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        r = vt.rpc("create_gacha", {"p_title": f"soak gacha {uuid.uuid4().hex[:6]}", "p_start_at": iso(now - 60),
                                    "p_end_at": iso(now + 86400), "p_price_single": rng.choice([100, 300]),
                                    "p_price_ten": rng.choice([1000, 2700]), "p_medals_per_pull": rng.randint(1, 30),
                                    "p_total_pull_cap": rng.choice([None, 30, 200])})
        if not ok(r):
            return
        gid = r.json()["id"]
        rates = [("N", 700000, None), ("R", 250000, rng.choice([None, 40])), ("SSR", 50000, rng.choice([None, 15]))]
        late = rng.choice([None, None, None, 2])  # sometimes the SSR's file is uploaded only after a refusal
        for i, (rarity, rate, stock) in enumerate(rates):
            path = f"{st['vtuber_id']}/gacha/soak/{gid}-{i}.png"
            if i != late:
                self.upload(vt, path)
            vt.rpc("add_gacha_item", {"p_gacha_id": gid, "p_name": f"{rarity} item", "p_rarity": rarity,
                                      "p_rate_ppm": rate, "p_stock": stock, "p_sort_order": i,
                                      "p_content_path": path})
        if late is not None:
            vt.rpc("publish_gacha", {"p_gacha_id": gid}, kind="publish_gacha (content not uploaded)", invalid=True,
                   expect=("content_object_missing",))
            self.upload(vt, f"{st['vtuber_id']}/gacha/soak/{gid}-{late}.png")
        if ok(vt.rpc("publish_gacha", {"p_gacha_id": gid})):
            with self.lock:
                self.gachas.append(gid)
            self.vtuber_gachas.setdefault(st["vtuber_id"], []).append(gid)
            vt.rpc("update_gacha", {"p_gacha_id": gid, "p_patch": {"price_single": 100}},
                   kind="update_gacha (published: frozen)", invalid=True, expect=("gacha_not_draft",))

    def upload(self, vt: Api, path: str, content_type: str = "image/png", *, bucket: str = "rewards",
               upsert: bool = False, kind: str = "storage upload", invalid: bool = False,
               expect: tuple[str, ...] = ()):
        """The VTuber uploads a file through Storage (POST /object/<bucket>/<path>, x-upsert)."""
        headers = {"Content-Type": content_type}
        if upsert:
            headers["x-upsert"] = "true"
        return vt.call(kind, "POST", f"{self.stack.api_url}/storage/v1/object/{bucket}/{path}",
                       content=b"\x89PNG soak " + path.encode(), headers=headers, invalid=invalid, expect=expect)

    def vtuber_uploads(self, vt: Api, st: dict, rng: random.Random) -> None:
        """Work on their own files: upload, replace, list, move, delete; a wrong type is refused."""
        base = f"{st['vtuber_id']}/drafts/{uuid.uuid4().hex[:8]}"
        storage = f"{self.stack.api_url}/storage/v1/object"
        first = self.upload(vt, f"{base}/a.png")
        self.upload(vt, f"{base}/a.png", upsert=True, kind="storage upload (replace, x-upsert)")
        self.upload(vt, f"{base}/avatar.png", bucket="avatars", kind="storage upload (avatar)")
        self.upload(vt, f"{base}/page.html", "text/html", kind="storage upload (wrong type)", invalid=True,
                    expect=("invalid_mime_type",))
        r = vt.call("storage list", "POST", f"{storage}/list/rewards", json={"prefix": base, "limit": 10})
        # (only when the first upload was answered: in the crash suite it may have been cut off)
        if ok(first) and ok(r) and [e["name"] for e in r.json()] != ["a.png"]:
            self.rec.fail(f"storage list of {base}: {r.text[:200]}")
        if rng.random() < 0.5:
            vt.call("storage move", "POST", f"{storage}/move",
                    json={"bucketId": "rewards", "sourceKey": f"{base}/a.png", "destinationKey": f"{base}/b.png"})
            vt.call("storage remove", "DELETE", f"{storage}/rewards", json={"prefixes": [f"{base}/b.png"]})

    def vtuber_bad_gacha(self, vt: Api, st: dict, rng: random.Random) -> None:
        now = time.time()
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        case = rng.choice(["price", "window", "rates", "no_items", "others_gacha"])
        if case == "price":
            vt.rpc("create_gacha", {"p_title": "cheap", "p_start_at": iso(now), "p_end_at": iso(now + 3600),
                                    "p_price_single": 50}, kind="create_gacha (bad price)", invalid=True,
                   expect=("invalid_price",))
        elif case == "window":
            vt.rpc("create_gacha", {"p_title": "backwards", "p_start_at": iso(now + 3600), "p_end_at": iso(now)},
                   kind="create_gacha (bad window)", invalid=True, expect=("invalid_window",))
        elif case in ("rates", "no_items"):
            r = vt.rpc("create_gacha", {"p_title": "draft", "p_start_at": iso(now - 60), "p_end_at": iso(now + 3600)})
            if not ok(r):
                return
            gid = r.json()["id"]
            if case == "rates":
                vt.rpc("add_gacha_item", {"p_gacha_id": gid, "p_name": "n", "p_rarity": "N", "p_rate_ppm": 999999,
                                          "p_content_path": f"{st['vtuber_id']}/gacha/soak/{gid}.png"})
            vt.rpc("publish_gacha", {"p_gacha_id": gid}, kind=f"publish_gacha (bad: {case})", invalid=True,
                   expect=("rates_must_sum_to_one_million", "gacha_has_no_items"))
        else:
            other = demo.HOSHI_GACHA if st["vtuber_id"] == demo.LUNA_VTUBER else demo.LUNA_GACHA
            vt.rpc("end_gacha", {"p_gacha_id": other}, kind="end_gacha (another VTuber's)", invalid=True,
                   expect=("not_gacha_owner", "gacha_not_found"))

    # -- the admin ---------------------------------------------------------------------------------
    def admin_step(self, adm: Api, st: dict) -> None:
        rng = st["rng"]
        try:
            refund_id = self.refund_queue.get(timeout=0.3)
        except queue.Empty:
            refund_id = None
        if refund_id is None and rng.random() < 0.5:
            # Work from the admin queue itself: the oldest refund request awaiting review.
            r = adm.rpc("admin_list_refund_requests", {"p_limit": 5})
            if ok(r) and r.json()["items"]:
                refund_id = r.json()["items"][0]["refund_id"]
        if refund_id:
            if rng.random() < 0.1:
                adm.rpc("review_refund", {"p_refund_id": refund_id, "p_approve": False, "p_reason": ""},
                        kind="review_refund (reject without reason)", invalid=True, expect=("invalid_reason",))
            if rng.random() < 0.15:
                adm.rpc("review_refund", {"p_refund_id": refund_id, "p_approve": False, "p_reason": "soak: no"})
            elif ok(adm.rpc("review_refund", {"p_refund_id": refund_id, "p_approve": True, "p_reason": "soak"},
                            expect=("order_already_refunded", "refund_not_pending"))):
                adm.pay(f"/payments/refunds/{refund_id}/execute", {}, kind="payment service: execute refund")
                if rng.random() < 0.2:  # the admin double-clicks: idempotent at the provider
                    adm.pay(f"/payments/refunds/{refund_id}/execute", {},
                            kind="payment service: execute refund (again)", expect=("refund_not_approved",))
        op = rng.random()
        if op < 0.15:
            with self.lock:
                fans = list(st["fan_ids"])
            if fans:
                delta = rng.choice([5, 50, -5, -10_000])
                adm.rpc("admin_adjust_medals", {"p_user_id": rng.choice(fans), "p_vtuber_id": rng.choice(
                    [demo.HOSHI_VTUBER, demo.LUNA_VTUBER]), "p_delta": delta, "p_reason": "soak adjustment"},
                    expect=("insufficient_medals",))
        elif op < 0.2:
            adm.rpc("admin_adjust_medals", {"p_user_id": str(uuid.uuid4()), "p_vtuber_id": demo.HOSHI_VTUBER,
                                            "p_delta": 1, "p_reason": ""}, kind="admin_adjust_medals (bad)",
                    invalid=True, expect=("reason_required", "user_not_found"))
        elif op < 0.25:
            r = adm.rpc("verify_audit_chain", {})
            if ok(r) and not r.json().get("ok"):
                self.rec.fail(f"audit chain broken during the run: {r.text[:300]}")
        elif op < 0.28:
            with self.lock:
                mine = [g for gs in self.vtuber_gachas.values() for g in gs]
            if mine:
                g = rng.choice(mine)
                if ok(adm.rpc("admin_suspend_gacha", {"p_gacha_id": g, "p_reason": "soak: review"})):
                    self.rec.fault("gachas suspended mid-sale")
                    time.sleep(0.2)
                    adm.rpc("admin_unsuspend_gacha", {"p_gacha_id": g, "p_reason": "soak: fine"})
        elif op < 0.45:
            self.admin_queue_work(adm, rng)

    def admin_queue_work(self, adm: Api, rng: random.Random) -> None:
        """The admin pages through a work queue (keyset cursor), reads the dashboards, works the
        reconciliation queue; bad filters and cursors are refused."""
        name, args = rng.choice([
            ("admin_list_users", {"p_email_prefix": "soak-", "p_role": "fan"}),
            ("admin_list_orders", {"p_status": rng.choice(["fulfilled", "pending", "expired", None])}),
            ("admin_list_payment_events", {}),
            ("admin_list_refund_requests", {"p_status": rng.choice(["requested", "completed", "rejected"])}),
            ("admin_list_disputes", {}),
            ("admin_list_vtuber_applications", {}),
            ("admin_list_audit_log", {"p_action": rng.choice([None, "refund.review", "medals.adjust"])}),
            ("admin_list_reconciliation_issues", {}),
        ])
        page = adm.rpc(name, {**args, "p_limit": 3}, kind=f"{name} (page 1)")
        if ok(page) and page.json().get("next_cursor"):
            second = adm.rpc(name, {**args, "p_limit": 3, "p_cursor": page.json()["next_cursor"]},
                             kind=f"{name} (next page)")
            if ok(second):
                seen = {str(sorted(i.items())) for i in page.json()["items"]}
                if any(str(sorted(i.items())) in seen for i in second.json()["items"]):
                    self.rec.fail(f"{name}: the next page repeats an item of the first")
        adm.rpc(name, {"p_limit": 3, "p_cursor": "not-a-cursor"}, kind=f"{name} (bad cursor)", invalid=True,
                expect=("invalid_cursor",))
        if rng.random() < 0.3:
            adm.rpc("admin_list_orders", {"p_status": "bogus"}, kind="admin_list_orders (bad status)", invalid=True,
                    expect=("invalid_status",))
        if rng.random() < 0.3:
            adm.rpc(rng.choice(["admin_get_kpis", "admin_get_sales"]), {})
        if rng.random() < 0.3:
            issues = adm.rpc("admin_list_reconciliation_issues", {"p_limit": 1})
            if ok(issues) and issues.json()["items"]:
                adm.rpc("admin_resolve_reconciliation_issue",
                        {"p_issue_id": issues.json()["items"][0]["id"], "p_resolution": "soak: checked"},
                        expect=("issue_already_resolved",))
