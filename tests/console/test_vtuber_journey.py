"""A VTuber in Chromium: uploads content, drafts a gacha whose rates do not add up to 100 % (the
editor refuses to publish), fixes the rate, publishes (the gacha becomes read-only), and after a
fan's purchase sees the sale on the sales dashboard; exports a statement as CSV."""

from __future__ import annotations

import base64
import time
import uuid

from koepon.localstack.seed import HOSHI, HOSHI_VTUBER

from .conftest import goto, service_client, shot, sign_in
from .purchases import paying_fan

# A 1×1 PNG: real image bytes, so the upload passes Storage's MIME check as a browser's would.
PREFIX = f"{HOSHI_VTUBER}/"  # a VTuber writes only under their own folder
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
                       "AABJRU5ErkJggg==")


def test_vtuber_fixes_the_rates_publishes_and_sees_the_sale(open_page, stack):
    page, watch = open_page()
    sign_in(page, HOSHI.email, HOSHI.password)

    # Upload a content file into the VTuber's own folder of the private rewards bucket.
    goto(page, "#/vtuber", "#upload-form")
    name = f"card-{uuid.uuid4().hex[:6]}.png"
    page.locator("#upload-file").set_input_files({"name": name, "mimeType": "image/png", "buffer": PNG})
    page.locator("#upload-form button").click()
    page.wait_for_selector(f"#files code:text-is('{PREFIX}{name}')")
    shot(page, "vtuber-profile")

    # A new draft with two items whose rates add up to 90 %.
    goto(page, "#/vtuber/gachas", "#new-gacha-form")
    title = f"ブラウザの新作ガチャ {uuid.uuid4().hex[:4]}"
    page.get_by_label("タイトル").fill(title)
    page.locator("#new-gacha-form button").click()
    page.wait_for_selector("#add-item-form")
    for item, rarity, rate in (("おやすみボイス", "N", "60"), ("特別イラスト", "SSR", "30")):
        page.locator("#add-name").fill(item)
        page.locator("#add-rarity").select_option(rarity)
        page.locator("#add-rate").fill(rate)
        page.locator("#add-content").select_option(f"{PREFIX}{name}")
        page.locator("#add-item-form button").click()
        page.wait_for_selector(f"#items input.item-name[value='{item}']")
    assert page.locator("#rate-sum").get_attribute("data-ppm") == "900000"
    assert "bad" in page.locator("#rate-sum").get_attribute("class")

    page.locator("#publish").click()
    error = page.wait_for_selector(".flash.error")
    assert "90.0000 %" in error.inner_text()
    assert page.locator("#gacha-status").get_attribute("data-status") == "draft"
    shot(page, "gacha-editor")

    # The fix: 40 % for the SSR; the live sum reaches 100 % and publishing goes through.
    page.locator("#items tbody tr").nth(1).locator("input.item-rate").fill("40")
    assert page.locator("#rate-sum").get_attribute("data-ppm") == "1000000"
    assert "¥250（税込）" in page.locator("#expected-cost").inner_text()  # ceil(¥100 / 0.4)
    page.locator("#publish").click()
    page.wait_for_selector("#read-only")
    assert page.locator("#gacha-status").get_attribute("data-status") == "published"
    assert page.locator("#items input.item-rate").first.is_disabled()
    shot(page, "gacha-published")
    gacha_id = page.evaluate("location.hash").split("/")[-1]

    # A fan buys a 10-pull of it; the rollup job (every minute) is run once the sale is 2 s old.
    paying_fan(stack, gacha_id, pulls=10)
    time.sleep(2.1)
    service_client(stack.api_url).rpc("service_refresh_rollups", {}).execute()

    goto(page, "#/vtuber/dashboard", "#kpi-gross")
    page.wait_for_selector("#chart-1")
    labels = page.evaluate("window.Chart.getChart('chart-1').data.labels")
    assert title in labels
    per_gacha = page.evaluate("window.Chart.getChart('chart-1').data.datasets[0].data")
    assert per_gacha[labels.index(title)] == 1000
    assert int(page.locator("#kpi-orders strong").inner_text().replace(",", "")) >= 1
    shot(page, "dashboard")

    goto(page, "#/vtuber/statements", "#statement table")
    with page.expect_download() as dl:
        page.locator("#export-csv").click()
    csv = open(dl.value.path(), encoding="utf-8").read().splitlines()
    assert csv[0].startswith("month,status,gross_jpy,")
    assert csv[1].split(",")[1] == "open"
    shot(page, "statements")

    goto(page, "#/vtuber/exchange", "#exchange-item-form")
    shot(page, "vtuber-exchange")
    watch.check()

