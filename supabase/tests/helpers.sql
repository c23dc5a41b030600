-- Test helpers (after basejump's supabase-test-helpers), installed into test databases only,
-- never by a migration. pgTAP files call them to create users and act as a role.
create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_user(
  p_email text, p_metadata jsonb default '{}'::jsonb, p_id uuid default gen_random_uuid()
) returns uuid
language sql security definer set search_path = ''
as $$
  insert into auth.users (instance_id, id, aud, role, email, encrypted_password,
                          email_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                          created_at, updated_at,
                          confirmation_token, recovery_token, email_change_token_new, email_change)
  values ('00000000-0000-0000-0000-000000000000', p_id, 'authenticated', 'authenticated',
          p_email, extensions.crypt('password123', extensions.gen_salt('bf', 4)), now(),
          '{"provider":"email","providers":["email"]}', p_metadata, now(), now(), '', '', '', '')
  returning id
$$;

-- Acts as a signed-in user for the rest of the transaction, as PostgREST would set it.
create or replace function tests.authenticate_as(p_user uuid) returns void
language sql
as $$
  select set_config('request.jwt.claims',
                    json_build_object('sub', p_user, 'role', 'authenticated',
                                      'aud', 'authenticated')::text, true),
         set_config('role', 'authenticated', true)
$$;

create or replace function tests.authenticate_as_service_role() returns void
language sql
as $$
  select set_config('request.jwt.claims', '{"role":"service_role"}', true),
         set_config('role', 'service_role', true)
$$;

create or replace function tests.clear_authentication() returns void
language sql
as $$
  select set_config('request.jwt.claims', '{"role":"anon"}', true),
         set_config('role', 'anon', true)
$$;

-- Back to the migration owner to set up more data.
create or replace function tests.as_postgres() returns void
language sql
as $$
  select set_config('request.jwt.claims', '', true), set_config('role', 'postgres', true)
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
