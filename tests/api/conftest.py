"""The conformance suites' client: anonymous, on the API serving a seeded database with PostgREST's
own fixture rows installed (tests/api/sql/embed_fixture.sql)."""

from __future__ import annotations

import httpx
import pytest
from conformance import ANON, install

from koepon.localstack.api.testing import running_api


@pytest.fixture(scope="module")
def api(seeded_db_url):
    install(seeded_db_url)
    with running_api(seeded_db_url) as url:
        with httpx.Client(base_url=f"{url}/rest/v1", headers=ANON, timeout=10) as client:
            yield client
