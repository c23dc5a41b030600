// Amounts in yen with the tax-inclusive notation Japanese shops use (¥1,000（税込）), dates in JST.
import { getLang, L } from './i18n.js'

const locale = () => (getLang() === 'en' ? 'en-GB' : 'ja-JP')

export function yen (n) {
  if (n === null || n === undefined) return '—'
  const s = '¥' + Number(n).toLocaleString('ja-JP')
  return s + L('（税込）', ' (tax incl.)')
}

// A plain yen figure where the heading already says "tax included" (tables, charts).
export const yenPlain = (n) => (n === null || n === undefined ? '—' : '¥' + Number(n).toLocaleString('ja-JP'))

export function jst (iso, withTime = true) {
  const d = new Date(iso)
  if (!iso || Number.isNaN(d.getTime())) return '—'  // null, or "-infinity" (a rollup that never ran)
  const opts = { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit' }
  if (withTime) Object.assign(opts, { hour: '2-digit', minute: '2-digit', hour12: false })
  return new Intl.DateTimeFormat(locale(), opts).format(d) + (withTime ? ' JST' : '')
}

// Today's JST calendar date as YYYY-MM-DD (every "day" of the product is a JST day).
export function jstDate (d = new Date(), offsetDays = 0) {
  const t = new Date(d.getTime() + 9 * 3600e3 + offsetDays * 86400e3)
  return t.toISOString().slice(0, 10)
}

export const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString(locale()))
export const pct = (ppm) => (Number(ppm) / 10000).toFixed(4) + ' %'

export const RARITIES = ['N', 'R', 'SR', 'SSR', 'UR']
export const rarityRank = (r) => RARITIES.indexOf(r) + 1
