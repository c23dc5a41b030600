"""Reading the WAL: Broadcast from the database and Postgres Changes, from one wal2json slot.

Supabase Realtime polls a temporary logical replication slot through wal2json over SQL for
Postgres Changes (lib/extensions/postgres_cdc_rls/replications.ex: pg_create_logical_replication_slot
(name, 'wal2json', true), then realtime.list_changes) and streams `realtime.messages` inserts for
Broadcast from the database (lib/realtime/tenants/replication_connection.ex). Locally one wal2json
slot serves both, streamed by `pg_recvlogical` (PostgreSQL's own client for the replication
protocol, which psycopg does not speak): the changes of realtime.messages (its daily partitions)
and of the tables in the `supabase_realtime` publication, nothing else. Streaming instead of
polling keeps the database's cost per change constant: a poll re-decodes all the WAL since the
slot's restart point on every call.

Postgres Changes follow realtime.apply_rls: a subscriber receives an INSERT or UPDATE only when
its role and claims can select the row (looked up by primary key, under RLS), with only the
columns its role may select; a DELETE reaches every matching subscriber but, on a table with RLS
enabled, carries only the primary key. Filters `eq neq lt lte gt gte in` are applied to the new
record (the old one for DELETE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

import orjson
import psycopg
from psycopg import sql

from .authz import SET_CONFIG, _config_args
from .protocol import Message
from .slot import add_tables, drop_orphan_slots, drop_slot, recvlogical_argv, slot_name, stop_process
from .subscriptions import covers, params_to_log, parse_entries, passes

log = logging.getLogger("koepon.realtime")
ACTIONS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}
_MESSAGES = re.compile(r"^messages(?:_\d{4}_\d{2}_\d{2})?$")
JANITOR_INTERVAL = 3600.0  # seconds between realtime.messages partition upkeeps
PUBLICATION_CHECK = 5.0  # seconds between looks at the supabase_realtime publication's tables
LINGER = 10.0  # seconds the slot outlives the last connection
SUBSCRIBE_TIMEOUT = 15.0  # seconds a subscription waits for the stream to carry its tables
REPLAY_MEMORY = 8192  # change LSNs remembered, so a restarted stream's replay is not sent twice


def _value(col: dict):
    """wal2json's value as realtime.cast(...)::jsonb gives it: json parsed, timestamps ISO 8601."""
    v = col.get("value")
    t = col.get("type", "")
    if isinstance(v, str):
        if t in ("json", "jsonb"):
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.loads(v)
        elif t.startswith("timestamp"):
            v = v.replace(" ", "T", 1)
            if re.search(r"[+-]\d\d$", v):
                v += ":00"
    return v



class WalReader:
    def __init__(self, hub, db_url: str, interval: float):
        self.hub = hub
        self.db_url = db_url
        self.interval = interval
        self.slot = slot_name()
        self.subs: dict = {}  # Channel -> list[Sub]
        self.ready = asyncio.Event()  # the slot exists (or self.error says why not)
        self.wanted = asyncio.Event()  # a client is connected or joining
        self.error: str | None = None
        self._task: asyncio.Task | None = None
        self._columns: dict = {}  # (role, schema, table) -> (expires, {column: typname}, rls_enabled)
        self.last_poll = 0.0
        self.streaming: frozenset | None = None  # the tables the running pg_recvlogical decodes
        self._recheck = False  # a subscription asks for the publication to be looked at now
        self._seen: dict[str, None] = {}  # LSNs of the changes handled lately (oldest first)
        self._settled: int | None = None  # the last transaction seen visible to new snapshots

    async def start(self) -> None:
        """The slot is made when the first client connects and dropped when the last one has been
        gone for LINGER seconds: an API process nobody listens to reads no WAL at all."""
        self._task = asyncio.create_task(self._run())

    def want(self) -> None:
        self.wanted.set()

    async def wait_ready(self, timeout: float = 15) -> bool:
        """Before a join is answered: the slot exists, so nothing committed after the answer is missed.
        False when it does not exist yet (the database is slow or down)."""
        self.wanted.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout)
        return self.ready.is_set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(self, ch) -> str | None:
        """Register the channel's Postgres Changes; None once a change committed from now on reaches it.

        Hosted Realtime says "Subscribed to PostgreSQL" once the subscription is a row of
        realtime.subscription, and its poller decodes the publication's tables as they are at each
        poll (realtime.list_changes). Here the stream decodes the tables published when it started:
        a table published since then is added (the stream restarted) before the answer."""
        subs = parse_entries(ch.pg_changes)
        if isinstance(subs, str):
            return subs
        if self.error:
            return self.error
        if not self.ready.is_set():
            return "Realtime was unable to connect to the project database"
        try:
            async with self.hub.pool.connection() as conn:
                published = await self._published_tables(conn)
        except psycopg.Error as exc:
            return f"Realtime was unable to connect to the project database: {exc}"
        for sub, params in zip(subs, ch.pg_changes, strict=True):
            if not any(covers(sub, t) for t in published):
                # Subscriptions.create inserts one realtime.subscription row per published table
                # the entry names; none is this error, and nothing is subscribed.
                return ("Unable to subscribe to changes with given parameters. Please check Realtime is enabled "
                        f"for the given connect parameters: [{params_to_log(sub, params)}]")
        needed = {t for t in published if any(covers(sub, t) for sub in subs)}
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while self.streaming is None or not needed <= self.streaming:
            if time.monotonic() > deadline or not self.ready.is_set():
                return "Realtime was unable to connect to the project database"
            self._recheck = True
            await asyncio.sleep(self.interval)
        self.subs[ch] = subs
        return None

    def unsubscribe(self, ch) -> None:
        self.subs.pop(ch, None)

    def claims_changed(self, ch) -> None:
        """Nothing to redo: every change is checked against the channel's current claims."""

    # -- the stream ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self.wanted.wait()
            try:
                async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
                    level = (await (await conn.execute("show wal_level")).fetchone())[0]
                    if level != "logical":
                        self.error = ("Realtime needs wal_level = logical on the database (it is "
                                      f"{level}): restart the cluster with `koepon db stop && koepon db start`")
                        log.error("realtime: %s", self.error)
                        self.ready.set()
                        await asyncio.sleep(30)
                        self.ready.clear()
                        continue
                    await drop_orphan_slots(conn)
                    await conn.execute("select pg_create_logical_replication_slot(%s, 'wal2json', false)",
                                       (self.slot,))
                    try:
                        # From here on everything committed reaches the slot: joins may be answered.
                        self.error = None
                        self.ready.set()
                        await self._follow(conn)
                    finally:
                        self.ready.clear()  # before the slot goes: no join is answered without one
                        await drop_slot(conn, self.slot)
                self.slot = slot_name()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a restarted database: a new connection, a new slot
                self.ready.clear()
                log.warning("realtime: WAL reader lost its connection (%s); retrying", exc)
                self.slot = slot_name()
                await asyncio.sleep(1)

    async def _follow(self, conn) -> None:
        """Stream the slot until nobody has been connected for the hub's `linger` seconds.

        pg_recvlogical keeps one walsender decoding the WAL as it is written, each record once,
        as hosted Realtime's replication connection does for Broadcast from the database. Polling
        the slot over SQL (pg_logical_slot_get_changes) decodes again, on every call, all the WAL
        since the slot's restart point, which moves only at the next running-transactions record
        (every 15 s under load): measured at 4.3 ms of database CPU per fulfilment
        (docs/performance.md, Realtime)."""
        janitor_at = 0.0
        idle_since = None
        async with self.hub.pool.connection() as rls:
            while True:
                self._recheck = False
                tables = await self._published_tables(conn)
                proc = await asyncio.create_subprocess_exec(
                    *recvlogical_argv(self.db_url, self.slot, add_tables(tables)),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 26)
                # Everything committed from here on is decoded with these tables: the slot resumes
                # where the previous stream's confirmed position left it.
                self.streaming = tables
                restart = False
                try:
                    checked = time.monotonic()
                    while True:
                        if time.monotonic() >= janitor_at:
                            await self._janitor(conn)
                            janitor_at = time.monotonic() + JANITOR_INTERVAL
                        try:
                            line = await asyncio.wait_for(proc.stdout.readline(), self.interval * 10)
                        except TimeoutError:
                            line = None
                        if line == b"":
                            err = (await proc.stderr.read()).decode(errors="replace").strip()
                            raise RuntimeError(f"pg_recvlogical ended: {err[-500:]}")
                        if line and line.strip():
                            await self._handle(line, rls, tables)
                        self.last_poll = time.monotonic()
                        if self.hub.connections:
                            idle_since = None
                        else:
                            idle_since = idle_since or time.monotonic()
                            if time.monotonic() - idle_since > self.hub.linger:
                                # No await between the check and these: no join slips in between.
                                self.ready.clear()
                                self.wanted.clear()
                                return
                        if self._recheck or time.monotonic() - checked > PUBLICATION_CHECK:
                            checked = time.monotonic()
                            self._recheck = False
                            if await self._published_tables(conn) != tables:
                                restart = True
                                break  # restart the stream with the publication's new tables
                finally:
                    self.streaming = None
                    if restart:
                        await self._drain(proc, rls, tables)
                    else:
                        await stop_process(proc)

    async def _drain(self, proc, rls, tables: frozenset) -> None:
        """Stop a stream and handle what it had already written: pg_recvlogical confirms to the
        server what it wrote to the pipe, so a line left unread there would never come again."""
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        while True:  # however long handling takes; give up only on a pipe silent for 5 s
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 5)
            except TimeoutError:
                log.warning("realtime: pg_recvlogical did not stop within 5 s")
                break
            if not line:
                break
            if line.strip():
                await self._handle(line, rls, tables)
        await stop_process(proc)

    async def _handle(self, line: bytes, rls, published: frozenset) -> None:
        if not self.subs and b'"schema":"realtime"' not in line:
            return  # a published table's change and no Postgres Changes subscriber: skip the parse
        change = orjson.loads(line)
        # A restarted stream resumes at the slot's confirmed position, which trails what the
        # previous one wrote by up to pg_recvlogical's status interval: skip what was handled.
        lsn = change.get("lsn")
        if lsn is not None:
            if lsn in self._seen:
                return
            self._seen[lsn] = None
            if len(self._seen) > REPLAY_MEMORY:
                del self._seen[next(iter(self._seen))]
        if change.get("schema") == "realtime" and _MESSAGES.match(change.get("table") or ""):
            if change.get("action") == "I":
                self._message(change)
            return
        if self.subs and (change.get("schema"), change.get("table")) in published:
            await self._change(rls, change)

    @staticmethod
    async def _published_tables(conn) -> frozenset:
        cur = await conn.execute("select schemaname::text, tablename::text from pg_publication_tables "
                                 "where pubname = 'supabase_realtime'")
        return frozenset(tuple(r) for r in await cur.fetchall())

    @staticmethod
    async def _janitor(conn) -> None:
        """Hosted Realtime's janitor: realtime.messages partitions for the coming days, none older
        than 72 hours (realtime_local.maintain_messages, from the platform base). A database
        without it (built before the table was partitioned) is left as it is."""
        try:
            async with conn.transaction():
                cur = await conn.execute("select to_regprocedure('realtime_local.maintain_messages()')")
                if (await cur.fetchone())[0] is not None:
                    await conn.execute("select realtime_local.maintain_messages()")
        except psycopg.Error as exc:
            log.warning("realtime: realtime.messages upkeep failed: %s", exc)

    def _message(self, change: dict) -> None:
        row = {c["name"]: c.get("value") for c in change.get("columns", [])}
        if row.get("extension") != "broadcast" or row.get("payload") is None or not row.get("topic"):
            return
        payload = row["payload"]
        body = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        self.hub.broadcast_from_database(row["topic"], bool(row.get("private")), row.get("event") or "",
                                         body, str(row.get("id")))

    async def _meta(self, rls, role: str, schema: str, table: str):
        key = (role, schema, table)
        hit = self._columns.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1], hit[2]
        async with rls.transaction():
            cur = await rls.execute(
                "select a.attname, t.typname, pg_catalog.has_column_privilege(%s, c.oid, a.attname, 'SELECT'), "
                "c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
                "join pg_type t on t.oid = a.atttypid where n.nspname = %s and c.relname = %s order by a.attnum",
                (role, schema, table))
            rows = await cur.fetchall()
        cols = [(name, typ) for name, typ, ok, _ in rows if ok]
        rls_on = bool(rows and rows[0][3])
        self._columns[key] = (time.monotonic() + 5, cols, rls_on)
        return cols, rls_on

    async def _visible(self, rls, schema: str, table: str, pk: list[dict], claims: dict,
                       xid: int | None = None) -> bool:
        if not pk:
            return False
        where = sql.SQL(" and ").join(
            sql.SQL("{} = {}::{}").format(sql.Identifier(c["name"]), sql.Placeholder(), sql.SQL(c["type"]))
            for c in pk)
        query = sql.SQL("select 1 from {}.{} where {}").format(sql.Identifier(schema), sql.Identifier(table), where)
        settled = xid is None or xid == self._settled
        try:
            for _ in range(2):
                async with rls.transaction(force_rollback=True):
                    await rls.execute(SET_CONFIG, _config_args("", claims))
                    cur = await rls.execute(query, [str(c["value"]) for c in pk])
                    if await cur.fetchone() is not None:
                        return True
                # Not found: final only if the change's transaction was visible when we looked.
                if settled:
                    return False
                await self._settle(rls, xid)
                settled = True
        except psycopg.Error as exc:
            log.info("realtime: RLS check failed on %s.%s: %s", schema, table, exc)
        return False

    async def _settle(self, rls, xid: int, timeout: float = 2.0) -> None:
        """Wait until transaction `xid` is visible to new snapshots.

        Logical decoding hands a transaction over once its commit record is flushed, a moment
        before the committing backend leaves the proc array and its rows become visible to other
        sessions: a lookup in that moment misses a row that is there (a busy machine widens it).
        Transactions arrive in commit order, so one settled xid is remembered."""
        deadline = time.monotonic() + timeout
        while True:
            async with rls.transaction(force_rollback=True):
                snapshot = (await (await rls.execute("select pg_current_snapshot()::text")).fetchone())[0]
            if _xid_visible(snapshot, xid) or time.monotonic() > deadline:
                self._settled = xid
                return
            await asyncio.sleep(0.002)

    async def _change(self, rls, change: dict) -> None:
        action = ACTIONS.get(change.get("action"))
        schema, table = change["schema"], change["table"]
        new = {c["name"]: _value(c) for c in change.get("columns", [])}
        old = {c["name"]: _value(c) for c in change.get("identity", [])}
        pk_names = [c["name"] for c in change.get("pk", [])]
        pk = [{"name": n, "type": next((c["type"] for c in change.get("columns", []) + change.get("identity", [])
                                        if c["name"] == n), "text"), "value": (new or old).get(n)} for n in pk_names]
        stamp = change.get("timestamp", "")
        commit = _commit_timestamp(stamp)
        for ch, subs in list(self.subs.items()):
            matched = [s for s in subs
                       if s.schema in (schema, "*") and s.table in (None, table) and s.event in ("*", action)
                       and (s.filter is None or passes(s.filter, old if action == "DELETE" else new))]
            if not matched:
                continue
            role = str(ch.claims.get("role") or "anon")
            try:
                cols, rls_on = await self._meta(rls, role, schema, table)
            except psycopg.Error:
                continue
            allowed = {n for n, _ in cols}
            if action != "DELETE":
                error = None
                if not pk_names:
                    error = "Error 400: Bad Request, no primary key"
                elif not all(n in allowed for n in pk_names):
                    error = "Error 401: Unauthorized"
                if error:  # realtime.apply_rls answers these subscribers with the error alone
                    ch.conn.push(Message(ch.topic, "postgres_changes", {"ids": [s.id for s in matched], "data": {
                        "columns": [], "commit_timestamp": None, "errors": [error], "schema": schema,
                        "table": table, "type": action, **({"record": {}} if action != "DELETE" else {})}}))
                    continue
                if rls_on and not await self._visible(rls, schema, table, pk, ch.claims, change.get("xid")):
                    continue
            # one message per distinct `select` list, as apply_rls groups them
            for select in dict.fromkeys(s.select for s in matched):
                keep = allowed if select is None else {n for n in allowed if n in select or n in pk_names}
                data = {"schema": schema, "table": table, "commit_timestamp": commit,
                        "columns": [{"name": n, "type": t} for n, t in cols if n in keep], "type": action,
                        "errors": None}
                if action in ("INSERT", "UPDATE"):
                    data["record"] = {k: v for k, v in new.items() if k in keep}
                if action == "UPDATE":
                    data["old_record"] = {k: v for k, v in old.items() if k in keep}
                if action == "DELETE":
                    data["old_record"] = {k: v for k, v in old.items() if k in keep and (not rls_on or k in pk_names)}
                ids = [s.id for s in matched if s.select == select]
                ch.conn.push(Message(ch.topic, "postgres_changes", {"ids": ids, "data": data}))
                self.hub.stats["delivered"] += 1


def _xid_visible(snapshot: str, xid: int) -> bool:
    """Whether the 32-bit `xid` (wal2json's) is visible in `pg_current_snapshot()`'s text
    (xmin:xmax:xip,..., 64-bit ids): its full id is the nearest one below xmax with those low bits."""
    _xmin, xmax, xip = snapshot.split(":")
    back = (int(xmax) - xid) % 2**32
    if back == 0 or back >= 2**31:
        return False  # at or after xmax: not visible yet
    return str(int(xmax) - back) not in xip.split(",")


def _commit_timestamp(stamp: str) -> str:
    """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"' in UTC, as realtime.apply_rls writes it."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(stamp.replace(" ", "T"))
    except ValueError:
        return stamp
    t = t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


