// The VTuber's screens: profile and uploads, the gacha editor (rates as percentages with a live sum
// to 100 % and the expected-cost check, preview, publish; published gachas read-only), exchange items,
// the sales dashboard (Chart.js) and monthly statements with CSV export.
import { rpc, sb, storageError } from '../api.js'
import { L } from '../i18n.js'
import { RARITIES, jst, jstDate, num, rarityRank, yen, yenPlain } from '../format.js'
import { act, download, field, fill, flash, h, section, table } from '../ui.js'
import { go, state } from '../app.js'

const needVtuber = () => {
  if (!state.session) { go('#/signin'); return false }
  return true
}

async function myFiles (vtuberId) {
  const { data, error } = await sb.storage.from('rewards').list(vtuberId, { limit: 1000, sortBy: { column: 'name', order: 'asc' } })
  if (error) throw storageError(error)
  return (data || []).filter((o) => o.id !== null).map((o) => `${vtuberId}/${o.name}`)
}

export async function profile (view) {
  if (!needVtuber()) return
  const p = await rpc('get_my_vtuber_profile')
  const name = h('input', { type: 'text', value: p.name, maxlength: 100 })
  const desc = h('textarea', { rows: 3 }, p.description || '')
  const links = h('textarea', { rows: 3 }, (p.links || []).join('\n'))
  const avatar = h('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp,image/gif' })
  const form = h('form', { id: 'vtuber-profile-form' },
    field(L('VTuber名', 'Name'), name), field(L('自己紹介', 'Description'), desc),
    field(L('リンク（1行に1つ、YouTube・X など）', 'Links (one per line: YouTube, X, …)'), links),
    field(L('アイコン画像', 'Avatar image'), avatar),
    h('button', { type: 'submit' }, L('保存', 'Save')))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    act(form.querySelector('button'), async () => {
      let avatarPath = null
      if (avatar.files[0]) {
        const f = avatar.files[0]
        avatarPath = `${p.vtuber_id}/avatar-${Date.now()}.${f.name.split('.').pop().toLowerCase()}`
        const { error } = await sb.storage.from('avatars').upload(avatarPath, f, { contentType: f.type, upsert: true })
        if (error) throw storageError(error)
      }
      await rpc('update_my_vtuber_profile', {
        p_name: name.value, p_description: desc.value,
        p_links: links.value.split('\n').map((x) => x.trim()).filter(Boolean), p_avatar_path: avatarPath,
      })
      flash(L('保存しました。', 'Saved.'))
      go('#/vtuber')
    })
  })
  const avatarUrl = p.avatar_path ? sb.storage.from('avatars').getPublicUrl(p.avatar_path).data.publicUrl : null

  // Uploads: content objects in the private rewards bucket, under the VTuber's own folder.
  const file = h('input', { type: 'file', id: 'upload-file', accept: 'image/*,audio/*,video/*' })
  const upload = h('form', { id: 'upload-form' }, field(L('コンテンツをアップロード（画像・音声・動画）', 'Upload content (image, audio, video)'), file),
    h('button', { type: 'submit' }, L('アップロード', 'Upload')))
  upload.addEventListener('submit', (e) => {
    e.preventDefault()
    act(upload.querySelector('button'), async () => {
      const f = file.files[0]
      if (!f) return
      const path = `${p.vtuber_id}/${f.name.replace(/[^\w.-]/g, '_')}`
      const { error } = await sb.storage.from('rewards').upload(path, f, { contentType: f.type, upsert: true })
      if (error) throw storageError(error)
      flash(L(`アップロードしました: ${path}`, `Uploaded: ${path}`))
      go('#/vtuber')
    })
  })
  const files = await myFiles(p.vtuber_id)
  fill(view, h('h1', {}, L('VTuberプロフィール', 'VTuber profile')),
    avatarUrl ? h('img', { src: avatarUrl, alt: L('アイコン', 'Avatar'), class: 'avatar' }) : null,
    h('p', { class: 'muted' }, L(`状態: ${p.status} · 収益分配 ${p.revenue_share_bps / 100}%`, `Status: ${p.status} · revenue share ${p.revenue_share_bps / 100} %`)),
    form,
    section(L('アップロード済みのコンテンツ', 'Uploaded content'), upload, h('ul', { id: 'files' }, files.map((f) => h('li', {}, h('code', {}, f))))))
}

export async function gachas (view) {
  if (!needVtuber()) return
  const list = await rpc('list_my_gachas')
  const title = h('input', { type: 'text', id: 'new-title', maxlength: 200, required: true })
  const start = h('input', { type: 'datetime-local', id: 'new-start', value: localInput(new Date(Date.now() - 60e3)) })
  const end = h('input', { type: 'datetime-local', id: 'new-end', value: localInput(new Date(Date.now() + 30 * 86400e3)) })
  const single = h('input', { type: 'number', id: 'new-single', value: 100, min: 100, max: 10000, step: 10 })
  const ten = h('input', { type: 'number', id: 'new-ten', value: 1000, min: 100, max: 10000, step: 10 })
  const medals = h('input', { type: 'number', id: 'new-medals', value: 10, min: 1, max: 1000 })
  const form = h('form', { id: 'new-gacha-form', class: 'cols' },
    field(L('タイトル', 'Title'), title), field(L('販売開始（日本時間）', 'Starts (JST)'), start), field(L('販売終了（日本時間）', 'Ends (JST)'), end),
    field(L('単発価格（円・税込）', '1-pull price (yen, tax incl.)'), single), field(L('10連価格（円・税込）', '10-pull price (yen, tax incl.)'), ten),
    field(L('1回あたりの推しメダル', 'Medals per pull'), medals),
    h('button', { type: 'submit' }, L('下書きを作成', 'Create a draft')))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    act(form.querySelector('button'), async () => {
      const g = await rpc('create_gacha', {
        p_title: title.value, p_start_at: fromJstInput(start.value), p_end_at: fromJstInput(end.value),
        p_price_single: Number(single.value), p_price_ten: Number(ten.value), p_medals_per_pull: Number(medals.value),
      })
      go(`#/vtuber/gacha/${g.id}`)
    })
  })
  fill(view, h('h1', {}, L('ガチャ編集', 'Your gachas')),
    table([L('タイトル', 'Title'), L('状態', 'Status'), L('アイテム数', 'Items'), L('販売期間', 'Window')],
      list.map((g) => h('tr', { dataset: { gachaId: g.id, status: g.status } }, h('td', {}, h('a', { href: `#/vtuber/gacha/${g.id}` }, g.title)), h('td', {}, gachaStatus(g.status)),
        h('td', { class: 'num' }, g.items.length), h('td', {}, jst(g.start_at), ' – ', jst(g.end_at)))), { id: 'my-gachas' }),
    section(L('新しいガチャ', 'New gacha'), form))
}

// datetime-local inputs are read as JST wall-clock times, whatever the browser's time zone.
function localInput (d) { return new Date(d.getTime() + 9 * 3600e3).toISOString().slice(0, 16) }
function fromJstInput (v) { return new Date(v + ':00+09:00').toISOString() }

const gachaStatus = (s) => ({ draft: L('下書き', 'Draft'), published: L('公開中', 'Published'), ended: L('終了', 'Ended'), suspended: L('停止中', 'Suspended') })[s] || s

const toPpm = (percent) => Math.round(Number(String(percent).replace(',', '.')) * 10000)

export async function editor (view, id) {
  if (!needVtuber()) return
  const g = (await rpc('list_my_gachas')).find((x) => x.id === id)
  if (!g) return fill(view, h('h1', {}, L('ガチャが見つかりません', 'Gacha not found')))
  const draft = g.status === 'draft'
  const vtuberId = state.profile?.vtuber?.id
  const files = vtuberId ? await myFiles(vtuberId) : []
  const sum = h('output', { id: 'rate-sum', 'aria-live': 'polite' })
  const costOut = h('p', { id: 'expected-cost', 'aria-live': 'polite' })
  const publishBtn = h('button', { type: 'button', id: 'publish' }, L('公開する', 'Publish'))
  const rows = []

  function recompute () {
    const total = rows.reduce((s, r) => s + toPpm(r.rate.value || 0), 0)
    const okSum = total === 1000000
    sum.textContent = L(`合計 ${(total / 10000).toFixed(4)} %`, `Total ${(total / 10000).toFixed(4)} %`) + (okSum ? ' ✔' : L('（100 % にしてください）', ' (must be 100 %)'))
    sum.className = okSum ? 'ok' : 'bad'
    sum.dataset.ppm = String(total)
    // The expected-cost check the server runs at publish (docs/api-catalog.md, "Expected cost").
    const perPull = Math.min(g.price_single, g.price_ten / 10)
    const topRank = Math.max(0, ...rows.map((r) => rarityRank(r.rarity.value)))
    const p = rows.filter((r) => rarityRank(r.rarity.value) === topRank).reduce((s, r) => s + toPpm(r.rate.value || 0), 0) / 1e6
    let cost = p > 0 ? Math.ceil(perPull / p) : null
    if (p > 0 && g.pity_pulls && rarityRank(g.pity_rarity) >= topRank) cost = Math.ceil(perPull * (1 - (1 - p) ** g.pity_pulls) / p)
    costOut.textContent = cost === null ? L('最高レアリティの期待金額: —', 'Expected cost of the top rarity: —')
      : L(`最高レアリティ（${RARITIES[topRank - 1]}）を引くまでの期待金額: ${yen(cost)}（上限 ¥50,000）`, `Expected cost of the top rarity (${RARITIES[topRank - 1]}): ${yen(cost)} (limit ¥50,000)`)
    costOut.className = cost !== null && cost > 50000 && !g.pity_pulls ? 'bad' : ''
    renderPreview(total)
  }

  const preview = h('div', { id: 'preview' })
  function renderPreview (total) {
    const by = {}
    for (const r of rows) by[r.rarity.value] = (by[r.rarity.value] || 0) + toPpm(r.rate.value || 0)
    fill(preview, h('h3', {}, L('ファンに表示される提供割合（プレビュー）', 'Odds as fans will see them (preview)')),
      table([L('レアリティ', 'Rarity'), L('提供割合', 'Odds')], RARITIES.filter((x) => by[x]).reverse().map((x) =>
        h('tr', {}, h('td', {}, x), h('td', { class: 'num' }, `${(by[x] / 10000).toFixed(4)} %`)))),
      h('p', {}, L('合計 ', 'Total '), `${(total / 10000).toFixed(4)} %`))
  }

  function itemRow (item) {
    const name = h('input', { type: 'text', value: item.name, maxlength: 200, disabled: !draft, class: 'item-name' })
    const rarity = h('select', { disabled: !draft, class: 'item-rarity' }, RARITIES.map((x) => h('option', { value: x, selected: x === item.rarity }, x)))
    const rate = h('input', { type: 'text', inputmode: 'decimal', value: (item.rate_ppm / 10000).toString(), disabled: !draft, class: 'item-rate', size: 8 })
    const content = h('select', { disabled: !draft, class: 'item-content' },
      [...new Set([item.content_path, ...files])].filter(Boolean).map((f) => h('option', { value: f, selected: f === item.content_path }, f)))
    const row = { item, name, rarity, rate, content }
    rows.push(row)
    rate.addEventListener('input', recompute)
    rarity.addEventListener('change', recompute)
    const remove = h('button', { type: 'button', class: 'remove-item', disabled: !draft }, L('削除', 'Remove'))
    remove.addEventListener('click', () => act(remove, async () => {
      await rpc('remove_gacha_item', { p_item_id: item.id })
      go(`#/vtuber/gacha/${id}`)
    }))
    const n = rows.length
    return h('tr', { dataset: { itemId: item.id } },
      h('td', {}, h('label', { class: 'sr-only', for: (name.id = `name-${n}`) }, L('名前', 'Name')), name),
      h('td', {}, h('label', { class: 'sr-only', for: (rarity.id = `rarity-${n}`) }, L('レアリティ', 'Rarity')), rarity),
      h('td', {}, h('label', { class: 'sr-only', for: (rate.id = `rate-${n}`) }, L('提供割合（%）', 'Rate (%)')), rate, ' %'),
      h('td', {}, h('label', { class: 'sr-only', for: (content.id = `content-${n}`) }, L('コンテンツ', 'Content')), content),
      h('td', {}, draft ? remove : null))
  }

  const body = g.items.map(itemRow)
  // Saving sends every changed row (update_gacha_item); the server keeps rates in ppm.
  const save = h('button', { type: 'button', id: 'save-items' }, L('変更を保存', 'Save changes'))
  save.addEventListener('click', () => act(save, async () => {
    await saveRows()
    flash(L('保存しました。', 'Saved.'))
  }))
  async function saveRows () {
    for (const r of rows) {
      const patch = {}
      if (r.name.value !== r.item.name) patch.name = r.name.value
      if (r.rarity.value !== r.item.rarity) patch.rarity = r.rarity.value
      if (toPpm(r.rate.value) !== r.item.rate_ppm) patch.rate_ppm = toPpm(r.rate.value)
      if (r.content.value !== r.item.content_path) patch.content_path = r.content.value
      if (Object.keys(patch).length) {
        const updated = await rpc('update_gacha_item', { p_item_id: r.item.id, p_patch: patch })
        Object.assign(r.item, updated)
      }
    }
  }
  publishBtn.addEventListener('click', () => act(publishBtn, async () => {
    const total = rows.reduce((s, r) => s + toPpm(r.rate.value || 0), 0)
    if (total !== 1000000) {
      // The editor refuses before asking the server (which would refuse too: rates_must_sum_to_one_million).
      flash(L(`提供割合の合計が ${(total / 10000).toFixed(4)} % です。ちょうど 100 % にしてから公開してください。`,
        `The rates add up to ${(total / 10000).toFixed(4)} %. Make them exactly 100 % before publishing.`), 'error')
      return
    }
    await saveRows()
    await rpc('publish_gacha', { p_gacha_id: id })
    flash(L('公開しました。公開後は変更できません。', 'Published. A published gacha can no longer be changed.'))
    go(`#/vtuber/gacha/${id}`)
  }))

  const newName = h('input', { type: 'text', id: 'add-name', maxlength: 200 })
  const newRarity = h('select', { id: 'add-rarity' }, RARITIES.map((x) => h('option', { value: x }, x)))
  const newRate = h('input', { type: 'text', inputmode: 'decimal', id: 'add-rate', size: 8 })
  const newContent = h('select', { id: 'add-content' }, files.map((f) => h('option', { value: f }, f)))
  const addForm = h('form', { id: 'add-item-form', class: 'cols' },
    field(L('アイテム名', 'Item name'), newName), field(L('レアリティ', 'Rarity'), newRarity),
    field(L('提供割合（%）', 'Rate (%)'), newRate), field(L('コンテンツ', 'Content'), newContent, files.length ? null : L('先にプロフィール画面でアップロードしてください', 'Upload a file on the profile page first')),
    h('button', { type: 'submit' }, L('アイテムを追加', 'Add item')))
  addForm.addEventListener('submit', (e) => {
    e.preventDefault()
    act(addForm.querySelector('button'), async () => {
      await saveRows()
      await rpc('add_gacha_item', { p_gacha_id: id, p_name: newName.value, p_rarity: newRarity.value, p_rate_ppm: toPpm(newRate.value), p_content_path: newContent.value, p_sort_order: rows.length })
      go(`#/vtuber/gacha/${id}`)
    })
  })

  fill(view, h('h1', {}, g.title),
    h('p', { class: 'muted', id: 'gacha-status', dataset: { status: g.status } }, L('状態: ', 'Status: '), gachaStatus(g.status), ' · ',
      L('単発 ', '1 pull '), yen(g.price_single), ' · ', L('10連 ', '10 pulls '), yen(g.price_ten), ' · ', jst(g.start_at), ' – ', jst(g.end_at)),
    draft ? null : h('p', { class: 'note', id: 'read-only' }, L('公開済みのガチャは変更できません（表示のみ）。変更するには新しいガチャを作成してください。',
      'A published gacha is frozen (read-only). To change it, create a new gacha.')),
    table([L('名前', 'Name'), L('レアリティ', 'Rarity'), L('提供割合', 'Rate'), L('コンテンツ', 'Content'), ''], body, { id: 'items' }),
    h('p', {}, sum), costOut,
    draft ? h('p', {}, save, ' ', publishBtn) : null,
    draft ? section(L('アイテムを追加', 'Add an item'), addForm) : null,
    preview)
  recompute()
}

export async function exchangeItems (view) {
  if (!needVtuber()) return
  const items = await rpc('list_my_exchange_items')
  const vtuberId = state.profile?.vtuber?.id
  const files = vtuberId ? await myFiles(vtuberId) : []
  const name = h('input', { type: 'text', id: 'ex-name', maxlength: 200 })
  const cost = h('input', { type: 'number', id: 'ex-cost', min: 1, max: 100000, value: 100 })
  const stock = h('input', { type: 'number', id: 'ex-stock', min: 0 })
  const limit = h('input', { type: 'number', id: 'ex-limit', min: 1 })
  const content = h('select', { id: 'ex-content' }, files.map((f) => h('option', { value: f }, f)))
  const form = h('form', { id: 'exchange-item-form', class: 'cols' },
    field(L('名前', 'Name'), name), field(L('必要メダル', 'Medal cost'), cost), field(L('在庫（空欄: 無制限）', 'Stock (empty: unlimited)'), stock),
    field(L('1人あたりの上限（空欄: なし）', 'Per-fan limit (empty: none)'), limit), field(L('コンテンツ', 'Content'), content),
    h('button', { type: 'submit' }, L('追加', 'Add')))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    act(form.querySelector('button'), async () => {
      await rpc('create_exchange_item', { p_name: name.value, p_medal_cost: Number(cost.value), p_content_path: content.value,
        p_total_stock: stock.value === '' ? null : Number(stock.value), p_per_fan_limit: limit.value === '' ? null : Number(limit.value) })
      go('#/vtuber/exchange')
    })
  })
  fill(view, h('h1', {}, L('交換所のアイテム', 'Exchange items')),
    h('p', { class: 'note' }, L('交換に必要なのは推しメダルだけです（ガチャで引いたアイテムを条件にすることはできません）。', 'Exchanges cost medals only (never drawn items).')),
    table([L('名前', 'Name'), L('必要メダル', 'Cost'), L('在庫', 'Stock'), L('状態', 'State'), ''], items.map((it) => {
      const retire = h('button', { type: 'button', disabled: !!it.retired_at }, L('終了', 'Retire'))
      retire.addEventListener('click', () => act(retire, async () => { await rpc('retire_exchange_item', { p_exchange_item_id: it.id }); go('#/vtuber/exchange') }))
      return h('tr', {}, h('td', {}, it.name), h('td', { class: 'num' }, num(it.medal_cost)), h('td', { class: 'num' }, it.total_stock ?? '∞'),
        h('td', {}, it.retired_at ? L('終了', 'Retired') : L('交換可', 'Active')), h('td', {}, retire))
    })),
    section(L('新しい交換アイテム', 'New exchange item'), form))
}

const RARITY_COLOURS = { N: '#95a5a6', R: '#3498db', SR: '#8e44ad', SSR: '#f1c40f', UR: '#e84393' }
let charts = []
function chart (canvas, config) {
  const c = new window.Chart(canvas, { ...config, options: { animation: false, responsive: true, maintainAspectRatio: false, ...(config.options || {}) } })
  charts.push(c)
  return c
}

export async function dashboard (view) {
  if (!needVtuber()) return
  const from = h('input', { type: 'date', id: 'from', value: jstDate(new Date(), -29) })
  const to = h('input', { type: 'date', id: 'to', value: jstDate() })
  const out = h('div', { id: 'sales' })
  const form = h('form', { class: 'cols', id: 'range-form' }, field(L('開始日（JST）', 'From (JST)'), from), field(L('終了日（JST）', 'To (JST)'), to),
    h('button', { type: 'submit' }, L('表示', 'Show')))
  async function load () {
    charts.forEach((c) => c.destroy()); charts = []
    const s = await rpc('get_my_sales', { p_from: from.value, p_to: to.value })
    renderSales(out, s)
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); act(form.querySelector('button'), load) })
  fill(view, h('h1', {}, L('売上ダッシュボード', 'Sales dashboard')), form, out)
  await load()
  return () => { charts.forEach((c) => c.destroy()); charts = [] }
}

export function renderSales (out, s, platform = false) {
  const t = s.totals
  const card = (label, value, id) => h('div', { class: 'kpi', id }, h('span', {}, label), h('strong', {}, value))
  const canvases = [0, 1, 2, 3].map((i) => h('canvas', { id: `chart-${i}`, role: 'img' }))
  fill(out, 
    h('div', { class: 'kpis' },
      card(L('売上（税込）', 'Gross (tax incl.)'), yenPlain(t.gross_jpy), 'kpi-gross'), card(L('注文数', 'Paid orders'), num(t.paid_orders), 'kpi-orders'),
      card(L('ガチャ回数', 'Pulls'), num(t.pulls), 'kpi-pulls'), card(L('返金', 'Refunds'), yenPlain(t.refunds_jpy), 'kpi-refunds'),
      card(L('純売上', 'Net'), yenPlain(t.net_jpy), 'kpi-net'), card(platform ? L('VTuberへの分配（見込み）', 'VTuber shares (estimate)') : L('あなたの取り分（見込み）', 'Your share (estimate)'), yenPlain(t.vtuber_share_jpy), 'kpi-share'),
      card(L('課金ファン', 'Paying fans'), num(t.paying_fans), 'kpi-fans'), card('ARPPU', yenPlain(t.arppu_jpy), 'kpi-arppu')),
    h('p', { class: 'muted' }, L(`集計は ${jst(s.fresh_through)} までの分です（毎分更新）。金額は税込。`, `Figures up to ${jst(s.fresh_through)} (refreshed every minute). Amounts include tax.`)),
    h('div', { class: 'charts' },
      h('figure', {}, h('figcaption', {}, L('日別売上', 'Gross per day')), h('div', { class: 'chart-box' }, canvases[0])),
      h('figure', {}, h('figcaption', {}, platform ? L('VTuber別売上', 'Gross per VTuber') : L('ガチャ別売上', 'Gross per gacha')), h('div', { class: 'chart-box' }, canvases[1])),
      h('figure', {}, h('figcaption', {}, L('レアリティ別排出数', 'Pulls by rarity')), h('div', { class: 'chart-box' }, canvases[2])),
      h('figure', {}, h('figcaption', {}, L('日別ファン数', 'Fans per day')), h('div', { class: 'chart-box' }, canvases[3]))))
  canvases[0].setAttribute('aria-label', L('日別売上のグラフ', 'Chart of gross per day'))
  canvases[1].setAttribute('aria-label', platform ? L('VTuber別売上のグラフ', 'Chart of gross per VTuber') : L('ガチャ別売上のグラフ', 'Chart of gross per gacha'))
  canvases[2].setAttribute('aria-label', L('レアリティ別排出数のグラフ', 'Chart of pulls by rarity'))
  canvases[3].setAttribute('aria-label', L('日別ファン数のグラフ', 'Chart of fans per day'))
  const days = s.days || []
  chart(canvases[0], { type: 'bar', data: { labels: days.map((d) => d.jst_date), datasets: [{ label: L('売上（円）', 'Gross (yen)'), data: days.map((d) => d.gross_jpy), backgroundColor: '#e8457a' }] } })
  // The platform's report lists each VTuber's figures (by_vtuber); a VTuber's lists each gacha and day.
  const per = {}
  if (platform) for (const r of s.by_vtuber || []) per[r.name] = (per[r.name] || 0) + r.gross_jpy
  else for (const r of s.by_gacha_day || []) per[r.title] = (per[r.title] || 0) + r.gross_jpy
  chart(canvases[1], { type: 'bar', data: { labels: Object.keys(per), datasets: [{ label: L('売上（円）', 'Gross (yen)'), data: Object.values(per), backgroundColor: '#6c5ce7' }] }, options: { indexAxis: 'y' } })
  const rar = (s.pulls_by_rarity || []).slice().sort((a, b) => rarityRank(a.rarity) - rarityRank(b.rarity))
  chart(canvases[2], { type: 'doughnut', data: { labels: rar.map((r) => r.rarity), datasets: [{ data: rar.map((r) => r.pulls), backgroundColor: rar.map((r) => RARITY_COLOURS[r.rarity]) }] } })
  chart(canvases[3], { type: 'line', data: { labels: days.map((d) => d.jst_date), datasets: [
    { label: L('課金ファン', 'Paying fans'), data: days.map((d) => d.paying_fans), borderColor: '#00b894' },
    { label: L('新規ファン', 'New fans'), data: days.map((d) => d.new_fans), borderColor: '#0984e3' }] } })
}

const STATEMENT_FIELDS = ['month', 'status', 'gross_jpy', 'refunds_jpy', 'chargebacks_jpy', 'provider_fees_jpy', 'net_jpy', 'share_bps',
  'vtuber_share_jpy', 'platform_fee_jpy', 'consumption_tax_in_gross_jpy', 'consumption_tax_in_share_jpy', 'carried_in_jpy', 'balance_jpy',
  'payable_jpy', 'carried_out_jpy', 'closed_at', 'hash']

export async function statements (view) {
  if (!needVtuber()) return
  const month = h('input', { type: 'month', id: 'month', value: jstDate().slice(0, 7) })
  const out = h('div', { id: 'statement' })
  let current = null
  const form = h('form', { class: 'cols' }, field(L('月（JST）', 'Month (JST)'), month), h('button', { type: 'submit' }, L('表示', 'Show')))
  async function load () {
    current = await rpc('get_my_payout_statement', { p_month: month.value })
    const s = current
    const row = (label, v) => h('tr', {}, h('th', { scope: 'row' }, label), h('td', { class: 'num' }, v))
    fill(out, h('table', { class: 'statement' }, h('tbody', {},
      row(L('状態', 'Status'), s.status === 'closed' ? L('確定', 'Closed') : L('集計中', 'Open (so far)')),
      row(L('売上（税込）', 'Gross (tax incl.)'), yen(s.gross_jpy)), row(L('返金', 'Refunds'), yen(s.refunds_jpy)),
      row(L('チャージバック', 'Chargebacks'), yen(s.chargebacks_jpy)), row(L('決済手数料', 'Provider fees'), yen(s.provider_fees_jpy)),
      row(L('純売上', 'Net'), yen(s.net_jpy)), row(L('分配率', 'Share'), `${s.share_bps / 100} %`),
      row(L('あなたの取り分', 'Your share'), yen(s.vtuber_share_jpy)), row(L('うち消費税', 'Consumption tax inside'), yen(s.consumption_tax_in_share_jpy)),
      row(L('前月からの繰越', 'Carried in'), yen(s.carried_in_jpy)), row(L('お支払い額', 'Payable'), yen(s.payable_jpy)),
      row(L('翌月への繰越', 'Carried out'), yen(s.carried_out_jpy)))))
  }
  const csv = h('button', { type: 'button', id: 'export-csv' }, L('CSVで書き出す', 'Export CSV'))
  csv.addEventListener('click', () => {
    if (!current) return
    const q = (v) => (v === null || v === undefined ? '' : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v))
    const text = STATEMENT_FIELDS.join(',') + '\n' + STATEMENT_FIELDS.map((f) => q(current[f])).join(',') + '\n'
    download(`koepon-statement-${current.month}.csv`, new Blob([text], { type: 'text/csv' }))
  })
  form.addEventListener('submit', (e) => { e.preventDefault(); act(form.querySelector('button'), load) })
  fill(view, h('h1', {}, L('月次明細', 'Monthly statements')), form, out, h('p', {}, csv),
    h('p', { class: 'note' }, L('金額はすべて税込。取り分 = 純売上 × 分配率。マイナスの残高は翌月に繰り越されます。', 'All amounts include tax. Share = net × share rate. A negative balance carries to the next month.')))
  await load()
}
