"""The statement splitter: what the Supabase CLI records, and where each statement starts."""

from __future__ import annotations

from koepon.db.sqlsplit import normalise, split


def texts(sql: str) -> list[str]:
    return [s.text for s in split(sql)]


def test_plain_statements_lose_the_semicolon_and_surrounding_space():
    assert texts("select 1;\n  select 2 ;\n\nselect\n  3\n;") == ["select 1", "select 2", "select\n  3"]
    assert texts("select 1") == ["select 1"]
    assert texts("") == [] and texts(" ;\n; ") == []


def test_dollar_quotes():
    sql = ("create function f() returns int language plpgsql as $$ begin return 1; end $$;\n"
           "create function g() returns text language plpgsql as $body$\n"
           "begin\n  return $inner$ x; y $inner$ || $$;$$;\nend\n$body$;\n"
           "select $1;\n"                      # a parameter, not a dollar quote
           "select 'a$b;' as \"c$d;\";")
    assert texts(sql) == [
        "create function f() returns int language plpgsql as $$ begin return 1; end $$",
        "create function g() returns text language plpgsql as $body$\n"
        "begin\n  return $inner$ x; y $inner$ || $$;$$;\nend\n$body$",
        "select $1",
        "select 'a$b;' as \"c$d;\"",
    ]
    # an identifier ending in $ followed by a tag-like run is not a quote
    assert texts("select a$b$c; select 2;") == ["select a$b$c", "select 2"]


def test_comments_stay_with_the_next_statement():
    sql = ("-- heading; with a semicolon\n"
           "select 1; -- trailing; comment\n"
           "/* block; /* nested; */ still comment; */\n"
           "select 2;\n"
           "-- the end; nothing after\n")
    assert texts(sql) == [
        "-- heading; with a semicolon\nselect 1",
        "-- trailing; comment\n/* block; /* nested; */ still comment; */\nselect 2",
        "-- the end; nothing after",          # recorded by the CLI, has no code
    ]
    assert [s.has_code for s in split(sql)] == [True, True, False]


def test_quoted_semicolons():
    sql = ("insert into t values ('a;b', 'it''s; fine', E'esc\\'; still', e'\\\\');\n"
           "select \"odd;name\", \"quote\"\";\" from t;\n"
           "select 'not E\\'; select 3;")
    assert texts(sql) == [
        "insert into t values ('a;b', 'it''s; fine', E'esc\\'; still', e'\\\\')",
        "select \"odd;name\", \"quote\"\";\" from t",
        # a plain string: backslash is a character, the quote closes it
        "select 'not E\\'",
        "select 3",
    ]


def test_begin_atomic_bodies_and_parentheses():
    sql = ("create function f() returns int language sql\n"
           "begin atomic\n  select 1;\n  select case when true then 2 end;\nend;\n"
           "create rule r as on insert to t do also (insert into u values (1); insert into u values (2));\n"
           "select 'atomic';")
    assert texts(sql) == [
        "create function f() returns int language sql\n"
        "begin atomic\n  select 1;\n  select case when true then 2 end;\nend",
        "create rule r as on insert to t do also (insert into u values (1); insert into u values (2))",
        "select 'atomic'",
    ]
    # `begin;` ... `end;` transaction blocks are ordinary statements
    assert texts("begin;\nselect 1;\nend;") == ["begin", "select 1", "end"]


def test_lines_point_at_the_first_non_blank_character():
    sql = "\n\nselect 1;\n-- about two\n\nselect\n 2;\n   select 3; select 4;"
    assert [(s.line, s.text.splitlines()[0]) for s in split(sql)] == [
        (3, "select 1"), (4, "-- about two"), (8, "select 3"), (8, "select 4")]


def test_normalise_ignores_layout_and_full_line_comments_only():
    a = ["-- old words\ncreate table t (a int)", "select 1"]
    b = ["create   table t\n  (a int);", "-- new words\nselect 1"]
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(["create table t (a bigint)", "select 1"])
    assert normalise(["select 1"]) != normalise(["select 1", "select 2"])
    assert normalise(["select '--x'"]) != normalise(["select '--y'"])
