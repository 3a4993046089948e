"""Staleness with reasons and causality, driven through a real session on disk."""

from __future__ import annotations

from pathlib import Path

from notebooks import NotebookManager, Session
from notebooks.analysis.staleness import CellFacts, Env, RunRecord, compute_staleness, env_changes


def three_cells(manager: NotebookManager) -> tuple[Session, list[str]]:
    session = manager.create(".", "stale", "3.11", False)
    ids = []
    for source in ("x = 1", "y = x + 1", "z = y * 2"):
        cid = session.add_cell("python").id
        session.update_source(cid, source)
        ids.append(cid)
    return session, ids


def status(session: Session, cid: str) -> tuple[str, tuple[str, ...]]:
    st = session.derived.staleness[cid]
    return st.status, st.reasons


def run_all(session: Session, ids: list[str]) -> None:
    for cid in session.derived.dag.topological_order:
        if cid in ids:
            session.record_run(cid)


def test_never_run_cells_are_idle(manager):
    session, ids = three_cells(manager)
    assert [status(session, c) for c in ids] == [("idle", ())] * 3


def test_run_cells_are_ready(manager):
    session, ids = three_cells(manager)
    run_all(session, ids)
    assert [status(session, c) for c in ids] == [("ready", ())] * 3


def test_source_change_is_self_and_propagates_as_upstream(manager):
    session, (a, b, c) = three_cells(manager)
    run_all(session, [a, b, c])
    session.update_source(a, "x = 2")
    assert status(session, a) == ("stale", ("self",))
    assert status(session, b) == ("stale", ("upstream",))
    assert status(session, c) == ("stale", ("upstream",))
    assert session.derived.staleness[a].causality() == {
        "reason": "self",
        "details": [{"type": "source_changed", "cell_id": a}],
    }
    assert session.derived.staleness[b].details == ({"type": "input_changed", "cell_id": a},)
    assert session.derived.staleness[c].details == ({"type": "input_changed", "cell_id": b},)


def test_rerun_clears_staleness_in_order(manager):
    session, (a, b, c) = three_cells(manager)
    run_all(session, [a, b, c])
    session.update_source(a, "x = 2")
    session.record_run(a)
    assert status(session, a) == ("ready", ())
    assert status(session, b) == ("stale", ("upstream",))  # a's value changed under it
    session.record_run(b)
    session.record_run(c)
    assert status(session, c) == ("ready", ())


def test_reverting_source_makes_cell_ready_again(manager):
    session, (a, b, _c) = three_cells(manager)
    run_all(session, [a, b])
    session.update_source(a, "x = 99")
    session.update_source(a, "x = 1")
    assert status(session, a) == ("ready", ())
    assert status(session, b) == ("ready", ())


def test_env_change_names_the_package(manager):
    session, (a, b, c) = three_cells(manager)
    run_all(session, [a, b, c])
    pyproject = Path(session.path) / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.9"', '"orjson>=3.10"'))
    session.refresh_env()
    st = session.derived.staleness[a]
    assert st.status == "stale" and st.reasons == ("env",)
    assert st.details == (
        {
            "type": "env_changed",
            "package": "orjson",
            "from_package_version": ">=3.9",
            "to_package_version": ">=3.10",
        },
    )
    assert session.derived.staleness[b].reasons == ("env", "upstream")


def test_uv_lock_versions_are_preferred(manager):
    session, (a, _b, _c) = three_cells(manager)
    lock = Path(session.path) / "uv.lock"
    lock.write_text('version = 1\n[[package]]\nname = "numpy"\nversion = "2.0.0"\n')
    session.refresh_env()
    session.record_run(a)
    lock.write_text('version = 1\n[[package]]\nname = "numpy"\nversion = "2.1.0"\n')
    session.refresh_env()
    assert session.derived.staleness[a].details == (
        {
            "type": "env_changed",
            "package": "numpy",
            "from_package_version": "2.0.0",
            "to_package_version": "2.1.0",
        },
    )


def test_markdown_is_always_ready(manager):
    session = manager.create(".", "md", "3.11", False)
    cid = session.add_cell("markdown").id
    session.update_source(cid, "# Title")
    assert status(session, cid) == ("ready", ())


def test_error_run_stays_error_until_something_changes(manager):
    session, (a, b, _c) = three_cells(manager)
    session.record_run(a)
    session.record_run(b, status="error")
    assert status(session, b) == ("error", ())
    session.update_source(b, "y = x + 2")
    assert status(session, b) == ("stale", ("self",))


def test_removed_upstream_is_an_upstream_reason(manager):
    session, (a, b, _c) = three_cells(manager)
    run_all(session, [a, b])
    session.delete_cell(a)
    st = session.derived.staleness[b]
    assert (st.status, st.reasons) == ("stale", ("upstream",))
    assert st.details == ({"type": "input_changed", "cell_id": a},)


def test_new_upstream_is_an_upstream_reason(manager):
    session, (a, b, _c) = three_cells(manager)
    session.update_source(b, "y = 5")
    run_all(session, [a, b])
    session.update_source(a, "x = 1\ny = 5")
    session.record_run(a)
    # b now redefines y; c reads y from b as before, so only a's own edit shows
    assert status(session, b) == ("ready", ())


def test_run_records_survive_a_restart(manager, settings, clock):
    session, (a, b, _c) = three_cells(manager)
    run_all(session, [a, b])
    again = NotebookManager(settings, clock=clock, python_versions={"3.11": Path("/x")})
    reopened = again.open(session.path)
    assert reopened.id != session.id
    assert status(reopened, a) == ("ready", ())
    assert status(reopened, b) == ("ready", ())


def test_cell_name_in_causality():
    cells = {
        "a": CellFacts("python", "h1", name="loader"),
        "b": CellFacts("python", "h2"),
    }
    env = Env("e1")
    first = compute_staleness(["a", "b"], cells, {"b": ["a"]}, {}, env)
    runs = {
        "b": RunRecord("h2", "e1", first["b"].provenance_hash, {"a": "old"}),
        "a": RunRecord("h1", "e1", first["a"].provenance_hash),
    }
    out = compute_staleness(["a", "b"], cells, {"b": ["a"]}, runs, env)
    assert out["b"].details == ({"type": "input_changed", "cell_id": "a", "cell_name": "loader"},)


def test_env_changes_diff():
    assert env_changes({"a": "1", "b": "2"}, {"a": "1", "c": "3"}) == [
        {"type": "env_changed", "package": "b", "from_package_version": "2"},
        {"type": "env_changed", "package": "c", "to_package_version": "3"},
    ]
    assert env_changes(None, {"a": "1"}) == [{"type": "env_changed"}]


def test_changed_variables_are_a_self_reason_and_propagate():
    env = Env("e")
    plain = CellFacts("python", "s")
    with_vars = CellFacts("python", "s", variables={"MODE": "a"})
    no_vars = compute_staleness(["a"], {"a": plain}, {}, {}, env)["a"].provenance_hash
    assert (
        compute_staleness(["a"], {"a": CellFacts("python", "s", variables={})}, {}, {}, env)[
            "a"
        ].provenance_hash
        == no_vars
    )  # no variables: the hash is as it always was
    first = compute_staleness(["a", "b"], {"a": with_vars, "b": plain}, {"b": ["a"]}, {}, env)
    runs = {
        "a": RunRecord("s", "e", first["a"].provenance_hash),
        "b": RunRecord("s", "e", first["b"].provenance_hash, {"a": first["a"].provenance_hash}),
    }
    same = compute_staleness(["a", "b"], {"a": with_vars, "b": plain}, {"b": ["a"]}, runs, env)
    assert same["a"].status == same["b"].status == "ready"
    moved = CellFacts("python", "s", variables={"MODE": "b"})
    out = compute_staleness(["a", "b"], {"a": moved, "b": plain}, {"b": ["a"]}, runs, env)
    assert out["a"].reasons == ("self",) and out["a"].details == (
        {"type": "config_changed", "cell_id": "a"},
    )
    assert out["b"].reasons == ("upstream",)
