-- Catalog rules: publish refusals, frozen-after-publish for every column and role, onboarding,
-- admin and the audit chain. Fixture: supabase/tests/catalog_fixture.sql (same personas).
begin;
-- Personas (fixed ids) and a probe that runs SQL as one of them: supabase/tests/catalog_fixture.sql.
select tests.catalog_personas();

-- A draft of the owner with the given items ('RARITY:ppm,...'), as postgres.
create function tests.draft(p_items text, p_price integer default 100, p_pity_pulls integer default null,
                            p_pity_rarity text default null, p_end timestamptz default now() + interval '30 days')
returns uuid language plpgsql as $$
declare
  v_id uuid;
  v_item text;
  n integer := 0;
begin
  insert into app.gachas (vtuber_id, title, price_single, price_ten, start_at, end_at, pity_pulls, pity_rarity)
  values ('10000000-0000-4000-b000-000000000002', 'Draft', p_price, least(p_price * 10, 10000),
          now() - interval '1 day', p_end, p_pity_pulls, p_pity_rarity)
  returning id into v_id;
  foreach v_item in array coalesce(string_to_array(nullif(p_items, ''), ','), '{}') loop
    n := n + 1;
    insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, content_path)
    values (v_id, 'item ' || n, split_part(v_item, ':', 1), split_part(v_item, ':', 2)::integer,
            '10000000-0000-4000-b000-000000000002/t/' || n || '.mp3');
  end loop;
  return v_id;
end
$$;
create function tests.publish_as_owner(p_gacha uuid) returns text language sql as $$
  select tests.probe('owner', format('select public.publish_gacha(%L)', p_gacha))
$$;
-- Tampers with the audit log (triggers off through session_replication_role, which hosted's supautils
-- lets postgres set), then verifies; all undone.
create function tests.tamper_and_verify(p_sql text) returns jsonb language plpgsql as $$
declare
  v jsonb;
begin
  begin
    set local session_replication_role = replica;
    execute p_sql;
    set local session_replication_role = origin;
    perform set_config('request.jwt.claims', '{"role":"service_role"}', true);
    v := private.verify_audit_chain();
    raise exception using errcode = 'ZZOK1';
  exception when sqlstate 'ZZOK1' then
    null;
  end;
  perform set_config('request.jwt.claims', '', true);
  return v;
end
$$;

create temporary table gacha_frozen_columns (col text, val text);
insert into gacha_frozen_columns values
  ('id', 'gen_random_uuid()'), ('vtuber_id', '''10000000-0000-4000-b000-000000000003'''),
  ('title', '''changed'''), ('description', '''changed'''), ('price_single', '200'), ('price_ten', '2000'),
  ('medals_per_pull', '11'), ('ten_pull_bonus_medals', '5'), ('start_at', 'start_at - interval ''1 hour'''),
  ('end_at', 'end_at + interval ''1 day'''), ('total_pull_cap', '1000'), ('pity_pulls', '50'),
  ('pity_rarity', '''N'''), ('published_at', 'now() - interval ''1 hour'''),
  ('expected_cost_top_rarity', '1'), ('guaranteed_cost_top_rarity', '1'),
  ('created_at', 'created_at - interval ''1 day''');
create temporary table item_frozen_columns (col text, val text);
insert into item_frozen_columns values
  ('id', 'gen_random_uuid()'), ('gacha_id', '''10000000-0000-4000-d000-000000000001'''),
  ('name', '''changed'''), ('description', '''changed'''), ('rarity', '''UR'''), ('rate_ppm', 'rate_ppm + 1'),
  ('stock', '7'), ('content_bucket', '''other'''), ('content_path', 'content_path || ''.x'''),
  ('sort_order', 'sort_order + 1'), ('created_at', 'created_at - interval ''1 day''');

select plan(155);

-- ---------------------------------------------------------------------------------------
-- Sign-up
-- ---------------------------------------------------------------------------------------
select is((select display_name from app.profiles where user_id = tests.persona_id('fan')), 'Fan',
          'display name from sign-up metadata');
select is((select array_agg(role) from app.user_roles where user_id = tests.persona_id('fan')), array['fan'],
          'sign-up metadata asking for admin still makes a fan');
select tests.create_user('noname@t.test', '{"role":"admin","birth_date":"2011-02-03"}',
                         '10000000-0000-4000-a000-000000000009');
select is((select display_name || ' ' || birth_date from app.profiles
           where user_id = '10000000-0000-4000-a000-000000000009'), 'noname 2011-02-03',
          'display name defaults to the e-mail''s local part; birth date from metadata');
select ok(not exists (select 1 from app.user_roles where user_id = '10000000-0000-4000-a000-000000000009'
                      and role <> 'fan'), 'no role but fan from metadata');

-- ---------------------------------------------------------------------------------------
-- Publish refusals (each through publish_gacha as the owner)
-- ---------------------------------------------------------------------------------------
select is(tests.publish_as_owner(tests.draft('')), 'PT422 gacha_has_no_items', 'no items: refused');
select is(tests.publish_as_owner(tests.draft('N:1000000,R:0')), 'PT422 rate_must_be_positive',
          'a rate of 0: refused');
select is(tests.publish_as_owner(tests.draft('N:900000,R:99999')), 'PT422 rates_must_sum_to_one_million',
          'rates summing to 999,999 ppm: refused');
select is(tests.publish_as_owner(tests.draft('N:900000,R:100001')), 'PT422 rates_must_sum_to_one_million',
          'rates summing to 1,000,001 ppm: refused');
select is(tests.publish_as_owner(tests.draft('N:900000,SR:100000', p_pity_pulls => 50, p_pity_rarity => 'UR')),
          'PT422 pity_settings_invalid', 'pity on a rarity no item has: refused');
select is(tests.publish_as_owner(tests.draft('N:999000,SSR:1000')), 'PT422 expected_cost_too_high',
          'SSR at 0.1% for ¥100 (¥100,000 expected): refused');
select is(tests.publish_as_owner(tests.draft('N:999000,SSR:1000', p_pity_pulls => 600, p_pity_rarity => 'SSR')),
          'PT422 expected_cost_too_high', 'a pity ceiling at ¥60,000 does not cap it under ¥50,000: refused');
select is(tests.publish_as_owner(tests.draft('N:998000,R:1000,SSR:1000', p_pity_pulls => 100, p_pity_rarity => 'R')),
          'PT422 expected_cost_too_high', 'a pity on a lower rarity does not cap the top rarity: refused');
select is(tests.publish_as_owner(tests.draft('N:999000,SSR:1000', p_pity_pulls => 500, p_pity_rarity => 'SSR')),
          'ok', 'a pity ceiling at ¥50,000 caps it: published');
select is(tests.publish_as_owner(tests.draft('N:980000,SSR:20000')), 'ok', '¥5,000 expected: published');
select is(tests.probe('postgres', format('update app.gachas set status = ''published'' where id = %L',
                                          tests.draft('N:1000000', p_end => now() + interval '1 second'))),
          'ok', 'control: a window still open publishes');
select is(tests.publish_as_owner(tests.draft('N:1000000', p_end => now() - interval '1 second')),
          'PT422 gacha_window_over', 'a window already over: refused');
select is(tests.publish_as_owner('10000000-0000-4000-d000-000000000002'), 'PT409 gacha_not_draft',
          'publishing twice: refused');
update app.platform_settings set value = '200000' where key = 'max_expected_cost_jpy';
select is(tests.publish_as_owner(tests.draft('N:999000,SSR:1000')), 'ok',
          'the limit is a platform setting (¥200,000 lets ¥100,000 pass)');
update app.platform_settings set value = '50000' where key = 'max_expected_cost_jpy';
update app.vtubers set status = 'suspended' where id = '10000000-0000-4000-b000-000000000002';
select is(tests.publish_as_owner(tests.draft('N:1000000')), 'PT403 vtuber_not_approved',
          'a suspended VTuber cannot publish');
select is(tests.probe('service_role', format('update app.gachas set status = ''published'' where id = %L',
                                              tests.draft('N:1000000'))),
          'PT403 vtuber_not_approved', 'not even the service role publishes for a suspended VTuber (trigger)');
select is(tests.probe('postgres', format('update app.gachas set status = ''published'' where id = %L',
                                          tests.draft('N:900000'))),
          'PT403 vtuber_not_approved', 'the trigger checks the table owner''s (postgres, RLS bypassed) publish too');
update app.vtubers set status = 'approved' where id = '10000000-0000-4000-b000-000000000002';
select is(tests.probe('service_role', format('update app.gachas set status = ''published'' where id = %L',
                                              tests.draft('N:900000'))),
          'PT422 rates_must_sum_to_one_million', 'the service role cannot publish bad rates (trigger)');
select is(tests.probe('postgres', format('update app.gachas set status = ''published'' where id = %L',
                                          tests.draft('N:900000'))),
          'PT422 rates_must_sum_to_one_million', 'nor can the table owner (trigger)');

-- Disclosure figures of a published gacha
select is((select (public.get_gacha('10000000-0000-4000-d000-000000000002') -> 'items' -> 0 ->> 'odds_percent')),
          '10.0000', 'odds in percent with 4 decimals (SSR 100,000 ppm)');
select is((select (public.get_gacha('10000000-0000-4000-d000-000000000002') ->> 'odds_total_percent')),
          '100.0000', 'odds total 100.0000%');
select is((select expected_cost_top_rarity from app.gachas where id = '10000000-0000-4000-d000-000000000002'),
          1000, 'expected cost to draw SSR at 10% for ¥100: ¥1,000');
create temporary table pity_draft as
  select tests.draft('N:999000,SSR:1000', p_pity_pulls => 500, p_pity_rarity => 'SSR') as id;
select is((select c.expected_cost || '/' || c.guaranteed_cost || '/' || c.expected_cost_without_pity
           from app.gachas g cross join lateral private.gacha_costs(g) c where g.id = (select id from pity_draft)),
          '39363/50000/100000',
          'with pity 500 on SSR at 0.1% for ¥100: expected ¥39,363, guaranteed ¥50,000 (¥100,000 without)');

-- ---------------------------------------------------------------------------------------
-- Frozen after publish: every column, every role that can write (postgres, service_role)
-- ---------------------------------------------------------------------------------------
select is(array(select column_name::text from information_schema.columns
                where table_schema = 'app' and table_name = 'gachas'
                  and column_name not in ('status', 'ended_at', 'updated_at') order by 1),
          array(select col from gacha_frozen_columns order by 1),
          'the frozen-column list covers every gacha column but the lifecycle');
select is(array(select column_name::text from information_schema.columns
                where table_schema = 'app' and table_name = 'gacha_items'
                  and column_name <> 'stock_remaining' order by 1),
          array(select col from item_frozen_columns order by 1),
          'the frozen-column list covers every item column but stock_remaining');
select is(tests.probe(r, format('update app.gachas set %I = %s where id = %L', c.col, c.val,
                                '10000000-0000-4000-d000-000000000002')),
          'PT409 gacha_frozen', format('published gacha: %s frozen for %s', c.col, r))
from gacha_frozen_columns c cross join unnest(array['postgres', 'service_role']) r;
select is(tests.probe(r, format('update app.gacha_items set %I = %s where id = %L', c.col, c.val,
                                '10000000-0000-4000-e000-000000000003')),
          'PT409 gacha_frozen', format('published item: %s frozen for %s', c.col, r))
from item_frozen_columns c cross join unnest(array['postgres', 'service_role']) r;
select is(tests.probe(r, $$insert into app.gacha_items (gacha_id, name, rarity, rate_ppm, content_path)
                          values ('10000000-0000-4000-d000-000000000002', 'x', 'N', 1, 'a/b')$$),
          'PT409 gacha_frozen', 'no item can be added to a published gacha as ' || r)
from unnest(array['postgres', 'service_role']) r;
select is(tests.probe(r, $$delete from app.gacha_items where id = '10000000-0000-4000-e000-000000000003'$$),
          'PT409 gacha_frozen', 'no item can be removed from a published gacha as ' || r)
from unnest(array['postgres', 'service_role']) r;
select is(tests.probe(r, $$delete from app.gachas where id = '10000000-0000-4000-d000-000000000002'$$),
          'PT409 gacha_frozen', 'a published gacha cannot be deleted as ' || r)
from unnest(array['postgres', 'service_role']) r;
select is(tests.probe(r, $$update app.gachas set status = 'draft' where id = '10000000-0000-4000-d000-000000000002'$$),
          'PT409 invalid_status_transition', 'a published gacha never goes back to draft as ' || r)
from unnest(array['postgres', 'service_role']) r;
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000002',
                                                            '{"price_single": 200}')$$),
          'PT409 gacha_not_draft', 'the owner cannot change a published gacha');
select is(tests.probe(r, $$update app.gachas set price_single = 200
                           where id = '10000000-0000-4000-d000-000000000002'$$),
          '42501', r || ' has no direct write on gachas at all')
from unnest(array['owner', 'admin']) r;
select is(tests.probe('service_role', $$update app.gacha_items set stock_remaining = 49
                                         where id = '10000000-0000-4000-e000-000000000003'$$),
          'ok', 'draws may consume stock_remaining of a published item');
select is(tests.probe('service_role', $$update app.gacha_items set stock_remaining = 51
                                         where id = '10000000-0000-4000-e000-000000000003'$$),
          '23514', 'stock_remaining never exceeds stock');
select is(tests.probe('service_role', $$update app.gachas set status = 'ended'
                                         where id = '10000000-0000-4000-d000-000000000002'$$),
          'ok', 'ending stays possible');
select is(tests.probe('admin', $$select public.admin_suspend_gacha('10000000-0000-4000-d000-000000000002', 'x')$$),
          'ok', 'admin suspension stays possible');
update app.gachas set status = 'ended' where id = '10000000-0000-4000-d000-000000000002';
select is(tests.probe('postgres', $$update app.gachas set price_single = 500
                                     where id = '10000000-0000-4000-d000-000000000002'$$),
          'PT409 gacha_frozen', 'an ended gacha stays frozen');
select is(tests.probe('postgres', $$update app.gachas set status = 'published'
                                     where id = '10000000-0000-4000-d000-000000000002'$$),
          'PT409 invalid_status_transition', 'an ended gacha is not reopened');

-- ---------------------------------------------------------------------------------------
-- Edits: drafts only, validated
-- ---------------------------------------------------------------------------------------
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"status": "published"}')$$),
          'PT400 invalid_patch', 'the status is not patchable');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"price_single": "abc"}')$$),
          'PT400 invalid_patch', 'a wrongly typed patch is a 400');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"price_single": 99}')$$),
          'PT400 invalid_price', 'price below ¥100');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"price_ten": 10001}')$$),
          'PT400 invalid_price', 'price above ¥10,000');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"medals_per_pull": 1001}')$$),
          'PT400 invalid_medals_per_pull', 'medals above 1,000');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"ten_pull_bonus_medals": -1}')$$),
          'PT400 invalid_ten_pull_bonus', 'negative bonus');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"end_at": "2000-01-01T00:00:00Z"}')$$),
          'PT400 invalid_window', 'start_at must be before end_at');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"pity_pulls": 10}')$$),
          'PT400 invalid_pity', 'pity pulls without a rarity');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001', '{"total_pull_cap": 0}')$$),
          'PT400 invalid_total_pull_cap', 'a cap of 0');
select is(tests.probe('owner', $$select public.update_gacha('10000000-0000-4000-d000-000000000001',
                                  '{"pity_pulls": 100, "pity_rarity": "SR", "total_pull_cap": 5000, "title": "New"}')$$),
          'ok', 'a valid patch passes');
select is(tests.probe('owner', $$select public.add_gacha_item('10000000-0000-4000-d000-000000000001', 'x', 'XR', 1,
                                  '10000000-0000-4000-b000-000000000002/a.mp3')$$),
          'PT400 invalid_rarity', 'unknown rarity');
select is(tests.probe('owner', $$select public.add_gacha_item('10000000-0000-4000-d000-000000000001', 'x', 'N', -1,
                                  '10000000-0000-4000-b000-000000000002/a.mp3')$$),
          'PT400 invalid_rate', 'negative rate');
select is(tests.probe('owner', $$select public.add_gacha_item('10000000-0000-4000-d000-000000000001', 'x', 'N', 1,
                                  '10000000-0000-4000-b000-000000000002/a.mp3', p_stock => 0)$$),
          'PT400 invalid_stock', 'stock of 0');
select is(tests.probe('owner', $$select public.add_gacha_item('10000000-0000-4000-d000-000000000001', 'x', 'N', 1,
                                  '10000000-0000-4000-b000-000000000002/../b.mp3')$$),
          'PT400 invalid_content_path', 'path traversal');
select is(tests.probe('owner', $$select public.create_exchange_item('x', 0, '10000000-0000-4000-b000-000000000002/a')$$),
          'PT400 invalid_medal_cost', 'exchange cost of 0 medals');
select is(tests.probe('owner', $$select public.create_exchange_item('x', 100001, '10000000-0000-4000-b000-000000000002/a')$$),
          'PT400 invalid_medal_cost', 'exchange cost above 100,000 medals');
select is(tests.probe('owner', $$select public.create_exchange_item('x', 10, '10000000-0000-4000-b000-000000000002/a',
                                  p_per_fan_daily_limit => 0)$$),
          'PT400 invalid_limit', 'daily limit of 0');
select is(tests.probe('owner', $$select public.create_exchange_item('x', 10, '10000000-0000-4000-b000-000000000002/a',
                                  p_available_from => now(), p_available_until => now() - interval '1 day')$$),
          'PT400 invalid_window', 'availability window backwards');
select is(tests.probe('owner', $$select public.update_exchange_item('10000000-0000-4000-f000-000000000001',
                                  '{"required_item_id": "10000000-0000-4000-e000-000000000003"}')$$),
          'PT400 invalid_patch', 'no exchange can require a drawn item');
update app.exchange_items set status = 'retired' where id = '10000000-0000-4000-f000-000000000001';
select is(tests.probe('owner', $$select public.update_exchange_item('10000000-0000-4000-f000-000000000001', '{"medal_cost": 5}')$$),
          'PT409 exchange_item_retired', 'a retired item cannot be changed');

-- ---------------------------------------------------------------------------------------
-- Onboarding and admin
-- ---------------------------------------------------------------------------------------
select is(tests.probe('admin', $$select public.review_vtuber_application('10000000-0000-4000-c000-000000000001', 'reject', ' ')$$),
          'PT422 rejection_needs_reason', 'a rejection needs a reason');
select is(tests.probe('admin', $$select public.review_vtuber_application('10000000-0000-4000-c000-000000000001', 'maybe', 'x')$$),
          'PT400 invalid_decision', 'decision is approve or reject');
select tests.authenticate_as(tests.persona_id('admin'));
select lives_ok($$select public.review_vtuber_application('10000000-0000-4000-c000-000000000001', 'approve', 'welcome')$$,
                'admin approves');
select tests.as_postgres();
select ok(exists (select 1 from app.vtubers where user_id = tests.persona_id('fan') and status = 'approved')
          and exists (select 1 from app.user_roles where user_id = tests.persona_id('fan') and role = 'vtuber'),
          'approval created the VTuber and granted the role in the same transaction');
select is(tests.probe('fan', $$select public.create_gacha('Mine', now(), now() + interval '1 day')$$), 'ok',
          'the approved applicant can now create gachas');
select is(tests.probe('admin', $$select public.review_vtuber_application('10000000-0000-4000-c000-000000000001', 'approve', 'x')$$),
          'PT409 application_not_pending', 'an application is reviewed once');
select tests.authenticate_as(tests.persona_id('other_fan'));
select lives_ok($$select public.submit_vtuber_application('Other', 'me')$$, 'another fan applies');
select tests.as_postgres();
select tests.authenticate_as(tests.persona_id('admin'));
select lives_ok($$select public.review_vtuber_application((select id from app.vtuber_applications
                  where user_id = tests.persona_id('other_fan')), 'reject', 'not enough content yet')$$,
                'admin rejects with a reason');
select tests.as_postgres();
select is(tests.probe('other_fan', $$select public.submit_vtuber_application('Other', 'me again')$$),
          'PT422 reapply_cooldown_active', 'no new application within 30 days of a rejection');
update app.vtuber_applications set reviewed_at = now() - interval '31 days' where user_id = tests.persona_id('other_fan');
select is(tests.probe('other_fan', $$select public.submit_vtuber_application('Other', 'me again')$$), 'ok',
          'after 30 days they may apply again');
select is(tests.probe('admin', $$select public.admin_grant_role(tests.persona_id('admin'), 'admin', 'me')$$),
          'PT403 cannot_grant_admin_to_self', 'an admin cannot grant admin to themselves');
select is(tests.probe('admin', $$select public.admin_revoke_role(tests.persona_id('admin'), 'admin', 'me')$$),
          'PT409 cannot_revoke_own_admin', 'an admin cannot drop their own admin role');
select is(tests.probe('admin', $$select public.admin_grant_role(tests.persona_id('other_fan'), 'fan', 'x')$$),
          'PT400 invalid_role', 'fan is not a grantable role');
select is(tests.probe('admin', $$select public.admin_suspend_user(tests.persona_id('other_fan'), '')$$),
          'PT400 invalid_reason', 'suspensions need a reason');
select is(tests.probe('admin', $$select public.admin_suspend_user('10000000-0000-4000-a000-0000000000ff', 'x')$$),
          'PT404 user_not_found', 'unknown user');
select tests.authenticate_as(tests.persona_id('admin'));
select lives_ok($$select public.admin_suspend_user(tests.persona_id('other_fan'), 'chargeback abuse')$$, 'admin suspends a fan');
select lives_ok($$select public.admin_grant_role(tests.persona_id('other_fan'), 'admin', 'new staff')$$,
                'admin grants admin to someone else');
select tests.as_postgres();
select is(tests.probe('other_fan', $$select public.update_my_profile('x')$$), 'PT403 account_suspended',
          'a suspended user cannot act');
select is(tests.probe('other_fan', $$select public.list_vtuber_applications()$$), 'PT403 account_suspended',
          'a suspended admin is no admin');
select is(tests.probe('fan', $$select public.update_my_profile(p_birth_date => '2010-01-01')$$), 'ok',
          'birth date set once...');
update app.profiles set birth_date = '2010-01-01' where user_id = tests.persona_id('fan');
select is(tests.probe('fan', $$select public.update_my_profile(p_birth_date => '1990-01-01')$$),
          'PT409 birth_date_already_set', '...and never changed by the user (a minor cannot become an adult)');

-- ---------------------------------------------------------------------------------------
-- Audit log: append-only for everyone, hash-chained, tampering detected
-- ---------------------------------------------------------------------------------------
select cmp_ok((select count(*)::integer from app.audit_log), '>=', 4, 'admin actions were audited');
select is((select action from app.audit_log order by id desc limit 1), 'role.grant', 'the latest entry is the grant');
select is(tests.probe('admin', 'select public.verify_audit_chain() ->> ''ok'''), 'ok', 'verify runs for an admin');
select is((select private.verify_audit_chain() from (select set_config('request.jwt.claims', '{"role":"service_role"}', true)) s)
          ->> 'ok', 'true', 'the chain verifies');
select is(tests.probe('postgres', 'update app.audit_log set details = ''{}'''), 'PT409 audit_log_append_only',
          'no UPDATE, not even for the table owner');
select is(tests.probe('postgres', 'delete from app.audit_log'), 'PT409 audit_log_append_only',
          'no DELETE, not even for the table owner');
select is(tests.probe('postgres', 'truncate app.audit_log'), 'PT409 audit_log_append_only', 'no TRUNCATE');
select is(tests.probe('service_role', 'update app.audit_log set details = ''{}'''), '42501',
          'the service role may not even try');
select is(tests.tamper_and_verify(format('update app.audit_log set details = ''{"reason":"forged"}'' where id = %s',
                                         (select min(id) + 0 from app.audit_log offset 0)))
          ->> 'first_broken_id', (select min(id)::text from app.audit_log),
          'a changed row is reported as the first broken link');
select is(tests.tamper_and_verify(format('delete from app.audit_log where id = %s',
                                         (select id from app.audit_log order by id offset 1 limit 1)))
          ->> 'first_broken_id', (select id from app.audit_log order by id offset 2 limit 1)::text,
          'a deleted row breaks the link of the next one');
select is(tests.tamper_and_verify('select 1') ->> 'ok', 'true', 'control: untouched, the chain verifies');
select is((select private.verify_audit_chain() from (select set_config('request.jwt.claims', '{"role":"service_role"}', true)) s)
          ->> 'ok', 'true', 'the tampering was rolled back');

select * from finish();
rollback;
