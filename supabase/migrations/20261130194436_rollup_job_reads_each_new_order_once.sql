-- from sql/backoffice/30_sales_rollups.sql (private.refresh_rollups only)
-- The rollup job, cheaper per fulfilled order (it competes with fulfilment for the same cores):
-- * it reads each new order once (its columns and JST day kept in an array of
--   private.rollup_order) instead of probing app.orders again in every statement, and runs
--   without JIT, which each run's statements crossed the cost threshold of and compiled for ~15 ms;
-- * the fan counts are derived in one statement per scope from the earlier paid days of the fans
--   the run touches, read once: a fan's first and last paid day with a VTuber are the ends of their
--   app.fan_sales_daily rows, a user's first and last paid day on the platform the ends of their
--   app.platform_fan_days rows, no longer kept in app.fan_firsts, app.platform_fans and
--   app.platform_fan_firsts (three fewer rows written per new fan); those tables go;
-- * a platform's new user on a day is a user whose first paid day on the platform is that day (it
--   was a user new to at least one VTuber that day, which counted a long-time buyer as new again
--   with every VTuber they started to support); the platform's daily new-user counts are
--   recounted from app.platform_fan_days below;
-- * app.fan_sales_daily and app.platform_fan_days are keyed fan first, which is how the job reads
--   them, so one index each serves every lookup (the three others go), and the rollup rows per fan
--   no longer check a foreign key to app.vtubers per row (their orders already do).

create type private.rollup_order as (
  id uuid, user_id uuid, vtuber_id uuid, gacha_id uuid, jst_date date, amount_jpy integer, pull_count integer);
comment on type private.rollup_order is 'One new paid order as the rollup job reads it (its JST day of fulfilment included).';

alter table app.fan_sales_daily drop constraint fan_sales_daily_vtuber_id_fkey;
alter table app.fan_sales_daily drop constraint fan_sales_daily_pkey;
alter table app.fan_sales_daily add constraint fan_sales_daily_pkey primary key (vtuber_id, user_id, jst_date);
drop index app.fan_sales_daily_fan;
drop index app.fan_sales_daily_date;

alter table app.platform_fan_days drop constraint platform_fan_days_pkey;
alter table app.platform_fan_days add constraint platform_fan_days_pkey primary key (user_id, jst_date);
drop index app.platform_fan_days_user;

drop table app.fan_firsts;
drop table app.platform_fans;
drop table app.platform_fan_firsts;

-- The platform's new users per day under the definition above, from the (day, user) keys.
update app.platform_fan_counts_daily c set new_users = coalesce(f.n, 0)
  from app.platform_fan_counts_daily x
  left join (select d.first_day, count(*) as n
               from (select p.user_id, min(p.jst_date) as first_day from app.platform_fan_days p group by 1) d
              group by 1) f on f.first_day = x.jst_date
 where c.jst_date = x.jst_date and c.new_users is distinct from coalesce(f.n, 0);

create or replace function private.refresh_rollups(p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
-- A run's statements are estimated from its arrays and crossed jit_above_cost: each then spent
-- ~15 ms compiling expressions it evaluates a few thousand times. The job is cheaper interpreted.
set jit = off
as $$
declare
  v_from timestamptz;
  v_hi timestamptz := p_now - interval '2 seconds';
  v_open timestamptz;
  v_rows bigint := 0;
  v_n bigint;
  v_gachas uuid[];
  v_new private.rollup_order[];
begin
  -- One refresh at a time (a second caller waits, then finds nothing new).
  perform pg_catalog.pg_advisory_xact_lock(7253201);
  select s.through into v_from from app.rollup_state s for update;
  select min(a.xact_start) into v_open from pg_catalog.pg_stat_activity a
   where a.datname = pg_catalog.current_database() and a.pid <> pg_catalog.pg_backend_pid()
     and a.xact_start is not null and a.backend_type <> 'autovacuum worker';
  v_hi := least(v_hi, coalesce(v_open, v_hi));
  if v_hi <= v_from then
    return jsonb_build_object('through', v_from, 'rows', 0, 'orders', 0);
  end if;

  -- The orders fulfilled in [v_from, v_hi): one pull_grant ledger entry each (unique per order).
  -- Read once, with nothing but the watermark range on the ledger (its BRIN index): the same
  -- filter on reason in every statement let the planner AND the BRIN bitmap with full scans of
  -- the two partial indexes on order_id (every pull_grant ever), a cost that grew with the
  -- history (7.5 s per run at 10M pulls) instead of with what is new. The columns every rollup
  -- needs, the JST day included, are kept with each order, so no statement below reads the
  -- orders again or computes a day per row.
  with w as materialized (
    select l.order_id, l.reason from app.medal_ledger l where l.created_at >= v_from and l.created_at < v_hi)
  select coalesce(array_agg(row(o.id, o.user_id, o.vtuber_id, o.gacha_id, private.jst_date(o.fulfilled_at),
                                o.amount_jpy, o.pull_count)::private.rollup_order), '{}')
    into v_new
  from w join app.orders o on o.id = w.order_id
  where w.reason = 'pull_grant';

  -- Paid orders and pulls, on the JST day of fulfilment.
  insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, paid_orders, pulls, gross_jpy)
  select o.jst_date, o.gacha_id, o.vtuber_id, count(*), sum(o.pull_count), sum(o.amount_jpy)
  from unnest(v_new) o
  group by 1, 2, 3
  on conflict (jst_date, gacha_id) do update
    set paid_orders = s.paid_orders + excluded.paid_orders, pulls = s.pulls + excluded.pulls,
        gross_jpy = s.gross_jpy + excluded.gross_jpy;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  -- Pulls per item and day, and per item over all time (what the rate audit tests).
  with n as (
    select o.jst_date, p.gacha_item_id, p.gacha_id, o.vtuber_id, p.rarity,
           count(*) filter (where not p.pity) as pulls, count(*) filter (where p.pity) as pity_pulls
    from unnest(v_new) o join app.pulls p on p.order_id = o.id
    group by 1, 2, 3, 4, 5),
  daily as (
    insert into app.item_pulls_daily as s (jst_date, gacha_item_id, gacha_id, vtuber_id, rarity, pulls, pity_pulls)
    select n.jst_date, n.gacha_item_id, n.gacha_id, n.vtuber_id, n.rarity, n.pulls, n.pity_pulls from n
    on conflict (jst_date, gacha_item_id) do update
      set pulls = s.pulls + excluded.pulls, pity_pulls = s.pity_pulls + excluded.pity_pulls),
  total as (
    insert into app.item_draws as s (gacha_item_id, gacha_id, pulls, pity_pulls)
    select n.gacha_item_id, n.gacha_id, sum(n.pulls), sum(n.pity_pulls) from n group by 1, 2
    on conflict (gacha_item_id) do update
      set pulls = s.pulls + excluded.pulls, pity_pulls = s.pity_pulls + excluded.pity_pulls)
  select coalesce(array_agg(distinct n.gacha_id), '{}') into v_gachas from n;

  -- The rate audit of each gacha drawn from in this run, kept so the admin KPIs read it instead
  -- of testing every gacha per request: Pearson's test of the all-time non-pity draws against the
  -- item odds (fixed once a gacha is published, and only published gachas are drawn from).
  insert into app.rate_audits as s (gacha_id, draws, statistic, p_value, audited_at)
  select c.gacha_id, c.total, (x.r ->> 'statistic')::double precision, (x.r ->> 'p_value')::double precision, p_now
  from (select i.gacha_id, n.total,
               jsonb_agg(jsonb_build_object('observed', coalesce(d.pulls, 0),
                                            'expected', n.total * i.rate_ppm / 1e6)) as cells
        from app.gacha_items i
        join (select d.gacha_id, sum(d.pulls) as total from app.item_draws d
               where d.gacha_id = any (v_gachas) group by 1) n on n.gacha_id = i.gacha_id
        left join app.item_draws d on d.gacha_item_id = i.id
        group by i.gacha_id, n.total) c
  cross join lateral (select private.chi_square_test(c.cells) as r) x
  on conflict (gacha_id) do update
    set draws = excluded.draws, statistic = excluded.statistic, p_value = excluded.p_value,
        audited_at = excluded.audited_at;

  -- Fans per (VTuber, day), from the (VTuber, day, fan) keys of fan_sales_daily, which the report
  -- sums instead of counting distinct fans. One statement reads the earlier paid days of each
  -- (VTuber, fan) this run touches (one index range per fan, before this run's keys are added
  -- below) and derives from them and the run's new keys:
  -- * paying_fans(d): a key new to fan_sales_daily is one more paying fan that day;
  -- * (day, previous paid day) pairs in fan_gaps_daily: the fans who paid in [a, b] are those with
  --   a paid day d in [a, b] whose previous paid day is before a (each such fan has exactly one:
  --   their first paid day inside the range), so any range, past or present, is a sum over at most
  --   one row per (day, earlier day). The pairs of the fans touched are recounted from their days
  --   before and after the run (a day added in the middle changes its successor's previous day);
  -- * new_fans(d) = fans whose first paid day is d, last_fans(d) = fans whose last paid day so far
  --   is d: when the run moves a fan's first day (earlier) or last day (later), the old day loses
  --   the fan and the new day gains it.
  with k as (
    select distinct o.vtuber_id, o.user_id, o.jst_date from unnest(v_new) o),
  old as (
    select f.vtuber_id, f.user_id, f.jst_date from app.fan_sales_daily f
    where (f.vtuber_id, f.user_id) in (select k.vtuber_id, k.user_id from k)),
  new as (select * from old union select * from k),
  delta as (
    select x.vtuber_id, x.jst_date, coalesce(lag(x.jst_date) over w, '-infinity') as prev, 1 as n from new x
    window w as (partition by x.vtuber_id, x.user_id order by x.jst_date)
    union all
    select x.vtuber_id, x.jst_date, coalesce(lag(x.jst_date) over w, '-infinity'), -1 from old x
    window w as (partition by x.vtuber_id, x.user_id order by x.jst_date)),
  gaps as (
    insert into app.fan_gaps_daily as s (vtuber_id, jst_date, prev_jst_date, fans)
    select d.vtuber_id, d.jst_date, d.prev, sum(d.n) from delta d group by 1, 2, 3 having sum(d.n) <> 0
    on conflict (vtuber_id, jst_date, prev_jst_date) do update set fans = s.fans + excluded.fans),
  moved as (
    select n.vtuber_id, n.first_day, n.last_day, o.first_day as old_first, o.last_day as old_last
    from (select x.vtuber_id, x.user_id, min(x.jst_date) as first_day, max(x.jst_date) as last_day
          from new x group by 1, 2) n
    left join (select x.vtuber_id, x.user_id, min(x.jst_date) as first_day, max(x.jst_date) as last_day
               from old x group by 1, 2) o on o.vtuber_id = n.vtuber_id and o.user_id = n.user_id
    where o.first_day is distinct from n.first_day or o.last_day is distinct from n.last_day),
  counts as (
    select k.vtuber_id, k.jst_date, 1 as paying, 0 as first, 0 as last from k
    where not exists (select 1 from old o
                       where o.vtuber_id = k.vtuber_id and o.user_id = k.user_id and o.jst_date = k.jst_date)
    union all
    select m.vtuber_id, x.jst_date, 0, x.dn, x.dl
    from moved m cross join lateral (values (m.first_day, 1, 0), (m.old_first, -1, 0),
                                            (m.last_day, 0, 1), (m.old_last, 0, -1)) x (jst_date, dn, dl)
    where x.jst_date is not null)
  insert into app.fan_counts_daily as s (vtuber_id, jst_date, paying_fans, new_fans, last_fans)
  select c.vtuber_id, c.jst_date, sum(c.paying), sum(c.first), sum(c.last) from counts c
  group by 1, 2 having sum(c.paying) <> 0 or sum(c.first) <> 0 or sum(c.last) <> 0
  on conflict (vtuber_id, jst_date) do update
    set paying_fans = s.paying_fans + excluded.paying_fans, new_fans = s.new_fans + excluded.new_fans,
        last_fans = s.last_fans + excluded.last_fans;

  -- The same for each user's paid days on the whole platform (any VTuber; a fan paying two
  -- VTubers on a day is one paying user), from platform_fan_days before this run's keys are added:
  -- paying_users(d), the (day, previous paid day) pairs, and new_users(d) / last_users(d) for the
  -- users whose first / last paid day on the platform is d.
  with k as (
    select distinct o.user_id, o.jst_date from unnest(v_new) o),
  old as (
    select f.user_id, f.jst_date from app.platform_fan_days f where f.user_id in (select k.user_id from k)),
  new as (select * from old union select * from k),
  delta as (
    select x.jst_date, coalesce(lag(x.jst_date) over w, '-infinity') as prev, 1 as n from new x
    window w as (partition by x.user_id order by x.jst_date)
    union all
    select x.jst_date, coalesce(lag(x.jst_date) over w, '-infinity'), -1 from old x
    window w as (partition by x.user_id order by x.jst_date)),
  gaps as (
    insert into app.platform_fan_gaps_daily as s (jst_date, prev_jst_date, users)
    select d.jst_date, d.prev, sum(d.n) from delta d group by 1, 2 having sum(d.n) <> 0
    on conflict (jst_date, prev_jst_date) do update set users = s.users + excluded.users),
  moved as (
    select n.first_day, n.last_day, o.first_day as old_first, o.last_day as old_last
    from (select x.user_id, min(x.jst_date) as first_day, max(x.jst_date) as last_day from new x group by 1) n
    left join (select x.user_id, min(x.jst_date) as first_day, max(x.jst_date) as last_day
               from old x group by 1) o on o.user_id = n.user_id
    where o.first_day is distinct from n.first_day or o.last_day is distinct from n.last_day),
  counts as (
    select k.jst_date, 1 as paying, 0 as first, 0 as last from k
    where not exists (select 1 from old o where o.user_id = k.user_id and o.jst_date = k.jst_date)
    union all
    select x.jst_date, 0, x.dn, x.dl
    from moved m cross join lateral (values (m.first_day, 1, 0), (m.old_first, -1, 0),
                                            (m.last_day, 0, 1), (m.old_last, 0, -1)) x (jst_date, dn, dl)
    where x.jst_date is not null)
  insert into app.platform_fan_counts_daily as s (jst_date, paying_users, new_users, last_users)
  select c.jst_date, sum(c.paying), sum(c.first), sum(c.last) from counts c
  group by 1 having sum(c.paying) <> 0 or sum(c.first) <> 0 or sum(c.last) <> 0
  on conflict (jst_date) do update
    set paying_users = s.paying_users + excluded.paying_users, new_users = s.new_users + excluded.new_users,
        last_users = s.last_users + excluded.last_users;

  insert into app.fan_sales_daily as s (vtuber_id, jst_date, user_id, paid_orders, gross_jpy)
  select o.vtuber_id, o.jst_date, o.user_id, count(*), sum(o.amount_jpy)
  from unnest(v_new) o
  group by 1, 2, 3
  on conflict (vtuber_id, jst_date, user_id) do update
    set paid_orders = s.paid_orders + excluded.paid_orders, gross_jpy = s.gross_jpy + excluded.gross_jpy;

  insert into app.platform_fan_days (jst_date, user_id)
  select distinct o.jst_date, o.user_id from unnest(v_new) o
  on conflict (user_id, jst_date) do nothing;

  -- Medal flows, on the JST day of the ledger entry.
  insert into app.medals_daily as s (jst_date, vtuber_id, granted, spent, clawed_back, adjusted)
  select private.jst_date(l.created_at), l.vtuber_id,
         coalesce(sum(l.delta) filter (where l.reason = 'pull_grant'), 0),
         coalesce(-sum(l.delta) filter (where l.reason = 'exchange'), 0),
         coalesce(-sum(l.delta) filter (where l.reason = 'refund_clawback'), 0),
         coalesce(sum(l.delta) filter (where l.reason = 'admin_adjustment'), 0)
  from app.medal_ledger l
  where l.created_at >= v_from and l.created_at < v_hi
  group by 1, 2
  on conflict (vtuber_id, jst_date) do update
    set granted = s.granted + excluded.granted, spent = s.spent + excluded.spent,
        clawed_back = s.clawed_back + excluded.clawed_back, adjusted = s.adjusted + excluded.adjusted;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  -- Refunds on the JST day they completed (whatever month the sale was in).
  insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, refund_count, refunds_jpy)
  select private.jst_date(f.completed_at), o.gacha_id, o.vtuber_id, count(*), sum(f.amount_jpy)
  from app.refunds f join app.orders o on o.id = f.order_id
  where f.status = 'completed' and f.completed_at >= v_from and f.completed_at < v_hi
  group by 1, 2, 3
  on conflict (jst_date, gacha_id) do update
    set refund_count = s.refund_count + excluded.refund_count, refunds_jpy = s.refunds_jpy + excluded.refunds_jpy;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  -- Chargebacks on the JST day of an order's first dispute: the order's amount.
  insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, chargeback_count, chargebacks_jpy)
  select private.jst_date(d.created_at), o.gacha_id, o.vtuber_id, count(*), sum(o.amount_jpy)
  from app.disputes d join app.orders o on o.id = d.order_id
  where d.created_at >= v_from and d.created_at < v_hi
    and not exists (select 1 from app.disputes e where e.order_id = d.order_id
                     and (e.created_at, e.provider_dispute_id) < (d.created_at, d.provider_dispute_id))
  group by 1, 2, 3
  on conflict (jst_date, gacha_id) do update
    set chargeback_count = s.chargeback_count + excluded.chargeback_count,
        chargebacks_jpy = s.chargebacks_jpy + excluded.chargebacks_jpy;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  insert into app.exchanges_daily as s (jst_date, exchange_item_id, vtuber_id, exchanges, quantity, medals_spent)
  select x.jst_date, x.exchange_item_id, x.vtuber_id, count(*), sum(x.quantity), sum(x.medals_spent)
  from app.exchanges x
  where x.created_at >= v_from and x.created_at < v_hi
  group by 1, 2, 3
  on conflict (jst_date, exchange_item_id) do update
    set exchanges = s.exchanges + excluded.exchanges, quantity = s.quantity + excluded.quantity,
        medals_spent = s.medals_spent + excluded.medals_spent;
  get diagnostics v_n = row_count;
  v_rows := v_rows + v_n;

  update app.rollup_state set through = v_hi, runs = runs + 1, last_run_at = p_now, last_rows = v_rows;
  return jsonb_build_object('from', v_from, 'through', v_hi, 'rows', v_rows, 'orders', cardinality(v_new));
end
$$;
comment on function private.refresh_rollups(timestamptz) is
  'security definer: the scheduled job adds the base-table rows stamped since the watermark to the rollups '
  '(reads pg_stat_activity to hold the watermark behind open transactions).';
revoke all on function private.refresh_rollups(timestamptz) from public;
grant execute on function private.refresh_rollups(timestamptz) to service_role;

comment on function public.service_refresh_rollups() is
  'Service role: adds what is new since the watermark to the sales rollups now (the scheduled job does this '
  'every minute); returns {from, through, rows, orders}: the rollup rows written and the paid orders added.';
