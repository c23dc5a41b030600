"""The in-browser verifier ("verify my pulls") against real data and against answers altered on the
way (Playwright route interception): a gacha with pity bought in the browser, its reveal showing the
illustrations, then the verifier recomputes the draws, the rate-table log's hash chain and the pity
streak — and catches a changed roll, a changed pity flag and a broken chain link."""

from __future__ import annotations

import datetime as dt
import json
import re

import psycopg

from koepon.localstack.seed import LUNA, LUNA_VTUBER
from koepon.settings import ANON_KEY
from koepon.tools.fairness import rate_log_hash
from supabase import create_client

from .conftest import goto, new_email, shot

IMAGES = f"{LUNA_VTUBER}/gacha/moonlight"


def _pity_gacha(stack) -> str:
    """Luna publishes a gacha whose pity comes every third pull (SSR at 1 %): a 10-pull has pity pulls."""
    luna = create_client(stack.api_url, ANON_KEY)
    luna.auth.sign_in_with_password({"email": LUNA.email, "password": LUNA.password})
    now = dt.datetime.now(dt.UTC)
    g = luna.rpc("create_gacha", {"p_title": "Luna Full Moon Pity Gacha", "p_start_at": now.isoformat(),
                                  "p_end_at": (now + dt.timedelta(days=7)).isoformat(),
                                  "p_description": "The full moon within three pulls.",
                                  "p_price_single": 200, "p_price_ten": 2000,
                                  "p_pity_pulls": 3, "p_pity_rarity": "SSR"}).execute().data
    gid = g.get("id") or g.get("gacha_id")
    for name, rarity, rate, path in (("Moon sketch", "N", 690000, "n-sketch.png"),
                                     ("Moon wallpaper", "R", 300000, "r-wallpaper.png"),
                                     ("Full moon", "SSR", 10000, "ur-full-moon.png")):
        luna.rpc("add_gacha_item", {"p_gacha_id": gid, "p_name": name, "p_rarity": rarity, "p_rate_ppm": rate,
                                    "p_content_path": f"{IMAGES}/{path}"}).execute()
    luna.rpc("publish_gacha", {"p_gacha_id": gid}).execute()
    return gid


def _tamper(page, rpc: str, change) -> None:
    """Answer the page's next calls of `rpc` with the real answer, altered by change(body)."""
    def handle(route):
        resp = route.fetch()
        body = resp.json()
        change(body)
        route.fulfill(response=resp, body=json.dumps(body),
                      headers={**resp.headers, "content-type": "application/json"})
    page.route(re.compile(rf"/rest/v1/rpc/{rpc}$"), handle)


def _verify(page) -> dict:
    page.evaluate("() => { const r = document.querySelector('#verify-result'); if (r) r.replaceChildren() }")
    page.locator("#verify").click()
    summary = page.wait_for_selector("#verify-summary")
    kinds = page.locator("#verify-problems li").evaluate_all("els => els.map((e) => e.dataset.kind)")
    return {"ok": summary.get_attribute("data-ok") == "true", "pulls": int(summary.get_attribute("data-pulls")),
            "pity": int(summary.get_attribute("data-pity-pulls")),
            "log": int(summary.get_attribute("data-log-entries")), "kinds": set(kinds),
            "text": page.locator("#verify-result").inner_text()}


def test_the_browser_verifier_replays_the_log_chain_and_pity_and_catches_tampering(open_page, stack):
    gacha_id = _pity_gacha(stack)
    page, watch = open_page()
    goto(page, "#/signup", "#signup-form")
    page.get_by_label("メールアドレス").fill(new_email("console-verifier"))
    page.get_by_label(re.compile("^パスワード")).fill("fan-password-123")
    page.get_by_label(re.compile("^生年月日")).fill("1993-03-03")
    page.get_by_role("button", name="登録する").click()
    page.wait_for_selector("#who-email")

    # A 10-pull with the card form; the reveal shows each card's illustration (a preview).
    goto(page, f"#/gacha/{gacha_id}", "#buy-10")
    assert "3回目までにSSR以上が確定" in page.locator("#pity").inner_text()
    page.locator("#buy-10").click()
    page.get_by_label("カード番号").fill("4242 4242 4242 4242")
    page.get_by_label("有効期限").fill("12/34")
    page.get_by_label("セキュリティコード").fill("123")
    page.locator("#pay").click()
    page.wait_for_selector("#reveal-done", timeout=20_000)
    page.wait_for_function("() => { const imgs = [...document.querySelectorAll('#cards li.card .front img')];"
                           " return imgs.length === 10 && imgs.every((i) => i.complete && i.naturalWidth === 240) }")
    order_id = page.evaluate("location.hash").split("/")[-1]
    pity_cards = page.locator("#cards li.card small").count()
    assert pity_cards >= 1, "a 10-pull with pity every third pull has pity pulls"
    shot(page, "reveal")

    # Reveal the seed, then verify: the draws, the chain of every published rate table, the pity.
    goto(page, "#/fairness", "#verify")
    page.locator("#rotate-seed").click()
    page.wait_for_selector("#revealed tbody tr code.seed")
    real = _verify(page)
    assert real["ok"], real["text"]
    assert (real["pulls"], real["pity"]) == (10, pity_cards)
    assert real["log"] >= 5  # the seed's gachas (base and pity tables) and this one's two
    assert page.locator("#verify-rows tbody tr").count() == 10
    shot(page, "fairness")

    # The head the page shows is the log's real head, as the Python verifier computes it.
    anon = create_client(stack.api_url, ANON_KEY)
    log = anon.rpc("list_rate_table_log", {"p_after_seq": 0, "p_limit": 1000}).execute().data
    last = log[-1]
    assert rate_log_hash(last["prev_hash"], last["seq"], last["gacha_id"], last["pity"], last["version"],
                         last["published_at"]) == last["hash"]
    assert page.locator("#log-head").inner_text() == f"{last['seq']}:{last['hash']}"

    # A pull's roll changed on the way: the recomputation disagrees.
    def change_roll(order):
        p = order["pulls"][0]
        p["roll"] = (p["roll"] + 1) % 1_000_000
    _tamper(page, "get_order", change_roll)
    got = _verify(page)
    assert not got["ok"] and "roll" in got["kinds"], got["text"]
    page.unroute(re.compile(r"/rest/v1/rpc/get_order$"))

    # A pity pull reported as an ordinary one: the streak replay disagrees (and the table it used is
    # no longer the one its flag names).
    def drop_pity(order):
        next(p for p in order["pulls"] if p["pity"])["pity"] = False
    _tamper(page, "get_order", drop_pity)
    got = _verify(page)
    assert not got["ok"] and "pity" in got["kinds"], got["text"]
    page.unroute(re.compile(r"/rest/v1/rpc/get_order$"))

    # A link of the rate-table log rewritten: an earlier entry's publication time moved by a
    # microsecond (its hash no longer matches), or a link's prev_hash replaced.
    def move_time(entries):
        at = entries[0]["published_at"]  # e.g. 2026-11-30T16:35:15.071654+00:00
        moved = re.sub(r"(\d)(?=(\+00:00|Z)$)", lambda m: str((int(m.group(1)) + 1) % 10), at) if "." in at \
            else re.sub(r"(\+00:00|Z)$", r".5\1", at)
        assert moved != at
        entries[0]["published_at"] = moved
    _tamper(page, "list_rate_table_log", move_time)
    got = _verify(page)
    assert not got["ok"] and "chain" in got["kinds"], got["text"]
    page.unroute(re.compile(r"/rest/v1/rpc/list_rate_table_log$"))

    def relink(entries):
        entries[-1]["prev_hash"] = "0" * 64
    _tamper(page, "list_rate_table_log", relink)
    got = _verify(page)
    assert not got["ok"] and "chain" in got["kinds"], got["text"]
    page.unroute(re.compile(r"/rest/v1/rpc/list_rate_table_log$"))

    # A table in the log whose entries were changed (an item's rate moved to another): the version
    # no longer covers it.
    def reweigh(entries):
        t = next(e for e in entries if e["gacha_id"] == gacha_id and not e["pity"])
        t["entries"][0][2] -= 1000
        t["entries"][1][2] += 1000
    _tamper(page, "list_rate_table_log", reweigh)
    got = _verify(page)
    assert not got["ok"] and "table" in got["kinds"], got["text"]
    page.unroute(re.compile(r"/rest/v1/rpc/list_rate_table_log$"))

    # And the real answers verify again.
    again = _verify(page)
    assert again["ok"], again["text"]

    # Fifteen minutes after fulfilment the reveal no longer previews: the page knows the window and
    # asks nothing; were it to ask (its clock behind), the database's refusal is shown in words.
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        fulfilled = conn.execute("update app.orders set fulfilled_at = fulfilled_at - interval '15 minutes' "
                                 "where id = %s returning fulfilled_at", (order_id,)).fetchone()[0]
    asked = []
    page.on("request", lambda req: asked.append(req.url) if "/previews" in req.url else None)
    goto(page, f"#/reveal/{order_id}", "#reveal-done")
    assert "特典BOX" in page.locator("#preview-note").inner_text()
    assert page.locator("#cards li.card .front img").count() == 0 and asked == []

    def fresh(order):
        order["fulfilled_at"] = dt.datetime.now(dt.UTC).isoformat()
    _tamper(page, "get_order", fresh)
    watch.expect(rf"/payments/orders/{order_id}/previews$", 409)
    goto(page, "#/history", "#orders")
    goto(page, f"#/reveal/{order_id}", "#reveal-done")
    page.wait_for_function("() => document.querySelector('#preview-note').textContent.includes('15')")
    assert "特典BOX" in page.locator("#preview-note").inner_text() and len(asked) == 1
    assert page.locator("#cards li.card .front img").count() == 0
    assert fulfilled < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=15)
    watch.check()
