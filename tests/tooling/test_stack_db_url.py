"""`koepon up | status` honour --db-url / KOEPON_DB_URL instead of the private cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from koepon.localstack.services import free_port

KOEPON = [str(Path(sys.executable).with_name("koepon"))]


def _koepon(*args: str, db_url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KOEPON_DB_URL=db_url)
    return subprocess.run([*KOEPON, *args], env=env, capture_output=True, text=True, timeout=60)


def test_status_reports_the_named_server():
    url = "postgresql://postgres:postgres@db.example.invalid:5432/postgres"
    res = _koepon("status", "--json", db_url=url)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["db_url"] == url


def test_up_against_a_named_server_that_does_not_answer_fails_without_starting_anything():
    # Nothing listens on this port: `koepon up` must try that server (and fail clearly),
    # not fall back to starting the private cluster and serving it instead.
    url = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres"
    res = _koepon("up", db_url=url)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "API URL" not in res.stdout
