-- VTuber self-service: their own public profile (name, description, links to allowed hosts,
-- avatar and banner objects under their own prefix of the public avatars bucket), and the
-- revenue share an admin sets (audited).

-- An http(s) URL whose host is one of the platform's allowed link hosts, else null.
create or replace function private.allowed_link(p_url text) returns text
language plpgsql stable
set search_path = ''
as $$
declare
  v_host text;
begin
  if p_url is null or char_length(p_url) > 500
     or p_url !~ '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][^[:space:]<>"]*)?$' then
    return null;
  end if;
  v_host := lower(substring(p_url from '^https?://([A-Za-z0-9.-]+)'));
  if not exists (select 1 from app.platform_settings s, jsonb_array_elements_text(s.value) h
                 where s.key = 'profile_link_hosts' and jsonb_typeof(s.value) = 'array' and h = v_host) then
    return null;
  end if;
  return p_url;
end
$$;
comment on function private.allowed_link(text) is
  'p_url when it is an http(s) URL (at most 500 characters) to a host listed in the profile_link_hosts setting.';
revoke all on function private.allowed_link(text) from public;
grant execute on function private.allowed_link(text) to authenticated;

create or replace function private.vtuber_profile_json(p_vtuber_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object('vtuber_id', v.id, 'name', v.name, 'description', v.description, 'links', v.links,
                            'avatar_path', v.avatar_path, 'banner_path', v.banner_path, 'status', v.status,
                            'revenue_share_bps', coalesce(v.revenue_share_bps,
                                                          private.setting_int('default_revenue_share_bps', 7000)),
                            'updated_at', v.updated_at)
  from app.vtubers v where v.id = p_vtuber_id
$$;
comment on function private.vtuber_profile_json(uuid) is
  'security definer: a VTuber''s profile as the owner and admins see it (revenue share included).';
revoke all on function private.vtuber_profile_json(uuid) from public;
grant execute on function private.vtuber_profile_json(uuid) to authenticated;

create or replace function private.update_my_vtuber_profile(
  p_name text, p_description text, p_links jsonb, p_avatar_path text, p_banner_path text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
  v_links jsonb;
  v_bad text;
  v_path text;
begin
  if p_name is not null and char_length(btrim(p_name)) not between 1 and 100 then
    raise exception using errcode = 'PT400', message = 'invalid_name', detail = 'a name of 1 to 100 characters';
  end if;
  if p_description is not null and char_length(p_description) > 2000 then
    raise exception using errcode = 'PT400', message = 'invalid_description', detail = 'at most 2000 characters';
  end if;
  if p_links is not null then
    if jsonb_typeof(p_links) <> 'array' or jsonb_array_length(p_links) > 10 then
      raise exception using errcode = 'PT400', message = 'invalid_links', detail = 'an array of at most 10 URLs';
    end if;
    select coalesce(e::text, '') into v_bad from jsonb_array_elements(p_links) e
     where jsonb_typeof(e) <> 'string' or private.allowed_link(e #>> '{}') is null limit 1;
    if found then
      raise exception using errcode = 'PT400', message = 'invalid_link',
        detail = format('%s is not an http(s) URL to an allowed host (YouTube, X, Twitch, ...)', left(v_bad, 200));
    end if;
    -- Duplicates dropped, the VTuber's order kept.
    select coalesce(jsonb_agg(d.e order by d.n), '[]') into v_links
      from (select distinct on (x.e) x.e, x.n from jsonb_array_elements(p_links) with ordinality x (e, n)
            order by x.e, x.n) d;
  end if;
  foreach v_path in array array[p_avatar_path, p_banner_path] loop
    if v_path is not null and v_path <> ''
       and (v_path !~ '^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$' or v_path ~ '\.\.' or v_path ~ '//'
            or v_path !~ ('^' || v.id::text || '/') or v_path !~* '\.(png|jpe?g|webp|gif)$') then
      raise exception using errcode = 'PT400', message = 'invalid_image_path',
        detail = format('an image path in the avatars bucket under your prefix: %s/<name>.png|jpg|webp|gif', v.id);
    end if;
  end loop;
  update app.vtubers set
    name = coalesce(btrim(p_name), name),
    description = coalesce(p_description, description),
    links = coalesce(v_links, links),
    avatar_path = case when p_avatar_path is null then avatar_path else nullif(p_avatar_path, '') end,
    banner_path = case when p_banner_path is null then banner_path else nullif(p_banner_path, '') end
  where id = v.id;
  return private.vtuber_profile_json(v.id);
end
$$;
comment on function private.update_my_vtuber_profile(text, text, jsonb, text, text) is
  'security definer: the approved VTuber edits their own row of app.vtubers, which no API role may write.';
revoke all on function private.update_my_vtuber_profile(text, text, jsonb, text, text) from public;
grant execute on function private.update_my_vtuber_profile(text, text, jsonb, text, text) to authenticated;

create or replace function public.update_my_vtuber_profile(
  p_name text default null, p_description text default null, p_links jsonb default null,
  p_avatar_path text default null, p_banner_path text default null
) returns jsonb
language sql
set search_path = ''
as $$ select private.update_my_vtuber_profile(p_name, p_description, p_links, p_avatar_path, p_banner_path) $$;
comment on function public.update_my_vtuber_profile(text, text, jsonb, text, text) is
  'VTuber: updates their own public profile (null = unchanged; '''' clears an image): name (1-100), description '
  '(<= 2000), links (array of <= 10 http(s) URLs to allowed hosts: YouTube, X, Twitch, ...), avatar and banner '
  'paths in the avatars bucket under "<vtuber_id>/"; returns the profile. Errors: not_authenticated (PT401), '
  'account_suspended, not_a_vtuber, vtuber_not_approved (PT403), invalid_name, invalid_description, invalid_links, '
  'invalid_link, invalid_image_path (PT400).';
revoke all on function public.update_my_vtuber_profile(text, text, jsonb, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.update_my_vtuber_profile(text, text, jsonb, text, text) to authenticated;

create or replace function private.get_my_vtuber_profile() returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v app.vtubers := private.require_vtuber();
begin
  return private.vtuber_profile_json(v.id);
end
$$;
comment on function private.get_my_vtuber_profile() is
  'security definer: the approved VTuber reads their own profile with its revenue share.';
revoke all on function private.get_my_vtuber_profile() from public;
grant execute on function private.get_my_vtuber_profile() to authenticated;

create or replace function public.get_my_vtuber_profile() returns jsonb
language sql stable
set search_path = ''
as $$ select private.get_my_vtuber_profile() $$;
comment on function public.get_my_vtuber_profile() is
  'VTuber: their own profile {vtuber_id, name, description, links, avatar_path, banner_path, status, '
  'revenue_share_bps, updated_at}. Errors: not_authenticated (PT401), account_suspended, not_a_vtuber, '
  'vtuber_not_approved (PT403).';
revoke all on function public.get_my_vtuber_profile() from public, anon, authenticated, service_role;
grant execute on function public.get_my_vtuber_profile() to authenticated;

create or replace function private.admin_set_revenue_share(p_vtuber_id uuid, p_share_bps integer, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text := private.require_reason(p_reason);
  v app.vtubers;
begin
  if p_share_bps is not null and p_share_bps not between 0 and 10000 then
    raise exception using errcode = 'PT400', message = 'invalid_share',
      detail = 'p_share_bps is 0 to 10000 basis points (null = the platform default)';
  end if;
  select * into v from app.vtubers x where x.id = p_vtuber_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'vtuber_not_found', detail = 'no such VTuber';
  end if;
  update app.vtubers set revenue_share_bps = p_share_bps where id = v.id;
  perform private.append_audit(v_admin, 'vtuber.revenue_share', 'vtuber', v.id::text,
                               jsonb_build_object('from_bps', v.revenue_share_bps, 'to_bps', p_share_bps,
                                                  'reason', v_reason));
  return private.vtuber_profile_json(v.id);
end
$$;
comment on function private.admin_set_revenue_share(uuid, integer, text) is
  'security definer: admins set app.vtubers.revenue_share_bps, which nobody else may write; audited.';
revoke all on function private.admin_set_revenue_share(uuid, integer, text) from public;
grant execute on function private.admin_set_revenue_share(uuid, integer, text) to authenticated;

create or replace function public.admin_set_revenue_share(p_vtuber_id uuid, p_share_bps integer, p_reason text)
returns jsonb
language sql
set search_path = ''
as $$ select private.admin_set_revenue_share(p_vtuber_id, p_share_bps, p_reason) $$;
comment on function public.admin_set_revenue_share(uuid, integer, text) is
  'Admin: sets a VTuber''s revenue share in basis points (null = the default_revenue_share_bps setting); '
  'applies to months closed afterwards; audited (from, to, reason); returns the profile. Errors: '
  'not_authenticated (PT401), admin_only (PT403), invalid_share, invalid_reason (PT400), vtuber_not_found (PT404).';
revoke all on function public.admin_set_revenue_share(uuid, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.admin_set_revenue_share(uuid, integer, text) to authenticated;
