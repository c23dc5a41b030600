"""`koepon mail [--to ADDRESS] [--last]`: the auth e-mail the local mail catcher holds."""

from __future__ import annotations

import click
import httpx

from ..errors import KoeponError
from ..localstack.mail import MAIL_PORT


def register(main: click.Group) -> None:
    @main.command("mail")
    @click.option("--to", "to", default=None, help="only mail sent to this address")
    @click.option("--last", is_flag=True, help="only the newest message, in full")
    @click.option("--url", default=f"http://127.0.0.1:{MAIL_PORT}", show_default=True,
                  help="the mail catcher (any Mailpit-compatible API)")
    def mail(to, last, url):
        """Print the e-mail Auth sent (newest first), read from the mail catcher's Mailpit API."""
        try:
            with httpx.Client(base_url=url, timeout=5) as client:
                if to:
                    resp = client.get("/api/v1/search", params={"query": f"to:{to}"})
                else:
                    resp = client.get("/api/v1/messages")
                resp.raise_for_status()
                summaries = resp.json()["messages"]
                if last:
                    summaries = summaries[:1]
                for s in summaries:
                    _print(client.get(f"/api/v1/message/{s['ID']}").json() if last else s, full=last)
        except httpx.HTTPError as exc:
            raise KoeponError(f"the mail catcher at {url} does not answer ({exc}); is `koepon up` running?") from exc
        if not summaries:
            click.echo("no mail" + (f" to {to}" if to else ""))


def _print(m: dict, full: bool) -> None:
    to = ", ".join(a["Address"] for a in m["To"])
    click.echo(f"{m.get('Created') or m.get('Date')}  {to}  {m['Subject']}")
    if full:
        click.echo(m["Text"])
    else:
        click.echo(f"    {m['Snippet']}")
