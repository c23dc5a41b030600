-- Content an item points to must exist in Storage before fans can get it: publishing a gacha
-- and creating (or re-pointing) an active exchange item refuse a content path with no object in
-- storage.objects. Without this a fan could pay for a reward whose download can only fail.

create or replace function private.require_content_object(p_bucket text, p_path text) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from storage.objects o where o.bucket_id = p_bucket and o.name = p_path) then
    raise exception using errcode = 'PT422', message = 'content_object_missing',
      detail = format('no object %s/%s in Storage: upload the content first', p_bucket, p_path);
  end if;
end
$$;
comment on function private.require_content_object(text, text) is
  'security definer: reads storage.objects whatever the caller''s Storage policies; raises content_object_missing '
  '(PT422) when the object does not exist.';
revoke all on function private.require_content_object(text, text) from public;
grant execute on function private.require_content_object(text, text) to authenticated;
