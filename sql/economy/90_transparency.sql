-- Transparency: observed draws against the published odds, with Pearson's chi-square
-- goodness-of-fit test computed in SQL.
--
-- Statistic: X2 = sum over categories (observed - expected)^2 / expected, expected = n * rate_ppm / 1e6,
-- over the draws made with the published table (pity draws use a restricted table and are
-- reported separately, not tested). Degrees of freedom k - 1 (k categories, all rates > 0).
-- p-value = P(chi2_df >= X2) = Q(df/2, X2/2), Q the regularized upper incomplete gamma function:
--   x < a + 1: Q = 1 - P, P by its power series  P = x^a e^-x / Gamma(a) * sum_n x^n / (a (a+1) ... (a+n));
--   otherwise: Q by its continued fraction (modified Lentz), Numerical Recipes 6.2;
--   ln Gamma by Lanczos (g = 7, 9 terms, ~1e-15 relative error). tests/economy/test_edges_*.py
--   checks it against scipy.stats.chi2.sf. The approximation is reliable when every expected
--   count is at least 5 (reported as min_expected / reliable).

create or replace function private.ln_gamma(p_z double precision) returns double precision
language plpgsql immutable strict
set search_path = ''
as $$
declare
  c constant double precision[] := array[0.99999999999980993, 676.5203681218851, -1259.1392167224028,
    771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7];
  z double precision := p_z;
  x double precision;
  t double precision;
begin
  if z < 0.5 then
    -- reflection: Gamma(z) Gamma(1 - z) = pi / sin(pi z)
    return ln(pi() / abs(sin(pi() * z))) - private.ln_gamma(1 - z);
  end if;
  z := z - 1;
  x := c[1];
  for i in 1 .. 8 loop
    x := x + c[i + 1] / (z + i);
  end loop;
  t := z + 7.5;
  return 0.5 * ln(2 * pi()) + (z + 0.5) * ln(t) - t + ln(x);
end
$$;
comment on function private.ln_gamma(double precision) is 'ln |Gamma(z)| (Lanczos approximation, g = 7, 9 terms).';
revoke all on function private.ln_gamma(double precision) from public;
grant execute on function private.ln_gamma(double precision) to anon, authenticated, service_role;

create or replace function private.gamma_q(p_a double precision, p_x double precision) returns double precision
language plpgsql immutable strict
set search_path = ''
as $$
declare
  eps constant double precision := 1e-15;
  tiny constant double precision := 1e-300;
  v_log_front double precision;
  v_sum double precision;
  v_del double precision;
  v_ap double precision;
  b double precision;
  c double precision;
  d double precision;
  h double precision;
  an double precision;
begin
  if p_a <= 0 or p_x < 0 then
    raise exception using errcode = 'PT400', message = 'invalid_argument', detail = 'gamma_q needs a > 0 and x >= 0';
  end if;
  if p_x = 0 then
    return 1;
  end if;
  v_log_front := -p_x + p_a * ln(p_x) - private.ln_gamma(p_a);
  if p_x < p_a + 1 then
    v_ap := p_a;
    v_sum := 1 / p_a;
    v_del := v_sum;
    for n in 1 .. 100000 loop
      v_ap := v_ap + 1;
      v_del := v_del * p_x / v_ap;
      v_sum := v_sum + v_del;
      exit when abs(v_del) < abs(v_sum) * eps;
    end loop;
    if v_log_front < -700 then
      return 1;
    end if;
    return greatest(0, least(1, 1 - v_sum * exp(v_log_front)));
  end if;
  if v_log_front < -700 then
    return 0;  -- far in the tail: below double precision's useful range
  end if;
  b := p_x + 1 - p_a;
  c := 1 / tiny;
  d := 1 / b;
  h := d;
  for i in 1 .. 100000 loop
    an := -i * (i - p_a);
    b := b + 2;
    d := an * d + b;
    if abs(d) < tiny then d := tiny; end if;
    c := b + an / c;
    if abs(c) < tiny then c := tiny; end if;
    d := 1 / d;
    h := h * d * c;
    exit when abs(d * c - 1) < eps;
  end loop;
  return greatest(0, least(1, exp(v_log_front + ln(h))));
end
$$;
comment on function private.gamma_q(double precision, double precision) is
  'Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a): series for x < a + 1, else continued fraction.';
revoke all on function private.gamma_q(double precision, double precision) from public;
grant execute on function private.gamma_q(double precision, double precision) to anon, authenticated, service_role;

create or replace function private.chi_square_p_value(p_statistic double precision, p_df integer)
returns double precision
language sql immutable strict
set search_path = ''
as $$
  select case when p_df < 1 then null else private.gamma_q(p_df / 2.0, greatest(p_statistic, 0) / 2.0) end
$$;
comment on function private.chi_square_p_value(double precision, integer) is
  'P(chi-square with p_df degrees of freedom >= p_statistic).';
revoke all on function private.chi_square_p_value(double precision, integer) from public;
grant execute on function private.chi_square_p_value(double precision, integer) to anon, authenticated, service_role;

-- Pearson's test over [{expected, observed}, ...] (jsonb array).
create or replace function private.chi_square_test(p_cells jsonb) returns jsonb
language sql immutable strict
set search_path = ''
as $$
  select jsonb_build_object(
    'statistic', s.stat, 'df', s.k - 1,
    'p_value', case when s.n > 0 then private.chi_square_p_value(s.stat, s.k - 1) end,
    'min_expected', s.min_expected,
    'reliable', s.n > 0 and s.k > 1 and s.min_expected >= 5)
  from (select count(*)::integer as k, coalesce(sum((c ->> 'observed')::double precision), 0) as n,
               coalesce(sum(((c ->> 'observed')::double precision - (c ->> 'expected')::double precision) ^ 2
                            / nullif((c ->> 'expected')::double precision, 0)), 0) as stat,
               min((c ->> 'expected')::double precision) as min_expected
        from jsonb_array_elements(p_cells) c) s
$$;
comment on function private.chi_square_test(jsonb) is
  'Pearson chi-square goodness of fit over cells {expected, observed}: {statistic, df, p_value, min_expected, reliable}.';
revoke all on function private.chi_square_test(jsonb) from public;
grant execute on function private.chi_square_test(jsonb) to anon, authenticated, service_role;

-- Draw counts per item of a published or ended gacha. Anonymous callers count through RLS
-- (the policy and column grants below: no user, seed or roll is visible); signed-in callers,
-- whose table grant on app.pulls covers every column and whose policy shows only their own
-- pulls, count through this definer (which anon cannot execute).
grant select (gacha_id, gacha_item_id, rarity, pity) on app.pulls to anon;
drop policy if exists "Anyone can count the draws of disclosed gachas" on app.pulls;
create policy "Anyone can count the draws of disclosed gachas" on app.pulls
  for select to anon using (exists (select 1 from app.gachas g where g.id = gacha_id));

create or replace function private.gacha_draw_counts(p_gacha_id uuid)
returns table (gacha_item_id uuid, pity boolean, draws bigint)
language sql stable security definer
set search_path = ''
as $$
  select p.gacha_item_id, p.pity, count(*)
  from app.pulls p
  where p.gacha_id = p_gacha_id
    and exists (select 1 from app.gachas g where g.id = p_gacha_id and g.status in ('published', 'ended'))
  group by p.gacha_item_id, p.pity
$$;
comment on function private.gacha_draw_counts(uuid) is
  'security definer: draw counts per item (and pity flag) of a published or ended gacha, for signed-in callers, '
  'whose RLS shows only their own pulls; no user, seed or roll leaves it.';
revoke all on function private.gacha_draw_counts(uuid) from public;
grant execute on function private.gacha_draw_counts(uuid) to authenticated, service_role;

create or replace function public.get_rate_audit(p_gacha_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_gacha record;
  v_counts jsonb;
  v_items jsonb;
  v_rarities jsonb;
  v_n bigint;
  v_pity bigint;
begin
  select g.id, g.title, g.status into v_gacha from public.gachas g where g.id = p_gacha_id;
  if v_gacha.id is null then
    raise exception using errcode = 'PT404', message = 'gacha_not_found',
      detail = 'no published or ended gacha with this id';
  end if;
  if current_user = 'anon' then
    select coalesce(jsonb_agg(jsonb_build_array(c.gacha_item_id, c.pity, c.draws)), '[]') into v_counts
    from (select p.gacha_item_id, p.pity, count(*) as draws from app.pulls p
          where p.gacha_id = p_gacha_id group by 1, 2) c;
  else
    select coalesce(jsonb_agg(jsonb_build_array(c.gacha_item_id, c.pity, c.draws)), '[]') into v_counts
    from private.gacha_draw_counts(p_gacha_id) c;
  end if;
  with counts as (
    select (e ->> 0)::uuid as item_id, (e ->> 1)::boolean as pity, (e ->> 2)::bigint as draws
    from jsonb_array_elements(v_counts) e)
  select coalesce(sum(draws) filter (where not pity), 0), coalesce(sum(draws) filter (where pity), 0)
    into v_n, v_pity from counts;
  with counts as (
    select (e ->> 0)::uuid as item_id, (e ->> 1)::boolean as pity, (e ->> 2)::bigint as draws
    from jsonb_array_elements(v_counts) e),
  items as (
    select i.id, i.name, i.rarity, i.rarity_rank, i.rate_ppm, i.sort_order,
           coalesce((select sum(c.draws) from counts c where c.item_id = i.id and not c.pity), 0) as observed,
           coalesce((select sum(c.draws) from counts c where c.item_id = i.id and c.pity), 0) as pity_observed
    from public.gacha_items i where i.gacha_id = p_gacha_id)
  select jsonb_agg(jsonb_build_object(
           'gacha_item_id', i.id, 'name', i.name, 'rarity', i.rarity, 'rate_ppm', i.rate_ppm,
           'odds_percent', round(i.rate_ppm / 10000.0, 4), 'expected', round(v_n * i.rate_ppm / 1e6, 6),
           'observed', i.observed,
           'observed_percent', case when v_n > 0 then round(100.0 * i.observed / v_n, 4) end,
           'pity_draws', i.pity_observed)
         order by i.rarity_rank desc, i.sort_order, i.name),
         (select jsonb_agg(jsonb_build_object(
                   'rarity', r.rarity, 'rate_ppm', r.rate_ppm, 'odds_percent', round(r.rate_ppm / 10000.0, 4),
                   'expected', round(v_n * r.rate_ppm / 1e6, 6), 'observed', r.observed,
                   'observed_percent', case when v_n > 0 then round(100.0 * r.observed / v_n, 4) end,
                   'pity_draws', r.pity_observed)
                 order by r.rank desc)
          from (select x.rarity, max(x.rarity_rank) as rank, sum(x.rate_ppm) as rate_ppm, sum(x.observed) as observed,
                       sum(x.pity_observed) as pity_observed
                from items x group by x.rarity) r)
    into v_items, v_rarities
  from items i;
  return jsonb_build_object(
    'gacha_id', v_gacha.id, 'title', v_gacha.title, 'status', v_gacha.status,
    'draws', v_n, 'pity_draws', v_pity,
    'by_rarity', coalesce(v_rarities, '[]'), 'by_item', coalesce(v_items, '[]'),
    'rarity_test', private.chi_square_test(coalesce(v_rarities, '[]')),
    'item_test', private.chi_square_test(coalesce(v_items, '[]')),
    'method', 'Pearson chi-square of non-pity draws against the published rates; p_value = Q(df/2, statistic/2)');
end
$$;
comment on function public.get_rate_audit(uuid) is
  'Anyone: a published or ended gacha''s observed draws against its published odds, per rarity and per item '
  '(expected, observed, percent; pity draws counted apart), with Pearson chi-square tests {statistic, df, '
  'p_value, min_expected, reliable}. security invoker: anon counts through RLS, signed-in callers through '
  'private.gacha_draw_counts. Errors: gacha_not_found (PT404).';
revoke all on function public.get_rate_audit(uuid) from public, anon, authenticated, service_role;
grant execute on function public.get_rate_audit(uuid) to anon, authenticated, service_role;
