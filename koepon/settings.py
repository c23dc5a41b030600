"""Where things are and how to reach them: one place for paths, ports and URLs."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# The private cluster's port; a second checkout on the same machine (a worktree) sets
# KOEPON_DB_PORT so that its own cluster does not collide with this one.
DB_PORT = int(os.environ.get("KOEPON_DB_PORT", "54322"))
API_PORT = 54321
PAYMENTS_PORT = 54329
# The fake Stripe and KOMOJU APIs `koepon up` runs for the payment service (local only).
FAKES_PORT = 54328
CONSOLE_PORT = 54323  # the web console (console/), where Supabase Studio sits locally
LOCAL_DB_URL = f"postgresql://postgres:postgres@127.0.0.1:{DB_PORT}/postgres"
# As on hosted Supabase, `postgres` is not a superuser in the private cluster: migrations, seed
# and tests run as that role. The cluster's bootstrap superuser is `supabase_admin` (hosted's
# name for it); the tooling uses it only for housekeeping: creating and dropping databases,
# building the platform base, installing extensions hosted has pre-installed.
SUPERUSER = "supabase_admin"
LOCAL_ADMIN_URL = f"postgresql://{SUPERUSER}@127.0.0.1:{DB_PORT}/postgres"


def project_root() -> Path:
    """The checkout that holds supabase/migrations: cwd or a parent, else the package's."""
    env = os.environ.get("KOEPON_PROJECT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "supabase" / "migrations").is_dir() and (candidate / "sql").is_dir():
            return candidate
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def migrations(self) -> Path:
        return self.root / "supabase" / "migrations"

    @property
    def seed(self) -> Path:
        return self.root / "supabase" / "seed.sql"

    @property
    def pgtap(self) -> Path:
        return self.root / "supabase" / "tests" / "database"

    @property
    def sql(self) -> Path:
        return self.root / "sql"

    @property
    def platform_sql(self) -> Path:
        """The Supabase base a plain Postgres lacks: part of the local stand-in, not the product."""
        return self.root / "koepon" / "localstack" / "platform"

    @property
    def state(self) -> Path:
        """Run-time state (pid files, logs, storage bytes); git-ignored."""
        return Path(os.environ.get("KOEPON_STATE_DIR", self.root / ".koepon"))

    @property
    def pgdata_parent(self) -> Path:
        """The cluster lives where the postgres OS user can reach it.

        Under the project when every parent directory is traversable by others, else under
        /var/tmp keyed by the project path (so two checkouts never share a cluster).
        """
        preferred = self.state
        probe = preferred if preferred.exists() else preferred.parent
        if all(os.stat(p).st_mode & 0o001 for p in (probe, *probe.parents) if p.exists()):
            return preferred
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"koepon-{key}"

    @property
    def pgdata(self) -> Path:
        return self.pgdata_parent / "pgdata"


def paths() -> Paths:
    return Paths(project_root())


def db_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("KOEPON_DB_URL") or LOCAL_DB_URL


def _on_private_cluster(info: dict) -> bool:
    return (info.get("host") in ("127.0.0.1", "localhost")
            and str(info.get("port") or "") == str(DB_PORT))


def superuser_url(url: str) -> str:
    """The tooling superuser's URL for the same database when `url` is on the private cluster;
    any other server is used as given (its owner decides who may do housekeeping there)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(url)
    if not _on_private_cluster(info):
        return url
    info.pop("password", None)
    return make_conninfo(**{**info, "user": SUPERUSER})


def app_url(url: str) -> str:
    """The non-superuser `postgres` URL for the same database when `url` is the tooling
    superuser's on the private cluster: what migrations, seed and tests connect as."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(url)
    if not _on_private_cluster(info) or info.get("user") != SUPERUSER:
        return url
    return make_conninfo(**{**info, "user": "postgres", "password": "postgres"})


def is_local_url(url: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    host = conninfo_to_dict(url).get("host") or "localhost"
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("/")


# Supabase's well-known local development secret and keys (`supabase start` prints the same),
# so examples written for the Supabase CLI work against `koepon up` unchanged.
JWT_SECRET = os.environ.get(
    "KOEPON_JWT_SECRET", "super-secret-jwt-token-with-at-least-32-characters-long"
)
ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJl"
    "eHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
SERVICE_ROLE_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vf"
    "cm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
)
# Local-only webhook secrets; production reads real ones from the environment.
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_koepon_local_stripe_secret")
KOMOJU_WEBHOOK_SECRET = os.environ.get("KOMOJU_WEBHOOK_SECRET", "koepon_local_komoju_secret")
