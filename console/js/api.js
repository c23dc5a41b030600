// Every call the console makes, in one place: supabase-js for Auth, PostgREST RPCs, Storage and
// Realtime; fetch for the payment service (/payments/*) and the card form's confirmation.
// The configuration (API URL, anon key, payment service URL) comes from /config.json, never from code.
import { errorText, getLang } from './i18n.js'

export let cfg = null
// `koepon gen types typescript -o console/js/database.types.ts` gives editors the Database type
// (generated on demand, not committed: it follows the migrations).
/** @type {import('@supabase/supabase-js').SupabaseClient<import('./database.types').Database>} */
export let sb = null

export class ApiError extends Error {
  constructor (code, details, status) {
    super(errorText(code, details))
    this.code = code
    this.details = details
    this.status = status
  }
}

export async function init () {
  const res = await fetch('/config.json')
  cfg = await res.json()
  sb = window.supabase.createClient(cfg.supabase_url, cfg.anon_key, {
    auth: { persistSession: true, autoRefreshToken: true, detectSessionInUrl: true, storageKey: 'koepon-console-auth' },
  })
  // A recovery link lands here with the session in the URL; supabase-js reads it while it starts
  // and says PASSWORD_RECOVERY once, so listen before anything waits on it.
  sb.auth.onAuthStateChange((event) => { if (event === 'PASSWORD_RECOVERY') recovery.pending = true })
  return cfg
}

export const recovery = { pending: false }

// PostgREST's error body is {code: SQLSTATE, message: our snake_case code, details: words, hint}.
function fromPostgrest (error, status) {
  const code = /^[a-z_]+$/.test(error.message || '') ? error.message
    : error.code === 'PGRST202' ? 'not_available_here' : error.code
  return new ApiError(code, error.details || error.message, status)
}

export async function rpc (name, args = {}) {
  const { data, error, status } = await sb.rpc(name, args)
  if (error) throw fromPostgrest(error, status)
  return data
}

export async function select (view, build = (q) => q) {
  const { data, error, status } = await build(sb.from(view).select('*'))
  if (error) throw fromPostgrest(error, status)
  return data
}

// Storage's errors ({statusCode, error, message}) as words.
export function storageError (error) {
  return new ApiError(null, error.message, Number(error.statusCode) || error.status)
}

export async function session () {
  const { data } = await sb.auth.getSession()
  return data.session
}

export function authError (error) {
  return new ApiError(error.code || (error.status === 400 ? 'invalid_credentials' : null), error.message, error.status)
}

// The payment service: the fan's (or admin's) access token as Bearer; errors are {code, message}.
export async function payments (path, body = {}) {
  const s = await session()
  const res = await fetch(cfg.payments_url + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s?.access_token || ''}`, 'Accept-Language': getLang() },
    body: JSON.stringify(body),
  })
  const data = await res.json().catch(() => ({}))
  if (!res.ok) throw new ApiError(data.code, data.message, res.status)
  return data
}

// What Stripe.js's confirmCardPayment sends: the publishable key and the PaymentIntent's client
// secret, never the secret key. Locally this reaches the fake Stripe (config.stripe_api_base).
export async function confirmCard (paymentIntentId, clientSecret, card) {
  const form = new URLSearchParams({
    key: cfg.stripe_publishable_key,
    client_secret: clientSecret,
    'payment_method_data[type]': 'card',
    'payment_method_data[card][number]': card.number,
    'payment_method_data[card][exp_month]': card.expMonth,
    'payment_method_data[card][exp_year]': card.expYear,
    'payment_method_data[card][cvc]': card.cvc,
  })
  const res = await fetch(`${cfg.stripe_api_base}/v1/payment_intents/${encodeURIComponent(paymentIntentId)}/confirm`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form,
  })
  const data = await res.json()
  if (!res.ok) throw new ApiError(data.error?.code || 'provider_error', data.error?.message, res.status)
  return data
}

// The RPC names of the account lifecycle (sessions, deletion). They belong to the Auth work that
// adds `auth.sessions` and erasure; until the server has them, the screens say so in words.
export const ACCOUNT_RPC = {
  listSessions: 'my_sessions',
  endSession: 'end_my_session',
  requestDeletion: 'request_account_deletion',
  cancelDeletion: 'cancel_account_deletion',
}
