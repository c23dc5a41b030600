"""The operator's side of the back office: scheduled jobs, monthly payouts, reconciliation.

Each function takes an open connection as the database owner (the private cluster's `postgres`,
or hosted Supabase's) and calls the SQL in sql/backoffice/; nothing here decides a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from ..errors import KoeponError

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


@dataclass
class Job:
    name: str
    schedule: str
    command: str
    active: bool
    last_start: object
    last_status: str | None
    last_message: str | None
    failures_24h: int


def jobs(conn: psycopg.Connection) -> tuple[bool, list[Job]]:
    """(pg_cron installed here?, every job with its last run from cron.job_run_details)."""
    if conn.execute("select to_regclass('cron.job') is not null").fetchone()[0] is not True:
        return False, []
    rows = conn.execute(
        """
        select j.jobname, j.schedule, j.command, j.active, d.start_time, d.status, d.return_message,
               (select count(*) from cron.job_run_details f
                 where f.jobid = j.jobid and f.status = 'failed' and f.start_time > now() - interval '24 hours')
        from cron.job j
        left join lateral (select * from cron.job_run_details r where r.jobid = j.jobid
                           order by r.start_time desc nulls last limit 1) d on true
        order by j.jobname
        """
    ).fetchall()
    return True, [Job(*r) for r in rows]


def _month(month: str) -> str:
    if not MONTH.match(month or ""):
        raise KoeponError(f"month must be YYYY-MM (a JST month), not {month!r}")
    return month + "-01"


def close_month(conn: psycopg.Connection, month: str) -> dict:
    """Close a JST month as the operator (audited with actor null, 'by': 'operator')."""
    first = _month(month)
    try:
        with conn.transaction():
            return conn.execute("select private.close_payout_month(%s::date, null, now())", (first,)).fetchone()[0]
    except psycopg.Error as exc:
        raise _domain(exc) from exc


def export_month(conn: psycopg.Connection, month: str) -> str:
    """The closed month's statements as CSV."""
    first = _month(month)
    closed = conn.execute("select exists (select 1 from app.payout_months where month = %s::date)",
                          (first,)).fetchone()[0]
    if not closed:
        raise KoeponError(f"{month} is not closed: `koepon payouts close {month}` first")
    return conn.execute("select private.payout_csv(%s::date, null)", (first,)).fetchone()[0]


def open_statement(conn: psycopg.Connection, vtuber_id: str, month: str) -> dict:
    first = _month(month)
    return conn.execute("select private.statement_json(%s, %s::date)", (vtuber_id, first)).fetchone()[0]


def reconcile(conn: psycopg.Connection) -> dict:
    with conn.transaction():
        return conn.execute("select private.reconcile(now())").fetchone()[0]


def open_issues(conn: psycopg.Connection, limit: int = 20) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select id, kind, order_id, detail, detected_at from app.reconciliation_issues "
            "where status = 'open' order by id limit %s", (limit,)).fetchall()


def refresh_rollups(conn: psycopg.Connection) -> dict:
    with conn.transaction():
        return conn.execute("select private.refresh_rollups(now())").fetchone()[0]


def _domain(exc: psycopg.Error) -> KoeponError:
    """A domain error (stable message + detail) as one operator-readable line."""
    diag = exc.diag
    detail = f": {diag.message_detail}" if diag.message_detail else ""
    return KoeponError(f"{diag.message_primary or exc}{detail}")
