"""``scan@v1``'s params, and their canonical identity for the provenance hash."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from foundation import InvalidArgument

NAME = "scan@v1"

Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "is_null", "not_null"]
Scalar = str | bool | int | float


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    op: Op
    value: Scalar | list[Scalar] | None = None


class ScanParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] | None = None
    filters: list[Filter] | None = None
    snapshot_id: int | None = None


def canonical_value(value: Any) -> Any:
    if isinstance(value, list):
        unique = {(type(v).__name__, json.dumps(v)): v for v in value}
        return [unique[k] for k in sorted(unique)]
    return value


def filter_key(f: dict[str, Any]) -> str:
    return json.dumps([f["column"], f["op"], f["value"]], sort_keys=True)


def check_columns(columns: list[str] | None) -> None:
    if columns is None:
        return
    if not columns:
        raise InvalidArgument(
            "params.columns is empty; omit it (or send null) to read every column"
        )
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise InvalidArgument(
                f"params.columns names {c!r} twice; each column may appear once",
                detail={"column": c},
            )
        seen.add(c)
