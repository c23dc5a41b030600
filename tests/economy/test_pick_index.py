"""private.pick_index: the one function that picks a pull's entry, for the draw and (through
pick_entry) for the statistics tests. Boundaries of the cumulative ranges, zero rates, beyond."""

from __future__ import annotations

import json

import psycopg


def test_pick_index_boundaries_match_pick_entry(econ_url):
    entries = [["a", "N", 700000], ["z", "R", 0], ["b", "SR", 299900], ["c", "UR", 100]]
    cum = [700000, 700000, 999900, 1000000]
    with psycopg.connect(econ_url) as conn:
        for roll, want in [(0, 1), (699999, 1), (700000, 3), (999899, 3), (999900, 4), (999999, 4)]:
            k, e = conn.execute("select private.pick_index(%s::bigint[], %s), private.pick_entry(%s::jsonb, %s) ->> 0",
                                (cum, roll, json.dumps(entries), roll)).fetchone()
            assert k == want, (roll, k)
            assert e == entries[want - 1][0], (roll, e)  # the zero-rate entry is never picked
        assert conn.execute("select private.pick_index(%s::bigint[], 1000000)", (cum,)).fetchone()[0] is None
