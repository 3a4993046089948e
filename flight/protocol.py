"""How Quiver encodes Flight descriptors, tickets and action bodies.

docs/flight.md is the prose version of this module; keep the two in step.

- Command descriptors (``FlightDescriptor.for_command``) carry UTF-8 JSON: the
  materialize request (the REST body of ``POST /v1/materialize``) for
  GetFlightInfo, ``{"name": ..., "metadata": {...}}`` for DoPut.
- Path descriptors: ``("artifact", id, version)``, ``("name", name)`` (a name
  with ``/`` may also be split over several path parts), and ``("artifact",)``
  for an anonymous DoPut.
- Tickets are UTF-8 JSON ``{"artifact_id": str, "version": int}`` plus an
  optional ``"batches": [start, stop]`` range, or an optional ``"view":
  {filters?, search?, sort_by?, sort_dir?}`` (the rows a table viewer keeps,
  in its order; ``flight.tables``), or a *part ticket* ``{"artifact_id", "version",
  "part": i, "key": str, "bytes": int}`` for part ``i`` of a partitioned artifact
  (``flight.parts``: any node reads it from the part storage). An artifact or name URI
  (``strata://artifact/{id}@v={n}``, ``strata://name/{name}``) is accepted as a
  ticket too, so a person can type one.
- Action bodies are UTF-8 JSON objects (an empty body means ``{}``); every
  action answers exactly one result whose body is UTF-8 JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow.flight as fl
from pydantic import BaseModel, ConfigDict, ValidationError

from catalog import ArtifactRef, NameRef, check_key, parse_uri, validate_name
from foundation import InvalidArgument, TooLarge
from materialize import MaterializeRequest

if TYPE_CHECKING:
    from flight.core import Core

MAX_COMMAND_BYTES = 2 * 1024**2
"""Largest JSON command, ticket or action body accepted."""

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ArtifactTicket:
    """A ticket for one artifact version, optionally a ``[start, stop)`` range of batches."""

    artifact_id: str
    version: int
    start: int | None = None
    stop: int | None = None
    view: dict[str, Any] | None = None

    def encode(self) -> bytes:
        if self.view is not None:
            body = {"artifact_id": self.artifact_id, "version": self.version, "view": self.view}
            return json.dumps(body, separators=(",", ":")).encode()
        if self.start is None and self.stop is None:  # the common case, on every hit
            aid = encode_basestring_ascii(self.artifact_id)
            return f'{{"artifact_id":{aid},"version":{int(self.version)}}}'.encode()
        body: dict[str, Any] = {"artifact_id": self.artifact_id, "version": self.version}
        body["batches"] = [self.start or 0, self.stop]
        return json.dumps(body, separators=(",", ":")).encode()

    def ticket(self) -> fl.Ticket:
        return fl.Ticket(self.encode())


@dataclass(frozen=True, slots=True)
class PartTicket:
    """A ticket for part ``part`` of a partitioned artifact: its key in the part storage
    and its size, so a data node with no metadata serves it and checks it."""

    artifact_id: str
    version: int
    part: int
    key: str
    bytes: int

    def encode(self) -> bytes:
        body = {
            "artifact_id": self.artifact_id,
            "version": self.version,
            "part": self.part,
            "key": self.key,
            "bytes": self.bytes,
        }
        return json.dumps(body, separators=(",", ":")).encode()


def _part_ticket(aid: str, version: int, body: dict[str, Any]) -> PartTicket:
    part, key, size = body.get("part"), body.get("key"), body.get("bytes")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (part, size)):
        raise InvalidArgument('a part ticket needs "part" and "bytes" (integers >= 0)')
    if not isinstance(key, str) or not key.startswith(f"{aid}/v{version}-"):
        raise InvalidArgument(f'a part ticket\'s "key" lies under "{aid}/v{version}-"')
    assert isinstance(part, int) and isinstance(size, int)
    return PartTicket(aid, version, part, check_key(key), size)


@dataclass(frozen=True, slots=True)
class NameTicket:
    name: str


class PutCommand(BaseModel):
    """The command of a DoPut: an optional name and free JSON metadata."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    metadata: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class ArtifactPath:
    artifact_id: str
    version: int


@dataclass(frozen=True, slots=True)
class NamePath:
    name: str


def check_command_size(size: int, what: str) -> None:
    """:class:`TooLarge` for a command (an action body, a descriptor) over the limit."""
    if size > MAX_COMMAND_BYTES:
        raise TooLarge(
            f"{what} is {size} bytes; the limit is {MAX_COMMAND_BYTES}",
            detail={"bytes": size, "limit": MAX_COMMAND_BYTES},
        )


def load_json(raw: bytes, what: str) -> Any:
    """Decode a JSON body; refuse oversize or malformed input with a clear error."""
    check_command_size(len(raw), what)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not valid UTF-8 JSON: {exc}") from None


def parse_model(model: type[M], body: Any, what: str) -> M:
    """Validate ``body`` against ``model``; errors name the field path."""
    if not isinstance(body, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise InvalidArgument(
            f"invalid {what}: " + "; ".join(problems), detail={"errors": problems}
        ) from None


def encode_json(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


def decode_ticket(raw: bytes) -> ArtifactTicket | NameTicket | PartTicket:
    text = raw.strip()
    if text.startswith(b"strata://"):
        ref = parse_uri(text.decode("utf-8", "replace"))
        if isinstance(ref, ArtifactRef):
            return ArtifactTicket(ref.artifact_id, ref.version)
        assert isinstance(ref, NameRef)
        return NameTicket(ref.name)
    body = load_json(raw, "ticket")
    if not isinstance(body, dict):
        raise InvalidArgument("a ticket is a JSON object or an artifact/name URI")
    aid, version = body.get("artifact_id"), body.get("version")
    if not isinstance(aid, str) or not isinstance(version, int) or isinstance(version, bool):
        raise InvalidArgument(
            'a ticket needs "artifact_id" (string) and "version" (integer)',
            detail={"ticket": body},
        )
    # Validates the id's characters the same way URIs do.
    ref = parse_uri(f"strata://artifact/{aid}@v={version}")
    assert isinstance(ref, ArtifactRef)
    if "part" in body:
        if "view" in body or "batches" in body:
            raise InvalidArgument('"part" is not given with "view" or "batches"')
        return _part_ticket(ref.artifact_id, ref.version, body)
    view = body.get("view")
    if view is not None:
        if not isinstance(view, dict) or "batches" in body:
            raise InvalidArgument('"view" must be an object, and not given with "batches"')
        return ArtifactTicket(ref.artifact_id, ref.version, view=view)
    batches = body.get("batches")
    if batches is None:
        return ArtifactTicket(ref.artifact_id, ref.version)
    if (
        not isinstance(batches, list)
        or len(batches) != 2
        or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in batches)
        or batches[0] > batches[1]
    ):
        raise InvalidArgument('"batches" must be [start, stop] with 0 <= start <= stop')
    return ArtifactTicket(ref.artifact_id, ref.version, batches[0], batches[1])


def _path_parts(descriptor: fl.FlightDescriptor) -> list[str]:
    return [p.decode("utf-8", "replace") if isinstance(p, bytes) else p for p in descriptor.path]


def decode_info_descriptor(
    descriptor: fl.FlightDescriptor,
) -> MaterializeRequest | ArtifactPath | NamePath:
    """What a GetFlightInfo descriptor asks for."""
    if descriptor.descriptor_type == fl.DescriptorType.CMD:
        body = load_json(descriptor.command, "command")
        return parse_model(MaterializeRequest, body, "materialize request")
    parts = _path_parts(descriptor)
    if len(parts) == 3 and parts[0] == "artifact":
        if not parts[2].isdigit():
            raise InvalidArgument(f"artifact version must be a positive integer, not {parts[2]!r}")
        ref = parse_uri(f"strata://artifact/{parts[1]}@v={parts[2]}")
        assert isinstance(ref, ArtifactRef)
        return ArtifactPath(ref.artifact_id, ref.version)
    if len(parts) >= 2 and parts[0] == "name":
        return NamePath(validate_name("/".join(parts[1:])))
    raise InvalidArgument(
        f"unknown path descriptor {parts!r}; use ('artifact', id, version) or ('name', name)",
        detail={"path": parts},
    )


def decode_put_descriptor(descriptor: fl.FlightDescriptor) -> PutCommand:
    """What a DoPut descriptor asks for: ``('artifact',)``, ``('name', n)`` or a command."""
    if descriptor.descriptor_type == fl.DescriptorType.CMD:
        cmd = parse_model(PutCommand, load_json(descriptor.command, "command"), "put command")
    else:
        parts = _path_parts(descriptor)
        if parts == ["artifact"]:
            cmd = PutCommand()
        elif len(parts) >= 2 and parts[0] == "name":
            cmd = PutCommand(name="/".join(parts[1:]))
        else:
            raise InvalidArgument(
                f"unknown DoPut path {parts!r}; use ('artifact',), ('name', name) or a command",
                detail={"path": parts},
            )
    if cmd.name is not None:
        validate_name(cmd.name)
    return cmd


_LOCAL: dict[str, Core] = {}


def register_local(location: str, core: Core) -> None:
    """The server at ``location`` serves ``core`` in this process (until unregistered)."""
    _LOCAL[location] = core


def unregister_local(location: str) -> None:
    _LOCAL.pop(location, None)


def local_core(location: str) -> Core | None:
    """The :class:`Core` the Flight server at ``location`` serves, if it runs in this process."""
    return _LOCAL.get(location)
