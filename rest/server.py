"""uvicorn, stopping as soon as it is asked to.

Stock uvicorn notices ``should_exit`` on a 0.1 s tick, and its shutdown then pauses
another 0.1 s for the open connections it asked to close, even when there are none:
every stop takes 0.1-0.2 s of waiting on nothing. :class:`PromptServer` is woken by
:meth:`PromptServer.exit` at once, and pauses only for connections that exist; with
open connections its shutdown is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn


class PromptServer(uvicorn.Server):
    """A ``uvicorn.Server`` whose :meth:`exit` (from any thread) ends it without a tick's wait."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def exit(self) -> None:
        """Ask the server to stop: it stops accepting and drains as uvicorn does."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        # uvicorn's loop (``on_tick`` every 0.1 s: date header, request limit, exit flag),
        # with the sleep cut short by :meth:`exit`.
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting first: no connection can start after
            server.close()
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)  # uvicorn's drain, with its pauses
            return
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()
