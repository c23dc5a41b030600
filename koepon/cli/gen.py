"""`koepon gen types typescript`: the Supabase CLI's `Database` type, generated without Docker."""

from __future__ import annotations

import click

from .. import db
from ..settings import db_url
from ..tools import typegen


def register(main: click.Group) -> None:
    @main.group("gen")
    def gen_group():
        """Generate code from the database."""

    @gen_group.group("types")
    def types_group():
        """Generate types."""

    @types_group.command("typescript")
    @click.option("--db-url", "local_db_url", default=None,
                  help="Read this database (default: the global --db-url, else the private cluster).")
    @click.option("--schema", "schemas", multiple=True, default=("public",), show_default=True,
                  help="Schema to include (repeatable; the first is the client's default).")
    @click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
                  help="Write to this file instead of standard output.")
    @click.pass_context
    def typescript(ctx, local_db_url, schemas, output):
        """The `Database` type `createClient<Database>()` checks queries against (as `supabase gen types`)."""
        with db.connect(db_url(local_db_url or ctx.obj.get("db_url"))) as conn:
            text = typegen.generate(conn, list(schemas))
        if output:
            with open(output, "w") as fh:
                fh.write(text)
        else:
            click.echo(text, nl=False)
