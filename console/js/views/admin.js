// The admin's screens: KPIs, VTuber applications, refund requests (approve, then execute at the
// provider through the payment service), disputes, flagged payments, users (suspend), the audit log
// with "verify chain".
import { payments, rpc } from '../api.js'
import { L } from '../i18n.js'
import { jst, jstDate, num, yen, yenPlain } from '../format.js'
import { act, field, fill, flash, h, section, table } from '../ui.js'
import { go, state } from '../app.js'
import { renderSales } from './vtuber.js'

const needAdmin = () => {
  if (!state.session) { go('#/signin'); return false }
  return true
}
const reasonInput = (id, label) => {
  const i = h('input', { type: 'text', id, maxlength: 1000, class: 'reason' })
  return [i, h('label', { for: id, class: 'sr-only' }, label)]
}

export async function kpis (view) {
  if (!needAdmin()) return
  const from = jstDate(new Date(), -29)
  const to = jstDate()
  const k = await rpc('admin_get_kpis', { p_from: from, p_to: to })
  const sales = await rpc('admin_get_sales', { p_vtuber_id: null, p_from: from, p_to: to })
  const card = (label, value) => h('div', { class: 'kpi' }, h('span', {}, label), h('strong', {}, value))
  const out = h('div', {})
  fill(view, h('h1', {}, L('KPI（直近30日）', 'KPIs (last 30 days)')),
    h('div', { class: 'kpis', id: 'kpis' },
      card(L('流通額（税込）', 'GMV (tax incl.)'), yenPlain(k.gmv_jpy)), card(L('注文数', 'Paid orders'), num(k.paid_orders)),
      card(L('課金ユーザー', 'Paying users'), num(k.paying_users)), card(L('返金率', 'Refund rate'), k.refund_rate === null ? '—' : `${(k.refund_rate * 100).toFixed(2)} %`),
      card(L('チャージバック率', 'Dispute rate'), k.dispute_rate === null ? '—' : `${(k.dispute_rate * 100).toFixed(2)} %`), card(L('未使用メダル', 'Outstanding medals'), num(k.outstanding_medals)),
      card(L('審査待ちの返金', 'Refunds to review'), num(k.refund_requests_awaiting_review)), card(L('未解決の照合差異', 'Open reconciliation issues'), num(k.open_reconciliation_issues))),
    k.rate_audit_alerts?.length ? section(L('排出率の警告', 'Rate audit alerts'), h('ul', {}, k.rate_audit_alerts.map((a) => h('li', {}, `${a.title}: p = ${a.p_value}`)))) : null,
    k.failed_jobs_24h?.length ? section(L('失敗した定期ジョブ（24時間）', 'Failed jobs (24 h)'), h('ul', {}, k.failed_jobs_24h.map((j) => h('li', {}, `${j.job}: ${j.failures} — ${j.last_message}`)))) : null,
    section(L('プラットフォーム全体の売上', 'Platform sales'), out))
  renderSales(out, sales, true)
}

export async function applications (view) {
  if (!needAdmin()) return
  const page = await rpc('admin_list_vtuber_applications', { p_status: 'pending', p_limit: 100 })
  fill(view, h('h1', {}, L('VTuber申請', 'VTuber applications')),
    table([L('VTuber名', 'Name'), L('紹介', 'Description'), L('申請日時', 'Submitted'), L('理由（却下時は必須）', 'Reason (needed to reject)'), ''], page.items.map((a) => {
      const [reason, label] = reasonInput(`reason-${a.application_id}`, L('理由', 'Reason'))
      const decide = (decision) => (e) => act(e.target, async () => {
        await rpc('review_vtuber_application', { p_application_id: a.application_id, p_decision: decision, p_reason: reason.value || null })
        flash(decision === 'approve' ? L(`「${a.vtuber_name}」を承認しました。`, `Approved "${a.vtuber_name}".`) : L(`「${a.vtuber_name}」を却下しました。`, `Rejected "${a.vtuber_name}".`))
        go('#/admin/applications')
      })
      return h('tr', { dataset: { applicationId: a.application_id } }, h('td', {}, a.vtuber_name), h('td', {}, a.description), h('td', {}, jst(a.created_at)),
        h('td', {}, label, reason), h('td', {}, h('button', { type: 'button', class: 'approve', onclick: decide('approve') }, L('承認', 'Approve')), ' ',
          h('button', { type: 'button', class: 'reject danger', onclick: decide('reject') }, L('却下', 'Reject'))))
    }), { id: 'applications' }))
}

const refundStatus = (s) => ({ requested: L('申請中', 'Requested'), approved: L('承認済み', 'Approved'), executing: L('返金処理中', 'Executing'),
  completed: L('返金完了', 'Completed'), rejected: L('却下', 'Rejected') })[s] || s

export async function refunds (view) {
  if (!needAdmin()) return
  const requested = await rpc('admin_list_refund_requests', { p_status: 'requested', p_limit: 100 })
  const approved = await rpc('admin_list_refund_requests', { p_status: 'approved', p_limit: 100 })
  const recent = await rpc('admin_list_refund_requests', { p_status: null, p_limit: 20 })
  const reqRows = requested.items.map((r) => {
    const [reason, label] = reasonInput(`reason-${r.refund_id}`, L('理由', 'Reason'))
    const review = (approve) => (e) => act(e.target, async () => {
      await rpc('review_refund', { p_refund_id: r.refund_id, p_approve: approve, p_reason: reason.value || (approve ? L('承認', 'Approved') : null) })
      flash(approve ? L('返金を承認しました。次に「実行」で決済事業者に返金を依頼します。', 'Refund approved: now execute it at the provider.') : L('返金を却下しました。', 'Refund rejected.'))
      go('#/admin/refunds')
    })
    return h('tr', { dataset: { refundId: r.refund_id } }, h('td', {}, jst(r.created_at)), h('td', {}, h('code', {}, r.order_id.slice(0, 8))), h('td', {}, r.reason),
      h('td', { class: 'num' }, yen(r.amount_jpy ?? r.order_amount_jpy)), h('td', {}, label, reason),
      h('td', {}, h('button', { type: 'button', class: 'approve', onclick: review(true) }, L('承認', 'Approve')), ' ',
        h('button', { type: 'button', class: 'reject danger', onclick: review(false) }, L('却下', 'Reject'))))
  })
  const apprRows = approved.items.map((r) => h('tr', { dataset: { refundId: r.refund_id } }, h('td', {}, jst(r.reviewed_at)), h('td', {}, h('code', {}, r.order_id.slice(0, 8))),
    h('td', { class: 'num' }, yen(r.amount_jpy)), h('td', {}, h('button', { type: 'button', class: 'execute', onclick: (e) => act(e.target, async () => {
      const x = await payments(`/payments/refunds/${r.refund_id}/execute`)
      flash(L(`決済事業者に返金を依頼しました（${x.provider} ${x.provider_refund_id}）。完了の通知で特典が取り消されます。`, `Refund submitted to ${x.provider} (${x.provider_refund_id}); its confirmation revokes the rewards.`))
      go('#/admin/refunds')
    }) }, L('返金を実行', 'Execute refund')))))
  fill(view, h('h1', {}, L('返金申請', 'Refund requests')),
    section(L('審査待ち', 'To review'), table([L('申請日時', 'Requested'), L('注文', 'Order'), L('理由', 'Reason'), L('金額', 'Amount'), L('審査メモ', 'Note'), ''], reqRows, { id: 'refunds-requested' })),
    section(L('承認済み（実行待ち）', 'Approved (to execute)'), table([L('承認日時', 'Approved'), L('注文', 'Order'), L('金額', 'Amount'), ''], apprRows, { id: 'refunds-approved' })),
    section(L('最近の返金', 'Recent refunds'), table([L('申請日時', 'Requested'), L('注文', 'Order'), L('状態', 'Status'), L('金額', 'Amount')],
      recent.items.map((r) => h('tr', { dataset: { refundId: r.refund_id, status: r.status } }, h('td', {}, jst(r.created_at)), h('td', {}, h('code', {}, r.order_id.slice(0, 8))), h('td', {}, refundStatus(r.status)), h('td', { class: 'num' }, yen(r.amount_jpy ?? r.order_amount_jpy)))), { id: 'refunds-recent' })))
}

export async function disputes (view) {
  if (!needAdmin()) return
  const page = await rpc('admin_list_disputes', { p_limit: 100 })
  fill(view, h('h1', {}, L('チャージバック', 'Disputes')),
    table([L('日時', 'Opened'), L('事業者', 'Provider'), L('注文', 'Order'), L('状態', 'Status'), L('金額', 'Amount')], page.items.map((d) =>
      h('tr', {}, h('td', {}, jst(d.created_at)), h('td', {}, d.provider), h('td', {}, h('code', {}, d.order_id.slice(0, 8))), h('td', {}, d.status), h('td', { class: 'num' }, yen(d.amount_jpy)))), { id: 'disputes' }))
}

export async function flagged (view) {
  if (!needAdmin()) return
  const page = await rpc('admin_list_payment_events', { p_limit: 100 })
  const issues = await rpc('admin_list_reconciliation_issues', { p_status: 'open', p_limit: 100 })
  fill(view, h('h1', {}, L('要確認の決済', 'Flagged payments')),
    h('p', { class: 'note' }, L('決済イベントのうち自動で処理できなかったもの（金額不一致・二重決済など）と、照合で見つかった差異です。', 'Payment events the inbox could not act on (amount mismatch, duplicate payment, …) and discrepancies found by reconciliation.')),
    table([L('受信日時', 'Received'), L('事業者', 'Provider'), L('種類', 'Type'), L('結果', 'Outcome'), L('詳細', 'Detail')], page.items.map((e) =>
      h('tr', {}, h('td', {}, jst(e.received_at)), h('td', {}, e.provider), h('td', {}, e.type), h('td', {}, e.outcome), h('td', {}, e.detail || ''))), { id: 'payment-events' }),
    section(L('照合の差異', 'Reconciliation issues'), table([L('検出', 'Detected'), L('種類', 'Kind'), L('注文', 'Order'), L('詳細', 'Detail'), L('対応', 'Resolution')], issues.items.map((i) => {
      const [res, label] = reasonInput(`res-${i.id}`, L('対応内容', 'What was done'))
      return h('tr', {}, h('td', {}, jst(i.detected_at)), h('td', {}, i.kind), h('td', {}, i.order_id ? h('code', {}, String(i.order_id).slice(0, 8)) : '—'), h('td', {}, typeof i.detail === 'string' ? i.detail : JSON.stringify(i.detail)),
        h('td', {}, label, res, ' ', h('button', { type: 'button', onclick: (e) => act(e.target, async () => { await rpc('admin_resolve_reconciliation_issue', { p_issue_id: i.id, p_resolution: res.value }); go('#/admin/payments') }) }, L('解決', 'Resolve'))))
    }))))
}

export async function users (view) {
  if (!needAdmin()) return
  const params = new URLSearchParams(location.hash.split('?')[1] || '')
  const prefix = h('input', { type: 'search', id: 'email-prefix', value: params.get('q') || '' })
  const out = h('div', {})
  const form = h('form', { class: 'cols', id: 'user-search' }, field(L('メールアドレス（前方一致）', 'E-mail starts with'), prefix), h('button', { type: 'submit' }, L('検索', 'Search')))
  async function load () {
    const page = await rpc('admin_list_users', { p_email_prefix: prefix.value || null, p_limit: 50 })
    fill(out, table([L('メール', 'E-mail'), L('表示名', 'Name'), L('役割', 'Roles'), L('状態', 'Status'), L('理由', 'Reason'), ''], page.items.map((u) => {
      const [reason, label] = reasonInput(`reason-${u.user_id}`, L('理由', 'Reason'))
      const suspended = u.status === 'suspended'
      const btn = h('button', { type: 'button', class: suspended ? 'unsuspend' : 'suspend danger' }, suspended ? L('停止を解除', 'Unsuspend') : L('停止', 'Suspend'))
      btn.addEventListener('click', () => act(btn, async () => {
        await rpc(suspended ? 'admin_unsuspend_user' : 'admin_suspend_user', { p_user_id: u.user_id, p_reason: reason.value })
        flash(L('更新しました。', 'Updated.'))
        await load()
      }))
      return h('tr', { dataset: { userId: u.user_id, status: u.status } }, h('td', {}, u.email), h('td', {}, u.display_name), h('td', {}, (u.roles || []).join(', ')),
        h('td', {}, u.status, u.flagged ? L('（要注意）', ' (flagged)') : ''), h('td', {}, label, reason), h('td', {}, btn))
    }), { id: 'users' }))
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); act(form.querySelector('button'), load) })
  fill(view, h('h1', {}, L('ユーザー', 'Users')), form, out)
  await load()
}

export async function audit (view) {
  if (!needAdmin()) return
  const page = await rpc('admin_list_audit_log', { p_limit: 100 })
  const result = h('p', { id: 'chain-result', 'aria-live': 'polite' })
  const verify = h('button', { type: 'button', id: 'verify-chain' }, L('ハッシュチェーンを検証', 'Verify chain'))
  verify.addEventListener('click', () => act(verify, async () => {
    const r = await rpc('verify_audit_chain')
    result.dataset.ok = String(r.ok)
    result.className = r.ok ? 'ok' : 'bad'
    result.textContent = r.ok ? L(`改ざんはありません（${num(r.rows_checked)}行を検証）。`, `Intact: ${num(r.rows_checked)} rows checked.`)
      : L(`ID ${r.first_broken_id} で鎖が切れています: ${r.reason}`, `Broken at id ${r.first_broken_id}: ${r.reason}`)
  }))
  fill(view, h('h1', {}, L('監査ログ', 'Audit log')), h('p', {}, verify), result,
    table([L('日時', 'When'), L('操作', 'Action'), L('対象', 'Target'), L('詳細', 'Details'), L('ハッシュ', 'Hash')], page.items.map((a) =>
      h('tr', {}, h('td', {}, jst(a.at)), h('td', {}, a.action), h('td', {}, `${a.target_type || ''} ${a.target_id ? String(a.target_id).slice(0, 8) : ''}`),
        h('td', {}, h('code', { class: 'details' }, JSON.stringify(a.details))), h('td', {}, h('code', {}, String(a.hash).slice(0, 12))))), { id: 'audit' }))
}
