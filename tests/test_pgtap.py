"""Every pgTAP file in supabase/tests/database, one pytest test each, on its own clone."""

from __future__ import annotations

import pytest

from koepon.db import pgtap, testing
from koepon.settings import paths

FILES = pgtap.files(paths().pgtap)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_pgtap_file(path):
    url, name = testing.clone("koepon_pgtap")
    try:
        result = pgtap.run_file(url, path)
    finally:
        testing.drop(name)
    assert result.ok, result.summary()
