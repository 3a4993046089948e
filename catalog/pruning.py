"""File pruning: typed filters on a table's columns as a pyiceberg row filter.

A :class:`Predicate` is one filter the scan executor has already typed;
:func:`pruning_expression` turns a list of them into the expression pyiceberg
plans files with. Pruning is conservative: what cannot be bound is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

_EPOCH = datetime(1970, 1, 1)
_EPOCH_TZ = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Predicate:
    """One typed filter, used for pruning: ``value`` is already a Python value
    of the column's type (int, float, str, bool, date, datetime, ...), a tuple
    of them for ``in``, ``None`` for ``is_null``/``not_null``."""

    field_id: int
    op: str
    value: Any = None


def _literal(value: Any) -> Any:
    """A value pyiceberg's literals can bind to the column type."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return (value - _EPOCH_TZ) // _MICRO
        return (value - _EPOCH) // _MICRO
    if isinstance(value, date):
        return (value - _EPOCH.date()).days
    if isinstance(value, time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + (
            value.microsecond
        )
    if isinstance(value, (bool, int, float, str, Decimal, UUID)):
        return value
    raise TypeError(type(value))


def pruning_expression(table: Table, predicates: Sequence[Predicate]) -> BooleanExpression:
    """AND of ``predicates`` as a pyiceberg expression for file pruning.

    pyiceberg binds scan filters against the table's *current* schema, so each
    predicate names its column as the current schema does (looked up by field
    id). A predicate on a column dropped since, or one pyiceberg cannot bind,
    is left out: pruning only ever drops files that cannot match.
    """
    from pyiceberg import expressions as ex
    from pyiceberg.expressions.visitors import bind

    current = table.schema()
    makers: dict[str, Any] = {
        "=": ex.EqualTo,
        "!=": ex.NotEqualTo,
        "<": ex.LessThan,
        "<=": ex.LessThanOrEqual,
        ">": ex.GreaterThan,
        ">=": ex.GreaterThanOrEqual,
    }
    result: BooleanExpression = ex.AlwaysTrue()
    for p in predicates:
        try:
            name = current.find_column_name(p.field_id)
            if name is None:
                continue
            if p.op == "is_null":
                expr: BooleanExpression = ex.IsNull(name)
            elif p.op == "not_null":
                expr = ex.NotNull(name)
            elif p.op == "in":
                expr = ex.In(name, {_literal(v) for v in p.value})
            else:
                expr = makers[p.op](name, _literal(p.value))
            bind(current, expr, case_sensitive=True)
        except Exception:  # an unprunable predicate just doesn't prune
            continue
        result = ex.And(result, expr)
    return result
