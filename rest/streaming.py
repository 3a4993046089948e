"""Turn a ``RecordBatchReader`` into an HTTP body, batch by batch.

Arrow IPC stream (the default), CSV or Parquet. Nothing is collected: each
batch is encoded and handed to the socket before the next is read, and when
the client goes away the reader is closed (which cancels a Flight DoGet).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from fastapi.responses import StreamingResponse

from foundation import InvalidArgument

ARROW_STREAM = "application/vnd.apache.arrow.stream"
Format = Literal["arrow", "csv", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "arrow": ARROW_STREAM,
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


def check_format(fmt: str | None) -> Format:
    fmt = (fmt or "arrow").lower()
    if fmt in ("arrow", "ipc", "arrows"):
        return "arrow"
    if fmt in ("csv", "parquet"):
        return fmt  # type: ignore[return-value]
    raise InvalidArgument(f"unknown format {fmt!r}; use arrow (default), csv or parquet")


class _Chunks:
    """A write-only file object that hands over what was written since the last drain.

    With ``keep_buffers`` an Arrow buffer handed to ``write`` (the IPC writer
    hands each column buffer over whole) is kept as a view, not copied; small
    pieces in between (message headers, padding) are joined.
    """

    def __init__(self, *, keep_buffers: bool = False) -> None:
        self.parts: list[bytes | memoryview] = []
        self.closed = False
        self._keep = keep_buffers

    def write(self, data: bytes | memoryview | pa.Buffer) -> int:
        if self._keep and isinstance(data, pa.Buffer):
            self.parts.append(memoryview(data))
        else:
            self.parts.append(bytes(data))
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out

    def drain_pieces(self) -> Iterator[bytes | memoryview]:
        """What was written, as few pieces as possible without copying large buffers."""
        small: list[bytes | memoryview] = []
        for part in self.parts:
            if len(part) < _JOIN_BELOW:
                small.append(part)
                continue
            if small:
                yield b"".join(small)
                small.clear()
            yield part
        if small:
            yield b"".join(small)
        self.parts.clear()


_JOIN_BELOW = 256 * 1024


def _arrow_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes | memoryview]:
    # The IPC writer hands the sink each batch's buffers as they are: they go
    # to the socket as views, so a batch is never copied into one message here.
    # The writer also sequences dictionary batches before the batches using them.
    sink = _Chunks(keep_buffers=True)
    with ipc.new_stream(pa.PythonFile(sink, mode="w"), reader.schema) as writer:
        yield from sink.drain_pieces()
        for batch in reader:
            writer.write_batch(batch)
            yield from sink.drain_pieces()
    yield from sink.drain_pieces()


def _csv_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    sink = _Chunks()
    with pacsv.CSVWriter(pa.PythonFile(sink, mode="w"), reader.schema) as writer:
        yield sink.drain()
        for batch in reader:
            writer.write_batch(batch)
            yield sink.drain()
    yield sink.drain()


def _parquet_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    sink = _Chunks()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), reader.schema)
    try:
        for batch in reader:
            writer.write_batch(batch)
            yield sink.drain()
    finally:
        writer.close()
    yield sink.drain()


def body(reader: pa.RecordBatchReader, fmt: Format) -> Iterator[bytes | memoryview]:
    """The encoded chunks of ``reader``; closes it when done or abandoned."""
    chunks = {"arrow": _arrow_chunks, "csv": _csv_chunks, "parquet": _parquet_chunks}[fmt]
    try:
        for chunk in chunks(reader):
            if len(chunk):
                yield chunk
    finally:
        with contextlib.suppress(Exception):
            reader.close()


class ReadAheadResponse(StreamingResponse):
    """A streamed body produced by a thread that reads ahead of the socket.

    A producer thread pulls and encodes chunks (a Flight read and an IPC
    encode, both of which release the GIL) while the event loop sends earlier
    ones, so reading and sending overlap instead of taking turns. At most
    ``depth`` chunks wait in between. ``on_close`` (the cancel of the Flight
    read) runs when the response ends, however it ends — also when the client
    goes away while the producer is blocked on a read.
    """

    def __init__(
        self,
        chunks: Iterator[bytes | memoryview],
        *,
        media_type: str,
        headers: Mapping[str, str],
        on_close: Callable[[], None] | None = None,
        depth: int = 4,
    ) -> None:
        super().__init__(iter(()), media_type=media_type, headers=dict(headers))
        self._chunks = chunks
        self._on_close = on_close
        self._depth = depth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room = threading.Semaphore(self._depth)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for chunk in self._chunks:
                    while not room.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, done)
            except BaseException as exc:  # handed to the event loop below
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()

        producer = threading.Thread(target=produce, name="rest-read-ahead", daemon=True)
        producer.start()

        async def send_all() -> None:
            await send(
                {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}
            )  # fmt: skip
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                room.release()
                await send({"type": "http.response.body", "body": item, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        # A server speaking ASGI 2.3 (uvicorn) drops what is sent after the client went
        # away without a word: only ``receive`` tells. Without listening, the rest of
        # the body would be read (and the read's lease held) for nobody.
        sending = asyncio.ensure_future(send_all())
        listening = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((sending, listening), return_when=asyncio.FIRST_COMPLETED)
            if sending.done():
                sending.result()  # the body was sent, or its error goes up
        finally:
            stop.set()
            if self._on_close is not None:
                with contextlib.suppress(Exception):
                    self._on_close()
            room.release()
            for task in (sending, listening):
                task.cancel()
            await asyncio.gather(sending, listening, return_exceptions=True)


async def _disconnected(receive: Any) -> None:
    """Returns once the client has gone away (or the response has been sent)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def stream_response(
    reader: pa.RecordBatchReader,
    fmt: Format = "arrow",
    *,
    filename: str = "data",
    headers: Mapping[str, str] | None = None,
    on_close: Callable[[], None] | None = None,
) -> StreamingResponse:
    """A streamed response of ``reader`` in ``fmt``; csv/parquet come as attachments.

    ``on_close`` runs when the response ends or the client disconnects (pass
    the cancel of the Flight DoGet that feeds ``reader``).
    """
    out = dict(headers or {})
    if fmt != "arrow":
        out["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return ReadAheadResponse(
        body(reader, fmt), media_type=MEDIA_TYPES[fmt], headers=out, on_close=on_close
    )
