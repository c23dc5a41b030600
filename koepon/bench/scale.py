"""scale: the read paths at 1M fans / 10M pulls / 10M ledger entries (times --scale-factor)."""

from __future__ import annotations

from .scenarios import Skip


def scale(db, opts: dict) -> dict:
    raise Skip("scale scenario not wired yet")
