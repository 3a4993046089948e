"""What the registry hands out about aliases, and what makes one valid.

An :class:`AliasInfo` is one alias as it stands, a :class:`PendingChange` a
change of a protected alias waiting for approval, an :class:`Outcome` what a
change did; :func:`validate_alias` checks the word itself and
:data:`ALIASABLE` the states an alias may point at. The tables and their
transactions are :mod:`catalog.registry`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from catalog import audit
from catalog.uris import artifact_uri
from foundation import ALIAS_PATTERN

ALIASABLE = ("ready", "superseded")
"""States an alias may point at: the versions whose data can be read."""

_ALIAS = re.compile(ALIAS_PATTERN)

Key = tuple[str, int]
Status = Literal["applied", "unchanged", "pending", "deleted", "rejected"]


def validate_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias, else raise InvalidArgument."""
    return audit.check_word(alias, _ALIAS, "alias", "alias", "letters, digits and _ . -", 64)


@dataclass(frozen=True, slots=True)
class AliasInfo:
    name: str
    alias: str
    artifact_id: str
    version: int
    updated_at: float

    @property
    def artifact_uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change of a protected alias waiting for approval."""

    name: str
    alias: str
    op: Literal["set", "delete"]
    artifact_id: str | None
    """The proposed target (``set``), or None (``delete``)."""
    version: int | None
    requested_by: str | None
    requested_at: float
    current: Key | None = None
    """What the alias points at now (None: it does not exist yet)."""

    @property
    def target(self) -> Key | None:
        if self.artifact_id is None or self.version is None:
            return None
        return (self.artifact_id, self.version)

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "op": self.op,
            "artifact_id": self.artifact_id,
            "version": self.version,
            "artifact_uri": audit.uri_of(self.target),
            "current_artifact_uri": audit.uri_of(self.current),
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change of an alias did."""

    status: Status
    name: str
    alias: str
    target: Key | None = None
    """The version the alias points at afterwards (or would, once a pending set is approved)."""
    op: Literal["set", "delete"] = "set"
    detail: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "name": self.name,
            "alias": self.alias,
            "op": self.op,
            "artifact_uri": audit.uri_of(self.target),
            "artifact_id": self.target[0] if self.target else None,
            "version": self.target[1] if self.target else None,
            "detail": self.detail,
        }


def alias_key(name: str, alias: str) -> str:
    """How messages name an alias."""
    return f"alias '{alias}' of name '{name}'"
