"""What every analyser shares: a cell's analysis, its diagnostics, its annotations.

The per-language analysers (``python.py``, ``sql.py``, prompts in ``dispatch.py``)
build a :class:`CellAnalysis`; ``dispatch.analyse`` picks one by language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warn", "info"]

LANGUAGES = ("python", "sql", "markdown", "prompt")
"""Languages a cell may have, in the order error messages list them."""

EXTENSIONS = {"python": "py", "sql": "sql", "markdown": "md", "prompt": "py"}


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    line: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass(frozen=True)
class Annotations:
    """First-lines comment annotations: ``# @name x`` / ``-- @name x``, ``@after <cell-id>``,
    ``@timeout <seconds>``, ``@worker <name>``."""

    name: str | None = None
    after: tuple[str, ...] = ()
    timeout: float | None = None
    worker: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "after": list(self.after),
            "worker": self.worker,
            "timeout": self.timeout,
            "env": {},
            "mounts": [],
            "tables": [],
            "loop": None,
            "variant": None,
        }


@dataclass(frozen=True)
class CellAnalysis:
    """Static facts about one cell source; ordered, duplicate-free name tuples."""

    defines: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    mutation_defines: tuple[str, ...] = ()
    builtin_references: tuple[str, ...] = ()
    """Builtin names read; they link only when an earlier cell rebinds them."""
    diagnostics: tuple[Diagnostic, ...] = ()
    annotations: Annotations = field(default_factory=Annotations)
    module_exports: tuple[tuple[str, str], ...] | None = None
    """``(name, kind)`` when the cell only holds imports, functions and classes."""

    @property
    def produces(self) -> tuple[str, ...]:
        """Names later cells may read from this one: bindings and in-place mutations."""
        return self.defines + tuple(n for n in self.mutation_defines if n not in self.defines)


def parse_annotations(source: str, prefix: str) -> tuple[Annotations, list[Diagnostic]]:
    """Read ``@name``/``@after``/``@timeout``/``@worker`` from the leading comment block."""
    name: str | None = None
    after: list[str] = []
    timeout: float | None = None
    worker: str | None = None
    diags: list[Diagnostic] = []
    for lineno, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith(prefix):
            break
        body = line[len(prefix) :].strip()
        if not body.startswith("@"):
            continue
        key, _, value = body[1:].partition(" ")
        value = value.strip()
        if key == "name":
            if value.isidentifier():
                name = value
            else:
                diags.append(
                    Diagnostic(
                        "warn", "bad_annotation", f"@name needs an identifier: {value!r}", lineno
                    )
                )
        elif key == "after":
            after.extend(v for v in value.replace(",", " ").split() if v not in after)
        elif key == "timeout":
            try:
                timeout = float(value.removesuffix("s"))
                if not timeout > 0:
                    raise ValueError(value)
            except ValueError:
                timeout = None
                diags.append(
                    Diagnostic(
                        "warn", "bad_annotation", f"@timeout needs seconds > 0: {value!r}", lineno
                    )
                )
        elif key == "worker" and value:
            worker = value
    return Annotations(name=name, after=tuple(after), timeout=timeout, worker=worker), diags
