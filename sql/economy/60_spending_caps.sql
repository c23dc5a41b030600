-- Minors' spending caps (DESIGN.md section 4): the caps live in app.spending_caps; create_order
-- calls private.check_spending_cap(user, amount, now) before it inserts the order.
-- Counted: the fan's orders created in the same JST day / JST month that are pending (and not
-- past their expiry) or fulfilled (net of refunds). Expired, failed and canceled orders do not count.

revoke all on app.spending_caps from public, anon, authenticated, service_role;
grant select on app.spending_caps to anon, authenticated, service_role;
drop policy if exists "Anyone can read the spending caps" on app.spending_caps;
create policy "Anyone can read the spending caps" on app.spending_caps
  for select to anon, authenticated using (true);

-- Age in whole years on the JST calendar date of p_now.
create or replace function private.jst_age(p_birth_date date, p_now timestamptz) returns integer
language sql immutable
set search_path = ''
as $$
  select extract(year from age((p_now at time zone 'Asia/Tokyo')::date, p_birth_date))::integer
$$;
comment on function private.jst_age(date, timestamptz) is 'Age in whole years on the JST date of p_now.';
revoke all on function private.jst_age(date, timestamptz) from public;
grant execute on function private.jst_age(date, timestamptz) to anon, authenticated, service_role;

-- The check itself takes the birth date its caller has already read (create_order reads the
-- fan's profile row for its own checks; reading it again here was a second lookup per order).
create or replace function private.check_spending_cap(p_user uuid, p_birth_date date, p_amount integer,
                                                      p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_birth date := p_birth_date;
  v_age integer;
  v_cap app.spending_caps;
  v_day_start timestamptz := (date_trunc('day', p_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_month_start timestamptz := (date_trunc('month', p_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_spent_day bigint;
  v_spent_month bigint;
  v_left_day bigint;
  v_left_month bigint;
begin
  if v_birth is null then
    raise exception using errcode = 'PT422', message = 'birth_date_required',
      detail = 'set your birth date (update_my_profile) before the first purchase';
  end if;
  v_age := private.jst_age(v_birth, p_now);
  select * into v_cap from app.spending_caps c where v_age between c.min_age and c.max_age;
  if not found then
    return;  -- adults are not capped
  end if;
  if v_cap.daily_cap_jpy = 0 and v_cap.monthly_cap_jpy = 0 then
    raise exception using errcode = 'PT422', message = 'minor_under_13_cannot_purchase',
      detail = format('fans aged %s to %s cannot buy', v_cap.min_age, v_cap.max_age);
  end if;
  -- One minor's orders are checked one at a time, so two concurrent orders cannot both fit
  -- in the same remaining allowance (the second waits, then sees the first).
  perform pg_advisory_xact_lock(hashtextextended('koepon.spending_cap:' || p_user::text, 0));
  select coalesce(sum(o.amount_jpy - o.refunded_jpy) filter (where o.created_at >= v_day_start), 0),
         coalesce(sum(o.amount_jpy - o.refunded_jpy), 0)
    into v_spent_day, v_spent_month
    from app.orders o
   where o.user_id = p_user
     and o.created_at >= v_month_start and o.created_at < v_month_start + interval '1 month'
     and (o.status = 'fulfilled' or (o.status = 'pending' and o.expires_at > p_now));
  v_left_day := greatest(v_cap.daily_cap_jpy - v_spent_day, 0);
  v_left_month := greatest(v_cap.monthly_cap_jpy - v_spent_month, 0);
  if p_amount > least(v_left_day, v_left_month) then
    raise exception using errcode = 'PT422', message = 'spending_cap_exceeded',
      detail = format('fans aged %s to %s may spend ¥%s a day and ¥%s a month: ¥%s left today, ¥%s left this month, '
                      'so ¥%s remaining; this order is ¥%s',
                      v_cap.min_age, v_cap.max_age, v_cap.daily_cap_jpy, v_cap.monthly_cap_jpy, v_left_day,
                      v_left_month, least(v_left_day, v_left_month), p_amount),
      hint = jsonb_build_object('remaining_jpy', least(v_left_day, v_left_month), 'remaining_today_jpy', v_left_day,
                                'remaining_this_month_jpy', v_left_month, 'daily_cap_jpy', v_cap.daily_cap_jpy,
                                'monthly_cap_jpy', v_cap.monthly_cap_jpy)::text;
  end if;
end
$$;
comment on function private.check_spending_cap(uuid, date, integer, timestamptz) is
  'Minors'' caps from app.spending_caps (age from p_birth_date, the fan''s profile as the caller read it) '
  'against the fan''s pending and fulfilled orders of the JST day and month (p_now); raises birth_date_required, '
  'minor_under_13_cannot_purchase, spending_cap_exceeded (PT422, remaining yen in the detail and as JSON in the '
  'hint). Called by private.create_order (a definer), so it needs no privileges of its own.';
revoke all on function private.check_spending_cap(uuid, date, integer, timestamptz) from public;

-- The same check reading the fan's birth date itself.
create or replace function private.check_spending_cap(p_user uuid, p_amount integer, p_now timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.check_spending_cap(p_user, (select p.birth_date from app.profiles p where p.user_id = p_user),
                                     p_amount, p_now);
end
$$;
comment on function private.check_spending_cap(uuid, integer, timestamptz) is
  'private.check_spending_cap with the fan''s birth date read from app.profiles.';
revoke all on function private.check_spending_cap(uuid, integer, timestamptz) from public;

create or replace function public.get_my_spending_limits() returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_birth date;
  v_age integer;
  v_cap app.spending_caps;
  v_day_start timestamptz := (date_trunc('day', v_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_month_start timestamptz := (date_trunc('month', v_now at time zone 'Asia/Tokyo')) at time zone 'Asia/Tokyo';
  v_spent_day bigint;
  v_spent_month bigint;
begin
  select p.birth_date into v_birth from app.profiles p where p.user_id = v_uid;
  if v_birth is null then
    return jsonb_build_object('birth_date_set', false, 'capped', null);
  end if;
  v_age := private.jst_age(v_birth, v_now);
  select * into v_cap from app.spending_caps c where v_age between c.min_age and c.max_age;
  if not found then
    return jsonb_build_object('birth_date_set', true, 'capped', false);
  end if;
  select coalesce(sum(o.amount_jpy - o.refunded_jpy) filter (where o.created_at >= v_day_start), 0),
         coalesce(sum(o.amount_jpy - o.refunded_jpy), 0)
    into v_spent_day, v_spent_month
    from app.orders o
   where o.user_id = v_uid and o.created_at >= v_month_start
     and (o.status = 'fulfilled' or (o.status = 'pending' and o.expires_at > v_now));
  return jsonb_build_object(
    'birth_date_set', true, 'capped', true,
    'can_purchase', not (v_cap.daily_cap_jpy = 0 and v_cap.monthly_cap_jpy = 0),
    'daily_cap_jpy', v_cap.daily_cap_jpy, 'monthly_cap_jpy', v_cap.monthly_cap_jpy,
    'spent_today_jpy', v_spent_day, 'spent_this_month_jpy', v_spent_month,
    'remaining_jpy', greatest(least(v_cap.daily_cap_jpy - v_spent_day, v_cap.monthly_cap_jpy - v_spent_month), 0));
end
$$;
comment on function public.get_my_spending_limits() is
  'The caller''s minors'' spending allowance: {birth_date_set, capped, can_purchase, daily_cap_jpy, monthly_cap_jpy, '
  'spent_today_jpy, spent_this_month_jpy, remaining_jpy} (capped false for adults). security invoker: RLS '
  'shows the caller''s own orders and profile. Errors: not_authenticated (PT401), account_suspended (PT403).';
revoke all on function public.get_my_spending_limits() from public, anon;
grant execute on function public.get_my_spending_limits() to authenticated;
