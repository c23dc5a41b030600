-- from sql/economy/75_reveal_previews.sql
-- Reveal previews: the media of an order's results, shown while the fan watches them turn over,
-- without spending a download. A download (70_downloads.sql) is the fan taking the file home, 3
-- per reward per JST day; the reveal is the moment of the draw. So a preview is authorised by its
-- own rules, apart from the download count and log:
--   * only the caller's own fulfilled order, and only for PREVIEW_MINUTES (15) after it was
--     fulfilled: the reveal, a reload of it, a second device watching the same purchase; after
--     that the reward box (downloads) is the only way to the files;
--   * only rewards that are not revoked: a refund inside the window stops previews at once;
--   * like downloads, fans still get no Storage read on reward objects (Storage would sign any
--     lifetime the caller asked for). The payment service's POST /payments/orders/{id}/previews
--     calls this function AS THE FAN and signs each object with the service role for one minute.
-- A preview URL therefore lives at most one minute and can be obtained at most 15 minutes after
-- the purchase: it cannot become a lasting or shareable link, nor outlive a refund by more than a
-- minute, which is what the download rules protect.

create or replace function private.request_reveal_previews(p_user uuid, p_order_id uuid, p_now timestamptz)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_order app.orders;
  v_window interval := interval '15 minutes';
begin
  select * into v_order from app.orders o where o.id = p_order_id and o.user_id = p_user;
  if not found then
    raise exception using errcode = 'PT404', message = 'order_not_found', detail = 'no such order';
  end if;
  if v_order.status <> 'fulfilled' then
    raise exception using errcode = 'PT409', message = 'order_not_fulfilled',
      detail = 'the order has no results yet: previews exist once it is fulfilled';
  end if;
  if p_now >= v_order.fulfilled_at + v_window then
    raise exception using errcode = 'PT409', message = 'preview_window_closed',
      detail = 'results can be previewed for 15 minutes after they arrive; open them from the reward box',
      hint = format('closed at %s', v_order.fulfilled_at + v_window);
  end if;
  return jsonb_build_object(
    'order_id', v_order.id,
    'expires_at', p_now + interval '1 minute',
    'preview_until', v_order.fulfilled_at + v_window,
    'previews', coalesce((
      select jsonb_agg(jsonb_build_object('pull_id', p.id, 'gacha_item_id', p.gacha_item_id,
                                          'user_reward_id', r.id, 'bucket', r.content_bucket,
                                          'path', r.content_path, 'mimetype', so.metadata ->> 'mimetype')
                       order by p.id)
        from app.pulls p
        join app.user_rewards r on r.pull_id = p.id and r.user_id = p_user
        left join storage.objects so on so.bucket_id = r.content_bucket and so.name = r.content_path
       where p.order_id = v_order.id and r.revoked_at is null), '[]'::jsonb));
end
$$;
comment on function private.request_reveal_previews(uuid, uuid, timestamptz) is
  'security definer: the reveal-preview core (time passed in): the caller''s fulfilled order, within 15 minutes '
  'of fulfilment, its rewards that are not revoked with their Storage paths and media types. Not a download: '
  'nothing is counted or logged.';
revoke all on function private.request_reveal_previews(uuid, uuid, timestamptz) from public;

create or replace function private.request_reveal_previews(p_order_id uuid) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return private.request_reveal_previews(private.require_user(), p_order_id, now());
end
$$;
comment on function private.request_reveal_previews(uuid) is
  'security definer: the body of public.request_reveal_previews; it takes the caller from the JWT (auth.uid()), '
  'never a user id argument, and reads reward paths and Storage metadata that fans cannot read.';
revoke all on function private.request_reveal_previews(uuid) from public, anon;
grant execute on function private.request_reveal_previews(uuid) to authenticated;

create or replace function public.request_reveal_previews(p_order_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.request_reveal_previews(p_order_id)
$$;
comment on function public.request_reveal_previews(uuid) is
  'Authorises previews of the results of the caller''s own fulfilled order, for 15 minutes after it was '
  'fulfilled, without counting as downloads; returns {order_id, expires_at, preview_until, previews: [{pull_id, '
  'gacha_item_id, user_reward_id, bucket, path, mimetype}]} (revoked rewards left out). Fans cannot read reward '
  'objects in Storage: the payment service''s POST /payments/orders/{id}/previews calls this as the fan and '
  'returns URLs signed by the service role for one minute. Errors: not_authenticated (PT401), '
  'account_suspended (PT403), order_not_found (PT404), order_not_fulfilled (PT409), preview_window_closed (PT409).';
revoke all on function public.request_reveal_previews(uuid) from public, anon;
grant execute on function public.request_reveal_previews(uuid) to authenticated;
