-- A security definer's comment says why it is safe; one that claims to take the caller from the
-- JWT must actually read it (auth.uid() or the request claims). The service_* definers read no
-- claims: only service_role may execute them.
begin;
select plan(2);

select is(
  array(select p.oid::regprocedure::text
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('private', 'public') and p.prosecdef
           and obj_description(p.oid, 'pg_proc') ilike '%JWT%'
           and p.prosrc !~* '(auth\.uid|auth\.jwt|request\.jwt|private\.require_(user|admin|vtuber)|private\.is_admin|private\.current_vtuber_id)'
         order by 1),
  array[]::text[],
  'no definer claims to take the caller from the JWT without reading it');

select ok(
  (select bool_and(obj_description(p.oid, 'pg_proc') ilike '%service role only%')
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'private' and p.proname in ('service_expire_orders', 'service_fulfill_order',
                                                   'service_fail_order')),
  'the service definers say who may run them');

select * from finish();
rollback;
