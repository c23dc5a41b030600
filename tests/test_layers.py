"""Imports run one way: cli → tools → localstack → db → settings/errors; webhooks imports nothing of koepon.

Every module's imports are read with `ast` (nothing is imported or run), resolved to the layer
they land in, and compared with the layer order in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Layer of each top-level part, highest first; a module may import its own layer and any below.
ORDER = ["cli", "tools", "localstack", "db", "base"]
BASE = {"koepon", "koepon.settings", "koepon.errors"}
# `tools` and `localstack` run the payment service in tests and tools; it is a separate program.
MAY_IMPORT_WEBHOOKS = {"cli", "tools", "localstack"}


def layer_of(module: str) -> str | None:
    """'cli', 'tools', 'localstack', 'db', 'base', 'webhooks', or None for third-party modules."""
    parts = module.split(".")
    if parts[0] == "webhooks":
        return "webhooks"
    if parts[0] != "koepon":
        return None
    if module in BASE or len(parts) == 1:
        return "base"
    return parts[1] if parts[1] in ORDER else "base"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts if rel.name == "__init__" else rel.parts[:-1])
    if package and package[-1] == "__init__":
        package = package[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from koepon import db` imports the module koepon.db: judge each name as a module.
            names = [f"{mod}.{a.name}" for a in node.names] if mod in ("koepon", "koepon.tools",
                                                                        "koepon.localstack", "koepon.db",
                                                                        "koepon.cli") else [mod]
            out += [(node.lineno, n) for n in names]
    return out


def violations(top: str) -> list[str]:
    found = []
    for path in sorted((ROOT / top).rglob("*.py")):
        own = layer_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, mod in imports_of(path):
            target = layer_of(mod)
            if target is None:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {mod}"
            if own == "webhooks":
                if target != "webhooks":
                    found.append(f"{where}: the payment service imports nothing of koepon")
            elif target == "webhooks":
                if own not in MAY_IMPORT_WEBHOOKS:
                    found.append(f"{where}: only cli, tools and localstack may use the payment service")
            elif ORDER.index(target) < ORDER.index(own):
                found.append(f"{where}: {own} may not import {target} (cli → tools → localstack → db → base)")
    return found


def test_koepon_imports_run_one_way():
    assert violations("koepon") == []


def test_the_payment_service_imports_nothing_of_koepon():
    assert violations("webhooks") == []


def test_the_check_catches_an_import_the_wrong_way(tmp_path, monkeypatch):
    """The checker itself can fail: a db module importing localstack, webhooks importing koepon."""
    fake = tmp_path / "koepon" / "db"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from ..localstack import services\nimport koepon.cli\n")
    hooks = tmp_path / "webhooks"
    hooks.mkdir()
    (hooks / "app.py").write_text("from koepon.settings import JWT_SECRET\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    bad = violations("koepon")
    assert len(bad) == 2 and "db may not import localstack" in bad[0] and "db may not import cli" in bad[1]
    assert violations("webhooks") == ["webhooks/app.py:1 imports koepon.settings: "
                                      "the payment service imports nothing of koepon"]
