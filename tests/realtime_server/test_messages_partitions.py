"""realtime.messages is partitioned by day and kept as hosted Realtime's janitor keeps it.

Hosted facts (github.com/supabase/realtime): migration 20241030150047_messages_partitioning makes
the table `partition by range (inserted_at)`; Realtime.Tenants.create_messages_partitions makes
`messages_YYYY_MM_DD` for yesterday to three days ahead, owned by supabase_realtime_admin;
Realtime.Messages.delete_old_messages drops the partitions of days before now() - 72 hours.
"""

from __future__ import annotations

import datetime as dt

import psycopg

from koepon.db import connection, migrations, testing
from koepon.settings import paths, superuser_url


def _partitions(conn) -> dict[str, str]:
    return dict(conn.execute(
        "select c.relname, pg_get_userbyid(c.relowner) from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = 'realtime.messages'::regclass").fetchall())


def _name(d: dt.date) -> str:
    return "messages_" + d.strftime("%Y_%m_%d")


def test_messages_is_partitioned_by_day_from_yesterday_to_three_days_ahead(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        kind, key = conn.execute("select c.relkind::text, pg_get_partkeydef(c.oid) from pg_class c "
                                 "where c.oid = 'realtime.messages'::regclass").fetchone()
        assert (kind, key) == ("p", "RANGE (inserted_at)")
        today = conn.execute("select (now() at time zone 'utc')::date").fetchone()[0]
        parts = _partitions(conn)
        for k in range(-1, 4):
            assert parts.get(_name(today + dt.timedelta(days=k))) == "supabase_realtime_admin"
        # realtime.send lands in today's partition
        conn.execute("select realtime.send('{\"a\": 1}'::jsonb, 'ev', 'partition-test', false)")
        where = conn.execute("select tableoid::regclass::text from realtime.messages "
                             "where topic = 'partition-test'").fetchone()[0]
        assert where == f"realtime.{_name(today)}"


def test_the_janitor_drops_days_older_than_72_hours_and_keeps_the_rest(fresh_db_url):
    with psycopg.connect(superuser_url(fresh_db_url), autocommit=True) as su:
        today = su.execute("select (now() at time zone 'utc')::date").fetchone()[0]
        for k in (5, 3, 2):
            d = today - dt.timedelta(days=k)
            su.execute(f"create table realtime.{_name(d)} partition of realtime.messages "
                       f"for values from ('{d}') to ('{d + dt.timedelta(days=1)}')")
            su.execute(f"alter table realtime.{_name(d)} owner to supabase_realtime_admin")
            su.execute("insert into realtime.messages (topic, extension, inserted_at) values ('old', 'broadcast', %s)",
                       (dt.datetime.combine(d, dt.time(12)),))
        su.execute(f"drop table realtime.{_name(today + dt.timedelta(days=3))}")
    # as `postgres`, not a superuser, the way `koepon db start` / migrate runs it
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        migrations.migrate(conn, paths(), echo=lambda _m: None)
        parts = _partitions(conn)
        left = conn.execute("select count(*) from realtime.messages where topic = 'old'").fetchone()[0]
    # now() - 72 h falls on the day three days ago: that day is kept, the one before is not
    assert _name(today - dt.timedelta(days=5)) not in parts
    assert _name(today - dt.timedelta(days=3)) in parts and _name(today - dt.timedelta(days=2)) in parts
    assert left == 2
    assert _name(today + dt.timedelta(days=3)) in parts  # made again


def test_a_clone_gets_todays_partitions_when_the_template_is_from_an_earlier_day():
    """The session's template is built once; a run that crosses UTC midnight clones it on a later
    day. A template missing the newest day (as one built the day before is) still gives clones
    yesterday to three days ahead."""
    admin = testing.admin_url()
    tpl = connection.with_dbname(admin, testing.template())
    with psycopg.connect(tpl, autocommit=True) as su:
        today = su.execute("select (now() at time zone 'utc')::date").fetchone()[0]
        newest = _name(today + dt.timedelta(days=3))
        su.execute(f"drop table realtime.{newest}")
    try:
        url, name = testing.clone("koepon_partitions")
        try:
            with psycopg.connect(url) as conn:
                parts = _partitions(conn)
        finally:
            testing.drop(name)
        for k in range(-1, 4):
            assert parts.get(_name(today + dt.timedelta(days=k))) == "supabase_realtime_admin"
    finally:
        with psycopg.connect(tpl, autocommit=True) as su:
            su.execute("select realtime_local.maintain_messages()")
            assert newest in _partitions(su)
