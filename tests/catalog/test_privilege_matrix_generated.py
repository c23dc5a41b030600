"""The committed privilege matrix is what its generator produces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

GEN = Path(__file__).with_name("gen_privilege_matrix.py")


def test_matrix_file_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_privilege_matrix", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.TARGET.read_text() == mod.out, "regenerate: python tests/catalog/gen_privilege_matrix.py"
