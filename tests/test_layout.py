"""The house keeps its rule: imports one way down, no circles, doors, no private reaching.

The rule itself is in ``tests/layout_rules.py``; docs/layout.md states it for people.
The synthetic trees below show that it fails for each kind of breach.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.layout_rules import STACK, violations

ROOT = Path(__file__).resolve().parents[1]

KNOWN: set[str] = set()
"""Modules the restructuring has not reached yet: their breaches are known, for now."""


def _subject(breach: str) -> str:
    words = breach.split(": ", 1)[1].split()
    return words[2] if words[0] == "inside" else words[0]


def test_the_house_keeps_its_rule() -> None:
    found = violations(ROOT)
    assert [b for b in found if _subject(b) not in KNOWN] == []
    assert sorted(KNOWN - {_subject(b) for b in found}) == [], "strike what is fixed from KNOWN"


def test_docs_layout_states_the_same_stack() -> None:
    text = (ROOT / "docs" / "layout.md").read_text()
    assert " → ".join(STACK) in text


# -- the rule fails for each kind of breach -------------------------------------------------


def tree(tmp_path: Path, files: dict[str, str], packages: list[str] | None = None) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    listed = (
        packages
        if packages is not None
        else sorted(
            str(p.parent.relative_to(tmp_path)).replace("/", ".")
            for p in tmp_path.rglob("__init__.py")
        )
    )
    (tmp_path / "pyproject.toml").write_text(
        "[tool.setuptools]\npackages = [" + ", ".join(f'"{p}"' for p in listed) + "]\n"
    )
    return tmp_path


BASE = {
    "foundation/__init__.py": "from foundation.errors import Oops\n",
    "foundation/errors.py": "class Oops(Exception):\n    pass\n",
    "catalog/__init__.py": "from catalog.store import Store\n",
    "catalog/store.py": "from foundation import Oops\n\nclass Store:\n    pass\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert violations(tree(tmp_path, BASE)) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"foundation/errors.py": "from catalog import Store\n"},
            "layers: foundation.errors imports catalog (line 1)",
            id="an import runs back up",
        ),
        pytest.param(
            {"foundation/errors.py": "def late():\n    from catalog import Store\n"},
            "layers: foundation.errors imports catalog (line 2)",
            id="a lazy import runs back up",
        ),
        pytest.param(
            {"rest/__init__.py": "from catalog import Store\n"},
            "layers: rest imports catalog (line 1)",
            id="rest skips the Flight client",
        ),
        pytest.param(
            {
                "catalog/a.py": "from catalog.b import B\n\nclass A:\n    pass\n",
                "catalog/b.py": (
                    "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                    "    from catalog.a import A\n\nclass B:\n    pass\n"
                ),
            },
            "circle: catalog.a <-> catalog.b",
            id="a circle inside a package, typing-only too",
        ),
        pytest.param(
            {
                "catalog/one/__init__.py": "from catalog.one.x import X\n",
                "catalog/one/x.py": "from catalog.two import Y\n\nclass X:\n    pass\n",
                "catalog/one/z.py": "class Z:\n    pass\n",
                "catalog/two/__init__.py": "from catalog.two.y import Y\n",
                "catalog/two/y.py": "from catalog.one import Z\n\nclass Y:\n    pass\n",
            },
            "circle: inside catalog: catalog.one <-> catalog.two",
            id="two sub-packages import each other",
        ),
        pytest.param(
            {"catalog/store.py": "from catalog import Other\n"},
            "doors: catalog.store imports catalog, the door of its own package (line 1)",
            id="a module imports its own door",
        ),
        pytest.param(
            {"catalog/reader.py": "from foundation.errors import Oops\n"},
            "doors: catalog.reader imports foundation.errors past the door of foundation (line 1)",
            id="past another package's door",
        ),
        pytest.param(
            {"catalog/reader.py": "from catalog.store import _helper\n"},
            "private: catalog.reader takes _helper from catalog.store (line 1)",
            id="a private name imported",
        ),
        pytest.param(
            {"catalog/reader.py": "def read(store):\n    return store._rows()\n"},
            "private: catalog.reader uses store._rows (line 2)",
            id="a private attribute of another module's object",
        ),
        pytest.param(
            {
                "notebooks/__init__.py": "",
                "notebooks/session.py": "class Session:\n    pass\n",
                "notebooks/model/__init__.py": "from notebooks.model.disk import Disk\n",
                "notebooks/model/disk.py": "class Disk:\n    pass\n",
                "notebooks/analysis/__init__.py": "",
                "notebooks/analysis/dag.py": "from notebooks.model import Disk\n",
            },
            "layers: notebooks.analysis.dag imports notebooks.model (line 1), "
            "above notebooks.analysis in its package",
            id="a notebooks sub-package imports one above it",
        ),
        pytest.param(
            {
                "notebooks/__init__.py": "",
                "notebooks/session.py": "class Session:\n    pass\n",
                "notebooks/model/__init__.py": "from notebooks.model.disk import Disk\n",
                "notebooks/model/disk.py": "from notebooks.session import Session\n",
            },
            "layers: notebooks.model.disk imports notebooks.session (line 1), "
            "above notebooks.model in its package",
            id="a notebooks sub-package imports a coordinator",
        ),
        pytest.param(
            {"catalog/long.py": "x = 1\n" * 601},
            "size: catalog.long has 601 lines (most: 600)",
            id="a module too long",
        ),
    ],
)
def test_the_rule_fails(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    assert expected in violations(tree(tmp_path, {**BASE, **files}))


def test_a_package_missing_from_pyproject_fails(tmp_path: Path) -> None:
    found = violations(tree(tmp_path, BASE, packages=["foundation"]))
    assert found == ["packaging: catalog is not listed in pyproject.toml"]


def test_private_names_of_the_module_itself_and_the_standard_library_pass(tmp_path: Path) -> None:
    own = """\
        import os


        class Thing:
            def __init__(self):
                self._n = 0

            def same(self, other):
                return other._n == self._n


        def bye():
            os._exit(0)
        """
    assert violations(tree(tmp_path, {**BASE, "catalog/thing.py": own})) == []
