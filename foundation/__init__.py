"""The ground floor: what every layer of Quiver shares. It imports nothing of ours.

The public door: the domain error tree (:mod:`foundation.errors`), the one
typed :class:`Settings` object, the version, and the shapes of the words
clients send (:mod:`foundation.patterns`).
"""

from __future__ import annotations

from foundation.errors import (
    BuildFailed,
    Busy,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    QuiverError,
    Timeout,
    TooLarge,
    Unauthenticated,
    Unauthorized,
    Unavailable,
)
from foundation.patterns import (
    ALIAS_PATTERN,
    ARTIFACT_ID_PATTERN,
    MAX_ACTOR_CHARS,
    MAX_AUDIT_PAGE,
    MAX_TAG_VALUE_CHARS,
    NAME_MAX_CHARS,
    NAME_PATTERN,
    TAG_KEY_PATTERN,
)
from foundation.processes import pid_alive
from foundation.settings import Settings
from foundation.version import __version__

__all__ = [
    "ALIAS_PATTERN",
    "ARTIFACT_ID_PATTERN",
    "MAX_ACTOR_CHARS",
    "MAX_AUDIT_PAGE",
    "MAX_TAG_VALUE_CHARS",
    "NAME_MAX_CHARS",
    "NAME_PATTERN",
    "TAG_KEY_PATTERN",
    "BuildFailed",
    "Busy",
    "Conflict",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "QuiverError",
    "Settings",
    "Timeout",
    "TooLarge",
    "Unauthenticated",
    "Unauthorized",
    "Unavailable",
    "__version__",
    "pid_alive",
]
