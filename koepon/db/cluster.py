"""The private Postgres cluster the tool owns: initdb, start, stop with the system's pg_ctl."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import KoeponError
from ..settings import DB_PORT, SUPERUSER, Paths
from .ports import ensure_free

MIN_MAJOR = 15

# Written into the data directory by `init`: the cluster's bootstrap superuser is
# supabase_admin and `postgres` is an ordinary role, as on hosted Supabase. A data directory
# without it was made by older koepon with `postgres` as the bootstrap superuser, which
# Postgres cannot demote; `start` re-creates such a cluster (see docs/operations.md).
LAYOUT_MARKER = "koepon_layout"
LAYOUT = "hosted-roles-1"

# Hosted's attributes for `postgres` (supabase/postgres migrations/db/migrations/
# 10000000000000_demote-postgres.sql): everything an application owner needs, not superuser.
POSTGRES_ROLE = ("create role postgres login password 'postgres' nosuperuser inherit createdb "
                 "createrole replication bypassrls")

SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "shared_preload_libraries": "pg_stat_statements,pg_cron",
    "cron.database_name": "postgres",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    "timezone": "UTC",
    "max_prepared_transactions": "0",
    "wal_level": "logical",  # Realtime reads changes through a wal2json logical replication slot
}


def bindir() -> Path:
    """The newest installed PostgreSQL server binaries (15 or newer)."""
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        major = Path(path).parent.parent.name
        if major.isdigit() and int(major) >= MIN_MAJOR:
            found.append((int(major), Path(path).parent))
    if not found:
        raise KoeponError(
            f"no PostgreSQL {MIN_MAJOR}+ server found under /usr/lib/postgresql: "
            "run `make up` (it installs the postgresql package) or `apt-get install postgresql`"
        )
    return max(found)[1]


def _as_owner(cmd: list[str]) -> list[str]:
    """Postgres refuses to run as root: hand the command to the postgres OS user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _owner_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise KoeponError(
            "running as root but there is no `postgres` OS user: install the postgresql package"
        ) from exc
    return pw.pw_uid, pw.pw_gid


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


class Cluster:
    def __init__(self, paths: Paths, port: int = DB_PORT):
        self.paths = paths
        self.port = port
        self.data = paths.pgdata
        self.log = paths.pgdata_parent / "postgres.log"

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            _as_owner(cmd), capture_output=True, text=True, check=check, cwd="/"
        )

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        res = self._run([str(bindir() / "pg_ctl"), "-D", str(self.data), "status"], check=False)
        return res.returncode == 0

    def init(self) -> None:
        uid, gid = _owner_ids()
        parent = self.paths.pgdata_parent
        parent.mkdir(parents=True, exist_ok=True)
        os.chown(parent, uid, gid)
        self.data.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data, uid, gid)
        res = self._run(
            [str(bindir() / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
            check=False,
        )
        if res.returncode != 0:
            raise KoeponError(f"initdb failed: {res.stderr.strip().splitlines()[-1:]}")
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            for key, value in SERVER_SETTINGS.items():
                conf.write(f"{key} = '{value}'\n")
        # A log file the postgres user can write, beside the data directory.
        self.log.touch()
        os.chown(self.log, uid, gid)

    def _add_missing_settings(self) -> None:
        """A cluster made before a setting joined (or changed in) SERVER_SETTINGS gets it at its next start.

        postgresql.auto.conf is read in order and a later line wins, so a changed value is appended.
        """
        conf = self.data / "postgresql.auto.conf"
        text = conf.read_text() if conf.exists() else ""
        have: dict[str, str] = {}
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                have[key.strip()] = value.strip().strip("'")
        stale = [f"{k} = '{v}'\n" for k, v in SERVER_SETTINGS.items() if have.get(k) != v]
        if stale:
            with open(conf, "a") as f:
                f.writelines(stale)

    def current_layout(self) -> bool:
        marker = self.data / LAYOUT_MARKER
        return marker.exists() and marker.read_text().strip() == LAYOUT

    def _create_app_role(self) -> None:
        """The non-superuser `postgres` that migrations, seed and tests connect as."""
        import psycopg

        url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("select 1 from pg_roles where rolname = 'postgres'").fetchone() is None:
                conn.execute(POSTGRES_ROLE)
            conn.execute("grant all on database postgres to postgres")
        marker = self.data / LAYOUT_MARKER
        marker.write_text(LAYOUT + "\n")
        os.chown(marker, *_owner_ids())

    def start(self) -> bool:
        """Start the cluster; False if it was already running."""
        if self.initialised() and not self.current_layout():
            # Made by older koepon: `postgres` is its bootstrap superuser, which no ALTER ROLE
            # can demote. Its contents are rebuilt by `koepon db migrate`/`reset` (demo data).
            sys.stderr.write(f"koepon: re-creating the private cluster in {self.data}: it was "
                             "made with `postgres` as its superuser; migrations and seed now run "
                             "as a non-superuser `postgres`, as on hosted Supabase\n")
            self.stop("fast")
            shutil.rmtree(self.data)
        if self.running():
            return False
        # Before initdb: a taken port should not leave a fresh data directory behind. A port held
        # only by TIME-WAIT is waited out (koepon/ports.py).
        ensure_free(self.port, "PostgreSQL", taken_hint="stop it, or point koepon at that server with "
                    "--db-url / KOEPON_DB_URL")
        fresh = not self.initialised()
        if fresh:
            self.init()
        self._add_missing_settings()
        sockdir = str(self.data)
        res = self._run(
            [str(bindir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
             "-t", "60", "-o", f"-p {self.port} -k {sockdir}", "start"],
            check=False,
        )
        if res.returncode != 0:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise KoeponError(f"postgres did not start: {' | '.join(tail)} (log: {self.log})")
        self._wait_ready()
        if fresh:
            self._create_app_role()
        return True

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_in_use(self.port):
                return
            time.sleep(0.1)
        raise KoeponError(f"postgres started but does not answer on port {self.port}")

    def stop(self, mode: str = "fast") -> bool:
        if not self.running():
            return False
        self._run([str(bindir() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])
        return True

    def postmaster_pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return None
        return int(pidfile.read_text().split()[0])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)
