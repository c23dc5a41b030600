"""`koepon fairness verify | roll`: recompute provably fair pulls (docs/fairness.md)."""

from __future__ import annotations

import json
import sys

import click

from .. import db
from ..settings import db_url
from ..tools import fairness


def register(main: click.Group) -> None:
    @main.group("fairness")
    def fairness_group():
        """Provably fair draws: recompute and check pulls."""

    @fairness_group.command("verify")
    @click.option("--user", "user_id", required=True, help="The fan's user id.")
    @click.option("--seed-id", default=None, help="Only this seed (default: every revealed seed).")
    @click.option("--server-seed", default=None,
                  help="Revealed server seed (hex) to use instead of the stored one (needs --seed-id).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.pass_context
    def verify(ctx, user_id, seed_id, server_seed, as_json):
        """Recompute a fan's pulls from revealed server seeds; exit 1 on any mismatch."""
        if server_seed and not seed_id:
            raise click.UsageError("--server-seed needs --seed-id")
        with db.connect(db_url(ctx.obj.get("db_url"))) as conn:
            rep = fairness.verify_user(conn, user_id, seed_id, server_seed)
        if as_json:
            click.echo(json.dumps({"seeds": rep.seeds, "pulls": rep.pulls, "mismatches": rep.mismatches,
                                   "ok": rep.ok}))
        else:
            for m in rep.mismatches:
                click.echo(f"MISMATCH {m}")
            click.echo(f"{rep.seeds} seed(s), {rep.pulls} pull(s) recomputed: "
                       f"{'all match' if rep.ok else f'{len(rep.mismatches)} mismatch(es)'}")
        if not rep.ok:
            sys.exit(1)

    @fairness_group.command("roll")
    @click.option("--server-seed", required=True, help="Server seed, hex.")
    @click.option("--client-seed", required=True)
    @click.option("--nonce", required=True, type=int)
    @click.option("--range", "range_", default=1_000_000, show_default=True, type=int)
    def roll_cmd(server_seed, client_seed, nonce, range_):
        """Print the roll of one pull."""
        click.echo(fairness.roll(bytes.fromhex(server_seed), client_seed, nonce, range_))
