"""The benchmark's own world: a throwaway database (clone of the migrated template in the private
cluster), data generated with set-based SQL, and API / payment processes on ephemeral ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time

import psycopg

from ...db import platform_base, testing
from ...localstack import services
from ...settings import JWT_SECRET
from . import data


def has_function(conn, signature: str) -> bool:
    return conn.execute("select to_regprocedure(%s) is not null", (signature,)).fetchone()[0]


class BenchDB:
    """A clone of the migrated template with bench.* helpers, fans, gachas and order queues."""

    def __init__(self, n_gachas: int = 100, n_vtubers: int = 10):
        self.url, self.name = testing.clone("koepon_bench")
        self.fans = 0
        self.queued = 0
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="koepon-bench-")
        with self.connect() as conn:
            conn.execute(data.BASE_SQL)
            if has_function(conn, "private.create_order(uuid,uuid,integer,text,timestamptz,bytea,text)"):
                with conn.transaction():
                    conn.execute(data.CATALOG_SQL.replace("@NV@", str(n_vtubers)).replace("@NG@", str(n_gachas)))
                self.has_catalog = True
            else:
                self.has_catalog = False
            # Pre-installed on hosted (schema extensions); `postgres` may not create it itself.
            platform_base.ensure_extension(conn, "pg_stat_statements")

    @classmethod
    def attach(cls, url: str) -> BenchDB:
        """A bench database `koepon bench --keep` left behind, to queue more orders in (its fans and
        queue continue where they stopped); close() leaves it in place."""
        db = cls.__new__(cls)
        db.url, db.name, db.procs = url, None, []
        db.tmp = tempfile.TemporaryDirectory(prefix="koepon-bench-")
        with db.connect() as conn:
            db.fans = conn.execute("select coalesce(max(n), 0) from bench.fans").fetchone()[0]
            db.queued = conn.execute("select coalesce(max(n), 0) from bench.q").fetchone()[0]
            db.has_catalog = has_function(conn, "private.create_order(uuid,uuid,integer,text,timestamptz,bytea,text)")
        return db

    def connect(self, **kw) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, **kw)

    def close(self, keep: bool = False) -> None:
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.terminate()
                p.wait(timeout=10)
        if not keep and self.name:
            with contextlib.suppress(Exception):
                testing.drop(self.name)
        self.tmp.cleanup()

    # -- fans ------------------------------------------------------------------------------
    def new_fans(self, count: int) -> int:
        """Creates `count` adult fans (auth.users → profile trigger); returns the first n."""
        lo, hi = self.fans + 1, self.fans + count
        with self.connect() as conn:
            conn.execute(data.FANS_SQL, {"lo": lo, "hi": hi})
            conn.execute(data.USERS_SQL.replace("{table}", "bench.fans"),
                         {"prefix": "bench-fan-", "lo": lo, "hi": hi})
        self.fans = hi
        return lo

    def fan_ids(self, lo: int, count: int) -> list[str]:
        with self.connect() as conn:
            return [str(r[0]) for r in conn.execute(
                "select user_id from bench.fans where n between %s and %s order by n", (lo, lo + count - 1))]

    # -- orders ------------------------------------------------------------------------------
    def queue_orders(self, count: int, gacha: str = "spread", per_fan: int = 1) -> int:
        """`count` pending 10-pull orders made by private.create_order (one SQL statement, two
        connections in parallel) for fresh fans; queued as bench.q rows nbase+1..nbase+count."""
        nfans = -(-count // per_fan)
        flo = self.new_fans(nfans)
        nbase = self.queued
        self.queued += count
        gsel = {"spread": "b.kind = 'spread' and b.n = 1 + f.n %% "
                          "(select count(*) from bench.gachas where kind = 'spread')",
                "hot": "b.kind = 'hot'", "hotcap": "b.kind = 'hotcap'"}[gacha]
        sql = f"""
          insert into bench.q (n, order_id, user_id, gacha_id)
          select %(nbase)s + s.i, (private.create_order(f.user_id, b.gacha_id, 10, 'bench-q-' || s.i + %(nbase)s, now(),
                                 extensions.gen_random_bytes(32), 'bench') ->> 'order_id')::uuid, f.user_id, b.gacha_id
            from generate_series(%(lo)s::integer, %(hi)s::integer) s(i)
            join bench.fans f on f.n = %(flo)s + (s.i - 1) / %(per)s
            join bench.gachas b on {gsel}"""
        # Chunks of at most 1,000 orders per statement (each its own transaction: one huge
        # transaction would re-update the same cap shard row thousands of times, walking an
        # ever longer chain of its own row versions), on two connections in parallel.
        import threading

        chunks = [(lo, min(lo + 999, count)) for lo in range(1, count + 1, 1000)]
        errors: list[BaseException] = []

        def worker(mine):
            try:
                with self.connect() as c:
                    for lo, hi in mine:
                        c.execute(sql, {"nbase": nbase, "lo": lo, "hi": hi, "flo": flo, "per": per_fan})
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(chunks[i::2],)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        with self.connect() as conn:
            conn.execute("analyze bench.q")
            if gacha == "hotcap":
                # Queueing made thousands of orders a second on the cap's 8 shard rows: vacuum their
                # dead versions now, as autovacuum does between real orders (else hot-gacha measures
                # index bloat the benchmark made, not the order path).
                conn.execute("vacuum app.stock_shards")
        return nbase

    def warm_rate_tables(self) -> None:
        """Fulfils one order per gacha so each has its recorded rate table (as after a launch's
        first sale), and notes one item, its rate-table version for the bare baseline."""
        nbase = self.queue_orders(1, "hot")
        self.queue_orders(1, "hotcap")
        ng = self._spread_count()
        self.queue_orders(ng, "spread")
        with self.connect() as conn:
            conn.execute("""select private.fulfill_order(q.order_id, 'stripe', 'pi_warm_' || q.n, 1000, 'JPY', now(),
                                   extensions.gen_random_bytes(32), 'bench') from bench.q q where q.n > %s""", (nbase,))
            conn.execute("""update bench.gachas b set item_id = i.id, rarity = i.rarity, content_path = i.content_path,
                                   rate_version = (select t.version from app.rate_tables t
                                                    where t.gacha_id = b.gacha_id and not t.pity limit 1)
                              from app.gacha_items i where i.gacha_id = b.gacha_id and i.sort_order = 0""")

    def _spread_count(self) -> int:
        with self.connect() as conn:
            return conn.execute("select count(*) from bench.gachas where kind = 'spread'").fetchone()[0]

    def gacha_ids(self, kind: str) -> list[str]:
        with self.connect() as conn:
            return [str(r[0]) for r in conn.execute(
                "select gacha_id from bench.gachas where kind = %s order by n", (kind,))]

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, argv: list[str], name: str, health_url: str, env: dict[str, str] | None = None) -> None:
        self.procs.append(services.spawn(argv, os.path.join(self.tmp.name, name), env, health_url))

    def start_api(self, workers: int = 1) -> str:
        port = services.free_port()
        url = f"http://127.0.0.1:{port}"
        self._spawn(services.api_argv(port, self.url, workers), f"api-{port}.log", url + "/health",
                    {"KOEPON_STORAGE_DIR": os.path.join(self.tmp.name, "storage")})
        self.api_pids = {url: self.procs[-1].pid}  # its session: the API's CPU (profile.PartyCPU)
        return url

    def start_webhooks(self, workers: int | None = None, api_workers: int = 1, direct: bool = True,
                       threads: int | None = None) -> str:
        """The payment service with its own API and fake providers, configured as `koepon up` does
        (one API worker, the payment service's default workers, its RPCs straight to PostgreSQL)
        unless told otherwise (`direct=False`: through the API)."""
        api_url = self.start_api(api_workers)
        port, fakes_port = services.free_port(), services.free_port()
        url, fakes_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fakes_port}"
        self._spawn(services.fakes_argv(fakes_port, url), f"fakes-{fakes_port}.log", fakes_url + "/health")
        api_pid = self.procs[-2].pid
        env = services.payments_env(api_url, fakes_url, self.url if direct else None)
        if threads:
            env["WEBHOOKS_THREADS"] = str(threads)
        self._spawn(services.payments_argv(port, workers), f"webhooks-{port}.log",
                    url + "/health", env)
        # Each started in a session of its own: the bench reads each party's CPU by session.
        self.webhook_parties = {"payment service": self.procs[-1].pid, "API": api_pid}
        return url


def mint_token(user_id: str, role: str = "authenticated", ttl: int = 7200) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"sub": user_id, "role": role, "aud": "authenticated", "iat": now, "exp": now + ttl,
                       "iss": "http://127.0.0.1/auth/v1", "session_id": user_id, "is_anonymous": False},
                      JWT_SECRET, algorithm="HS256")
