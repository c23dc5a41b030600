-- The rollup job reads each user's platform-wide paid days from the (VTuber, day, fan) keys it
-- already keeps, instead of keeping a (day, user) key per paying user of its own:
-- * app.fan_sales_daily's primary key leads with the user, (user_id, vtuber_id, jst_date), so one
--   index range gives a user's paid days for every VTuber (and, narrowed, for one VTuber);
-- * app.platform_fan_days is dropped: for each new paying user a run looked it up and wrote a row
--   and an index entry at a random place in a table as large as the platform's paying history,
--   a third of the job's time per order at 1M fans.
-- The counts it fed (platform_fan_counts_daily, platform_fan_gaps_daily) are unchanged: a user's
-- paid days are the same days read from either table.
-- The job, carried below from sql/backoffice/30_sales_rollups.sql (the only function of that file
-- this changes), also reads a run's orders, and looks up its fans, in key order (nearby look-ups
-- share index pages), writes its new fan keys in key order, and groups the run's pulls by hashing
-- instead of sorting them.

select pg_catalog.pg_advisory_xact_lock(7253201);

alter table app.fan_sales_daily
  drop constraint fan_sales_daily_pkey,
  add constraint fan_sales_daily_pkey primary key (user_id, vtuber_id, jst_date);

drop table app.platform_fan_days;

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
  v_sort text;
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
  -- orders again or computes a day per row. The orders are looked up in key order: a minute of
  -- orders at full load shares many index pages, which sorted look-ups find still in memory.
  with w as materialized (
    select l.order_id, l.reason from app.medal_ledger l where l.created_at >= v_from and l.created_at < v_hi)
  select coalesce(array_agg(row(o.id, o.user_id, o.vtuber_id, o.gacha_id,
                                (o.fulfilled_at at time zone 'Asia/Tokyo')::date,
                                o.amount_jpy, o.pull_count)::private.rollup_order), '{}')
    into v_new
  from (select w.order_id from w where w.reason = 'pull_grant' order by w.order_id) w
  cross join lateral (select o.* from app.orders o where o.id = w.order_id) o;

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
  -- The range's instants are newer than the column's statistics, so the planner expects a row or
  -- so and sorts the pulls to group them; sorts are off for this statement, and a hash groups a
  -- run's pulls (a hundred thousand a minute at full load) in a third of the time.
  v_sort := pg_catalog.current_setting('enable_sort');
  perform pg_catalog.set_config('enable_sort', 'off', true);
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
  perform pg_catalog.set_config('enable_sort', v_sort, true);

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

  -- Paying users per day on the whole platform (any VTuber; a fan paying two VTubers on a day is
  -- one paying user), kept as the fans per VTuber below are (see there): paying_users(d), the
  -- (day, previous paid day) pairs, and new_users(d) / last_users(d) for the users whose first /
  -- last paid day on the platform is d. A user's paid days are the days of their fan_sales_daily
  -- keys (whose index leads with the user), read before the next statement adds this run's keys:
  -- one index range per user, and no (day, user) table of its own to look up and write for each
  -- new paying user. Users are looked up in key order, as the orders above.
  with k as (
    select distinct o.user_id, o.jst_date from unnest(v_new) o),
  old as (
    select distinct f.user_id, f.jst_date
    from (select distinct k.user_id from k order by 1) u
    cross join lateral (select f.user_id, f.jst_date from app.fan_sales_daily f where f.user_id = u.user_id) f),
  fresh as (
    select k.* from k where not exists (select 1 from old o where o.user_id = k.user_id and o.jst_date = k.jst_date)),
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
    select f.vtuber_id, f.user_id, f.jst_date
    from (select distinct k.user_id, k.vtuber_id from k order by 1, 2) u
    cross join lateral (select f.vtuber_id, f.user_id, f.jst_date from app.fan_sales_daily f
                        where f.user_id = u.user_id and f.vtuber_id = u.vtuber_id) f),
  -- The run's keys not yet in fan_sales_daily: inserted as they are (the job alone writes the
  -- table, under its lock), in key order, the others added to; one index descent each beyond the
  -- lookup above.
  fresh as (
    select k.* from k
    where not exists (select 1 from old o
                       where o.vtuber_id = k.vtuber_id and o.user_id = k.user_id and o.jst_date = k.jst_date)),
  ins as (
    insert into app.fan_sales_daily (vtuber_id, jst_date, user_id, paid_orders, gross_jpy)
    select f.vtuber_id, f.jst_date, f.user_id, f.orders, f.gross from fresh f order by f.user_id, f.vtuber_id, f.jst_date),
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
