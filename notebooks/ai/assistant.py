"""The chat assistant of one notebook: status, models, the model choice, complete and stream.

Transports call these; each resolves the notebook's configuration afresh (an
edit of ``[env]`` or ``[ai]`` counts at once) and answers in the shapes of
API.md §10. :func:`stream` yields ``(event, data)`` pairs — ``delta`` as the
provider's tokens arrive, then ``done``, or one ``error`` — and never raises
once started: a failure becomes the ``error`` event that ends the stream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from foundation import QuiverError, Settings
from notebooks.ai.config import AIConfig, redact, require, resolve
from notebooks.ai.context import chat_messages, notebook_context
from notebooks.ai.providers import Provider, Reply
from notebooks.session import Session

log = logging.getLogger(__name__)


def config_for(settings: Settings, session: Session) -> AIConfig | None:
    """The notebook's AI configuration now (None: not configured)."""
    return resolve(settings, session.nb.get("ai"), dict(session.derived.notebook_env))


def configured(settings: Settings, session: Session) -> AIConfig:
    """The notebook's configuration, or the 503 naming the settings to set."""
    return require(config_for(settings, session))


def status(settings: Settings, session: Session) -> dict[str, Any]:
    config = config_for(settings, session)
    if config is None:
        return {"available": False, "model": None, "provider": None}
    return {"available": True, "model": config.model, "provider": config.provider}


async def models(settings: Settings, session: Session) -> dict[str, Any]:
    config = config_for(settings, session)
    if config is None:
        return {"models": [], "current": None}
    found = await Provider(config).models()
    return {"models": found, "current": config.model, "provider": config.provider}


def set_model(session: Session, model: str) -> dict[str, Any]:
    """Write ``[ai].model`` (the other ``[ai]`` keys stay)."""
    with session.lock:
        table = dict(session.nb.get("ai") or {})
        table["model"] = model
        session.configure("ai", table)
    return {"model": model}


def _prepared(
    settings: Settings,
    session: Session,
    message: str,
    cell_id: str | None,
    history: Sequence[Mapping[str, str]],
) -> tuple[Provider, str, list[dict[str, Any]]]:
    config = require(config_for(settings, session))
    return Provider(config), notebook_context(session, cell_id), chat_messages(message, history)


def _answer(reply: Reply, config: AIConfig) -> dict[str, Any]:
    return {
        "content": reply.content,
        "model": reply.model or config.model,
        "tokens": reply.tokens(),
    }


async def complete(
    settings: Settings,
    session: Session,
    message: str,
    cell_id: str | None = None,
    history: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """``{content, model, tokens}``; 503 unconfigured, 429/502/504 from the provider."""
    provider, system, messages = _prepared(settings, session, message, cell_id, history)
    reply = await provider.complete(system, messages)
    return _answer(reply, provider.config)


def open_stream(
    settings: Settings,
    session: Session,
    message: str,
    cell_id: str | None = None,
    history: Sequence[Mapping[str, str]] = (),
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The SSE events of one answer. Raises 503 now (before any event) when unconfigured."""
    provider, system, messages = _prepared(settings, session, message, cell_id, history)
    return _events(provider, system, messages)


async def _events(
    provider: Provider, system: str, messages: list[dict[str, Any]]
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    config = provider.config
    try:
        async for item in provider.stream(system, messages):
            if isinstance(item, Reply):
                done = _answer(item, config)
                yield "done", {"model": done["model"], "tokens": done["tokens"]}
            else:
                yield "delta", {"text": item}
    except QuiverError as exc:
        log.info("AI stream failed: %s", exc.message)
        yield "error", {"message": redact(exc.message, config)}
