begin;
select plan(14);

select has_role('anon');
select has_role('authenticated');
select has_role('service_role');
select has_role('authenticator');
select ok(not (select rolinherit from pg_roles where rolname = 'authenticator'),
          'authenticator is noinherit');
select ok(pg_has_role('authenticator', 'anon', 'member')
          and pg_has_role('authenticator', 'authenticated', 'member')
          and pg_has_role('authenticator', 'service_role', 'member'),
          'authenticator can become every API role');
select ok((select rolbypassrls from pg_roles where rolname = 'service_role'),
          'service_role bypasses RLS');
select has_table('auth', 'users', 'auth.users exists');
select has_table('storage', 'objects', 'storage.objects exists');
select is((select nspowner::regrole::text from pg_namespace where nspname = 'auth'),
          'supabase_admin', 'auth is owned by supabase_admin');

set local request.jwt.claims = '{"sub":"00000000-0000-0000-0000-000000000001","role":"authenticated","email":"a@example.com"}';
select is(auth.uid(), '00000000-0000-0000-0000-000000000001'::uuid, 'auth.uid() reads the claims');
select is(auth.role(), 'authenticated', 'auth.role() reads the claims');
select is(auth.email(), 'a@example.com', 'auth.email() reads the claims');
select ok(exists (select 1 from pg_publication where pubname = 'supabase_realtime'),
          'the supabase_realtime publication exists');

select * from finish();
rollback;
