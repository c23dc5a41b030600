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


def test_pgtap_file_numbers_are_unique():
    """Each file's number prefix names it alone, so "file 35" is never ambiguous in a report."""
    numbers = [f.name.split("_", 1)[0] for f in FILES]
    assert all(n.isdigit() for n in numbers), numbers
    assert len(FILES) > 1
    assert sorted(n for n in set(numbers) if numbers.count(n) > 1) == []
