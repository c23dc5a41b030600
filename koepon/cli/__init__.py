"""`koepon`: click commands only, one module per command group. They parse options and call the
packages below them (tools, localstack, db); every group is registered here, explicitly."""

from __future__ import annotations

from . import backoffice, bench, db, demo, fairness, gen, mail, pay, soak, stack
from .base import main

for _group in (db, stack, fairness, pay, demo, bench, soak, gen, backoffice, mail):
    _group.register(main)

__all__ = ["main"]
