"""What one cell defines and reads: the analyser for its language.

``analyse(language, source, cell_id)`` returns a :class:`CellAnalysis`. It never
raises for bad user code: a syntax error is a diagnostic on the cell, with the
lists empty, so one broken cell never breaks the notebook.
"""

from __future__ import annotations

from notebooks.analysis.cells import CellAnalysis, parse_annotations
from notebooks.analysis.python import analyse_python
from notebooks.analysis.sql import analyse_sql


def analyse(language: str, source: str, cell_id: str) -> CellAnalysis:
    """Analyse one cell. Unknown languages analyse as markdown (nothing)."""
    if language == "python":
        return analyse_python(source)
    if language == "sql":
        return analyse_sql(source, cell_id)
    if language == "prompt":
        return analyse_prompt(source)
    return CellAnalysis()


def analyse_prompt(source: str) -> CellAnalysis:
    """Prompt cells read the variables they template as ``{{ name }}`` and define their @name."""
    annotations, diags = parse_annotations(source, "#")
    refs: list[str] = []
    pos = 0
    while (start := source.find("{{", pos)) != -1:
        end = source.find("}}", start + 2)
        if end == -1:
            break
        inner = source[start + 2 : end].strip()
        head = inner.split(".", 1)[0].split("[", 1)[0].strip()
        if head.isidentifier() and not head.startswith("_") and head not in refs:
            refs.append(head)
        pos = end + 2
    defines = (annotations.name,) if annotations.name else ()
    return CellAnalysis(
        defines=defines,
        references=tuple(r for r in refs if r not in defines),
        diagnostics=tuple(diags),
        annotations=annotations,
    )
