"""`koepon soak [--minutes M] [--seconds S] [--fans N] [--json FILE]`: the soak (koepon/tools/soak/)
against its own throwaway database and processes; prints the figures, exits 1 on any failure
or invariant violation."""

from __future__ import annotations

import json

import click


def register(main: click.Group) -> None:
    @main.command("soak")
    @click.option("--minutes", type=float, default=None, help="How long the actors run (default 1 minute).")
    @click.option("--seconds", type=float, default=None, help="The same in seconds (wins over --minutes).")
    @click.option("--fans", type=click.IntRange(2, 200), default=8, show_default=True,
                  help="Concurrent simulated fans (two of them are the seed's adult fan and minor).")
    @click.option("--seed", type=int, default=None, help="Random seed for the actors' choices.")
    @click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Also write the result as JSON.")
    def soak_cmd(minutes, seconds, fans, seed, json_path):
        """Fans, VTubers, an admin and the payment provider doing random valid and invalid
        operations (duplicates, out-of-order and late webhooks, refunds, disputes, forged
        signatures, clock jumps); then every invariant is checked in SQL."""
        from ..tools.soak import print_report, run_soak

        duration = seconds if seconds is not None else (minutes if minutes is not None else 1.0) * 60
        res = run_soak(duration, fans=fans, seed=seed, echo=click.echo)
        print_report(res, echo=click.echo)
        if json_path:
            with open(json_path, "w") as fh:
                json.dump(res.to_json(), fh, indent=2, default=str)
            click.echo(f"wrote {json_path}")
        if not res.ok:
            raise SystemExit(1)
