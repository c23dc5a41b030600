"""`koepon db jobs`, `koepon payouts close|export`, `koepon reconcile`: the operator's back office."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import db
from ..tools import backoffice
from .base import _ensure_started
from .db import db_group


def register(main: click.Group) -> None:
    main.add_command(payouts_group, "payouts")
    main.add_command(reconcile_command, "reconcile")


@db_group.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when a job's last run failed.")
@click.pass_context
def db_jobs(ctx, as_json, exit_code):
    """Scheduled jobs (pg_cron) with their last run and status from cron.job_run_details."""
    with db.connect(_ensure_started(ctx), autocommit=True) as conn:
        installed, found = backoffice.jobs(conn)
    if as_json:
        click.echo(json.dumps({"pg_cron": installed, "jobs": [
            {**j.__dict__, "last_start": j.last_start.isoformat() if j.last_start else None} for j in found]}))
    elif not installed:
        click.echo("pg_cron is not installed in this database: no scheduled jobs "
                   "(the private cluster preloads it; on hosted Supabase enable Cron)")
    else:
        for j in found:
            last = (f"{j.last_start:%Y-%m-%d %H:%M:%S} {j.last_status}" if j.last_start else "never run")
            msg = f" ({j.last_message.strip()[:80]})" if j.last_status == "failed" and j.last_message else ""
            state = "" if j.active else " [inactive]"
            click.echo(f"{j.name:<28} {j.schedule:<12} last: {last}{msg}; failures 24h: {j.failures_24h}{state}")
    if exit_code and any(j.last_status == "failed" for j in found):
        raise SystemExit(1)


@click.group("payouts")
def payouts_group():
    """Monthly payout statements (JST months)."""


@payouts_group.command("close")
@click.argument("month")
@click.pass_context
def payouts_close(ctx, month):
    """Close MONTH (YYYY-MM): write every VTuber's final, hash-chained statement."""
    with db.connect(_ensure_started(ctx), autocommit=True) as conn:
        res = backoffice.close_month(conn, month)
    click.echo(f"closed {res['month']}: {res['statements']} statement(s), chain head {res['last_hash']}, "
               f"audit entry {res['audit_id']}")


@payouts_group.command("export")
@click.argument("month")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the CSV here instead of standard output.")
@click.pass_context
def payouts_export(ctx, month, output):
    """Print (or write) the closed MONTH's statements as CSV."""
    with db.connect(_ensure_started(ctx), autocommit=True) as conn:
        csv = backoffice.export_month(conn, month)
    if output:
        output.write_text(csv)
        click.echo(f"wrote {output} ({csv.count(chr(10)) - 1} statement(s))")
    else:
        click.echo(csv, nl=False)


@click.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def reconcile_command(ctx, as_json):
    """Compare provider payments with orders now; file each new discrepancy once (admin queue)."""
    with db.connect(_ensure_started(ctx), autocommit=True) as conn:
        res = backoffice.reconcile(conn)
        issues = backoffice.open_issues(conn)
    if as_json:
        click.echo(json.dumps(res))
        return
    filed = ", ".join(f"{k} {v}" for k, v in sorted(res["filed"].items()))
    click.echo(f"filed: {filed}; open issues: {res['open']}")
    for i in issues:
        click.echo(f"  #{i['id']} {i['kind']} order {i['order_id']} ({i['detected_at']:%Y-%m-%d %H:%M})")
