"""Table-driven tests of cell analysis: real cell sources, expected defines/references."""

from __future__ import annotations

import pytest

from notebooks.analysis import analyse

# (case id, source, defines, references, mutation_defines)
PYTHON_CASES = [
    ("assign", "x = 1", ["x"], [], []),
    ("assign-reads-rhs", "y = x + 1", ["y"], ["x"], []),
    ("self-read", "x = f(x)", ["x"], ["f", "x"], []),
    ("bound-first", "x = 1\ny = x", ["x", "y"], [], []),
    ("read-before-bind", "print(x)\nx = 1", ["x"], ["x"], []),
    ("tuple-unpack", "a, (b, *c) = rows", ["a", "b", "c"], ["rows"], []),
    ("chained", "a = b = load()", ["a", "b"], ["load"], []),
    ("annotated-with-value", "n: int = size * 2", ["n"], ["size"], []),
    ("bare-annotation-binds-nothing", "x: int", [], [], []),
    ("bare-annotation-reads-type", "x: Frame", [], ["Frame"], []),
    ("aug-own-name", "x = 0\nx += step", ["x"], ["step"], []),
    ("aug-upstream", "x += 1", [], ["x"], ["x"]),
    ("import", "import numpy as np\nimport os.path", ["np", "os"], [], []),
    ("from-import", "from math import sqrt, pi as PI", ["sqrt", "PI"], [], []),
    ("def-body-free", "def f(a):\n    return a * scale + offset", ["f"], ["scale", "offset"], []),
    ("def-uses-later-def", "def f():\n    return g()\ndef g():\n    return 1", ["f", "g"], [], []),
    (
        "def-default-and-decorator",
        "@memo(cache)\ndef f(x=default):\n    pass",
        ["f"],
        ["memo", "cache", "default"],
        [],
    ),
    ("def-annotations", "def f(x: In) -> Out:\n    pass", ["f"], ["In", "Out"], []),
    ("def-locals-private", "def f():\n    tmp = 1\n    return tmp", ["f"], [], []),
    (
        "closure",
        "def outer():\n    k = 1\n    def inner():\n        return k + z\n    return inner",
        ["outer"],
        ["z"],
        [],
    ),
    (
        "class",
        "class Model(Base):\n    rate = default_rate\n    def fit(self):\n        return rate",
        ["Model"],
        ["Base", "default_rate", "rate"],
        [],
    ),
    ("lambda", "f = lambda v, w=w0: v + bias", ["f"], ["w0", "bias"], []),
    (
        "for-target",
        "for i, row in enumerate(rows):\n    last = row",
        ["i", "row", "last"],
        ["rows"],
        [],
    ),
    ("with-target", "with open(path) as fh:\n    text = fh.read()", ["fh", "text"], ["path"], []),
    ("walrus", "if (n := len(items)) > 2:\n    big = n", ["n", "big"], ["items"], []),
    (
        "walrus-in-comprehension",
        "vals = [y for v in data if (y := v * 2)]",
        ["y", "vals"],
        ["data"],
        [],
    ),
    ("comprehension-scope", "out = [v * k for v in vals]", ["out"], ["vals", "k"], []),
    ("dict-comprehension", "m = {k: v for k, v in pairs.items()}", ["m"], ["pairs"], []),
    ("generator-nested", "s = sum(a * b for a in xs for b in ys)", ["s"], ["xs", "ys"], []),
    (
        "match-captures",
        "match cmd:\n    case ['go', where]:\n        pass\n"
        "    case {'k': v, **rest}:\n        pass\n"
        "    case Point(x=px) as pt:\n        pass\n    case [first, *others]:\n        pass",
        ["where", "v", "rest", "px", "pt", "first", "others"],
        ["cmd", "Point"],
        [],
    ),
    (
        "except-as-local",
        "try:\n    r = run()\nexcept Failure as err:\n    msg = str(err)",
        ["r", "msg"],
        ["run", "Failure"],
        [],
    ),
    (
        "global-write",
        "def bump():\n    global counter\n    counter = 1",
        ["bump", "counter"],
        [],
        [],
    ),
    (
        "global-aug-reads",
        "def bump():\n    global counter\n    counter += 1",
        ["bump", "counter"],
        ["counter"],
        [],
    ),
    ("del-own", "tmp = 1\nkeep = 2\ndel tmp", ["keep"], [], []),
    ("del-upstream-warns", "del upstream_df", [], ["upstream_df"], []),
    ("subscript-target", "t[k] = v", [], ["v", "t", "k"], ["t"]),
    ("df-column-assign", "df['c'] = df.a + 1", [], ["df"], ["df"]),
    ("attribute-target", "cfg.debug = True", [], ["cfg"], ["cfg"]),
    ("subscript-own-name", "d = {}\nd['k'] = v", ["d"], ["v"], []),
    ("underscore-reads", "_ = f(df)", [], ["f", "df"], []),
    ("private-names", "_tmp = load()\nresult = _tmp + _upstream", ["result"], ["load"], []),
    ("append", "lst.append(1)", [], ["lst"], ["lst"]),
    ("extend-insert", "lst.extend(more)\nlst.insert(0, x)", [], ["lst", "more", "x"], ["lst"]),
    (
        "update-setdefault",
        "cfg.update(extra)\nd.setdefault('a', 1)",
        [],
        ["cfg", "extra", "d"],
        ["cfg", "d"],
    ),
    ("set-ops", "seen.add(1)\nseen.discard(2)", [], ["seen"], ["seen"]),
    (
        "pop-sort-reverse-clear",
        "a.pop()\nb.sort()\nc.reverse()\nd.clear()",
        [],
        ["a", "b", "c", "d"],
        ["a", "b", "c", "d"],
    ),
    ("remove-popitem", "lst.remove(3)\nd.popitem()", [], ["lst", "d"], ["lst", "d"]),
    ("inplace-true", "df.drop(columns=['a'], inplace=True)", [], ["df"], ["df"]),
    ("inplace-false-is-read", "df2 = df.drop(columns=['a'], inplace=False)", ["df2"], ["df"], []),
    ("method-read", "head = df.head(5)", ["head"], ["df"], []),
    ("nested-subscript-mutation", "df.loc[mask, 'c'] = 0", [], ["df", "mask"], ["df"]),
    ("mutation-of-own-list", "xs = []\nxs.append(v)", ["xs"], ["v"], []),
    (
        "fstring",
        "label = f'{name!r}: {value:{width}.2f}'",
        ["label"],
        ["name", "value", "width"],
        [],
    ),
    ("builtins-excluded", "n = len(items) + max(1, 2)", ["n"], ["items"], []),
    ("builtin-rebound", "list = [1, 2]", ["list"], [], []),
    ("star-import-warns", "from os import *", [], [], []),
    (
        "async-def",
        "async def fetch(url):\n    return await client.get(url)",
        ["fetch"],
        ["client"],
        [],
    ),
    ("conditional-expression", "y = a if cond else b", ["y"], ["a", "cond", "b"], []),
    ("while-loop", "while not done:\n    step()", [], ["done", "step"], []),
    ("decorated-class", "@dataclass\nclass P:\n    x: int = 0", ["P"], ["dataclass"], []),
    (
        "type-annotation-in-function-not-read",
        "def f():\n    v: Unknown = 1\n    return v",
        ["f"],
        [],
        [],
    ),
    ("empty", "", [], [], []),
    ("comment-only", "# nothing here\n", [], [], []),
]


@pytest.mark.parametrize(
    ("source", "defines", "references", "mutations"),
    [c[1:] for c in PYTHON_CASES],
    ids=[c[0] for c in PYTHON_CASES],
)
def test_python_analysis(source, defines, references, mutations):
    info = analyse("python", source, "c1")
    assert list(info.defines) == defines
    assert sorted(info.references) == sorted(references)
    assert list(info.mutation_defines) == mutations
    assert not [d for d in info.diagnostics if d.severity == "error"]


def test_enough_cases():
    assert len(PYTHON_CASES) >= 40


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("x += 1", "mutation"),
        ("df['c'] = 1", "mutation"),
        ("lst.append(1)", "mutation"),
        ("del upstream", "del_upstream"),
        ("from os import *", "star_import"),
    ],
)
def test_warnings(source, code):
    info = analyse("python", source, "c1")
    assert [d.code for d in info.diagnostics] == [code]
    assert info.diagnostics[0].severity == "warn"
    assert info.diagnostics[0].line == 1


def test_mutation_warning_names_the_variable():
    (diag,) = analyse("python", "\n\ndf['c'] = 1", "c1").diagnostics
    assert diag.line == 3
    assert "'df'" in diag.message


@pytest.mark.parametrize(
    ("source", "line"),
    [("def f(:\n    pass", 1), ("x = 1\ny = (\n", 2), ("x = 1\n  y = 2", 2), ("a = 'x\0'", None)],
)
def test_syntax_error_is_a_diagnostic(source, line):
    info = analyse("python", source, "c1")
    assert info.defines == info.references == ()
    (diag,) = info.diagnostics
    assert (diag.severity, diag.code) == ("error", "syntax_error")
    if line is not None:
        assert diag.line == line
    assert diag.message


def test_builtins_recorded_separately():
    info = analyse("python", "n = len(xs)\nprint(n)", "c1")
    assert info.builtin_references == ("len", "print")
    assert info.references == ("xs",)


def test_module_cell_exports():
    info = analyse("python", '"""helpers"""\nimport math\ndef area(r):\n    return math.pi', "c")
    assert info.module_exports == (("math", "import"), ("area", "function"))
    assert analyse("python", "x = 1\ndef f(): pass", "c").module_exports is None


@pytest.mark.parametrize(
    ("source", "defines", "references"),
    [
        ("select * from events", ["sql_c1"], ["events"]),
        ("-- @name big\nselect * from events where id > 1", ["big"], ["events"]),
        ("-- a comment\n-- @name j\nselect * from a join b using (id)", ["j"], ["a", "b"]),
        ("with x as (select * from a) select * from x", ["sql_c1"], ["a"]),
        ("select * from read_parquet('f.parquet')", ["sql_c1"], []),
        ("select * from main.tbl, catalog.db.t", ["sql_c1"], []),
        ("select (select max(v) from sub) as m from t", ["sql_c1"], ["sub", "t"]),
        ("create table out as select * from src", ["sql_c1"], ["src"]),
        ("insert into log select * from staged", ["sql_c1"], ["staged"]),
        ("select 1 union all select id from more", ["sql_c1"], ["more"]),
        ("-- @name df\nselect * from df", ["df"], ["df"]),
        ("select * from _private, ok", ["sql_c1"], ["ok"]),
        ("", [], []),
    ],
)
def test_sql_analysis(source, defines, references):
    info = analyse("sql", source, "c1")
    assert list(info.defines) == defines
    assert sorted(info.references) == sorted(references)
    assert not info.diagnostics


@pytest.mark.parametrize("source", ["selec broken from", "select 'unterminated", "select * from ("])
def test_sql_syntax_error_is_a_diagnostic(source):
    info = analyse("sql", source, "c1")
    assert info.defines == info.references == ()
    assert [d.code for d in info.diagnostics] == ["syntax_error"]


def test_sql_default_name_sanitises_id():
    info = analyse("sql", "select 1", "0b7c5f0e-2f7e")
    assert info.defines == ("sql_0b7c5f0e_2f7e",)


def test_prompt_and_markdown():
    prompt = analyse("prompt", "# @name summary\nSummarise {{ df }} using {{cfg.style}}.", "p")
    assert prompt.defines == ("summary",)
    assert prompt.references == ("df", "cfg")
    md = analyse("markdown", "# Title\nx = 1 {{ y }}", "m")
    assert md.defines == md.references == ()


def test_annotations_parsed():
    info = analyse("python", "# @name loader\n# @after a1, b2\nx = 1", "c")
    assert info.annotations.name == "loader"
    assert info.annotations.after == ("a1", "b2")
