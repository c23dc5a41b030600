-- Storage buckets by migration, with Supabase Storage's own limits (hosted Storage enforces
-- them on upload, as the local Storage does): the private content bucket items and exchange
-- items point to, and the public bucket of profile images.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types) values
  ('rewards', 'rewards', false, 104857600,
   array['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'audio/mpeg', 'audio/mp4', 'audio/aac',
         'audio/wav', 'audio/x-wav', 'audio/ogg', 'audio/webm', 'video/mp4', 'video/webm', 'video/quicktime']),
  ('avatars', 'avatars', true, 5242880, array['image/png', 'image/jpeg', 'image/webp', 'image/gif'])
on conflict (id) do update
  set public = excluded.public, file_size_limit = excluded.file_size_limit,
      allowed_mime_types = excluded.allowed_mime_types;

-- from sql/backoffice/70_storage.sql
-- Storage: who may write which objects. Buckets (with Storage's own limits) are created by the
-- migration that ships this file; Storage enforces file_size_limit and allowed_mime_types.
--   rewards  private: item and exchange content; a VTuber uploads, replaces, lists and deletes
--            only under their own prefix "<vtuber_id>/"; fans read an object only right after an
--            authorised download request (sql/economy/70_downloads.sql).
--   avatars  public: profile images, same prefix rule for writing; anyone may read and list.

create or replace function private.approved_vtuber_id() returns uuid
language sql stable security definer
set search_path = ''
as $$
  select v.id from app.vtubers v
  where v.user_id = auth.uid() and v.status = 'approved'
    and exists (select 1 from app.user_roles r where r.user_id = v.user_id and r.role = 'vtuber')
    and exists (select 1 from app.profiles p where p.user_id = v.user_id and p.status = 'active')
$$;
comment on function private.approved_vtuber_id() is
  'security definer: the caller''s VTuber id when approved, role held and account active (Storage policies).';
revoke all on function private.approved_vtuber_id() from public;
grant execute on function private.approved_vtuber_id() to authenticated, service_role;

drop policy if exists "VTubers can upload under their own prefix" on storage.objects;
create policy "VTubers can upload under their own prefix" on storage.objects
  for insert to authenticated
  with check (bucket_id in ('rewards', 'avatars')
              and (storage.foldername(name))[1] = (select private.approved_vtuber_id())::text);

drop policy if exists "VTubers can replace objects under their own prefix" on storage.objects;
create policy "VTubers can replace objects under their own prefix" on storage.objects
  for update to authenticated
  using (bucket_id in ('rewards', 'avatars')
         and (storage.foldername(name))[1] = (select private.approved_vtuber_id())::text)
  with check (bucket_id in ('rewards', 'avatars')
              and (storage.foldername(name))[1] = (select private.approved_vtuber_id())::text);

drop policy if exists "VTubers can list and read objects under their own prefix" on storage.objects;
create policy "VTubers can list and read objects under their own prefix" on storage.objects
  for select to authenticated
  using (bucket_id in ('rewards', 'avatars')
         and (storage.foldername(name))[1] = (select private.approved_vtuber_id())::text);

drop policy if exists "VTubers can delete objects under their own prefix" on storage.objects;
create policy "VTubers can delete objects under their own prefix" on storage.objects
  for delete to authenticated
  using (bucket_id in ('rewards', 'avatars')
         and (storage.foldername(name))[1] = (select private.approved_vtuber_id())::text);

drop policy if exists "Anyone can read avatars" on storage.objects;
create policy "Anyone can read avatars" on storage.objects
  for select to anon, authenticated
  using (bucket_id = 'avatars');
