"""The shapes and sizes of the words clients send: artifact ids, names, aliases, tags.

The catalog checks them (its 400s say exactly what is wrong); the transports
state them (the OpenAPI document, the Flight action models). They live here,
below both, so each states the same rule without reaching into the other.
Property tests hold each pattern to the check that enforces it.
"""

from __future__ import annotations

ARTIFACT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
"""An artifact id, as the OpenAPI document states it (and ``catalog.parse_uri`` checks it)."""

NAME_MAX_CHARS = 256
_NAME_CHAR = r"[A-Za-z0-9_.@:-]"
_NAME_SEGMENT = (
    rf"(?:[A-Za-z0-9_@:-]{_NAME_CHAR}*|\.(?:[A-Za-z0-9_@:-]{_NAME_CHAR}*|\.{_NAME_CHAR}+))"
)
NAME_PATTERN = rf"^[A-Za-z0-9_]{_NAME_CHAR}*(?:/{_NAME_SEGMENT})*$"
"""A valid name (with at most :data:`NAME_MAX_CHARS` characters): exactly what
``catalog.validate_name`` accepts, written as one regular expression for the OpenAPI
document (a test holds the two to the same answers)."""

ALIAS_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
"""A valid alias, as ``catalog.validate_alias`` checks it and the OpenAPI document states it."""
TAG_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}$"
"""A valid tag key, as ``catalog.validate_tag_key`` checks it and the OpenAPI document
states it."""

MAX_TAG_VALUE_CHARS = 4096
MAX_ACTOR_CHARS = 200
MAX_AUDIT_PAGE = 10_000
"""Most registry audit entries one read answers; a bigger ``limit`` is capped to it."""
