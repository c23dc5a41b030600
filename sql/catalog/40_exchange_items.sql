-- Exchange items: VTubers create, update and retire their own. The cost is medals only
-- (no column can require owning drawn items: a complete-gacha is illegal).

create or replace function private.own_exchange_item(p_exchange_item_id uuid, p_vtuber app.vtubers)
returns app.exchange_items
language plpgsql security definer
set search_path = ''
as $$
declare
  e app.exchange_items;
begin
  select * into e from app.exchange_items x where x.id = p_exchange_item_id for update;
  if not found or (e.vtuber_id <> p_vtuber.id and e.status <> 'active') then
    raise exception using errcode = 'PT404', message = 'exchange_item_not_found', detail = 'no such exchange item';
  end if;
  if e.vtuber_id <> p_vtuber.id then
    raise exception using errcode = 'PT403', message = 'not_exchange_item_owner',
      detail = 'only the VTuber who owns this exchange item may change it';
  end if;
  if e.status = 'retired' then
    raise exception using errcode = 'PT409', message = 'exchange_item_retired',
      detail = 'a retired exchange item cannot be changed: create a new one';
  end if;
  return e;
end
$$;
comment on function private.own_exchange_item(uuid, app.vtubers) is
  'security definer: locks the caller''s active exchange item or raises exchange_item_not_found, '
  'not_exchange_item_owner, exchange_item_retired.';
revoke all on function private.own_exchange_item(uuid, app.vtubers) from public;
grant execute on function private.own_exchange_item(uuid, app.vtubers) to authenticated;

create or replace function private.create_exchange_item(
  p_name text, p_medal_cost integer, p_content_path text, p_description text, p_total_stock integer,
  p_per_fan_limit integer, p_per_fan_daily_limit integer, p_available_from timestamptz,
  p_available_until timestamptz
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  e app.exchange_items;
begin
  e.vtuber_id := v.id;
  e.name := btrim(p_name);
  e.description := coalesce(p_description, '');
  e.medal_cost := p_medal_cost;
  e.total_stock := p_total_stock;
  e.per_fan_limit := p_per_fan_limit;
  e.per_fan_daily_limit := p_per_fan_daily_limit;
  e.available_from := p_available_from;
  e.available_until := p_available_until;
  e.content_path := p_content_path;
  perform private.validate_exchange_item(e);
  insert into app.exchange_items (vtuber_id, name, description, medal_cost, total_stock, per_fan_limit,
                                  per_fan_daily_limit, available_from, available_until, content_path)
  values (e.vtuber_id, e.name, e.description, e.medal_cost, e.total_stock, e.per_fan_limit,
          e.per_fan_daily_limit, e.available_from, e.available_until, e.content_path)
  returning * into e;
  -- After the row's own rules (the table's triggers) so their answers come first; raising here
  -- undoes the insert.
  perform private.require_content_object(e.content_bucket, e.content_path);
  return to_jsonb(e);
end
$$;
comment on function private.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                 timestamptz, timestamptz) is
  'security definer: only RPCs write app.exchange_items; the caller must be an approved VTuber.';
revoke all on function private.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                    timestamptz, timestamptz) from public;
grant execute on function private.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                       timestamptz, timestamptz) to authenticated;

create or replace function public.create_exchange_item(
  p_name text, p_medal_cost integer, p_content_path text, p_description text default '',
  p_total_stock integer default null, p_per_fan_limit integer default null,
  p_per_fan_daily_limit integer default null, p_available_from timestamptz default null,
  p_available_until timestamptz default null
) returns jsonb
language sql
set search_path = ''
as $$
  select private.create_exchange_item(p_name, p_medal_cost, p_content_path, p_description, p_total_stock,
                                      p_per_fan_limit, p_per_fan_daily_limit, p_available_from,
                                      p_available_until)
$$;
comment on function public.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                timestamptz, timestamptz) is
  'VTuber: creates an exchange item costing 1–100000 of their medals (optional total stock, per-fan '
  'lifetime and JST-daily limits, availability window); returns it. Errors: not_authenticated (PT401), '
  'account_suspended, not_a_vtuber, vtuber_not_approved (PT403), invalid_name, invalid_description, '
  'invalid_medal_cost, invalid_stock, invalid_limit, invalid_window, invalid_content_path (PT400), '
  'content_object_missing (PT422: the content is not in Storage).';
revoke all on function public.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                   timestamptz, timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function public.create_exchange_item(text, integer, text, text, integer, integer, integer,
                                                      timestamptz, timestamptz) to authenticated;

create or replace function private.update_exchange_item(p_exchange_item_id uuid, p_patch jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  e app.exchange_items := private.own_exchange_item(p_exchange_item_id, v);
  n app.exchange_items;
begin
  perform private.check_patch(p_patch, array['name', 'description', 'medal_cost', 'total_stock',
    'per_fan_limit', 'per_fan_daily_limit', 'available_from', 'available_until', 'content_path']);
  begin
    n := jsonb_populate_record(e, p_patch);
  exception when data_exception then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('a value has the wrong type: %s', sqlerrm);
  end;
  n.name := btrim(n.name);
  perform private.validate_exchange_item(n);
  update app.exchange_items set name = n.name, description = n.description, medal_cost = n.medal_cost,
    total_stock = n.total_stock, per_fan_limit = n.per_fan_limit, per_fan_daily_limit = n.per_fan_daily_limit,
    available_from = n.available_from, available_until = n.available_until, content_path = n.content_path
  where id = e.id returning * into n;
  -- Re-pointed content must exist (checked after the row's own rules; raising undoes the update).
  if n.content_path is distinct from e.content_path then
    perform private.require_content_object(n.content_bucket, n.content_path);
  end if;
  e := n;
  return to_jsonb(e);
end
$$;
comment on function private.update_exchange_item(uuid, jsonb) is
  'security definer: the owner edits an active exchange item.';
revoke all on function private.update_exchange_item(uuid, jsonb) from public;
grant execute on function private.update_exchange_item(uuid, jsonb) to authenticated;

create or replace function public.update_exchange_item(p_exchange_item_id uuid, p_patch jsonb) returns jsonb
language sql
set search_path = ''
as $$ select private.update_exchange_item(p_exchange_item_id, p_patch) $$;
comment on function public.update_exchange_item(uuid, jsonb) is
  'VTuber: changes fields of their own active exchange item ({"medal_cost": …, "total_stock": null, …}); '
  'returns it. Errors: as create_exchange_item (content_object_missing when content_path changes to a missing '
  'object), plus invalid_patch (PT400), exchange_item_not_found (PT404), '
  'not_exchange_item_owner (PT403), exchange_item_retired (PT409).';
revoke all on function public.update_exchange_item(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.update_exchange_item(uuid, jsonb) to authenticated;

create or replace function private.retire_exchange_item(p_exchange_item_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  e app.exchange_items := private.own_exchange_item(p_exchange_item_id, v);
begin
  update app.exchange_items set status = 'retired' where id = e.id returning * into e;
  return to_jsonb(e);
end
$$;
comment on function private.retire_exchange_item(uuid) is
  'security definer: the owner retires an exchange item (rewards already exchanged stay owned).';
revoke all on function private.retire_exchange_item(uuid) from public;
grant execute on function private.retire_exchange_item(uuid) to authenticated;

create or replace function public.retire_exchange_item(p_exchange_item_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.retire_exchange_item(p_exchange_item_id) $$;
comment on function public.retire_exchange_item(uuid) is
  'VTuber: retires their own exchange item (no more exchanges); returns it. Errors: not_authenticated '
  '(PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_exchange_item_owner (PT403), '
  'exchange_item_not_found (PT404), exchange_item_retired (PT409).';
revoke all on function public.retire_exchange_item(uuid) from public, anon, authenticated, service_role;
grant execute on function public.retire_exchange_item(uuid) to authenticated;

create or replace function private.list_my_exchange_items() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return coalesce((select jsonb_agg(to_jsonb(e) order by e.created_at desc)
                   from app.exchange_items e where e.vtuber_id = v.id), '[]'::jsonb);
end
$$;
comment on function private.list_my_exchange_items() is
  'security definer: the caller''s exchange items in every status, with content paths.';
revoke all on function private.list_my_exchange_items() from public;
grant execute on function private.list_my_exchange_items() to authenticated;

create or replace function public.list_my_exchange_items() returns jsonb
language sql stable
set search_path = ''
as $$ select private.list_my_exchange_items() $$;
comment on function public.list_my_exchange_items() is
  'VTuber: their exchange items (active and retired), newest first, content paths included. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved (PT403).';
revoke all on function public.list_my_exchange_items() from public, anon, authenticated, service_role;
grant execute on function public.list_my_exchange_items() to authenticated;
