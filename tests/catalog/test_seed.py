"""The demo seed: the logins `koepon up` prints work, and the catalog reads anonymously."""

from __future__ import annotations

import psycopg
import pytest

from koepon.localstack.seed import DEMO_LOGINS


@pytest.fixture(scope="module")
def conn(seeded_db_url):
    with psycopg.connect(seeded_db_url, autocommit=True) as c:
        yield c


def test_every_printed_login_signs_in_with_its_password(conn):
    for _role, (email, password, _uid) in DEMO_LOGINS:
        row = conn.execute(
            "select encrypted_password = extensions.crypt(%s, encrypted_password), "
            "exists (select 1 from auth.identities i where i.user_id = u.id and i.provider = 'email') "
            "from auth.users u where email = %s", (password, email)).fetchone()
        assert row == (True, True), email


def test_roles_match_the_printed_ones(conn):
    roles = dict(conn.execute(
        "select u.email, string_agg(r.role, ',' order by r.role) from auth.users u "
        "join app.user_roles r on r.user_id = u.id group by u.email").fetchall())
    assert roles["admin@koepon.local"] == "admin,fan"
    assert roles["hoshi@koepon.local"] == roles["luna@koepon.local"] == "fan,vtuber"
    for fan in ("applicant@koepon.local", "fan@koepon.local", "minor@koepon.local"):
        assert roles[fan] == "fan"
    age = conn.execute(
        "select extract(year from age((now() at time zone 'Asia/Tokyo')::date, p.birth_date))::int "
        "from app.profiles p join auth.users u on u.id = p.user_id where u.email = 'minor@koepon.local'"
    ).fetchone()[0]
    assert age == 14
    pending = conn.execute("select count(*) from app.vtuber_applications a join auth.users u on u.id = a.user_id "
                           "where u.email = 'applicant@koepon.local' and a.status = 'pending'").fetchone()[0]
    assert pending == 1


def test_anon_reads_the_catalog_with_odds_summing_to_100(conn):
    with conn.transaction():
        conn.execute("set local role anon")
        conn.execute("""select set_config('request.jwt.claims', '{"role":"anon"}', true)""")
        gachas = conn.execute("select id, status, pity_pulls from public.gachas order by id").fetchall()
        assert [g[1] for g in gachas] == ["published", "published", "ended"]
        for gacha_id, _status, _pity in gachas:
            disclosure = conn.execute("select public.get_gacha(%s)", (gacha_id,)).fetchone()[0]
            assert disclosure["odds_total_percent"] == 100
            assert sum(i["rate_ppm"] for i in disclosure["items"]) == 1_000_000
        assert any(g[2] for g in gachas), "one gacha has pity"
        stocked = conn.execute("select count(*) from public.gacha_items where stock is not null").fetchone()[0]
        assert stocked >= 1
        assert conn.execute("select count(*) from public.exchange_items").fetchone()[0] == 5
        assert conn.execute("select count(*) from public.vtubers").fetchone()[0] == 2


def test_every_content_path_has_a_storage_object(conn):
    missing = conn.execute(
        "select p from (select content_path p from app.gacha_items union all "
        "select content_path from app.exchange_items) x "
        "where not exists (select 1 from storage.objects o where o.bucket_id = 'rewards' and o.name = x.p)"
    ).fetchall()
    assert missing == []
    assert conn.execute("select public from storage.buckets where id = 'rewards'").fetchone()[0] is False
    drafts = conn.execute("select count(*) from app.gachas where status = 'draft'").fetchone()[0]
    assert drafts == 1
