-- A refund's revocation is never stamped before a download it did not stop. The refund takes its
-- time from its transaction's start; a download that started later but committed first (under
-- the reward's row lock) is stamped later than that. The revocation must come after it, or the
-- log would show a download "after revocation" that the revocation never prevented.
begin;
select plan(4);

insert into econ_test.ids values ('v', econ_test.vtuber('v@t'));
insert into econ_test.ids values
  ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"a","rarity":"N","rate_ppm":1000000}]')),
  ('f', econ_test.fan('f@t'));
insert into econ_test.ids values ('o', econ_test.paid('f', 10, 'k1', timestamptz '2026-11-01 10:00+00'));
insert into econ_test.ids select 'r' || row_number() over (order by r.id), r.id
  from app.user_rewards r join app.pulls p on p.id = r.pull_id where p.order_id = econ_test.id('o');

-- The download's transaction started at 12:00:05 and committed; the refund's started at 12:00:00.
select lives_ok($$ select private.request_download(econ_test.id('f'), econ_test.id('r1'),
                                                   timestamptz '2026-11-01 12:00:05+00', null, null) $$,
                'a download of the first reward, stamped after the refund transaction began');
select lives_ok($$ select private.record_refund(econ_test.id('o'), 're_late', 100, timestamptz '2026-11-01 12:00:00+00') $$,
                'the refund records with its own (earlier) transaction time');

select is((select count(*)::integer from app.downloads d join app.user_rewards u on u.id = d.user_reward_id
            where u.revoked_at is null or d.created_at > u.revoked_at), 0,
          'no logged download lies after its reward''s revocation');
select is((select count(*)::integer from app.user_rewards u join app.pulls p on p.id = u.pull_id
            where p.order_id = econ_test.id('o') and u.id <> econ_test.id('r1')
              and u.revoked_at = timestamptz '2026-11-01 12:00:00+00'), 9,
          'the 9 rewards nobody downloaded are revoked at the refund''s time');

select * from finish();
rollback;
