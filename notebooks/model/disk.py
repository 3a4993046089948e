"""A notebook directory on disk: ``notebook.toml``, ``cells/``, ``pyproject.toml``, ``.quiver/``.

``notebook.toml`` is edited in place with tomlkit, so keys Quiver does not
know, comments and blocks survive every save; each write is atomic. The
layout is Strata's (its notebooks open as they are; Quiver's open in Strata),
except that runtime state lives under ``.quiver/`` with its own ``.gitignore``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table

from foundation import InvalidArgument, NotFound
from notebooks.analysis import EXTENSIONS
from notebooks.model.paths import atomic_write, inside, remove_stale_temps

TOML = "notebook.toml"
PYPROJECT = "pyproject.toml"
CELLS = "cells"
STATE = ".quiver"
DEFAULT_DEPENDENCIES = ("pyarrow>=14", "orjson>=3.9", "cloudpickle>=3.0")


@dataclass
class CellEntry:
    """One ``cells`` entry of ``notebook.toml`` (unknown keys stay in the TOML item)."""

    id: str
    file: str
    language: str
    order: float
    worker: str | None = None
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)


def narrowed_mounts(
    notebook: Sequence[Mapping[str, Any]], cell: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The mount specs a cell sees: the notebook's ``[[mounts]]`` with the cell's own
    ``mounts`` on top (a name given again keeps its place and takes the later spec)."""
    merged: dict[Any, Mapping[str, Any]] = {}
    for spec in [*notebook, *cell]:
        if isinstance(spec, Mapping):
            merged[spec.get("name")] = spec
    return list(merged.values())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value) if value is not None else None


def slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def _order_value(order: float) -> int | float:
    # Integral orders are written as TOML integers, as Strata writes them.
    return int(order) if float(order).is_integer() else float(order)


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _inline(value: Any) -> Any:
    """``value`` as TOML that fits on one line (tables inline, at any depth)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({k: _inline(v) for k, v in value.items()})
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_inline(v) for v in value)
        return array
    return value


class NotebookDir:
    """The on-disk notebook. Not thread-safe: its session's coordinator serialises access."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: tomlkit.TOMLDocument = tomlkit.document()

    # -- layout ------------------------------------------------------------------------------

    @property
    def toml_path(self) -> Path:
        return self.path / TOML

    @property
    def cells_dir(self) -> Path:
        return self.path / CELLS

    @property
    def state_dir(self) -> Path:
        return self.path / STATE

    @classmethod
    def create(cls, path: Path, name: str, python_version: str) -> NotebookDir:
        path.mkdir(parents=True, exist_ok=True)
        (path / CELLS).mkdir(exist_ok=True)
        nb = cls(path)
        doc = tomlkit.document()
        doc["notebook_id"] = str(uuid.uuid4())
        doc["name"] = name
        stamp = now()
        doc["created_at"] = stamp
        doc["updated_at"] = stamp
        cells = tomlkit.array()
        cells.multiline(True)
        doc["cells"] = cells
        nb.doc = doc
        if not (path / PYPROJECT).exists():
            atomic_write(path / PYPROJECT, pyproject_text(name, python_version))
        nb.ensure_state_dir()
        nb.save()
        return nb

    @classmethod
    def open(cls, path: Path) -> NotebookDir:
        if not path.is_dir():
            raise NotFound("Notebook directory not found")
        if not (path / TOML).is_file():
            raise NotFound(f"notebook.toml not found at {path}")
        nb = cls(path)
        nb.load()
        # Saves are atomic; one cut short by a crash leaves its temp file behind.
        for folder in (path, nb.cells_dir, nb.state_dir):
            remove_stale_temps(folder)
        return nb

    def load(self) -> None:
        try:
            self.doc = tomlkit.parse(self.toml_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFound(f"notebook.toml not found at {self.path}") from exc
        except tomlkit.exceptions.ParseError as exc:
            raise InvalidArgument(f"notebook.toml at {self.path} is not valid TOML: {exc}") from exc

    def save(self) -> None:
        self._write(self.toml_path, tomlkit.dumps(self.doc))

    def _write(self, path: Path, text: str) -> None:
        try:
            atomic_write(path, text)
        except FileNotFoundError as exc:
            raise NotFound(f"Notebook directory vanished: {self.path}") from exc

    def ensure_state_dir(self) -> None:
        self.state_dir.mkdir(exist_ok=True)
        ignore = self.state_dir / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, "# Quiver runtime state: never commit it.\n*\n", durable=False)

    def remove(self) -> None:
        if self.path.is_symlink():
            raise InvalidArgument(f"Refusing to delete a symlinked notebook directory: {self.path}")
        if not self.path.exists():
            raise NotFound(f"Notebook directory vanished: {self.path}")
        if not self.path.is_dir():
            raise InvalidArgument(f"Not a directory: {self.path}")
        if not self.toml_path.is_file():
            raise InvalidArgument(f"No notebook.toml in {self.path}; refusing to delete it")
        shutil.rmtree(self.path)

    # -- top-level keys ----------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return _plain(self.doc.get(key, default))

    @property
    def notebook_id(self) -> str:
        value = self.get("notebook_id")
        if not value:
            # Hand-written notebooks may lack an id: mint one once and keep it.
            value = str(uuid.uuid4())
            self.doc["notebook_id"] = value
            self.save()
        return str(value)

    @property
    def name(self) -> str:
        return str(self.get("name") or "Untitled Notebook")

    def set_name(self, name: str) -> bool:
        if self.get("name") == name:
            return False
        self.doc["name"] = name
        self.touch()
        self.save()
        return True

    def set_value(self, key: str, value: Any) -> bool:
        """Set (None: remove) a top-level key of ``notebook.toml``; whether it changed."""
        if self.get(key) == value:
            return False
        if value is None:
            self.doc.pop(key, None)
        else:
            self.doc[key] = value
        self.touch()
        self.save()
        return True

    def touch(self) -> None:
        self.doc["updated_at"] = now()

    # -- cells -------------------------------------------------------------------------------

    def _cells_item(self, create: bool = False) -> Array | AoT | None:
        item = self.doc.get("cells")
        if item is None and create:
            item = tomlkit.array()
            item.multiline(True)
            self.doc["cells"] = item
            item = self.doc["cells"]
        return item

    def _entries(self) -> Iterator[tuple[int, InlineTable | Table]]:
        item = self._cells_item()
        if item is None:
            return
        for i, raw in enumerate(item):
            if isinstance(raw, (InlineTable, Table, dict)) and raw.get("id") is not None:
                yield i, raw

    def cell_entries(self) -> list[CellEntry]:
        out = []
        for _, raw in self._entries():
            data = _plain(raw)
            cid = str(data["id"])
            language = str(data.get("language") or "python")
            out.append(
                CellEntry(
                    id=cid,
                    file=str(data.get("file") or f"{cid}.{EXTENSIONS.get(language, 'py')}"),
                    language=language,
                    order=float(data.get("order", len(out))),
                    worker=data.get("worker"),
                    timeout=data.get("timeout"),
                    env=dict(data.get("env") or {}),
                    mounts=list(data.get("mounts") or []),
                )
            )
        out.sort(key=lambda e: e.order)
        return out

    def add_cell(self, entry: CellEntry) -> None:
        item = self._cells_item(create=True)
        assert item is not None
        values = {
            "id": entry.id,
            "file": entry.file,
            "language": entry.language,
            "order": _order_value(entry.order),
        }
        table = tomlkit.table() if isinstance(item, AoT) else tomlkit.inline_table()
        table.update(values)
        if isinstance(item, Array):
            item.multiline(True)  # one cell per line, as Strata writes them
        item.append(table)
        self.touch()
        self.save()

    def remove_cell(self, cell_id: str) -> None:
        item = self._cells_item()
        for i, raw in self._entries():
            if str(raw.get("id")) == cell_id:
                assert item is not None
                del item[i]
                break
        self.touch()
        self.save()

    def set_cell_value(self, cell_id: str, key: str, value: Any) -> bool:
        """Set (None: remove) ``key`` of cell ``cell_id``'s entry; whether it changed.
        Written inline (a cell's entry may itself be an inline table)."""
        for _, raw in self._entries():
            if str(raw.get("id")) != cell_id:
                continue
            if _plain(raw.get(key)) == value:
                return False
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = _inline(value)
            self.touch()
            self.save()
            return True
        raise NotFound(f"Cell {cell_id} not found in notebook.toml")

    def set_orders(self, orders: dict[str, float]) -> bool:
        changed = False
        for _, raw in self._entries():
            cid = str(raw.get("id"))
            if cid in orders and _plain(raw.get("order")) != orders[cid]:
                raw["order"] = _order_value(orders[cid])
                changed = True
        if changed:
            self.touch()
            self.save()
        return changed

    # -- cell files --------------------------------------------------------------------------

    def cell_path(self, file: str) -> Path | None:
        """The cell file, or None when ``file`` would escape ``cells/``."""
        return inside(self.cells_dir, file)

    def read_cell(self, file: str) -> str:
        path = self.cell_path(file)
        if path is None or not path.is_file():
            return ""
        return path.read_text(encoding="utf-8", errors="replace")

    def write_cell(self, file: str, source: str) -> None:
        path = self.cell_path(file)
        if path is None:
            raise InvalidArgument(f"Cell file {file!r} is outside {self.cells_dir}")
        if not self.toml_path.is_file():
            raise NotFound(f"Notebook directory vanished: {self.path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, source)

    def delete_cell_file(self, file: str) -> None:
        path = self.cell_path(file)
        if path is not None and path.is_file():
            path.unlink()

    def read_test(self, cell_id: str) -> str:
        return self.read_cell(f"{cell_id}.test.py")


def requested_python(path: Path) -> str | None:
    """The ``X.Y`` of ``requires-python = "==X.Y.*"`` in the notebook's pyproject.toml."""
    try:
        project = tomlkit.parse((path / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomlkit.exceptions.ParseError):
        return None
    spec = str(project.get("project", {}).get("requires-python", ""))
    return spec.removeprefix("==").removesuffix(".*") or None


def set_requested_python(path: Path, python_version: str) -> None:
    """Rewrite ``requires-python`` (keeping the rest of pyproject.toml as it is)."""
    target = path / "pyproject.toml"
    doc = tomlkit.parse(target.read_text(encoding="utf-8")) if target.is_file() else None
    if doc is None:
        doc = tomlkit.parse(pyproject_text(path.name, python_version))
    doc.setdefault("project", tomlkit.table())["requires-python"] = f"=={python_version}.*"
    atomic_write(target, tomlkit.dumps(doc))


def pyproject_text(name: str, python_version: str) -> str:
    doc = tomlkit.document()
    project = tomlkit.table()
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower())
    project["name"] = cleaned.strip("-_.") or "notebook"
    project["version"] = "0.1.0"
    project["description"] = ""
    project["requires-python"] = f"=={python_version}.*"
    deps = tomlkit.array()
    deps.extend(DEFAULT_DEPENDENCIES)
    deps.multiline(True)
    project["dependencies"] = deps
    doc["project"] = project
    tool = tomlkit.table(is_super_table=True)
    tool["uv"] = tomlkit.table()
    doc["tool"] = tool
    return tomlkit.dumps(doc)
