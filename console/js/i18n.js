// Japanese first, English second. Every visible string is written once, as L('日本語', 'English'),
// where it is used; the language switch re-renders the current screen. Error messages of the API are
// shown in words: the known codes below, else the API's own human `details`, never a bare code.

const KEY = 'koepon-console-lang'
let lang = localStorage.getItem(KEY) || (navigator.language?.startsWith('ja') ? 'ja' : 'ja')

export const getLang = () => lang
export function setLang (l) {
  lang = l === 'en' ? 'en' : 'ja'
  localStorage.setItem(KEY, lang)
  document.documentElement.lang = lang
}
export const L = (ja, en) => (lang === 'en' ? en : ja)

// The messages a person can cause, by the API's stable code (docs/errors.md, docs/payments.md).
const ERRORS = {
  not_authenticated: ['ログインしてください。', 'Please sign in.'],
  invalid_token: ['ログインの有効期限が切れました。もう一度ログインしてください。', 'Your sign-in has expired. Please sign in again.'],
  account_suspended: ['このアカウントは停止されています。', 'This account is suspended.'],
  rate_limited: ['操作が多すぎます。少し待ってからもう一度お試しください。', 'Too many requests. Please wait a moment and try again.'],
  gacha_not_found: ['ガチャが見つかりません。', 'This gacha does not exist.'],
  gacha_not_on_sale: ['このガチャは現在販売していません。', 'This gacha is not on sale right now.'],
  gacha_sold_out: ['このガチャは売り切れです。', 'This gacha is sold out.'],
  birth_date_required: ['購入の前に、アカウント画面で生年月日を登録してください。', 'Please enter your birth date on the account page before buying.'],
  spending_cap_exceeded: ['未成年の利用上限を超えるため購入できません。', 'This purchase would exceed the spending limit for minors.'],
  minor_under_13_cannot_purchase: ['13歳未満の方は購入できません。', 'Fans under 13 cannot buy.'],
  fairness_seed_in_use: ['未払いの注文がこのシードを使っています。支払うか期限切れを待ってください。', 'An unpaid order uses this seed: pay it or let it expire first.'],
  client_seed_reused: ['このクライアントシードは以前に使われています。新しい値を選んでください。', 'You used this client seed before: choose a new one.'],
  invalid_client_seed: ['クライアントシードは空白なしの半角英数記号1〜64文字です。', 'A client seed is 1–64 printable ASCII characters without spaces.'],
  insufficient_medals: ['推しメダルが足りません。', 'You do not have enough oshi medals.'],
  out_of_stock: ['在庫がありません。', 'Out of stock.'],
  exchange_limit_reached: ['交換できる上限に達しています。', 'You have reached the exchange limit for this item.'],
  exchange_not_available: ['この交換アイテムは現在交換できません。', 'This item cannot be exchanged right now.'],
  reward_revoked: ['この特典は返金により取り消されました。', 'This reward was revoked by a refund.'],
  reward_not_found: ['特典が見つかりません。', 'This reward is not in your box.'],
  download_limit_reached: ['この特典は今日はもうダウンロードできません（1日3回まで）。', 'You have downloaded this reward 3 times today (the daily limit).'],
  order_not_found: ['注文が見つかりません。', 'Order not found.'],
  order_not_fulfilled: ['この注文にはまだ結果がありません。', 'This order has no results yet.'],
  preview_window_closed: ['プレビューは結果が届いてから15分間です。特典BOXから開けます。', 'Previews last 15 minutes after the results arrive; open them from the reward box.'],
  order_not_payable: ['この注文は支払える状態ではありません。', 'This order can no longer be paid.'],
  order_not_refundable: ['この注文は返金を申請できません。', 'This order cannot be refunded.'],
  order_already_refunded: ['この注文は返金済みです。', 'This order is already refunded.'],
  refund_already_requested: ['返金はすでに申請されています。', 'A refund was already requested.'],
  invalid_refund_reason: ['返金理由を500文字以内で入力してください。', 'Please give a reason of at most 500 characters.'],
  birth_date_already_set: ['生年月日は一度しか登録できません。', 'The birth date can be set only once.'],
  invalid_birth_date: ['生年月日が正しくありません。', 'The birth date is not valid.'],
  invalid_display_name: ['表示名は1〜50文字です。', 'A display name has 1–50 characters.'],
  invalid_characters: ['使用できない文字（制御文字・ゼロ幅文字など）が含まれています。', 'The name contains characters that are not allowed (control or zero-width characters).'],
  application_already_open: ['審査中の申請があります。', 'You already have an application under review.'],
  already_a_vtuber: ['すでにVTuberです。', 'You are already a VTuber.'],
  reapply_cooldown_active: ['却下から30日間は再申請できません。', 'You can apply again 30 days after a rejection.'],
  rates_must_sum_to_one_million: ['提供割合の合計がちょうど100%ではありません。', 'The rates do not add up to exactly 100 %.'],
  rate_must_be_positive: ['提供割合が0%のアイテムがあります。', 'An item has a rate of 0 %.'],
  gacha_has_no_items: ['アイテムがありません。', 'The gacha has no items.'],
  expected_cost_too_high: ['最高レアリティの期待金額が上限を超えます。天井を設定するか確率を上げてください。', 'The expected cost of the top rarity is above the limit: add a pity ceiling or raise its rate.'],
  gacha_window_over: ['販売期間の終了日時が過去です。', 'The sale window has already ended.'],
  gacha_not_draft: ['公開済みのガチャは編集できません。', 'A published gacha cannot be edited.'],
  gacha_frozen: ['公開済みのガチャは変更できません。', 'A published gacha cannot be changed.'],
  invalid_window: ['開始日時は終了日時より前にしてください。', 'The start must be before the end.'],
  invalid_price: ['価格は100円〜10,000円です。', 'Prices are ¥100–¥10,000.'],
  invalid_price_ten: ['10連の価格が単発10回分を超えています。', 'A 10-pull may not cost more than ten single pulls.'],
  invalid_rate: ['提供割合は0〜100%です。', 'A rate is between 0 and 100 %.'],
  invalid_content_path: ['コンテンツのパスが正しくありません（自分のフォルダ内のファイルを選んでください）。', 'The content path is not valid (choose a file in your own folder).'],
  invalid_title: ['タイトルは1〜200文字です。', 'A title has 1–200 characters.'],
  invalid_name: ['名前は1〜200文字です。', 'A name has 1–200 characters.'],
  invalid_medal_cost: ['必要メダル数は1〜100,000です。', 'The medal cost is 1–100,000.'],
  invalid_reason: ['理由を入力してください（1〜1,000文字）。', 'Please give a reason (1–1,000 characters).'],
  rejection_needs_reason: ['却下には理由が必要です。', 'A rejection needs a reason.'],
  application_not_pending: ['この申請はすでに審査済みです。', 'This application was already reviewed.'],
  refund_not_pending: ['この返金はすでに審査済みです。', 'This refund was already reviewed.'],
  refund_not_approved: ['承認された返金だけが実行できます。', 'Only an approved refund can be executed.'],
  admin_only: ['管理者だけが行えます。', 'Only an admin can do this.'],
  not_a_vtuber: ['VTuberだけが使えます。', 'Only VTubers can use this.'],
  vtuber_not_approved: ['VTuberとして承認されていません。', 'Your VTuber profile is not approved.'],
  cannot_suspend_self: ['自分自身は停止できません。', 'You cannot suspend yourself.'],
  status_unchanged: ['状態はすでにその値です。', 'The status is already that.'],
  invalid_date_range: ['期間が正しくありません。', 'The date range is not valid.'],
  invalid_month: ['月は YYYY-MM で入力してください。', 'Enter the month as YYYY-MM.'],
  month_not_closed: ['この月はまだ締められていません。', 'This month is not closed yet.'],
  provider_error: ['決済事業者が応答しませんでした。もう一度お試しください。', 'The payment provider did not answer. Please try again.'],
  database_unavailable: ['一時的に利用できません。少し待ってからお試しください。', 'Temporarily unavailable. Please try again shortly.'],
  card_declined: ['カードが拒否されました。別のカードをお試しください。', 'Your card was declined. Please try another card.'],
  invalid_credentials: ['メールアドレスかパスワードが違います。', 'Wrong e-mail address or password.'],
  user_already_exists: ['このメールアドレスはすでに登録されています。', 'This e-mail address is already registered.'],
  email_exists: ['このメールアドレスはすでに登録されています。', 'This e-mail address is already registered.'],
  weak_password: ['パスワードが短すぎます（6文字以上）。', 'The password is too short (at least 6 characters).'],
  session_not_found: ['このログインはすでに終了しています。', 'That session has already ended.'],
  vtuber_account: ['VTuberのアカウントは管理者が閉鎖します（支払いの精算のため）。お問い合わせください。', 'A VTuber account is closed by an admin (payouts): please contact us.'],
  deletion_not_requested: ['削除は申請されていません。', 'No deletion was requested.'],
  not_available_here: ['この機能はこのサーバーではまだ使えません。', 'This feature is not available on this server yet.'],
}

export function errorText (code, details) {
  const known = ERRORS[code]
  if (known) return L(known[0], known[1])
  if (details) return details
  return L('エラーが発生しました: ', 'Something went wrong: ') + (code || '?')
}
