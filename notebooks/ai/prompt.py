"""Prompt cells: a template filled from upstream values, answered by the model, cached.

A ``prompt`` cell's text is sent with each ``{{ name }}`` replaced by that
upstream variable (a table as its schema and a Markdown preview of its first
rows; a value as JSON or its repr). The answer becomes the cell's output
variable — its ``# @name``, else ``result``. ``# @json`` (or a
``# @schema <JSON schema>`` line) asks for JSON and parses the answer: a list of
records becomes a table artifact on the Flight server, other JSON a value.

The runner hands every prompt cell to :class:`PromptCells` (its cache too):
the cache key is the cell's provenance (template, upstream results) plus the
provider, model and temperature, so re-running an unchanged prompt costs no
request, and choosing another model asks again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pyarrow as pa

from foundation import QuiverError, Settings
from notebooks.ai.assistant import config_for
from notebooks.ai.config import NOT_CONFIGURED, AIConfig, redact
from notebooks.ai.context import value_text
from notebooks.ai.providers import Provider
from notebooks.model import CellResult, CellState
from notebooks.runner import Runner
from notebooks.session import Session

T = TypeVar("T")
DEFAULT_NAME = "result"
PREVIEW_ROWS = 5
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_ANNOTATION = re.compile(r"^\s*#\s*@(\w+)\s*(.*)$")
SYSTEM = "You answer a prompt cell of a data notebook. Answer the prompt directly."
JSON_SYSTEM = (
    SYSTEM + " Answer with JSON only: no prose, no code fences. A list of records (objects "
    "with the same keys) for tabular answers."
)


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from synchronous code (in a thread of its own when this
    thread already runs an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=go, name="quiver-ai-call")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def template_of(source: str) -> tuple[str, bool, str | None]:
    """The prompt without its annotation lines; whether JSON is asked; the schema if any."""
    lines, wants_json, schema = [], False, None
    for line in source.splitlines():
        match = _ANNOTATION.match(line)
        if match is None:
            lines.append(line)
            continue
        word, rest = match.group(1), match.group(2).strip()
        if word == "json":
            wants_json = True
        elif word == "schema" and rest:
            wants_json, schema = True, rest
    return "\n".join(lines).strip(), wants_json, schema


def upstream_values(session: Session, cell: CellState) -> dict[str, dict[str, Any]]:
    """The upstream variables ``cell`` reads, as their producers' last ready results hold them."""
    d = session.derived
    found: dict[str, dict[str, Any]] = {}
    for edge in d.dag.edges:
        if edge.to_cell_id != cell.id or not edge.variable:
            continue
        producer = d.results.get(edge.from_cell_id)
        if producer is not None and producer.status == "ready":
            var = producer.variables.get(edge.variable)
            if var is not None:
                found[edge.variable] = var
    return found


def fill(template: str, values: dict[str, dict[str, Any]]) -> str:
    def one(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        head = inner.split(".", 1)[0].split("[", 1)[0].strip()
        var = values.get(head)
        if var is None:
            raise QuiverError(f"{{{{ {inner} }}}} has no value: run the cell that defines {head}")
        return value_text(var)

    return _PLACEHOLDER.sub(one, template)


def parse_json(text: str) -> Any:
    body = text.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", body, re.DOTALL)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except ValueError:
        raise QuiverError(f"The model's answer is not JSON: {body[:200]!r}") from None


class PromptCells:
    """The runner's hook for prompt cells: ``(runner, cell, provenance, inputs, use_cache)``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self, runner: Runner, cell: CellState, prov: str, consumed: dict[str, str], use_cache: bool
    ) -> CellResult:
        session = runner.session
        result = CellResult(cell.id, prov, "ready", inputs=consumed, execution_method="model")
        config = config_for(self.settings, session)
        if config is None:
            result.status, result.error = "error", f"Prompt cells need a model. {NOT_CONFIGURED}"
            return result
        template, wants_json, schema = template_of(cell.source)
        key = self.cache_key(prov, config, wants_json)
        if use_cache:
            cached = session.result_store.get(key)
            if cached is not None and cached.cell_id == cell.id and cached.status == "ready":
                alive = all(
                    runner.client.status(uri).get("state") in ("ready", "superseded")
                    for uri in cached.artifact_uris.values()
                )
                if alive:
                    return dataclasses.replace(
                        cached, provenance_hash=prov, inputs=consumed, cache_hit=True,
                        execution_method="cached",
                    )  # fmt: skip
        try:
            prompt = fill(template, upstream_values(session, cell))
            system = JSON_SYSTEM + (
                f" The JSON must follow this schema: {schema}" if schema else ""
            )
            messages = [{"role": "user", "content": prompt}]
            provider = Provider(config)
            reply = run_sync(lambda: provider.complete(system if wants_json else SYSTEM, messages))
            name = cell.analysis.annotations.name or DEFAULT_NAME
            if wants_json:
                variable = self.json_variable(runner, cell, prov, name, reply.content)
                result.variables = {name: variable}
            else:
                result.variables = {name: {"kind": "json", "type": "builtins.str",
                                           "value": reply.content}}  # fmt: skip
        except QuiverError as exc:
            result.status, result.error = "error", redact(exc.message, config)
            return result
        result.stdout = f"model {reply.model or config.model}: {reply.input_tokens} tokens in, "
        result.stdout += f"{reply.output_tokens} out\n"
        session.result_store.put(dataclasses.replace(result, provenance_hash=key))
        return result

    @staticmethod
    def cache_key(prov: str, config: AIConfig, wants_json: bool) -> str:
        parts = [prov, config.provider, config.base_url or "", config.model,
                 repr(config.temperature), "json" if wants_json else "text"]  # fmt: skip
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    @staticmethod
    def json_variable(
        runner: Runner, cell: CellState, prov: str, name: str, text: str
    ) -> dict[str, Any]:
        value = parse_json(text)
        records = isinstance(value, list) and value and all(isinstance(r, dict) for r in value)
        if not records:
            return {"kind": "json", "type": f"builtins.{type(value).__name__}", "value": value}
        try:
            table = pa.Table.from_pylist(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise QuiverError(f"The model's records do not form a table: {exc}") from None
        session = runner.session
        meta = {"notebook_id": session.nb.notebook_id, "cell_id": cell.id,
                "cell_provenance": prov, "variable": name}  # fmt: skip
        answer = runner.client.put(table, metadata=meta)
        return {
            "kind": "arrow",
            "format": "pyarrow",
            "type": "pyarrow.lib.Table",
            "artifact_uri": answer.get("artifact_uri"),
            "rows": table.num_rows,
            "bytes": table.nbytes,
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "preview": json.loads(json.dumps(value[:PREVIEW_ROWS], default=str)),
        }
