"""Table-driven DAG tests over real cell sources, and the pure graph algorithms."""

from __future__ import annotations

import pytest

from notebooks.analysis import analyse
from notebooks.analysis.dag import build_dag, cycles, topological_sort


def dag_of(*cells: tuple[str, str] | tuple[str, str, str]):
    parsed = []
    for cell in cells:
        cid, source, *lang = cell
        parsed.append((cid, analyse(lang[0] if lang else "python", source, cid)))
    return build_dag(parsed)


def edges(dag) -> set[tuple[str, str, str]]:
    return {(e.from_cell_id, e.to_cell_id, e.variable) for e in dag.edges}


# (case id, cells [(id, source[, language])], expected edges)
DAG_CASES = [
    (
        "linear",
        [("a", "x = 1"), ("b", "y = x + 1"), ("c", "print(y)")],
        {("a", "b", "x"), ("b", "c", "y")},
    ),
    (
        "fan-in",
        [("a", "x = 1"), ("b", "y = 2"), ("c", "z = x + y")],
        {("a", "c", "x"), ("b", "c", "y")},
    ),
    (
        "nearest-earlier-wins",
        [("a", "x = 1"), ("b", "x = 2"), ("c", "print(x)")],
        {("b", "c", "x")},
    ),
    (
        "reader-between-definers",
        [("a", "x = 1"), ("b", "print(x)"), ("c", "x = 2")],
        {("a", "b", "x")},
    ),
    ("later-definer-gives-no-edge", [("a", "print(x)"), ("b", "x = 1")], set()),
    ("self-read-links-upstream", [("a", "x = 1"), ("b", "x = f(x)")], {("a", "b", "x")}),
    (
        "mutation-becomes-producer",
        [("a", "df = load()"), ("b", "df['c'] = 1"), ("c", "print(df)")],
        {("a", "b", "df"), ("b", "c", "df")},
    ),
    (
        "append-chain",
        [("a", "xs = []"), ("b", "xs.append(1)"), ("c", "xs.append(2)"), ("d", "n = len(xs)")],
        {("a", "b", "xs"), ("b", "c", "xs"), ("c", "d", "xs")},
    ),
    (
        "aug-assign-chain",
        [("a", "x = 0"), ("b", "x += 1"), ("c", "y = x")],
        {("a", "b", "x"), ("b", "c", "x")},
    ),
    (
        "method-read-no-producer",
        [("a", "df = load()"), ("b", "h = df.head()"), ("c", "print(df)")],
        {("a", "b", "df"), ("a", "c", "df")},
    ),
    ("builtin-not-rebound", [("a", "n = len([1])")], set()),
    (
        "builtin-rebound-links",
        [("a", "list = [3, 1]"), ("b", "s = sorted(list)")],
        {("a", "b", "list")},
    ),
    ("private-names-no-edge", [("a", "_tmp = 1"), ("b", "y = _tmp")], set()),
    (
        "function-body-reference",
        [("a", "scale = 2"), ("b", "def f(v):\n    return v * scale")],
        {("a", "b", "scale")},
    ),
    (
        "import-used-downstream",
        [("a", "import math"), ("b", "r = math.sqrt(2)")],
        {("a", "b", "math")},
    ),
    (
        "del-removes-definition",
        [("a", "x = 1"), ("b", "x = 2\ndel x"), ("c", "print(x)")],
        {("a", "c", "x")},
    ),
    (
        "bare-annotation-no-definition",
        [("a", "x = 1"), ("b", "x: int"), ("c", "print(x)")],
        {("a", "c", "x")},
    ),
    (
        "sql-reads-python",
        [
            ("a", "events = load()"),
            ("q", "-- @name big\nselect * from events", "sql"),
            ("c", "n = len(big)"),
        ],
        {("a", "q", "events"), ("q", "c", "big")},
    ),
    (
        "sql-default-name",
        [("q1", "select 1 as v", "sql"), ("c", "print(sql_q1)")],
        {("q1", "c", "sql_q1")},
    ),
    ("sql-unknown-table-no-edge", [("q", "select * from nowhere", "sql")], set()),
    (
        "markdown-is-inert",
        [("a", "x = 1"), ("m", "# {x}", "markdown"), ("b", "y = x")],
        {("a", "b", "x")},
    ),
    ("syntax-error-cell-is-isolated", [("a", "x = 1"), ("b", "y = (x"), ("c", "z = y")], set()),
    ("one-edge-per-variable", [("a", "x = 1"), ("b", "y = x + x\nz = x")], {("a", "b", "x")}),
    ("after-annotation", [("a", "x = 1"), ("b", "# @after a\nprint('hi')")], {("a", "b", "")}),
    (
        "prompt-reads",
        [("a", "df = 1"), ("p", "# @name s\nDescribe {{ df }}", "prompt")],
        {("a", "p", "df")},
    ),
]


@pytest.mark.parametrize(
    ("cells", "expected"), [c[1:] for c in DAG_CASES], ids=[c[0] for c in DAG_CASES]
)
def test_dag_edges(cells, expected):
    dag = dag_of(*cells)
    assert edges(dag) == expected
    assert dag.error is None
    assert len(dag.topological_order) == len(cells)


def test_roots_leaves_order_and_producers():
    dag = dag_of(("a", "x = 1"), ("b", "w = 5"), ("c", "y = x + w"), ("d", "z = y"), ("e", "q = 1"))
    assert dag.topological_order == ("a", "b", "c", "d", "e")
    assert set(dag.roots) == {"a", "b", "e"}
    assert set(dag.leaves) == {"d", "e"}
    assert dag.variable_producer == {"x": "a", "w": "b", "y": "c", "z": "d", "q": "e"}
    assert dag.upstream["c"] == ("a", "b")
    assert dag.downstream["a"] == ("c",)


def test_topological_tie_break_is_notebook_order():
    order, left = topological_sort(["c", "a", "b"], {"a": ["c"], "b": []})
    assert order == ["c", "a", "b"] and left == []


def test_shadow_warning_on_redefinition():
    dag = dag_of(("a", "x = 1"), ("b", "x = 2"), ("c", "y = 1"))
    assert dag.shadow_warnings == {"b": ("'x' redefines the variable produced by cell a",)}
    assert dag.variable_producer["x"] == "b"


def test_mutation_is_not_a_shadow():
    dag = dag_of(("a", "xs = []"), ("b", "xs.append(1)"))
    assert dag.shadow_warnings == {}


def test_cycle_is_a_diagnostic_not_an_exception():
    dag = dag_of(("a", "# @after b\nx = 1"), ("b", "y = x"), ("c", "z = 1"))
    assert dag.error is not None and "cycle" in dag.error
    assert dag.topological_order == dag.roots == dag.leaves == ()
    assert dag.variable_producer == {}
    for cid in ("a", "b"):
        assert [d.code for d in dag.diagnostics[cid]] == ["cycle"]
        assert dag.diagnostics[cid][0].severity == "error"
    assert "c" not in dag.diagnostics


def test_two_cells_defining_one_name_in_forced_wrong_order():
    dag = dag_of(("a", "# @after b\nx = 1"), ("b", "x = 2"))
    assert dag.error is not None and "both define 'x'" in dag.error
    assert {d.code for d in dag.diagnostics["a"]} == {"duplicate_definition"}
    assert {d.code for d in dag.diagnostics["b"]} == {"duplicate_definition"}


def test_unknown_after_target_warns():
    dag = dag_of(("a", "# @after nowhere\nx = 1"))
    assert [d.code for d in dag.diagnostics["a"]] == ["unknown_after"]
    assert dag.error is None


def test_cycles_finds_components():
    down = {"a": ["b"], "b": ["a"], "c": ["c"], "d": []}
    assert cycles(["a", "b", "c", "d"], down) == [["a", "b"], ["c"]]


def test_large_notebook_builds_quickly():
    cells = [(f"c{i}", f"v{i} = v{i - 1} + 1" if i else "v0 = 0") for i in range(300)]
    dag = dag_of(*cells)
    assert len(dag.edges) == 299
    assert dag.topological_order[0] == "c0"
