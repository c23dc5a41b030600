"""koepon.tools.bench.profile.per_call: each call's own parameters reach its setup statement."""

from __future__ import annotations

import psycopg
import pytest

from koepon.db import platform_base
from koepon.settings import superuser_url
from koepon.tools.bench.profile import per_call


@pytest.fixture(scope="module")
def probe_url(db_url) -> str:
    with psycopg.connect(superuser_url(db_url), autocommit=True) as conn:
        platform_base.ensure_extension(conn, "pg_stat_statements")
        conn.execute("create table public.per_call_probe (n int, caller text)")
    return db_url


def test_per_call_binds_each_calls_setup_args_into_its_setup(probe_url):
    callers = [(f"caller-{i}",) for i in range(30)]
    res = per_call(probe_url, "insert into public.per_call_probe values (%s, current_setting('probe.caller'))",
                   [(i,) for i in range(30)], setup="select set_config('probe.caller', %s, true)",
                   setup_args=callers)
    assert (res["calls"], res["traced_calls"]) == (5, 5)  # 20 warm-up calls, then half and half
    assert res["backend_cpu_ms_per_call"] is not None  # the cluster runs on this machine
    assert any("per_call_probe" in s["query"] for s in res["statements"]), res["statements"]
    with psycopg.connect(probe_url) as conn:
        rows = conn.execute("select n, caller from public.per_call_probe order by n").fetchall()
    assert rows == [(i, f"caller-{i}") for i in range(30)]


def test_per_call_refuses_setup_args_it_cannot_bind(probe_url):
    with pytest.raises(ValueError, match="without a setup statement"):
        per_call(probe_url, "select 1", [()], setup_args=[("x",)])
    with pytest.raises(ValueError):
        per_call(probe_url, "select 1", [(), ()], setup="select %s", setup_args=[("x",)])
