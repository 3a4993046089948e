"""The rule of the house, read from the code's own imports (docs/layout.md states it for people).

:func:`violations` parses every module of the product packages with ``ast`` (nothing is
imported or run) and answers one line per breach of:

- **layers** — a package imports only the packages :data:`MAY_IMPORT` gives it, all of
  them lower in :data:`STACK`; so no import runs back up;
- **circles** — no two modules import each other, directly or round a loop, and inside
  every package no two of its parts (modules, sub-packages) do either;
- **doors** — a module imports a module of its own package, or of an enclosing one,
  directly; anything further away only through a package's door (its ``__init__.py``):
  ``from flight import QuiverClient``, never ``from flight.client import QuiverClient``;
- **private names** — no module takes another module's ``_private`` name: not by
  ``from m import _name``, not as ``module._name``, and not as ``thing._name`` when no
  ``_name`` is defined in the module itself (an object of another module's class);
- **sizes** — no module is longer than :data:`MAX_LINES` lines;
- **packaging** — every package is listed in pyproject.toml, so a wheel carries it.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
Tests and benchmarks are not product code: they may import across layers as they need.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

STACK = (
    "foundation",
    "catalog",
    "executors",
    "materialize",
    "flight",
    "notebooks",
    "rest",
    "quiver",
)
"""The packages from the ground up; a package imports only packages below it."""

FILES_ONLY = ("web",)
"""Packages that carry files, not code (the web UI's): listed in pyproject.toml so a wheel
ships them, outside the stack since nothing imports them."""

THROUGH_FLIGHT = ("catalog", "executors", "materialize")
"""What the notebooks and the REST facade never import: they reach data through Flight."""

MAY_IMPORT: dict[str, frozenset[str]] = {
    name: frozenset(
        lower
        for lower in STACK[:i]
        if not (name in ("notebooks", "rest") and lower in THROUGH_FLIGHT)
    )
    for i, name in enumerate(STACK)
}

INNER_STACKS: dict[str, tuple[str, ...]] = {
    "notebooks": ("analysis", "model", "execution"),
}
"""Sub-packages from the ground up inside a package: each imports only those below it in
its package, never the package's own top-level modules (the coordinators above them)."""

MAX_LINES = 600

STDLIB_PRIVATE = frozenset({"_asdict", "_replace", "_fields", "_make", "_exit", "_getframe"})
"""Underscored names that are public API of the standard library."""


@dataclass
class Module:
    name: str
    path: Path
    is_door: bool
    tree: ast.Module
    lines: int
    imports: list[tuple[str, int]] = field(default_factory=list)
    """(imported project module, line) for every import."""

    @property
    def home(self) -> tuple[str, ...]:
        """The package this module belongs to (a door belongs to its own package)."""
        parts = tuple(self.name.split("."))
        return parts if self.is_door else parts[:-1]


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in packages:
        base = root / package
        if not (base / "__init__.py").exists():
            continue
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            door = parts[-1] == "__init__"
            if door:
                parts = parts[:-1]
            text = path.read_text()
            found[".".join(parts)] = Module(
                ".".join(parts), path, door, ast.parse(text), len(text.splitlines())
            )
    return found


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _read_imports(module: Module, modules: dict[str, Module]) -> list[str]:
    """Fill ``module.imports``; answer the private names it takes by ``from m import _x``."""
    private: list[str] = []
    tops = {name.split(".")[0] for name in modules}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in tops:
                    target = _resolve(alias.name, modules)
                    if target:
                        module.imports.append((target, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.home
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            if base.split(".")[0] not in tops:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in modules else _resolve(base, modules)
                if target:
                    module.imports.append((target, node.lineno))
                if target != sub and _private(alias.name) and target != module.name:
                    private.append(f"{alias.name} from {target} (line {node.lineno})")
    return private


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_private(tree: ast.Module) -> set[str]:
    """The underscored names a module defines itself: functions, classes, attributes it
    assigns (on ``self`` or anything else), names in ``__slots__``, parameters."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
            names.add(node.value)  # __slots__ entries, getattr names
    return {n for n in names if _private(n)}


def _foreign_private(module: Module, modules: dict[str, Module]) -> Iterator[str]:
    """``x._name`` where ``_name`` belongs to another module."""
    own = _defined_private(module.tree)
    project_names: set[str] = set()  # names bound to project modules by an import
    other_names: set[str] = set()  # names bound to other modules (os, sys, ...)
    tops = {name.split(".")[0] for name in modules}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                (project_names if alias.name.split(".")[0] in tops else other_names).add(bound)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and not node.level
            and node.module.split(".")[0] not in tops
        ):
            other_names.update(a.asname or a.name for a in node.names)
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in project_names:
            yield f"{value.id}.{node.attr} (line {node.lineno})"
            continue
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "super":
            continue
        if isinstance(value, ast.Name) and value.id in other_names:
            continue
        if node.attr in own or node.attr in STDLIB_PRIVATE:
            continue
        yield f"{ast.unparse(value)}.{node.attr} (line {node.lineno})"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _door_breach(module: Module, target: str, modules: dict[str, Module]) -> str | None:
    home = module.home
    dest = tuple(target.split("."))
    common = 0
    while common < min(len(home), len(dest)) and home[common] == dest[common]:
        common += 1
    if common == len(dest):
        return f"imports {target}, the door of its own package"
    if len(dest) == common + 1:
        return None  # a module or a door beside it, or beside an enclosing package
    door = ".".join(dest[: common + 1])
    return f"imports {target} past the door of {door}"


def violations(root: Path, packages: tuple[str, ...] = STACK) -> list[str]:
    """Every breach of the rule in the tree at ``root``, one line each (none: it holds)."""
    modules = _modules(root, packages)
    out: list[str] = []
    for module in modules.values():
        for taken in _read_imports(module, modules):
            out.append(f"private: {module.name} takes {taken}")
        for taken in _foreign_private(module, modules):
            out.append(f"private: {module.name} uses {taken}")
        if module.lines > MAX_LINES:
            out.append(f"size: {module.name} has {module.lines} lines (most: {MAX_LINES})")
    graph: dict[str, set[str]] = defaultdict(set)
    for module in modules.values():
        mine = module.name.split(".")[0]
        for target, line in module.imports:
            if target == module.name:
                continue
            graph[module.name].add(target)
            theirs = target.split(".")[0]
            if theirs != mine and theirs not in MAY_IMPORT.get(mine, frozenset()):
                out.append(f"layers: {module.name} imports {target} (line {line})")
            inner = _inner_breach(module.name, target)
            if inner:
                out.append(f"layers: {module.name} imports {target} (line {line}), {inner}")
            breach = _door_breach(module, target, modules)
            if breach:
                out.append(f"doors: {module.name} {breach} (line {line})")
    for cycle in _cycles(graph):
        out.append(f"circle: {' <-> '.join(cycle)}")
    out.extend(_part_cycles(graph, modules))
    out.extend(_unpackaged(root, modules))
    return sorted(set(out))


def _inner_breach(source: str, target: str) -> str | None:
    """Why ``source`` may not import ``target`` by :data:`INNER_STACKS` (None: it may)."""
    src, dst = source.split("."), target.split(".")
    stack = INNER_STACKS.get(src[0])
    if stack is None or dst[0] != src[0] or len(src) < 3 or src[1] not in stack:
        return None
    if len(dst) < 2 or dst[1] == src[1]:
        return None
    below = stack[: stack.index(src[1])]
    if dst[1] in below:
        return None
    return f"above {src[0]}.{src[1]} in its package"


def _part_cycles(graph: dict[str, set[str]], modules: dict[str, Module]) -> list[str]:
    """Inside each package, its parts (modules and sub-packages) must not form a circle."""
    out = []
    packages = {m.name for m in modules.values() if m.is_door}
    for package in sorted(packages):
        depth = package.count(".") + 1
        parts: dict[str, set[str]] = defaultdict(set)

        def part(name: str, package: str = package, depth: int = depth) -> str | None:
            if not name.startswith(package + "."):
                return None
            return ".".join(name.split(".")[: depth + 1])

        for src, targets in graph.items():
            a = part(src)
            for dst in targets:
                b = part(dst)
                if a and b and a != b:
                    parts[a].add(b)
        for cycle in _cycles(parts):
            if any(modules[p].is_door for p in cycle if p in modules):
                out.append(f"circle: inside {package}: {' <-> '.join(cycle)}")
    return out


def _unpackaged(root: Path, modules: dict[str, Module]) -> list[str]:
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        return []
    listed = set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])
    doors = {m.name for m in modules.values() if m.is_door}
    out = [f"packaging: {p} is not listed in pyproject.toml" for p in sorted(doors - listed)]
    files = {p for p in FILES_ONLY if (root / p / "__init__.py").exists()}
    out += [
        f"packaging: pyproject.toml lists {p}, which is no package" for p in listed - doors - files
    ]
    return out
