"""The local stack's processes, the one copy of each rule: pick a free port, spawn a service,
wait until it answers, give the payment service its whole configuration, stop it again.

`koepon up` runs four services on fixed ports: the API, the fake payment providers, the
payment service and the web console. The payment service is configured only through its environment, as in
production; the fakes are chosen by that environment (a local test key and the fakes' base
URL), never by a missing key.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from webhooks.config import LOCAL_KOMOJU_KEY, LOCAL_STRIPE_KEY

from ..db.ports import ensure_free
from ..errors import KoeponError
from ..settings import (
    API_PORT,
    CONSOLE_PORT,
    FAKES_PORT,
    JWT_SECRET,
    KOMOJU_WEBHOOK_SECRET,
    PAYMENTS_PORT,
    SERVICE_ROLE_KEY,
    STRIPE_WEBHOOK_SECRET,
    Paths,
)


def free_port() -> int:
    """An ephemeral port nobody listens on right now (tests and tools; `koepon up` uses fixed ones)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Until `url` answers at all (any HTTP status); RuntimeError when `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers, even if not 2xx
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def api_argv(port: int, db_url: str | None = None, workers: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "koepon.localstack.api", "--port", str(port)]
    if db_url:
        argv += ["--db-url", db_url]
    if workers:
        argv += ["--workers", str(workers)]
    return argv


def mail_argv(port: int, smtp_port: int) -> list[str]:
    return [sys.executable, "-m", "koepon.localstack.mail", "--port", str(port), "--smtp-port", str(smtp_port)]


def payments_argv(port: int, workers: int | None = None) -> list[str]:
    return [sys.executable, "-m", "webhooks", "--port", str(port)] + (["--workers", str(workers)] if workers else [])


def fakes_argv(port: int, payments_url: str) -> list[str]:
    return [sys.executable, "-m", "koepon.localstack.fakes", "--port", str(port), "--payments-url", payments_url]


def console_argv(port: int, api_url: str, payments_url: str, fakes_url: str, mail_url: str) -> list[str]:
    return [sys.executable, "-m", "koepon.localstack.console", "--port", str(port), "--api-url", api_url,
            "--payments-url", payments_url, "--stripe-api-base", f"{fakes_url}/stripe", "--mail-url", mail_url]


def spawn(argv: list[str], log_path: str | Path, env: dict[str, str] | None = None,
          health_url: str | None = None, timeout: float = 60) -> subprocess.Popen:
    """Start a process in its own session (so killpg stops what it started), logging to `log_path`;
    with `health_url`, wait until it answers."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    if health_url:
        try:
            wait_http(health_url, proc, timeout)
        except RuntimeError as exc:
            tail = Path(log_path).read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{exc}\n" + "\n".join(tail)) from exc
    return proc


def payments_env(api_url: str, fakes_url: str, db_url: str | None = None) -> dict[str, str]:
    """The payment service's whole configuration for a local stack: the API, the local keys and
    secrets, and the fake providers (a local test key plus the fakes' base URL); with `db_url`, its
    RPCs go to PostgreSQL directly over a pooled connection (as in production with
    PAYMENTS_DATABASE_URL), else through the API."""
    direct = {"PAYMENTS_DATABASE_URL": db_url} if db_url else {}
    return {**direct, "SUPABASE_URL": api_url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
            "SUPABASE_JWT_SECRET": JWT_SECRET, "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "KOMOJU_WEBHOOK_SECRET": KOMOJU_WEBHOOK_SECRET,
            "STRIPE_SECRET_KEY": LOCAL_STRIPE_KEY, "KOMOJU_SECRET_KEY": LOCAL_KOMOJU_KEY,
            "STRIPE_API_BASE": f"{fakes_url}/stripe", "KOMOJU_API_BASE": f"{fakes_url}/komoju"}


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    port: int
    health_path: str


def services() -> list[Service]:
    """In start order: the fakes deliver refund events to the payment service, which may start after them."""
    payments_url = f"http://127.0.0.1:{PAYMENTS_PORT}"
    from .mail import MAIL_PORT, SMTP_PORT

    return [
        # The mail catcher first: Auth sends its e-mail there.
        Service("mail", tuple(mail_argv(MAIL_PORT, SMTP_PORT)), MAIL_PORT, "/livez"),
        Service("api", tuple(api_argv(API_PORT)), API_PORT, "/health"),
        Service("fakes", tuple(fakes_argv(FAKES_PORT, payments_url)), FAKES_PORT, "/health"),
        Service("payments", tuple(payments_argv(PAYMENTS_PORT)), PAYMENTS_PORT, "/health"),
        Service("console", tuple(console_argv(CONSOLE_PORT, f"http://127.0.0.1:{API_PORT}", payments_url,
                                              f"http://127.0.0.1:{FAKES_PORT}", f"http://127.0.0.1:{MAIL_PORT}")),
                CONSOLE_PORT, "/health"),
    ]


def service_env(db_url: str) -> dict[str, str]:
    """What `koepon up` passes to its services: the database for the API, everything for payments."""
    return {"KOEPON_DB_URL": db_url, "KOEPON_JWT_SECRET": JWT_SECRET,
            **payments_env(f"http://127.0.0.1:{API_PORT}", f"http://127.0.0.1:{FAKES_PORT}", db_url),
            # The console (port 54323) calls /payments/* from the browser.
            "PAYMENTS_CORS_ORIGINS": "http://127.0.0.1:54323,http://localhost:54323"}


def _pidfile(paths: Paths, svc: Service) -> Path:
    return paths.state / "run" / f"{svc.name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def pid_of(paths: Paths, svc: Service) -> int | None:
    f = _pidfile(paths, svc)
    if f.exists():
        pid = int(f.read_text().strip() or 0)
        if pid and _alive(pid):
            return pid
    return None


def healthy(svc: Service) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.port}{svc.health_path}", timeout=1):
            return True
    except OSError:
        return False


def start(paths: Paths, svc: Service, env: dict[str, str], timeout: float = 30) -> bool:
    if pid_of(paths, svc) and healthy(svc):
        return False
    # Another server on the port is refused at once; one held by TIME-WAIT is waited out (db/ports.py).
    ensure_free(svc.port, f"the {svc.name} service")
    run = paths.state / "run"
    run.mkdir(parents=True, exist_ok=True)
    proc = spawn(list(svc.argv), run / f"{svc.name}.log", env)
    _pidfile(paths, svc).write_text(str(proc.pid))
    try:
        wait_http(f"http://127.0.0.1:{svc.port}{svc.health_path}", proc, timeout)
    except RuntimeError as exc:
        stop(paths, svc)
        raise KoeponError(f"the {svc.name} service did not start ({exc}): see {run / svc.name}.log") from exc
    return True


def stop(paths: Paths, svc: Service) -> bool:
    pid = pid_of(paths, svc)
    _pidfile(paths, svc).unlink(missing_ok=True)
    if not pid:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return False
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    return True
