-- The rollup job reads the run's pulls as one range, and two rollups serve the platform's report:
-- * app.pulls gets a BRIN index on created_at, like the ledger's: a fulfilment stamps its pulls
--   with its ledger entry's instant, so the job reads the pulls of the watermark range as a run of
--   recent pages instead of probing the order_id index (as large as the history) order by order,
--   which was half of the job's time per order; the job also no longer sorts the pulls on disk
--   (work_mem) nor calls private.jst_date per row;
-- * app.vtuber_sales_daily: sales per (JST day, VTuber), the sum of sales_daily over the VTuber's
--   gachas, recomputed by the job for every (day, VTuber) a run changes; the platform's report
--   reads a row per VTuber and day instead of a row per gacha and day;
-- * app.item_pulls_weekly: pulls per ISO week (Monday to Sunday) and item; a report sums the
--   range's whole weeks from it and only the days at its ends from item_pulls_daily.
-- Both are filled here from the rollups they sum, under the job's lock, so no run interleaves.

select pg_catalog.pg_advisory_xact_lock(7253201);

create index pulls_created_brin on app.pulls using brin (created_at) with (autosummarize = on);

create table app.vtuber_sales_daily (
  jst_date date not null,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  paid_orders integer not null default 0,
  pulls integer not null default 0,
  gross_jpy bigint not null default 0,
  provider_fees_jpy bigint not null default 0,
  refund_count integer not null default 0,
  refunds_jpy bigint not null default 0,
  chargeback_count integer not null default 0,
  chargebacks_jpy bigint not null default 0,
  primary key (jst_date, vtuber_id)
);
comment on table app.vtuber_sales_daily is
  'Per JST day and VTuber: app.sales_daily summed over the VTuber''s gachas (kept by the rollup job).';

create table app.item_pulls_weekly (
  week_start date not null check (extract(isodow from week_start) = 1),
  gacha_item_id uuid not null references app.gacha_items (id) on delete restrict,
  gacha_id uuid not null references app.gachas (id) on delete restrict,
  vtuber_id uuid not null references app.vtubers (id) on delete restrict,
  rarity text not null,
  pulls integer not null default 0,
  pity_pulls integer not null default 0,
  primary key (week_start, gacha_item_id)
);
comment on table app.item_pulls_weekly is
  'Pulls per ISO week (week_start: its Monday, JST days) and item: app.item_pulls_daily summed by week.';
create index item_pulls_weekly_vtuber_week on app.item_pulls_weekly (vtuber_id, week_start)
  include (gacha_item_id, rarity, pulls, pity_pulls);

alter table app.vtuber_sales_daily enable row level security;
alter table app.item_pulls_weekly enable row level security;
revoke all on app.vtuber_sales_daily, app.item_pulls_weekly from public, anon, authenticated, service_role;
grant select on app.vtuber_sales_daily, app.item_pulls_weekly to service_role;

insert into app.vtuber_sales_daily (jst_date, vtuber_id, paid_orders, pulls, gross_jpy, provider_fees_jpy,
                                    refund_count, refunds_jpy, chargeback_count, chargebacks_jpy)
select d.jst_date, d.vtuber_id, sum(d.paid_orders), sum(d.pulls), sum(d.gross_jpy), sum(d.provider_fees_jpy),
       sum(d.refund_count), sum(d.refunds_jpy), sum(d.chargeback_count), sum(d.chargebacks_jpy)
from app.sales_daily d group by 1, 2;

insert into app.item_pulls_weekly (week_start, gacha_item_id, gacha_id, vtuber_id, rarity, pulls, pity_pulls)
select d.jst_date - (extract(isodow from d.jst_date)::integer - 1), d.gacha_item_id, d.gacha_id, d.vtuber_id,
       d.rarity, sum(d.pulls), sum(d.pity_pulls)
from app.item_pulls_daily d group by 1, 2, 3, 4, 5;

-- from sql/backoffice/30_sales_rollups.sql
-- Sales analytics. A scheduled job (private.refresh_rollups, every minute) adds what is new in
-- the base tables to the rollup tables; dashboards read only the rollups. Fulfilment does no
-- extra work for them: the job finds new paid orders through the medal ledger (one pull_grant
-- entry per fulfilled order, append-only, indexed by a BRIN index on created_at).
--
-- The watermark: each run adds the rows stamped in [through, hi) and moves `through` to hi.
-- Rows are stamped with their transaction's start time (now()), so hi stays behind the start of
-- every transaction still open in this database (pg_stat_activity): no row stamped before hi can
-- still appear, and each row is added exactly once. Two more seconds of margin cover a session
-- whose start the job's role could not see. Autovacuum workers are not waited for: they write no
-- rows of their own, and one vacuuming a large table holds a transaction open for minutes, which
-- held the watermark (and every dashboard's freshness) back that long.

create or replace function private.jst_date(p_at timestamptz) returns date
language sql immutable parallel safe
set search_path = ''
as $$ select (p_at at time zone 'Asia/Tokyo')::date $$;
comment on function private.jst_date(timestamptz) is 'The JST calendar day of an instant.';
revoke all on function private.jst_date(timestamptz) from public;
grant execute on function private.jst_date(timestamptz) to authenticated, service_role;

create or replace function private.refresh_rollups(p_now timestamptz) returns jsonb
language plpgsql security definer
set search_path = ''
-- A run's statements are estimated from its arrays and crossed jit_above_cost: each then spent
-- ~15 ms compiling expressions it evaluates a few thousand times. The job is cheaper interpreted.
set jit = off
-- A run's sorts and hashes hold a few thousand rows per minute of sales; the default 4 MB spilled
-- the pulls' grouping to disk.
set work_mem = '64MB'
as $$
declare
  v_from timestamptz;
  v_hi timestamptz := p_now - interval '2 seconds';
  v_open timestamptz;
  v_rows bigint := 0;
  v_n bigint;
  v_gachas uuid[];
  v_new private.rollup_order[];
  -- The (VTuber, day) keys of the sales_daily rows this run changed.
  v_kv uuid[] := '{}';
  v_kd date[] := '{}';
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
  select coalesce(array_agg(row(o.id, o.user_id, o.vtuber_id, o.gacha_id,
                                (o.fulfilled_at at time zone 'Asia/Tokyo')::date,
                                o.amount_jpy, o.pull_count)::private.rollup_order), '{}')
    into v_new
  from w join app.orders o on o.id = w.order_id
  where w.reason = 'pull_grant';

  -- Paid orders and pulls, on the JST day of fulfilment.
  with ins as (
    insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, paid_orders, pulls, gross_jpy)
    select o.jst_date, o.gacha_id, o.vtuber_id, count(*), sum(o.pull_count), sum(o.amount_jpy)
    from unnest(v_new) o
    group by 1, 2, 3
    on conflict (jst_date, gacha_id) do update
      set paid_orders = s.paid_orders + excluded.paid_orders, pulls = s.pulls + excluded.pulls,
          gross_jpy = s.gross_jpy + excluded.gross_jpy
    returning s.vtuber_id, s.jst_date)
  select v_kv || coalesce(array_agg(ins.vtuber_id), '{}'), v_kd || coalesce(array_agg(ins.jst_date), '{}'),
         v_rows + count(*)
    into v_kv, v_kd, v_rows from ins;

  -- Pulls per item and day, and per item over all time (what the rate audit tests). A fulfilment
  -- stamps its pulls with the same instant as its ledger entry (its transaction's now()), so the
  -- pulls in the watermark range are exactly those of the orders above: read as one range of
  -- recent pages through the BRIN index on created_at, not probed order by order through the
  -- order_id index (random reads in an index as large as the history, half the job's time).
  with n as (
    select x.jst_date, x.gacha_item_id, x.gacha_id, g.vtuber_id, x.rarity, x.pulls, x.pity_pulls
    from (select (p.created_at at time zone 'Asia/Tokyo')::date as jst_date, p.gacha_item_id, p.gacha_id, p.rarity,
                 count(*) filter (where not p.pity) as pulls, count(*) filter (where p.pity) as pity_pulls
          from app.pulls p where p.created_at >= v_from and p.created_at < v_hi
          group by 1, 2, 3, 4) x
    join app.gachas g on g.id = x.gacha_id),
  daily as (
    insert into app.item_pulls_daily as s (jst_date, gacha_item_id, gacha_id, vtuber_id, rarity, pulls, pity_pulls)
    select n.jst_date, n.gacha_item_id, n.gacha_id, n.vtuber_id, n.rarity, n.pulls, n.pity_pulls from n
    on conflict (jst_date, gacha_item_id) do update
      set pulls = s.pulls + excluded.pulls, pity_pulls = s.pity_pulls + excluded.pity_pulls),
  -- The same per ISO week (Monday to Sunday): a long range's item figures sum its whole weeks
  -- here and only the days at its two ends from item_pulls_daily, a seventh of the rows.
  weekly as (
    insert into app.item_pulls_weekly as s (week_start, gacha_item_id, gacha_id, vtuber_id, rarity, pulls, pity_pulls)
    select n.jst_date - (extract(isodow from n.jst_date)::integer - 1), n.gacha_item_id, n.gacha_id, n.vtuber_id,
           n.rarity, sum(n.pulls), sum(n.pity_pulls)
    from n group by 1, 2, 3, 4, 5
    on conflict (week_start, gacha_item_id) do update
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
  -- The statistic is computed here as private.chi_square_test computes it (in double precision,
  -- from each item's observed and expected draws), without building its jsonb cells per gacha.
  insert into app.rate_audits as s (gacha_id, draws, statistic, p_value, audited_at)
  select c.gacha_id, c.total, c.statistic,
         case when c.total > 0 then private.chi_square_p_value(c.statistic, c.k - 1) end, p_now
  from (select i.gacha_id, n.total, count(*)::integer as k,
               coalesce(sum((coalesce(d.pulls, 0)::double precision - (n.total * i.rate_ppm / 1e6)::double precision) ^ 2
                            / nullif((n.total * i.rate_ppm / 1e6)::double precision, 0)), 0) as statistic
        from app.gacha_items i
        join (select d.gacha_id, sum(d.pulls) as total from app.item_draws d
               where d.gacha_id = any (v_gachas) group by 1) n on n.gacha_id = i.gacha_id
        left join app.item_draws d on d.gacha_item_id = i.id
        group by i.gacha_id, n.total) c
  on conflict (gacha_id) do update
    set draws = excluded.draws, statistic = excluded.statistic, p_value = excluded.p_value,
        audited_at = excluded.audited_at;

  -- Fans per (VTuber, day), from the (VTuber, day, fan) keys of fan_sales_daily, which the report
  -- sums instead of counting distinct fans. One statement reads the earlier paid days of each
  -- (VTuber, fan) this run touches (one index range per fan; a statement's reads do not see its
  -- own writes, so these are the days before this run), writes the run's keys, and derives from
  -- the earlier days and the run's keys:
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
    select o.vtuber_id, o.user_id, o.jst_date, count(*) as orders, sum(o.amount_jpy) as gross
    from unnest(v_new) o group by 1, 2, 3),
  old as (
    select f.vtuber_id, f.user_id, f.jst_date from app.fan_sales_daily f
    where (f.vtuber_id, f.user_id) in (select k.vtuber_id, k.user_id from k)),
  -- The run's keys not yet in fan_sales_daily: inserted as they are (the job alone writes the
  -- table, under its lock), the others added to; one index descent each beyond the lookup above.
  fresh as (
    select k.* from k
    where not exists (select 1 from old o
                       where o.vtuber_id = k.vtuber_id and o.user_id = k.user_id and o.jst_date = k.jst_date)),
  ins as (
    insert into app.fan_sales_daily (vtuber_id, jst_date, user_id, paid_orders, gross_jpy)
    select f.vtuber_id, f.jst_date, f.user_id, f.orders, f.gross from fresh f),
  upd as (
    update app.fan_sales_daily s set paid_orders = s.paid_orders + e.orders, gross_jpy = s.gross_jpy + e.gross
    from (select k.* from k join old o on o.vtuber_id = k.vtuber_id and o.user_id = k.user_id
                                        and o.jst_date = k.jst_date) e
    where s.vtuber_id = e.vtuber_id and s.user_id = e.user_id and s.jst_date = e.jst_date),
  new as (select * from old union select k.vtuber_id, k.user_id, k.jst_date from k),
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
    select f.vtuber_id, f.jst_date, 1 as paying, 0 as first, 0 as last from fresh f
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
  -- VTubers on a day is one paying user), from platform_fan_days as it was before this run (the
  -- statement adds the run's keys):
  -- paying_users(d), the (day, previous paid day) pairs, and new_users(d) / last_users(d) for the
  -- users whose first / last paid day on the platform is d.
  with k as (
    select distinct o.user_id, o.jst_date from unnest(v_new) o),
  old as (
    select f.user_id, f.jst_date from app.platform_fan_days f where f.user_id in (select k.user_id from k)),
  fresh as (
    select k.* from k where not exists (select 1 from old o where o.user_id = k.user_id and o.jst_date = k.jst_date)),
  ins as (
    insert into app.platform_fan_days (jst_date, user_id) select f.jst_date, f.user_id from fresh f),
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
    select f.jst_date, 1 as paying, 0 as first, 0 as last from fresh f
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

  -- Medal flows, on the JST day of the ledger entry.
  insert into app.medals_daily as s (jst_date, vtuber_id, granted, spent, clawed_back, adjusted)
  select (l.created_at at time zone 'Asia/Tokyo')::date, l.vtuber_id,
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
  with ins as (
    insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, refund_count, refunds_jpy)
    select private.jst_date(f.completed_at), o.gacha_id, o.vtuber_id, count(*), sum(f.amount_jpy)
    from app.refunds f join app.orders o on o.id = f.order_id
    where f.status = 'completed' and f.completed_at >= v_from and f.completed_at < v_hi
    group by 1, 2, 3
    on conflict (jst_date, gacha_id) do update
      set refund_count = s.refund_count + excluded.refund_count, refunds_jpy = s.refunds_jpy + excluded.refunds_jpy
    returning s.vtuber_id, s.jst_date)
  select v_kv || coalesce(array_agg(ins.vtuber_id), '{}'), v_kd || coalesce(array_agg(ins.jst_date), '{}'),
         v_rows + count(*)
    into v_kv, v_kd, v_rows from ins;

  -- Chargebacks on the JST day of an order's first dispute: the order's amount.
  with ins as (
    insert into app.sales_daily as s (jst_date, gacha_id, vtuber_id, chargeback_count, chargebacks_jpy)
    select private.jst_date(d.created_at), o.gacha_id, o.vtuber_id, count(*), sum(o.amount_jpy)
    from app.disputes d join app.orders o on o.id = d.order_id
    where d.created_at >= v_from and d.created_at < v_hi
      and not exists (select 1 from app.disputes e where e.order_id = d.order_id
                       and (e.created_at, e.provider_dispute_id) < (d.created_at, d.provider_dispute_id))
    group by 1, 2, 3
    on conflict (jst_date, gacha_id) do update
      set chargeback_count = s.chargeback_count + excluded.chargeback_count,
          chargebacks_jpy = s.chargebacks_jpy + excluded.chargebacks_jpy
    returning s.vtuber_id, s.jst_date)
  select v_kv || coalesce(array_agg(ins.vtuber_id), '{}'), v_kd || coalesce(array_agg(ins.jst_date), '{}'),
         v_rows + count(*)
    into v_kv, v_kd, v_rows from ins;

  -- Each changed (VTuber, day) summed again over its gachas' rows: the platform's report reads
  -- these (one row per VTuber and day) instead of a row per gacha and day.
  insert into app.vtuber_sales_daily as s (jst_date, vtuber_id, paid_orders, pulls, gross_jpy, provider_fees_jpy,
                                           refund_count, refunds_jpy, chargeback_count, chargebacks_jpy)
  select d.jst_date, d.vtuber_id, sum(d.paid_orders), sum(d.pulls), sum(d.gross_jpy), sum(d.provider_fees_jpy),
         sum(d.refund_count), sum(d.refunds_jpy), sum(d.chargeback_count), sum(d.chargebacks_jpy)
  from app.sales_daily d
  where (d.vtuber_id, d.jst_date) in (select distinct k.v, k.d from unnest(v_kv, v_kd) k (v, d))
  group by 1, 2
  on conflict (jst_date, vtuber_id) do update
    set paid_orders = excluded.paid_orders, pulls = excluded.pulls, gross_jpy = excluded.gross_jpy,
        provider_fees_jpy = excluded.provider_fees_jpy, refund_count = excluded.refund_count,
        refunds_jpy = excluded.refunds_jpy, chargeback_count = excluded.chargeback_count,
        chargebacks_jpy = excluded.chargebacks_jpy;

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

create or replace function public.service_refresh_rollups() returns jsonb
language sql
set search_path = ''
as $$ select private.refresh_rollups(now()) $$;
comment on function public.service_refresh_rollups() is
  'Service role: adds what is new since the watermark to the sales rollups now (the scheduled job does this '
  'every minute); returns {from, through, rows, orders}: the rollup rows written and the paid orders added.';
revoke all on function public.service_refresh_rollups() from public, anon, authenticated;
grant execute on function public.service_refresh_rollups() to service_role;

create or replace function private.check_date_range(p_from date, p_to date) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_from is null or p_to is null or p_from > p_to or p_to - p_from > 366 then
    raise exception using errcode = 'PT400', message = 'invalid_date_range',
      detail = 'p_from <= p_to (JST days, both included), at most 367 days';
  end if;
end
$$;
comment on function private.check_date_range(date, date) is 'Raises invalid_date_range unless p_from <= p_to within 367 days.';
revoke all on function private.check_date_range(date, date) from public;
grant execute on function private.check_date_range(date, date) to authenticated;

create or replace function private.share_bps(p_vtuber_id uuid) returns integer
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select v.revenue_share_bps from app.vtubers v where v.id = p_vtuber_id),
                  private.setting_int('default_revenue_share_bps', 7000))
$$;
comment on function private.share_bps(uuid) is
  'security definer: a VTuber''s revenue share in basis points (their own or the platform default).';
revoke all on function private.share_bps(uuid) from public;
grant execute on function private.share_bps(uuid) to authenticated;

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
  v_w0 date;
  v_w1 date;
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

  -- One VTuber's sales_daily rows in the range, read once (a CTE used twice is computed once).
  with r as (
    select d.jst_date, d.gacha_id, d.vtuber_id, d.paid_orders, d.pulls, d.gross_jpy, d.provider_fees_jpy,
           d.refunds_jpy, d.refund_count, d.chargebacks_jpy, d.chargeback_count
    from app.sales_daily d
    where p_vtuber_id is not null and d.vtuber_id = p_vtuber_id and d.jst_date between p_from and p_to),
  -- Per (day, VTuber): the share is truncated to whole yen there, so days, VTubers and totals are
  -- sums of the same per-(day, VTuber) figures. The platform's are kept per (day, VTuber) by the
  -- job (a tenth of the per-gacha rows).
  s as (
    select r.jst_date, r.vtuber_id, sum(r.paid_orders) as paid_orders, sum(r.pulls) as pulls,
           sum(r.gross_jpy) as gross_jpy, sum(r.provider_fees_jpy) as provider_fees_jpy,
           sum(r.refunds_jpy) as refunds_jpy, sum(r.refund_count) as refund_count,
           sum(r.chargebacks_jpy) as chargebacks_jpy, sum(r.chargeback_count) as chargeback_count
    from r group by 1, 2
    union all
    select v.jst_date, v.vtuber_id, v.paid_orders, v.pulls, v.gross_jpy, v.provider_fees_jpy, v.refunds_jpy,
           v.refund_count, v.chargebacks_jpy, v.chargeback_count
    from app.vtuber_sales_daily v
    where p_vtuber_id is null and v.jst_date between p_from and p_to),
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
  -- The range's whole ISO weeks [v_w0, v_w1) come from item_pulls_weekly, the days before and
  -- after them from item_pulls_daily.
  v_w0 := p_from + (8 - extract(isodow from p_from)::integer) % 7;
  v_w1 := p_to + 1 - (extract(isodow from p_to + 1)::integer - 1);
  if v_w1 <= v_w0 then  -- no whole week: every day from the daily rows
    v_w0 := p_to + 1;
    v_w1 := p_to + 1;
  end if;
  with i as (
    select u.gacha_item_id, u.rarity, sum(u.pulls)::bigint as pulls, sum(u.pity_pulls)::bigint as pity_pulls
    from (select w.gacha_item_id, w.rarity, w.pulls, w.pity_pulls from app.item_pulls_weekly w
          where (p_vtuber_id is null or w.vtuber_id = p_vtuber_id) and w.week_start >= v_w0 and w.week_start < v_w1
          union all
          select d.gacha_item_id, d.rarity, d.pulls, d.pity_pulls from app.item_pulls_daily d
          where (p_vtuber_id is null or d.vtuber_id = p_vtuber_id)
            and (d.jst_date >= p_from and d.jst_date < v_w0 or d.jst_date >= v_w1 and d.jst_date <= p_to)) u
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

-- Scheduled jobs that failed recently; none when pg_cron is not installed in this database.
create or replace function private.failed_jobs(p_since timestamptz) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v jsonb;
begin
  if to_regclass('cron.job_run_details') is null then
    return '[]'::jsonb;
  end if;
  execute $q$
    select coalesce(jsonb_agg(jsonb_build_object('job', j.jobname, 'failures', f.n, 'last_failure', f.last,
                                                 'last_message', f.msg) order by j.jobname), '[]')
    from (select d.jobid, count(*) as n, max(d.start_time) as last,
                 (array_agg(d.return_message order by d.start_time desc))[1] as msg
          from cron.job_run_details d where d.status = 'failed' and d.start_time >= $1 group by d.jobid) f
    join cron.job j on j.jobid = f.jobid $q$
    into v using p_since;
  return v;
end
$$;
comment on function private.failed_jobs(timestamptz) is
  'security definer: reads pg_cron''s run history (cron schema), which API roles cannot.';
revoke all on function private.failed_jobs(timestamptz) from public;
grant execute on function private.failed_jobs(timestamptz) to authenticated, service_role;

create or replace function private.admin_get_kpis(p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  t jsonb;
  v_flagged jsonb;
begin
  perform v_admin, private.check_date_range(p_from, p_to);
  select jsonb_build_object(
           'gmv_jpy', coalesce(sum(d.gross_jpy), 0), 'paid_orders', coalesce(sum(d.paid_orders), 0),
           'refunds_jpy', coalesce(sum(d.refunds_jpy), 0), 'refund_count', coalesce(sum(d.refund_count), 0),
           'chargebacks_jpy', coalesce(sum(d.chargebacks_jpy), 0),
           'chargeback_count', coalesce(sum(d.chargeback_count), 0),
           'refund_rate', case when sum(d.gross_jpy) > 0 then round(sum(d.refunds_jpy)::numeric / sum(d.gross_jpy), 6) end,
           'dispute_rate', case when sum(d.paid_orders) > 0
                                then round(sum(d.chargeback_count)::numeric / sum(d.paid_orders), 6) end)
    into t
  from app.sales_daily d where d.jst_date between p_from and p_to;
  -- Paying users: as the sales report's paying fans, from the platform's last-day histogram when
  -- nobody paid after p_to, else from its (day, previous paid day) counts.
  if not exists (select 1 from app.platform_fan_counts_daily c where c.jst_date > p_to and c.last_users <> 0) then
    select t || jsonb_build_object('paying_users', coalesce(sum(c.last_users), 0))
      into t from app.platform_fan_counts_daily c where c.jst_date between p_from and p_to;
  else
    select t || jsonb_build_object('paying_users', coalesce(sum(g.users), 0))
      into t from app.platform_fan_gaps_daily g
     where g.jst_date between p_from and p_to and g.prev_jst_date < p_from;
  end if;
  select t || jsonb_build_object('outstanding_medals',
                                 coalesce(sum(m.granted - m.spent - m.clawed_back + m.adjusted), 0))
    into t from app.medals_daily m;
  -- Gachas whose observed non-pity draws (all time) fit their odds with p < 0.001, as the rollup
  -- job last tested them (it retests a gacha whenever it adds draws to it).
  select coalesce(jsonb_agg(jsonb_build_object('gacha_id', a.gacha_id, 'title', g.title, 'p_value', a.p_value)
                            order by a.p_value), '[]')
    into v_flagged
  from app.rate_audits a join app.gachas g on g.id = a.gacha_id
  where a.p_value < 0.001;
  return t || jsonb_build_object(
    'from', p_from, 'to', p_to,
    'fresh_through', (select s.through from app.rollup_state s),
    'rate_audit_alerts', v_flagged,
    'failed_jobs_24h', private.failed_jobs(now() - interval '24 hours'),
    'open_reconciliation_issues', (select count(*) from app.reconciliation_issues r where r.status = 'open'),
    'refund_requests_awaiting_review', (select count(*) from app.refunds r where r.status = 'requested'));
end
$$;
comment on function private.admin_get_kpis(date, date) is
  'security definer: platform KPIs from the rollups, pg_cron''s run history and the queues, for admins only.';
revoke all on function private.admin_get_kpis(date, date) from public;
grant execute on function private.admin_get_kpis(date, date) to authenticated;

create or replace function public.admin_get_kpis(p_from date default null, p_to date default null) returns jsonb
language sql stable
set search_path = ''
as $$
  select private.admin_get_kpis(coalesce(p_from, coalesce(p_to, private.jst_date(now())) - 29),
                                coalesce(p_to, private.jst_date(now())))
$$;
comment on function public.admin_get_kpis(date, date) is
  'Admin: GMV, paid orders, paying users, refund and dispute rates over [p_from, p_to] (JST days; default the last '
  '30), outstanding medals (a liability), gachas whose rate audit p-value is below 0.001, scheduled jobs that '
  'failed in the last 24 hours, open reconciliation issues, refunds awaiting review, fresh_through. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_date_range (PT400).';
revoke all on function public.admin_get_kpis(date, date) from public, anon, authenticated, service_role;
grant execute on function public.admin_get_kpis(date, date) to authenticated;
