"""An admin in Chromium: approves a VTuber application, approves a fan's refund request and executes
it at the (fake) provider; in the fan's own browser the refunded reward leaves the reward box.
Then the audit log's chain is verified and a user is suspended."""

from __future__ import annotations

import time

from koepon.localstack.seed import ADMIN, APPLICANT, HOSHI_GACHA

from .conftest import goto, service_client, shot, sign_in
from .purchases import paying_fan


def test_admin_approves_an_application_and_a_refund_that_empties_the_fans_box(open_page, stack):
    buyer = paying_fan(stack, HOSHI_GACHA, pulls=1)
    bought = time.monotonic()

    # The fan, in their browser: one reward in the box; they ask for a refund with a reason.
    fan, fan_watch = open_page()
    sign_in(fan, buyer["email"], buyer["password"])
    goto(fan, "#/box", "#rewards")
    rows = fan.locator("#rewards tbody tr[data-reward-id]")
    assert rows.count() == 1
    reward_id = rows.first.get_attribute("data-reward-id")
    goto(fan, "#/history", "#orders")
    order = fan.locator(f"#orders tr[data-order-id='{buyer['order_id']}']")
    order.get_by_label("返金の理由").fill("音声が再生できませんでした")
    order.get_by_role("button", name="返金を申請").click()
    fan.wait_for_selector(".flash.ok")

    # The admin: the applicant's application first.
    admin, admin_watch = open_page()
    sign_in(admin, ADMIN.email, ADMIN.password)
    # The rollups the KPIs read are kept by a job every minute; run it once the sale is 2 s old.
    time.sleep(max(0.0, 2.1 - (time.monotonic() - bought)))
    service_client(stack.api_url).rpc("service_refresh_rollups", {}).execute()
    goto(admin, "#/admin", "#kpis")
    assert "¥300" in admin.locator("#kpis").inner_text()
    # The platform's sales chart the gross per VTuber (the report's by_vtuber), not per gacha.
    admin.wait_for_selector("#chart-1")
    assert admin.locator("figure:has(#chart-1) figcaption").inner_text() == "VTuber別売上"
    labels = admin.evaluate("window.Chart.getChart('chart-1').data.labels")
    assert "Hoshi Kirara" in labels
    per_vtuber = admin.evaluate("window.Chart.getChart('chart-1').data.datasets[0].data")
    assert per_vtuber[labels.index("Hoshi Kirara")] >= 300
    shot(admin, "admin-kpis")
    goto(admin, "#/admin/applications", "#applications")
    shot(admin, "admin-applications")
    app_rows = admin.locator("#applications tbody tr[data-application-id]")
    assert app_rows.count() == 1
    app_rows.first.get_by_role("button", name="承認").click()
    admin.wait_for_selector(".flash.ok")
    admin.wait_for_selector("#applications tbody tr:not([data-application-id])")  # the queue is empty
    goto(admin, "#/admin/users", "#users")
    admin.get_by_label("メールアドレス（前方一致）").fill(APPLICANT.email)
    admin.locator("#user-search button").click()
    admin.wait_for_selector(f"#users tr[data-user-id='{APPLICANT.user_id}'] td:text-matches('vtuber')")

    # The refund: approve, then execute at the provider; its refund event revokes the reward.
    goto(admin, "#/admin/refunds", "#refunds-requested")
    req = admin.locator("#refunds-requested tbody tr[data-refund-id]")
    assert req.count() == 1
    refund_id = req.first.get_attribute("data-refund-id")
    shot(admin, "admin-refunds")
    req.first.get_by_role("button", name="承認").click()
    approved = admin.locator(f"#refunds-approved tr[data-refund-id='{refund_id}']")
    approved.wait_for()
    approved.get_by_role("button", name="返金を実行").click()
    admin.wait_for_selector(".flash.ok:has-text('stripe')")  # the provider's refund id is shown

    deadline = time.monotonic() + 20
    while True:
        goto(fan, "#/box", "#rewards")
        if fan.locator(f"#rewards tr[data-reward-id='{reward_id}']").count() == 0:
            break
        assert time.monotonic() < deadline, "the refunded reward is still in the fan's box after 20 s"
        time.sleep(0.5)
    assert fan.locator(f"#revoked li[data-reward-id='{reward_id}']").count() == 1
    shot(fan, "reward-box-after-refund")

    goto(admin, "#/admin/refunds", "#refunds-recent")
    recent = admin.locator(f"#refunds-recent tr[data-refund-id='{refund_id}']")
    assert recent.get_attribute("data-status") == "completed"

    # The audit log: the approval and the refund review are in it, and the chain holds.
    goto(admin, "#/admin/audit", "#verify-chain")
    log = admin.locator("#audit").inner_text()
    assert "application.approve" in log
    admin.locator("#verify-chain").click()
    assert admin.wait_for_selector("#chain-result[data-ok]").get_attribute("data-ok") == "true"
    shot(admin, "admin-audit")

    # The other queues draw without a fault (none of their rows are made by this journey).
    goto(admin, "#/admin/disputes", "#disputes")
    goto(admin, "#/admin/payments", "#payment-events")

    # Suspending the buyer takes a written reason; without one the API's refusal is shown in words.
    goto(admin, "#/admin/users", "#users")
    admin.get_by_label("メールアドレス（前方一致）").fill(buyer["email"])
    admin.locator("#user-search button").click()
    user = admin.locator(f"#users tr[data-user-id='{buyer['user_id']}']")
    user.wait_for()
    admin_watch.expect(r"/rest/v1/rpc/admin_suspend_user$", 400)
    user.get_by_role("button", name="停止").click()
    assert "理由を入力してください" in admin.wait_for_selector(".flash.error").inner_text()
    user.get_by_label("理由").fill("チャージバックの調査中")
    user.get_by_role("button", name="停止").click()
    admin.wait_for_selector(f"#users tr[data-user-id='{buyer['user_id']}'][data-status='suspended']")
    shot(admin, "admin-users")
    fan_watch.check()
    admin_watch.check()
