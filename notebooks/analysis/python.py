"""Static analysis of Python cells: the names a cell defines, reads and mutates.

The rules (docs/notebooks.md states them for users):

- ``defines`` are module-level bindings that exist after the cell ran:
  assignments (plain, augmented, annotated with a value), imports, ``def``,
  ``class``, ``for``/``with`` targets, walrus, ``match`` captures and names a
  function writes through ``global``. A bare annotation (``x: int``) binds
  nothing; ``del x`` of a name the cell bound removes it; ``except E as e``
  binds ``e`` only inside its handler (Python deletes it afterwards).
- ``references`` are names read before the cell binds them, in statement
  order (``x = f(x)`` reads ``x``), plus globals read anywhere inside
  function, lambda or class bodies that the cell never binds. Builtins go to
  ``builtin_references`` (they link only when an earlier cell rebinds them).
- Names starting with ``_`` are private to the cell: never defined nor read.
- In-place mutation of a name the cell did not bind (``df["c"] = …``,
  ``obj.a = …``, ``x += 1``, ``del t[k]``, a mutating method call, any call
  with ``inplace=True``) makes it a reference *and* a ``mutation_define``, and
  puts a warning on the cell. Other method calls are reads.
- Scoping follows Python: function locals, closures, class bodies (invisible
  to their methods) and comprehension variables never leak.

The walk that applies them is ``python_walk.py``; the scoping, ``scopes.py``.
"""

from __future__ import annotations

import ast

from notebooks.analysis.cells import CellAnalysis, Diagnostic, parse_annotations
from notebooks.analysis.python_walk import CellWalker
from notebooks.analysis.scopes import FUNCTIONS


def _module_exports(tree: ast.Module) -> tuple[tuple[str, str], ...] | None:
    """A cell of only imports, ``def`` and ``class`` (at least one ``def`` or ``class``)
    is a module cell: its public names and their kinds; else None."""
    exports: list[tuple[str, str]] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstrings
        if isinstance(stmt, FUNCTIONS):
            exports.append((stmt.name, "function"))
        elif isinstance(stmt, ast.ClassDef):
            exports.append((stmt.name, "class"))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            exports.extend(
                (a.asname or a.name.split(".")[0], "import") for a in stmt.names if a.name != "*"
            )
        else:
            return None
    exports = [e for e in exports if not e[0].startswith("_")]
    return tuple(exports) if any(kind != "import" for _, kind in exports) else None


def analyse_python(source: str) -> CellAnalysis:
    """What a Python cell defines, reads and mutates; bad code becomes a diagnostic."""
    annotations, diags = parse_annotations(source, "#")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        message = f"SyntaxError: {exc.msg}"
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "syntax_error", message, exc.lineno)),
            annotations=annotations,
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        message = f"cannot parse cell: {exc}"
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "syntax_error", message)),
            annotations=annotations,
        )
    walker = CellWalker()
    try:
        walker.visit(tree)
    except RecursionError:
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "too_deep", "cell is nested too deeply")),
            annotations=annotations,
        )
    walker.finish()
    defines = tuple(walker.defines)
    return CellAnalysis(
        defines=defines,
        references=tuple(walker.refs),
        mutation_defines=tuple(walker.mutations),
        builtin_references=tuple(walker.builtin_refs),
        diagnostics=(*diags, *walker.diags),
        annotations=annotations,
        module_exports=_module_exports(tree),
    )
