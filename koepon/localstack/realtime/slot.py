"""The replication slot Realtime reads the WAL from and the `pg_recvlogical` process that streams it:
its name, its wal2json options, stopping the process and dropping the slot (also slots a dead
local Realtime process left behind)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil

import psycopg

log = logging.getLogger("koepon.realtime")


def slot_name() -> str:
    return f"koepon_realtime_{os.getpid()}_{secrets.token_hex(3)}"


def _esc(name: str) -> str:
    """wal2json's add-tables: commas, dots and backslashes in names are escaped with a backslash."""
    return re.sub(r"([,.\\* ])", r"\\\1", name)


def add_tables(tables) -> str:
    """wal2json's add-tables: realtime.messages' partitions and the published tables, nothing else."""
    return ",".join(["realtime.*"] + [f"{_esc(sch)}.{_esc(t)}" for sch, t in sorted(tables)])


def recvlogical_argv(db_url: str, slot: str, add_tables: str) -> list[str]:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(db_url)
    info.pop("options", None)
    exe = shutil.which("pg_recvlogical") or "pg_recvlogical"
    argv = [exe, "-d", make_conninfo(**info), "-S", slot, "--start", "-n", "-f", "-", "-F", "1", "-s", "1"]
    for opt in ("format-version=2", "include-timestamp=true", "include-type-oids=true", "include-pk=true",
                "include-transaction=false", "include-lsn=true", "include-xids=true", "actions=insert,update,delete",
                f"add-tables={add_tables}"):
        argv += ["-o", opt]
    return argv


async def stop_process(proc) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def drop_slot(conn, slot: str) -> None:
    """The slot is permanent (pg_recvlogical cannot make a temporary one): drop it once its
    walsender has let go, so no WAL is kept for nobody."""
    for _ in range(50):
        try:
            await conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                               "where slot_name = %s", (slot,))
            return
        except psycopg.errors.ObjectInUse:
            await asyncio.sleep(0.1)
        except psycopg.Error as exc:
            log.warning("realtime: could not drop slot %s: %s", slot, exc)
            return


async def drop_orphan_slots(conn) -> None:
    """Slots left by a local Realtime process that died without dropping its own (its pid is gone)."""
    cur = await conn.execute("select slot_name from pg_replication_slots where database = current_database() "
                             "and slot_name like 'koepon\\_realtime\\_%%' and not active")
    for (name,) in await cur.fetchall():
        m = re.match(r"^koepon_realtime_(\d+)_", name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(psycopg.Error):
                await conn.execute("select pg_drop_replication_slot(%s)", (name,))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
