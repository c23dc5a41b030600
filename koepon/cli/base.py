"""The `koepon` command group: one-line errors, the --db-url option, and the private cluster rule."""

from __future__ import annotations

import sys

import click
import psycopg

from ..db.cluster import Cluster
from ..errors import KoeponError
from ..settings import LOCAL_DB_URL, db_url, paths


class Group(click.Group):
    """Turns a KoeponError anywhere below into a one-line message and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KoeponError as exc:
            click.echo(f"koepon: {exc}", err=True)
            sys.exit(exc.exit_code)
        except psycopg.Error as exc:
            # Anything the commands did not anticipate still ends in one line, not a traceback.
            msg = (getattr(exc.diag, "message_primary", None) or str(exc)).strip().splitlines()
            click.echo(f"koepon: database error: {msg[0] if msg else type(exc).__name__}"
                       f" (SQLSTATE {exc.sqlstate or '?'})", err=True)
            sys.exit(1)


@click.group(cls=Group)
@click.option("--db-url", envvar="KOEPON_DB_URL", default=None,
              help="Use this server instead of the private cluster (hosted Supabase too).")
@click.pass_context
def main(ctx: click.Context, db_url: str | None) -> None:
    """Koepon backend tooling."""
    ctx.obj = {"db_url": db_url}


def _url(ctx: click.Context) -> str:
    return db_url(ctx.obj.get("db_url"))


def _ensure_started(ctx: click.Context) -> str:
    url = _url(ctx)
    if ctx.obj.get("db_url") is None and url == LOCAL_DB_URL:
        Cluster(paths()).start()
    return url
