"""This process's TCP sockets, as the Flight server's shutdown needs them.

pyarrow's Flight server cannot cancel a call, so a shutdown deadline is kept by
shutting down the connections the server accepted (:func:`drop_connections`),
found by looking at this process's own sockets without closing any descriptor.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Collection, Iterator

Address = tuple[int, str, int]
"""A listening socket's family, host and port."""
_ANY_HOST = ("0.0.0.0", "::")


def _socket_fds() -> Iterator[tuple[int, int]]:
    """``(descriptor, inode)`` of every socket this process has open.

    Only looks: ``fstat`` neither opens nor closes anything. Closing *any*
    descriptor of a file releases every POSIX lock this process holds on it, so
    duplicating a descriptor that may be the store's ``store.db`` (or its WAL
    index) and closing the duplicate would silently drop SQLite's locks.
    """
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    for name in os.listdir(fd_dir):
        try:
            fd = int(name)
            st = os.fstat(fd)
        except (OSError, ValueError):
            continue  # closed meanwhile, or the listing's own descriptor
        if stat.S_ISSOCK(st.st_mode):
            yield fd, st.st_ino


def _tcp_sockets() -> Iterator[tuple[socket.socket, int]]:
    """Every TCP socket of this process, with its inode.

    Each is borrowed on its own descriptor, never a duplicate, and released
    (``detach``, never ``close``) after use: nothing here closes a descriptor.
    A descriptor closed and reused meanwhile is skipped (its inode changed).
    """
    for fd, inode in _socket_fds():
        try:
            sock = socket.socket(fileno=fd)  # fails, closing nothing, if fd is no socket now
        except OSError:
            continue
        try:
            if os.fstat(fd).st_ino != inode:
                continue
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
                yield sock, inode
        except OSError:
            continue
        finally:
            sock.detach()


def listeners() -> dict[int, Address]:
    """This process's listening TCP sockets: inode → (family, host, port)."""
    found: dict[int, Address] = {}
    for sock, inode in _tcp_sockets():
        try:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            host, port = sock.getsockname()[:2]
        except OSError:
            continue
        found[inode] = (sock.family, host, port)
    return found


def _accepted_by(listening: Collection[Address], family: int, host: str) -> bool:
    return any(lfamily == family and lhost in (host, *_ANY_HOST) for lfamily, lhost, _ in listening)


def drop_connections(port: int, listening: Collection[Address] = ()) -> int:
    """Shut down the TCP connections this process accepted on ``port``; how many.

    pyarrow's ``FlightServerBase`` cannot cancel a call, and gRPC waits for
    every call when shutting down without a deadline; a DoGet whose client
    stopped reading waits inside gRPC for flow control that never comes.
    Shutting its socket down (``shutdown``, not ``close``: gRPC's descriptor
    stays valid and is closed by gRPC) fails that write and cancels the call:
    the client sees ``FlightUnavailableError``.

    Only connections accepted on one of the ``listening`` addresses (the
    server's own, see ``QuiverFlightServer``) are touched: another server in
    this process may use the same port number on another address, and a client
    socket may have that number as its own port. Without ``listening`` (they
    could not be seen), every accepted connection on ``port`` goes.
    """
    dropped = 0
    for sock, _ in _tcp_sockets():
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue  # a listener
            host, local_port = sock.getsockname()[:2]
            if local_port != port:
                continue
            if listening and not _accepted_by(listening, sock.family, host):
                continue
            sock.getpeername()  # connected
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            continue
        dropped += 1
    return dropped
