"""A fan in Chromium: signs up, reads the odds, buys a 10-pull through the (fake) card checkout,
watches the ten results arrive over Realtime and turn over rarest last, exchanges medals, downloads
a reward, and verifies their pulls in the browser (WebCrypto) after revealing the seed."""

from __future__ import annotations

import re

from koepon.localstack.seed import EXCHANGE_ITEMS, HOSHI_GACHA, HOSHI_VTUBER
from koepon.tools.fairness import rate_log_hash

from .conftest import goto, new_email, shot

RANK = {"N": 1, "R": 2, "SR": 3, "SSR": 4, "UR": 5}
DAILY_WALLPAPER = EXCHANGE_ITEMS[HOSHI_VTUBER][3]  # 20 medals, an image, two a day


def test_fan_signs_up_buys_watches_the_reveal_exchanges_downloads_and_verifies(open_page, stack):
    page, watch = open_page()
    shot(page, "catalog")

    # Sign up (auto-confirmed locally, as the Supabase CLI's default), birth date given at sign-up.
    goto(page, "#/signup", "#signup-form")
    email = new_email("console-fan")
    page.get_by_label("メールアドレス").fill(email)
    page.get_by_label(re.compile("^パスワード")).fill("fan-password-123")
    page.get_by_label("表示名").fill("ブラウザのファン")
    page.get_by_label(re.compile("^生年月日")).fill("1995-04-01")
    page.get_by_role("button", name="登録する").click()
    page.wait_for_selector("#who-email")
    assert page.locator("#who-email").inner_text() == email

    # The gacha's disclosure: odds summing to 100 %, pity, the observed-vs-published audit.
    goto(page, f"#/gacha/{HOSHI_GACHA}", "#odds-table")
    assert "100.0000 %" in page.locator("main").inner_text()
    assert "天井" in page.locator("#pity").inner_text()
    assert page.locator("#audit-table tbody tr").count() >= 1
    assert "¥3,000（税込）" in page.locator("#buy-10").inner_text()
    shot(page, "gacha")

    # Buy 10 pulls with the card form (the fake Stripe stands in for Stripe's payment page).
    page.get_by_label("支払い方法").select_option("stripe")
    page.locator("#buy-10").click()
    page.wait_for_selector("#card-form")
    page.get_by_label("カード番号").fill("4242 4242 4242 4242")
    page.get_by_label("有効期限").fill("12/34")
    page.get_by_label("セキュリティコード").fill("123")
    shot(page, "checkout")
    page.locator("#pay").click()

    # The ten results arrive over Realtime and are turned over one by one, the rarest last.
    page.wait_for_selector("#cards li.card", timeout=20_000)
    cards = page.locator("#cards li.card")
    assert cards.count() == 10
    page.wait_for_selector("#reveal-done", timeout=20_000)
    assert page.locator("#cards li.card.revealed").count() == 10
    ranks = [RANK[r] for r in cards.evaluate_all("els => els.map(e => e.dataset.rarity)")]
    assert ranks == sorted(ranks), f"the cards were not revealed rarest last: {ranks}"
    indexes = cards.evaluate_all("els => els.map(e => Number(e.dataset.index))")
    assert sorted(indexes) == list(range(1, 11))
    assert "+110" in page.locator("#reveal-done").inner_text()  # 10 × 10 medals + 10 bonus
    # Each card plays its voice (a preview, not a download: the payment service signs it for a
    # minute and the database counts nothing); the MP3s load with their duration.
    page.wait_for_function("() => document.querySelectorAll('#cards li.card .front audio').length === 10"
                           " && [...document.querySelectorAll('#cards audio')].every((a) => a.duration > 0.9)")
    assert "数えられません" in page.locator("#preview-note").inner_text()
    shot(page, "reveal-voices")

    # Medals, then the exchange: 20 medals for the daily wallpaper.
    goto(page, "#/medals", "#balances")
    row = page.locator(f"#balances tr[data-vtuber-id='{HOSHI_VTUBER}']")
    assert row.locator(".balance").inner_text() == "110"
    shot(page, "medals")
    row.get_by_role("link").click()
    page.wait_for_selector("#exchange-items")
    item = page.locator(f"#exchange-items tr[data-item-id='{DAILY_WALLPAPER}']")
    assert "今日あと 2 回" in item.inner_text()
    item.get_by_role("button", name="交換する").click()
    page.wait_for_selector(".flash.ok")
    assert "残り 90 枚" in page.locator(".flash.ok").inner_text()
    page.wait_for_selector("#exchange-balance strong:text-is('90')")
    shot(page, "exchange")

    # The reward box: 10 pulls + 1 exchange (newest first); the wallpaper is downloaded through the
    # payment service's signed URL and previewed.
    goto(page, "#/box", "#rewards")
    rewards = page.locator("#rewards tbody tr[data-reward-id]")
    assert rewards.count() == 11
    assert "Daily wallpaper" in rewards.first.inner_text()
    with page.expect_download() as dl:
        rewards.first.get_by_role("button", name="ダウンロード").click()
    assert dl.value.suggested_filename == "daily-wallpaper.png"
    assert open(dl.value.path(), "rb").read().startswith(b"\x89PNG")
    page.wait_for_selector("#preview img")
    assert page.locator("#preview img").evaluate("img => img.complete && img.naturalWidth") == 240
    assert "あと 2 回" in page.locator("#preview").inner_text()
    shot(page, "reward-box")

    goto(page, "#/history", "#orders")
    assert page.locator("#orders tr[data-status='fulfilled']").count() == 1
    shot(page, "history")

    # Fairness: reveal the seed, then recompute every pull in the browser.
    goto(page, "#/fairness", "#verify")
    committed = page.locator("#active-hash").inner_text()
    page.locator("#rotate-seed").click()
    page.wait_for_selector("#revealed tbody tr code.seed")
    assert committed in page.locator("#revealed").inner_text()
    page.locator("#verify").click()
    summary = page.wait_for_selector("#verify-summary")
    assert summary.get_attribute("data-ok") == "true", page.locator("#verify-result").inner_text()
    assert summary.get_attribute("data-pulls") == "10"
    assert int(summary.get_attribute("data-log-entries")) >= 4  # every published table, chained

    # English, second: the same screen after the switch.
    page.get_by_label("言語").select_option("en")
    page.wait_for_selector("#verify:text-is('Verify my pulls')")
    assert "All amounts include consumption tax" in page.locator("footer").inner_text()
    page.get_by_label("Language").select_option("ja")
    watch.check()


def test_a_declined_card_and_a_missing_birth_date_are_told_in_words(open_page, stack):
    page, watch = open_page()
    goto(page, "#/signup", "#signup-form")
    page.get_by_label("メールアドレス").fill(new_email("console-nobirth"))
    page.get_by_label(re.compile("^パスワード")).fill("fan-password-123")
    page.get_by_role("button", name="登録する").click()
    page.wait_for_selector("#who-email")

    # No birth date: create_order refuses (PT422), and the page says why in words.
    watch.expect(r"/rest/v1/rpc/create_order$", 422)
    goto(page, f"#/gacha/{HOSHI_GACHA}", "#buy-1")
    page.locator("#buy-1").click()
    error = page.wait_for_selector(".flash.error")
    assert "生年月日を登録してください" in error.inner_text()

    goto(page, "#/account", "#profile-form")
    page.get_by_label(re.compile("^生年月日")).fill("2000-01-01")
    page.locator("#profile-form button").click()
    page.wait_for_selector(".flash.ok")
    assert "成人のため" in page.locator("#limits").inner_text()

    # Stripe's declining test card: the fake answers 402 card_declined, the fan reads it in words.
    watch.expect(r"/stripe/v1/payment_intents/.+/confirm$", 402)
    goto(page, f"#/gacha/{HOSHI_GACHA}", "#buy-1")
    page.locator("#buy-1").click()
    page.wait_for_selector("#card-form")
    page.get_by_label("カード番号").fill("4000 0000 0000 0002")
    page.get_by_label("有効期限").fill("12/34")
    page.get_by_label("セキュリティコード").fill("123")
    page.locator("#pay").click()
    error = page.wait_for_selector(".flash.error")
    assert "カードが拒否されました" in error.inner_text()
    watch.check()


def test_konbini_shows_the_payment_slip_and_the_results_arrive_when_paid_later(open_page, stack):
    page, watch = open_page()
    goto(page, "#/signup", "#signup-form")
    page.get_by_label("メールアドレス").fill(new_email("console-konbini"))
    page.get_by_label(re.compile("^パスワード")).fill("fan-password-123")
    page.get_by_label(re.compile("^生年月日")).fill("1990-02-02")
    page.get_by_role("button", name="登録する").click()
    page.wait_for_selector("#who-email")

    # With the keyboard only: choose konbini in the select, Tab to the 1-pull button, Enter.
    goto(page, f"#/gacha/{HOSHI_GACHA}", "#buy-1")
    page.get_by_label("支払い方法").focus()
    page.keyboard.press("ArrowDown")
    assert page.get_by_label("支払い方法").input_value() == "komoju"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "buy-1"
    page.keyboard.press("Enter")
    page.wait_for_selector("#konbini-slip")
    assert "お支払い待ち" in page.locator("#order-status").inner_text()
    shot(page, "konbini")

    # KOMOJU's hosted page (the fake's): the slip with the receipt number; paying at the store later
    # sends payment.authorized then payment.captured, and the waiting page reveals the pull.
    with page.context.expect_page() as opened:
        page.locator("#konbini-slip").click()
    slip = opened.value
    slip.wait_for_selector("#receipt")
    assert "¥300（税込）" in slip.locator("#amount").inner_text()
    slip.locator("#pay-at-store").click()
    slip.wait_for_selector("#paid")
    slip.close()

    page.wait_for_selector("#reveal-done", timeout=20_000)
    assert page.locator("#cards li.card.revealed").count() == 1
    watch.check()


def test_the_browser_verifier_matches_the_documented_vectors_and_catches_a_wrong_seed(open_page):
    """console/js/fairness.js against docs/fairness.md's test vectors, in Chromium's WebCrypto."""
    page, watch = open_page()
    got = page.evaluate("""async () => {
        const f = await import('/js/fairness.js')
        const seed = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'
        const rolls = []
        for (const n of [0, 1, 2, 3, 4]) rolls.push(await f.roll(seed, 'koepon', n, 1000000))
        const table = [['11111111-1111-1111-1111-111111111111', 'N', 700000],
                       ['22222222-2222-2222-2222-222222222222', 'SR', 299900],
                       ['33333333-3333-3333-3333-333333333333', 'UR', 100]]
        const pub = (hash) => ({ active: {}, orders: new Map(), log: [], revealed: [{ seed_id: 's', server_seed: seed,
          server_seed_hash: hash, client_seed: 'koepon', next_nonce: 0, orders: [] }] })
        const none = async () => { throw new Error('no API call expected') }
        const wrong = await f.verify(pub('0'.repeat(64)), none)
        const right = await f.verify(pub('630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd'), none)
        const entry = { seq: 7, gacha_id: '11111111-1111-1111-1111-111111111111', pity: true, version: 'ab'.repeat(32),
                        prev_hash: 'cd'.repeat(32), published_at: '2026-11-30T18:35:15.0716+09:00' }
        return { rolls, r3: await f.roll(seed, 'koepon', 0, 3), rejected: await f.roll(seed, 'koepon', 5114, 1000000),
                 version: await f.tableVersion(table),
                 items: [722706, 999899, 999900].map((r) => f.pick(table, r).rarity),
                 wrongOk: wrong.ok, rightOk: right.ok,
                 at: f.utcMicros(entry.published_at), logHash: await f.rateLogHash(entry),
                 firstHash: await f.rateLogHash({ ...entry, seq: 1, pity: false, prev_hash: null,
                                                  published_at: '2026-11-30 09:35:15+00' }) }
    }""")
    assert got["rolls"] == [722706, 728870, 585462, 603252, 327039]
    assert got["r3"] == 2
    assert got["rejected"] == 224859  # round 0 rejected (x = 4294318898 ≥ 4294000000)
    assert got["version"] == "936e1131b984bb4b1ccb45c4a7327d4f452b37af26b6055af7ea9ddf05c966e4"
    assert got["items"] == ["SR", "SR", "UR"]
    assert got["wrongOk"] is False and got["rightOk"] is True
    # The rate-table log's link hash, as the Python verifier computes it (microseconds, UTC).
    assert got["at"] == "2026-11-30T09:35:15.071600Z"
    gid, version = "11111111-1111-1111-1111-111111111111", "ab" * 32
    assert got["logHash"] == rate_log_hash("cd" * 32, 7, gid, True, version, "2026-11-30T18:35:15.0716+09:00")
    assert got["firstHash"] == rate_log_hash(None, 1, gid, False, version, "2026-11-30T09:35:15+00:00")
    watch.check()
