-- Gachas and their items: VTubers edit their own drafts, publish, end. Once published the
-- freeze trigger (migration 20261125010000) refuses every change but the lifecycle.

create or replace function private.gacha_json(g app.gachas) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select to_jsonb(g) || jsonb_build_object('items', coalesce((
    select jsonb_agg(to_jsonb(i) order by i.sort_order, private.rarity_rank(i.rarity) desc, i.name)
    from app.gacha_items i where i.gacha_id = g.id), '[]'::jsonb))
$$;
comment on function private.gacha_json(app.gachas) is
  'security definer: a gacha with its items and content paths, for its owner''s RPC results.';
revoke all on function private.gacha_json(app.gachas) from public;
grant execute on function private.gacha_json(app.gachas) to authenticated;

-- The caller's own gacha, locked; 404 when they cannot see it, 403 when it is someone else's.
create or replace function private.own_gacha(p_gacha_id uuid, p_vtuber app.vtubers) returns app.gachas
language plpgsql security definer
set search_path = ''
as $$
declare
  g app.gachas;
begin
  select * into g from app.gachas x where x.id = p_gacha_id for update;
  if not found or (g.vtuber_id <> p_vtuber.id and g.status not in ('published', 'ended')) then
    raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
  end if;
  if g.vtuber_id <> p_vtuber.id then
    raise exception using errcode = 'PT403', message = 'not_gacha_owner',
      detail = 'only the VTuber who owns this gacha may change it';
  end if;
  return g;
end
$$;
comment on function private.own_gacha(uuid, app.vtubers) is
  'security definer: locks and returns the caller''s gacha or raises gacha_not_found / not_gacha_owner.';
revoke all on function private.own_gacha(uuid, app.vtubers) from public;
grant execute on function private.own_gacha(uuid, app.vtubers) to authenticated;

create or replace function private.require_draft(g app.gachas) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if g.status <> 'draft' then
    raise exception using errcode = 'PT409', message = 'gacha_not_draft',
      detail = format('the gacha is %s: only drafts can be edited; publish a new gacha instead', g.status);
  end if;
end
$$;
comment on function private.require_draft(app.gachas) is 'Raises gacha_not_draft unless the gacha is a draft.';
revoke all on function private.require_draft(app.gachas) from public;
grant execute on function private.require_draft(app.gachas) to authenticated;

create or replace function private.create_gacha(
  p_title text, p_start_at timestamptz, p_end_at timestamptz, p_description text,
  p_price_single integer, p_price_ten integer, p_medals_per_pull integer,
  p_ten_pull_bonus_medals integer, p_total_pull_cap integer, p_pity_pulls integer, p_pity_rarity text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas;
begin
  g.id := gen_random_uuid();
  g.vtuber_id := v.id;
  g.title := btrim(p_title);
  g.description := coalesce(p_description, '');
  g.price_single := p_price_single;
  g.price_ten := p_price_ten;
  g.medals_per_pull := p_medals_per_pull;
  g.ten_pull_bonus_medals := p_ten_pull_bonus_medals;
  g.start_at := p_start_at;
  g.end_at := p_end_at;
  g.total_pull_cap := p_total_pull_cap;
  g.pity_pulls := p_pity_pulls;
  g.pity_rarity := p_pity_rarity;
  g.status := 'draft';
  perform private.validate_gacha(g);
  insert into app.gachas (id, vtuber_id, title, description, price_single, price_ten, medals_per_pull,
                          ten_pull_bonus_medals, start_at, end_at, total_pull_cap, pity_pulls, pity_rarity)
  values (g.id, g.vtuber_id, g.title, g.description, g.price_single, g.price_ten, g.medals_per_pull,
          g.ten_pull_bonus_medals, g.start_at, g.end_at, g.total_pull_cap, g.pity_pulls, g.pity_rarity)
  returning * into g;
  return private.gacha_json(g);
end
$$;
comment on function private.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                         integer, integer, integer, text) is
  'security definer: only RPCs write app.gachas; the caller must be an approved VTuber.';
revoke all on function private.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                            integer, integer, integer, text) from public;
grant execute on function private.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                               integer, integer, integer, text) to authenticated;

create or replace function public.create_gacha(
  p_title text, p_start_at timestamptz, p_end_at timestamptz, p_description text default '',
  p_price_single integer default 100, p_price_ten integer default 1000,
  p_medals_per_pull integer default 10, p_ten_pull_bonus_medals integer default 0,
  p_total_pull_cap integer default null, p_pity_pulls integer default null, p_pity_rarity text default null
) returns jsonb
language sql
set search_path = ''
as $$
  select private.create_gacha(p_title, p_start_at, p_end_at, p_description, p_price_single, p_price_ten,
                              p_medals_per_pull, p_ten_pull_bonus_medals, p_total_pull_cap, p_pity_pulls,
                              p_pity_rarity)
$$;
comment on function public.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                        integer, integer, integer, text) is
  'VTuber: creates a draft gacha of their own; returns it with its (empty) items. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved (PT403), invalid_title, '
  'invalid_description, invalid_price, invalid_medals_per_pull, invalid_ten_pull_bonus, invalid_window, '
  'invalid_total_pull_cap, invalid_pity (PT400).';
revoke all on function public.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                           integer, integer, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.create_gacha(text, timestamptz, timestamptz, text, integer, integer, integer,
                                              integer, integer, integer, text) to authenticated;

create or replace function private.update_gacha(p_gacha_id uuid, p_patch jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas := private.own_gacha(p_gacha_id, v);
  n app.gachas;
begin
  perform private.require_draft(g);
  perform private.check_patch(p_patch, array['title', 'description', 'price_single', 'price_ten',
    'medals_per_pull', 'ten_pull_bonus_medals', 'start_at', 'end_at', 'total_pull_cap', 'pity_pulls',
    'pity_rarity']);
  begin
    n := jsonb_populate_record(g, p_patch);
  exception when data_exception then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('a value has the wrong type: %s', sqlerrm);
  end;
  n.title := btrim(n.title);
  perform private.validate_gacha(n);
  update app.gachas set title = n.title, description = n.description, price_single = n.price_single,
    price_ten = n.price_ten, medals_per_pull = n.medals_per_pull,
    ten_pull_bonus_medals = n.ten_pull_bonus_medals, start_at = n.start_at, end_at = n.end_at,
    total_pull_cap = n.total_pull_cap, pity_pulls = n.pity_pulls, pity_rarity = n.pity_rarity
  where id = g.id returning * into g;
  return private.gacha_json(g);
end
$$;
comment on function private.update_gacha(uuid, jsonb) is
  'security definer: the owner edits a draft; the patch names only editable fields.';
revoke all on function private.update_gacha(uuid, jsonb) from public;
grant execute on function private.update_gacha(uuid, jsonb) to authenticated;

create or replace function public.update_gacha(p_gacha_id uuid, p_patch jsonb) returns jsonb
language sql
set search_path = ''
as $$ select private.update_gacha(p_gacha_id, p_patch) $$;
comment on function public.update_gacha(uuid, jsonb) is
  'VTuber: changes fields of their own draft ({"title": …, "price_single": …, "pity_pulls": null, …}); '
  'returns the gacha. Errors: as create_gacha, plus invalid_patch (PT400), gacha_not_found (PT404), '
  'not_gacha_owner (PT403), gacha_not_draft (PT409).';
revoke all on function public.update_gacha(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.update_gacha(uuid, jsonb) to authenticated;

create or replace function private.add_gacha_item(
  p_gacha_id uuid, p_name text, p_rarity text, p_rate_ppm integer, p_content_path text,
  p_description text, p_stock integer, p_sort_order integer
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas := private.own_gacha(p_gacha_id, v);
  i app.gacha_items;
begin
  perform private.require_draft(g);
  i.gacha_id := g.id;
  i.name := btrim(p_name);
  i.description := coalesce(p_description, '');
  i.rarity := p_rarity;
  i.rate_ppm := p_rate_ppm;
  i.stock := p_stock;
  i.content_path := p_content_path;
  i.sort_order := coalesce(p_sort_order, 0);
  perform private.validate_gacha_item(v.id, i);
  if (select count(*) from app.gacha_items x where x.gacha_id = g.id) >= 200 then
    raise exception using errcode = 'PT422', message = 'too_many_items', detail = 'a gacha has at most 200 items';
  end if;
  insert into app.gacha_items (gacha_id, name, description, rarity, rate_ppm, stock, content_path, sort_order)
  values (i.gacha_id, i.name, i.description, i.rarity, i.rate_ppm, i.stock, i.content_path, i.sort_order)
  returning * into i;
  return to_jsonb(i);
end
$$;
comment on function private.add_gacha_item(uuid, text, text, integer, text, text, integer, integer) is
  'security definer: the owner adds an item to a draft.';
revoke all on function private.add_gacha_item(uuid, text, text, integer, text, text, integer, integer) from public;
grant execute on function private.add_gacha_item(uuid, text, text, integer, text, text, integer, integer)
  to authenticated;

create or replace function public.add_gacha_item(
  p_gacha_id uuid, p_name text, p_rarity text, p_rate_ppm integer, p_content_path text,
  p_description text default '', p_stock integer default null, p_sort_order integer default 0
) returns jsonb
language sql
set search_path = ''
as $$
  select private.add_gacha_item(p_gacha_id, p_name, p_rarity, p_rate_ppm, p_content_path, p_description,
                                p_stock, p_sort_order)
$$;
comment on function public.add_gacha_item(uuid, text, text, integer, text, text, integer, integer) is
  'VTuber: adds an item (rarity N/R/SR/SSR/UR, rate in ppm, optional stock, content path under '
  '<vtuber_id>/) to their own draft; returns the item. Errors: not_authenticated (PT401), '
  'account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner (PT403), gacha_not_found (PT404), '
  'gacha_not_draft (PT409), invalid_name, invalid_description, invalid_rarity, invalid_rate, invalid_stock, '
  'invalid_content_path (PT400), too_many_items (PT422).';
revoke all on function public.add_gacha_item(uuid, text, text, integer, text, text, integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.add_gacha_item(uuid, text, text, integer, text, text, integer, integer)
  to authenticated;

create or replace function private.own_gacha_item(p_item_id uuid, p_vtuber app.vtubers)
returns app.gacha_items
language plpgsql security definer
set search_path = ''
as $$
declare
  i app.gacha_items;
begin
  select * into i from app.gacha_items x where x.id = p_item_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'gacha_item_not_found', detail = 'no such gacha item';
  end if;
  begin
    perform private.own_gacha(i.gacha_id, p_vtuber);
  exception when sqlstate 'PT404' then
    raise exception using errcode = 'PT404', message = 'gacha_item_not_found', detail = 'no such gacha item';
  end;
  select * into i from app.gacha_items x where x.id = p_item_id for update;
  return i;
end
$$;
comment on function private.own_gacha_item(uuid, app.vtubers) is
  'security definer: locks the caller''s item (and its gacha) or raises gacha_item_not_found / not_gacha_owner.';
revoke all on function private.own_gacha_item(uuid, app.vtubers) from public;
grant execute on function private.own_gacha_item(uuid, app.vtubers) to authenticated;

create or replace function private.update_gacha_item(p_item_id uuid, p_patch jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  i app.gacha_items := private.own_gacha_item(p_item_id, v);
  n app.gacha_items;
begin
  perform private.require_draft(g) from app.gachas g where g.id = i.gacha_id;
  perform private.check_patch(p_patch, array['name', 'description', 'rarity', 'rate_ppm', 'stock',
                                             'content_path', 'sort_order']);
  begin
    n := jsonb_populate_record(i, p_patch);
  exception when data_exception then
    raise exception using errcode = 'PT400', message = 'invalid_patch',
      detail = format('a value has the wrong type: %s', sqlerrm);
  end;
  n.name := btrim(n.name);
  perform private.validate_gacha_item(v.id, n);
  update app.gacha_items set name = n.name, description = n.description, rarity = n.rarity,
    rate_ppm = n.rate_ppm, stock = n.stock, content_path = n.content_path, sort_order = n.sort_order
  where id = i.id returning * into i;
  return to_jsonb(i);
end
$$;
comment on function private.update_gacha_item(uuid, jsonb) is
  'security definer: the owner edits an item of a draft.';
revoke all on function private.update_gacha_item(uuid, jsonb) from public;
grant execute on function private.update_gacha_item(uuid, jsonb) to authenticated;

create or replace function public.update_gacha_item(p_item_id uuid, p_patch jsonb) returns jsonb
language sql
set search_path = ''
as $$ select private.update_gacha_item(p_item_id, p_patch) $$;
comment on function public.update_gacha_item(uuid, jsonb) is
  'VTuber: changes fields of an item of their own draft ({"rate_ppm": …, "stock": null, …}); returns the '
  'item. Errors: as add_gacha_item, plus invalid_patch (PT400), gacha_item_not_found (PT404).';
revoke all on function public.update_gacha_item(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.update_gacha_item(uuid, jsonb) to authenticated;

create or replace function private.remove_gacha_item(p_item_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  i app.gacha_items := private.own_gacha_item(p_item_id, v);
begin
  perform private.require_draft(g) from app.gachas g where g.id = i.gacha_id;
  delete from app.gacha_items where id = i.id;
  return jsonb_build_object('id', i.id, 'gacha_id', i.gacha_id, 'removed', true);
end
$$;
comment on function private.remove_gacha_item(uuid) is 'security definer: the owner removes an item of a draft.';
revoke all on function private.remove_gacha_item(uuid) from public;
grant execute on function private.remove_gacha_item(uuid) to authenticated;

create or replace function public.remove_gacha_item(p_item_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.remove_gacha_item(p_item_id) $$;
comment on function public.remove_gacha_item(uuid) is
  'VTuber: removes an item from their own draft; returns {id, gacha_id, removed}. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner '
  '(PT403), gacha_item_not_found (PT404), gacha_not_draft (PT409).';
revoke all on function public.remove_gacha_item(uuid) from public, anon, authenticated, service_role;
grant execute on function public.remove_gacha_item(uuid) to authenticated;

create or replace function private.publish_gacha(p_gacha_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  g app.gachas := private.own_gacha(p_gacha_id, v);
begin
  perform private.require_draft(g);
  -- The freeze trigger runs the publish checks (private.gacha_publish_problem) for every role.
  update app.gachas set status = 'published' where id = g.id returning * into g;
  -- Then every item's content must be uploaded (the first missing one, in display order, is
  -- named); raising undoes the publish.
  perform private.require_content_object(i.content_bucket, i.content_path)
     from app.gacha_items i where i.gacha_id = g.id order by i.sort_order, i.id;
  return private.gacha_json(g);
end
$$;
comment on function private.publish_gacha(uuid) is
  'security definer: the owner publishes a draft; the trigger refuses it unless every rule holds.';
revoke all on function private.publish_gacha(uuid) from public;
grant execute on function private.publish_gacha(uuid) to authenticated;

create or replace function public.publish_gacha(p_gacha_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.publish_gacha(p_gacha_id) $$;
comment on function public.publish_gacha(uuid) is
  'VTuber: publishes their own draft, which freezes it; returns the gacha with expected_cost_top_rarity. '
  'Errors: not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner '
  '(PT403), gacha_not_found (PT404), gacha_not_draft (PT409), gacha_window_over, gacha_has_no_items, '
  'rate_must_be_positive, rates_must_sum_to_one_million, pity_settings_invalid, expected_cost_too_high, '
  'content_object_missing (PT422: an item''s content is not in Storage).';
revoke all on function public.publish_gacha(uuid) from public, anon, authenticated, service_role;
grant execute on function public.publish_gacha(uuid) to authenticated;

create or replace function private.end_gacha(p_gacha_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_admin boolean := private.is_admin();
  g app.gachas;
begin
  if v_admin then
    select * into g from app.gachas x where x.id = p_gacha_id for update;
    if not found then
      raise exception using errcode = 'PT404', message = 'gacha_not_found', detail = 'no such gacha';
    end if;
  else
    g := private.own_gacha(p_gacha_id, private.require_vtuber());
  end if;
  if g.status <> 'published' then
    raise exception using errcode = 'PT409', message = 'gacha_not_published',
      detail = format('the gacha is %s; only a published gacha can be ended', g.status);
  end if;
  update app.gachas set status = 'ended', ended_at = now() where id = g.id returning * into g;
  if v_admin and not private.is_vtuber_owner(g.vtuber_id) then
    perform private.append_audit(v_uid, 'gacha.end', 'gacha', g.id::text, '{}'::jsonb);
  end if;
  return private.gacha_json(g);
end
$$;
comment on function private.end_gacha(uuid) is
  'security definer: the owner (or an admin, audited) ends a published gacha; paid orders stay honoured.';
revoke all on function private.end_gacha(uuid) from public;
grant execute on function private.end_gacha(uuid) to authenticated;

create or replace function public.end_gacha(p_gacha_id uuid) returns jsonb
language sql
set search_path = ''
as $$ select private.end_gacha(p_gacha_id) $$;
comment on function public.end_gacha(uuid) is
  'VTuber (own) or admin: ends a published gacha before end_at; returns the gacha. Errors: '
  'not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved, not_gacha_owner (PT403), '
  'gacha_not_found (PT404), gacha_not_published (PT409).';
revoke all on function public.end_gacha(uuid) from public, anon, authenticated, service_role;
grant execute on function public.end_gacha(uuid) to authenticated;

create or replace function private.list_my_gachas() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return coalesce((select jsonb_agg(private.gacha_json(g) order by g.created_at desc)
                   from app.gachas g where g.vtuber_id = v.id), '[]'::jsonb);
end
$$;
comment on function private.list_my_gachas() is
  'security definer: the caller''s gachas (drafts included) with items and content paths.';
revoke all on function private.list_my_gachas() from public;
grant execute on function private.list_my_gachas() to authenticated;

create or replace function public.list_my_gachas() returns jsonb
language sql stable
set search_path = ''
as $$ select private.list_my_gachas() $$;
comment on function public.list_my_gachas() is
  'VTuber: their gachas in every status, newest first, each with items (content paths included). '
  'Errors: not_authenticated (PT401), account_suspended, not_a_vtuber, vtuber_not_approved (PT403).';
revoke all on function public.list_my_gachas() from public, anon, authenticated, service_role;
grant execute on function public.list_my_gachas() to authenticated;
