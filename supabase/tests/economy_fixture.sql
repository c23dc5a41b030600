-- The economy test fixture, installed once with helpers.sql into every test database (never by a
-- migration): a fan, an approved VTuber, a published gacha, an exchange item, named ids, and a paid
-- order. pgTAP files and pytest modules call these instead of defining their own.
create schema if not exists econ_test;
grant usage on schema econ_test to anon, authenticated, service_role;

-- A fan with a birth date (adult), returns the user id.
create or replace function econ_test.fan(p_email text, p_birth date default date '1990-01-01') returns uuid
language plpgsql as $$
declare v uuid;
begin
  v := tests.create_user(p_email);
  update app.profiles set birth_date = p_birth where user_id = v;
  return v;
end $$;

-- An approved VTuber, returns app.vtubers.id.
create or replace function econ_test.vtuber(p_email text, p_name text default 'Vee') returns uuid
language plpgsql as $$
declare u uuid; v uuid;
begin
  u := tests.create_user(p_email);
  insert into app.user_roles (user_id, role) values (u, 'vtuber') on conflict do nothing;
  insert into app.vtubers (user_id, name, status, approved_at) values (u, p_name, 'approved', now()) returning id into v;
  return v;
end $$;

-- A published gacha. p_items: [{"name":..,"rarity":..,"rate_ppm":..,"stock":..}, ...] in sort order.
create or replace function econ_test.gacha(
  p_vtuber uuid, p_items jsonb, p_cap integer default null, p_pity_pulls integer default null,
  p_pity_rarity text default null, p_price_single integer default 100, p_price_ten integer default 1000,
  p_medals integer default 10, p_bonus integer default 0
) returns uuid
language plpgsql as $$
declare g uuid; e jsonb; n integer := 0;
begin
  insert into app.gachas (vtuber_id, title, price_single, price_ten, medals_per_pull, ten_pull_bonus_medals,
                          start_at, end_at, total_pull_cap, pity_pulls, pity_rarity)
  values (p_vtuber, 'G', p_price_single, p_price_ten, p_medals, p_bonus, timestamptz '2026-01-01 00:00+00',
          timestamptz '2099-01-01 00:00+00', p_cap, p_pity_pulls, p_pity_rarity)
  returning id into g;
  for e in select x from jsonb_array_elements(p_items) x loop
    insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, stock, content_path, sort_order)
    values (g, e ->> 'name', e ->> 'rarity', (e ->> 'rate_ppm')::integer, (e ->> 'stock')::integer,
            'g/' || (e ->> 'name') || '.png', n);
    n := n + 1;
  end loop;
  update app.gachas set status = 'published' where id = g;
  return g;
end $$;

create or replace function econ_test.exchange_item(
  p_vtuber uuid, p_cost integer, p_stock integer default null, p_limit integer default null,
  p_daily integer default null
) returns uuid
language sql as $$
  insert into app.exchange_items (vtuber_id, name, medal_cost, total_stock, per_fan_limit, per_fan_daily_limit,
                                  content_path)
  values (p_vtuber, 'X', p_cost, p_stock, p_limit, p_daily, 'x/item.png') returning id
$$;

-- Named ids for a test: insert (k, id) pairs, read them back with econ_test.id(k). Each pgTAP file
-- runs in a transaction it rolls back, so the names never leak from one file to the next.
create table if not exists econ_test.ids (k text primary key, v uuid not null);
grant select on econ_test.ids to anon, authenticated, service_role;
create or replace function econ_test.id(p_k text) returns uuid language sql stable as $$ select v from econ_test.ids where k = p_k $$;
grant execute on function econ_test.id(text) to anon, authenticated, service_role;

-- A paid, fulfilled order of fan k for gacha 'g' at time t; returns the order id.
create or replace function econ_test.paid(p_k text, p_n integer, p_key text, p_t timestamptz) returns uuid
language sql as $$
  select (private.fulfill_order(
            (private.create_order(econ_test.id(p_k), econ_test.id('g'), p_n, p_key, p_t, extensions.gen_random_bytes(32), 'cs')
             ->> 'order_id')::uuid,
            'stripe', 'pi_' || p_k || '_' || p_key, p_n * 100, 'JPY', p_t, extensions.gen_random_bytes(32), 'cs')
          ->> 'order_id')::uuid
$$;
