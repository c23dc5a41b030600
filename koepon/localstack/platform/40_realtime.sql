-- The `realtime` schema hosted Supabase provides for Broadcast from the database and for private
-- channels (its Realtime server creates these in every project: github.com/supabase/realtime,
-- lib/realtime/tenants/repo/migrations). Same names, signatures, grants and owner, so our
-- migrations only add policies and triggers, on hosted Supabase and locally alike.
-- realtime.messages is partitioned by day on `inserted_at`, as hosted (migration
-- 20241030150047_messages_partitioning): partitions `messages_YYYY_MM_DD`, made for yesterday to
-- three days ahead and dropped once older than 72 hours by Realtime's janitor
-- (lib/realtime/tenants.ex create_messages_partitions, lib/realtime/messages.ex
-- delete_old_messages). Locally realtime_local.maintain_messages() does the janitor's work: at
-- build, at every `koepon db start` / migrate, and hourly from the local Realtime server.
create schema if not exists realtime;
grant usage on schema realtime to postgres, anon, authenticated, service_role;
-- `postgres` is no member of supabase_realtime_admin (as on hosted); it writes policies on
-- realtime.messages through supautils' policy_grants, modelled in 45_supautils_allowances.sql.

create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  id uuid not null default gen_random_uuid(),
  primary key (id, inserted_at)
) partition by range (inserted_at);
create index if not exists messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to postgres, anon, authenticated, service_role;
-- supabase/realtime's tenant migrations also give `postgres` the rest of the table's privileges
-- (GRANT DELETE, TRUNCATE, REFERENCES, TRIGGER ... TO postgres) and, since
-- DelegateMessagesGrantsToPostgres, SELECT and INSERT with grant option.
grant delete, truncate, references, trigger on realtime.messages to postgres;
grant select, insert on realtime.messages to postgres with grant option;

-- The topic of the channel being authorised (set by Realtime while it checks the policies,
-- and by realtime.send for the insert), for use in policies on realtime.messages.
create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text;
$$;
alter function realtime.topic() owner to supabase_realtime_admin;

-- Broadcast `payload` as `event` on `topic` (private channels only when `private`). A failure
-- never aborts the caller's transaction: hosted Realtime's version turns it into a warning.
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;
    execute format('SET LOCAL realtime.topic TO %L', topic);
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;

-- For row triggers: broadcast the change (old and new record, operation, table) on a topic.
create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW')
returns void
language plpgsql
as $$
declare
  row_data jsonb := '{}'::jsonb;
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
    row_data := jsonb_build_object('old_record', old, 'record', new, 'operation', operation,
                                   'table', table_name, 'schema', table_schema);
    perform realtime.send(row_data, event_name, topic_name);
  else
    raise exception 'Unexpected operation type: %', operation;
  end if;
exception
  when others then
    raise exception 'Failed to process the row: %', sqlerrm;
end;
$$;
alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  owner to supabase_realtime_admin;

-- The janitor's work, local only (hosted Realtime runs it from its own servers, so this schema
-- is no part of the hosted surface and nothing of ours calls it from a migration).
create schema if not exists realtime_local authorization supabase_admin;
revoke all on schema realtime_local from public;
grant usage on schema realtime_local to postgres;

-- the partitions belong to the table's owner, as create_messages_partitions makes them
grant usage, create on schema realtime to supabase_realtime_admin;

create or replace function realtime_local.maintain_messages() returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  today date := (now() at time zone 'utc')::date;
  oldest date := ((now() at time zone 'utc') - interval '72 hours')::date;
  d date;
  part record;
begin
  -- partitions from yesterday to three days ahead (create_messages_partitions)
  for d in select generate_series(today - 1, today + 3, interval '1 day')::date loop
    if to_regclass(format('realtime.messages_%s', to_char(d, 'YYYY_MM_DD'))) is null then
      execute format('create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
                     'messages_' || to_char(d, 'YYYY_MM_DD'), d, d + 1);
    end if;
  end loop;
  -- drop the days older than 72 hours (delete_old_messages)
  for part in
    select c.relname from pg_catalog.pg_inherits i
      join pg_catalog.pg_class c on c.oid = i.inhrelid
     where i.inhparent = 'realtime.messages'::regclass
       and c.relname ~ '^messages_[0-9]{4}_[0-9]{2}_[0-9]{2}$'
  loop
    if to_date(substr(part.relname, 10), 'YYYY_MM_DD') < oldest then
      execute format('drop table if exists realtime.%I', part.relname);
    end if;
  end loop;
end;
$$;
alter function realtime_local.maintain_messages() owner to supabase_realtime_admin;
revoke all on function realtime_local.maintain_messages() from public;
grant execute on function realtime_local.maintain_messages() to postgres;
comment on function realtime_local.maintain_messages() is
  'Local stand-in for hosted Realtime''s janitor: daily realtime.messages partitions from yesterday '
  'to three days ahead, partitions older than 72 hours dropped.';

select realtime_local.maintain_messages();
