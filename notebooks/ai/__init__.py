"""The AI assistant: providers, the notebook's context, chat, prompt cells, the agent's tools.

The door for the transports (``rest``): :mod:`assistant` answers the chat
routes; the configuration (:func:`resolve`) and the provider errors a route
declares (:class:`RateLimited` 429, :class:`ProviderFailed` 502).
"""

from __future__ import annotations

from notebooks.ai.agent import Agents
from notebooks.ai.assistant import complete as ai_complete
from notebooks.ai.assistant import configured as ai_config
from notebooks.ai.assistant import models as ai_models
from notebooks.ai.assistant import open_stream as ai_stream
from notebooks.ai.assistant import set_model as set_ai_model
from notebooks.ai.assistant import status as ai_status
from notebooks.ai.config import NOT_CONFIGURED, AIConfig, redact, resolve
from notebooks.ai.prompt import PromptCells
from notebooks.ai.providers import Provider, ProviderFailed, RateLimited, Reply, ToolCall
from notebooks.ai.tools import TOOLS, NotebookTools, Tool, output_summary

__all__ = [
    "NOT_CONFIGURED",
    "TOOLS",
    "AIConfig",
    "Agents",
    "NotebookTools",
    "PromptCells",
    "Provider",
    "ProviderFailed",
    "RateLimited",
    "Reply",
    "Tool",
    "ToolCall",
    "ai_complete",
    "ai_config",
    "ai_models",
    "ai_status",
    "ai_stream",
    "output_summary",
    "redact",
    "resolve",
    "set_ai_model",
]
