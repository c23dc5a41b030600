"""`koepon payouts close|export` and `koepon reconcile` as an operator types them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

KOEPON = Path(sys.executable).with_name("koepon")


def run(url, *args):
    return subprocess.run([str(KOEPON), *args], capture_output=True, text=True,
                          env={**os.environ, "KOEPON_DB_URL": url})


def test_payouts_close_then_export(fresh_db_url):
    bad = run(fresh_db_url, "payouts", "close", "2026-13")
    assert bad.returncode != 0 and "YYYY-MM" in bad.stderr
    early = run(fresh_db_url, "payouts", "export", "2026-01")
    assert early.returncode != 0 and "is not closed" in early.stderr
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("""
            select econ_test.vtuber('vt@cli', 'Vee "CLI"');
            insert into econ_test.ids values ('v', (select id from app.vtubers where name = 'Vee "CLI"'));
            insert into econ_test.ids values
              ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":1000000}]')),
              ('f', econ_test.fan('f@cli'));
            select econ_test.paid('f', 10, 'k', '2026-01-10 12:00+09');
        """)
    closed = run(fresh_db_url, "payouts", "close", "2026-01")
    assert closed.returncode == 0, closed.stderr
    assert "closed 2026-01: 1 statement(s)" in closed.stdout
    again = run(fresh_db_url, "payouts", "close", "2026-01")
    assert again.returncode != 0 and "month_already_closed" in again.stderr
    csv = run(fresh_db_url, "payouts", "export", "2026-01")
    assert csv.returncode == 0, csv.stderr
    header, line = csv.stdout.splitlines()
    assert header.startswith("month,vtuber_id,vtuber_name,gross_jpy")
    fields = line.split(",")
    assert fields[0] == "2026-01" and fields[2] == '"Vee ""CLI"""' and fields[3] == "1000"
    assert fields[9] == "700"  # the default 70 % share of ¥1,000


def test_reconcile_files_once(fresh_db_url):
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("""
            insert into econ_test.ids values ('v', econ_test.vtuber('vt@r'));
            insert into econ_test.ids values
              ('g', econ_test.gacha(econ_test.id('v'), '[{"name":"n","rarity":"N","rate_ppm":1000000}]')),
              ('f', econ_test.fan('f@r'));
            select econ_test.paid('f', 1, 'k', now() - interval '1 hour');
        """)
    first = run(fresh_db_url, "reconcile")
    assert first.returncode == 0, first.stderr
    assert "fulfilled_without_payment 1" in first.stdout and "open issues: 1" in first.stdout
    second = run(fresh_db_url, "reconcile")
    assert "fulfilled_without_payment 0" in second.stdout and "open issues: 1" in second.stdout
