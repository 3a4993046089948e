"""One domain error tree. Each error knows its kind; transports map kinds once.

``rest/`` maps :attr:`QuiverError.code` to an HTTP status, ``flight/`` maps it
to the matching ``pyarrow.flight`` error class. Code outside those two never
chooses a status.
"""

from __future__ import annotations

from typing import Any, ClassVar


class QuiverError(Exception):
    """Base of every error Quiver reports to a client on purpose."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(QuiverError):
    code = "invalid_argument"
    http_status = 400


class NotFound(QuiverError):
    code = "not_found"
    http_status = 404


class Conflict(QuiverError):
    code = "conflict"
    http_status = 409


class TooLarge(QuiverError):
    code = "too_large"
    http_status = 413


class Unauthenticated(QuiverError):
    code = "unauthenticated"
    http_status = 401


class Unauthorized(QuiverError):
    code = "unauthorized"
    http_status = 403


class Timeout(QuiverError):
    code = "timeout"
    http_status = 504


class Unavailable(QuiverError):
    code = "unavailable"
    http_status = 503


class Busy(Unavailable):
    """Over capacity now (e.g. the build queue is full): retry later. REST adds Retry-After."""

    code = "busy"
    retry_after_s: ClassVar[int] = 1


class BuildFailed(QuiverError):
    """A build ran and failed; ``detail`` carries the recorded error."""

    code = "build_failed"
    http_status = 500


class Internal(QuiverError):
    code = "internal"
    http_status = 500
