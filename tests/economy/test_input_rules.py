"""Input rules in SQL, through the public functions as PostgREST calls them: names in NFC without
control/format characters, price_ten <= 10 x price_single, and exchange_medals relabelling only
its own idempotency key's unique violation."""

from __future__ import annotations

import json
import unicodedata
import uuid

import psycopg
import pytest
from economy_helpers import act_as

START, END = "2026-01-01 00:00+00", "2099-01-01 00:00+00"

# Zero-width space, bidi override (RLO), right-to-left isolate, word joiner, soft hyphen, BOM,
# a tag character, a C0 and a C1 control: categories Cf and Cc.
LIARS = ["Koe\u200bpon", "\u202enopeoK", "Ko\u2067e\u2069pon", "Koe\u2060pon", "Koe\u00adpon", "\ufeffKoepon",
         "Koepon\U000e0041", "Koe\x07pon", "Koe\x85pon"]


def _call(conn, user, sql, params=()):
    """One API call as `user` inside its own transaction: the result, or (sqlstate, message)."""
    try:
        with conn.transaction():
            act_as(conn, user)
            return conn.execute(sql, params).fetchone()[0]
    except psycopg.Error as exc:
        return (exc.diag.sqlstate, exc.diag.message_primary)


@pytest.fixture(scope="module")
def people(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as conn:
        fan = str(conn.execute("select econ_test.fan(%s)", (f"f-{uuid.uuid4().hex[:8]}@t",)).fetchone()[0])
        vt = str(conn.execute("select econ_test.vtuber(%s)", (f"v-{uuid.uuid4().hex[:8]}@t",)).fetchone()[0])
        vt_user = str(conn.execute("select user_id from app.vtubers where id = %s", (vt,)).fetchone()[0])
    return {"fan": fan, "vtuber": vt, "vtuber_user": vt_user}


# ---------------------------------------------------------------------------------------
# Names that lie
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("liar", LIARS, ids=[f"U+{ord(c):04X}" for c in (
    "\u200b", "\u202e", "\u2067", "\u2060", "\u00ad", "\ufeff", "\U000e0041", "\x07", "\x85")])
def test_every_name_refuses_control_and_format_characters(econ_url, people, liar):
    assert unicodedata.category(next(c for c in liar if c not in "Koepon")) in ("Cc", "Cf")
    fan, vt_user = people["fan"], people["vtuber_user"]
    bad = ("PT400", "invalid_characters")
    with psycopg.connect(econ_url) as conn:
        assert _call(conn, fan, "select public.update_my_profile(%s)", (liar,)) == bad
        assert _call(conn, fan, "select public.submit_vtuber_application(%s, 'desc')", (liar,)) == bad
        assert _call(conn, vt_user, "select public.create_gacha(%s, %s, %s)", (liar, START, END)) == bad
        draft = _call(conn, vt_user, "select public.create_gacha('Fine', %s, %s)", (START, END))["id"]
        assert _call(conn, vt_user, "select public.update_gacha(%s, %s)",
                     (draft, json.dumps({"title": liar}))) == bad
        path = f"{people['vtuber']}/a.png"
        assert _call(conn, vt_user, "select public.add_gacha_item(%s, %s, 'N', 1000000, %s)",
                     (draft, liar, path)) == bad
        assert _call(conn, vt_user, "select public.create_exchange_item(%s, 10, %s)", (liar, path)) == bad
        # Directly on the tables too: the rule is a trigger, so no path skips it.
        conn.rollback()
        with pytest.raises(psycopg.Error, match="invalid_characters"):
            conn.execute("update app.vtubers set name = %s where id = %s", (liar, people["vtuber"]))
        conn.rollback()
        # Nothing half-written.
        assert conn.execute("select count(*) from app.gachas where title = %s", (liar,)).fetchone()[0] == 0


def test_names_are_stored_in_nfc(econ_url, people):
    decomposed = "Ko\u0065\u0301pon \u30db\u309a"  # e + combining acute, ホ + combining handakuten
    composed = unicodedata.normalize("NFC", decomposed)
    assert composed != decomposed
    with psycopg.connect(econ_url) as conn:
        got = _call(conn, people["fan"], "select public.update_my_profile(%s)", (decomposed,))
        assert got["display_name"] == composed
        g = _call(conn, people["vtuber_user"], "select public.create_gacha(%s, %s, %s)", (decomposed, START, END))
        assert g["title"] == composed


def test_sign_up_metadata_with_format_characters_still_signs_up(econ_url):
    with psycopg.connect(econ_url, autocommit=True) as conn:
        uid = conn.execute(
            "insert into auth.users (id, email, raw_user_meta_data) values (gen_random_uuid(), %s, %s) returning id",
            (f"m-{uuid.uuid4().hex[:8]}@t", json.dumps({"display_name": "\u202eKoe\u200bpon"}))).fetchone()[0]
        name = conn.execute("select display_name from app.profiles where user_id = %s", (uid,)).fetchone()[0]
    assert name == "Koepon"


# ---------------------------------------------------------------------------------------
# Prices
# ---------------------------------------------------------------------------------------
def test_a_ten_pull_may_not_cost_more_than_ten_singles(econ_url, people):
    vt_user = people["vtuber_user"]
    bad = ("PT400", "invalid_price_ten")
    with psycopg.connect(econ_url) as conn:
        assert _call(conn, vt_user, "select public.create_gacha('T', %s, %s, '', 100, 1001)", (START, END)) == bad
        ok = _call(conn, vt_user, "select public.create_gacha('T', %s, %s, '', 100, 1000)", (START, END))
        assert ok["price_ten"] == 1000, ok
        assert _call(conn, vt_user, "select public.update_gacha(%s, %s)",
                     (ok["id"], json.dumps({"price_single": 100, "price_ten": 1500}))) == bad
        raised = _call(conn, vt_user, "select public.update_gacha(%s, %s)",
                       (ok["id"], json.dumps({"price_single": 200, "price_ten": 2000})))
        assert (raised["price_single"], raised["price_ten"]) == (200, 2000), raised
        # A draft written before the rule (prices set directly) cannot be published with them.
        conn.execute("alter table app.gachas disable trigger gachas_before_write_price_rules")
        conn.execute("update app.gachas set price_single = 100, price_ten = 5000 where id = %s", (ok["id"],))
        conn.execute("alter table app.gachas enable trigger gachas_before_write_price_rules")
        conn.commit()
        _call(conn, vt_user, "select public.add_gacha_item(%s, 'i', 'N', 1000000, %s)",
              (ok["id"], f"{people['vtuber']}/i.png"))
        # Its content is uploaded (publishing refuses missing content first).
        conn.execute("insert into storage.objects (bucket_id, name) values ('rewards', %s) on conflict do nothing",
                     (f"{people['vtuber']}/i.png",))
        conn.commit()
        assert _call(conn, vt_user, "select public.publish_gacha(%s)", (ok["id"],)) == bad
        status = conn.execute("select status from app.gachas where id = %s", (ok["id"],)).fetchone()[0]
    assert status == "draft"


# ---------------------------------------------------------------------------------------
# exchange_medals: only its own key's unique violation is idempotency_key_reused
# ---------------------------------------------------------------------------------------
def test_exchange_relabels_only_the_idempotency_key_constraint(econ_url, people):
    fan, vt = people["fan"], people["vtuber"]
    with psycopg.connect(econ_url) as conn:
        item = str(conn.execute("select econ_test.exchange_item(%s, 1)", (vt,)).fetchone()[0])
        conn.execute("select private.post_medals(%s, %s, 100, 'admin_adjustment', null, null, 'test', now())",
                     (fan, vt))
        conn.commit()
        key = uuid.uuid4().hex
        first = _call(conn, fan, "select public.exchange_medals(%s, 1, %s)", (item, key))
        assert first["created"] is True, first
        # The real case: the same key for a different exchange.
        assert _call(conn, fan, "select public.exchange_medals(%s, 2, %s)", (item, key)) == \
            ("PT409", "idempotency_key_reused")
        # Another unique constraint failing inside the exchange (here: one reward per exchange,
        # added for this test only) is not about the key and must not be reported as if it were.
        conn.execute("create unique index test_one_reward_per_exchange on app.user_rewards (exchange_id)")
        got = _call(conn, fan, "select public.exchange_medals(%s, 2, %s)", (item, uuid.uuid4().hex))
        conn.rollback()  # drops the test index again
    assert got[0] == "23505" and "test_one_reward_per_exchange" in got[1], got
