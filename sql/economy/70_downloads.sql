-- Reward downloads: SQL authorises and logs each download (owner, not revoked, at most 3 per
-- reward per JST day). Fans have NO Storage read on reward objects: Storage signs any lifetime
-- its caller asks for (hosted Supabase Storage too), so a fan allowed to sign could turn one
-- authorised download into a link valid for years, shareable, outliving the daily limit and the
-- revocation of a refunded reward. Instead the payment service's download endpoint calls
-- request_download AS THE FAN (these rules, the rate limits and the log apply) and signs the
-- object with the service role for a fixed lifetime of one minute (expires_at below). A refund
-- therefore stops a download authorised before it within that minute at most: new requests are
-- refused at once (reward_revoked) and a URL already handed out expires.
revoke all on app.downloads from public, anon, authenticated, service_role;
grant select on app.downloads to authenticated, service_role;
drop policy if exists "Fans can read their own downloads" on app.downloads;
create policy "Fans can read their own downloads" on app.downloads
  for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists "Admins can read every download" on app.downloads;
create policy "Admins can read every download" on app.downloads
  for select to authenticated using ((select private.is_admin()));

-- Storage: no policy lets a fan read a reward object (see the head of this file).
drop policy if exists "Fans can read a reward object right after an authorised download request" on storage.objects;

create or replace function private.request_download(
  p_user uuid, p_user_reward_id uuid, p_now timestamptz, p_client_ip text, p_user_agent text
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_reward app.user_rewards;
  v_jst date := (p_now at time zone 'Asia/Tokyo')::date;
  v_count integer;
  v_id bigint;
  v_expires timestamptz := p_now + interval '1 minute';
begin
  -- The reward row lock serialises concurrent requests for one reward, so the count is exact.
  select * into v_reward from app.user_rewards r where r.id = p_user_reward_id and r.user_id = p_user for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'reward_not_found', detail = 'no such reward in your box';
  end if;
  if v_reward.revoked_at is not null then
    raise exception using errcode = 'PT409', message = 'reward_revoked',
      detail = 'this reward was revoked (its order was refunded) and can no longer be downloaded';
  end if;
  select count(*) into v_count from app.downloads d where d.user_reward_id = v_reward.id and d.jst_date = v_jst;
  if v_count >= 3 then
    raise exception using errcode = 'PT429', message = 'download_limit_reached',
      detail = 'a reward can be downloaded 3 times per JST day; try again after midnight JST',
      hint = format('retry after %s', ((v_jst + 1)::timestamp at time zone 'Asia/Tokyo'));
  end if;
  insert into app.downloads (user_id, user_reward_id, bucket, path, jst_date, created_at, expires_at, client_ip,
                             user_agent)
  values (p_user, v_reward.id, v_reward.content_bucket, v_reward.content_path, v_jst, p_now, v_expires,
          left(p_client_ip, 64), left(p_user_agent, 500))
  returning id into v_id;
  return jsonb_build_object('download_id', v_id, 'user_reward_id', v_reward.id, 'bucket', v_reward.content_bucket,
                            'path', v_reward.content_path, 'expires_at', v_expires,
                            'downloads_today', v_count + 1, 'remaining_today', 2 - v_count);
end
$$;
comment on function private.request_download(uuid, uuid, timestamptz, text, text) is
  'security definer: the download core (time passed in): ownership, revocation, 3 per reward per JST day, log row.';
revoke all on function private.request_download(uuid, uuid, timestamptz, text, text) from public;

create or replace function private.request_download(p_user_reward_id uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_ua text := coalesce(nullif(current_setting('request.headers', true), ''), '{}')::jsonb ->> 'user-agent';
begin
  return private.request_download(v_uid, p_user_reward_id, now(), private.request_client_ip(), v_ua);
end
$$;
comment on function private.request_download(uuid) is
  'security definer: the body of public.request_download; it takes the caller from the JWT (auth.uid()), never a '
  'user id argument, locks the reward and writes the download log, which fans cannot write.';
revoke all on function private.request_download(uuid) from public, anon;
grant execute on function private.request_download(uuid) to authenticated;

create or replace function public.request_download(p_user_reward_id uuid) returns jsonb
language sql
set search_path = ''
as $$
  select private.request_download(p_user_reward_id)
$$;
comment on function public.request_download(uuid) is
  'Authorises one download of a reward in the caller''s box and logs it (client address and user agent); returns '
  '{download_id, user_reward_id, bucket, path, expires_at, downloads_today, remaining_today}. Fans cannot read '
  'reward objects in Storage: the payment service''s POST /payments/rewards/{id}/download calls this as the fan '
  'and returns a URL signed by the service role that expires at expires_at (one minute). Errors: '
  'not_authenticated (PT401), account_suspended (PT403), reward_not_found (PT404), reward_revoked (PT409), '
  'download_limit_reached (PT429).';
revoke all on function public.request_download(uuid) from public, anon;
grant execute on function public.request_download(uuid) to authenticated;
