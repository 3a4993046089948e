"""Domain errors ↔ ``pyarrow.flight`` errors: the one place Flight picks an error class.

Server side, :func:`to_flight_error` turns any exception into a Flight error
whose message is one clean line and whose ``extra_info`` is JSON
``{"code": ..., "detail": ...}``. An unexpected exception is logged with its
traceback under an error id, and only the id reaches the client. Client side,
:func:`from_flight_error` rebuilds the matching :class:`QuiverError`.

Flight SQL clients (ADBC, JDBC) read only the gRPC status code, and pyarrow's
Flight error classes cannot say UNIMPLEMENTED, INVALID_ARGUMENT or NOT_FOUND:
:func:`to_status_error` gives those as Arrow errors (:class:`StatusError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.flight as fl

from foundation import (
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

log = logging.getLogger("quiver.flight")

_FLIGHT_CLASS: dict[str, type[fl.FlightError]] = {
    "unauthenticated": fl.FlightUnauthenticatedError,
    "unauthorized": fl.FlightUnauthorizedError,
    "timeout": fl.FlightTimedOutError,
    "unavailable": fl.FlightUnavailableError,
    "busy": fl.FlightUnavailableError,
    "internal": fl.FlightInternalError,
}
"""Codes with a dedicated Flight class; every other code is a ``FlightServerError``."""

_QUIVER_CLASS: dict[str, type[QuiverError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        Conflict,
        TooLarge,
        Unauthenticated,
        Unauthorized,
        Timeout,
        Unavailable,
        Busy,
        BuildFailed,
        Internal,
    )
}

MAX_MESSAGE_CHARS = 1000


class Unsupported(InvalidArgument):
    """A request this server understands and does not serve (a Flight SQL update,
    transaction, Substrait plan...): UNIMPLEMENTED to a Flight SQL client."""


class StatusError(Exception):
    """An error that already carries its gRPC status; handlers let it through.

    pyarrow sends any non-Flight exception with its code mapped (ArrowInvalid →
    INVALID_ARGUMENT...) and the formatted Python traceback appended to the
    message. Refusing to give ``__notes__`` makes that formatting fail, so pyarrow
    falls back to the bare type name: the client reads one clean line.
    """

    @property
    def __notes__(self) -> list[str]:
        raise LookupError("a status error is sent without its traceback")


class InvalidArgumentStatus(StatusError, pa.ArrowInvalid):
    """gRPC INVALID_ARGUMENT."""


class UnimplementedStatus(StatusError, pa.ArrowNotImplementedError):
    """gRPC UNIMPLEMENTED."""


class NotFoundStatus(StatusError, pa.ArrowKeyError):
    """gRPC NOT_FOUND."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


T = TypeVar("T")


def one_line(message: str) -> str:
    """The first non-empty line of ``message``, bounded in length."""
    for line in message.splitlines():
        if line.strip():
            return line.strip()[:MAX_MESSAGE_CHARS]
    return ""


def to_flight_error(exc: BaseException) -> fl.FlightError:
    """The Flight error a client should see for ``exc`` (never a traceback)."""
    if isinstance(exc, fl.FlightError):
        return exc
    if isinstance(exc, QuiverError):
        code = exc.code
        message = one_line(exc.message) or code
        payload: dict[str, Any] = {"code": code, "detail": exc.detail}
    else:
        error_id = uuid.uuid4().hex[:16]
        log.error("internal error %s", error_id, exc_info=exc)
        code = "internal"
        message = f"internal error (error id {error_id}); the server log has the details"
        payload = {"code": code, "detail": {"error_id": error_id}, "error_id": error_id}
    cls = _FLIGHT_CLASS.get(code, fl.FlightServerError)
    return cls(message, json.dumps(payload, default=str).encode())


def to_status_error(exc: BaseException) -> Exception:
    """The error a Flight SQL client should see for ``exc``: a gRPC status it knows
    (UNIMPLEMENTED, INVALID_ARGUMENT, NOT_FOUND), else :func:`to_flight_error`."""
    if isinstance(exc, StatusError):
        return exc
    if isinstance(exc, QuiverError):
        message = one_line(exc.message) or exc.code
        if isinstance(exc, Unsupported):
            return UnimplementedStatus(message)
        if isinstance(exc, InvalidArgument):
            return InvalidArgumentStatus(message)
        if isinstance(exc, NotFound):
            return NotFoundStatus(message)
    return to_flight_error(exc)


@contextlib.contextmanager
def status_errors() -> Iterator[None]:
    """Inside, every exception leaves as :func:`to_status_error` makes it."""
    try:
        yield
    except Exception as exc:
        raise to_status_error(exc) from None


def guard(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a server handler so every exception leaves it as a clean Flight error."""

    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except StatusError:
            raise
        except Exception as exc:
            raise to_flight_error(exc) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def guarded_iter(items: Iterable[T]) -> Iterator[T]:
    """Iterate ``items``; an exception mid-way leaves as a clean Flight error."""
    try:
        yield from items
    except GeneratorExit:
        raise
    except Exception as exc:
        raise to_flight_error(exc) from None


def from_flight_error(exc: fl.FlightError) -> QuiverError:
    """The :class:`QuiverError` a Quiver server meant by ``exc`` (client side)."""
    payload: dict[str, Any] = {}
    raw = getattr(exc, "extra_info", None)
    if raw:
        try:
            decoded = json.loads(raw)
            if isinstance(decoded, dict):
                payload = decoded
        except ValueError:
            payload = {}
    code = payload.get("code")
    if not isinstance(code, str) or code not in _QUIVER_CLASS:
        code = _code_of_class(exc)
    # gRPC appends ". Detail: <status>" and sometimes a debug context: drop them.
    message = str(exc).split(". Detail: ", 1)[0]
    return _QUIVER_CLASS[code](one_line(message), detail=payload.get("detail"))


def _code_of_class(exc: fl.FlightError) -> str:
    for code, cls in _FLIGHT_CLASS.items():
        if isinstance(exc, cls):
            return code
    return "internal"
