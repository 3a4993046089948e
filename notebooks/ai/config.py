"""Which AI provider, model and key a notebook uses (API.md §10).

Three layers, the later winning: the server's settings (``QUIVER_AI_*``), the
notebook's environment (a key named for its provider: ``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``...), and the notebook's ``[ai]`` table (``provider``,
``model``, ``base_url``, ``temperature``, ``max_output_tokens``,
``timeout_seconds``). The key stays a :class:`~pydantic.SecretStr` from
here on: it is handed to the provider's client and to :func:`redact`, nothing
else. ``[ai].api_key`` is not read: a key written into ``notebook.toml``
would travel with every copy of the notebook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from foundation import Settings, Unavailable

PROVIDERS = ("anthropic", "google", "mistral", "openai", "local", "custom")

KEY_NAMES: tuple[tuple[str, str | None], ...] = (
    ("ANTHROPIC_API_KEY", "anthropic"),
    ("OPENAI_API_KEY", "openai"),
    ("GEMINI_API_KEY", "google"),
    ("MISTRAL_API_KEY", "mistral"),
    ("QUIVER_AI_API_KEY", None),
    ("STRATA_AI_API_KEY", None),
)
"""Names a notebook's environment may hold its key under, and the provider each implies."""

BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai/",
    "mistral": "https://api.mistral.ai/v1",
}
DEFAULT_MODELS = {
    "anthropic": "claude-sonnet-4-5",
    "openai": "gpt-4o-mini",
    "google": "gemini-2.5-flash",
    "mistral": "mistral-large-latest",
}
NOT_CONFIGURED = (
    "No AI model configured: set QUIVER_AI_API_KEY (with QUIVER_AI_PROVIDER, QUIVER_AI_MODEL "
    "and, for a local or compatible server, QUIVER_AI_BASE_URL) on the server, or put "
    "OPENAI_API_KEY or ANTHROPIC_API_KEY in the notebook's environment"
)


@dataclass(frozen=True)
class AIConfig:
    """A resolved configuration; ``api_key`` never prints (SecretStr)."""

    provider: str
    model: str
    base_url: str | None
    api_key: SecretStr | None
    timeout_s: float
    max_output_tokens: int
    approval_timeout_s: float
    temperature: float | None = None

    @property
    def key(self) -> str:
        """The key for the client (local servers need none; the client wants a string)."""
        return self.api_key.get_secret_value() if self.api_key is not None else "not-needed"


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


def resolve(
    settings: Settings, ai: Mapping[str, Any] | None, env: Mapping[str, str]
) -> AIConfig | None:
    """The notebook's configuration, or None when no provider can be reached."""
    ai = ai or {}
    provider = ai.get("provider") or settings.ai_provider
    key: SecretStr | None = None
    for name, implied in KEY_NAMES:
        value = env.get(name)
        if value and (provider is None or implied is None or implied == provider):
            key, provider = SecretStr(value), provider or implied
            break
    if key is None and settings.ai_api_key is not None:
        key = settings.ai_api_key
    base_url = ai.get("base_url") or settings.ai_base_url
    if provider is None:
        provider = ("local" if _loopback(base_url) else "custom") if base_url else "openai"
    if provider not in PROVIDERS:
        return None
    base_url = base_url or BASE_URLS.get(provider)
    keyless = provider in ("local", "custom") and base_url is not None
    model = ai.get("model") or settings.ai_model or DEFAULT_MODELS.get(provider)
    if (key is None and not keyless) or not model:
        return None
    temperature = ai.get("temperature")
    return AIConfig(
        provider=provider,
        model=str(model),
        base_url=base_url,
        api_key=key,
        timeout_s=_number(ai.get("timeout_seconds"), settings.ai_timeout_s),
        max_output_tokens=int(_number(ai.get("max_output_tokens"), settings.ai_max_output_tokens)),
        approval_timeout_s=_number(
            ai.get("approval_timeout_seconds"), settings.ai_approval_timeout_s
        ),
        temperature=float(temperature) if isinstance(temperature, int | float) else None,
    )


def require(config: AIConfig | None) -> AIConfig:
    """``config``, or the 503 that names the settings to set."""
    if config is None:
        raise Unavailable(NOT_CONFIGURED)
    return config


_KEYLIKE = re.compile(r"\b(?:sk|key|api)[-_][A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)


def redact(text: str, config: AIConfig | None = None) -> str:
    """``text`` without the key (whole or in part) or anything shaped like one."""
    if config is not None and config.api_key is not None:
        secret = config.api_key.get_secret_value()
        if secret:
            text = text.replace(secret, "[redacted]")
            if len(secret) > 12:  # providers echo a key's ends: "sk-ab...wxyz"
                text = text.replace(secret[:8], "[redacted]").replace(secret[-6:], "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)
