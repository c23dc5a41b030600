"""The local Storage's own reads (bucket limits, public objects) answer a database outage with
503 as the rest of the API does, never a 500 (the crash suite kills the postmaster mid-upload)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import psycopg
import pytest

from koepon.localstack.api.errors import ApiError
from koepon.localstack.api.storage import Storage


class _DownPool:
    """A pool whose database went away: every connection fails as psycopg reports a killed postmaster."""

    @contextlib.asynccontextmanager
    async def connection(self):
        raise psycopg.errors.AdminShutdown("terminating connection due to unexpected postmaster exit")
        yield  # pragma: no cover


@pytest.mark.parametrize("call", ["limits", "public"])
def test_a_database_outage_is_503_not_500(call, tmp_path: Path):
    storage = Storage(_DownPool(), rest=None, secret="x", root=tmp_path)
    coro = (storage._enforce_bucket_limits("rewards", b"x", "image/png") if call == "limits"
            else storage.public("avatars", "a/b.png"))
    with pytest.raises(ApiError) as exc:
        asyncio.run(coro)
    assert exc.value.status == 503
