// The fan's screens: catalog and odds disclosure, purchase (card via the fake Stripe, konbini via the
// fake KOMOJU), the live reveal over Realtime, medals, the exchange, the reward box, the fairness
// page, purchase history with refund requests.
import { ApiError, confirmCard, payments, rpc, sb, select } from '../api.js'
import { L, errorText } from '../i18n.js'
import { jst, num, rarityRank, yen } from '../format.js'
import { act, download, field, fill, flash, h, section, showError, table } from '../ui.js'
import { go, state } from '../app.js'
import { verifyMine } from '../fairness.js'

const saleLabel = (s) => ({ on_sale: L('販売中', 'On sale'), upcoming: L('販売予定', 'Upcoming'), ended: L('販売終了', 'Ended') })[s] || s
const rarityBadge = (r) => h('span', { class: `rarity r-${r}` }, r)
const needSignIn = () => { go('#/signin'); return null }

// How long after fulfilment the database allows previews (sql/economy/75_reveal_previews.sql);
// the page does not ask after that (the server would refuse: preview_window_closed).
const PREVIEW_MS = 15 * 60 * 1000

// Storage answers with the object's stored type; a generic one is read from the file's extension.
const BY_EXT = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', mp3: 'audio/mpeg', m4a: 'audio/mp4', aac: 'audio/aac', wav: 'audio/wav', ogg: 'audio/ogg', mp4: 'video/mp4', webm: 'video/webm', mov: 'video/quicktime' }
function mediaType (type, path) {
  if (type && type !== 'application/octet-stream') return type
  return BY_EXT[String(path).split('.').pop().toLowerCase()] || type || ''
}
function mediaElement (type, url, name) {
  return type.startsWith('image/') ? h('img', { src: url, alt: name })
    : type.startsWith('audio/') ? h('audio', { src: url, controls: true, preload: 'metadata', 'aria-label': name })
      : type.startsWith('video/') ? h('video', { src: url, controls: true, preload: 'metadata', 'aria-label': name }) : null
}

export async function catalog (view) {
  const gachas = await select('gachas', (q) => q.order('published_at', { ascending: false }))
  const cards = gachas.map((g) => h('article', { class: 'gacha-card', dataset: { gachaId: g.id } },
    h('h2', {}, h('a', { href: `#/gacha/${g.id}` }, g.title)),
    h('p', { class: 'muted' }, g.vtuber_name, ' · ', saleLabel(g.sale_state)),
    h('p', {}, L('単発', '1 pull'), ' ', yen(g.price_single), ' / ', L('10連', '10 pulls'), ' ', yen(g.price_ten)),
    h('p', { class: 'muted' }, L('販売期間', 'On sale'), ': ', jst(g.start_at), ' – ', jst(g.end_at))))
  fill(view, h('h1', {}, L('ガチャ一覧', 'Gachas')), h('div', { class: 'grid' }, cards))
}

export async function gacha (view, id) {
  const g = await rpc('get_gacha', { p_gacha_id: id })
  const audit = await rpc('get_rate_audit', { p_gacha_id: id })
  const odds = table([L('アイテム', 'Item'), L('レアリティ', 'Rarity'), L('提供割合', 'Odds')],
    g.items.map((i) => h('tr', {}, h('td', {}, i.name), h('td', {}, rarityBadge(i.rarity)), h('td', { class: 'num' }, `${Number(i.odds_percent).toFixed(4)} %`))),
    { id: 'odds-table' })
  const byRarity = table([L('レアリティ', 'Rarity'), L('提供割合', 'Odds')],
    g.rarity_odds.map((r) => h('tr', {}, h('td', {}, rarityBadge(r.rarity)), h('td', { class: 'num' }, `${Number(r.odds_percent).toFixed(4)} %`))))
  const auditRows = (audit.by_rarity || []).map((r) => h('tr', {}, h('td', {}, rarityBadge(r.rarity)),
    h('td', { class: 'num' }, `${Number(r.odds_percent).toFixed(4)} %`), h('td', { class: 'num' }, num(r.observed)),
    h('td', { class: 'num' }, r.observed_percent === null ? '—' : `${Number(r.observed_percent).toFixed(4)} %`), h('td', { class: 'num' }, num(r.expected))))
  const test = audit.rarity_test || {}
  const pity = g.pity ? L(`天井: ${g.pity.pulls}回目までに${g.pity.rarity}以上が確定`, `Pity: ${g.pity.rarity} or better guaranteed within ${g.pity.pulls} pulls`)
    : L('天井なし', 'No pity ceiling')

  const buy = h('div', { class: 'buy', id: 'buy' })
  if (g.sale_state === 'on_sale') {
    const method = h('select', { id: 'pay-method' },
      h('option', { value: 'stripe' }, L('クレジットカード', 'Card')),
      h('option', { value: 'komoju' }, L('コンビニ払い（KOMOJU）', 'Konbini (KOMOJU)')))
    const buyBtn = (n, price) => h('button', { type: 'button', id: `buy-${n}`, onclick: (e) => act(e.target, async () => {
      if (!state.session) return needSignIn()
      const order = await rpc('create_order', { p_gacha_id: id, p_pull_count: n, p_idempotency_key: crypto.randomUUID() })
      sessionStorage.setItem(`order:${order.order_id}`, JSON.stringify({ method: method.value, receipt: order }))
      go(`#/checkout/${order.order_id}`)
    }) }, n === 1 ? L(`単発を引く ${yen(price)}`, `1 pull — ${yen(price)}`) : L(`10連を引く ${yen(price)}`, `10 pulls — ${yen(price)}`))
    buy.append(field(L('支払い方法', 'Payment method'), method), buyBtn(1, g.price_single), ' ', buyBtn(10, g.price_ten))
  }

  // The launch feed: rare pulls of everyone, and how many are watching (presence).
  const watchers = h('span', { id: 'watchers' }, '—')
  const feedList = h('ul', { id: 'feed' })
  const feed = sb.channel(`gacha:${id}:feed`, { config: { private: true } })
    .on('broadcast', { event: 'rare_pull' }, ({ payload }) => feedList.prepend(h('li', {},
      `${payload.fan ?? L('ファン', 'A fan')} ${L('が', ' pulled ')}${payload.rarity} ${payload.name}${L(' を引きました！', '!')}`)))
    .on('presence', { event: 'sync' }, () => { watchers.textContent = String(Object.keys(feed.presenceState()).length) })
    .subscribe(async (status) => { if (status === 'SUBSCRIBED') await feed.track({ watching: true }) })

  fill(view, 
    h('h1', {}, g.title), h('p', { class: 'muted' }, g.vtuber_name, ' · ', saleLabel(g.sale_state), ' · ', jst(g.start_at), ' – ', jst(g.end_at)),
    g.description ? h('p', {}, g.description) : null,
    buy,
    section(L('提供割合', 'Odds'), odds, h('p', {}, L('合計', 'Total'), ': ', `${Number(g.odds_total_percent).toFixed(4)} %`), byRarity,
      h('p', { id: 'pity' }, pity),
      h('p', {}, L('最高レアリティ（', 'Expected cost of the top rarity ('), g.top_rarity, L('）を引くまでの期待金額: ', '): '), yen(g.expected_cost_top_rarity),
        g.guaranteed_cost_top_rarity ? [L('、最大 ', ', at most '), yen(g.guaranteed_cost_top_rarity)] : null)),
    section(L('排出実績の検証', 'Observed vs published'),
      table([L('レアリティ', 'Rarity'), L('公表', 'Published'), L('実績（回）', 'Observed'), L('実績', 'Observed %'), L('期待値', 'Expected')], auditRows, { id: 'audit-table' }),
      h('p', { id: 'audit-test' }, L(`総排出数 ${num(audit.draws)}（天井 ${num(audit.pity_draws)}）。カイ二乗検定 p値 = `, `${num(audit.draws)} draws (${num(audit.pity_draws)} pity). Chi-square p-value = `),
        test.p_value === null || test.p_value === undefined ? '—' : Number(test.p_value).toFixed(4),
        test.reliable === false ? L('（件数が少なく参考値）', ' (too few draws to be reliable)') : '')),
    section(L('ランチフィード', 'Launch feed'), h('p', {}, L('見ている人: ', 'Watching: '), watchers), feedList))
  return () => sb.removeChannel(feed)
}

// Checkout and reveal are one screen: the order's channel is joined before the payment starts, so
// the results cannot arrive before anyone listens (docs/realtime.md).
export const checkout = (view, orderId) => orderScreen(view, orderId, true)
export const reveal = (view, orderId) => orderScreen(view, orderId, false)

async function orderScreen (view, orderId, paying) {
  if (!state.session) return needSignIn()
  let order = await rpc('get_order', { p_order_id: orderId })
  const saved = JSON.parse(sessionStorage.getItem(`order:${orderId}`) || '{}')
  const stage = h('div', { id: 'stage', class: 'stage' })
  const status = h('p', { id: 'order-status', 'aria-live': 'polite' })
  const shown = new Set()
  let revealing = false

  function showResults (pulls, medals) {
    const fresh = pulls.filter((p) => !shown.has(p.pull_id))
    if (!fresh.length || revealing) return
    revealing = true
    fresh.forEach((p) => shown.add(p.pull_id))
    // Rarest last: the cards are laid out from the commonest to the rarest (draw order within a
    // rarity) and turned over one by one.
    const ordered = [...fresh].sort((a, b) => rarityRank(a.rarity) - rarityRank(b.rarity) || a.index - b.index)
    const cards = ordered.map((p, i) => h('li', { class: 'card', dataset: { rarity: p.rarity, pullId: p.pull_id, index: p.index }, 'aria-label': L(`${i + 1}枚目`, `card ${i + 1}`) },
      h('span', { class: 'back' }, '？'),
      h('span', { class: 'front' }, rarityBadge(p.rarity), h('span', { class: 'name' }, p.name), p.pity ? h('small', {}, L('天井', 'pity')) : null)))
    const list = h('ol', { class: 'cards', id: 'cards' }, cards)
    const previewNote = h('p', { id: 'preview-note', class: 'note', 'aria-live': 'polite' })
    fill(stage, h('h2', {}, L('結果', 'Results')), list, previewNote)
    showPreviews(cards, previewNote).catch(showError)
    const title = view.querySelector('h1')
    if (title) title.textContent = L('ガチャ結果', 'Your pulls')
    status.textContent = L('結果が届きました！', 'Your results are here!')
    let i = 0
    const step = () => {
      if (i >= cards.length) {
        stage.append(h('p', { id: 'reveal-done' }, L(`推しメダル +${medals ?? '?'} 枚。`, `+${medals ?? '?'} oshi medals.`), ' ',
          h('a', { href: '#/box' }, L('特典BOXを見る', 'Open the reward box')), ' · ',
          h('a', { href: `#/gacha/${order.gacha_id}` }, L('もう一度引く', 'Pull again'))))
        return
      }
      cards[i].classList.add('revealed')
      cards[i].setAttribute('aria-label', `${cards[i].dataset.rarity} ${cards[i].querySelector('.name').textContent}`)
      i += 1
      setTimeout(step, i === cards.length - 1 ? 900 : 350)  // a pause before the rarest
    }
    setTimeout(step, 400)
  }

  // The media on the cards: previews of this order's results (the payment service signs them for a
  // minute; the database allows them for 15 minutes after fulfilment and does not count them as
  // downloads). Each object is fetched once, right away, into a blob: the signed URL would expire
  // before a person presses play on a long clip.
  const objectUrls = []
  async function showPreviews (cards, note) {
    if (order.fulfilled_at && Date.now() - Date.parse(order.fulfilled_at) > PREVIEW_MS) {
      note.textContent = errorText('preview_window_closed')
      return
    }
    let res
    try {
      res = await payments(`/payments/orders/${orderId}/previews`)
    } catch (err) {
      if (!(err instanceof ApiError)) throw err
      console.info('API refusal', err.code, err.details)
      note.textContent = err.message
      return
    }
    const byPull = new Map(res.previews.map((p) => [String(p.pull_id), p]))
    const blobs = new Map()
    for (const card of cards) {
      const p = byPull.get(card.dataset.pullId)
      if (!p) continue
      if (!blobs.has(p.signed_url)) {
        blobs.set(p.signed_url, fetch(p.signed_url).then(async (r) => {
          if (!r.ok) throw new ApiError(null, L('プレビューを取得できませんでした。', 'The preview could not be fetched.'))
          const type = mediaType(p.mimetype || r.headers.get('content-type'), p.path)
          const url = URL.createObjectURL(new Blob([await r.arrayBuffer()], { type }))
          objectUrls.push(url)
          return { url, type }
        }))
      }
      const { url, type } = await blobs.get(p.signed_url)
      const name = card.querySelector('.name').textContent
      const el = mediaElement(type, url, name)
      if (el) card.querySelector('.front').prepend(el)
    }
    note.textContent = L('プレビューはダウンロード回数に数えられません。', 'Previews do not count as downloads.')
  }

  const channel = sb.channel(`order:${orderId}`, { config: { private: true } })
    .on('broadcast', { event: 'results' }, ({ payload }) => showResults(payload.pulls, payload.medals))
    .on('broadcast', { event: 'status' }, ({ payload }) => { status.textContent = L(`注文は ${payload.status} になりました。`, `The order is ${payload.status}.`) })
    .on('broadcast', { event: 'refund' }, ({ payload }) => { status.textContent = L(`${yen(payload.refunded_jpy)} が返金されました。`, `${yen(payload.refunded_jpy)} was refunded.`) })
  const joined = new Promise((resolve) => channel.subscribe(async (s) => {
    if (s === 'SUBSCRIBED') {
      resolve()
      // Broadcast is at most once: after a (re)join, catch up from the order itself.
      order = await rpc('get_order', { p_order_id: orderId })
      if (order.status === 'fulfilled') {
        showResults(order.pulls.map((p, i) => ({ ...p, index: i + 1, name: p.item_name, item_id: p.gacha_item_id })), order.medals_granted)
      }
    }
  }))
  await joined

  const checkingOut = paying && order.status === 'pending'
  const head = [h('h1', {}, checkingOut ? L('お支払い', 'Checkout') : L('ガチャ結果', 'Your pulls')),
    h('p', {}, L(`${order.pull_count}回 · ${yen(order.amount_jpy)} · 注文 `, `${order.pull_count} pull(s) · ${yen(order.amount_jpy)} · order `), h('code', {}, orderId)), status]
  fill(view, ...head, stage)
  const leave = () => { sb.removeChannel(channel); objectUrls.forEach((u) => URL.revokeObjectURL(u)) }
  if (order.status === 'fulfilled') return leave
  if (!paying || order.status !== 'pending') {
    status.textContent = L(`注文の状態: ${order.status}`, `Order status: ${order.status}`)
    return leave
  }

  if ((saved.method || 'stripe') === 'komoju') {
    const s = await payments('/payments/komoju/sessions', { order_id: orderId, return_url: `${location.origin}/#/reveal/${orderId}` })
    fill(stage, h('h2', {}, L('コンビニ払い', 'Konbini payment')),
      h('p', {}, L('お支払い用紙（受付番号）を開いて、期限までにお店でお支払いください。支払いが確認されると、ここに結果が届きます。',
        'Open the payment slip (receipt number) and pay at the store before the deadline. The results arrive here once the payment is confirmed.')),
      h('p', {}, h('a', { href: s.session_url, target: '_blank', rel: 'noopener', id: 'konbini-slip' }, L('お支払い用紙を開く', 'Open the payment slip'))))
    status.textContent = L('お支払い待ち', 'Waiting for the payment')
    return leave
  }

  const pi = await payments('/payments/stripe/payment-intents', { order_id: orderId })
  const number = h('input', { type: 'text', inputmode: 'numeric', autocomplete: 'cc-number', id: 'card-number', placeholder: '4242 4242 4242 4242', required: true })
  const exp = h('input', { type: 'text', autocomplete: 'cc-exp', id: 'card-exp', placeholder: 'MM/YY', required: true })
  const cvc = h('input', { type: 'text', inputmode: 'numeric', autocomplete: 'cc-csc', id: 'card-cvc', placeholder: '123', required: true })
  const form = h('form', { id: 'card-form', class: 'checkout' },
    h('p', { class: 'note' }, L('ローカルのテスト決済です（Stripe の代わり）。テストカード 4242 4242 4242 4242 が使えます。4000 0000 0000 0002 は拒否されます。',
      'A local test payment standing in for Stripe. Use the test card 4242 4242 4242 4242; 4000 0000 0000 0002 is declined.')),
    h('p', { class: 'amount' }, L('お支払い金額: ', 'Amount: '), yen(pi.amount)),
    field(L('カード番号', 'Card number'), number), field(L('有効期限', 'Expiry'), exp), field(L('セキュリティコード', 'CVC'), cvc),
    h('button', { type: 'submit', id: 'pay' }, L(`${yen(pi.amount)} を支払う`, `Pay ${yen(pi.amount)}`)))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    act(form.querySelector('button'), async () => {
      const [mm, yy] = exp.value.split('/').map((x) => x.trim())
      await confirmCard(pi.payment_intent_id, pi.client_secret, { number: number.value.replace(/\s/g, ''), expMonth: mm, expYear: yy, cvc: cvc.value })
      status.textContent = L('お支払いを確認中…結果を待っています。', 'Payment sent: waiting for your results…')
      form.remove()
      window.history.replaceState(null, '', `#/reveal/${orderId}`)
    })
  })
  fill(stage, form)
  return leave
}

export async function medals (view) {
  if (!state.session) return needSignIn()
  const balances = await rpc('get_medal_balances')
  const ledger = await rpc('list_medal_ledger', { p_limit: 50 })
  const reason = (r) => ({ pull_grant: L('ガチャ', 'Pulls'), exchange: L('交換', 'Exchange'), refund_clawback: L('返金による回収', 'Refund clawback'), admin_adjustment: L('調整', 'Adjustment') })[r] || r
  fill(view, h('h1', {}, L('推しメダル', 'Oshi medals')),
    table(['VTuber', L('残高', 'Balance'), ''], balances.map((b) => h('tr', { dataset: { vtuberId: b.vtuber_id } },
      h('td', {}, b.vtuber_name), h('td', { class: 'num balance' }, num(b.balance)),
      h('td', {}, h('a', { href: `#/exchange/${b.vtuber_id}` }, L('交換所へ', 'Exchange'))))), { id: 'balances' }),
    section(L('履歴', 'History'), table([L('日時', 'When'), L('内容', 'What'), L('増減', 'Change'), L('残高', 'Balance')],
      ledger.map((e) => h('tr', {}, h('td', {}, jst(e.created_at)), h('td', {}, reason(e.reason)), h('td', { class: 'num' }, (e.delta > 0 ? '+' : '') + num(e.delta)), h('td', { class: 'num' }, num(e.new_balance)))))),
    h('p', { class: 'note' }, L('推しメダルは購入できず、そのVTuberの交換所でのみ使えます。', 'Oshi medals cannot be bought; they are spent only in that VTuber\'s exchange.')))
}

export async function exchange (view, vtuberId) {
  if (!state.session) return needSignIn()
  const data = await rpc('list_exchange_items', { p_vtuber_id: vtuberId })
  const rows = data.items.map((it) => {
    const qty = h('input', { type: 'number', min: 1, max: 10, value: 1, id: `qty-${it.id}`, class: 'qty' })
    const btn = h('button', { type: 'button', class: 'exchange-btn', disabled: !it.available_now }, L('交換する', 'Exchange'))
    btn.addEventListener('click', () => act(btn, async () => {
      const r = await rpc('exchange_medals', { p_exchange_item_id: it.id, p_quantity: Number(qty.value), p_idempotency_key: crypto.randomUUID() })
      flash(L(`「${it.name}」と交換しました。残り ${num(r.balance)} 枚。`, `Exchanged for "${it.name}". ${num(r.balance)} medals left.`))
      go(`#/exchange/${vtuberId}`)
    }))
    const limit = it.remaining_limit === null && it.remaining_today === null ? L('制限なし', 'No limit')
      : [it.remaining_limit !== null ? L(`残り ${it.remaining_limit} 回`, `${it.remaining_limit} left`) : null,
          it.remaining_today !== null ? L(`今日あと ${it.remaining_today} 回`, `${it.remaining_today} left today`) : null].filter(Boolean).join(' · ')
    return h('tr', { dataset: { itemId: it.id } }, h('td', {}, it.name, it.description ? h('small', { class: 'muted block' }, it.description) : null),
      h('td', { class: 'num' }, L(`${num(it.medal_cost)} 枚`, `${num(it.medal_cost)} medals`)),
      h('td', {}, it.total_stock === null ? L('在庫制限なし', 'Unlimited') : L(`在庫 ${num(it.total_stock)}`, `${num(it.total_stock)} in stock`)),
      h('td', {}, limit), h('td', {}, h('label', { for: qty.id, class: 'sr-only' }, L('数量', 'Quantity')), qty, ' ', btn))
  })
  fill(view, h('h1', {}, L('交換所', 'Exchange')),
    h('p', { id: 'exchange-balance' }, L('あなたの推しメダル: ', 'Your oshi medals: '), h('strong', {}, num(data.balance))),
    table([L('アイテム', 'Item'), L('必要メダル', 'Cost'), L('在庫', 'Stock'), L('制限', 'Limits'), ''], rows, { id: 'exchange-items' }))
}

export async function box (view) {
  if (!state.session) return needSignIn()
  const rewards = await rpc('list_my_rewards', { p_limit: 200 })
  const preview = h('div', { id: 'preview', 'aria-live': 'polite' })
  const active = rewards.filter((r) => !r.revoked)
  const revoked = rewards.filter((r) => r.revoked)
  const rows = active.map((r) => {
    const btn = h('button', { type: 'button', class: 'download' }, L('ダウンロード', 'Download'))
    btn.addEventListener('click', () => act(btn, async () => {
      const d = await payments(`/payments/rewards/${r.id}/download`)
      const res = await fetch(d.signed_url)
      if (!res.ok) throw new ApiError(null, L('ファイルを取得できませんでした。', 'The file could not be fetched.'))
      const blob = await res.blob()
      const url = URL.createObjectURL(blob)
      const type = mediaType(blob.type, d.path)
      const media = mediaElement(type, url, r.name)
      fill(preview, h('h2', {}, r.name), media || h('p', {}, type), h('p', {}, L(`今日はあと ${d.remaining_today} 回ダウンロードできます。`, `${d.remaining_today} downloads left today.`)))
      download(d.path.split('/').pop(), blob)
    }))
    return h('tr', { dataset: { rewardId: r.id } }, h('td', {}, r.name), h('td', {}, r.rarity ? rarityBadge(r.rarity) : L('交換', 'Exchange')),
      h('td', {}, r.source === 'pull' ? L('ガチャ', 'Pull') : L('交換', 'Exchange')), h('td', {}, jst(r.created_at)), h('td', {}, btn))
  })
  fill(view, h('h1', {}, L('特典BOX', 'Reward box')),
    table([L('特典', 'Reward'), L('レアリティ', 'Rarity'), L('入手', 'From'), L('日時', 'When'), ''], rows, { id: 'rewards' }),
    preview,
    revoked.length ? h('details', { id: 'revoked' }, h('summary', {}, L(`返金により取り消された特典（${revoked.length}件）`, `Revoked by refunds (${revoked.length})`)),
      h('ul', {}, revoked.map((r) => h('li', { dataset: { rewardId: r.id } }, `${r.name} — ${jst(r.revoked_at)}`)))) : null,
    h('p', { class: 'note' }, L('ダウンロードは特典ごとに1日3回までです（日本時間）。', 'Each reward can be downloaded 3 times a day (JST).')))
}

export async function fairness (view) {
  if (!state.session) return needSignIn()
  const f = await rpc('get_fairness', { p_limit: 100 })
  const seedInput = h('input', { type: 'text', id: 'client-seed', maxlength: 64, pattern: '[!-~]{1,64}' })
  const setForm = h('form', { id: 'client-seed-form' }, field(L('新しいクライアントシード', 'New client seed'), seedInput,
    L('空白なしの半角英数記号1〜64文字。入力する前に、上の「次のサーバーシードのハッシュ」を控えてください。', '1–64 printable ASCII characters, no spaces. Note the next server seed hash above before you set it.')),
  h('button', { type: 'submit' }, L('設定する', 'Set')))
  setForm.addEventListener('submit', (e) => {
    e.preventDefault()
    act(setForm.querySelector('button'), async () => {
      const r = await rpc('set_client_seed', { p_seed: seedInput.value })
      flash(L(`有効になったサーバーシードのハッシュ: ${r.active.server_seed_hash}`, `Active server seed hash: ${r.active.server_seed_hash}`))
      go('#/fairness')
    })
  })
  const rotate = h('button', { type: 'button', id: 'rotate-seed' }, L('サーバーシードを公開（ローテーション）', 'Reveal the server seed (rotate)'))
  rotate.addEventListener('click', () => act(rotate, async () => {
    await rpc('rotate_fairness_seed')
    flash(L('サーバーシードを公開しました。「引いた結果を検証」で確かめられます。', 'The server seed was revealed: use "Verify my pulls" to check.'))
    go('#/fairness')
  }))
  const out = h('div', { id: 'verify-result', 'aria-live': 'polite' })
  const verify = h('button', { type: 'button', id: 'verify' }, L('引いた結果を検証', 'Verify my pulls'))
  verify.addEventListener('click', () => act(verify, async () => {
    fill(out, h('p', {}, L('ブラウザで再計算しています…', 'Recomputing in your browser…')))
    const report = await verifyMine()
    fill(out,
      h('p', { id: 'verify-summary', class: report.ok ? 'ok' : 'bad', dataset: { ok: String(report.ok), pulls: String(report.pulls), pityPulls: String(report.pityPulls), logEntries: String(report.logEntries) } },
        report.ok ? L(`一致しました: ${report.seeds}個のシード、${report.pulls}回の抽選を再計算し、確率表ログ${report.logEntries}件のハッシュチェーンと天井（${report.pityPulls}回）を再現しました。`,
          `All match: ${report.pulls} draws under ${report.seeds} seed(s) recomputed, the rate-table log's hash chain (${report.logEntries} entries) and pity (${report.pityPulls} pity pulls) replayed.`)
          : L(`不一致があります（${report.problems.length}件）。`, `Mismatches found (${report.problems.length}).`)),
      report.pulls === 0 ? h('p', {}, L('公開済みのシードで引いた結果がまだありません。先にシードを公開してください。', 'No pulls under a revealed seed yet: reveal your seed first.')) : null,
      report.logHead ? h('p', {}, L('確率表ログの先頭（控えておくと、後で書き換えがないか確かめられます）: ', 'Head of the rate-table log (keep it to check later that nothing was rewritten): '), h('code', { id: 'log-head' }, report.logHead)) : null,
      h('ul', { id: 'verify-problems' }, report.problems.map((p) => h('li', { dataset: { kind: p.kind } }, p.text))),
      report.notes.length ? h('ul', { id: 'verify-notes' }, report.notes.map((n) => h('li', {}, n))) : null,
      table([L('注文', 'Order'), 'nonce', 'roll', L('アイテム', 'Item'), L('天井', 'Pity'), L('結果', 'Result')], report.rows.slice(0, 50).map((r) =>
        h('tr', {}, h('td', {}, h('code', {}, r.order_id.slice(0, 8))), h('td', { class: 'num' }, r.nonce), h('td', { class: 'num' }, r.roll),
          h('td', {}, r.item), h('td', {}, r.pity ? L('天井', 'pity') : ''), h('td', {}, r.ok ? '✔' : '✘'))), { id: 'verify-rows' }),
      report.unpaid.length ? section(L('支払われなかった注文が引いたはずの結果', 'What unpaid orders would have drawn'),
        h('ul', {}, report.unpaid.map((u) => h('li', {}, h('code', {}, u.order_id.slice(0, 8)), ` (${u.status}): ${u.drawn.join(' ')}`)))) : null)
  }))
  fill(view, h('h1', {}, L('公平性の検証', 'Provably fair')),
    h('p', {}, L('抽選はサーバーシード・クライアントシード・nonce から HMAC-SHA256 で決まります。サーバーシードは使う前にハッシュで約束され、公開後に誰でも再計算できます。',
      'Each draw is HMAC-SHA256 of the server seed, your client seed and a nonce. The server seed is committed by its hash before use; once revealed anyone can recompute every draw.')),
    h('dl', { class: 'kv' },
      h('dt', {}, L('使用中のサーバーシードのハッシュ', 'Active server seed hash')), h('dd', {}, h('code', { id: 'active-hash' }, f.active ? f.server_seed_hash : '—')),
      h('dt', {}, L('クライアントシード', 'Client seed')), h('dd', {}, h('code', {}, f.client_seed || '—')),
      h('dt', {}, L('次の nonce', 'Next nonce')), h('dd', {}, f.next_nonce ?? '—'),
      h('dt', {}, L('次のサーバーシードのハッシュ', 'Next server seed hash')), h('dd', {}, h('code', { id: 'next-hash' }, f.next?.server_seed_hash || '—'))),
    setForm, h('p', {}, rotate),
    section(L('公開済みのシード', 'Revealed seeds'), table([L('公開日時', 'Revealed'), L('サーバーシード', 'Server seed'), L('ハッシュ', 'Hash'), L('注文数', 'Orders')],
      (f.revealed || []).map((s) => h('tr', {}, h('td', {}, jst(s.revealed_at)), h('td', {}, h('code', { class: 'seed' }, s.server_seed)), h('td', {}, h('code', { class: 'seed' }, s.server_seed_hash)), h('td', { class: 'num' }, s.orders.length))), { id: 'revealed' })),
    h('p', {}, verify), out)
}

export async function history (view) {
  if (!state.session) return needSignIn()
  const orders = await rpc('list_my_orders', { p_limit: 50 })
  const titles = Object.fromEntries((await select('gachas')).map((g) => [g.id, g.title]))
  const statusLabel = (s) => ({ pending: L('支払い待ち', 'Awaiting payment'), fulfilled: L('完了', 'Completed'), expired: L('期限切れ', 'Expired'), failed: L('失敗', 'Failed'), canceled: L('キャンセル', 'Canceled') })[s] || s
  const rows = orders.map((o) => {
    const actions = h('td', {})
    if (o.status === 'fulfilled') {
      actions.append(h('a', { href: `#/reveal/${o.order_id}` }, L('結果', 'Results')))
      if (o.refunded_jpy < o.amount_jpy) {
        const reason = h('input', { type: 'text', maxlength: 500, class: 'refund-reason', id: `reason-${o.order_id}` })
        const btn = h('button', { type: 'button', class: 'refund-btn' }, L('返金を申請', 'Request a refund'))
        btn.addEventListener('click', () => act(btn, async () => {
          await rpc('request_refund', { p_order_id: o.order_id, p_reason: reason.value })
          flash(L('返金を申請しました。', 'Refund requested.'))
          go('#/history')
        }))
        actions.append(' ', h('label', { for: reason.id, class: 'sr-only' }, L('返金の理由', 'Reason for the refund')), reason, ' ', btn)
      }
    }
    return h('tr', { dataset: { orderId: o.order_id, status: o.status } }, h('td', {}, jst(o.created_at)), h('td', {}, titles[o.gacha_id] || o.gacha_id.slice(0, 8)),
      h('td', { class: 'num' }, o.pull_count), h('td', { class: 'num' }, yen(o.amount_jpy)), h('td', {}, statusLabel(o.status)),
      h('td', { class: 'num' }, o.refunded_jpy ? yen(o.refunded_jpy) : '—'), actions)
  })
  fill(view, h('h1', {}, L('購入履歴', 'Purchase history')),
    table([L('日時', 'When'), L('ガチャ', 'Gacha'), L('回数', 'Pulls'), L('金額', 'Amount'), L('状態', 'Status'), L('返金', 'Refunded'), ''], rows, { id: 'orders' }))
}

