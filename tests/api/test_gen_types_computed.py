"""`koepon gen types typescript` types computed relationships as the Supabase CLI does.

The CLI (postgres-meta's TypeScript template, src/server/templates/typescript.ts, and its expected
output in test/server/typegen.ts) does not list a computed relationship in the table's
`Relationships`: it writes the function under `Functions` with `SetofOptions: { from, to,
isOneToOne, isSetofReturn }`, `from` being the row type the function takes, and postgrest-js
(2.119) resolves an embedded `computed_fn(cols)` by looking for a function whose
`SetofOptions.from` is the table being selected. A `setof` estimated at one row (`rows 1`) is one
row (`isOneToOne: true`, Returns not an array); more rows (the default 1000) make it to-many.
Fixture: the designers/videogames functions of PostgREST's ComputedRelsSpec.hs (as in
tests/api/sql/embed_fixture.sql)."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner
from test_gen_types import TS, _tsc

from koepon.cli import main

FIXTURE = """
create table public.designers (id int primary key, name text);
create table public.videogames (id int primary key, name text, designer_id int references public.designers (id));
create function public.computed_designers(public.videogames) returns setof public.designers
language sql stable rows 1 as $$ select * from public.designers where id = $1.designer_id $$;
create function public.computed_designers_noset(public.videogames) returns public.designers
language sql stable as $$ select * from public.designers where id = $1.designer_id $$;
create function public.computed_videogames(public.designers) returns setof public.videogames
language sql stable as $$ select * from public.videogames where designer_id = $1.id $$;
create function public.getallvideogames() returns setof public.videogames
language sql stable as $$ select * from public.videogames $$;
"""


@pytest.fixture(scope="module")
def computed_ts(db_url) -> str:
    from psycopg.conninfo import conninfo_to_dict

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FIXTURE)
    d = conninfo_to_dict(db_url)
    url = f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}"
    res = CliRunner().invoke(main, ["gen", "types", "typescript", "--db-url", url])
    assert res.exit_code == 0, res.output
    return res.output


def _function(ts: str, name: str) -> str:
    line = next(x for x in ts.splitlines() if x.strip().startswith(f"{name}: "))
    return line.strip()


VIDEOGAME_ROW = '{ id: number; name: string | null; designer_id: number | null }'
DESIGNER_ROW = '{ id: number; name: string | null }'


def test_computed_relationships_carry_setof_options(computed_ts):
    game_arg = '{ "": Database["public"]["Tables"]["videogames"]["Row"] }'
    designer_arg = '{ "": Database["public"]["Tables"]["designers"]["Row"] }'
    assert _function(computed_ts, "computed_designers") == (
        f'computed_designers: {{ Args: {game_arg}; Returns: {DESIGNER_ROW}; SetofOptions: {{ from: "videogames"; '
        'to: "designers"; isOneToOne: true; isSetofReturn: true } }')
    assert _function(computed_ts, "computed_designers_noset") == (
        f'computed_designers_noset: {{ Args: {game_arg}; Returns: {DESIGNER_ROW}; SetofOptions: {{ '
        'from: "videogames"; to: "designers"; isOneToOne: true; isSetofReturn: false } }')
    assert _function(computed_ts, "computed_videogames") == (
        f'computed_videogames: {{ Args: {designer_arg}; Returns: {VIDEOGAME_ROW}[]; SetofOptions: {{ '
        'from: "designers"; to: "videogames"; isOneToOne: false; isSetofReturn: true } }')
    # A function of no row returning a table's rows: from any caller ("*").
    assert _function(computed_ts, "getallvideogames") == (
        f'getallvideogames: {{ Args: never; Returns: {VIDEOGAME_ROW}[]; SetofOptions: {{ from: "*"; '
        'to: "videogames"; isOneToOne: false; isSetofReturn: true } }')


def test_computed_embeds_type_check_with_supabase_js(computed_ts):
    res = _tsc(computed_ts, TS / "check_computed_ok.ts")
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_wrong_computed_embed_does_not_compile(computed_ts):
    res = _tsc(computed_ts, TS / "check_computed_wrong.ts")
    assert res.returncode != 0
    assert "check_computed_wrong.ts(9," in res.stdout and "title" in res.stdout, res.stdout
