-- The live pull over Realtime: the launch-feed opt-in on profiles, then the broadcasts and the
-- policies on realtime.messages (the platform's realtime schema: hosted Supabase has it).
alter table app.profiles add column show_in_launch_feed boolean not null default false;
comment on column app.profiles.show_in_launch_feed is
  'The fan lets launch feeds show their display name beside their SSR/UR pulls (off: anonymous).';

-- from sql/realtime/10_live_pull.sql
-- The live pull: the database broadcasts what a fan's pull produced through Supabase Realtime
-- (Broadcast from the database: rows in realtime.messages), not through per-subscriber Postgres
-- Changes, so a launch does not multiply RLS checks by watchers (docs/realtime.md).
--
-- Topics (all private channels, authorised by the RLS policies on realtime.messages below):
--   order:<order id>      results of that order (event `results`, pulls in draw order), then
--                          `status` (failed / expired / canceled) and `refund`; only the order's
--                          fan may join; nobody may send.
--   gacha:<gacha id>:feed  the launch feed: event `rare_pull` for every SSR or UR pull, with the
--                          fan's display name only if they opted in (show_in_launch_feed);
--                          anyone may join, signed in or not, and share presence; nobody may send.
--
-- One statement-level trigger on app.orders writes every message of an UPDATE in one INSERT, and
-- a failure to broadcast never fails the payment: it becomes a warning, as in realtime.send.

create or replace function private.can_receive_order_topic(p_topic text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select case
    when p_topic ~ '^order:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      exists (select 1 from app.orders o where o.id = substr(p_topic, 7)::uuid and o.user_id = auth.uid())
    else false
  end
$$;
comment on function private.can_receive_order_topic(text) is
  'security definer: true when the topic is order:<id> of an order of the caller (auth.uid()); '
  'used by the realtime.messages policy, which runs as the fan who cannot read app.orders directly.';
revoke all on function private.can_receive_order_topic(text) from public, anon;
grant execute on function private.can_receive_order_topic(text) to authenticated;

drop policy if exists "Fans can receive their own orders' results" on realtime.messages;
create policy "Fans can receive their own orders' results" on realtime.messages
  for select to authenticated
  using (extension = 'broadcast' and private.can_receive_order_topic(topic));

drop policy if exists "Anyone can watch a gacha's launch feed" on realtime.messages;
create policy "Anyone can watch a gacha's launch feed" on realtime.messages
  for select to anon, authenticated
  using (extension in ('broadcast', 'presence')
         and topic ~ '^gacha:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:feed$');

drop policy if exists "Watchers of a launch feed can share their presence" on realtime.messages;
create policy "Watchers of a launch feed can share their presence" on realtime.messages
  for insert to anon, authenticated
  with check (extension = 'presence'
              and topic ~ '^gacha:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:feed$');

create or replace function private.broadcast_order_changes() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  -- Most order updates (expiry sweeps, payment deadlines) broadcast nothing: no subtransaction.
  if not exists (select 1 from new_rows n join old_rows o on o.id = n.id
                  where n.status is distinct from o.status or n.refunded_jpy > o.refunded_jpy) then
    return null;
  end if;
  begin
    insert into realtime.messages (topic, extension, event, private, payload)
    select m.topic, 'broadcast', m.event, true, m.payload
      from (
        -- The results, in draw order (nonce order), with what the animation needs; never a seed.
        select 'order:' || n.id as topic, 'results' as event, 0 as kind, 0::bigint as seq,
               jsonb_build_object(
                 'order_id', n.id, 'gacha_id', n.gacha_id, 'status', n.status, 'pull_count', n.pull_count,
                 'medals', n.medals, 'fulfilled_at', n.fulfilled_at,
                 'pulls', (select jsonb_agg(jsonb_build_object(
                                    'pull_id', p.id, 'index', p.nonce - first.nonce + 1, 'item_id', p.gacha_item_id,
                                    'name', i.name, 'rarity', p.rarity, 'pity', p.pity, 'nonce', p.nonce)
                                  order by p.nonce)
                             from app.pulls p
                             join app.gacha_items i on i.id = p.gacha_item_id
                             cross join (select min(q.nonce) as nonce from app.pulls q where q.order_id = n.id) first
                            where p.order_id = n.id)) as payload
          from new_rows n join old_rows o on o.id = n.id
         where n.status = 'fulfilled' and o.status <> 'fulfilled'
        union all
        select 'order:' || n.id, 'status', 1, 0,
               jsonb_build_object('order_id', n.id, 'status', n.status)
          from new_rows n join old_rows o on o.id = n.id
         where n.status in ('failed', 'expired', 'canceled') and o.status is distinct from n.status
        union all
        select 'order:' || n.id, 'refund', 2, 0,
               jsonb_build_object('order_id', n.id, 'refunded_jpy', n.refunded_jpy, 'amount_jpy', n.amount_jpy,
                                  'fully_refunded', n.refunded_jpy >= n.amount_jpy)
          from new_rows n join old_rows o on o.id = n.id
         where n.refunded_jpy > o.refunded_jpy
        union all
        -- The launch feed: rare pulls, anonymous unless the fan opted in.
        select 'gacha:' || p.gacha_id || ':feed', 'rare_pull', 3, p.id,
               jsonb_build_object('gacha_id', p.gacha_id, 'pull_id', p.id, 'item_id', p.gacha_item_id,
                                  'name', i.name, 'rarity', p.rarity, 'pity', p.pity, 'at', p.created_at,
                                  'fan', case when pr.show_in_launch_feed then pr.display_name end)
          from new_rows n
          join old_rows o on o.id = n.id
          join app.pulls p on p.order_id = n.id
          join app.gacha_items i on i.id = p.gacha_item_id
          left join app.profiles pr on pr.user_id = n.user_id
         where n.status = 'fulfilled' and o.status <> 'fulfilled' and p.rarity in ('SSR', 'UR')
      ) m
     order by m.kind, m.topic, m.seq;
  exception when others then
    raise warning 'WarnSendingBroadcastMessage: live pull broadcast failed: %', sqlerrm;
  end;
  return null;
end
$$;
comment on function private.broadcast_order_changes() is
  'security definer (trigger): writes the live-pull broadcasts of an UPDATE of app.orders into realtime.messages '
  '(results on order:<id>, failures and refunds there too, rare pulls on gacha:<id>:feed).';
revoke all on function private.broadcast_order_changes() from public;

drop trigger if exists orders_after_update_broadcast on app.orders;
create trigger orders_after_update_broadcast
  after update on app.orders
  referencing old table as old_rows new table as new_rows
  for each statement execute function private.broadcast_order_changes();

-- The launch-feed opt-in (off by default).
create or replace function private.set_show_in_launch_feed(p_show boolean) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  if p_show is null then
    raise exception using errcode = 'PT400', message = 'invalid_show_in_launch_feed',
      detail = 'p_show is true or false';
  end if;
  update app.profiles set show_in_launch_feed = p_show where user_id = v_uid;
  return jsonb_build_object('show_in_launch_feed', p_show);
end
$$;
comment on function private.set_show_in_launch_feed(boolean) is
  'security definer: the caller chooses whether launch feeds show their display name with their rare pulls.';
revoke all on function private.set_show_in_launch_feed(boolean) from public, anon;
grant execute on function private.set_show_in_launch_feed(boolean) to authenticated;

create or replace function public.set_show_in_launch_feed(p_show boolean) returns jsonb
language sql
set search_path = ''
as $$ select private.set_show_in_launch_feed(p_show) $$;
comment on function public.set_show_in_launch_feed(boolean) is
  'Sets whether a gacha''s launch feed shows the caller''s display name beside their SSR/UR pulls (default: '
  'anonymous). Returns {show_in_launch_feed}. Errors: not_authenticated (PT401), account_suspended (PT403), '
  'invalid_show_in_launch_feed (PT400).';
revoke all on function public.set_show_in_launch_feed(boolean) from public, anon, authenticated, service_role;
grant execute on function public.set_show_in_launch_feed(boolean) to authenticated;
