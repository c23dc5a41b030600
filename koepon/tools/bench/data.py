"""Benchmark data, generated with set-based SQL in the benchmark's own throwaway database."""

from __future__ import annotations

# bcrypt of "password123" (cost 4); the benchmark never signs in with it, fans get minted JWTs.
_PW = "$2b$04$qrv22tDirMKE.OiJq8NweuF6RKiF1TsZ4zgeJcDK0i2Set/jRMKt2"

BASE_SQL = """
create schema if not exists bench;
create table if not exists bench.fans (n integer primary key, user_id uuid not null unique);
create table if not exists bench.gachas (n integer primary key, kind text not null, gacha_id uuid not null unique,
                                         vtuber_id uuid not null, item_id uuid, rarity text, content_path text,
                                         rate_version text);
create table if not exists bench.q (n integer primary key, order_id uuid not null, user_id uuid not null,
                                    gacha_id uuid not null);
grant usage on schema bench to anon, authenticated, service_role;
grant select on all tables in schema bench to anon, authenticated, service_role;
"""

USERS_SQL = f"""
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', f.user_id, 'authenticated', 'authenticated',
       %(prefix)s || f.n || '@bench.invalid', '{_PW}', now(),
       '{{"provider":"email","providers":["email"]}}', '{{"birth_date":"1990-01-01"}}', now(), now()
  from {{table}} f where f.n between %(lo)s and %(hi)s
"""

FANS_SQL = """
insert into bench.fans (n, user_id)
select n, gen_random_uuid() from generate_series(%(lo)s::integer, %(hi)s::integer) n on conflict do nothing
"""

# V vtubers, G spread gachas over them (5 items, rates summing to 1,000,000), plus 'hot' (no cap)
# and 'hotcap' (a total-pull cap far above what a run can sell, so the cap counter is live).
CATALOG_SQL = """
create temporary table bench_vt on commit drop as
select n, gen_random_uuid() as user_id, gen_random_uuid() as vtuber_id from generate_series(1, @NV@) n;
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', v.user_id, 'authenticated', 'authenticated',
       'bench-vtuber-' || v.n || '@bench.invalid', 'x', now(), '{"provider":"email"}', '{}', now(), now()
  from bench_vt v;
insert into app.user_roles (user_id, role) select v.user_id, 'vtuber' from bench_vt v on conflict do nothing;
insert into app.vtubers (id, user_id, name, status, approved_at)
select v.vtuber_id, v.user_id, 'Bench VTuber ' || v.n, 'approved', now() from bench_vt v;
insert into bench.gachas (n, kind, gacha_id, vtuber_id)
select g, case when g <= @NG@ then 'spread' when g = @NG@ + 1 then 'hot' else 'hotcap' end,
       gen_random_uuid(), (select v.vtuber_id from bench_vt v where v.n = 1 + (g - 1) % @NV@)
  from generate_series(1, @NG@ + 2) g;
insert into app.gachas (id, vtuber_id, title, start_at, end_at, total_pull_cap)
select b.gacha_id, b.vtuber_id, 'Bench gacha ' || b.n, now() - interval '1 day', now() + interval '30 days',
       case when b.kind = 'hotcap' then 100000000 end
  from bench.gachas b;
insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, content_path, sort_order)
select b.gacha_id, 'Item ' || r.rarity, r.rarity, r.ppm, 'bench/' || b.n || '/' || r.rarity || '.png', r.o
  from bench.gachas b
 cross join (values ('N', 600000, 0), ('R', 250000, 1), ('SR', 100000, 2), ('SSR', 40000, 3), ('UR', 10000, 4))
       as r(rarity, ppm, o);
update app.gachas g set status = 'published', published_at = now()
  from bench.gachas b where b.gacha_id = g.id;
"""
