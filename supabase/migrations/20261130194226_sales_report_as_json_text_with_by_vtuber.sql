-- Covering indexes for the sales report, then from sql/backoffice/30_sales_rollups.sql the report's
-- functions only (their return type changes from jsonb to json, hence drop and create, with their
-- grants and comments as before; the rollup job is not replaced here).
-- A VTuber's report reads their rows of these two rollups by (vtuber_id, jst_date); the columns it
-- sums ride in the index, so the rows come from index-only scans (no heap page per row). The keys
-- are those of the indexes replaced, so every query they served is still served.
drop index app.sales_daily_vtuber_date;
create index sales_daily_vtuber_date on app.sales_daily (vtuber_id, jst_date)
  include (gacha_id, paid_orders, pulls, gross_jpy, provider_fees_jpy, refund_count, refunds_jpy, chargeback_count,
           chargebacks_jpy);
drop index app.item_pulls_daily_vtuber_date;
create index item_pulls_daily_vtuber_date on app.item_pulls_daily (vtuber_id, jst_date)
  include (gacha_item_id, rarity, pulls, pity_pulls);

-- The report both the VTuber (their own id) and admins (any id, or null for everyone) read.
-- Built as json text once (json_build_object/json_agg write each value as text; nothing is parsed
-- back) and returned as json, which PostgREST sends as it is: a jsonb report cost a parse of the
-- whole text and a jsonb output per call, a third of the report's CPU. Each rollup is scanned
-- once: sales_daily for the days, the totals and the per-gacha (or per-VTuber) list,
-- item_pulls_daily for both the rarities and the top items. Each statement is planned for the
-- call's arguments (plan_cache_mode): a generic plan, chosen after a few calls, cannot tell whether
-- p_vtuber_id is null, so it read the range's rows of every VTuber and filtered them.
drop function if exists public.admin_get_sales(uuid, date, date);
drop function if exists private.admin_get_sales(uuid, date, date);
drop function if exists public.get_my_sales(date, date);
drop function if exists private.get_my_sales(date, date);
drop function if exists private.sales_report(uuid, date, date);
create function private.sales_report(p_vtuber_id uuid, p_from date, p_to date) returns json
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  v_default_bps integer;
  v_paying bigint;
  v_new bigint;
  v_totals json;
  v_days json;
  v_detail json;
  v_rarity json;
  v_top json;
  v_medals json;
  v_exchanges json;
begin
  perform private.check_date_range(p_from, p_to);
  -- Read once per report (a function call per rollup row would dominate the report's time).
  v_default_bps := private.setting_int('default_revenue_share_bps', 7000);

  -- Unique paying fans over the range (a fan paying on two days counts once): a VTuber's fans, or
  -- on the whole platform its users (a fan paying two VTubers is one paying user, as in the days
  -- and the KPIs). When nobody's last paid day is after p_to (a range reaching the present), they
  -- are those whose last paid day is in [p_from, p_to]: a sum over the last-day histogram, one row
  -- per day. A range in the past, with payments after it, sums those whose paid day in the range
  -- follows a paid day before it (or none): one row per (day, earlier day) pair. New fans (users)
  -- are those whose first paid day is in the range.
  if p_vtuber_id is null then
    if not exists (select 1 from app.platform_fan_counts_daily c where c.jst_date > p_to and c.last_users <> 0) then
      select coalesce(sum(c.last_users), 0) into v_paying from app.platform_fan_counts_daily c
       where c.jst_date between p_from and p_to;
    else
      select coalesce(sum(g.users), 0) into v_paying from app.platform_fan_gaps_daily g
       where g.jst_date between p_from and p_to and g.prev_jst_date < p_from;
    end if;
    select coalesce(sum(c.new_users), 0) into v_new from app.platform_fan_counts_daily c
     where c.jst_date between p_from and p_to;
  else
    if not exists (select 1 from app.fan_counts_daily c
                    where c.vtuber_id = p_vtuber_id and c.jst_date > p_to and c.last_fans <> 0) then
      select coalesce(sum(c.last_fans), 0) into v_paying from app.fan_counts_daily c
       where c.vtuber_id = p_vtuber_id and c.jst_date between p_from and p_to;
    else
      select coalesce(sum(g.fans), 0) into v_paying from app.fan_gaps_daily g
       where g.vtuber_id = p_vtuber_id and g.jst_date between p_from and p_to and g.prev_jst_date < p_from;
    end if;
    select coalesce(sum(c.new_fans), 0) into v_new from app.fan_counts_daily c
     where c.vtuber_id = p_vtuber_id and c.jst_date between p_from and p_to;
  end if;

  -- The range's sales_daily rows, read once (a CTE used twice is computed once).
  with r as (
    select d.jst_date, d.gacha_id, d.vtuber_id, d.paid_orders, d.pulls, d.gross_jpy, d.provider_fees_jpy,
           d.refunds_jpy, d.refund_count, d.chargebacks_jpy, d.chargeback_count
    from app.sales_daily d
    where (p_vtuber_id is null or d.vtuber_id = p_vtuber_id) and d.jst_date between p_from and p_to),
  -- Per (day, VTuber): the share is truncated to whole yen there, so days, VTubers and totals are
  -- sums of the same per-(day, VTuber) figures.
  s as (
    select r.jst_date, r.vtuber_id, sum(r.paid_orders) as paid_orders, sum(r.pulls) as pulls,
           sum(r.gross_jpy) as gross_jpy, sum(r.provider_fees_jpy) as provider_fees_jpy,
           sum(r.refunds_jpy) as refunds_jpy, sum(r.refund_count) as refund_count,
           sum(r.chargebacks_jpy) as chargebacks_jpy, sum(r.chargeback_count) as chargeback_count
    from r group by 1, 2),
  split as (
    select s.*, s.gross_jpy - s.refunds_jpy - s.chargebacks_jpy - s.provider_fees_jpy as net_jpy,
           trunc((s.gross_jpy - s.refunds_jpy - s.chargebacks_jpy - s.provider_fees_jpy)
                 * coalesce(v.revenue_share_bps, v_default_bps) / 10000.0)::bigint as vtuber_share_jpy
    from s left join app.vtubers v on v.id = s.vtuber_id),
  day as (
    select x.jst_date, sum(x.paid_orders)::bigint as paid_orders, sum(x.pulls)::bigint as pulls,
           sum(x.gross_jpy)::bigint as gross_jpy, sum(x.provider_fees_jpy)::bigint as provider_fees_jpy,
           sum(x.refunds_jpy)::bigint as refunds_jpy, sum(x.refund_count)::bigint as refund_count,
           sum(x.chargebacks_jpy)::bigint as chargebacks_jpy, sum(x.chargeback_count)::bigint as chargeback_count,
           sum(x.net_jpy)::bigint as net_jpy, sum(x.vtuber_share_jpy)::bigint as vtuber_share_jpy,
           sum(x.net_jpy - x.vtuber_share_jpy)::bigint as platform_fee_jpy
    from split x group by 1),
  -- Paying and new fans per day, kept by the job as counts (a VTuber's, or the platform's where a
  -- fan paying two VTubers on a day is one paying user and a user is new on their first paid day
  -- on the platform).
  fans as (
    select c.jst_date, c.paying_fans, c.new_fans from app.fan_counts_daily c
    where p_vtuber_id is not null and c.vtuber_id = p_vtuber_id and c.jst_date between p_from and p_to
    union all
    select c.jst_date, c.paying_users, c.new_users from app.platform_fan_counts_daily c
    where p_vtuber_id is null and c.jst_date between p_from and p_to)
  select
    (select json_build_object(
              'paid_orders', coalesce(sum(d.paid_orders), 0), 'pulls', coalesce(sum(d.pulls), 0),
              'gross_jpy', coalesce(sum(d.gross_jpy), 0), 'refunds_jpy', coalesce(sum(d.refunds_jpy), 0),
              'chargebacks_jpy', coalesce(sum(d.chargebacks_jpy), 0),
              'provider_fees_jpy', coalesce(sum(d.provider_fees_jpy), 0), 'net_jpy', coalesce(sum(d.net_jpy), 0),
              'platform_fee_jpy', coalesce(sum(d.platform_fee_jpy), 0),
              'vtuber_share_jpy', coalesce(sum(d.vtuber_share_jpy), 0),
              'paying_fans', v_paying, 'new_fans', v_new,
              'arppu_jpy', case when v_paying > 0 then round(coalesce(sum(d.gross_jpy), 0)::numeric / v_paying) end)
       from day d),
    (select coalesce(json_agg(json_build_object(
              'jst_date', d.jst_date, 'paid_orders', d.paid_orders, 'pulls', d.pulls, 'gross_jpy', d.gross_jpy,
              'refund_count', d.refund_count, 'refunds_jpy', d.refunds_jpy, 'chargeback_count', d.chargeback_count,
              'chargebacks_jpy', d.chargebacks_jpy, 'provider_fees_jpy', d.provider_fees_jpy, 'net_jpy', d.net_jpy,
              'platform_fee_jpy', d.platform_fee_jpy, 'vtuber_share_jpy', d.vtuber_share_jpy,
              'paying_fans', coalesce(f.paying_fans, 0), 'new_fans', coalesce(f.new_fans, 0),
              'returning_fans', coalesce(f.paying_fans - f.new_fans, 0),
              'arppu_jpy', case when f.paying_fans > 0 then round(d.gross_jpy::numeric / f.paying_fans) end)
              order by d.jst_date), '[]')
       from day d left join fans f on f.jst_date = d.jst_date),
    -- One VTuber's report lists each gacha and day (its keys the columns' names); the platform's
    -- lists each VTuber with sales in the range instead (a per-gacha-per-day list of the whole
    -- platform grows with every gacha ever sold, and no screen draws it).
    case when p_vtuber_id is not null then
      (select coalesce(json_agg(g order by g.jst_date, g.gacha_id), '[]')
       from (select r.jst_date, r.gacha_id, a.title, r.paid_orders, r.pulls, r.gross_jpy, r.refunds_jpy,
                    r.chargebacks_jpy, r.provider_fees_jpy
             from r join app.gachas a on a.id = r.gacha_id) g)
    else
      (select coalesce(json_agg(b order by b.gross_jpy desc, b.vtuber_id), '[]')
       from (select x.vtuber_id, v.name, sum(x.paid_orders)::bigint as paid_orders, sum(x.pulls)::bigint as pulls,
                    sum(x.gross_jpy)::bigint as gross_jpy, sum(x.refunds_jpy)::bigint as refunds_jpy,
                    sum(x.chargebacks_jpy)::bigint as chargebacks_jpy,
                    sum(x.provider_fees_jpy)::bigint as provider_fees_jpy, sum(x.net_jpy)::bigint as net_jpy,
                    sum(x.vtuber_share_jpy)::bigint as vtuber_share_jpy,
                    sum(x.net_jpy - x.vtuber_share_jpy)::bigint as platform_fee_jpy
             from split x left join app.vtubers v on v.id = x.vtuber_id
             group by x.vtuber_id, v.name) b)
    end
    into v_totals, v_days, v_detail;

  -- Pulls per item over the range, read once: the rarities and the top items both derive from it.
  with i as (
    select i.gacha_item_id, i.rarity, sum(i.pulls)::bigint as pulls, sum(i.pity_pulls)::bigint as pity_pulls
    from app.item_pulls_daily i
    where (p_vtuber_id is null or i.vtuber_id = p_vtuber_id) and i.jst_date between p_from and p_to
    group by 1, 2)
  select
    (select coalesce(json_agg(json_build_object('rarity', r.rarity, 'pulls', r.pulls, 'pity_pulls', r.pity_pulls)
                              order by private.rarity_rank(r.rarity) desc), '[]')
       from (select i.rarity, sum(i.pulls)::bigint as pulls, sum(i.pity_pulls)::bigint as pity_pulls
             from i group by 1) r),
    (select coalesce(json_agg(json_build_object('gacha_item_id', t.gacha_item_id, 'name', gi.name,
                                                'rarity', t.rarity, 'pulls', t.pulls)
                              order by t.pulls desc, t.gacha_item_id), '[]')
       from (select i.gacha_item_id, i.rarity, i.pulls + i.pity_pulls as pulls from i
             order by 3 desc, 1 limit 10) t
       join app.gacha_items gi on gi.id = t.gacha_item_id)
    into v_rarity, v_top;

  -- Medal flows in the range and the balance outstanding at its end, in one pass.
  select json_build_object(
           'granted', coalesce(sum(m.granted) filter (where m.jst_date >= p_from), 0),
           'spent', coalesce(sum(m.spent) filter (where m.jst_date >= p_from), 0),
           'clawed_back', coalesce(sum(m.clawed_back) filter (where m.jst_date >= p_from), 0),
           'adjusted', coalesce(sum(m.adjusted) filter (where m.jst_date >= p_from), 0),
           'outstanding_at_end', coalesce(sum(m.granted - m.spent - m.clawed_back + m.adjusted), 0)::bigint)
    into v_medals
  from app.medals_daily m
  where (p_vtuber_id is null or m.vtuber_id = p_vtuber_id) and m.jst_date <= p_to;

  select coalesce(json_agg(json_build_object('exchange_item_id', e.exchange_item_id, 'name', x.name,
                                             'exchanges', e.exchanges, 'quantity', e.quantity,
                                             'medals_spent', e.medals_spent) order by e.quantity desc, e.exchange_item_id), '[]')
    into v_exchanges
  from (select d.exchange_item_id, sum(d.exchanges)::bigint as exchanges, sum(d.quantity)::bigint as quantity,
               sum(d.medals_spent)::bigint as medals_spent
        from app.exchanges_daily d
        where (p_vtuber_id is null or d.vtuber_id = p_vtuber_id) and d.jst_date between p_from and p_to
        group by 1) e
  join app.exchange_items x on x.id = e.exchange_item_id;

  return json_build_object(
    'vtuber_id', p_vtuber_id, 'from', p_from, 'to', p_to,
    'fresh_through', (select s.through from app.rollup_state s),
    'totals', v_totals, 'days', v_days,
    case when p_vtuber_id is null then 'by_vtuber' else 'by_gacha_day' end, v_detail,
    'pulls_by_rarity', v_rarity, 'top_items', v_top, 'medals', v_medals, 'exchanges_by_item', v_exchanges);
end
$$;
comment on function private.sales_report(uuid, date, date) is
  'security definer: reads the rollups (which no API role reads directly); callers check who may see which VTuber.';
revoke all on function private.sales_report(uuid, date, date) from public;
grant execute on function private.sales_report(uuid, date, date) to authenticated, service_role;

create function private.get_my_sales(p_from date, p_to date) returns json
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return private.sales_report(v.id, p_from, p_to);
end
$$;
comment on function private.get_my_sales(date, date) is
  'security definer: an approved VTuber''s own sales report, never another''s.';
revoke all on function private.get_my_sales(date, date) from public;
grant execute on function private.get_my_sales(date, date) to authenticated;

create function public.get_my_sales(
  p_from date default null, p_to date default null
) returns json
language sql stable
set search_path = ''
as $$
  select private.get_my_sales(coalesce(p_from, coalesce(p_to, private.jst_date(now())) - 29),
                              coalesce(p_to, private.jst_date(now())))
$$;
comment on function public.get_my_sales(date, date) is
  'VTuber: their own sales per JST day [p_from, p_to] (default: the last 30 days) from the rollups: totals, days '
  '(paid orders, pulls, gross, refunds, chargebacks, fees, net, platform fee, share, paying/new/returning fans, '
  'ARPPU), by_gacha_day, pulls_by_rarity, top_items, medals (granted, spent, outstanding), exchanges_by_item, '
  'fresh_through. Errors: not_authenticated (PT401), not_a_vtuber, vtuber_not_approved (PT403), '
  'invalid_date_range (PT400).';
revoke all on function public.get_my_sales(date, date) from public, anon, authenticated, service_role;
grant execute on function public.get_my_sales(date, date) to authenticated;

create function private.admin_get_sales(p_vtuber_id uuid, p_from date, p_to date) returns json
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
begin
  perform v_admin;
  if p_vtuber_id is not null and not exists (select 1 from app.vtubers v where v.id = p_vtuber_id) then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  return private.sales_report(p_vtuber_id, p_from, p_to);
end
$$;
comment on function private.admin_get_sales(uuid, date, date) is
  'security definer: any VTuber''s (or everyone''s) sales report, for admins only.';
revoke all on function private.admin_get_sales(uuid, date, date) from public;
grant execute on function private.admin_get_sales(uuid, date, date) to authenticated;

create function public.admin_get_sales(
  p_vtuber_id uuid default null, p_from date default null, p_to date default null
) returns json
language sql stable
set search_path = ''
as $$
  select private.admin_get_sales(p_vtuber_id, coalesce(p_from, coalesce(p_to, private.jst_date(now())) - 29),
                                 coalesce(p_to, private.jst_date(now())))
$$;
comment on function public.admin_get_sales(uuid, date, date) is
  'Admin: the sales report of one VTuber (the same shape as get_my_sales) or, with p_vtuber_id null, of the whole '
  'platform, which lists by_vtuber (each VTuber''s figures over the range) instead of by_gacha_day. Errors: '
  'not_authenticated (PT401), admin_only (PT403), vtuber_not_found (PT404), invalid_date_range (PT400).';
revoke all on function public.admin_get_sales(uuid, date, date) from public, anon, authenticated, service_role;
grant execute on function public.admin_get_sales(uuid, date, date) to authenticated;
