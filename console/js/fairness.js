// "Verify my pulls" in the browser with WebCrypto, from public data only (docs/fairness.md):
// the revealed server seed matches its commitment, each rate table hashes to its version, and every
// pull's roll and item recompute from HMAC-SHA256(server seed, "client_seed:nonce:round").
import { rpc } from './api.js'
import { L } from './i18n.js'

const enc = new TextEncoder()
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('')
const unhex = (s) => new Uint8Array(s.match(/../g).map((b) => parseInt(b, 16)))
const sha256 = async (bytes) => hex(await crypto.subtle.digest('SHA-256', bytes))

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

export async function verifyPulls (revealedSeeds) {
  const tables = new Map()
  const report = { ok: true, seeds: 0, pulls: 0, problems: [], rows: [] }
  const bad = (msg) => { report.ok = false; report.problems.push(msg) }
  for (const seed of revealedSeeds) {
    report.seeds += 1
    if (await sha256(unhex(seed.server_seed)) !== seed.server_seed_hash) {
      bad(L(`シード ${seed.seed_id} のハッシュが約束と一致しません`, `Seed ${seed.seed_id} does not hash to its commitment`))
    }
    for (const o of seed.orders) {
      if (o.status !== 'fulfilled') continue
      const order = await rpc('get_order', { p_order_id: o.order_id })
      const committed = [order.rate_table_version, order.pity_rate_table_version].filter(Boolean)
      for (const p of order.pulls || []) {
        if (p.seed_id !== seed.seed_id) continue
        report.pulls += 1
        let t = tables.get(p.rate_table_version)
        if (!t) {
          t = await rpc('get_rate_table', { p_version: p.rate_table_version })
          t.hashOk = (await tableVersion(t.entries)) === t.version
          tables.set(p.rate_table_version, t)
        }
        if (!t.hashOk) bad(L(`確率表 ${t.version.slice(0, 12)} がバージョンと一致しません`, `Rate table ${t.version.slice(0, 12)} does not hash to its version`))
        if (committed.length && !committed.includes(p.rate_table_version)) bad(L(`注文 ${o.order_id} が約束と違う確率表を使いました`, `Order ${o.order_id} used a table it did not commit`))
        if (order.first_nonce !== null && order.first_nonce !== undefined &&
            (p.nonce < order.first_nonce || p.nonce >= order.first_nonce + order.pull_count)) {
          bad(L(`注文 ${o.order_id} の nonce ${p.nonce} が範囲外です`, `Order ${o.order_id} used nonce ${p.nonce} outside its range`))
        }
        const r = await roll(seed.server_seed, seed.client_seed, p.nonce, Number(t.total_ppm))
        const item = pick(t.entries, r)
        const ok = r === Number(p.roll) && item?.itemId === p.gacha_item_id
        if (!ok) bad(L(`nonce ${p.nonce}: 再計算 ${r} ≠ 記録 ${p.roll}`, `nonce ${p.nonce}: recomputed ${r}, recorded ${p.roll}`))
        report.rows.push({ order_id: o.order_id, nonce: p.nonce, roll: r, item: `${p.rarity} ${p.item_name}`, ok })
      }
    }
  }
  return report
}
