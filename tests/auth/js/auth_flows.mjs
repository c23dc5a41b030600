// The auth lifecycle driven by the real supabase-js against the local API, reading every e-mail
// from the mail catcher's Mailpit API. Usage: node auth_flows.mjs API_URL ANON_KEY SERVICE_KEY MAIL_URL
// Prints one line per check and "passed N" at the end; exits 1 on the first failure.
import { createClient } from '@supabase/supabase-js'
import assert from 'node:assert/strict'

const [api, anonKey, serviceKey, mailUrl] = process.argv.slice(2)
// Realtime is not used here; Node 20 has no native WebSocket, so supabase-js gets a stand-in class.
class NoWebSocket { constructor () { throw new Error('realtime is not used by these checks') } }
const opts = (extra = {}) => ({
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, ...extra },
  realtime: { transport: NoWebSocket }
})
const client = (extra) => createClient(api, anonKey, opts(extra))
const admin = createClient(api, serviceKey, opts())
const PASSWORD = 'correct horse 1'
let passed = 0
const email = (tag) => `${tag}-${Math.random().toString(16).slice(2, 12)}@example.com`

async function check(name, fn) {
  await fn()
  passed += 1
  console.log(`ok ${name}`)
}

async function mails(to, count = 1) {
  for (let i = 0; i < 200; i++) {
    const res = await (await fetch(`${mailUrl}/api/v1/search?query=${encodeURIComponent('to:' + to)}`)).json()
    if (res.messages.length >= count) {
      return Promise.all(res.messages.slice(0, count).map(async (m) => (await fetch(`${mailUrl}/api/v1/message/${m.ID}`)).json()))
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`no mail to ${to}`)
}
const codeOf = (m) => m.Text.match(/Code: (\d{6})/)[1]
const linkOf = (m) => m.HTML.match(/href="([^"]+\/verify\?[^"]+)"/)[1].replaceAll('&amp;', '&')

await check('signUp sends a confirmation; verifyOtp(signup) confirms and signs in', async () => {
  const addr = email('js-signup')
  const sb = client()
  const { data, error } = await sb.auth.signUp({ email: addr, password: PASSWORD, options: { data: { display_name: 'ジェイエス' } } })
  assert.equal(error, null)
  assert.equal(data.session, null)
  const refused = await sb.auth.signInWithPassword({ email: addr, password: PASSWORD })
  assert.equal(refused.error.code, 'email_not_confirmed')
  const [m] = await mails(addr)
  const ok = await sb.auth.verifyOtp({ email: addr, token: codeOf(m), type: 'signup' })
  assert.equal(ok.error, null)
  assert.equal(ok.data.session.user.email, addr)
})

await check('signInWithOtp code works once; reuse is otp_expired', async () => {
  const addr = email('js-otp')
  const sb = client()
  assert.equal((await sb.auth.signInWithOtp({ email: addr })).error, null)
  const [m] = await mails(addr)
  const first = await sb.auth.verifyOtp({ email: addr, token: codeOf(m), type: 'email' })
  assert.equal(first.error, null)
  const again = await client().auth.verifyOtp({ email: addr, token: codeOf(m), type: 'email' })
  assert.equal(again.error.code, 'otp_expired')
  assert.equal(again.error.status, 403)
})

await check('PKCE recovery: link -> ?code= -> exchangeCodeForSession -> updateUser', async () => {
  const addr = email('js-pkce')
  await admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true })
  const sb = client({ flowType: 'pkce' })
  assert.equal((await sb.auth.resetPasswordForEmail(addr, { redirectTo: 'http://127.0.0.1:3000/reset' })).error, null)
  const [m] = await mails(addr)
  const res = await fetch(linkOf(m), { redirect: 'manual' })
  assert.equal(res.status, 303)
  const loc = new URL(res.headers.get('location'))
  assert.equal(loc.pathname, '/reset')
  const { data, error } = await sb.auth.exchangeCodeForSession(loc.searchParams.get('code'))
  assert.equal(error, null)
  assert.equal(data.user.email, addr)
  assert.equal((await sb.auth.updateUser({ password: 'js new pass 1' })).error, null)
  assert.equal((await client().auth.signInWithPassword({ email: addr, password: 'js new pass 1' })).error, null)
})

await check('updateUser({email}) needs both addresses (double confirm)', async () => {
  const oldAddr = email('js-old')
  const newAddr = email('js-new')
  await admin.auth.admin.createUser({ email: oldAddr, password: PASSWORD, email_confirm: true })
  const sb = client()
  await sb.auth.signInWithPassword({ email: oldAddr, password: PASSWORD })
  const upd = await sb.auth.updateUser({ email: newAddr })
  assert.equal(upd.data.user.new_email, newAddr)
  const [toOld] = await mails(oldAddr)
  const [toNew] = await mails(newAddr)
  const one = await sb.auth.verifyOtp({ email: oldAddr, token: codeOf(toOld), type: 'email_change' })
  assert.equal(one.error, null)
  assert.equal((await sb.auth.getUser()).data.user.email, oldAddr)
  const two = await sb.auth.verifyOtp({ email: newAddr, token: codeOf(toNew), type: 'email_change' })
  assert.equal(two.error, null)
  assert.equal(two.data.user.email, newAddr)
})

await check("signOut({scope: 'others'}) ends the other device's session", async () => {
  const addr = email('js-scope')
  await admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true })
  const a = client()
  const b = client()
  await a.auth.signInWithPassword({ email: addr, password: PASSWORD })
  const sb = (await b.auth.signInWithPassword({ email: addr, password: PASSWORD })).data.session
  const { data: sessions } = await a.rpc('my_sessions')
  assert.equal(sessions.length, 2)
  assert.equal((await a.auth.signOut({ scope: 'others' })).error, null)
  const refreshed = await client().auth.refreshSession({ refresh_token: sb.refresh_token })
  assert.equal(refreshed.error.code, 'refresh_token_not_found')
  assert.equal((await a.rpc('my_sessions')).data.length, 1)
})

await check('admin.listUsers paginates (nextPage, lastPage, total)', async () => {
  const { data, error } = await admin.auth.admin.listUsers({ page: 1, perPage: 2 })
  assert.equal(error, null)
  assert.equal(data.users.length, 2)
  assert.equal(data.nextPage, 2)
  assert.ok(data.total >= 5)
  assert.equal(data.lastPage, Math.ceil(data.total / 2))
})

await check('admin ban_duration: banned users cannot sign in; shows as suspended', async () => {
  const addr = email('js-ban')
  const { data } = await admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true })
  const banned = await admin.auth.admin.updateUserById(data.user.id, { ban_duration: '1h' })
  assert.ok(banned.data.user.banned_until)
  const res = await client().auth.signInWithPassword({ email: addr, password: PASSWORD })
  assert.equal(res.error.code, 'user_banned')
  await admin.auth.admin.updateUserById(data.user.id, { ban_duration: 'none' })
  assert.equal((await client().auth.signInWithPassword({ email: addr, password: PASSWORD })).error, null)
})

await check('admin.generateLink(magiclink) gives a working link and sends nothing', async () => {
  const addr = email('js-link')
  await admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true })
  const { data, error } = await admin.auth.admin.generateLink({ type: 'magiclink', email: addr })
  assert.equal(error, null)
  assert.equal(data.properties.verification_type, 'magiclink')
  assert.equal(data.properties.email_otp.length, 6)
  const res = await fetch(data.properties.action_link, { redirect: 'manual' })
  const frag = new URLSearchParams(new URL(res.headers.get('location')).hash.slice(1))
  const user = await client().auth.getUser(frag.get('access_token'))
  assert.equal(user.data.user.email, addr)
  const box = await (await fetch(`${mailUrl}/api/v1/search?query=${encodeURIComponent('to:' + addr)}`)).json()
  assert.equal(box.messages.length, 0)
})

await check('admin.deleteUser(id, shouldSoftDelete) and getUserById', async () => {
  const addr = email('js-del')
  const { data } = await admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true })
  assert.equal((await admin.auth.admin.deleteUser(data.user.id, true)).error, null)
  const got = await admin.auth.admin.getUserById(data.user.id)
  assert.ok(got.data.user.deleted_at)
  assert.notEqual(got.data.user.email, addr)
})

console.log(`passed ${passed}`)
