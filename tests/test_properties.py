"""Property tests (Hypothesis): URI parsing, the patterns the OpenAPI document states,
scan@v1's canonical identity of filters, cell analysis and the notebook TOML round trip.

The default profile (tests/conftest.py) is derandomized, so ``make test`` runs the same
examples every time; ``HYPOTHESIS_PROFILE=explore`` draws new ones and more of them.
"""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

import pytest
import tomlkit
from hypothesis import assume, given
from hypothesis import strategies as st

from catalog import (
    ArtifactRef,
    NameRef,
    TableRef,
    artifact_uri,
    parse_uri,
    validate_name,
)
from catalog.alias_records import validate_alias
from catalog.tags import validate_tag_key
from executors.scan import ScanExecutor, ScanParams
from flight import PROVENANCE_HASH_PATTERN, check_provenance_hash
from foundation import (
    ALIAS_PATTERN,
    ARTIFACT_ID_PATTERN,
    NAME_MAX_CHARS,
    NAME_PATTERN,
    TAG_KEY_PATTERN,
    InvalidArgument,
)
from notebooks.analysis import analyse
from notebooks.model.disk import CellEntry, NotebookDir, slug
from notebooks.model.paths import NAME_TEXT_PATTERN, NOTEBOOK_NAME_PATTERN, check_name

# -- text that looks like what it must be, and text that nearly does ----------------------

NAME_CHARS = "abcXYZ019_.-/@: \n\t%#?é\x00"


def near(pattern: str, alphabet: str, max_size: int = 40) -> st.SearchStrategy[str]:
    """Strings matching ``pattern``, and strings from an alphabet of its edge cases."""
    return st.one_of(
        st.from_regex(pattern, fullmatch=True), st.text(alphabet, max_size=max_size), st.text()
    )


def accepts(check: object, value: str) -> bool:
    try:
        check(value)  # type: ignore[operator]
    except InvalidArgument:
        return False
    return True


# -- URIs ----------------------------------------------------------------------------------


@given(st.text())
def test_parse_uri_refuses_only_with_invalid_argument(text: str) -> None:
    try:
        ref = parse_uri(text)
    except InvalidArgument as exc:
        assert "accepted forms" in exc.message
        return
    assert parse_uri(ref.uri) == ref  # what parses has a canonical form that parses the same


@given(st.from_regex(ARTIFACT_ID_PATTERN, fullmatch=True), st.integers(1, 2**63))
def test_an_artifact_uri_round_trips(artifact_id: str, version: int) -> None:
    uri = artifact_uri(artifact_id, version)
    assert parse_uri(uri) == ArtifactRef(artifact_id, version)
    assert parse_uri(uri).uri == uri


@given(near(NAME_PATTERN, NAME_CHARS))
def test_the_documented_name_pattern_is_what_validate_name_accepts(name: str) -> None:
    documented = bool(re.fullmatch(NAME_PATTERN, name)) and len(name) <= NAME_MAX_CHARS
    assert accepts(validate_name, name) == documented
    if documented:
        assert parse_uri(f"strata://name/{name}") == NameRef(name)


_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_$-]{0,8}", fullmatch=True)
_SEGMENT = st.from_regex(r"[A-Za-z0-9_. -]{1,8}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)


@given(
    st.lists(_SEGMENT, min_size=1, max_size=4),
    st.lists(_IDENT, min_size=2, max_size=3),
    st.sampled_from(["file://", "file://localhost", ""]),
)
def test_a_table_uri_parses_to_one_canonical_form(
    segments: list[str], ident: list[str], scheme: str
) -> None:
    uri = f"{scheme}/{'/'.join(segments)}#{'.'.join(ident)}"
    ref = parse_uri(uri)
    assert isinstance(ref, TableRef)
    assert ref.identifier == ".".join(ident)
    assert ref.warehouse.startswith("/") and parse_uri(ref.uri) == ref


@pytest.mark.parametrize(
    ("pattern", "check", "alphabet"),
    [
        (ALIAS_PATTERN, validate_alias, "abZ09_.-:/ \n"),
        (TAG_KEY_PATTERN, validate_tag_key, "abZ09_.-:/ \n"),
        (PROVENANCE_HASH_PATTERN, check_provenance_hash, "0123456789abcdefAF\n"),
        (NAME_TEXT_PATTERN, check_name, "ab ./\\\x00é\n"),
    ],
    ids=["alias", "tag-key", "provenance-hash", "notebook-rename"],
)
def test_each_documented_pattern_is_what_its_check_accepts(
    pattern: str, check: object, alphabet: str
) -> None:
    @given(near(pattern, alphabet, max_size=70))
    def same(value: str) -> None:
        assert accepts(check, value) == bool(re.fullmatch(pattern, value)), value

    same()


def test_a_name_that_is_not_valid_text_is_refused_before_it_reaches_the_toml() -> None:
    # JSON may carry "\ud800"; written out, it made notebook.toml unreadable
    assert not accepts(check_name, "a\ud800b")


@given(near(NOTEBOOK_NAME_PATTERN, "ab ./\\\x00é\n"))
def test_the_documented_notebook_name_is_what_create_accepts(name: str) -> None:
    created = accepts(check_name, name) and bool(slug(name).strip(". "))
    assert created == bool(re.fullmatch(NOTEBOOK_NAME_PATTERN, name)), name


# -- scan@v1's canonical identity -----------------------------------------------------------

_SCALAR = st.one_of(
    st.integers(-5, 5), st.booleans(), st.sampled_from(["a", "b", ""]), st.sampled_from([0.5, -1.0])
)
_FILTER = st.one_of(
    st.fixed_dictionaries(
        {
            "column": st.sampled_from(["x", "y", "z"]),
            "op": st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
            "value": _SCALAR,
        }
    ),
    st.fixed_dictionaries(
        {
            "column": st.sampled_from(["x", "y"]),
            "op": st.just("in"),
            "value": st.lists(_SCALAR, min_size=1, max_size=4),
        }
    ),
    st.fixed_dictionaries(
        {"column": st.sampled_from(["x", "y"]), "op": st.sampled_from(["is_null", "not_null"])}
    ),
)


def _identity(filters: list[dict]) -> dict:
    return ScanExecutor().identity(ScanParams.model_validate({"filters": filters}))


@given(st.lists(_FILTER, max_size=6), st.randoms(use_true_random=False))
def test_filters_in_any_order_and_repeated_have_one_identity(filters: list[dict], rnd) -> None:
    shuffled = [dict(f) for f in filters + filters[: len(filters) // 2]]
    rnd.shuffle(shuffled)
    for f in shuffled:
        if f["op"] == "in":
            f["value"] = rnd.sample(f["value"], len(f["value"])) + f["value"][:1]
    assert _identity(shuffled) == _identity(filters)
    json.dumps(_identity(filters), allow_nan=False)  # goes into the provenance hash as JSON


@given(st.sampled_from(["x", "y"]), _SCALAR)
def test_in_with_one_value_is_equality(column: str, value: object) -> None:
    one = _identity([{"column": column, "op": "in", "value": [value]}])
    assert one == _identity([{"column": column, "op": "=", "value": value}])


@given(st.lists(_FILTER, min_size=1, max_size=4), _FILTER)
def test_a_filter_that_changes_the_result_changes_the_identity(
    filters: list[dict], extra: dict
) -> None:
    canonical = [json.dumps(f, sort_keys=True) for f in _identity(filters)["filters"]]
    added = _identity([*filters, extra])["filters"]
    if len(added) == len(canonical):  # the extra one was already there (in canonical form)
        return
    assert _identity([*filters, extra]) != _identity(filters)


# -- cell analysis --------------------------------------------------------------------------


@given(st.text(max_size=300), st.sampled_from(["python", "sql", "markdown", "prompt"]))
def test_analysis_never_raises_on_any_text(source: str, language: str) -> None:
    found = analyse(language, source, "c1")
    for name in (*found.defines, *found.references, *found.mutation_defines):
        assert not name.startswith("_")
    assert len(set(found.defines)) == len(found.defines)
    assert len(set(found.references)) == len(found.references)


_VAR = st.from_regex(r"[a-e][0-9]?", fullmatch=True).filter(lambda n: not keyword.iskeyword(n))


@given(st.lists(st.tuples(_VAR, st.lists(_VAR, max_size=3)), min_size=1, max_size=8))
def test_defines_and_references_of_straight_line_assignments(
    statements: list[tuple[str, list[str]]],
) -> None:
    """``t = a + b`` lines: defines are the targets; references the names read before
    this cell binds them."""
    source = "\n".join(f"{t} = {' + '.join(reads) or '0'}" for t, reads in statements)
    found = analyse("python", source, "c1")
    bound: list[str] = []
    read_first: list[str] = []
    for target, reads in statements:
        for r in reads:
            if r not in bound and r not in read_first:
                read_first.append(r)
        if target not in bound:
            bound.append(target)
    assert set(found.defines) == set(bound)
    assert list(found.references) == read_first


@given(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), st.text(max_size=40))
def test_a_sql_cell_defines_its_one_name(name: str, noise: str) -> None:
    assume(not name.startswith("_"))
    found = analyse("sql", f"-- @name {name}\nselect * from t1 join t2 using (k)", "c1")
    assert found.defines == (name,) and set(found.references) == {"t1", "t2"}
    analyse("sql", f"-- @name {name}\n{noise}", "c1")  # never raises


# -- the notebook TOML round trip -----------------------------------------------------------

_KEY = st.from_regex(r"x_[a-z]{1,6}", fullmatch=True)
_LEAF = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    st.floats(allow_nan=False),
)
_VALUE = st.one_of(
    _LEAF,
    st.lists(_LEAF, max_size=3),
    st.dictionaries(_KEY, st.one_of(_LEAF, st.lists(_LEAF, max_size=2)), max_size=3),
)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)


@given(
    unknown=st.dictionaries(_KEY, _VALUE, max_size=4),
    cell_unknown=st.dictionaries(_KEY, _VALUE, max_size=3),
    name=_TEXT,
    orders=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=4),
)
def test_load_of_save_is_the_same_notebook_and_unknown_keys_stay(
    tmp_path_factory: pytest.TempPathFactory,
    unknown: dict,
    cell_unknown: dict,
    name: str,
    orders: list[float],
) -> None:
    path: Path = tmp_path_factory.mktemp("nb") / "n"
    nb = NotebookDir.create(path, "first", "3.11")
    for key, value in unknown.items():
        nb.doc[key] = value
    for i, order in enumerate(orders):
        nb.add_cell(CellEntry(id=f"c{i}", file=f"c{i}.py", language="python", order=order))
    nb.doc["cells"][0].update(cell_unknown)
    nb.save()
    nb.set_name(name)
    nb.set_orders({"c0": orders[-1] + 1})
    again = NotebookDir.open(path)
    assert again.doc.unwrap() == nb.doc.unwrap()
    assert again.cell_entries() == nb.cell_entries()
    assert again.name == name
    for key, value in unknown.items():
        assert again.get(key) == value
    first = again.doc["cells"][0].unwrap()
    assert {k: first[k] for k in cell_unknown} == cell_unknown
    assert tomlkit.parse(again.toml_path.read_text("utf-8")).unwrap() == again.doc.unwrap()
