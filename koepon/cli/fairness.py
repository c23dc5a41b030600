"""`koepon fairness verify | roll`: recompute provably fair pulls (docs/fairness.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import db
from ..settings import ANON_KEY, db_url
from ..tools import fairness


def _load_receipts(paths: tuple[Path, ...]) -> list[dict]:
    out: list[dict] = []
    for p in paths:
        data = json.loads(p.read_text())
        out.extend(data if isinstance(data, list) else [data])
    return out


def _print(rep: fairness.Report) -> None:
    for o in rep.orders:
        nonces = (f"nonces {o['nonces'][0]}..{o['nonces'][1]}" if o.get("nonces")
                  else "nonces taken at fulfilment (first protocol)")
        line = (f"order {o['order_id']} {o['status']:<9} seed {o['seed_id'] or '-'} {nonces} "
                f"rates {o['rate_table_version'] or '-'}")
        if o.get("pity_rate_table_version"):
            line += f" pity-rates {o['pity_rate_table_version']}"
        if o.get("drawn"):
            line += f" drew {' '.join(o['drawn'])}"
        if o.get("would_have_drawn"):
            line += f" would have drawn {' '.join(o['would_have_drawn'])}"
        click.echo(f"{line} [{o['check']}]")
    for n in rep.notes:
        click.echo(f"NOTE {n}")
    for m in rep.mismatches:
        click.echo(f"MISMATCH {m}")
    if rep.rate_log_head:
        click.echo(f"rate-table log head {rep.rate_log_seq}:{rep.rate_log_head} (keep it; a later run checks it "
                   f"with --expect-log)")
    click.echo(f"{rep.seeds} seed(s), {rep.pulls} pull(s) recomputed, {len(rep.orders)} order(s) checked: "
               f"{'all match' if rep.ok else f'{len(rep.mismatches)} mismatch(es)'}")


def register(main: click.Group) -> None:
    @main.group("fairness")
    def fairness_group():
        """Provably fair draws: recompute and check pulls."""

    @fairness_group.command("verify")
    @click.option("--user", "user_id", default=None,
                  help="The fan's user id: read the fan's public API in the database (as PostgREST would).")
    @click.option("--api-url", default=None, help="Or read it over HTTP: the API's base URL (…:54321).")
    @click.option("--token", default=None, help="With --api-url: the fan's access token.")
    @click.option("--apikey", default=ANON_KEY, show_default="the local anon key", help="With --api-url.")
    @click.option("--seed-id", default=None, help="Only this seed (default: every revealed seed).")
    @click.option("--server-seed", default=None,
                  help="Revealed server seed (hex) to use instead of the published one (needs --seed-id).")
    @click.option("--receipts", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
                  help="JSON file of create_order answers the fan kept (one object or a list): each must still "
                       "match the published data.")
    @click.option("--expect-log", "expect_log", multiple=True, metavar="SEQ:HASH",
                  help="A rate-table log entry (seq and hash, as printed by an earlier run) that must not have "
                       "changed.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.pass_context
    def verify(ctx, user_id, api_url, token, apikey, seed_id, server_seed, receipts, expect_log, as_json):
        """Check a fan's draws from public data only; exit 1 on any mismatch.

        Seeds against their commitments, every order's nonces and committed rate tables against the
        published log (paid, expired and failed orders alike), every pull, the pity flags."""
        if server_seed and not seed_id:
            raise click.UsageError("--server-seed needs --seed-id")
        if bool(user_id) == bool(api_url):
            raise click.UsageError("give --user (in the database) or --api-url with --token (over HTTP)")
        if api_url and not token:
            raise click.UsageError("--api-url needs --token")
        overrides = {seed_id: bytes.fromhex(server_seed)} if server_seed else {}
        kept = _load_receipts(receipts)
        saved_log = []
        for item in expect_log:
            seq, _, digest = item.partition(":")
            if not seq.isdigit() or len(digest) != 64:
                raise click.UsageError(f"--expect-log takes SEQ:HASH, not {item!r}")
            saved_log.append((int(seq), digest.lower()))
        if api_url:
            src = fairness.HttpFan(api_url, token, apikey)
            rep = fairness.verify(src, overrides=overrides, only_seed=seed_id, receipts=kept, saved_log=saved_log)
        else:
            with db.connect(db_url(ctx.obj.get("db_url"))) as conn:
                rep = fairness.verify(fairness.DbFan(conn, user_id), overrides=overrides, only_seed=seed_id,
                                      receipts=kept, saved_log=saved_log)
        if as_json:
            click.echo(json.dumps(rep.as_json()))
        else:
            _print(rep)
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
