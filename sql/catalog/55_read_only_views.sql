-- Read-only views: every view in public is for reading (sql/catalog/50_disclosure.sql grants
-- SELECT only). A view PostgreSQL cannot update automatically (a join, a GROUP BY) refuses a write
-- in the rewriter with 55000 before any privilege check, which PostgREST answers 500. So every
-- public view carries INSTEAD OF INSERT/UPDATE/DELETE triggers (created by
-- 20261125050000_add_read_only_view_triggers.sql) calling this function: the rewriter then leaves
-- the write to the executor, whose privilege check refuses the API roles first (42501 -> 401
-- anonymous / 403 signed in); a role that holds the privilege anyway (the owner) reaches the
-- trigger and gets read_only_view (PT405 -> 405). A new public view gets the same triggers.

create or replace function private.refuse_view_write() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT405', message = 'read_only_view',
    detail = format('%s.%s is read-only: %s through it is not allowed; use the API functions',
                    tg_table_schema, tg_table_name, lower(tg_op));
end
$$;
comment on function private.refuse_view_write() is
  'INSTEAD OF trigger on every public view: refuses INSERT/UPDATE/DELETE with read_only_view (PT405).';
revoke all on function private.refuse_view_write() from public, anon, authenticated, service_role;
