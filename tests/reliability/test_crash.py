"""Crash suite: soak load (koepon/tools/soak/) while the Postgres postmaster, the local API and the
payment service are each killed with SIGKILL mid-request and restarted; the provider keeps
retrying its deliveries (503 / no answer) until they are answered.

Afterwards: no half-fulfilled order, every order the provider paid fulfilled exactly once, every
invariant holds (koepon/tools/invariants.py).

The Postgres that is killed is a DEDICATED throwaway cluster (initdb in a temp directory, an
ephemeral port, as the `postgres` OS user when run as root): never the shared one on 54322.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from koepon.db import migrations
from koepon.db.cluster import Cluster, bindir
from koepon.localstack.services import free_port
from koepon.settings import paths
from koepon.tools.soak import Soak, SoakStack, print_report

SECONDS = float(os.environ.get("KOEPON_CRASH_SECONDS", "30"))


@dataclass
class _ClusterPaths:
    """What koepon.db.cluster.Cluster needs: where the data directory lives."""
    pgdata_parent: Path

    @property
    def pgdata(self) -> Path:
        return self.pgdata_parent / "pgdata"


@pytest.fixture(scope="module")
def dedicated_db():
    bindir()  # no PostgreSQL server binaries: fails with the reason (scripts/bootstrap.sh installs them)
    tmp = tempfile.TemporaryDirectory(prefix="koepon-crash-")
    cluster = Cluster(_ClusterPaths(Path(tmp.name)), port=free_port())
    cluster.start()
    admin = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("create database koepon_crash")
    url = f"postgresql://postgres@127.0.0.1:{cluster.port}/koepon_crash"
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn, paths(), echo=lambda _m: None)
        migrations.seed(conn, paths())
    try:
        yield cluster, url
    finally:
        cluster.destroy()
        tmp.cleanup()


def _dead(pid: int) -> bool:
    """Gone, or a zombie nobody reaps (a container's PID 1 may not): dead either way."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


def _restart_postgres(cluster: Cluster, pid: int, timeout: float = 40) -> float:
    """pg_ctl start until it works (orphaned backends of the killed postmaster may still hold
    the shared memory for a moment); returns the seconds it took."""
    t0 = time.monotonic()
    while not _dead(pid):
        time.sleep(0.05)
    pidfile = cluster.data / "postmaster.pid"
    if pidfile.exists() and Path(f"/proc/{pid}").exists():
        # An unreaped zombie still answers kill(pid, 0), which pg_ctl and postgres take for a live
        # postmaster: the lock file is stale (the process is dead), so remove it as an operator would.
        pidfile.unlink()
    while True:
        try:
            cluster.start()
            return time.monotonic() - t0
        except Exception:
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.3)


def _wait_mid_request(stack: SoakStack, timeout: float = 3.0) -> bool:
    """Waits until the provider has a delivery in flight (so the kill lands mid-request)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.outbox.cv:
            if stack.outbox.inflight:
                return True
        time.sleep(0.005)
    return False


@pytest.fixture(scope="module")
def crash_result(dedicated_db):
    cluster, url = dedicated_db
    stack = SoakStack(url).start()
    events: list[str] = []

    def inject(soak: Soak) -> None:
        rec = soak.rec
        step = SECONDS / 4
        # 1. Postgres: SIGKILL the postmaster (not a clean shutdown: crash recovery on restart).
        time.sleep(step)
        pid = cluster.postmaster_pid()
        mid = _wait_mid_request(stack)
        rec.unavailable_ok.set()
        os.kill(pid, signal.SIGKILL)
        rec.fault("kill -9 postgres postmaster")
        took = _restart_postgres(cluster, pid)
        events.append(f"postgres pid {pid} killed (mid-request: {mid}), restarted after {took:.1f}s")
        time.sleep(2)  # the API's pool reconnects
        rec.unavailable_ok.clear()
        # 2. The local API.
        time.sleep(step)
        mid = _wait_mid_request(stack)
        rec.unavailable_ok.set()
        stack.kill9(stack.api_proc)
        rec.fault("kill -9 local API")
        stack.start_api()
        events.append(f"API killed (mid-request: {mid}), restarted")
        time.sleep(1)
        rec.unavailable_ok.clear()
        # 3. The payment service (gunicorn master and workers).
        time.sleep(step)
        mid = _wait_mid_request(stack)
        rec.unavailable_ok.set()
        stack.kill9(stack.pay_proc)
        rec.fault("kill -9 payment service")
        stack.start_payments()
        events.append(f"payment service killed (mid-request: {mid}), restarted")
        time.sleep(1)
        rec.unavailable_ok.clear()

    try:
        res = Soak(stack, fans=6, seed=7).run(SECONDS, during=inject)
        lines: list[str] = []
        print_report(res, echo=lines.append)
        yield res, "\n".join(events + lines), stack.logs()
    finally:
        stack.stop()


def test_crashes_lose_nothing(crash_result):
    res, report, logs = crash_result
    print(report)
    assert res.faults["kill -9 postgres postmaster"] == 1, report
    assert res.faults["kill -9 local API"] == 1 and res.faults["kill -9 payment service"] == 1, report
    assert res.violations == [], report
    assert res.failures == [], report + "\n" + logs


def test_interrupted_deliveries_were_retried_to_completion(crash_result):
    """The provider's retries happened and every scheduled delivery was answered in the end."""
    res, report, _ = crash_result
    retried = sum(n for (k, o), n in res.ops.items() if k.startswith(("webhook", "refund_event")) and
                  ("retried" in o or "component down" in o))
    assert retried > 0, report
    assert res.figures["orders_fulfilled"] > 5, report
