"""Postgres Changes through the wal2json slot: each subscriber receives only the rows its RLS lets
it select, with only the columns its role may read, filtered as asked.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest
from realtime import AsyncRealtimeClient

from koepon.localstack.realtime import changes
from koepon.settings import ANON_KEY

from .conftest import token
from .test_clients import rt_url, subscribed, until
from .test_live_pull import FAN, _order, _pay, _signed_in, payments  # noqa: F401 (fixture)

ALICE, BOB = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture(scope="module", autouse=True)
def notes(seeded_db_url):
    """A table in the publication: RLS by owner, and the `secret` column kept from authenticated."""
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("""
          create table public.rt_notes (id bigint primary key, owner uuid not null, body text, score int,
                                        meta jsonb, secret text);
          alter table public.rt_notes enable row level security;
          create policy "owners read" on public.rt_notes for select to authenticated
            using (owner = auth.uid());
          grant select (id, owner, body, score, meta) on public.rt_notes to authenticated;
          alter publication supabase_realtime add table public.rt_notes;
          create table public.rt_unpublished (id int primary key);
          grant select on public.rt_unpublished to authenticated;
        """)


def _sql(url, q, *args):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(q, args)


async def subscribed_to_postgres(channel, timeout: float = 10.0):
    """Subscribe, then wait for the `system` message "Subscribed to PostgreSQL" (status ok).

    SUBSCRIBED only says the channel was joined; hosted Realtime registers the Postgres Changes
    afterwards and sends this message once its replication poller will deliver them. A change
    committed before it may be missed, so a test writes only after it (as supabase-js tests do)."""
    system = []
    channel.on_system(lambda p: system.append(p) if p.extension == "postgres_changes" else None)
    await subscribed(channel, timeout)
    await until(lambda: system, timeout, "the 'Subscribed to PostgreSQL' system message")
    assert (system[0].status, system[0].message) == ("ok", "Subscribed to PostgreSQL"), system
    return channel


async def _watch(api_url, sub: str, changes: list[dict], got: list):
    cl = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
    await cl.connect()
    ch = cl.channel(f"pg-{uuid.uuid4().hex[:6]}")
    for c in changes:
        ch.on_postgres_changes(c["event"], lambda p, c=c: got.append((c.get("tag"), p)),
                               table=c.get("table"), schema=c.get("schema", "public"), filter=c.get("filter"))
    await cl.set_auth(token(sub))
    await subscribed_to_postgres(ch)
    return cl


def test_changes_reach_only_subscribers_whose_rls_allows_them_with_permitted_columns(api_url, seeded_db_url):
    async def main():
        alice, bob = [], []
        ca = await _watch(api_url, ALICE, [{"event": "*", "table": "rt_notes"}], alice)
        cb = await _watch(api_url, BOB, [{"event": "*", "table": "rt_notes"}], bob)
        _sql(seeded_db_url, "insert into public.rt_notes values (1, %s, 'hello', 5, '{\"k\": [1]}', 'pssst')",
             ALICE)
        _sql(seeded_db_url, "update public.rt_notes set body = 'edited' where id = 1")
        # Visibility is checked against the row as it is when the change is read (realtime.apply_rls
        # looks it up by primary key): delete only once the update has been delivered.
        await until(lambda: len(alice) >= 2, what="alice's insert and update")
        _sql(seeded_db_url, "delete from public.rt_notes where id = 1")
        _sql(seeded_db_url, "insert into public.rt_unpublished values (1)")
        await until(lambda: len(alice) >= 3, what="alice's three changes")
        await asyncio.sleep(0.5)
        ins, upd, dele = (p["data"] for _, p in alice[:3])
        assert (ins["type"], upd["type"], dele["type"]) == ("INSERT", "UPDATE", "DELETE")
        assert ins["schema"] == "public" and ins["table"] == "rt_notes" and ins["errors"] is None
        assert ins["record"] == {"id": 1, "owner": ALICE, "body": "hello", "score": 5, "meta": {"k": [1]}}, \
            "the secret column is not readable by authenticated, so it is not sent"
        assert [c["name"] for c in ins["columns"]] == ["id", "owner", "body", "score", "meta"]
        assert {c["name"]: c["type"] for c in ins["columns"]}["id"] == "int8"
        assert ins["commit_timestamp"].endswith("Z") and "T" in ins["commit_timestamp"]
        assert upd["record"]["body"] == "edited" and upd["old_record"] == {"id": 1}
        assert dele["old_record"] == {"id": 1}, "with RLS on, a DELETE carries only the primary key"
        assert len(alice) == 3, "nothing from a table outside the publication"
        # Bob cannot select Alice's row: no INSERT or UPDATE; a DELETE cannot be checked and goes to all
        assert [p["data"]["type"] for _, p in bob] == ["DELETE"]
        await ca.close()
        await cb.close()

    asyncio.run(main())


def test_filters_eq_neq_lt_lte_gt_gte_in(api_url, seeded_db_url):
    filters = {"eq": "score=eq.5", "neq": "score=neq.5", "lt": "score=lt.5", "lte": "score=lte.5",
               "gt": "score=gt.5", "gte": "score=gte.5", "in": "body=in.(a,c)"}

    async def main():
        got = []
        cl = await _watch(api_url, ALICE, [{"event": "INSERT", "table": "rt_notes", "filter": f, "tag": tag}
                                           for tag, f in filters.items()], got)
        for i, (score, body) in enumerate([(4, "a"), (5, "b"), (6, "c")], start=10):
            _sql(seeded_db_url, "insert into public.rt_notes (id, owner, body, score) values (%s, %s, %s, %s)",
                 i, ALICE, body, score)
        await until(lambda: len({p["data"]["record"]["id"] for _, p in got}) == 3, what="three inserts")
        await asyncio.sleep(0.5)
        await cl.close()
        return got

    got = asyncio.run(main())
    # The Python client hands every postgres_changes message to every callback; the server's ids
    # say which subscriptions matched: group the scores each subscription id received.
    ids: dict[int, set] = {}
    for _, p in got:
        for i in p["ids"]:
            ids.setdefault(i, set()).add(p["data"]["record"]["score"])
    by_scores = sorted(tuple(sorted(v)) for v in ids.values())
    # eq {5}, neq {4,6}, lt {4}, lte {4,5}, gt {6}, gte {5,6}, in(a,c) {4,6}
    assert by_scores == sorted([(5,), (4, 6), (4,), (4, 5), (6,), (5, 6), (4, 6)])


def test_the_documented_pulls_subscription_with_supabase_js(js, api_url, seeded_db_url, payments):  # noqa: F811
    order = _order(api_url, *FAN)
    fan = _signed_in(js, *FAN)
    fan.send(op="channel", name="p", topic=f"pulls-{order['order_id']}",
             postgres=[{"event": "INSERT", "schema": "app", "table": "pulls",
                        "filter": f"order_id=eq.{order['order_id']}"}])
    assert fan.status("p")["status"] == "SUBSCRIBED"
    fan.wait(lambda e: e["ev"] == "system" and e["payload"].get("extension") == "postgres_changes")
    anon = js()
    anon.send(op="channel", name="a", topic="all-pulls", postgres=[{"event": "INSERT", "schema": "app",
                                                                      "table": "pulls"}])
    assert anon.status("a")["status"] == "SUBSCRIBED"
    _pay(payments.payments_url, order)
    deadline = time.monotonic() + 15
    while len(fan.matching(lambda e: e["ev"] == "postgres")) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = [e["payload"] for e in fan.matching(lambda e: e["ev"] == "postgres")]
    assert len(rows) == 10
    assert all(r["eventType"] == "INSERT" and r["new"]["order_id"] == order["order_id"] for r in rows)
    assert [r["new"]["nonce"] for r in rows] == sorted(r["new"]["nonce"] for r in rows)
    # anon may read four columns of app.pulls but not its primary key: Realtime answers 401
    anon.wait(lambda e: e["ev"] == "postgres", 15)  # the anonymous subscriber is told, not silently ignored
    anon_rows = [e["payload"] for e in anon.matching(lambda e: e["ev"] == "postgres")]
    assert all(r["errors"] == ["Error 401: Unauthorized"] and not r["new"] for r in anon_rows)


def test_select_narrows_the_record_and_the_primary_key_always_comes_along(api_url, seeded_db_url):
    async def main():
        got = []
        cl = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
        await cl.connect()
        ch = cl.channel("pg-select")
        ch.on_postgres_changes("INSERT", lambda p: got.append(p), table="rt_notes", schema="public",
                               select=["body"])
        await cl.set_auth(token(ALICE))
        await subscribed_to_postgres(ch)
        _sql(seeded_db_url, "insert into public.rt_notes (id, owner, body, score) values (50, %s, 'sel', 1)", ALICE)
        await until(lambda: got, what="the insert")
        await cl.close()
        return got[0]["data"]

    data = asyncio.run(main())
    assert data["record"] == {"id": 50, "body": "sel"}
    assert [c["name"] for c in data["columns"]] == ["id", "body"]



def test_a_table_published_after_the_stream_started_is_live_once_subscribed(api_url, seeded_db_url, monkeypatch):
    """"Subscribed to PostgreSQL" means a change committed afterwards is delivered, also for a table
    added to the publication while the server was already reading the WAL (hosted Realtime's
    poller decodes the publication's tables as they are at each poll)."""
    # No periodic look at the publication during this test: only the subscription may bring rt_late in.
    monkeypatch.setattr(changes, "PUBLICATION_CHECK", 3600.0)

    async def main():
        # a first subscriber: the server is now streaming the WAL with the tables published so far
        first = await _watch(api_url, ALICE, [{"event": "INSERT", "table": "rt_notes"}], [])
        _sql(seeded_db_url, """
          create table public.rt_late (id bigint primary key, owner uuid not null);
          alter table public.rt_late enable row level security;
          create policy "owners read" on public.rt_late for select to authenticated using (owner = auth.uid());
          grant select on public.rt_late to authenticated;
          alter publication supabase_realtime add table public.rt_late;
        """)
        got = []
        cl = await _watch(api_url, ALICE, [{"event": "INSERT", "table": "rt_late"},
                                           {"event": "INSERT", "table": "rt_notes"}], got)
        _sql(seeded_db_url, "insert into public.rt_late values (1, %s)", ALICE)
        _sql(seeded_db_url, "insert into public.rt_notes (id, owner, body) values (60, %s, 'after')", ALICE)
        await until(lambda: any(p["data"]["table"] == "rt_notes" for _, p in got), what="the rt_notes insert")
        await asyncio.sleep(0.3)
        await first.close()
        await cl.close()
        return list(dict.fromkeys(p["data"]["table"] for _, p in got))

    # In commit order on one channel: the rt_late insert was not skipped by a stream that did not
    # decode rt_late yet (it would have come, if ever, only after the stream's next restart).
    assert asyncio.run(main()) == ["rt_late", "rt_notes"]


def test_a_stream_restart_loses_and_repeats_nothing(api_url, seeded_db_url, monkeypatch):
    """The stream restarts when the publication changes: what the old pg_recvlogical had written but
    the server had not read yet is still delivered, and what the new one replays (the slot resumes at
    the last confirmed position) is not delivered twice."""
    monkeypatch.setattr(changes, "PUBLICATION_CHECK", 0.05)  # restart while the batch is being read

    async def main():
        got = []
        cl = await _watch(api_url, ALICE, [{"event": "INSERT", "table": "rt_notes", "filter": "id=gte.1000"}], got)
        _sql(seeded_db_url, f"""
          insert into public.rt_notes (id, owner, body)
            select i, '{ALICE}', 'bulk' from generate_series(1000, 1299) i;
          create table public.rt_restart (id int primary key);
          alter publication supabase_realtime add table public.rt_restart;
        """)
        await until(lambda: len({p["data"]["record"]["id"] for _, p in got}) == 300, 20, "the 300 inserts")
        await asyncio.sleep(1.5)  # anything replayed twice would have arrived by now
        await cl.close()
        return [p["data"]["record"]["id"] for _, p in got]

    ids = asyncio.run(main())
    assert sorted(ids) == list(range(1000, 1300))


def test_a_table_outside_the_publication_is_refused_as_hosted_refuses_it(api_url, seeded_db_url):
    """Hosted Realtime subscribes an entry to the published tables it names; naming none is an error
    system message, never "Subscribed to PostgreSQL" for changes that could not come."""
    async def main():
        cl = AsyncRealtimeClient(rt_url(api_url), ANON_KEY)
        await cl.connect()
        ch = cl.channel("pg-unpublished")
        system, states = [], []
        ch.on_postgres_changes("INSERT", lambda p: None, table="rt_unpublished", schema="public",
                               filter="id=eq.1")
        ch.on_system(lambda p: system.append(p))
        ch.on_error = lambda payload: system.append(payload)  # the client hands error payloads here
        await cl.set_auth(token(ALICE))
        await ch.subscribe(lambda s, e: states.append(s))
        await until(lambda: system, what="the system message")
        await cl.close()
        return system[0]

    msg = asyncio.run(main())
    assert msg == {"extension": "postgres_changes", "status": "error", "channel": "pg-unpublished",
                   "message": "Unable to subscribe to changes with given parameters. Please check Realtime is "
                              "enabled for the given connect parameters: [event: INSERT, schema: public, "
                              'table: rt_unpublished, filters: [{"id", "eq", "1", false}], select: nil]'}


def test_a_change_handed_over_before_its_transaction_is_visible_is_checked_once_it_is(seeded_db_url):
    """Logical decoding hands a commit over a moment before other sessions can see its rows: the
    per-subscriber RLS lookup then missed an INSERT the subscriber may read, and the change was lost
    (the three-inserts flake of the filters test). Here the transaction is still open when the
    lookup starts, the widest form of that moment; the lookup waits for it to become visible."""
    async def main():
        writer = await psycopg.AsyncConnection.connect(seeded_db_url)
        rls = await psycopg.AsyncConnection.connect(seeded_db_url)
        await writer.execute("insert into public.rt_notes (id, owner, body) values (70, %s, 'late')", (ALICE,))
        xid = int((await (await writer.execute("select pg_current_xact_id()::text")).fetchone())[0]) & 0xFFFFFFFF

        async def commit_soon():
            await asyncio.sleep(0.3)
            await writer.commit()

        committing = asyncio.create_task(commit_soon())
        reader = changes.WalReader(None, seeded_db_url, 0.05)
        claims = {"role": "authenticated", "sub": ALICE}
        seen = await reader._visible(rls, "public", "rt_notes", [{"name": "id", "type": "bigint", "value": 70}],
                                     claims, xid)
        await committing
        # and a row the subscriber may not read stays unseen (no endless wait on a visible transaction)
        hidden = await reader._visible(rls, "public", "rt_notes", [{"name": "id", "type": "bigint", "value": 70}],
                                       {"role": "authenticated", "sub": BOB}, xid)
        await writer.close()
        await rls.close()
        return seen, hidden

    assert asyncio.run(main()) == (True, False)
