"""Import a Jupyter notebook (``.ipynb``) as a Quiver notebook (Strata 0.11's ``POST /import``).

Read with ``nbformat`` (older versions converted to 4, then validated): code
cells become Python cells, markdown cells Markdown cells, raw cells are
skipped, outputs are dropped (counted). IPython syntax does not run in a plain
kernel, so ``%pip install x`` / ``!pip install x`` lines are taken as captured
dependencies (reported), and every other magic or ``!shell`` line is commented
out with a note saying so. The import report counts all of it.

The notebook is written in a hidden folder beside its target and renamed into
place at the end, so an import either fully appears or leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from foundation import Conflict, InvalidArgument
from notebooks.model import CellEntry, NotebookDir, atomic_write, check_name, slug

IPYNB_LIMIT = 50 * 1024**2
"""Largest ``.ipynb`` accepted (413 above)."""
PIP = re.compile(r"^[%!]\s*(?:pip3?|uv\s+pip|python\s+-m\s+pip)\s+install\s+(?P<args>.*)$")
SHELL_ASSIGN = re.compile(r"^[A-Za-z_]\w*\s*=\s*!")
REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._ -]*\])?"
    r"(\s*(===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+)?"
    r"(\s*,\s*(===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+)*$"
)
NOTE = "  # quiver:"


@dataclass
class JupyterImport:
    cells: list[tuple[str, str]] = field(default_factory=list)
    """(language, source) in order."""
    report: dict[str, Any] = field(
        default_factory=lambda: {
            "markdown_cells": 0,
            "code_cells": 0,
            "suppressed_outputs": 0,
            "skipped_cells": 0,
            "translated_magics": 0,
            "dropped_magics": 0,
            "dropped_shells": 0,
            "captured_deps": [],
            "warnings": [],
        }
    )
    title: str | None = None


def _parse(data: bytes) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"the file is not UTF-8 text (byte {exc.start})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        raise InvalidArgument("not a Jupyter notebook: the JSON has no 'cells' list")
    if not isinstance(raw.get("nbformat"), int):
        raise InvalidArgument("not a Jupyter notebook: no integer 'nbformat' version")
    import nbformat  # with jsonschema, a slow import only an import of a notebook needs

    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise InvalidArgument(f"not a valid Jupyter notebook: {exc.message}") from None
    except Exception as exc:  # nbformat's readers raise many kinds for broken documents
        raise InvalidArgument(f"not a valid Jupyter notebook: {exc}") from None
    return nb


def _translate(source: str, index: int, out: JupyterImport) -> str:
    report = out.report
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].split()[0]
        report["dropped_magics"] += 1
        report["warnings"].append(f"cell {index}: {magic} cell magic; the cell is commented out")
        return "\n".join(
            [f"# quiver: {magic} cell magic is not run here", *(f"# {ln}" for ln in lines)]
        )
    result = []
    for line in lines:
        body = line.lstrip()
        indent = line[: len(line) - len(body)]
        keep = f"{indent}pass  # {body}" if indent else f"# {body}"
        pip = PIP.match(body)
        if pip:
            try:
                words = shlex.split(pip["args"])
            except ValueError:
                words = pip["args"].split()
            for word in words:
                if word.startswith("-") or word in report["captured_deps"]:
                    continue
                if REQUIREMENT.match(word):
                    report["captured_deps"].append(word)
                else:
                    report["warnings"].append(
                        f"cell {index}: {word!r} is not a requirement; skipped"
                    )
            report["translated_magics"] += 1
            result.append(f"{keep}{NOTE} captured as a dependency")
        elif body.startswith("%"):
            report["dropped_magics"] += 1
            result.append(f"{keep}{NOTE} IPython magic, not run")
        elif body.startswith("!") or SHELL_ASSIGN.match(body):
            report["dropped_shells"] += 1
            result.append(f"{keep}{NOTE} shell command, not run")
        else:
            result.append(line)
    return "\n".join(result)


def read_ipynb(data: bytes) -> JupyterImport:
    """Convert (nothing written yet); InvalidArgument says what is wrong with the file."""
    nb = _parse(data)
    out = JupyterImport()
    language = str((nb.metadata.get("kernelspec") or {}).get("language") or "python")
    if language.lower() != "python":
        out.report["warnings"].append(
            f"the notebook's kernel language is {language!r}; its code is imported as Python"
        )
    out.title = nb.metadata.get("title") if isinstance(nb.metadata.get("title"), str) else None
    for index, cell in enumerate(nb.cells):
        source = cell.get("source") or ""
        if cell.cell_type == "markdown":
            out.report["markdown_cells"] += 1
            out.cells.append(("markdown", source))
        elif cell.cell_type == "code":
            out.report["suppressed_outputs"] += len(cell.get("outputs") or [])
            if not source.strip():
                out.report["skipped_cells"] += 1
                continue
            out.report["code_cells"] += 1
            out.cells.append(("python", _translate(source, index, out)))
        else:
            out.report["skipped_cells"] += 1
    return out


def write_notebook(
    parent: Path,
    name: str,
    python_version: str,
    cells: list[tuple[str, str]],
    dependencies: list[str] = [],  # noqa: B006 - read only
    owner: str | None = None,
) -> Path:
    """A new notebook folder ``parent/slug(name)`` holding ``cells``, made atomically;
    ``dependencies`` join its ``pyproject.toml``; ``owner`` (if any) owns it.

    Conflict when the target exists. Built in a hidden sibling, renamed into place.
    """
    check_name(name)
    if not slug(name).strip(". "):
        raise InvalidArgument("Invalid notebook name: must contain a letter or digit")
    target = parent / slug(name)
    if target.exists() or target.is_symlink():
        raise Conflict(f"A notebook already exists at {target}")
    parent.mkdir(parents=True, exist_ok=True)
    scratch = parent / f".{slug(name)}.import-{uuid.uuid4().hex[:8]}"
    try:
        nb = NotebookDir.create(scratch, name, python_version)
        if owner:
            nb.doc["owner"] = owner
            nb.save()
        for order, (language, source) in enumerate(cells):
            cid = uuid.uuid4().hex[:8]
            ext = "md" if language == "markdown" else "py"
            entry = CellEntry(id=cid, file=f"{cid}.{ext}", language=language, order=float(order))
            nb.write_cell(entry.file, source)
            nb.add_cell(entry)
        if dependencies:
            add_dependencies(scratch / "pyproject.toml", dependencies)
        try:
            os.rename(scratch, target)  # refuses a target that appeared meanwhile
        except OSError as exc:
            raise Conflict(f"A notebook already exists at {target}") from exc
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def add_dependencies(pyproject: Path, dependencies: list[str]) -> None:
    """Append requirements to ``[project].dependencies`` (a name already there is kept)."""
    doc = tomlkit.parse(pyproject.read_text(encoding="utf-8"))
    deps = doc.setdefault("project", tomlkit.table()).setdefault("dependencies", tomlkit.array())
    have = {re.split(r"[\[<>=!~ ;]", str(d), maxsplit=1)[0].lower() for d in deps}
    for dep in dependencies:
        if re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0].lower() not in have:
            deps.append(dep)
    atomic_write(pyproject, tomlkit.dumps(doc))
