-- Disclosure: what anyone (anon included) may read. security_invoker views, so the caller's
-- privileges and the policies of app.* apply; drafts and suspended gachas never appear here.

create or replace view public.vtubers with (security_invoker = true) as
  select v.id, v.name, v.description, v.created_at
  from app.vtubers v
  where v.status = 'approved';
comment on view public.vtubers is 'Approved VTubers.';

create or replace view public.gachas with (security_invoker = true) as
  select g.id, g.vtuber_id, v.name as vtuber_name, g.title, g.description, g.status,
         case when g.status = 'ended' or g.end_at <= now() then 'ended'
              when g.start_at > now() then 'upcoming'
              else 'on_sale' end as sale_state,
         g.price_single, g.price_ten, g.medals_per_pull, g.ten_pull_bonus_medals,
         g.start_at, g.end_at, g.total_pull_cap, g.pity_pulls, g.pity_rarity,
         g.expected_cost_top_rarity, g.guaranteed_cost_top_rarity, g.published_at, g.ended_at
  from app.gachas g
  join app.vtubers v on v.id = g.vtuber_id
  where g.status in ('published', 'ended') and v.status = 'approved';
comment on view public.gachas is
  'Published and ended gachas of approved VTubers: prices, medals per pull, window, pity, expected yen '
  'to draw the top rarity (and the guaranteed maximum when pity targets it).';

create or replace view public.gacha_items with (security_invoker = true) as
  select i.id, i.gacha_id, i.name, i.description, i.rarity, private.rarity_rank(i.rarity) as rarity_rank,
         i.rate_ppm, round(i.rate_ppm / 10000.0, 4)::numeric(8, 4) as odds_percent,
         i.stock, i.stock_remaining, i.sort_order
  from app.gacha_items i
  join app.gachas g on g.id = i.gacha_id
  where g.status in ('published', 'ended');
comment on view public.gacha_items is
  'Items of published and ended gachas with their odds: rate in ppm and percent to 4 decimals.';

create or replace view public.gacha_rarity_odds with (security_invoker = true) as
  select i.gacha_id, i.rarity, private.rarity_rank(i.rarity) as rarity_rank, count(*)::integer as item_count,
         sum(i.rate_ppm)::integer as rate_ppm, round(sum(i.rate_ppm) / 10000.0, 4)::numeric(8, 4) as odds_percent
  from app.gacha_items i
  join app.gachas g on g.id = i.gacha_id
  where g.status in ('published', 'ended')
  group by i.gacha_id, i.rarity;
comment on view public.gacha_rarity_odds is 'Odds per rarity of published and ended gachas.';

create or replace view public.exchange_items with (security_invoker = true) as
  select e.id, e.vtuber_id, v.name as vtuber_name, e.name, e.description, e.medal_cost, e.total_stock,
         e.per_fan_limit, e.per_fan_daily_limit, e.available_from, e.available_until,
         (coalesce(e.available_from <= now(), true) and coalesce(e.available_until > now(), true)
          and coalesce(e.total_stock > 0, true)) as available_now
  from app.exchange_items e
  join app.vtubers v on v.id = e.vtuber_id
  where e.status = 'active' and v.status = 'approved';
comment on view public.exchange_items is
  'Active exchange items of approved VTubers; cost in that VTuber''s medals only.';

create or replace view public.audit_log with (security_invoker = true) as
  select l.id, l.at, l.actor, l.action, l.target_type, l.target_id, l.details, l.prev_hash, l.hash
  from app.audit_log l;
comment on view public.audit_log is 'Admins: the append-only, hash-chained audit log.';

revoke all on public.vtubers, public.gachas, public.gacha_items, public.gacha_rarity_odds,
  public.exchange_items, public.audit_log from public, anon, authenticated, service_role;
grant select on public.vtubers, public.gachas, public.gacha_items, public.gacha_rarity_odds,
  public.exchange_items to anon, authenticated, service_role;
grant select on public.audit_log to authenticated, service_role;

create or replace function public.get_gacha(p_gacha_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_gacha jsonb;
begin
  select to_jsonb(g) into v_gacha from public.gachas g where g.id = p_gacha_id;
  if v_gacha is null then
    raise exception using errcode = 'PT404', message = 'gacha_not_found',
      detail = 'no published or ended gacha with this id';
  end if;
  return v_gacha || jsonb_build_object(
    'items', coalesce((select jsonb_agg(to_jsonb(i) - 'gacha_id'
                                        order by i.rarity_rank desc, i.sort_order, i.name)
                       from public.gacha_items i where i.gacha_id = p_gacha_id), '[]'::jsonb),
    'rarity_odds', coalesce((select jsonb_agg(to_jsonb(r) - 'gacha_id' order by r.rarity_rank desc)
                             from public.gacha_rarity_odds r where r.gacha_id = p_gacha_id), '[]'::jsonb),
    'odds_total_percent', (select round(coalesce(sum(i.rate_ppm), 0) / 10000.0, 4)::numeric(8, 4)
                           from public.gacha_items i where i.gacha_id = p_gacha_id),
    'top_rarity', (select r.rarity from public.gacha_rarity_odds r where r.gacha_id = p_gacha_id
                   order by r.rarity_rank desc limit 1),
    'pity', case when v_gacha ->> 'pity_pulls' is null then null
                 else jsonb_build_object('pulls', (v_gacha ->> 'pity_pulls')::integer,
                                         'rarity', v_gacha ->> 'pity_rarity') end);
end
$$;
comment on function public.get_gacha(uuid) is
  'Anyone: a published or ended gacha''s disclosure: prices, medals per pull, window, sale_state, items with '
  'odds (ppm and percent to 4 decimals), odds per rarity, pity, expected yen to draw the top rarity and the '
  'guaranteed maximum with pity. Errors: gacha_not_found (PT404).';
revoke all on function public.get_gacha(uuid) from public, anon, authenticated, service_role;
grant execute on function public.get_gacha(uuid) to anon, authenticated, service_role;
