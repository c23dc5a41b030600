"""Economy fixtures: a migrated database of the module's own with the economy test helpers."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def econ_url(db_url: str) -> str:
    """The module's database; the economy fixture (supabase/tests/economy_fixture.sql) is installed
    in every test database with the test helpers."""
    return db_url
