"""Broadcast from the database (realtime.send, realtime.broadcast_changes) and private channels
authorised by RLS policies on realtime.messages (select to receive, insert to send).
"""

from __future__ import annotations

import json

import psycopg
import pytest

from .conftest import token
from .test_protocol import recv, recv_until, sock, v1

MEMBER = "00000000-0000-4000-a000-000000000005"  # the seeded fan


@pytest.fixture(scope="module", autouse=True)
def short_linger(api_url):
    """The WAL slot outlives the last connection by 10 s (changes.LINGER); the last test waits for
    it to go twice, so this module's server lets it go after 1 s (the rule is the same)."""
    from koepon.localstack.api.testing import APPS

    APPS[api_url].state.realtime.linger = 1.0


@pytest.fixture(scope="module", autouse=True)
def policies(seeded_db_url):
    """Policies a project could write: members read `members:*`; only MEMBER may send there."""
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("""
          create policy "members read" on realtime.messages for select to authenticated
            using (realtime.topic() like 'members:%');
          create policy "one member writes" on realtime.messages for insert to authenticated
            with check (realtime.topic() like 'members:%' and auth.uid() = '00000000-0000-4000-a000-000000000005');
          create table public.rt_items (id int primary key, name text);
          create function public.rt_items_broadcast() returns trigger language plpgsql as $$
          begin
            perform realtime.broadcast_changes('items', tg_op, tg_op, tg_table_name, tg_table_schema, new, old);
            return null;
          end $$;
          create trigger rt_items_after_change after insert or update or delete on public.rt_items
            for each row execute function public.rt_items_broadcast();
          create policy "items read" on realtime.messages for select to anon using (realtime.topic() = 'items');
        """)


def _sql(url, q, *args):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(q, args)


def test_realtime_send_reaches_public_subscribers_in_both_serialisations(api_url, seeded_db_url):
    with sock(api_url) as a, sock(api_url, "2.0.0") as b:
        a.send(v1("realtime:news", "phx_join", {"config": {}}, "1", "1"))
        b.send(json.dumps(["1", "1", "realtime:news", "phx_join", {"config": {}}]))
        recv(a), recv(b)
        _sql(seeded_db_url, "select realtime.send(%s::jsonb, 'headline', 'news', false)", '{"title": "速報"}')
        msg = recv(a)
        assert msg["event"] == "broadcast" and msg["ref"] is None
        assert msg["payload"]["event"] == "headline" and msg["payload"]["type"] == "broadcast"
        assert msg["payload"]["payload"]["title"] == "速報"
        assert msg["payload"]["payload"]["id"] == msg["payload"]["meta"]["id"], "send adds the message id"
        frame = recv(b)
        assert isinstance(frame, bytes) and frame[0] == 4  # a JSON user broadcast for vsn 2.0.0
        topic_len, event_len, meta_len, enc = frame[1], frame[2], frame[3], frame[4]
        assert enc == 1 and frame[5:5 + topic_len] == b"realtime:news"
        meta = json.loads(frame[5 + topic_len + event_len:5 + topic_len + event_len + meta_len])
        assert meta == {"id": msg["payload"]["meta"]["id"]}


def test_private_messages_reach_only_authorised_private_subscribers(api_url, seeded_db_url):
    with sock(api_url) as member, sock(api_url) as public, sock(api_url) as anon:
        member.send(v1("realtime:members:lounge", "phx_join",
                       {"config": {"private": True}, "access_token": token(MEMBER)}, "1", "1"))
        assert recv(member)["payload"]["status"] == "ok"
        public.send(v1("realtime:members:lounge", "phx_join", {"config": {}}, "1", "1"))
        assert recv(public)["payload"]["status"] == "ok"
        anon.send(v1("realtime:members:lounge", "phx_join", {"config": {"private": True}}, "1", "1"))
        assert recv(anon)["payload"] == {"status": "error", "response": {
            "reason": "Unauthorized: You do not have permissions to read from this Channel topic: members:lounge"}}
        _sql(seeded_db_url, "select realtime.send('{\"n\": 1}'::jsonb, 'e', 'members:lounge', true)")
        assert recv(member)["payload"]["payload"]["n"] == 1
        with pytest.raises(TimeoutError):  # a public channel of the same name is another room
            recv(public, timeout=0.7)


def test_sending_on_a_private_channel_needs_the_insert_policy(api_url):
    other = "00000000-0000-4000-a000-000000000099"
    with sock(api_url) as writer, sock(api_url) as reader, sock(api_url) as stranger:
        for ws, sub in ((writer, MEMBER), (reader, other), (stranger, other)):
            ws.send(v1("realtime:members:talk", "phx_join", {
                "config": {"private": True, "broadcast": {"ack": True}}, "access_token": token(sub)}, "1", "1"))
            assert recv(ws)["payload"]["status"] == "ok"
        writer.send(v1("realtime:members:talk", "broadcast", {"type": "broadcast", "event": "m", "payload": {"a": 1}},
                       "2", "1"))
        assert recv(writer)["payload"] == {"status": "ok", "response": {}}
        assert recv(reader)["payload"]["payload"] == {"a": 1}
        assert recv(stranger)["payload"]["payload"] == {"a": 1}
        # no insert policy for this user: Realtime drops it and does not even acknowledge
        stranger.send(v1("realtime:members:talk", "broadcast", {"type": "broadcast", "event": "m",
                                                                 "payload": {"a": 2}}, "2", "1"))
        with pytest.raises(TimeoutError):
            recv(stranger, timeout=0.7)
        with pytest.raises(TimeoutError):
            recv(reader, timeout=0.3)


def test_broadcast_changes_from_a_row_trigger(api_url, seeded_db_url):
    with sock(api_url) as ws:
        ws.send(v1("realtime:items", "phx_join", {"config": {"private": True}}, "1", "1"))
        assert recv(ws)["payload"]["status"] == "ok"
        _sql(seeded_db_url, "insert into public.rt_items values (1, 'first')")
        _sql(seeded_db_url, "update public.rt_items set name = 'second' where id = 1")
        ins = recv_until(ws, lambda m: m["event"] == "broadcast")["payload"]
        assert ins["event"] == "INSERT"
        assert {k: ins["payload"][k] for k in ("operation", "table", "schema", "record", "old_record")} == {
            "operation": "INSERT", "table": "rt_items", "schema": "public",
            "record": {"id": 1, "name": "first"}, "old_record": None}
        upd = recv_until(ws, lambda m: m["event"] == "broadcast")["payload"]
        assert upd["payload"]["record"] == {"id": 1, "name": "second"}
        assert upd["payload"]["old_record"] == {"id": 1, "name": "first"}


def test_a_failing_send_warns_and_never_aborts_the_callers_transaction(seeded_db_url):
    with psycopg.connect(seeded_db_url) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("select realtime.send('{}'::jsonb, 'e', null, true)")  # topic is not null: the insert fails
        assert conn.execute("select 1").fetchone() == (1,), "the transaction is still usable"
        conn.rollback()
    assert any(n.startswith("WarnSendingBroadcastMessage") for n in notices), notices


def _slots(url) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select count(*) from pg_replication_slots where slot_name like 'koepon_realtime_%%' "
                            "and database = current_database()").fetchone()[0]


def _until(cond, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_the_wal_is_read_only_while_clients_are_connected(api_url, seeded_db_url):
    _until(lambda: _slots(seeded_db_url) == 0, 20, "the slot outlived its clients")
    with sock(api_url) as ws:
        ws.send(v1("realtime:slot", "phx_join", {"config": {}}, "1", "1"))
        assert recv(ws)["payload"]["status"] == "ok"
        assert _slots(seeded_db_url) == 1, "a join is answered once the slot exists"
        _sql(seeded_db_url, "select realtime.send('{\"n\": 1}'::jsonb, 'e', 'slot', false)")
        assert recv(ws)["payload"]["payload"]["n"] == 1
    _until(lambda: _slots(seeded_db_url) == 0, 20, "the slot is dropped after the last client left")
