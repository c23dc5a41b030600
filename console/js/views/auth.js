// Sign up, sign in, password reset, and the account page (profile, birth date, minors' limits,
// launch-feed opt-in, VTuber application, password, sessions, account deletion).
import { ACCOUNT_RPC, ApiError, authError, cfg, rpc, sb } from '../api.js'
import { L } from '../i18n.js'
import { jst, yen } from '../format.js'
import { act, field, fill, flash, h, section, table } from '../ui.js'
import { go, refreshProfile, state } from '../app.js'

const input = (attrs) => h('input', attrs)

export async function signin (view) {
  const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true })
  const password = input({ type: 'password', name: 'password', autocomplete: 'current-password', required: true })
  const form = h('form', { id: 'signin-form' },
    field(L('メールアドレス', 'E-mail'), email),
    field(L('パスワード', 'Password'), password),
    h('button', { type: 'submit' }, L('ログイン', 'Sign in')))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    act(form.querySelector('button'), async () => {
      const { data, error } = await sb.auth.signInWithPassword({ email: email.value, password: password.value })
      if (error) throw authError(error)
      state.session = data.session
      await refreshProfile()
      go('#/')
    })
  })
  fill(view, h('h1', {}, L('ログイン', 'Sign in')), form,
    h('p', {}, h('a', { href: '#/reset' }, L('パスワードを忘れた方', 'Forgot your password?')), ' · ',
      h('a', { href: '#/signup' }, L('新規登録', 'Create an account'))))
}

export async function signup (view) {
  const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true })
  const password = input({ type: 'password', name: 'password', autocomplete: 'new-password', minlength: 6, required: true })
  const name = input({ type: 'text', name: 'display_name', maxlength: 50, autocomplete: 'nickname' })
  const birth = input({ type: 'date', name: 'birth_date' })
  const form = h('form', { id: 'signup-form' },
    field(L('メールアドレス', 'E-mail'), email),
    field(L('パスワード（6文字以上）', 'Password (6 characters or more)'), password),
    field(L('表示名', 'Display name'), name),
    field(L('生年月日（購入に必要・あとで変更不可）', 'Birth date (needed to buy; cannot be changed later)'), birth),
    h('button', { type: 'submit' }, L('登録する', 'Sign up')))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    act(form.querySelector('button'), async () => {
      const data = { display_name: name.value || undefined }
      if (birth.value) data.birth_date = birth.value
      const res = await sb.auth.signUp({ email: email.value, password: password.value, options: { data, emailRedirectTo: location.origin + '/' } })
      if (res.error) throw authError(res.error)
      if (!res.data.session) {
        flash(L('確認メールを送りました。メール内のリンクを開いてください。', 'We sent you a confirmation e-mail: open the link in it.'))
        return
      }
      state.session = res.data.session
      await refreshProfile()
      flash(L('ようこそ！登録が完了しました。', 'Welcome! Your account is ready.'))
      go('#/')
    })
  })
  fill(view, h('h1', {}, L('新規登録', 'Sign up')), form)
}

// Password reset: the e-mail (recovery link) and, after following it, the new password.
export async function reset (view) {
  const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true })
  const ask = h('form', { id: 'reset-request-form' },
    field(L('登録したメールアドレス', 'Your e-mail address'), email),
    h('button', { type: 'submit' }, L('再設定メールを送る', 'Send the reset e-mail')))
  ask.addEventListener('submit', (e) => {
    e.preventDefault()
    act(ask.querySelector('button'), async () => {
      const { error } = await sb.auth.resetPasswordForEmail(email.value, { redirectTo: location.origin + '/#/reset' })
      if (error) throw authError(error)
      flash(L('メールを送りました。届いたリンクを開いてください。', 'E-mail sent: open the link in it.') +
        (cfg.mail_url ? L(`（ローカル: ${cfg.mail_url}）`, ` (locally: ${cfg.mail_url})`) : ''))
    })
  })
  const pw = input({ type: 'password', name: 'new_password', autocomplete: 'new-password', minlength: 6, required: true })
  const set = h('form', { id: 'reset-password-form' },
    field(L('新しいパスワード', 'New password'), pw),
    h('button', { type: 'submit' }, L('パスワードを変更', 'Change the password')))
  set.addEventListener('submit', (e) => {
    e.preventDefault()
    act(set.querySelector('button'), async () => {
      const { error } = await sb.auth.updateUser({ password: pw.value })
      if (error) throw authError(error)
      flash(L('パスワードを変更しました。', 'Your password was changed.'))
      go('#/')
    })
  })
  fill(view, h('h1', {}, L('パスワードの再設定', 'Reset your password')),
    state.session ? set : ask)
}

export async function account (view) {
  if (!state.session) return go('#/signin')
  const p = await rpc('get_my_profile')
  const limits = await rpc('get_my_spending_limits')

  const name = input({ type: 'text', value: p.display_name || '', maxlength: 50 })
  const birth = input({ type: 'date', value: p.birth_date || '', disabled: !!p.birth_date })
  const profileForm = h('form', { id: 'profile-form' },
    field(L('表示名', 'Display name'), name),
    field(L('生年月日（一度だけ登録できます）', 'Birth date (can be set once)'), birth),
    h('button', { type: 'submit' }, L('保存', 'Save')))
  profileForm.addEventListener('submit', (e) => {
    e.preventDefault()
    act(profileForm.querySelector('button'), async () => {
      await rpc('update_my_profile', { p_display_name: name.value, p_birth_date: p.birth_date ? null : (birth.value || null) })
      flash(L('保存しました。', 'Saved.'))
      go('#/account')
    })
  })

  const limitText = !limits.birth_date_set ? L('生年月日が未登録のため、まだ購入できません。', 'No birth date yet: you cannot buy until you set it.')
    : !limits.capped ? L('成人のため、利用上限はありません。', 'Adult: no spending limits.')
      : !limits.can_purchase ? L('13歳未満の方は購入できません。', 'Under 13: purchases are not allowed.')
        : L(`未成年の利用上限: 1日 ${yen(limits.daily_cap_jpy)}・1か月 ${yen(limits.monthly_cap_jpy)}。今日 ${yen(limits.spent_today_jpy)}、今月 ${yen(limits.spent_this_month_jpy)} 使用、残り ${yen(limits.remaining_jpy)}。`,
          `Minor's limits: ${yen(limits.daily_cap_jpy)} a day, ${yen(limits.monthly_cap_jpy)} a month. Spent ${yen(limits.spent_today_jpy)} today, ${yen(limits.spent_this_month_jpy)} this month; ${yen(limits.remaining_jpy)} left.`)

  const feed = input({ type: 'checkbox', checked: !!p.show_in_launch_feed })
  feed.addEventListener('change', () => act(feed, async () => {
    await rpc('set_show_in_launch_feed', { p_show: feed.checked })
    flash(L('保存しました。', 'Saved.'))
  }))

  const vname = input({ type: 'text', maxlength: 100 })
  const vdesc = h('textarea', { rows: 3 })
  const apply = h('form', { id: 'apply-form' },
    field(L('VTuber名', 'VTuber name'), vname), field(L('自己紹介', 'About you'), vdesc),
    h('button', { type: 'submit' }, L('VTuberとして申請', 'Apply as a VTuber')))
  apply.addEventListener('submit', (e) => {
    e.preventDefault()
    act(apply.querySelector('button'), async () => {
      await rpc('submit_vtuber_application', { p_vtuber_name: vname.value, p_description: vdesc.value })
      flash(L('申請しました。審査をお待ちください。', 'Application sent: an admin will review it.'))
      go('#/account')
    })
  })
  const apps = await rpc('list_my_applications').catch(() => [])

  const pw = input({ type: 'password', autocomplete: 'new-password', minlength: 6 })
  const pwForm = h('form', { id: 'password-form' }, field(L('新しいパスワード', 'New password'), pw),
    h('button', { type: 'submit' }, L('パスワードを変更', 'Change the password')))
  pwForm.addEventListener('submit', (e) => {
    e.preventDefault()
    act(pwForm.querySelector('button'), async () => {
      const { error } = await sb.auth.updateUser({ password: pw.value })
      if (error) throw authError(error)
      pw.value = ''
      flash(L('パスワードを変更しました。', 'Your password was changed.'))
    })
  })

  fill(view, 
    h('h1', {}, L('アカウント', 'Account')),
    section(L('プロフィール', 'Profile'), h('p', {}, state.session.user.email), profileForm),
    section(L('利用上限', 'Spending limits'), h('p', { id: 'limits' }, limitText)),
    section(L('ランチフィード', 'Launch feed'),
      h('div', { class: 'field inline' }, feed, h('label', { for: (feed.id = 'feed-opt-in') }, L('SSR・URを引いたとき表示名を公開する', 'Show my display name when I pull SSR or UR')))),
    section(L('VTuber申請', 'Become a VTuber'),
      apps.length ? table([L('VTuber名', 'Name'), L('状態', 'Status'), L('日時', 'Date')],
        apps.map((a) => h('tr', {}, h('td', {}, a.vtuber_name), h('td', {}, a.status), h('td', {}, jst(a.created_at))))) : null,
      p.roles.includes('vtuber') ? h('p', {}, L('VTuberとして承認済みです。', 'You are an approved VTuber.')) : apply),
    section(L('パスワード', 'Password'), pwForm),
    await sessionsSection(),
    deletionSection())
}

// Sessions: the list comes from an RPC over auth.sessions (hosted Auth has no list endpoint);
// signing out uses supabase-js's own scopes.
async function sessionsSection () {
  const box = h('div', { id: 'sessions' })
  try {
    const rows = await rpc(ACCOUNT_RPC.listSessions)
    box.append(table([L('端末', 'Device'), L('IP', 'IP'), L('最終利用', 'Last active'), ''],
      (rows || []).map((s) => h('tr', {}, h('td', {}, s.user_agent || '—'), h('td', {}, s.ip || '—'),
        h('td', {}, jst(s.last_active_at || s.refreshed_at || s.updated_at || s.created_at)),
        h('td', {}, s.is_current ? L('この端末', 'this device')
          : h('button', { type: 'button', onclick: (e) => act(e.target, async () => { await rpc(ACCOUNT_RPC.endSession, { p_session_id: s.id }); go('#/account') }) }, L('ログアウトさせる', 'End')))))))
  } catch (err) {
    box.append(h('p', { class: 'note' }, err.message))
  }
  const others = h('button', { type: 'button', id: 'signout-others' }, L('他の端末からログアウト', 'Sign out other devices'))
  others.addEventListener('click', () => act(others, async () => {
    const { error } = await sb.auth.signOut({ scope: 'others' })
    if (error) throw authError(error)
    flash(L('他の端末からログアウトしました。', 'Other devices were signed out.'))
  }))
  const all = h('button', { type: 'button', id: 'signout-all' }, L('すべての端末からログアウト', 'Sign out everywhere'))
  all.addEventListener('click', () => act(all, async () => {
    const { error } = await sb.auth.signOut({ scope: 'global' })
    if (error) throw authError(error)
    go('#/')
  }))
  return section(L('ログイン中の端末', 'Active sessions'), box, h('p', {}, others, ' ', all))
}

function deletionSection () {
  const confirmBox = h('input', { type: 'checkbox', id: 'delete-confirm' })
  const btn = h('button', { type: 'button', id: 'delete-account', class: 'danger' }, L('アカウントの削除を申請', 'Ask to delete my account'))
  btn.addEventListener('click', () => act(btn, async () => {
    if (!confirmBox.checked) throw new ApiError(null, L('確認のチェックを入れてください。', 'Tick the confirmation first.'))
    const r = await rpc(ACCOUNT_RPC.requestDeletion)
    flash(L(`削除を申請しました。${jst(r.erase_after)} 以降に削除されます。それまでは取り消せます。`,
      `Deletion requested: the account is erased after ${jst(r.erase_after)}; until then you can cancel.`))
  }))
  const cancel = h('button', { type: 'button', id: 'cancel-deletion' }, L('削除の申請を取り消す', 'Cancel the deletion request'))
  cancel.addEventListener('click', () => act(cancel, async () => {
    await rpc(ACCOUNT_RPC.cancelDeletion)
    flash(L('削除の申請を取り消しました。', 'The deletion request was cancelled.'))
  }))
  return section(L('アカウントの削除', 'Delete the account'),
    h('p', {}, L('猶予期間ののち、個人情報は削除されます。法律で保存が必要な取引記録は匿名化して保管します。未使用の推しメダルは失効します。',
      'After a cooling-off period your personal data is erased. Transaction records the law requires us to keep are kept, pseudonymised. Unused oshi medals are forfeited.')),
    h('div', { class: 'field inline' }, confirmBox, h('label', { for: 'delete-confirm' }, L('内容を理解しました', 'I understand'))),
    btn, ' ', cancel)
}
