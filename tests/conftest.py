"""Shared fixtures: a migrated template database per session, a clone per module."""

from __future__ import annotations

import pytest

from koepon.db import testing


@pytest.fixture(scope="session")
def admin_url() -> str:
    return testing.admin_url()


@pytest.fixture(scope="module")
def db_url() -> str:
    """A migrated database (no seed) of this test module's own."""
    url, name = testing.clone()
    yield url
    testing.drop(name)


@pytest.fixture(scope="module")
def seeded_db_url() -> str:
    """A migrated and seeded database of this test module's own."""
    url, name = testing.clone(seeded=True)
    yield url
    testing.drop(name)


@pytest.fixture()
def fresh_db_url() -> str:
    """A migrated database for one test that changes it beyond repair."""
    url, name = testing.clone()
    yield url
    testing.drop(name)


@pytest.fixture(scope="module")
def api_url(seeded_db_url) -> str:
    """The local API serving this module's seeded database, on an ephemeral port."""
    from koepon.localstack.api.testing import running_api

    with running_api(seeded_db_url) as url:
        yield url
