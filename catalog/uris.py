"""Parse and validate the URIs Quiver accepts as inputs.

Accepted forms (anything else is refused with :data:`ACCEPTED_FORMS` in the
message):

- ``file:///abs/path/to/warehouse#namespace.table`` (``file://localhost/...``
  too) and the bare form ``/abs/path/to/warehouse#namespace.table``;
- ``strata://artifact/{id}@v={n}``: one immutable artifact version;
- ``strata://name/{name}``: a mutable name (may contain ``/``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote

from foundation import ARTIFACT_ID_PATTERN, InvalidArgument

ACCEPTED_FORMS = (
    "file:///path/to/warehouse#namespace.table, /path/to/warehouse#namespace.table, "
    "strata://artifact/{id}@v={n}, strata://name/{name}"
)

_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() takes other scripts' digits too
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]*")
_ARTIFACT_ID = re.compile(ARTIFACT_ID_PATTERN)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/@:]{0,255}")
_ARTIFACT_URI = re.compile(r"strata://artifact/(?P<id>[^@/]*)@v=(?P<version>[^/]*)")


@dataclass(frozen=True, slots=True)
class TableRef:
    """An Iceberg table in a local warehouse directory."""

    warehouse: str
    namespace: tuple[str, ...]
    table: str

    @property
    def identifier(self) -> str:
        return ".".join((*self.namespace, self.table))

    @property
    def uri(self) -> str:
        return f"file://{self.warehouse}#{self.identifier}"

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """One immutable artifact version."""

    artifact_id: str
    version: int

    @property
    def uri(self) -> str:
        return artifact_uri(self.artifact_id, self.version)

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, slots=True)
class NameRef:
    """A mutable name pointing at an artifact version."""

    name: str

    @property
    def uri(self) -> str:
        return f"strata://name/{self.name}"

    def __str__(self) -> str:
        return self.uri


Ref = TableRef | ArtifactRef | NameRef


def artifact_uri(artifact_id: str, version: int) -> str:
    return f"strata://artifact/{artifact_id}@v={version}"


def _refuse(uri: object, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid input URI {uri!r}: {why}; accepted forms: {ACCEPTED_FORMS}",
        detail={"uri": str(uri), "reason": why, "accepted_forms": ACCEPTED_FORMS},
    )


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid artifact name, else raise InvalidArgument."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument("invalid name: a name must be a non-empty string")
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid name {name!r}: use letters, digits and _ . - / @ :, start with a letter, "
            "digit or _, at most 256 characters"
        )
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(f"invalid name {name!r}: empty, '.' or '..' path segments")
    return name


def _parse_table(uri: str, path_part: str, fragment: str) -> TableRef:
    if not path_part:
        raise _refuse(uri, "the warehouse path is empty")
    path_part = unquote(path_part)
    if "\x00" in path_part:
        raise _refuse(uri, "the path contains a NUL byte")
    if not path_part.startswith("/"):
        raise _refuse(uri, "the warehouse path must be absolute")
    segments = path_part.split("/")
    if any(s in (".", "..") for s in segments):
        raise _refuse(uri, "'.' and '..' path segments are not allowed")
    warehouse = str(PurePosixPath(path_part))
    if not fragment:
        raise _refuse(uri, "the table identifier after '#' is empty")
    parts = unquote(fragment).split(".")
    if len(parts) < 2:
        raise _refuse(uri, "the table identifier must be namespace.table")
    for p in parts:
        if not p:
            raise _refuse(uri, "the table identifier has an empty part")
        if not _IDENT.fullmatch(p):
            raise _refuse(uri, f"{p!r} is not a valid namespace or table name")
    return TableRef(warehouse=warehouse, namespace=tuple(parts[:-1]), table=parts[-1])


def parse_uri(uri: object) -> Ref:
    """Parse ``uri`` into a :data:`Ref`, or raise :class:`InvalidArgument`."""
    if not isinstance(uri, str):
        raise _refuse(uri, "a URI must be a string")
    return _parse_str(uri)


@functools.lru_cache(maxsize=4096)
def _parse_str(uri: str) -> Ref:
    # Pure and hot (every materialize parses its inputs): cache the parsed refs,
    # which are frozen. Refusals raise and are not cached.
    if not uri or uri != uri.strip():
        raise _refuse(uri, "empty or surrounded by whitespace")
    if uri.startswith("strata://"):
        if uri.startswith("strata://artifact/"):
            m = _ARTIFACT_URI.fullmatch(uri)
            if not m:
                raise _refuse(uri, "an artifact URI is strata://artifact/{id}@v={n}")
            if not _ARTIFACT_ID.fullmatch(m["id"]):
                raise _refuse(uri, "the artifact id must be letters, digits, '_' or '-'")
            if not _DIGITS.fullmatch(m["version"]) or int(m["version"]) < 1:
                raise _refuse(uri, "the version must be a positive integer")
            return ArtifactRef(m["id"], int(m["version"]))
        if uri.startswith("strata://name/"):
            name = uri[len("strata://name/") :]
            try:
                return NameRef(validate_name(name))
            except InvalidArgument as exc:
                raise _refuse(uri, exc.message) from None
        raise _refuse(uri, "strata:// URIs are strata://artifact/... or strata://name/...")
    if "#" not in uri:
        if "://" in uri and not uri.startswith("file://"):
            raise _refuse(uri, f"unsupported scheme {uri.split('://', 1)[0]!r}")
        raise _refuse(uri, "missing '#namespace.table' after the warehouse path")
    path_part, fragment = uri.split("#", 1)
    if "#" in fragment:
        raise _refuse(uri, "more than one '#'")
    if path_part.startswith("file://"):
        rest = path_part[len("file://") :]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest.startswith("/"):
            raise _refuse(uri, "a file URI needs an absolute path: file:///path")
        if "?" in rest:
            raise _refuse(uri, "query strings are not allowed")
        return _parse_table(uri, rest, fragment)
    if "://" in path_part:
        raise _refuse(uri, f"unsupported scheme {path_part.split('://', 1)[0]!r}")
    if ":" in path_part.split("/", 1)[0]:
        raise _refuse(uri, f"unsupported scheme {path_part.split(':', 1)[0]!r}")
    return _parse_table(uri, path_part, fragment)
