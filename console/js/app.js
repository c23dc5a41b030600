// The console's shell: configuration, session, navigation by role, and the router (#/path).
import { ApiError, init, recovery, rpc, sb } from './api.js'
import { L, getLang, setLang } from './i18n.js'
import { clearFlash, fill, h } from './ui.js'
import * as auth from './views/auth.js'
import * as fan from './views/fan.js'
import * as vtuber from './views/vtuber.js'
import * as admin from './views/admin.js'

export const state = { session: null, profile: null }

const routes = [
  [/^\/$/, fan.catalog],
  [/^\/gacha\/([\w-]+)$/, fan.gacha],
  [/^\/checkout\/([\w-]+)$/, fan.checkout],
  [/^\/reveal\/([\w-]+)$/, fan.reveal],
  [/^\/medals$/, fan.medals],
  [/^\/exchange\/([\w-]+)$/, fan.exchange],
  [/^\/box$/, fan.box],
  [/^\/fairness$/, fan.fairness],
  [/^\/history$/, fan.history],
  [/^\/account$/, auth.account],
  [/^\/signin$/, auth.signin],
  [/^\/signup$/, auth.signup],
  [/^\/reset$/, auth.reset],
  [/^\/vtuber$/, vtuber.profile],
  [/^\/vtuber\/gachas$/, vtuber.gachas],
  [/^\/vtuber\/gacha\/([\w-]+)$/, vtuber.editor],
  [/^\/vtuber\/exchange$/, vtuber.exchangeItems],
  [/^\/vtuber\/dashboard$/, vtuber.dashboard],
  [/^\/vtuber\/statements$/, vtuber.statements],
  [/^\/admin$/, admin.kpis],
  [/^\/admin\/applications$/, admin.applications],
  [/^\/admin\/refunds$/, admin.refunds],
  [/^\/admin\/disputes$/, admin.disputes],
  [/^\/admin\/payments$/, admin.flagged],
  [/^\/admin\/users$/, admin.users],
  [/^\/admin\/audit$/, admin.audit],
]

const roles = () => state.profile?.roles || []

function nav () {
  const link = (href, text) => h('a', { href, 'aria-current': location.hash === href ? 'page' : null }, text)
  const items = [link('#/', L('ガチャ一覧', 'Gachas'))]
  if (state.session) {
    items.push(link('#/medals', L('推しメダル', 'Medals')), link('#/box', L('特典BOX', 'Reward box')),
      link('#/history', L('購入履歴', 'Purchases')), link('#/fairness', L('公平性', 'Fairness')),
      link('#/account', L('アカウント', 'Account')))
  }
  if (roles().includes('vtuber')) {
    items.push(h('span', { class: 'sep' }, 'VTuber:'), link('#/vtuber', L('プロフィール', 'Profile')),
      link('#/vtuber/gachas', L('ガチャ編集', 'Gachas')), link('#/vtuber/exchange', L('交換所', 'Exchange')),
      link('#/vtuber/dashboard', L('売上', 'Sales')), link('#/vtuber/statements', L('明細', 'Statements')))
  }
  if (roles().includes('admin')) {
    items.push(h('span', { class: 'sep' }, L('管理:', 'Admin:')), link('#/admin', 'KPI'),
      link('#/admin/applications', L('申請', 'Applications')), link('#/admin/refunds', L('返金', 'Refunds')),
      link('#/admin/disputes', L('チャージバック', 'Disputes')), link('#/admin/payments', L('要確認の決済', 'Flagged payments')),
      link('#/admin/users', L('ユーザー', 'Users')), link('#/admin/audit', L('監査ログ', 'Audit log')))
  }
  document.getElementById('nav').replaceChildren(...items)
  const who = document.getElementById('who')
  if (state.session) {
    fill(who, h('span', { id: 'who-email' }, state.session.user.email), ' ',
      h('button', { type: 'button', id: 'signout', onclick: signOut }, L('ログアウト', 'Sign out')))
  } else {
    fill(who, h('a', { href: '#/signin', id: 'signin-link' }, L('ログイン', 'Sign in')), ' ',
      h('a', { href: '#/signup', id: 'signup-link' }, L('新規登録', 'Sign up')))
  }
  document.getElementById('skip-link').textContent = L('本文へ移動', 'Skip to content')
  document.getElementById('lang-label').textContent = L('言語', 'Language')
  document.getElementById('nav').setAttribute('aria-label', L('メイン', 'Main'))
  document.getElementById('foot-note').textContent = L(
    '金額はすべて税込です。日時は日本時間（JST）で表示しています。',
    'All amounts include consumption tax. Times are shown in Japan Standard Time (JST).')
}

async function signOut () {
  await sb.auth.signOut({ scope: 'local' })
  location.hash = '#/'
}

export async function refreshProfile () {
  state.profile = state.session ? await rpc('get_my_profile').catch(() => null) : null
}

let current = null  // the view's cleanup (Realtime channels, charts)
export async function render () {
  const path = location.hash.replace(/^#/, '') || '/'
  const view = document.getElementById('view')
  delete document.body.dataset.shown  // set again once this screen is drawn (tests wait on it)
  if (current) { try { await current() } catch (_) { /* leaving a view never fails the next */ } current = null }
  nav()
  for (const [re, fn] of routes) {
    const m = path.match(re)
    if (m) {
      fill(view, h('p', { class: 'loading' }, L('読み込み中…', 'Loading…')))
      try {
        current = (await fn(view, ...m.slice(1))) || null
      } catch (err) {
        if (!(err instanceof ApiError)) console.error('the screen failed', err)  // a bug of this page
        fill(view, h('p', { class: 'flash error', role: 'alert' }, err.message || String(err)))
      }
      document.title = `${view.querySelector('h1')?.textContent || ''} — ${L('こえポン！コンソール', 'Koepon console')}`
      document.body.dataset.shown = path
      return
    }
  }
  fill(view, h('h1', {}, L('ページが見つかりません', 'Page not found')))
}

export function go (hash) {
  if (location.hash === hash) render().then(clearFlash)
  else location.hash = hash
}

async function main () {
  await init()
  const langSel = document.getElementById('lang')
  setLang(getLang())
  langSel.value = getLang()
  langSel.addEventListener('change', () => { setLang(langSel.value); render() })
  state.session = (await sb.auth.getSession()).data.session
  await refreshProfile()
  if (recovery.pending) {  // signed in by a recovery link: choose the new password first
    recovery.pending = false
    window.history.replaceState(null, '', '#/reset')
  }
  sb.auth.onAuthStateChange((event, session) => {
    const changed = (session?.user?.id || null) !== (state.session?.user?.id || null)
    state.session = session
    if (event === 'PASSWORD_RECOVERY') { location.hash = '#/reset'; return }  // a link opened in a running page
    // Never call supabase-js inside its own auth callback (it holds a lock): do it on the next tick.
    if (changed) setTimeout(() => refreshProfile().then(nav), 0)
  })
  window.addEventListener('hashchange', () => { clearFlash(); render() })
  await render()
  document.body.dataset.ready = '1'
}

main()
