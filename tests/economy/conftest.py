"""Economy fixtures: a migrated database of the module's own with the economy test helpers."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

FIXTURE_SQL = (Path(__file__).parent / "fixture.sql").read_text()


@pytest.fixture(scope="module")
def econ_url(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL)
    return db_url
