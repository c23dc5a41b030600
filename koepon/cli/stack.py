"""`koepon up | down | status`: the local stack."""

from __future__ import annotations

import json

import click

from .. import db
from ..db import migrations
from ..db.cluster import Cluster
from ..localstack import services as stack
from ..localstack.api.storage import ensure_demo_bytes
from ..localstack.mail import MAIL_PORT
from ..localstack.seed import DEMO_LOGINS
from ..settings import (
    ANON_KEY,
    API_PORT,
    CONSOLE_PORT,
    FAKES_PORT,
    JWT_SECRET,
    LOCAL_DB_URL,
    PAYMENTS_PORT,
    SERVICE_ROLE_KEY,
    paths,
)
from .base import _ensure_started, _url


def describe(db_url: str) -> dict:
    p = paths()
    return {
        "db_url": db_url,
        "api_url": f"http://127.0.0.1:{API_PORT}",
        "realtime_url": f"ws://127.0.0.1:{API_PORT}/realtime/v1",
        "payments_url": f"http://127.0.0.1:{PAYMENTS_PORT}",
        "fake_providers_url": f"http://127.0.0.1:{FAKES_PORT}",
        "console_url": f"http://127.0.0.1:{CONSOLE_PORT}",
        "mail_url": f"http://127.0.0.1:{MAIL_PORT}",
        "anon_key": ANON_KEY,
        "service_role_key": SERVICE_ROLE_KEY,
        "jwt_secret": JWT_SECRET,
        "services": {
            svc.name: {"pid": stack.pid_of(p, svc), "healthy": stack.healthy(svc)}
            for svc in stack.services()
        },
        "demo_logins": [{"role": r, "email": e, "password": pw} for r, (e, pw, _uid) in DEMO_LOGINS],
    }


def _print(info: dict) -> None:
    click.echo(f"Database     {info['db_url']}")
    click.echo(f"API URL      {info['api_url']}")
    click.echo(f"Realtime URL {info['realtime_url']}")
    click.echo(f"Payments     {info['payments_url']}")
    click.echo(f"Fake Stripe/KOMOJU {info['fake_providers_url']} (local only)")
    click.echo(f"Console      {info['console_url']} (fan, VTuber and admin screens; sign in with a demo login)")
    click.echo(f"Mail catcher {info['mail_url']} (auth e-mail; `koepon mail`)")
    click.echo(f"anon key     {info['anon_key']}")
    click.echo(f"service_role {info['service_role_key']}")
    click.echo(f"JWT secret   {info['jwt_secret']}")
    for name, state in info["services"].items():
        click.echo(f"service      {name}: {'up' if state['healthy'] else 'down'}"
                   f" (pid {state['pid']})")
    click.echo("Demo logins (local only):")
    for login in info["demo_logins"]:
        click.echo(f"  {login['role']:10} {login['email']:28} {login['password']}")


def register(main: click.Group) -> None:
    @main.command("up")
    @click.pass_context
    def up(ctx):
        """Start the database (migrated, seeded), the API and the payment service.

        With --db-url / KOEPON_DB_URL the stack serves that server instead of the private cluster.
        """
        p = paths()
        url = _ensure_started(ctx)
        with db.connect(url, autocommit=True) as conn:
            migrations.migrate(conn, p, echo=click.echo)
            seeded = conn.execute(
                "select exists (select 1 from supabase_migrations.seed_files)").fetchone()[0]
            if not seeded and migrations.seed(conn, p):
                click.echo("seeded demo data")
        ensure_demo_bytes(url, p.state / "storage")
        for svc in stack.services():
            stack.start(p, svc, stack.service_env(url))
        _print(describe(url))

    @main.command("down")
    @click.pass_context
    def down(ctx):
        """Stop everything `koepon up` started."""
        p = paths()
        for svc in reversed(stack.services()):
            if stack.stop(p, svc):
                click.echo(f"stopped {svc.name}")
        if _url(ctx) == LOCAL_DB_URL and Cluster(p).stop():
            click.echo("stopped postgres")

    @main.command("status")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def status(ctx, as_json):
        """URLs, keys, services and demo logins of the local stack."""
        info = describe(_url(ctx))
        info["database_running"] = Cluster(paths()).running()
        if as_json:
            click.echo(json.dumps(info, indent=2))
        else:
            _print(info)
