"""`koepon db ...`: the private cluster, migrations and the checks."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import click

from .. import db
from ..db import hosted_lint, hygiene, migrations, pgtap, schema_diff, testing
from ..db.cluster import Cluster
from ..errors import KoeponError
from ..settings import LOCAL_DB_URL, is_local_url, paths, superuser_url
from .base import Group, _ensure_started, _url


@click.group(cls=Group)
def db_group() -> None:
    """The database: private cluster, migrations, checks."""


def register(main: click.Group) -> None:
    main.add_command(db_group, "db")


@db_group.command("start")
@click.pass_context
def db_start(ctx):
    """Start the private cluster (port 54322, 127.0.0.1 only)."""
    if _url(ctx) != LOCAL_DB_URL:
        # Another server was named: nothing to start, but say whether it answers.
        with db.connect(_url(ctx)):
            click.echo(f"using the existing server {db.redact(_url(ctx))}")
        return
    started = Cluster(paths()).start()
    click.echo(("started " if started else "already running ") + LOCAL_DB_URL)


@db_group.command("stop")
def db_stop():
    """Stop the private cluster."""
    stopped = Cluster(paths()).stop()
    click.echo("stopped" if stopped else "not running")


@db_group.command("url")
@click.pass_context
def db_url_cmd(ctx):
    """Print the database URL every command uses."""
    click.echo(_url(ctx))


@db_group.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def db_psql(ctx, args):
    """Open psql on the database (extra arguments go to psql)."""
    url = _ensure_started(ctx)
    os.execvp("psql", ["psql", url, *args])


@db_group.command("migrate")
@click.option("--dry-run", is_flag=True, help="List what would be applied.")
@click.pass_context
def db_migrate(ctx, dry_run):
    """Apply the platform base (local only) and every pending migration."""
    url = _ensure_started(ctx)
    with db.connect(url) as conn:
        applied = migrations.migrate(conn, paths(), dry_run=dry_run, echo=click.echo)
    click.echo(f"{len(applied)} migration(s) {'pending' if dry_run else 'applied'}")


@db_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.option("--exit-code", is_flag=True, help="Exit 1 when anything is pending/modified/missing.")
@click.pass_context
def db_status(ctx, as_json, exit_code):
    """Applied, pending, modified-after-apply and missing migrations."""
    with db.connect(_url(ctx)) as conn:
        st = migrations.status(conn, paths())
    if as_json:
        click.echo(json.dumps(st.as_dict(), indent=2))
    else:
        for label in ("applied", "pending", "modified", "missing"):
            for name in getattr(st, label):
                click.echo(f"{label:8} {name}")
        click.echo("clean" if st.clean else "not clean")
    if exit_code and not st.clean:
        sys.exit(1)


@db_group.command("new")
@click.argument("name")
@click.option("--from", "from_files", multiple=True, type=click.Path(path_type=Path),
              help="Carry the full current text of these sql/ files.")
def db_new(name, from_files):
    """Create supabase/migrations/<utc timestamp>_<name>.sql."""
    path = migrations.new(paths(), name, list(from_files), dt.datetime.now(dt.UTC))
    click.echo(path.relative_to(paths().root))


@db_group.command("seed")
@click.pass_context
def db_seed(ctx):
    """Run supabase/seed.sql (local databases only)."""
    url = _ensure_started(ctx)
    if not is_local_url(url):
        raise KoeponError("seed.sql holds demo data with known passwords: local databases only")
    with db.connect(url, autocommit=True) as conn:
        migrations.seed(conn, paths())
    click.echo("seeded")


@db_group.command("reset")
@click.option("--yes-really", is_flag=True, help="Allow resetting a non-local database.")
@click.pass_context
def db_reset(ctx, yes_really):
    """Drop and rebuild the database from migrations and seed."""
    url = _ensure_started(ctx)
    if not is_local_url(url) and not yes_really:
        raise KoeponError(f"refusing to reset non-local {db.redact(url)}: add --yes-really")
    name = db.dbname(url)
    # Not template1 unless unavoidable: CREATE DATABASE elsewhere copies it and fails while
    # anyone is connected to it.
    admin = db.with_dbname(superuser_url(url), "postgres" if name != "postgres" else "template1")
    db.drop_database(admin, name)
    db.create_database(admin, name)
    with db.connect(url) as conn:
        migrations.migrate(conn, paths(), echo=click.echo)
        migrations.seed(conn, paths())
    if url == LOCAL_DB_URL and ctx.obj.get("db_url") is None:
        # Dropping the database stops pg_cron's scheduler, which lives in it; a restart brings it back.
        Cluster(paths()).stop()
        Cluster(paths()).start()
    click.echo(f"reset {name}: migrated and seeded")


@db_group.command("verify")
@click.pass_context
def db_verify(ctx):
    """Fail when sql/ and the migrations disagree."""
    diff = schema_diff.verify(superuser_url(_ensure_started(ctx)), paths())
    if diff:
        click.echo("\n".join(diff[:400]))
        raise KoeponError("sql/ and supabase/migrations disagree: ship a migration "
                          "(`koepon db new NAME --from sql/...`) or update sql/")
    click.echo("sql/ and migrations agree")


@db_group.command("lint")
@click.option("--no-sqlfluff", is_flag=True, help="Only the hygiene queries.")
@click.pass_context
def db_lint(ctx, no_sqlfluff):
    """sqlfluff over the SQL, then the hygiene rules and what hosted Supabase would refuse
    (koepon/db/hosted_lint.py) on a migrated throwaway database."""
    p = paths()
    failed = False
    if not no_sqlfluff:
        res = subprocess.run(
            [sys.executable, "-m", "sqlfluff", "lint", "--processes", "2", "--disable-progress-bar",
             "--nocolor", str(p.migrations), str(p.sql), str(p.platform_sql)],
            cwd=p.root,
        )
        failed |= res.returncode != 0
    with db.throwaway(superuser_url(_ensure_started(ctx)), "koepon_lint") as url:
        with db.connect(url) as conn:
            migrations.migrate(conn, p, echo=lambda _m: None)
            found = hygiene.findings(conn)
            hosted = hosted_lint.findings(conn, [m.path for m in migrations.local_migrations(p)])
    for rule, obj in found:
        click.echo(f"hygiene: {rule}: {obj}")
    for finding in hosted:
        click.echo(f"hosted: {finding}")
    if found or hosted or failed:
        raise KoeponError(f"lint failed ({len(found)} hygiene finding(s)), "
                          f"{len(hosted)} finding(s) hosted Supabase would refuse")
    click.echo("lint clean")


@db_group.command("test")
@click.pass_context
def db_test(ctx):
    """Run the pgTAP files in supabase/tests/database on a throwaway database."""
    p = paths()
    failed = 0
    with db.throwaway(superuser_url(_ensure_started(ctx)), "koepon_pgtap") as url:
        with db.connect(url, autocommit=True) as conn:
            migrations.migrate(conn, p, echo=lambda _m: None)
            pgtap.ensure_extension(conn)
            testing.install_helpers(conn)
        for f in pgtap.files(p.pgtap):
            result = pgtap.run_file(url, f)
            click.echo(result.summary())
            failed += not result.ok
    if failed:
        raise KoeponError(f"{failed} pgTAP file(s) failed")
