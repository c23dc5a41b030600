-- Test-only relations for tests/api/test_conformance_*.py (never part of a migration): PostgREST's
-- own spec fixture (test/spec/fixtures/schema.sql, data.sql) for the shapes its tests answer, so
-- each test can state PostgREST's expected answer as is.
create table public.clients (id integer primary key, name text not null);
create table public.projects (id integer primary key, name text not null,
                              client_id integer references public.clients (id));
alter table public.projects rename constraint projects_client_id_fkey to client;
create table public.users (id integer primary key, name text not null);
create table public.tasks (id integer primary key, name text not null,
                           project_id integer references public.projects (id));
alter table public.tasks rename constraint tasks_project_id_fkey to project;
create table public.users_tasks (user_id integer not null references public.users (id),
                                 task_id integer not null references public.tasks (id),
                                 primary key (task_id, user_id));
create table public.agents (id int primary key, name text, department_id int);
create table public.departments (id int primary key, name text, head_id int references public.agents (id));
alter table public.agents add constraint agents_department_id_fkey
  foreign key (department_id) references public.departments (id);
create table public.family_tree (id text primary key, name text not null,
                                 parent text references public.family_tree (id));
create table public.complex_items (id bigint primary key, name text, settings jsonb,
                                   arr_data integer[], field_with_space text);
create table public.json_arr (id integer primary key, data jsonb);
create table public.tsearch (text_search_vector tsvector);
create table public.ranges (id int primary key, range int4range);

insert into public.clients values (1, 'Microsoft'), (2, 'Apple');
insert into public.projects values (1, 'Windows 7', 1), (2, 'Windows 10', 1), (3, 'IOS', 2),
  (4, 'OSX', 2), (5, 'Orphan', null);
insert into public.users values (1, 'Angela Martin'), (2, 'Michael Scott'), (3, 'Dwight Schrute');
insert into public.tasks values (1, 'Design w7', 1), (2, 'Code w7', 1), (3, 'Design w10', 2),
  (4, 'Code w10', 2), (5, 'Design IOS', 3), (6, 'Code IOS', 3), (7, 'Design OSX', 4), (8, 'Code OSX', 4);
insert into public.users_tasks values (1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (2, 6), (2, 7), (3, 1), (3, 5);
insert into public.family_tree values ('1', 'Parental Unit', null), ('2', 'Kid One', '1'),
  ('3', 'Kid Two', '1'), ('4', 'Grandkid One', '2'), ('5', 'Grandkid Two', '3');
insert into public.complex_items values
  (1, 'One', '{"foo":{"int":1,"bar":"baz"}}', '{1}', null),
  (2, 'Two', '{"foo":{"int":1,"bar":"baz"}}', '{1,2}', null),
  (3, 'Three', '{"foo":{"int":1,"bar":"baz"}}', '{1,2,3}', null);
insert into public.json_arr values (1, '[1, 2, 3]'), (2, '[4, 5, 6]'), (3, '[[9, 8, 7], [11, 12, 13]]'),
  (4, '[[[5, 6], 7, 8]]'), (5, '[{"a": "A"}, {"b": "B"}]'), (6, '[{"a": [1,2,3]}, {"b": [4,5]}]'),
  (7, '{"c": [1,2,3], "d": [4,5]}'), (8, '{"c": [{"d": [4,5,6,7,8]}]}'),
  (9, '[{"0xy1": [1,{"23-xy-45": [2, {"xy-6": [3]}]}]}]'),
  (10, '{"!@#$%^&*_a": [{"!@#$%^&*_b": 1}, {"!@#$%^&*_c": [2]}], "!@#$%^&*_d": {"!@#$%^&*_e": 3}}');
insert into public.tsearch values (to_tsvector('english', 'It''s kind of fun to do the impossible')),
  (to_tsvector('english', 'But also fun to do what is possible')),
  (to_tsvector('english', 'Fat cats ate rats')),
  (to_tsvector('french', 'C''est un peu amusant de faire l''impossible')),
  (to_tsvector('german', 'Es ist eine Art Spaß, das Unmögliche zu machen'));
create table public.tsearch_to_tsvector (text_search text, jsonb_search jsonb);
insert into public.tsearch_to_tsvector (text_search) values ('It''s kind of fun to do the impossible'),
  ('But also fun to do what is possible'), ('Fat cats ate rats');
create table public.articles (id integer primary key, body text);
insert into public.articles values
  (1, 'No… It''s a thing; it''s like a plan, but with more greatness.'),
  (2, 'Stop talking, brain thinking. Hush.'),
  (3, 'It''s a fez. I wear a fez now. Fezes are cool.');
create table public.no_pk (a text, b text);
insert into public.no_pk values (null, null), ('1', '0'), ('2', '0');
insert into public.ranges values (1, '[1,3]'), (2, '[3,6]'), (3, '[6,9]'), (4, '[9,12]');

grant select on public.clients, public.projects, public.users, public.tasks, public.users_tasks,
  public.agents, public.departments, public.family_tree, public.complex_items, public.json_arr,
  public.tsearch, public.ranges, public.tsearch_to_tsvector, public.articles, public.no_pk to anon, authenticated;

-- A second exposed schema for Accept-Profile / Content-Profile.
create schema v2;
grant usage on schema v2 to anon, authenticated;
create table v2.parents (id integer primary key, name text);
insert into v2.parents values (1, 'parent v2-1'), (2, 'parent v2-2');
grant select on v2.parents to anon, authenticated;

-- A fan's orders through a security-invoker view: embedding must follow app.orders' RLS.
create view public.test_orders with (security_invoker = true) as
  select id, user_id, gacha_id, status from app.orders;
grant select on public.test_orders to anon, authenticated;

-- Writes (InsertSpec.hs, UpsertSpec.hs, MaxAffectedSpec.hs): anon may write these test tables.
create table public.tiobe_pls (name text primary key, rank smallint);
insert into public.tiobe_pls values ('Java', 1), ('C', 2), ('Python', 4);
create table public.with_defaults (id int primary key, label text default 'fallback', note text);
grant select, insert, update, delete on public.tiobe_pls, public.with_defaults, public.projects
  to anon, authenticated;

-- Functions as RPC (RpcSpec.hs): a set-returning function of a table's row type.
create function public.getallprojects() returns setof public.projects
language sql stable as $$ select * from public.projects $$;
grant execute on function public.getallprojects() to anon, authenticated;

-- Computed relationships (ComputedRelsSpec.hs): functions taking a table's row type and returning
-- another table's rows embed like a relation; `designers(videogames)` / `videogames(designers)`
-- override the foreign-key relationships of the same name.
create table public.designers (id int primary key, name text);
create table public.videogames (id int primary key, name text, designer_id int references public.designers (id));
insert into public.designers values (1, 'Sid Meier'), (2, 'Hironobu Sakaguchi');
insert into public.videogames values (1, 'Civilization I', 1), (2, 'Civilization II', 1),
  (3, 'Final Fantasy I', 2), (4, 'Final Fantasy II', 2);
create function public.computed_designers(public.videogames) returns setof public.designers
language sql stable rows 1 as $$ select * from public.designers where id = $1.designer_id $$;
create function public.computed_designers_noset(public.videogames) returns public.designers
language sql stable as $$ select * from public.designers where id = $1.designer_id $$;
create function public.computed_videogames(public.designers) returns setof public.videogames
language sql stable as $$ select * from public.videogames where designer_id = $1.id $$;
create function public.getallvideogames() returns setof public.videogames
language sql stable as $$ select * from public.videogames $$;
create function public.getalldesigners() returns setof public.designers
language sql stable as $$ select * from public.designers $$;
create function public.designers(public.videogames) returns setof public.designers
language sql stable rows 1 as $$ select * from public.designers where false $$;
create function public.videogames(public.designers) returns setof public.videogames
language sql stable as $$ select * from public.videogames where false $$;
create function public.computed_clients(public.projects) returns setof public.clients rows 1
language sql stable as $$ select * from public.clients where id = $1.client_id $$;
create function public.computed_projects(public.clients) returns setof public.projects rows 1
language sql stable as $$ select * from public.projects where client_id = $1.id $$;
grant select, insert, update, delete on public.designers, public.videogames to anon, authenticated;

-- Related orders on a jsonb column of a one-to-one embed (RelatedQueriesSpec.hs).
create table public.trash (id int primary key);
create table public.trash_details (id int primary key references public.trash (id), jsonb_col jsonb);
insert into public.trash values (1), (2), (3);
insert into public.trash_details values (1, '{"key": 10}'), (2, '{"key": 6}'), (3, '{"key": 8}');
grant select on public.trash, public.trash_details to anon, authenticated;
