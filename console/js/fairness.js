// "Verify my pulls" in the browser with WebCrypto, from public data only (docs/fairness.md), the same
// checks as `koepon fairness verify` (koepon/tools/fairness.py):
//   1. the published rate-table log is one unbroken hash chain, each entry's table hashes to its
//      version, and no gacha has two versions of a kind;
//   2. each revealed server seed hashes to its commitment, which predates its client seed;
//   3. each order committed the gacha's published tables and a nonce range of its seed; its pulls used
//      exactly those nonces and the table their pity flag names; every roll and item recompute from
//      HMAC-SHA256(server seed, "client_seed:nonce:round"); unpaid orders show what they would have drawn;
//   4. every nonce of a revealed seed belongs to exactly one order;
//   5. pity: each gacha's streak is replayed over all the fan's pulls in draw order (pull id), as the
//      server keeps it (sql/economy/30_orders.sql): a pull is a pity pull exactly when pity_pulls - 1
//      pulls below the pity rarity precede it; a pity pull is of at least that rarity.
import { rpc } from './api.js'
import { L } from './i18n.js'

const enc = new TextEncoder()
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('')
const unhex = (s) => new Uint8Array(s.match(/../g).map((b) => parseInt(b, 16)))
const sha256 = async (bytes) => hex(await crypto.subtle.digest('SHA-256', bytes))

// The order of rarities "at least the pity rarity" refers to.
export const RANK = { N: 1, R: 2, SR: 3, SSR: 4, UR: 5 }

export async function roll (serverSeedHex, clientSeed, nonce, range) {
  const key = await crypto.subtle.importKey('raw', unhex(serverSeedHex), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const limit = Math.floor(2 ** 32 / range) * range  // rejection sampling: no modulo bias
  for (let round = 0; ; round++) {
    const mac = new DataView(await crypto.subtle.sign('HMAC', key, enc.encode(`${clientSeed}:${nonce}:${round}`)))
    const x = mac.getUint32(0, false)
    if (x < limit) return x % range
  }
}

export function pick (entries, r) {
  let acc = 0
  for (const [itemId, rarity, rate] of entries) {
    acc += Number(rate)
    if (r < acc) return { itemId, rarity }
  }
  return null
}

export const tableVersion = (entries) => sha256(enc.encode(entries.map(([id, rarity, rate]) => `${id}:${rarity}:${rate}`).join('\n')))

// A timestamp as the log's hash covers it: UTC, microseconds, "YYYY-MM-DDTHH:MM:SS.ffffffZ". Date keeps
// only milliseconds, so the fraction is carried over as text (offsets are whole minutes).
export function utcMicros (text) {
  const m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d(?::?\d\d)?)?$/.exec(text)
  if (!m) throw new Error(`not a timestamp: ${text}`)
  const [, y, mo, d, hh, mi, ss, frac = '', tz = 'Z'] = m
  let offsetMin = 0
  if (tz !== 'Z') {
    const t = tz.replace(':', '')
    offsetMin = (t[0] === '-' ? -1 : 1) * (Number(t.slice(1, 3)) * 60 + Number(t.slice(3, 5) || 0))
  }
  const utc = new Date(Date.UTC(+y, +mo - 1, +d, +hh, +mi, +ss) - offsetMin * 60000)
  return `${utc.toISOString().slice(0, 19)}.${frac.padEnd(6, '0')}Z`
}

// null when the entry cannot even be hashed (a malformed time): a mismatch like any other.
export async function rateLogHash (e) {
  let at
  try { at = utcMicros(e.published_at) } catch (err) { return null }
  return sha256(enc.encode([e.prev_hash || '', String(e.seq), e.gacha_id, e.pity ? 'pity' : 'base', e.version, at].join('|')))
}

// Everything the verifier reads, through the fan's own public API (every page of each list).
export async function collect (call = rpc) {
  const revealed = []
  let active = null
  for (let offset = 0; ;) {
    const page = await call('get_fairness', { p_limit: 100, p_offset: offset })
    active = active || page
    revealed.push(...page.revealed)
    offset += page.revealed.length
    if (!page.revealed.length || offset >= page.revealed_total) break
  }
  const orders = new Map()
  for (let offset = 0; ;) {
    const page = await call('list_my_orders', { p_limit: 100, p_offset: offset })
    for (const o of page) orders.set(o.order_id, o)
    offset += page.length
    if (page.length < 100) break
  }
  for (const [id, o] of orders) {
    if (o.status === 'fulfilled') orders.set(id, await call('get_order', { p_order_id: id }))
  }
  const log = []
  for (let after = 0; ;) {
    const page = await call('list_rate_table_log', { p_after_seq: after, p_limit: 1000 })
    log.push(...page)
    if (page.length < 1000) break
    after = page[page.length - 1].seq
  }
  return { active, revealed, orders, log }
}

export async function verify (pub, call = rpc) {
  const report = { ok: true, seeds: 0, pulls: 0, pityPulls: 0, logEntries: pub.log.length, logHead: null,
    problems: [], notes: [], rows: [], unpaid: [] }
  const bad = (kind, text) => { report.ok = false; report.problems.push({ kind, text }) }
  const tables = new Map()
  const short = (v) => String(v).slice(0, 12)
  const sumOk = (t) => t.entries.reduce((s, e) => s + Number(e[2]), 0) === Number(t.total_ppm)

  // 1. The rate-table log: an unbroken chain, one base (and pity) table per gacha.
  const published = new Map()  // "gacha:base|pity" -> version
  let prev = null
  for (const e of pub.log) {
    if ((e.prev_hash ?? null) !== prev) bad('chain', L(`確率表ログ ${e.seq}: 前の項目とハッシュがつながっていません`, `Rate-table log entry ${e.seq}: prev_hash does not chain to the entry before it`))
    if (await rateLogHash(e) !== e.hash) bad('chain', L(`確率表ログ ${e.seq}: ハッシュが内容と一致しません`, `Rate-table log entry ${e.seq}: its hash does not match its content`))
    if (await tableVersion(e.entries) !== e.version) bad('table', L(`確率表ログ ${e.seq}: 表がバージョン ${short(e.version)} と一致しません`, `Rate-table log entry ${e.seq}: the table does not hash to version ${short(e.version)}`))
    const key = `${e.gacha_id}:${e.pity ? 'pity' : 'base'}`
    if (published.has(key) && published.get(key) !== e.version) bad('table', L(`ガチャ ${e.gacha_id} の確率表が2回公開されています`, `Gacha ${e.gacha_id}: a rate table of the same kind was published twice`))
    if (!published.has(key)) published.set(key, e.version)
    if (!sumOk(e)) bad('table', L(`確率表ログ ${e.seq}: 合計が一致しません`, `Rate-table log entry ${e.seq}: total_ppm is not the sum of its rates`))
    if (!tables.has(e.version)) tables.set(e.version, { version: e.version, total_ppm: e.total_ppm, entries: e.entries })
    prev = e.hash
  }
  report.logHead = pub.log.length ? `${pub.log[pub.log.length - 1].seq}:${prev}` : null

  async function table (version) {
    if (!tables.has(version)) {
      let t = null
      try {
        t = await call('get_rate_table', { p_version: version })
      } catch (err) {
        bad('table', L(`確率表 ${short(version)} は公開されていません`, `Rate table ${short(version)} is not published`))
      }
      if (t && await tableVersion(t.entries) !== version) bad('table', L(`確率表 ${short(version)} がバージョンと一致しません`, `Rate table ${short(version)} does not hash to its version`))
      if (t && !sumOk(t)) bad('table', L(`確率表 ${short(version)} の合計が一致しません`, `Rate table ${short(version)}: total_ppm is not the sum of its rates`))
      tables.set(version, t)
    }
    return tables.get(version)
  }

  // 2. Seeds: the revealed server seed is the one committed, before its client seed.
  const seeds = new Map()
  for (const s of [...pub.revealed, ...(pub.active?.seed_id ? [pub.active] : [])]) seeds.set(s.seed_id, s)
  const secret = new Map()
  for (const [sid, s] of seeds) {
    if (!s.server_seed) continue  // still active: nothing a fan can recompute yet
    report.seeds += 1
    if (await sha256(unhex(s.server_seed)) !== s.server_seed_hash) {
      bad('seed', L(`シード ${sid} のハッシュが約束と一致しません`, `Seed ${sid} does not hash to its commitment`))
      continue
    }
    if (s.committed_at && s.created_at && Date.parse(s.committed_at) > Date.parse(s.created_at)) {
      bad('seed', L(`シード ${sid} はクライアントシードの後に約束されました`, `Seed ${sid} was committed after its client seed was set`))
    }
    secret.set(sid, s)
  }

  // 3. Orders: bound nonces and tables; pulls recomputed; unpaid outcomes recomputed.
  const ranges = new Map()  // seed id -> [[lo, hi, order id]]
  const addRange = (sid, lo, hi, oid) => { if (!ranges.has(sid)) ranges.set(sid, []); ranges.get(sid).push([lo, hi, oid]) }
  const allPulls = []
  const orders = [...pub.orders.values()].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at))
  for (const o of orders) {
    const oid = o.order_id
    const pulls = o.pulls || []
    allPulls.push(...pulls.map((p) => ({ ...p, order_id: oid, gacha_id: o.gacha_id })))
    const sid = o.seed_id
    if (!sid) {
      // The first protocol: nonces were taken at fulfilment from the pair then active.
      for (const p of pulls) addRange(p.seed_id, p.nonce, p.nonce + 1, oid)
    } else {
      const first = Number(o.first_nonce)
      const count = Number(o.pull_count)
      addRange(sid, first, first + count, oid)
      const s = seeds.get(sid)
      if (!s) bad('order', L(`注文 ${oid} のシードはあなたのものではありません`, `Order ${oid} is bound to a seed that is not yours`))
      else if (s.server_seed_hash !== o.server_seed_hash) bad('order', L(`注文 ${oid} の約束したシードのハッシュが違います`, `Order ${oid}: its committed seed hash is not the seed's`))
      for (const [pity, field] of [[false, 'rate_table_version'], [true, 'pity_rate_table_version']]) {
        const want = published.get(`${o.gacha_id}:${pity ? 'pity' : 'base'}`) ?? null
        if ((o[field] ?? null) !== want) bad('order', L(`注文 ${oid} が公開されていない確率表（${pity ? '天井' : '通常'}）を約束しました`, `Order ${oid} committed a ${pity ? 'pity' : 'base'} rate table that is not the gacha's published one`))
      }
      if (o.status === 'fulfilled') {
        const nonces = pulls.map((p) => Number(p.nonce)).sort((a, b) => a - b)
        if (nonces.length !== count || nonces.some((n, i) => n !== first + i)) {
          bad('order', L(`注文 ${oid} の nonce が約束した範囲 ${first}〜${first + count - 1} と違います`, `Order ${oid} drew nonces other than its range ${first}..${first + count - 1}`))
        }
        for (const p of pulls) {
          if (p.seed_id !== sid) bad('order', L(`注文 ${oid} の抽選が別のシードを使いました`, `Order ${oid}: a pull used another seed`))
          const want = p.pity ? o.pity_rate_table_version : o.rate_table_version
          if (p.rate_table_version !== want) bad('order', L(`注文 ${oid} の nonce ${p.nonce} が約束と違う確率表を使いました`, `Order ${oid}, nonce ${p.nonce}: used a table the order did not commit`))
        }
      } else if (secret.has(sid) && o.rate_table_version) {
        // Never paid: the nonces are burned; what they would have drawn is public now.
        const t = await table(o.rate_table_version)
        if (t) {
          const s2 = secret.get(sid)
          const drawn = []
          for (let n = first; n < first + count; n++) drawn.push(pick(t.entries, await roll(s2.server_seed, s2.client_seed, n, Number(t.total_ppm)))?.rarity)
          report.unpaid.push({ order_id: oid, status: o.status, drawn })
        }
      }
    }
    for (const p of pulls) {
      const s = secret.get(p.seed_id)
      if (!s) continue
      report.pulls += 1
      const t = await table(p.rate_table_version)
      if (!t) continue
      const r = await roll(s.server_seed, s.client_seed, p.nonce, Number(t.total_ppm))
      const item = pick(t.entries, r)
      const ok = r === Number(p.roll) && item?.itemId === p.gacha_item_id && item?.rarity === p.rarity
      if (r !== Number(p.roll)) bad('roll', L(`nonce ${p.nonce}: 再計算 ${r} ≠ 記録 ${p.roll}`, `nonce ${p.nonce}: recomputed ${r}, recorded ${p.roll}`))
      else if (!ok) bad('roll', L(`nonce ${p.nonce}: 再計算したアイテムが記録と違います`, `nonce ${p.nonce}: the recomputed item is not the recorded one`))
      report.rows.push({ order_id: oid, nonce: p.nonce, roll: r, item: `${p.rarity} ${p.item_name}`, pity: p.pity, ok })
    }
  }

  // 4. Every nonce of a revealed seed belongs to exactly one order: no gaps, no overlaps.
  for (const [sid, rs] of ranges) {
    if (!secret.has(sid)) continue
    rs.sort((a, b) => a[0] - b[0])
    let expect = 0
    for (const [lo, hi, oid] of rs) {
      if (lo < expect) bad('nonce', L(`シード ${sid}: 注文 ${oid} の nonce ${lo} は使用済みです`, `Seed ${sid}: nonce ${lo} of order ${oid} was already used`))
      else if (lo > expect) bad('nonce', L(`シード ${sid}: nonce ${expect}〜${lo - 1} がどの注文にも属しません`, `Seed ${sid}: nonces ${expect}..${lo - 1} belong to none of your orders`))
      expect = Math.max(expect, hi)
    }
    if (expect !== Number(secret.get(sid).next_nonce)) bad('nonce', L(`シード ${sid}: next_nonce が注文と合いません`, `Seed ${sid}: next_nonce is not what the orders account for`))
  }

  // 5. Pity: replay each gacha's streak over every pull in draw order (pull id).
  const gachas = new Map()
  const streak = new Map()
  const lastNonce = new Map()
  for (const p of allPulls.sort((a, b) => Number(a.pull_id) - Number(b.pull_id))) {
    if (!gachas.has(p.gacha_id)) {
      let g = null
      try { g = await call('get_gacha', { p_gacha_id: p.gacha_id }) } catch (err) { g = null }
      gachas.set(p.gacha_id, g)
    }
    const g = gachas.get(p.gacha_id)
    if (!g) {
      if (p.pity) report.notes.push(L(`抽選 ${p.pull_id}: ガチャが公開されていないため天井を確認できません`, `Pull ${p.pull_id}: its gacha is not public any more; pity not checked`))
      continue
    }
    if (!g.pity) {
      if (p.pity) bad('pity', L(`抽選 ${p.pull_id}: 天井のないガチャで天井と記録されています`, `Pull ${p.pull_id}: marked pity on a gacha without pity`))
      continue
    }
    const { pulls: P, rarity: Q } = g.pity
    const s = streak.get(p.gacha_id) || 0
    const expected = s >= P - 1
    if (expected !== Boolean(p.pity)) {
      bad('pity', L(`抽選 ${p.pull_id}: 天井 ${p.pity ? 'あり' : 'なし'}、${Q}未満が${s}回続いた後なので${expected ? 'あり' : 'なし'}のはずです`,
        `Pull ${p.pull_id}: pity ${Boolean(p.pity)}, expected ${expected} after ${s} pulls below ${Q}`))
    }
    if (p.pity) report.pityPulls += 1
    if (p.pity && RANK[p.rarity] < RANK[Q]) bad('pity', L(`抽選 ${p.pull_id}: 天井なのに ${Q} 未満です`, `Pull ${p.pull_id}: a pity pull drew ${p.rarity}, below ${Q}`))
    streak.set(p.gacha_id, RANK[p.rarity] >= RANK[Q] ? 0 : s + 1)
    const last = lastNonce.get(p.gacha_id)
    if (last && last[0] === p.seed_id && p.nonce < last[1]) {
      report.notes.push(L(`抽選 ${p.pull_id}: 同じ天井ガチャの後の nonce より後に引かれました（注文の処理順）`, `Pull ${p.pull_id}: drawn after a later nonce of the same pity gacha (orders fulfilled out of nonce order)`))
    }
    lastNonce.set(p.gacha_id, [p.seed_id, p.nonce])
  }
  return report
}

// The fairness page's button: everything of the signed-in fan.
export async function verifyMine (call = rpc) {
  return verify(await collect(call), call)
}
