// Small DOM helpers: elements built with h() (text nodes only, data is never parsed as HTML), labelled
// form fields, the flash area for results and errors.
import { ApiError } from './api.js'
import { L } from './i18n.js'

export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (k === 'class') el.className = v
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (v === true) el.setAttribute(k, '')
    else el.setAttribute(k, v)
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

// replaceChildren that skips null/false, as h() does (optional parts of a screen).
export function fill (el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false))
  return el
}

let fieldSeq = 0
// A labelled control: <label for> + input/select/textarea, wrapped in a div.
export function field (label, control, hint) {
  const id = control.id || `f${++fieldSeq}`
  control.id = id
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null)
}

// A message survives the one navigation that usually follows the action that set it.
export function flash (message, kind = 'ok') {
  const box = document.getElementById('flash')
  if (kind === 'ok') box.dataset.keep = '1'
  else delete box.dataset.keep
  fill(box, h('p', { class: `flash ${kind}`, role: kind === 'error' ? 'alert' : null }, message))
}
export function clearFlash () {
  const box = document.getElementById('flash')
  if (box.dataset.keep) delete box.dataset.keep
  else fill(box)
}

export function showError (err) {
  // A refusal of the API is an answer, shown in words (logged as info); anything else is a bug of
  // this page and is logged as an error, which the browser tests fail on.
  if (err instanceof ApiError) console.info('API refusal', err.code, err.details)
  else console.error('unexpected error', err)
  flash(err?.message || String(err), 'error')
}

// Runs an action from a button: disables it meanwhile, shows the API's refusal in words.
export async function act (button, fn) {
  if (button) button.disabled = true
  try {
    return await fn()
  } catch (err) {
    showError(err)
    return undefined
  } finally {
    if (button) button.disabled = false
  }
}

export function table (headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length }, L('ありません', 'None')))))
}

export const section = (title, ...children) => h('section', {}, h('h2', {}, title), ...children)

export function download (filename, blob) {
  const url = URL.createObjectURL(blob)
  const a = h('a', { href: url, download: filename })
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60000)
}
