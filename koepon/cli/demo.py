"""`koepon demo`: one fan's whole journey against the running local stack (koepon/tools/demo.py)."""

from __future__ import annotations

import click
import httpx

from ..settings import API_PORT, PAYMENTS_PORT
from ..tools.demo import DemoError, run_demo
from ..tools.pay import PayError


def register(main: click.Group) -> None:
    @main.command("demo")
    @click.option("--api-url", default=f"http://127.0.0.1:{API_PORT}", show_default=True)
    @click.option("--url", "payments_url", default=f"http://127.0.0.1:{PAYMENTS_PORT}", show_default=True,
                  help="The payment service.")
    @click.option("--provider", type=click.Choice(["stripe", "komoju"]), default="stripe", show_default=True)
    def demo_cmd(api_url, payments_url, provider):
        """A fan's whole journey against the running local stack (`koepon up` first)."""
        try:
            run_demo(api_url, payments_url, provider=provider)
        except PayError:
            raise
        except httpx.HTTPError as exc:
            raise DemoError(f"{exc}: is `koepon up` running?") from exc
        click.echo("demo finished")
