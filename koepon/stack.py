"""The local stack's background services: start, health-check, stop, describe."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import KoeponError
from .ports import ensure_free
from .settings import API_PORT, PAYMENTS_PORT, Paths


@dataclass(frozen=True)
class Service:
    name: str
    module: str  # must be importable for the service to be part of the stack
    argv: tuple[str, ...]
    port: int
    health_path: str

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def services() -> list[Service]:
    py = sys.executable
    return [
        Service("api", "koepon.api", (py, "-m", "koepon.api", "--port", str(API_PORT)),
                API_PORT, "/health"),
        Service("payments", "webhooks.app", (py, "-m", "webhooks", "--port", str(PAYMENTS_PORT)),
                PAYMENTS_PORT, "/health"),
    ]


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
    ensure_free(svc.port, f"the {svc.name} service")
    run = paths.state / "run"
    run.mkdir(parents=True, exist_ok=True)
    log = open(run / f"{svc.name}.log", "ab")
    proc = subprocess.Popen(list(svc.argv), env={**os.environ, **env}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=paths.root)
    _pidfile(paths, svc).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KoeponError(f"the {svc.name} service exited at start: see {run / svc.name}.log")
        if healthy(svc):
            return True
        time.sleep(0.2)
    stop(paths, svc)
    raise KoeponError(f"the {svc.name} service did not answer in {timeout:.0f}s: "
                      f"see {run / svc.name}.log")


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
