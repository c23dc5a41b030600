-- The account lifecycle's RPCs (own sessions, deletion request and cancel, admin erasure): the
-- privilege matrix as anon, a fan, another fan, the owning VTuber, another VTuber, an admin and the
-- service role (allowed 'ok' or denied with its SQLSTATE and message; each probe rolled back), then
-- the rules: a fan sees and ends only their own sessions, the deletion request's states, erasure
-- waits for the cooling-off period and for pending orders, Koepon's suspension and Auth's ban follow
-- each other both ways, and the definers behind them are locked down.
begin;
-- Personas (fixed ids) and a probe that runs SQL as one of them: supabase/tests/catalog_fixture.sql.
select tests.catalog_personas();

-- Sign-in sessions as Auth writes them: two of the fan's, one of the other fan's.
insert into auth.sessions (id, user_id, created_at, updated_at) values
  ('35000000-0000-4000-a000-000000000001', tests.persona_id('fan'), now() - interval '2 hours', now() - interval '2 hours'),
  ('35000000-0000-4000-a000-000000000002', tests.persona_id('fan'), now() - interval '1 hour', now() - interval '1 hour'),
  ('35000000-0000-4000-a000-000000000003', tests.persona_id('other_fan'), now(), now());
-- A fan whose deletion request is past its cooling-off period (the admin may erase it now).
select tests.create_user('due@t.test', '{"display_name":"Due"}', '35000000-0000-4000-a000-0000000000d0');
insert into app.account_deletions (user_id, requested_at, erase_after)
values ('35000000-0000-4000-a000-0000000000d0', now() - interval '15 days', now() - interval '1 day');

create temporary table matrix (object text, sql text, expected text[]);
grant select on matrix to anon, authenticated, service_role;
-- personas, in order: anon, fan, other_fan, owner, other_vtuber, admin, service_role
insert into matrix values
  ('my_sessions', 'select public.my_sessions()',
   array['42501', 'ok', 'ok', 'ok', 'ok', 'ok', '42501']),
  ('end_my_session (the fan''s session)', 'select public.end_my_session(''35000000-0000-4000-a000-000000000001'')',
   array['42501', 'ok', 'PT404 session_not_found', 'PT404 session_not_found', 'PT404 session_not_found',
         'PT404 session_not_found', '42501']),
  ('request_account_deletion', 'select public.request_account_deletion()',
   array['42501', 'ok', 'ok', 'PT409 vtuber_account', 'PT409 vtuber_account', 'ok', '42501']),
  -- Direct SQL to the definer with a time of the caller's choosing (a past one would skip the
  -- cooling-off): no API role may run it, only the RPC's own request made now.
  ('private.request_account_deletion (a chosen time)',
   'select private.request_account_deletion(now() - interval ''30 days'')',
   array['42501', '42501', '42501', '42501', '42501', '42501', '42501']),
  ('cancel_account_deletion (none pending)', 'select public.cancel_account_deletion()',
   array['42501', 'PT404 deletion_not_requested', 'PT404 deletion_not_requested', 'PT404 deletion_not_requested',
         'PT404 deletion_not_requested', 'PT404 deletion_not_requested', '42501']),
  ('cancel_account_deletion (after a request)',
   'select public.request_account_deletion(); select public.cancel_account_deletion()',
   array['42501', 'ok', 'ok', 'PT409 vtuber_account', 'PT409 vtuber_account', 'ok', '42501']),
  ('admin_erase_account (due)', 'select public.admin_erase_account(''35000000-0000-4000-a000-0000000000d0'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'ok', '42501']),
  ('admin_erase_account (no request)', 'select public.admin_erase_account(''10000000-0000-4000-a000-000000000005'')',
   array['42501', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only', 'PT403 admin_only',
         'PT404 deletion_not_requested', '42501']);

select plan((select count(*)::integer * 7 from matrix) + 67);

select is(tests.probe(p.persona, m.sql), m.expected[p.n], m.object || ' as ' || p.persona)
from matrix m
cross join unnest(array['anon', 'fan', 'other_fan', 'owner', 'other_vtuber', 'admin', 'service_role'])
  with ordinality p (persona, n)
order by m.object, p.n;

-- ---- The definers: search_path pinned, and the internal ones out of the API roles' reach ----
select is(
  array(select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'private'
           and p.proname in ('my_sessions', 'end_my_session', 'request_account_deletion', 'cancel_account_deletion',
                             'erase_account', 'admin_erase_account', 'ban_follows_suspension', 'suspension_follows_ban',
                             'orders_refuse_erased_account')
           and not (p.prosecdef and p.proconfig @> array['search_path=""']) order by 1),
  array[]::text[],
  'the account definers are security definer with search_path pinned to empty');
select is((select count(*)::integer from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'private'
             and p.proname in ('my_sessions', 'end_my_session', 'request_account_deletion', 'cancel_account_deletion',
                               'erase_account', 'admin_erase_account', 'ban_follows_suspension', 'suspension_follows_ban',
                               'orders_refuse_erased_account')),
          10, 'all ten account definers exist (the check above covers them)');
select is(
  array(select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public'
           and p.proname in ('my_sessions', 'end_my_session', 'request_account_deletion', 'cancel_account_deletion',
                             'admin_erase_account')
           and (p.prosecdef or not p.proconfig @> array['search_path=""']) order by 1),
  array[]::text[],
  'the public account RPCs are invokers with search_path pinned to empty');
select is(
  array(select r.rolname || ' ' || p.oid::regprocedure::text
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          cross join (values ('anon'), ('authenticated'), ('service_role')) r (rolname)
         where n.nspname = 'private'
           and p.proname in ('erase_account', 'erase_due_accounts', 'ban_follows_suspension', 'suspension_follows_ban',
                             'downloads_history_guard', 'orders_refuse_erased_account')
           and has_function_privilege(r.rolname, p.oid, 'execute') order by 1),
  array[]::text[],
  'erasure itself, the job body and the trigger functions are executable by no API role');
select is(
  array(select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'private'
           and p.proname in ('my_sessions', 'end_my_session', 'request_account_deletion', 'cancel_account_deletion',
                             'admin_erase_account')
           and has_function_privilege('anon', p.oid, 'execute') order by 1),
  array[]::text[],
  'anon cannot execute the account definers behind the RPCs');
select is(
  array(select r.rolname from (values ('anon'), ('authenticated'), ('service_role')) r (rolname)
         where has_function_privilege(r.rolname, 'private.request_account_deletion(timestamptz)', 'execute')),
  array[]::text[],
  'the deletion request at a chosen time is executable by no API role');
select is(
  array(select r.rolname from (values ('anon'), ('authenticated'), ('service_role')) r (rolname)
         where has_function_privilege(r.rolname, 'private.request_account_deletion()', 'execute')),
  array['authenticated'],
  'the deletion request made now is executable by authenticated alone (the RPC''s definer)');
select is((select command from private.job_definitions() where name = 'koepon_erase_accounts'),
          'select private.erase_due_accounts(now())', 'the erasure job runs the job body');

-- ---- Sessions: a fan sees and ends only their own ----
select tests.authenticate_as(tests.persona_id('fan'));
select is((select array_agg(e ->> 'id' order by e ->> 'id') from jsonb_array_elements(public.my_sessions()) e),
          array['35000000-0000-4000-a000-000000000001', '35000000-0000-4000-a000-000000000002'],
          'the fan sees their two sessions and not the other fan''s');
select is((select jsonb_agg(e ->> 'id') from jsonb_array_elements(public.my_sessions()) e),
          '["35000000-0000-4000-a000-000000000002", "35000000-0000-4000-a000-000000000001"]'::jsonb,
          'newest activity first');
select set_config('request.jwt.claims', json_build_object('sub', tests.persona_id('fan'), 'role', 'authenticated',
                  'session_id', '35000000-0000-4000-a000-000000000002')::text, true);
select is((select jsonb_object_agg(e ->> 'id', e -> 'is_current') from jsonb_array_elements(public.my_sessions()) e),
          '{"35000000-0000-4000-a000-000000000001": false, "35000000-0000-4000-a000-000000000002": true}'::jsonb,
          'the session of the calling token is marked current');
select throws_ok($$select public.end_my_session('35000000-0000-4000-a000-000000000003')$$,
                 'PT404', 'session_not_found', 'ending the other fan''s session is refused as not found');
select throws_ok($$select public.end_my_session(gen_random_uuid())$$,
                 'PT404', 'session_not_found', 'ending an unknown session is refused as not found');
select is(public.end_my_session('35000000-0000-4000-a000-000000000001') ->> 'ended', 'true', 'the fan ends their own session');
select is((select jsonb_agg(e ->> 'id') from jsonb_array_elements(public.my_sessions()) e),
          '["35000000-0000-4000-a000-000000000002"]'::jsonb, 'the ended session is gone from the fan''s list');
select tests.as_postgres();
select is((select array_agg(id::text order by id) from auth.sessions
            where id::text like '35000000-0000-4000-a000-00000000000_'),
          array['35000000-0000-4000-a000-000000000002', '35000000-0000-4000-a000-000000000003'],
          'only the fan''s ended session was deleted; the other fan''s stays');
select tests.authenticate_as(tests.persona_id('other_fan'));
select is((select jsonb_agg(e ->> 'id') from jsonb_array_elements(public.my_sessions()) e),
          '["35000000-0000-4000-a000-000000000003"]'::jsonb, 'the other fan still has their session');
select tests.clear_authentication();
select throws_ok($$select private.my_sessions()$$, '42501', null, 'anon cannot reach the sessions definer');
select tests.as_postgres();

-- ---- The deletion request's states ----
select tests.authenticate_as(tests.persona_id('fan'));
create temp table r1 as select public.request_account_deletion() j;
select is((select j ->> 'status' from r1), 'pending', 'a request is pending');
select is((select ((j ->> 'erase_after')::timestamptz - (j ->> 'requested_at')::timestamptz) from r1),
          interval '14 days', 'erasure waits fourteen days');
select is((select public.request_account_deletion()), (select j from r1),
          'asking again returns the same pending request (the cooling-off does not restart)');
select is(public.cancel_account_deletion() ->> 'status', 'cancelled', 'the fan cancels');
select throws_ok($$select public.cancel_account_deletion()$$, 'PT404', 'deletion_not_requested',
                 'nothing left to cancel');
select tests.as_postgres();
select throws_ok($$select private.erase_account(tests.persona_id('fan'), null, now() + interval '30 days')$$,
                 'PT404', 'deletion_not_requested', 'a cancelled request is never erased');
select is(private.erase_due_accounts(now() + interval '30 days'), 1,
          'the job erases only the due request (the cancelled one is skipped)');
select is((select erased_at is null from app.account_deletions where user_id = tests.persona_id('fan')), true,
          'the cancelled account is not erased');
select tests.authenticate_as(tests.persona_id('fan'));
select is(public.request_account_deletion() ->> 'status', 'pending', 'the fan may ask again after cancelling');

-- ---- Erasure waits for the cooling-off period ----
select tests.authenticate_as(tests.persona_id('admin'));
select throws_ok(format('select public.admin_erase_account(%L)', tests.persona_id('fan')), 'PT409', 'cooling_off',
                 'the admin cannot erase during the cooling-off period');
select tests.as_postgres();
select is(private.erase_due_accounts(now()), 0, 'the job erases nothing during the cooling-off period');
select is(private.erase_due_accounts(now() + interval '13 days 23 hours'), 0, 'nor an hour before it ends');
select is((select erased_at is null from app.account_deletions where user_id = tests.persona_id('fan')), true,
          'the fan is not erased');

-- ---- A pending order holds the erasure back ----
update app.profiles set birth_date = '1990-04-01' where user_id = tests.persona_id('fan');  -- buying needs it
select tests.authenticate_as(tests.persona_id('fan'));
create temp table pending_order as
  select (public.create_order('10000000-0000-4000-d000-000000000002', 1, 'erase-race') ->> 'order_id')::uuid id;
select tests.as_postgres();
update app.account_deletions set requested_at = now() - interval '15 days', erase_after = now() - interval '1 day'
 where user_id = tests.persona_id('fan');
select is(private.erase_due_accounts(now()), 0, 'the job skips an account with a pending order');
select is((select erased_at is null and cancelled_at is null from app.account_deletions
            where user_id = tests.persona_id('fan')), true, 'the skipped request stays pending for the next run');
select is((select status from app.orders where id = (select id from pending_order)), 'pending',
          'the pending order is untouched');
select tests.authenticate_as(tests.persona_id('admin'));
select throws_ok(format('select public.admin_erase_account(%L)', tests.persona_id('fan')), 'PT409', 'pending_orders',
                 'the admin cannot erase while an order waits for its payment');
select tests.as_postgres();
update app.orders set status = 'expired' where id = (select id from pending_order);
select is(private.erase_due_accounts(now()), 1, 'once the order expired, the next run erases the account');
select is((select display_name from app.profiles where user_id = tests.persona_id('fan')), 'deleted user',
          'the profile names nobody');
select is((select email from auth.users where id = tests.persona_id('fan')), null, 'the address is gone from Auth');
select is((select count(*)::integer from auth.sessions where user_id = tests.persona_id('fan')), 0,
          'the erased fan''s sessions are gone');
select tests.authenticate_as(tests.persona_id('fan'));
select is(public.request_account_deletion() ->> 'status', 'erased', 'an erased account''s request stays erased');
select tests.as_postgres();
-- As if create_order had passed its profile check before the erasure committed: the order is
-- still refused (the trigger on app.orders).
update app.profiles set status = 'active', birth_date = '1990-04-01' where user_id = tests.persona_id('fan');
select tests.authenticate_as(tests.persona_id('fan'));
select throws_ok($$select public.create_order('10000000-0000-4000-d000-000000000002', 1, 'after-erasure')$$,
                 'PT403', 'account_suspended', 'no order is created for an erased account, even past the profile check');
select throws_ok($$select public.cancel_account_deletion()$$, 'PT404', 'deletion_not_requested',
                 'an erasure cannot be cancelled');
select tests.as_postgres();

-- ---- Suspension and ban follow each other ----
update app.profiles set status = 'suspended' where user_id = tests.persona_id('other_fan');
select cmp_ok((select banned_until from auth.users where id = tests.persona_id('other_fan')), '>',
              now() + interval '99 years', 'suspending the profile bans the user in Auth for ever');
select is((select count(*)::integer from app.audit_log where target_id = tests.persona_id('other_fan')::text
            and details ->> 'source' = 'auth_ban'), 0,
          'the ban written by the suspension does not echo back as a second suspension');
update app.profiles set status = 'active' where user_id = tests.persona_id('other_fan');
select is((select banned_until from auth.users where id = tests.persona_id('other_fan')), null,
          'reactivating the profile lifts the ban');
update auth.users set banned_until = now() + interval '1 day' where id = tests.persona_id('other_fan');
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'suspended',
          'a ban set in Auth suspends the profile');
select is((select action from app.audit_log where target_id = tests.persona_id('other_fan')::text
            and details ->> 'source' = 'auth_ban' order by id desc limit 1), 'user.suspend',
          'the suspension from Auth is audited');
update auth.users set banned_until = null where id = tests.persona_id('other_fan');
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'active',
          'lifting the ban in Auth reactivates the profile');

-- ---- A timed ban that runs out ends the suspension ----
update auth.users set banned_until = now() + interval '1 day' where id = tests.persona_id('other_fan');
select is(private.end_expired_bans(null, now()), 0, 'the job lifts no ban before it runs out');
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'suspended',
          'the fan stays suspended while the ban lasts');
select is(private.end_expired_bans(null, now() + interval '25 hours'), 1,
          'once the ban has run out the job ends the suspension (and no other: the admin''s for-ever bans '
          'and the erased accounts stay)');
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'active',
          'the fan is active again');
select is((select details ->> 'source' from app.audit_log where action = 'user.unsuspend'
            and target_id = tests.persona_id('other_fan')::text order by id desc limit 1), 'auth_ban_expired',
          'the end of the suspension is audited');
update app.profiles set status = 'suspended' where user_id = tests.persona_id('other_fan');
select is(private.end_expired_bans(null, now() + interval '25 hours'), 0,
          'an admin''s suspension (a ban for ever) does not run out');
set local session_replication_role = replica;  -- the erased fan, suspended, as if its ban had run out
update app.profiles set status = 'suspended' where user_id = tests.persona_id('fan');
update auth.users set banned_until = now() - interval '1 minute' where id = tests.persona_id('fan');
set local session_replication_role = origin;
select is(private.end_expired_bans(tests.persona_id('fan'), now()), 0,
          'an erased account stays suspended whatever its ban says');
-- Auth lets the fan sign in (a new session) or refresh (refreshed_at) once the ban has expired;
-- a ban that ran out a minute ago, before any job run, as triggers-off writes leave it:
set local session_replication_role = replica;
update auth.users set banned_until = now() - interval '1 minute' where id = tests.persona_id('other_fan');
set local session_replication_role = origin;
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'suspended',
          'a ban that ran out leaves the profile suspended until something looks');
insert into auth.sessions (id, user_id, created_at, updated_at)
values ('35000000-0000-4000-a000-000000000004', tests.persona_id('other_fan'), now(), now());
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'active',
          'signing in after the ban ran out ends the suspension at once');
update app.profiles set status = 'suspended' where user_id = tests.persona_id('other_fan');
set local session_replication_role = replica;
update auth.users set banned_until = now() - interval '1 minute' where id = tests.persona_id('other_fan');
set local session_replication_role = origin;
update auth.sessions set refreshed_at = now() where id = '35000000-0000-4000-a000-000000000004';
select is((select status from app.profiles where user_id = tests.persona_id('other_fan')), 'active',
          'refreshing a session after the ban ran out ends it too');
select is(
  array(select r.rolname || ' ' || p.oid::regprocedure::text
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          cross join (values ('anon'), ('authenticated'), ('service_role')) r (rolname)
         where n.nspname = 'private' and p.proname in ('end_expired_bans', 'end_expired_ban_at_sign_in')
           and has_function_privilege(r.rolname, p.oid, 'execute') order by 1),
  array[]::text[],
  'the ban-expiry job body and its trigger function are executable by no API role');
select is((select command from private.job_definitions() where name = 'koepon_end_expired_bans'),
          'select private.end_expired_bans(null, now())', 'the ban-expiry job runs every minute''s body');

-- ---- One account that cannot be erased holds back no other ----
select tests.create_user('stuck@t.test', '{"display_name":"Stuck Person"}', '35000000-0000-4000-a000-0000000000e1');
select tests.create_user('next@t.test', '{"display_name":"Next"}', '35000000-0000-4000-a000-0000000000e2');
insert into app.account_deletions (user_id, requested_at, erase_after) values
  ('35000000-0000-4000-a000-0000000000e1', now() - interval '16 days', now() - interval '2 days'),  -- first in line
  ('35000000-0000-4000-a000-0000000000e2', now() - interval '15 days', now() - interval '1 day');
-- A stand-in for whatever breaks one erasure (here a lock timeout on the profile), with a message
-- that quotes the fan's address and name.
create function tests.refuse_stuck_erasure() returns trigger language plpgsql as $$
begin
  if new.user_id = '35000000-0000-4000-a000-0000000000e1' then
    raise exception 'profile of stuck@t.test (Stuck Person) is locked' using errcode = '55P03';
  end if;
  return new;
end
$$;
create trigger refuse_stuck_erasure before update on app.profiles
  for each row execute function tests.refuse_stuck_erasure();
select is(private.erase_due_accounts(now()), 1, 'the job erases the next account although the one before it fails');
select is((select erased_at is not null from app.account_deletions where user_id = '35000000-0000-4000-a000-0000000000e2'),
          true, 'the account after the failing one is erased');
select is((select array[u.email::text, p.display_name::text] from auth.users u join app.profiles p on p.user_id = u.id
            where u.id = '35000000-0000-4000-a000-0000000000e1'),
          array['stuck@t.test', 'Stuck Person'],
          'the failed erasure is rolled back whole (nothing half-erased)');
select is((select erased_at is null and cancelled_at is null from app.account_deletions
            where user_id = '35000000-0000-4000-a000-0000000000e1'), true,
          'the failed request stays pending for the next run');
select is((select details - 'job' from app.audit_log where action = 'user.erase_failed'
            and target_id = '35000000-0000-4000-a000-0000000000e1'),
          '{"sqlstate": "55P03", "message": "profile of [erased] ([erased]) is locked", "table": null, "constraint": null}'::jsonb,
          'the failure is in the audit log with its error, the address and name blanked');
drop trigger refuse_stuck_erasure on app.profiles;
select is(private.erase_due_accounts(now()), 1, 'once the cause is gone, the next run erases it');
select is((select count(*)::integer from app.audit_log a where strpos(a.details::text, 'stuck@t.test') > 0
             or strpos(a.details::text, 'Stuck Person') > 0), 0,
          'no audit entry keeps the erased fan''s address or name');

select * from finish();
rollback;
