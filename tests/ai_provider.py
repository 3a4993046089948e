"""A scripted AI provider: a real HTTP server on loopback speaking the OpenAI
chat-completions protocol (streaming and not, tool calls, ``/v1/models``) and
Anthropic's Messages protocol, for tests and benchmarks.

Each test queues :class:`Answer` s (or functions of the request making one); each
request takes the next one and gets it in the protocol and mode it asked for.
``hang_after`` stops an answer after that many chunks (0: before the headers) until the
client goes away, which the
server records in :attr:`Provider.disconnects`. Every request is recorded
(path, headers, JSON body), so tests can read what the model was told.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from tests.servers import serve_asgi


@dataclass
class Answer:
    text: list[str] = field(default_factory=lambda: ["Hello", " there"])
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    error: str = "scripted failure"
    raw: bytes | None = None  # a stream body sent as it is (malformed on purpose)
    hang_after: int | None = None
    model: str = "scripted-model"
    input_tokens: int = 11
    output_tokens: int = 7


@dataclass
class Provider:
    url: str = ""
    answers: deque[Answer | Callable[[dict[str, Any]], Answer]] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=lambda: ["zeta-model", "alpha-model"])
    first_chunk_at: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def script(self, *answers: Answer | Callable[[dict[str, Any]], Answer]) -> None:
        """Queue answers; a callable gets the request's JSON body and makes the answer."""
        self.answers.extend(answers)

    def wait_disconnect(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.disconnects:
                return True
            time.sleep(0.01)
        return bool(self.disconnects)

    # -- the ASGI app ------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        request = json.loads(body) if body else {}
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": request})
        anthropic = path.endswith("/messages")
        if path.endswith("/models"):
            await self._json(send, 200, self._models(anthropic))
            return
        answer = self.answers.popleft() if self.answers else Answer()
        if callable(answer):
            answer = answer(request)
        if answer.hang_after == 0:
            await self._hang(receive, path)
            return
        if answer.status != 200:
            kind = "rate_limit_error" if answer.status == 429 else "api_error"
            error = {"type": kind, "message": answer.error}
            if anthropic:
                await self._json(send, answer.status, {"type": "error", "error": error})
            else:
                await self._json(send, answer.status, {"error": error | {"code": None}})
            return
        if not request.get("stream"):
            whole = _anthropic_message(answer) if anthropic else _openai_message(answer)
            await self._json(send, 200, whole)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        if answer.raw is not None:
            await send({"type": "http.response.body", "body": answer.raw, "more_body": False})
            return
        chunks = list(_anthropic_events(answer) if anthropic else _openai_events(answer))
        for i, chunk in enumerate(chunks):
            if answer.hang_after is not None and i == answer.hang_after:
                await self._hang(receive, path)
                return
            if i == 1:  # the first token (chunk 0 opens the message)
                self.first_chunk_at.append(time.perf_counter())
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _hang(self, receive: Any, path: str) -> None:
        with anyio.move_on_after(60):  # a bound, not a wait: the client leaves first
            while (await receive())["type"] != "http.disconnect":
                pass
        with self.lock:
            self.disconnects.append(path)

    @staticmethod
    async def _json(send: Any, status: int, value: Any) -> None:
        data = json.dumps(value).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})

    def _models(self, anthropic: bool) -> dict[str, Any]:
        if anthropic:
            data = [{"id": m, "type": "model", "display_name": m,
                     "created_at": "2025-01-01T00:00:00Z"} for m in self.models]  # fmt: skip
            return {"data": data, "has_more": False, "first_id": None, "last_id": None}
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "t"} for m in self.models]
        return {"object": "list", "data": data}


def _openai_message(a: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(a.text) or None}
    if a.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(a.tool_calls)
        ]  # fmt: skip
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": a.model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if a.tool_calls else "stop"}],
        "usage": {"prompt_tokens": a.input_tokens, "completion_tokens": a.output_tokens,
                  "total_tokens": a.input_tokens + a.output_tokens},
    }  # fmt: skip


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _openai_events(a: Answer) -> Iterator[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": a.model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse(base | {"choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    for piece in a.text:
        yield chunk({"content": piece})
    for i, (name, args) in enumerate(a.tool_calls):
        text = json.dumps(args)
        half = len(text) // 2
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": name, "arguments": text[:half]},
                    }
                ]
            }
        )
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": text[half:]}}]})
    yield chunk({}, "tool_calls" if a.tool_calls else "stop")
    usage = {"prompt_tokens": a.input_tokens, "completion_tokens": a.output_tokens,
             "total_tokens": a.input_tokens + a.output_tokens}  # fmt: skip
    yield _sse(base | {"choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _anthropic_message(a: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(a.text)}] if a.text else []
    content += [
        {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(a.tool_calls)
    ]
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": a.model,
        "content": content, "stop_reason": "tool_use" if a.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens},
    }  # fmt: skip


def _anthropic_events(a: Answer) -> Iterator[bytes]:
    start = _anthropic_message(a) | {"content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": a.input_tokens, "output_tokens": 0}
    yield _sse({"type": "message_start", "message": start}, "message_start")
    index = 0
    if a.text:
        block = {"type": "text", "text": ""}
        yield _sse({"type": "content_block_start", "index": 0, "content_block": block},
                   "content_block_start")  # fmt: skip
        for piece in a.text:
            delta = {"type": "text_delta", "text": piece}
            yield _sse({"type": "content_block_delta", "index": 0, "delta": delta},
                       "content_block_delta")  # fmt: skip
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        index = 1
    for i, (name, args) in enumerate(a.tool_calls, start=index):
        block = {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": {}}
        yield _sse({"type": "content_block_start", "index": i, "content_block": block},
                   "content_block_start")  # fmt: skip
        delta = {"type": "input_json_delta", "partial_json": json.dumps(args)}
        yield _sse({"type": "content_block_delta", "index": i, "delta": delta},
                   "content_block_delta")  # fmt: skip
        yield _sse({"type": "content_block_stop", "index": i}, "content_block_stop")
    stop = "tool_use" if a.tool_calls else "end_turn"
    yield _sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": a.output_tokens}}, "message_delta")  # fmt: skip
    yield _sse({"type": "message_stop"}, "message_stop")


@pytest.fixture
def provider() -> Iterator[Provider]:
    """A scripted provider for one test."""
    p, stop = start_provider()
    yield p
    stop()


def start_provider() -> tuple[Provider, Any]:
    """A running scripted provider and its stop function."""
    provider = Provider()
    url, stop = serve_asgi(provider, lifespan="off")
    provider.url = url
    return provider, stop
