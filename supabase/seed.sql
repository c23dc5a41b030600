-- Local demo data (never on hosted Supabase). The logins are the ones `koepon up` prints.
--
-- Fixed ids, for other seeds and tests to reference:
--   users (auth.users.id = app.profiles.user_id)
--     00000000-0000-4000-a000-000000000001  admin@koepon.local      admin      koepon-admin-pass
--     00000000-0000-4000-a000-000000000002  hoshi@koepon.local      VTuber     koepon-vtuber-pass
--     00000000-0000-4000-a000-000000000003  luna@koepon.local       VTuber     koepon-vtuber-pass
--     00000000-0000-4000-a000-000000000004  applicant@koepon.local  fan with a pending application
--     00000000-0000-4000-a000-000000000005  fan@koepon.local        fan (adult)  koepon-fan-pass
--     00000000-0000-4000-a000-000000000006  minor@koepon.local      fan aged 14  koepon-fan-pass
--   vtubers
--     00000000-0000-4000-b000-000000000001  Hoshi Kirara (hoshi@)
--     00000000-0000-4000-b000-000000000002  Luna Shizuku (luna@)
--   vtuber_applications
--     00000000-0000-4000-c000-000000000001  applicant@, pending
--     00000000-0000-4000-c000-000000000002  hoshi@, approved
--     00000000-0000-4000-c000-000000000003  luna@, approved
--   gachas
--     00000000-0000-4000-d000-000000000001  Hoshi: published, pity 100 pulls -> SSR
--     00000000-0000-4000-d000-000000000002  Luna: published, per-item stock, 10-pull bonus, total cap
--     00000000-0000-4000-d000-000000000003  Hoshi: ended
--     00000000-0000-4000-d000-000000000004  Luna: draft (rates not yet summing to 100%)
--   gacha_items 00000000-0000-4000-e00G-00000000000N (G = gacha 1..4, N = item)
--   exchange_items
--     00000000-0000-4000-f000-000000000001  Hoshi: unlimited
--     00000000-0000-4000-f000-000000000002  Hoshi: total stock 5
--     00000000-0000-4000-f000-000000000003  Hoshi: per-fan lifetime limit 1
--     00000000-0000-4000-f000-000000000004  Hoshi: per-fan JST-daily limit 2, availability window
--     00000000-0000-4000-f000-000000000005  Luna: active, unlimited
--     00000000-0000-4000-f000-000000000006  Luna: retired
-- Content objects: bucket `rewards` (private), paths <vtuber_id>/gacha/... and <vtuber_id>/exchange/...

-- ---------------------------------------------------------------------------------------
-- Users (the sign-up trigger creates each profile and the fan role)
-- ---------------------------------------------------------------------------------------
-- The four token columns are set to '': they have no default on hosted (NULL), and Supabase
-- Auth cannot sign in a user whose tokens are NULL.
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                        confirmation_token, recovery_token, email_change_token_new, email_change)
select '00000000-0000-0000-0000-000000000000', u.id::uuid, 'authenticated', 'authenticated', u.email,
       extensions.crypt(u.pw, extensions.gen_salt('bf')), now(),
       '{"provider":"email","providers":["email"]}'::jsonb, u.meta::jsonb, now(), now(), '', '', '', ''
from (values
  ('00000000-0000-4000-a000-000000000001', 'admin@koepon.local', 'koepon-admin-pass',
   '{"display_name":"Koepon Admin"}'),
  ('00000000-0000-4000-a000-000000000002', 'hoshi@koepon.local', 'koepon-vtuber-pass',
   '{"display_name":"Hoshi Kirara","birth_date":"1998-07-07"}'),
  ('00000000-0000-4000-a000-000000000003', 'luna@koepon.local', 'koepon-vtuber-pass',
   '{"display_name":"Luna Shizuku","birth_date":"1999-09-21"}'),
  ('00000000-0000-4000-a000-000000000004', 'applicant@koepon.local', 'koepon-fan-pass',
   '{"display_name":"Mirai Applicant","birth_date":"2001-03-03"}'),
  ('00000000-0000-4000-a000-000000000005', 'fan@koepon.local', 'koepon-fan-pass',
   '{"display_name":"Oshi Fan","birth_date":"1995-04-01"}'),
  ('00000000-0000-4000-a000-000000000006', 'minor@koepon.local', 'koepon-fan-pass',
   '{"display_name":"Young Fan"}')
) as u (id, email, pw, meta);

insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at,
                             updated_at)
select u.id::text, u.id, jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', true,
                                            'phone_verified', false),
       'email', now(), now(), now()
from auth.users u where u.email like '%@koepon.local';

-- 14 years and 3 months old today (JST), so the demo minor stays 14 for a while.
update app.profiles
set birth_date = ((now() at time zone 'Asia/Tokyo')::date - interval '14 years 3 months')::date
where user_id = '00000000-0000-4000-a000-000000000006';

insert into app.user_roles (user_id, role, granted_by) values
  ('00000000-0000-4000-a000-000000000001', 'admin', null),
  ('00000000-0000-4000-a000-000000000002', 'vtuber', '00000000-0000-4000-a000-000000000001'),
  ('00000000-0000-4000-a000-000000000003', 'vtuber', '00000000-0000-4000-a000-000000000001');

-- ---------------------------------------------------------------------------------------
-- Onboarding: two approved VTubers, one pending applicant
-- ---------------------------------------------------------------------------------------
insert into app.vtuber_applications (id, user_id, vtuber_name, description, status, review_reason, reviewed_by,
                                     reviewed_at, created_at) values
  ('00000000-0000-4000-c000-000000000001', '00000000-0000-4000-a000-000000000004', 'Mirai Hikari',
   'Singing and ASMR streams three times a week.', 'pending', null, null, null, now() - interval '2 days'),
  ('00000000-0000-4000-c000-000000000002', '00000000-0000-4000-a000-000000000002', 'Hoshi Kirara',
   'Star-gazing idol VTuber: voice dramas and karaoke.', 'approved', 'welcome!',
   '00000000-0000-4000-a000-000000000001', now() - interval '60 days', now() - interval '62 days'),
  ('00000000-0000-4000-c000-000000000003', '00000000-0000-4000-a000-000000000003', 'Luna Shizuku',
   'Calm night-time chats, lullabies and illustrations.', 'approved', null,
   '00000000-0000-4000-a000-000000000001', now() - interval '40 days', now() - interval '41 days');

insert into app.vtubers (id, user_id, name, description, status, approved_at) values
  ('00000000-0000-4000-b000-000000000001', '00000000-0000-4000-a000-000000000002', 'Hoshi Kirara',
   'Star-gazing idol VTuber: voice dramas and karaoke.', 'approved', now() - interval '60 days'),
  ('00000000-0000-4000-b000-000000000002', '00000000-0000-4000-a000-000000000003', 'Luna Shizuku',
   'Calm night-time chats, lullabies and illustrations.', 'approved', now() - interval '40 days');

select private.append_audit('00000000-0000-4000-a000-000000000001', 'application.approve', 'vtuber_application',
                            '00000000-0000-4000-c000-000000000002',
                            '{"user_id":"00000000-0000-4000-a000-000000000002",'
                            '"vtuber_id":"00000000-0000-4000-b000-000000000001","seed":true}');
select private.append_audit('00000000-0000-4000-a000-000000000001', 'application.approve', 'vtuber_application',
                            '00000000-0000-4000-c000-000000000003',
                            '{"user_id":"00000000-0000-4000-a000-000000000003",'
                            '"vtuber_id":"00000000-0000-4000-b000-000000000002","seed":true}');

-- ---------------------------------------------------------------------------------------
-- Gachas: created as drafts, items added, then published (the trigger checks every rule)
-- ---------------------------------------------------------------------------------------
insert into app.gachas (id, vtuber_id, title, description, price_single, price_ten, medals_per_pull,
                        ten_pull_bonus_medals, start_at, end_at, total_pull_cap, pity_pulls, pity_rarity) values
  ('00000000-0000-4000-d000-000000000001', '00000000-0000-4000-b000-000000000001',
   'Hoshi Starlight Voice Gacha', 'Good-night and good-morning voices. SSR guaranteed within 100 pulls.',
   300, 3000, 10, 10, now() - interval '3 days', now() + interval '60 days', null, 100, 'SSR'),
  ('00000000-0000-4000-d000-000000000002', '00000000-0000-4000-b000-000000000002',
   'Luna Moonlight Illustration Gacha', 'Limited illustrations: the rarest ones are numbered.',
   200, 2000, 20, 30, now() - interval '1 day', now() + interval '30 days', 5000, null, null),
  ('00000000-0000-4000-d000-000000000003', '00000000-0000-4000-b000-000000000001',
   'Hoshi Debut Anniversary Gacha', 'Ended: the first anniversary set.',
   100, 1000, 10, 0, now() - interval '30 days', now() + interval '1 day', null, null, null),
  ('00000000-0000-4000-d000-000000000004', '00000000-0000-4000-b000-000000000002',
   'Luna Winter Lullaby Gacha (draft)', 'Work in progress.',
   100, 1000, 10, 0, now() + interval '7 days', now() + interval '37 days', null, null, null);

insert into app.gacha_items (id, gacha_id, name, description, rarity, rate_ppm, stock, content_path, sort_order)
values
  -- gacha 1 (pity): N 60%, R 30%, SR 8.5%, SSR 1.5%
  ('00000000-0000-4000-e001-000000000001', '00000000-0000-4000-d000-000000000001', 'Good morning (short)', '',
   'N', 300000, null, '00000000-0000-4000-b000-000000000001/gacha/starlight/n-good-morning.mp3', 1),
  ('00000000-0000-4000-e001-000000000002', '00000000-0000-4000-d000-000000000001', 'Good night (short)', '',
   'N', 300000, null, '00000000-0000-4000-b000-000000000001/gacha/starlight/n-good-night.mp3', 2),
  ('00000000-0000-4000-e001-000000000003', '00000000-0000-4000-d000-000000000001', 'Cheer for work', '',
   'R', 300000, null, '00000000-0000-4000-b000-000000000001/gacha/starlight/r-cheer.mp3', 3),
  ('00000000-0000-4000-e001-000000000004', '00000000-0000-4000-d000-000000000001', 'Starry lullaby', '',
   'SR', 85000, null, '00000000-0000-4000-b000-000000000001/gacha/starlight/sr-lullaby.mp3', 4),
  ('00000000-0000-4000-e001-000000000005', '00000000-0000-4000-d000-000000000001', 'Confession under the stars',
   'A five-minute voice drama.', 'SSR', 15000, null,
   '00000000-0000-4000-b000-000000000001/gacha/starlight/ssr-confession.mp3', 5),
  -- gacha 2 (per-item stock): N 70%, R 25%, SR 4%, UR 1%
  ('00000000-0000-4000-e002-000000000001', '00000000-0000-4000-d000-000000000002', 'Moon sketch', '',
   'N', 700000, null, '00000000-0000-4000-b000-000000000002/gacha/moonlight/n-sketch.png', 1),
  ('00000000-0000-4000-e002-000000000002', '00000000-0000-4000-d000-000000000002', 'Night sky wallpaper', '',
   'R', 250000, null, '00000000-0000-4000-b000-000000000002/gacha/moonlight/r-wallpaper.png', 2),
  ('00000000-0000-4000-e002-000000000003', '00000000-0000-4000-d000-000000000002', 'Signed illustration', '',
   'SR', 40000, 100, '00000000-0000-4000-b000-000000000002/gacha/moonlight/sr-signed.png', 3),
  ('00000000-0000-4000-e002-000000000004', '00000000-0000-4000-d000-000000000002', 'Numbered full-moon artwork',
   'Only 10 exist.', 'UR', 10000, 10, '00000000-0000-4000-b000-000000000002/gacha/moonlight/ur-full-moon.png', 4),
  -- gacha 3 (ended): N 80%, R 15%, SR 5%
  ('00000000-0000-4000-e003-000000000001', '00000000-0000-4000-d000-000000000003', 'Anniversary thanks', '',
   'N', 800000, null, '00000000-0000-4000-b000-000000000001/gacha/anniversary/n-thanks.mp3', 1),
  ('00000000-0000-4000-e003-000000000002', '00000000-0000-4000-d000-000000000003', 'Anniversary song (1 min)', '',
   'R', 150000, null, '00000000-0000-4000-b000-000000000001/gacha/anniversary/r-song.mp3', 2),
  ('00000000-0000-4000-e003-000000000003', '00000000-0000-4000-d000-000000000003', 'Anniversary letter', '',
   'SR', 50000, null, '00000000-0000-4000-b000-000000000001/gacha/anniversary/sr-letter.mp3', 3),
  -- gacha 4 (draft, rates sum to 95%: not yet publishable)
  ('00000000-0000-4000-e004-000000000001', '00000000-0000-4000-d000-000000000004', 'Lullaby (short)', '',
   'N', 900000, null, '00000000-0000-4000-b000-000000000002/gacha/winter/n-lullaby.mp3', 1),
  ('00000000-0000-4000-e004-000000000002', '00000000-0000-4000-d000-000000000004', 'Lullaby (full)', '',
   'SR', 50000, null, '00000000-0000-4000-b000-000000000002/gacha/winter/sr-lullaby.mp3', 2);

update app.gachas set status = 'published'
where id in ('00000000-0000-4000-d000-000000000001', '00000000-0000-4000-d000-000000000002',
             '00000000-0000-4000-d000-000000000003');
update app.gachas set status = 'ended' where id = '00000000-0000-4000-d000-000000000003';

-- ---------------------------------------------------------------------------------------
-- Exchange items (medals only)
-- ---------------------------------------------------------------------------------------
insert into app.exchange_items (id, vtuber_id, name, description, medal_cost, total_stock, per_fan_limit,
                                per_fan_daily_limit, available_from, available_until, status, content_path) values
  ('00000000-0000-4000-f000-000000000001', '00000000-0000-4000-b000-000000000001', 'Thank-you voice',
   'Always available.', 30, null, null, null, null, null, 'active',
   '00000000-0000-4000-b000-000000000001/exchange/thank-you.mp3'),
  ('00000000-0000-4000-f000-000000000002', '00000000-0000-4000-b000-000000000001', 'Signed digital card',
   'Only 5 exist.', 300, 5, null, null, null, null, 'active',
   '00000000-0000-4000-b000-000000000001/exchange/signed-card.png'),
  ('00000000-0000-4000-f000-000000000003', '00000000-0000-4000-b000-000000000001', 'Name-call voice',
   'One per fan.', 500, null, 1, null, null, null, 'active',
   '00000000-0000-4000-b000-000000000001/exchange/name-call.mp3'),
  ('00000000-0000-4000-f000-000000000004', '00000000-0000-4000-b000-000000000001', 'Daily wallpaper',
   'Two per day during the event.', 20, null, null, 2, now() - interval '1 day', now() + interval '30 days',
   'active', '00000000-0000-4000-b000-000000000001/exchange/daily-wallpaper.png'),
  ('00000000-0000-4000-f000-000000000005', '00000000-0000-4000-b000-000000000002', 'Moon phase stickers',
   'Always available.', 50, null, null, null, null, null, 'active',
   '00000000-0000-4000-b000-000000000002/exchange/stickers.zip'),
  ('00000000-0000-4000-f000-000000000006', '00000000-0000-4000-b000-000000000002', 'Summer 2026 voice',
   'Retired.', 100, null, null, null, null, null, 'retired',
   '00000000-0000-4000-b000-000000000002/exchange/summer-2026.mp3');

-- ---------------------------------------------------------------------------------------
-- Storage: the private bucket and one object row per content path (the API's storage writes
-- the bytes on disk)
-- ---------------------------------------------------------------------------------------
insert into storage.buckets (id, name, public, file_size_limit)
values ('rewards', 'rewards', false, 104857600)
on conflict (id) do nothing;

insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
select x.content_bucket, x.content_path, v.user_id, v.user_id::text,
       jsonb_build_object('mimetype', case split_part(x.content_path, '.', -1)
                                          when 'mp3' then 'audio/mpeg' when 'png' then 'image/png'
                                          when 'zip' then 'application/zip' else 'application/octet-stream' end,
                          'size', 0)
from (select g.vtuber_id, i.content_bucket, i.content_path
      from app.gacha_items i join app.gachas g on g.id = i.gacha_id
      union all
      select e.vtuber_id, e.content_bucket, e.content_path from app.exchange_items e) as x
join app.vtubers v on v.id = x.vtuber_id
on conflict (bucket_id, name) do nothing;
