"""Flight SQL messages on the wire: ``google.protobuf.Any`` in, ``Any`` out.

Descriptors, tickets and action bodies of Flight SQL are protobuf ``Any``
messages wrapping one of ``FlightSql.proto``'s messages (the module
:mod:`flight.sql.flightsql_pb2` is generated from it). Quiver's own commands
and tickets are JSON or URIs, so the first byte tells the two apart: an
``Any`` starts with the tag of its field 1 (``0x0a``), JSON with ``{`` and a
URI with a letter.
"""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from flight.sql import flightsql_pb2 as pb
from foundation import InvalidArgument

TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."
ANY_FIRST_BYTE = 0x0A


def pack(message: Message) -> bytes:
    """``message`` wrapped in an ``Any``, serialized."""
    wrapper = any_pb2.Any()
    wrapper.Pack(message)
    return wrapper.SerializeToString()


def unpack(raw: bytes) -> Message | None:
    """The Flight SQL message ``raw`` carries, or None when ``raw`` is not Flight SQL."""
    if not raw or raw[0] != ANY_FIRST_BYTE:
        return None
    wrapper = any_pb2.Any()
    try:
        wrapper.ParseFromString(raw)
    except DecodeError:
        return None
    if not wrapper.type_url.startswith(TYPE_PREFIX):
        return None
    name = wrapper.type_url.removeprefix(TYPE_PREFIX)
    cls = getattr(pb, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Message)):
        raise InvalidArgument(f"unknown Flight SQL message {name!r}")
    message = cls()
    if not wrapper.Unpack(message):
        raise InvalidArgument(f"malformed Flight SQL message {name!r}")
    return message


def decode(cls: type[Message], raw: bytes, what: str) -> Message:
    """A plain (not ``Any``-wrapped) message of type ``cls``; clean error when malformed."""
    message = cls()
    try:
        message.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidArgument(f"malformed {what}: {exc}") from None
    return message
