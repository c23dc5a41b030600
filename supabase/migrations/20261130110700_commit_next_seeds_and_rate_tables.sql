-- Provably fair against the operator, part 3: the triggers that commit every new fan's first
-- next seed and log a gacha's rate tables when it is published, and the backfill for data
-- that predates them (functions in sql/economy/10_fairness.sql).

create trigger profiles_after_insert_commit_seed
  after insert on app.profiles
  for each row execute function private.profiles_after_insert_commit_seed();

create trigger gachas_after_update_log_rate_tables
  after update of status on app.gachas
  for each row when (old.status = 'draft' and new.status <> 'draft')
  execute function private.gachas_after_publish_log_rate_tables();

-- Every existing fan gets a committed next seed (one random seed per row: the volatile call
-- stays in the subquery's target list).
insert into app.fairness_next_seeds (user_id, server_seed, server_seed_hash, committed_at)
select x.user_id, x.seed, encode(extensions.digest(x.seed, 'sha256'), 'hex'), now()
  from (select p.user_id, extensions.gen_random_bytes(32) as seed from app.profiles p) x
on conflict (user_id) do nothing;

-- Active pairs of the first protocol may carry a client seed the server chose: reveal them, so
-- every pull from now on uses a pair activated under the new rules (orders still pending from
-- before are drawn on the fan's next pair when paid).
update app.fairness_seeds s set active = false, revealed_at = now()
 where s.active and s.client_seed_source is null;

-- Gachas already past draft: log their tables now, oldest first.
do $$
declare
  r record;
begin
  for r in select g.id from app.gachas g
            where g.status <> 'draft'
              and exists (select 1 from app.gacha_items i where i.gacha_id = g.id and i.rate_ppm > 0)
            order by g.created_at, g.id loop
    perform private.publish_rate_tables(r.id, now());
  end loop;
end
$$;
