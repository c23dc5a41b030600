"""An erasure locks the fan's auth.users row, then their medal balances; a medal exchange must take
the same two in the same order, or the two wait for each other. The exchange used to lock the
balance first and the user row only at its insert's foreign-key check, and the erasure race test
hit that deadlock about once in six runs. Here it is made certain: one session holds the user row
as an erasure does first, the exchange starts, then that session asks for the balance."""

from __future__ import annotations

import threading
import time

import psycopg


def _waiting_on_a_lock(conn, pid: int) -> bool:
    return conn.execute("select wait_event_type = 'Lock' from pg_stat_activity where pid = %s",
                        (pid,)).fetchone()[0] is True


def test_an_exchange_takes_the_fans_user_row_before_their_balance(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("""
            insert into econ_test.ids values ('v', econ_test.vtuber('v@lock'));
            insert into econ_test.ids values
              ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":1000000}]')),
              ('f', econ_test.fan('f@lock'));
            insert into econ_test.ids values ('x', econ_test.exchange_item(econ_test.id('v'), 10));
            insert into econ_test.ids values ('o', econ_test.paid('f', 10, 'a', now()));
        """)
        fan, item = (conn.execute("select econ_test.id(%s)", (k,)).fetchone()[0] for k in ("f", "x"))

    result: dict = {}
    with psycopg.connect(fresh_db_url) as eraser, psycopg.connect(fresh_db_url, autocommit=True) as exchanger, \
            psycopg.connect(fresh_db_url, autocommit=True) as watcher:
        eraser.execute("select 1 from auth.users where id = %s for update", (fan,))  # erase_account's first lock
        pid = exchanger.execute("select pg_backend_pid()").fetchone()[0]

        def exchange():
            try:
                result["ok"] = exchanger.execute("select private.exchange_medals(%s, %s, 1, 'lock-1', now())",
                                                 (fan, item)).fetchone()[0]
            except psycopg.Error as exc:
                result["error"] = exc

        t = threading.Thread(target=exchange)
        t.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock(watcher, pid):
            assert time.monotonic() < deadline, "the exchange never waited for the erasure's lock"
            time.sleep(0.05)
        # The erasure's next lock: the balance. Held by the exchange (the old order), this waits
        # and the deadlock detector cancels one side; taken in the same order, it is free.
        eraser.execute("set local lock_timeout = '3s'")
        eraser.execute("select 1 from app.medal_balances where user_id = %s for update", (fan,))
        eraser.rollback()
        t.join(10)
    assert not t.is_alive()
    assert "error" not in result, result
    assert result["ok"]["created"] is True
