"""Talking to a model: OpenAI-compatible chat completions and Anthropic Messages.

Both go through their official clients (``openai``, ``anthropic``), async,
with no retries (a 429 is the caller's to see) and the configured timeout
as the longest wait for the next byte. One neutral conversation shape goes
in — ``{"role": "user"|"assistant", "content", "tool_calls"?}`` and
``{"role": "tool", "tool_call_id", "name", "content"}`` — and one comes out
(:class:`Reply`); :meth:`Provider.stream` yields text deltas and ends with
the whole :class:`Reply`. Every failure leaves as a domain error
(:func:`mapped`): 429, 502 or 504, its message free of the key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from foundation import QuiverError, Timeout
from notebooks.ai.config import AIConfig, redact

if TYPE_CHECKING:  # the clients cost ~1.8 s to import: loaded when a model is first called
    import anthropic
    import openai

log = logging.getLogger(__name__)

Message = dict[str, Any]
ToolSpec = Mapping[str, Any]  # {name, description, parameters: JSON schema}


class RateLimited(QuiverError):
    """The provider refused for now (its HTTP 429)."""

    code = "rate_limited"
    http_status = 429


class ProviderFailed(QuiverError):
    """The provider answered with an error, or something that could not be read."""

    code = "bad_gateway"
    http_status = 502


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    content: str = ""
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)

    def tokens(self) -> dict[str, int]:
        return {"input": self.input_tokens, "output": self.output_tokens}


def mapped(exc: BaseException, config: AIConfig) -> QuiverError:
    """The domain error for a provider failure (never carrying the key)."""
    import anthropic
    import openai

    if isinstance(exc, QuiverError):
        return exc
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError | TimeoutError):
        return Timeout(f"The AI provider did not answer within {config.timeout_s:g} s")
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        text = redact(str(getattr(exc, "message", "") or exc), config)[:300]
        if exc.status_code == 429:
            return RateLimited(f"The AI provider is rate-limiting requests: {text}")
        return ProviderFailed(f"The AI provider answered HTTP {exc.status_code}: {text}")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return ProviderFailed(f"Could not reach the AI provider ({config.provider})")
    what = redact(f"{type(exc).__name__}: {exc}", config)[:300]
    return ProviderFailed(f"The AI provider's answer could not be read ({what})")


def _arguments(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {"_invalid_json": raw}
    return value if isinstance(value, dict) else {"value": value}


class Provider:
    """One configured provider; a new client per call, so any event loop may use it."""

    def __init__(self, config: AIConfig) -> None:
        self.config = config

    async def complete(
        self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> Reply:
        """One whole answer (a non-streaming request)."""
        c = self.config
        try:
            if c.provider == "anthropic":
                return await _anthropic_complete(c, system, messages, tools)
            return await _openai_complete(c, system, messages, tools)
        except Exception as exc:
            raise mapped(exc, c) from None

    def stream(
        self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | Reply]:
        if self.config.provider == "anthropic":
            return self._guarded(_anthropic_stream(self.config, system, messages, tools))
        return self._guarded(_openai_stream(self.config, system, messages, tools))

    async def _guarded(self, inner: AsyncIterator[str | Reply]) -> AsyncIterator[str | Reply]:
        try:
            async for item in inner:
                yield item
        except Exception as exc:
            raise mapped(exc, self.config) from None

    async def models(self) -> list[str]:
        """The provider's model ids, sorted; any failure gives ``[]``."""
        c = self.config
        try:
            if c.provider == "anthropic":
                async with _anthropic_client(c) as client:
                    found = [m.id async for m in client.models.list()]
            else:
                async with _openai_client(c) as client:
                    found = [m.id async for m in client.models.list()]
        except Exception as exc:
            log.info("listing the AI provider's models failed: %s", mapped(exc, c))
            return []
        return sorted(set(found))


def _openai_client(c: AIConfig) -> openai.AsyncOpenAI:
    import openai

    return openai.AsyncOpenAI(
        api_key=c.key, base_url=c.base_url, timeout=c.timeout_s, max_retries=0
    )


def _anthropic_client(c: AIConfig) -> anthropic.AsyncAnthropic:
    import anthropic

    return anthropic.AsyncAnthropic(
        api_key=c.key, base_url=c.base_url, timeout=c.timeout_s, max_retries=0
    )


def _openai_messages(system: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
        elif m.get("tool_calls"):
            calls = [
                {"id": t.id, "type": "function",
                 "function": {"name": t.name, "arguments": json.dumps(t.arguments)}}
                for t in m["tool_calls"]
            ]  # fmt: skip
            out.append(
                {"role": "assistant", "content": m.get("content") or None, "tool_calls": calls}
            )
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def _openai_request(
    c: AIConfig, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": c.model,
        "messages": _openai_messages(system, messages),
        "max_tokens": c.max_output_tokens,
    }
    if c.temperature is not None:
        kwargs["temperature"] = c.temperature
    if tools:
        kwargs["tools"] = [{"type": "function", "function": dict(t)} for t in tools]
    return kwargs


async def _openai_complete(
    c: AIConfig, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> Reply:
    async with _openai_client(c) as client:
        answer = await client.chat.completions.create(**_openai_request(c, system, messages, tools))
    reply = Reply(model=answer.model or c.model)
    if answer.usage is not None:
        reply.input_tokens = answer.usage.prompt_tokens or 0
        reply.output_tokens = answer.usage.completion_tokens or 0
    if not answer.choices:
        raise ProviderFailed("The AI provider's answer has no choices")
    message = answer.choices[0].message
    reply.content = message.content or ""
    reply.tool_calls = [
        ToolCall(t.id, t.function.name, _arguments(t.function.arguments))
        for t in message.tool_calls or ()
        if getattr(t, "function", None) is not None
    ]
    return reply


async def _openai_stream(
    c: AIConfig, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> AsyncIterator[str | Reply]:
    reply = Reply(model=c.model)
    calls: dict[int, dict[str, str]] = {}
    async with _openai_client(c) as client:
        stream = await client.chat.completions.create(
            **_openai_request(c, system, messages, tools),
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                reply.model = chunk.model or reply.model
                if chunk.usage is not None:
                    reply.input_tokens = chunk.usage.prompt_tokens or 0
                    reply.output_tokens = chunk.usage.completion_tokens or 0
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        reply.content += delta.content
                        yield delta.content
                    for tc in delta.tool_calls or ():
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        if tc.id:
                            slot["id"] = tc.id
                        if tc.function is not None:
                            slot["name"] += tc.function.name or ""
                            slot["args"] += tc.function.arguments or ""
    reply.tool_calls = [
        ToolCall(s["id"] or f"call_{i}", s["name"], _arguments(s["args"]))
        for i, s in sorted(calls.items())
    ]
    yield reply


def _anthropic_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)  # results of one turn go in one message
            else:
                out.append({"role": "user", "content": [block]})
        elif m.get("tool_calls"):
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m["content"]}] if m.get("content") else []
            )
            blocks += [
                {"type": "tool_use", "id": t.id, "name": t.name, "input": t.arguments}
                for t in m["tool_calls"]
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def _anthropic_request(
    c: AIConfig, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": c.model,
        "max_tokens": c.max_output_tokens,
        "messages": _anthropic_messages(messages),
    }
    if system:
        kwargs["system"] = system
    if c.temperature is not None:
        kwargs["temperature"] = c.temperature
    if tools:
        kwargs["tools"] = [
            {"name": t["name"], "description": t.get("description", ""),
             "input_schema": t["parameters"]}
            for t in tools
        ]  # fmt: skip
    return kwargs


async def _anthropic_complete(
    c: AIConfig, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> Reply:
    async with _anthropic_client(c) as client:
        answer = await client.messages.create(**_anthropic_request(c, system, messages, tools))
    reply = Reply(model=answer.model or c.model)
    reply.input_tokens = answer.usage.input_tokens or 0
    reply.output_tokens = answer.usage.output_tokens or 0
    for block in answer.content:
        if block.type == "text":
            reply.content += block.text
        elif block.type == "tool_use":
            args = block.input if isinstance(block.input, dict) else {"value": block.input}
            reply.tool_calls.append(ToolCall(block.id, block.name, args))
    return reply


async def _anthropic_stream(
    c: AIConfig, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> AsyncIterator[str | Reply]:
    reply = Reply(model=c.model)
    blocks: dict[int, dict[str, str]] = {}
    async with _anthropic_client(c) as client:
        stream = await client.messages.create(
            **_anthropic_request(c, system, messages, tools), stream=True
        )
        async with stream:
            async for event in stream:
                kind = event.type
                if kind == "message_start":
                    reply.model = event.message.model or reply.model
                    reply.input_tokens = event.message.usage.input_tokens or 0
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    blocks[event.index] = {"id": block.id, "name": block.name, "args": ""}
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        reply.content += delta.text
                        yield delta.text
                    elif delta.type == "input_json_delta" and event.index in blocks:
                        blocks[event.index]["args"] += delta.partial_json
                elif kind == "message_delta" and event.usage is not None:
                    reply.output_tokens = event.usage.output_tokens or 0
    reply.tool_calls = [
        ToolCall(b["id"], b["name"], _arguments(b["args"])) for _, b in sorted(blocks.items())
    ]
    yield reply
