"""The encoded-JSON cache must always say what a fresh encode would."""

from __future__ import annotations

import json

from notebooks.serialize import cell_dict, cells_json, cells_list


def test_cached_json_matches_fresh_encoding(manager):
    session = manager.create(".", "cache", "3.11", False)
    ids = [session.add_cell("python").id for _ in range(4)]
    cache: dict = {}
    steps = [
        (ids[0], "x = 1"),
        (ids[1], "y = x + 1"),
        (ids[2], "z = y\nx = 5"),
        (ids[3], "print(x, z)"),
        (ids[1], "y = 2"),
    ]
    for cid, source in steps:
        session.update_source(cid, source)
        for run in session.derived.dag.topological_order[:2]:
            session.record_run(run)
        derived = session.derived
        assert json.loads(cells_json(derived, cache)) == cells_list(derived)
    session.delete_cell(ids[0])
    session.reorder([ids[3]])
    derived = session.derived
    assert json.loads(cells_json(derived, cache)) == [cell_dict(c, derived) for c in derived.cells]
    assert set(cache) >= {c.id for c in derived.cells}
