"""Koepon's invariants, checked in SQL against a whole database (as `postgres`, which bypasses RLS).

`check(conn)` runs every check and returns the violations (an empty list when the books are
right); `figures(conn)` returns the totals the checks were about (orders by status, pulls, yen
received and refunded, ...). Used after the soak and crash suites, and by `koepon soak`.

Each check is one query that returns the offending rows, so a violation names what is wrong
(the order, the account, the item) instead of just "false". The checks are deliberately written
from the tables, not through the functions under test: the audit chain is recomputed here with
its own SHA-256 expression, the books from the inbox's payment rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    sql: str


@dataclass(frozen=True)
class Violation:
    check: str
    row: dict

    def __str__(self) -> str:
        return f"{self.check}: {self.row}"


# Orders whose money reached us and paid for them: the payments row that fulfilled the order.
_FULFILLING = """
  select o.id as order_id, o.amount_jpy, o.refunded_jpy, p.provider, p.amount_jpy as paid_jpy,
         p.refunds_applied_jpy, p.refunded_jpy as provider_refunded_jpy
    from app.orders o
    join app.payments p on p.order_id = o.id and p.provider = o.provider
                       and p.provider_payment_id = o.provider_payment_id
   where o.status = 'fulfilled'
"""

CHECKS: list[Check] = [
    # -- medals ------------------------------------------------------------------------------
    Check("ledger_sum_equals_balance", "Σ ledger = balance per (fan, VTuber)", """
      select coalesce(b.user_id, l.user_id) as user_id, coalesce(b.vtuber_id, l.vtuber_id) as vtuber_id,
             b.balance, l.total
        from app.medal_balances b
        full join (select user_id, vtuber_id, sum(delta) as total from app.medal_ledger
                    group by 1, 2) l on l.user_id = b.user_id and l.vtuber_id = b.vtuber_id
       where coalesce(b.balance, 0) <> coalesce(l.total, 0)"""),
    Check("no_negative_balance", "no balance and no ledger entry below zero", """
      select 'balance' as what, user_id, vtuber_id, balance as value from app.medal_balances where balance < 0
      union all
      select 'ledger', user_id, vtuber_id, new_balance from app.medal_ledger where new_balance < 0"""),
    Check("ledger_chain", "each ledger entry starts where the account's previous one ended", """
      select id, user_id, vtuber_id, previous_balance, prior
        from (select l.*, coalesce(lag(new_balance) over (partition by user_id, vtuber_id order by id), 0) as prior
                from app.medal_ledger l) x
       where previous_balance <> prior or new_balance <> previous_balance + delta"""),
    # -- orders and fulfilment -----------------------------------------------------------------
    Check("fulfilled_exactly_once",
          "a fulfilled order has pull_count pulls and rewards, one pull grant of its medals", """
      select o.id as order_id, o.pull_count, o.medals,
             (select count(*) from app.pulls p where p.order_id = o.id) as pulls,
             (select count(*) from app.user_rewards r join app.pulls p on p.id = r.pull_id
               where p.order_id = o.id) as rewards,
             (select count(*) from app.medal_ledger l where l.order_id = o.id and l.reason = 'pull_grant') as grants,
             (select coalesce(sum(delta), 0) from app.medal_ledger l
               where l.order_id = o.id and l.reason = 'pull_grant') as granted
        from app.orders o
       where o.status = 'fulfilled'
         and ((select count(*) from app.pulls p where p.order_id = o.id) <> o.pull_count
              or (select count(*) from app.user_rewards r join app.pulls p on p.id = r.pull_id
                   where p.order_id = o.id) <> o.pull_count
              or (select count(*) from app.medal_ledger l
                   where l.order_id = o.id and l.reason = 'pull_grant') <> case when o.medals > 0 then 1 else 0 end
              or (select coalesce(sum(delta), 0) from app.medal_ledger l
                   where l.order_id = o.id and l.reason = 'pull_grant') <> o.medals
              or o.paid_at is null or o.provider_payment_id is null)"""),
    Check("no_pulls_without_payment", "an order that is not fulfilled has no pull, reward, medal or refund", """
      select o.id as order_id, o.status,
             (select count(*) from app.pulls p where p.order_id = o.id) as pulls,
             (select count(*) from app.medal_ledger l where l.order_id = o.id) as ledger_entries,
             o.refunded_jpy
        from app.orders o
       where o.status <> 'fulfilled'
         and (exists (select 1 from app.pulls p where p.order_id = o.id)
              or exists (select 1 from app.medal_ledger l where l.order_id = o.id)
              or o.refunded_jpy <> 0 or o.paid_at is not null)"""),
    Check("one_fulfilment_event",
          "a fulfilled order was fulfilled by exactly one provider event (inbox); others by none", """
      select o.id as order_id, o.status, count(e.*) as fulfilling_events
        from app.orders o
        left join app.payment_events e on e.order_id = o.id and e.outcome = 'fulfilled'
       group by o.id, o.status
      having count(e.*) <> case when o.status = 'fulfilled' then 1 else 0 end
         and (o.status <> 'fulfilled' or exists (select 1 from app.payment_events x where x.order_id = o.id))"""),
    Check("paid_payment_accounted",
          "every payment the provider settled fulfilled its order, or is flagged for a human", """
      select p.order_id, p.provider, p.provider_payment_id, p.status, p.amount_jpy, o.amount_jpy as order_amount,
             o.status as order_status, o.provider_payment_id as order_payment_id
        from app.payments p join app.orders o on o.id = p.order_id
       where p.status in ('paid', 'partially_refunded', 'refunded') and not p.flagged
         and not (o.status = 'fulfilled' and o.provider = p.provider
                  and o.provider_payment_id = p.provider_payment_id
                  and p.amount_jpy = o.amount_jpy and upper(p.currency) = o.currency)"""),
    Check("fulfilled_order_paid", "every fulfilled order has its settled payment row with the snapshot amount", """
      select o.id as order_id, o.provider, o.provider_payment_id, o.amount_jpy
        from app.orders o
       where o.status = 'fulfilled'
         and not exists (select 1 from app.payments p
                          where p.order_id = o.id and p.provider = o.provider
                            and p.provider_payment_id = o.provider_payment_id
                            and p.status in ('paid', 'partially_refunded', 'refunded')
                            and p.amount_jpy = o.amount_jpy and upper(p.currency) = o.currency)"""),
    Check("reservations_only_pending", "only pending orders hold reservations", """
      select x.order_id, o.status, x.counter_id, x.quantity
        from app.order_reservations x join app.orders o on o.id = x.order_id
       where o.status <> 'pending'"""),
    # -- stock and caps ----------------------------------------------------------------------------
    Check("item_stock_bounds", "item stock: 0 ≤ remaining = stock − drawn; shards + reserved + drawn = stock", """
      select i.id as item_id, i.stock, i.stock_remaining, d.drawn, s.remaining as shard_remaining, r.reserved
        from app.gacha_items i
        left join lateral (select count(*) as drawn from app.pulls p where p.gacha_item_id = i.id) d on true
        left join lateral (select sum(remaining) as remaining, count(*) as n from app.stock_shards s
                            where s.counter_id = i.id) s on true
        left join lateral (select coalesce(sum(quantity), 0) as reserved from app.order_reservations x
                            where x.counter_id = i.id) r on true
       where i.stock is not null
         and (i.stock_remaining < 0 or i.stock_remaining > i.stock or i.stock_remaining <> i.stock - d.drawn
              or (s.n > 0 and s.remaining + r.reserved + d.drawn <> i.stock))"""),
    Check("pull_cap_bounds", "total-pull cap: drawn ≤ cap; shards + reserved + drawn = cap", """
      select g.id as gacha_id, g.total_pull_cap, d.drawn, s.remaining as shard_remaining, r.reserved
        from app.gachas g
        left join lateral (select count(*) as drawn from app.pulls p where p.gacha_id = g.id) d on true
        left join lateral (select sum(remaining) as remaining, count(*) as n from app.stock_shards s
                            where s.counter_id = g.id) s on true
        left join lateral (select coalesce(sum(quantity), 0) as reserved from app.order_reservations x
                            where x.counter_id = g.id) r on true
       where g.total_pull_cap is not null
         and (d.drawn > g.total_pull_cap or (s.n > 0 and s.remaining + r.reserved + d.drawn <> g.total_pull_cap))"""),
    Check("shards_non_negative", "no capacity shard below zero", """
      select counter_id, shard, remaining from app.stock_shards where remaining < 0"""),
    Check("exchange_stock_non_negative", "exchange items: stock never below zero", """
      select id as exchange_item_id, total_stock from app.exchange_items where total_stock < 0"""),
    Check("exchange_limits", "per-fan lifetime and JST-daily exchange limits hold", """
      select e.user_id, e.exchange_item_id, 'lifetime' as which, sum(e.quantity) as exchanged, i.per_fan_limit as lim
        from app.exchanges e join app.exchange_items i on i.id = e.exchange_item_id
       where i.per_fan_limit is not null
       group by e.user_id, e.exchange_item_id, i.per_fan_limit having sum(e.quantity) > i.per_fan_limit
      union all
      select e.user_id, e.exchange_item_id, 'daily ' || e.jst_date, sum(e.quantity), i.per_fan_daily_limit
        from app.exchanges e join app.exchange_items i on i.id = e.exchange_item_id
       where i.per_fan_daily_limit is not null
       group by e.user_id, e.exchange_item_id, e.jst_date, i.per_fan_daily_limit
      having sum(e.quantity) > i.per_fan_daily_limit"""),
    Check("exchange_exactly_once", "an exchange has one debit of its medals and one reward per unit", """
      select e.id as exchange_id, e.quantity, e.medals_spent,
             (select coalesce(sum(-delta), 0) from app.medal_ledger l where l.exchange_id = e.id) as debited,
             (select count(*) from app.user_rewards r where r.exchange_id = e.id) as rewards
        from app.exchanges e
       where (select count(*) from app.medal_ledger l where l.exchange_id = e.id and l.reason = 'exchange') <> 1
          or (select coalesce(sum(-delta), 0) from app.medal_ledger l where l.exchange_id = e.id) <> e.medals_spent
          or (select count(*) from app.user_rewards r where r.exchange_id = e.id) <> e.quantity
          or e.medals_spent <> e.quantity * (select medal_cost from app.exchange_items i
                                               where i.id = e.exchange_item_id)
          or e.vtuber_id <> (select vtuber_id from app.exchange_items i where i.id = e.exchange_item_id)"""),
    # -- refunds -------------------------------------------------------------------------------------
    Check("refund_within_payment", "Σ refunds ≤ payment, and the order's refunded amount is the sum of its refunds", """
      select o.id as order_id, o.amount_jpy, o.refunded_jpy,
             (select coalesce(sum(amount_jpy), 0) from app.refunds r
               where r.order_id = o.id and r.status = 'completed') as completed
        from app.orders o
       where o.refunded_jpy > o.amount_jpy
          or o.refunded_jpy <> (select coalesce(sum(amount_jpy), 0) from app.refunds r
                                 where r.order_id = o.id and r.status = 'completed')
      union all
      select p.order_id, p.amount_jpy, p.refunds_applied_jpy, null
        from app.payments p where p.refunds_applied_jpy > coalesce(p.amount_jpy, 0)"""),
    Check("refund_voids_pulls",
          "a refunded order's rewards are revoked and its medals clawed back or recorded short", """
      select o.id as order_id, o.medals,
             (select count(*) from app.user_rewards u join app.pulls p on p.id = u.pull_id
               where p.order_id = o.id and u.revoked_at is null) as live_rewards,
             (select coalesce(sum(medals_clawed_back + medal_shortfall), 0) from app.refunds r
               where r.order_id = o.id and r.status = 'completed') as clawed_or_short,
             (select coalesce(sum(-delta), 0) from app.medal_ledger l
               where l.order_id = o.id and l.reason = 'refund_clawback') as clawed_in_ledger,
             (select coalesce(sum(medals_clawed_back), 0) from app.refunds r where r.order_id = o.id) as clawed
        from app.orders o
       where o.refunded_jpy > 0
         and ((select count(*) from app.user_rewards u join app.pulls p on p.id = u.pull_id
                where p.order_id = o.id and u.revoked_at is null) > 0
              or (select coalesce(sum(medals_clawed_back + medal_shortfall), 0) from app.refunds r
                   where r.order_id = o.id and r.status = 'completed') <> o.medals
              or (select coalesce(sum(-delta), 0) from app.medal_ledger l
                   where l.order_id = o.id and l.reason = 'refund_clawback')
                 <> (select coalesce(sum(medals_clawed_back), 0) from app.refunds r where r.order_id = o.id))"""),
    Check("no_download_after_revocation", "≤ 3 downloads per reward per JST day, none after the reward was revoked", """
      select d.user_reward_id, d.jst_date, count(*) as downloads, 'over_limit' as why
        from app.downloads d group by d.user_reward_id, d.jst_date having count(*) > 3
      union all
      select d.user_reward_id, d.jst_date, 1, 'after_revocation'
        from app.downloads d join app.user_rewards u on u.id = d.user_reward_id
       where u.revoked_at is not null and d.created_at > u.revoked_at
      union all
      select d.user_reward_id, d.jst_date, 1, 'not_the_owner'
        from app.downloads d join app.user_rewards u on u.id = d.user_reward_id
       where d.user_id <> u.user_id"""),
    Check("disputes_flag_orders", "every dispute flags its order", """
      select d.provider_dispute_id, d.order_id from app.disputes d join app.orders o on o.id = d.order_id
       where not o.disputed"""),
    # -- audit -----------------------------------------------------------------------------------
    Check("audit_chain", "the audit log's hash chain recomputes row by row", """
      select id, prev_hash, expected_prev, hash, expected_hash
        from (select a.id, a.prev_hash, a.hash,
                     lag(a.hash) over (order by a.id) as expected_prev,
                     encode(sha256(convert_to(concat_ws('|', coalesce(a.prev_hash, ''), a.id::text,
                       to_char(a.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       coalesce(a.actor::text, ''), a.action, coalesce(a.target_type, ''),
                       coalesce(a.target_id, ''), coalesce(a.details, '{}'::jsonb)::text), 'UTF8')), 'hex')
                       as expected_hash
                from app.audit_log a) x
       where prev_hash is distinct from expected_prev or hash is distinct from expected_hash"""),
    # -- the books -------------------------------------------------------------------------------
    Check("books_balance", "yen received − refunded (inbox) = Σ paid orders − Σ refunded_jpy", f"""
      select received, refunded_to_fans, orders_paid, orders_refunded
        from (select coalesce(sum(paid_jpy), 0) as received,
                     coalesce(sum(refunds_applied_jpy), 0) as refunded_to_fans,
                     coalesce(sum(amount_jpy), 0) as orders_paid,
                     coalesce(sum(refunded_jpy), 0) as orders_refunded,
                     count(*) as n
                from ({_FULFILLING}) f) b
       where received - refunded_to_fans <> orders_paid - orders_refunded
          or n <> (select count(*) from app.orders where status = 'fulfilled')"""),
    # -- the sales rollups (kept by a scheduled job) ----------------------------------------------
    Check("rollups_equal_base_tables",
          "up to the rollups' watermark, sales per JST day and gacha equal orders, refunds and disputes", """
      with w as (select through from app.rollup_state),
      paid as (
        select (o.fulfilled_at at time zone 'Asia/Tokyo')::date as d, o.gacha_id, count(*) as n,
               sum(o.pull_count) as pulls, sum(o.amount_jpy) as gross
          from app.orders o join app.medal_ledger l on l.order_id = o.id and l.reason = 'pull_grant', w
         where l.created_at < w.through group by 1, 2),
      ref as (
        select (f.completed_at at time zone 'Asia/Tokyo')::date as d, o.gacha_id, sum(f.amount_jpy) as amt
          from app.refunds f join app.orders o on o.id = f.order_id, w
         where f.status = 'completed' and f.completed_at < w.through group by 1, 2),
      cb as (
        select (x.first_at at time zone 'Asia/Tokyo')::date as d, o.gacha_id, sum(o.amount_jpy) as amt
          from (select order_id, min(created_at) as first_at from app.disputes group by 1) x
          join app.orders o on o.id = x.order_id, w
         where x.first_at < w.through group by 1, 2),
      expected as (
        select k.d, k.gacha_id, coalesce(p.n, 0) as paid_orders, coalesce(p.pulls, 0) as pulls,
               coalesce(p.gross, 0) as gross_jpy, coalesce(r.amt, 0) as refunds_jpy,
               coalesce(c.amt, 0) as chargebacks_jpy
          from (select d, gacha_id from paid union select d, gacha_id from ref union select d, gacha_id from cb) k
          left join paid p using (d, gacha_id) left join ref r using (d, gacha_id) left join cb c using (d, gacha_id))
      select coalesce(e.d, s.jst_date) as jst_date, coalesce(e.gacha_id, s.gacha_id) as gacha_id,
             row(e.paid_orders, e.pulls, e.gross_jpy, e.refunds_jpy, e.chargebacks_jpy)::text as expected,
             row(s.paid_orders, s.pulls, s.gross_jpy, s.refunds_jpy, s.chargebacks_jpy)::text as rolled_up
        from expected e full join app.sales_daily s on s.jst_date = e.d and s.gacha_id = e.gacha_id
       where (e.paid_orders, e.pulls, e.gross_jpy, e.refunds_jpy, e.chargebacks_jpy)
             is distinct from (s.paid_orders, s.pulls, s.gross_jpy, s.refunds_jpy, s.chargebacks_jpy)"""),
    Check("rollup_details_equal_base_tables",
          "up to the watermark, pulls per item, sales and first payments per fan, medal flows and exchanges per "
          "JST day equal pulls, orders, the ledger and exchanges", """
      with w as (select through from app.rollup_state),
      g as (
        select o.id, o.vtuber_id, o.user_id, o.amount_jpy, (o.fulfilled_at at time zone 'Asia/Tokyo')::date as d
          from app.orders o join app.medal_ledger l on l.order_id = o.id and l.reason = 'pull_grant', w
         where l.created_at < w.through),
      item_pulls as (
        select 'item_pulls_daily' as rollup, k as key, e.v as expected, r.v as rolled_up
          from (select g.d || ' ' || p.gacha_item_id as k,
                       row(count(*) filter (where not p.pity), count(*) filter (where p.pity))::text as v
                  from g join app.pulls p on p.order_id = g.id group by g.d, p.gacha_item_id) e
          full join (select jst_date || ' ' || gacha_item_id as k, row(pulls, pity_pulls)::text as v
                       from app.item_pulls_daily) r using (k)
         where e.v is distinct from r.v),
      fan_sales as (
        select 'fan_sales_daily', k, e.v, r.v
          from (select g.vtuber_id || ' ' || g.d || ' ' || g.user_id as k,
                       row(count(*), sum(g.amount_jpy))::text as v from g group by g.vtuber_id, g.d, g.user_id) e
          full join (select vtuber_id || ' ' || jst_date || ' ' || user_id as k, row(paid_orders, gross_jpy)::text as v
                       from app.fan_sales_daily) r using (k)
         where e.v is distinct from r.v),
      medals as (
        select 'medals_daily', k, e.v, r.v
          from (select l.vtuber_id || ' ' || (l.created_at at time zone 'Asia/Tokyo')::date as k,
                       row(coalesce(sum(l.delta) filter (where l.reason = 'pull_grant'), 0),
                           coalesce(-sum(l.delta) filter (where l.reason = 'exchange'), 0),
                           coalesce(-sum(l.delta) filter (where l.reason = 'refund_clawback'), 0),
                           coalesce(sum(l.delta) filter (where l.reason = 'admin_adjustment'), 0))::text as v
                  from app.medal_ledger l, w where l.created_at < w.through group by 1) e
          full join (select vtuber_id || ' ' || jst_date as k, row(granted, spent, clawed_back, adjusted)::text as v
                       from app.medals_daily) r using (k)
         where e.v is distinct from r.v),
      exchanges as (
        select 'exchanges_daily', k, e.v, r.v
          from (select x.jst_date || ' ' || x.exchange_item_id as k,
                       row(count(*), sum(x.quantity), sum(x.medals_spent))::text as v
                  from app.exchanges x, w where x.created_at < w.through group by x.jst_date, x.exchange_item_id) e
          full join (select jst_date || ' ' || exchange_item_id as k, row(exchanges, quantity, medals_spent)::text as v
                       from app.exchanges_daily) r using (k)
         where e.v is distinct from r.v)
      select * from item_pulls union all select * from fan_sales union all select * from medals
      union all select * from exchanges"""),
    # The reports sum these per-day counts instead of counting distinct fans; the job keeps them
    # beside the (VTuber, day, fan) rows, so they must agree with those rows exactly.
    Check("fan_counts_equal_rollup_details",
          "paying, new and last-day fan counts per VTuber and day, and per day on the platform, equal the "
          "(VTuber, day, fan) rows", """
      with spans as (
        select vtuber_id, user_id, min(jst_date) as lo, max(jst_date) as hi from app.fan_sales_daily group by 1, 2),
      per_vtuber as (
        select 'fan_counts_daily' as rollup, k as key, e.v as expected, r.v as rolled_up
          from (select vtuber_id || ' ' || d as k, row(sum(p), sum(n), sum(l))::text as v
                  from (select vtuber_id, jst_date as d, 1 as p, 0 as n, 0 as l from app.fan_sales_daily
                        union all select vtuber_id, lo, 0, 1, 0 from spans
                        union all select vtuber_id, hi, 0, 0, 1 from spans) x group by vtuber_id, d) e
          full join (select vtuber_id || ' ' || jst_date as k, row(paying_fans, new_fans, last_fans)::text as v
                       from app.fan_counts_daily where (paying_fans, new_fans, last_fans) <> (0, 0, 0)) r using (k)
         where e.v is distinct from r.v),
      platform as (
        select 'platform_fan_counts_daily', k, e.v, r.v
          from (select d::text as k, row(count(distinct u) filter (where p = 1), count(distinct u) filter (where n = 1),
                                         count(distinct u) filter (where l = 1))::text as v
                  from (select jst_date as d, user_id as u, 1 as p, 0 as n, 0 as l from app.fan_sales_daily
                        union all select min(lo), user_id, 0, 1, 0 from spans group by user_id
                        union all select max(hi), user_id, 0, 0, 1 from spans group by user_id) x group by d) e
          full join (select jst_date::text as k, row(paying_users, new_users, last_users)::text as v
                       from app.platform_fan_counts_daily where (paying_users, new_users, last_users) <> (0, 0, 0)) r
               using (k)
         where e.v is distinct from r.v)
      select * from per_vtuber union all select * from platform"""),
    # Past windows' unique paying fans are sums over these (paid day, previous paid day) counts.
    Check("fan_gaps_equal_rollup_details",
          "fans (per VTuber) and users (platform) by paid JST day and previous paid day equal the "
          "(VTuber, day, fan) rows, per VTuber and per user", """
      with per_vtuber as (
        select 'fan_gaps_daily' as rollup, k as key, e.v as expected, r.v as rolled_up
          from (select vtuber_id || ' ' || jst_date || ' ' || prev as k, count(*)::text as v
                  from (select vtuber_id, jst_date,
                               coalesce(lag(jst_date) over (partition by vtuber_id, user_id order by jst_date),
                                        '-infinity') as prev
                          from app.fan_sales_daily) x group by vtuber_id, jst_date, prev) e
          full join (select vtuber_id || ' ' || jst_date || ' ' || prev_jst_date as k, fans::text as v
                       from app.fan_gaps_daily where fans <> 0) r using (k)
         where e.v is distinct from r.v),
      platform as (
        select 'platform_fan_gaps_daily', k, e.v, r.v
          from (select jst_date || ' ' || prev as k, count(*)::text as v
                  from (select jst_date, coalesce(lag(jst_date) over (partition by user_id order by jst_date),
                                                  '-infinity') as prev
                          from (select distinct user_id, jst_date from app.fan_sales_daily) d) x
                 group by jst_date, prev) e
          full join (select jst_date || ' ' || prev_jst_date as k, users::text as v
                       from app.platform_fan_gaps_daily where users <> 0) r using (k)
         where e.v is distinct from r.v)
      select * from per_vtuber union all select * from platform"""),
    # The admin KPIs read the rate audit the job keeps; it must be the test of the draws it counted.
    Check("rate_audits_equal_rollup_details",
          "all-time draws per item equal the per-day pulls, and each gacha's kept rate audit is Pearson's "
          "test of those draws against its item odds", """
      with per_item as (
        select gacha_item_id, gacha_id, sum(pulls) as pulls, sum(pity_pulls) as pity
          from app.item_pulls_daily group by 1, 2),
      draws as (
        select 'item_draws' as rollup, coalesce(e.gacha_item_id, r.gacha_item_id)::text as key,
               row(e.pulls, e.pity)::text as expected, row(r.pulls, r.pity_pulls)::text as rolled_up
          from per_item e full join app.item_draws r using (gacha_item_id)
         where row(e.pulls, e.pity) is distinct from row(r.pulls, r.pity_pulls)),
      cells as (
        select i.gacha_id, n.total,
               coalesce(sum((coalesce(p.pulls, 0) - n.total * i.rate_ppm / 1e6) ^ 2
                            / nullif(n.total * i.rate_ppm / 1e6, 0)), 0)::double precision as statistic,
               count(*)::integer - 1 as df
          from app.gacha_items i
          join (select gacha_id, sum(pulls) as total from per_item group by 1) n on n.gacha_id = i.gacha_id
          left join per_item p on p.gacha_item_id = i.id
         group by 1, 2),
      audits as (
        select 'rate_audits', coalesce(e.gacha_id, r.gacha_id)::text,
               row(e.total, e.statistic,
                   case when e.total > 0 then private.chi_square_p_value(e.statistic, e.df) end)::text,
               row(r.draws, r.statistic, r.p_value)::text
          from cells e full join app.rate_audits r using (gacha_id)
         where e.total is distinct from r.draws
            or not abs(e.statistic - r.statistic) <= 1e-9 * greatest(1, abs(e.statistic))
            or r.p_value is distinct from case when e.total > 0 then private.chi_square_p_value(r.statistic, e.df) end)
      select * from draws union all select * from audits"""),
    # The platform's report reads these sums of other rollups' rows; the job keeps them beside those.
    Check("rollup_sums_equal_rollup_rows",
          "sales per (JST day, VTuber) equal the per-gacha rows summed, and pulls per ISO week and item the "
          "per-day rows summed", """
      with vtuber_days as (
        select 'vtuber_sales_daily' as rollup, k as key, e.v as expected, r.v as rolled_up
          from (select jst_date || ' ' || vtuber_id as k,
                       row(sum(paid_orders), sum(pulls), sum(gross_jpy), sum(provider_fees_jpy), sum(refund_count),
                           sum(refunds_jpy), sum(chargeback_count), sum(chargebacks_jpy))::text as v
                  from app.sales_daily group by jst_date, vtuber_id) e
          full join (select jst_date || ' ' || vtuber_id as k,
                            row(paid_orders, pulls, gross_jpy, provider_fees_jpy, refund_count, refunds_jpy,
                                chargeback_count, chargebacks_jpy)::text as v
                       from app.vtuber_sales_daily) r using (k)
         where e.v is distinct from r.v),
      weeks as (
        select 'item_pulls_weekly', k, e.v, r.v
          from (select (jst_date - (extract(isodow from jst_date)::integer - 1)) || ' ' || gacha_item_id as k,
                       row(sum(pulls), sum(pity_pulls))::text as v
                  from app.item_pulls_daily group by 1) e
          full join (select week_start || ' ' || gacha_item_id as k, row(pulls, pity_pulls)::text as v
                       from app.item_pulls_weekly) r using (k)
         where e.v is distinct from r.v)
      select * from vtuber_days union all select * from weeks"""),
]


def check(conn) -> list[Violation]:
    """Every invariant against `conn` (a connection that bypasses RLS: `postgres`); [] when all hold."""
    out: list[Violation] = []
    for c in CHECKS:
        cur = conn.execute(c.sql)
        cols = [d.name for d in cur.description]
        for row in cur.fetchall():
            out.append(Violation(c.name, dict(zip(cols, row, strict=True))))
    return out


FIGURES_SQL = f"""
select
  (select count(*) from app.orders) as orders,
  (select count(*) from app.orders where status = 'fulfilled') as orders_fulfilled,
  (select count(*) from app.orders where status = 'pending') as orders_pending,
  (select count(*) from app.orders where status in ('failed', 'canceled', 'expired')) as orders_failed_or_expired,
  (select count(*) from app.pulls) as pulls,
  (select count(*) from app.medal_ledger) as ledger_entries,
  (select coalesce(sum(balance), 0) from app.medal_balances) as medals_outstanding,
  (select count(*) from app.exchanges) as exchanges,
  (select count(*) from app.user_rewards) as rewards,
  (select count(*) from app.user_rewards where revoked_at is not null) as rewards_revoked,
  (select count(*) from app.downloads) as downloads,
  (select count(*) from app.refunds where status = 'completed') as refunds_completed,
  (select count(*) from app.refunds where status = 'rejected') as refunds_rejected,
  (select count(*) from app.disputes) as disputes,
  (select count(*) from app.payment_events) as payment_events,
  (select count(*) from app.payments where flagged) as payments_flagged,
  (select coalesce(sum(paid_jpy), 0) from ({_FULFILLING}) f) as yen_received,
  (select coalesce(sum(refunds_applied_jpy), 0) from ({_FULFILLING}) f) as yen_refunded,
  (select coalesce(sum(amount_jpy), 0) from app.payments where flagged) as yen_flagged_for_review,
  (select count(*) from app.audit_log) as audit_rows,
  (select count(*) from app.gachas where status = 'published') as gachas_published
"""


def figures(conn) -> dict:
    cur = conn.execute(FIGURES_SQL)
    return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))
