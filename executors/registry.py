"""The executor registry, filled from the ``quiver.executors`` entry points.

Built-ins are declared in Quiver's own ``pyproject.toml`` under the same
entry-point group as third-party executors, so the extension point is always
exercised. A duplicate name stops start-up with a message naming both.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from executors.base import Executor
from foundation import InvalidArgument

ENTRY_POINT_GROUP = "quiver.executors"


class DuplicateExecutor(RuntimeError):
    """Two executors claim the same ``name@vN``."""


class Registry:
    def __init__(self) -> None:
        self._executors: dict[str, Executor] = {}
        self._origins: dict[str, str] = {}

    def register(self, executor: Executor, *, origin: str = "") -> None:
        name = executor.name
        if "@v" not in name:
            raise ValueError(f"executor name {name!r} must look like 'name@vN'")
        if name in self._executors:
            raise DuplicateExecutor(
                f"executor {name!r} is registered twice: by {self._origins[name] or '?'} "
                f"and by {origin or '?'}"
            )
        self._executors[name] = executor
        self._origins[name] = origin

    def get(self, name: object) -> Executor:
        if not isinstance(name, str) or name not in self._executors:
            raise InvalidArgument(
                f"unknown executor {name!r}; registered executors: {', '.join(self.names())}",
                detail={"executor": name, "registered": self.names()},
            )
        return self._executors[name]

    def names(self) -> list[str]:
        return sorted(self._executors)

    def __contains__(self, name: object) -> bool:
        return name in self._executors

    def describe(self) -> list[dict[str, Any]]:
        """Each executor with its description and the JSON schema of its params."""
        return [
            {
                "name": name,
                "description": ex.description,
                "ordered_inputs": ex.ordered_inputs,
                "params_schema": ex.params_model.model_json_schema(),
                "origin": self._origins[name],
            }
            for name, ex in sorted(self._executors.items())
        ]

    def parse_params(self, executor: Executor, params: Mapping[str, Any] | None) -> BaseModel:
        """Validate ``params``; errors name the field path (``params.filters.0.op``)."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InvalidArgument(
                f"invalid params for {executor.name}: params must be a JSON object"
            )
        try:
            return executor.params_model.model_validate(dict(params))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                path = ".".join(str(p) for p in ("params", *err["loc"]))
                problems.append(f"{path}: {err['msg']}")
            raise InvalidArgument(
                f"invalid params for {executor.name}: " + "; ".join(problems),
                detail={"executor": executor.name, "errors": problems},
            ) from None


def load_registry(
    extra: Iterable[Executor] = (), *, entry_points: Iterable[Any] | None = None
) -> Registry:
    """Build a registry from the entry-point group, then ``extra`` executors."""
    registry = Registry()
    eps = (
        entry_points
        if entry_points is not None
        else importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    )
    for ep in sorted(eps, key=lambda e: e.name):
        cls = ep.load()
        executor = cls() if isinstance(cls, type) else cls
        if executor.name != ep.name:
            raise DuplicateExecutor(
                f"entry point {ep.name!r} ({ep.value}) provides executor {executor.name!r}"
            )
        registry.register(executor, origin=f"entry point {ep.value}")
    for executor in extra:
        registry.register(executor, origin=type(executor).__module__)
    return registry
