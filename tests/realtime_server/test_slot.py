"""The WAL reader's slot: streamed while clients are connected, never left behind.

`pg_recvlogical` cannot make a temporary slot, so the server makes a permanent one and must drop
it itself: when it stops, and (for a process that was killed) at the next start on the database.
A slot left behind would keep WAL for nobody and make `DROP DATABASE` fail.
"""

from __future__ import annotations

import psycopg

from koepon.localstack.api.testing import running_api
from koepon.settings import superuser_url

from .test_protocol import recv, sock, v1


def _slots(url) -> list[tuple[str, bool]]:
    with psycopg.connect(superuser_url(url), autocommit=True) as conn:
        return conn.execute("select slot_name, active from pg_replication_slots where database = current_database() "
                            "and slot_name like 'koepon%%' order by 1").fetchall()


def test_the_slot_streams_while_connected_and_is_dropped_at_stop(fresh_db_url):
    with psycopg.connect(superuser_url(fresh_db_url), autocommit=True) as su:
        # a slot of a Realtime process that was killed (no process has this id)
        su.execute("select pg_create_logical_replication_slot('koepon_realtime_999999999_dead00', 'wal2json')")
    with running_api(fresh_db_url) as url:
        with sock(url) as ws:
            ws.send(v1("realtime:news", "phx_join", {"config": {}}, "1", "1"))
            assert recv(ws)["payload"]["status"] == "ok"
            with psycopg.connect(fresh_db_url, autocommit=True) as conn:
                conn.execute("select realtime.send('{\"n\": 1}'::jsonb, 'ev', 'news', false)")
            assert recv(ws, timeout=15)["payload"]["payload"]["n"] == 1  # streamed, not polled
            slots = _slots(fresh_db_url)
            assert len(slots) == 1 and slots[0][0] != "koepon_realtime_999999999_dead00", slots
            assert slots[0][1], "pg_recvlogical's walsender holds the slot"
    assert _slots(fresh_db_url) == []
