"""Worker definitions (API.md §2.6 ``WorkerSpec``) and which transport each one uses.

A worker is ``local`` (the session's kernel) or an ``executor`` whose
``config.transport`` picks the engine. Quiver runs two: ``dask`` (a task on a
Dask ``distributed`` cluster) and ``flight`` (another Quiver server, by a Flight
action). Strata's own transports (``direct``, ``signed``, ``manifest``,
``build``) are accepted and listed, so a Strata notebook opens unchanged, but a
cell cannot run on them here. Secrets never live in ``notebook.toml``: a
worker names the environment variable that holds its token (``token_env``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
RUNNABLE = ("dask", "flight")
"""Transports Quiver runs cells on."""
STRATA_ONLY = ("direct", "signed", "manifest", "build")
"""Strata's transports: accepted and listed, not run."""
TRANSPORTS = (*RUNNABLE, *STRATA_ONLY)
LOCAL = "local"

_NAME = re.compile(NAME_PATTERN)


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str | None = Field(default=None, max_length=2000)
    transport: str | None = Field(
        default=None, max_length=32, json_schema_extra=lambda s: _enum(s, [*TRANSPORTS, ""])
    )
    strata_url: str | None = Field(default=None, max_length=2000)
    token_env: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token: str | None = Field(default=None, max_length=10_000)

    @field_validator("transport", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if value and value not in TRANSPORTS:
            raise ValueError(f"unknown transport {value!r}; accepted: {', '.join(TRANSPORTS)}")
        return value or None


def _enum(schema: dict[str, Any], values: list[str]) -> None:
    schema.clear()
    schema.update(
        anyOf=[{"enum": values}, {"type": "null"}],
        description=f"One of {', '.join(TRANSPORTS)} (any case); blank means unset.",
    )


def _never(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(type="null", description="Never: name the variable that holds it in token_env.")


class NotebookWorkerConfig(WorkerConfig):
    """A worker's config as a notebook may hold it: no secret."""

    token: str | None = Field(default=None, json_schema_extra=_never)

    @field_validator("token")
    @classmethod
    def _no_token(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "a token is never written to notebook.toml; put it in an environment "
                "variable of the server and name that variable in config.token_env"
            )
        return None


class WorkerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    backend: Literal["local", "executor"] = "local"
    runtime_id: str | None = Field(default=None, max_length=200)
    config: WorkerConfig = Field(default_factory=WorkerConfig)

    @property
    def transport(self) -> str:
        """The engine this worker runs on (``local`` for the built-in kind)."""
        return transport_of(self)

    def dump(self) -> dict[str, Any]:
        """The spec as stored and shown (empty fields left out: TOML has no null)."""
        out: dict[str, Any] = {"name": self.name, "backend": self.backend}
        if self.runtime_id is not None:
            out["runtime_id"] = self.runtime_id
        config = _no_nulls(self.config.model_dump(exclude_none=True))
        if config:
            out["config"] = config
        return out


class NotebookWorkerSpec(WorkerSpec):
    """A worker spec a user writes into ``notebook.toml`` (``PUT …/workers``)."""

    config: NotebookWorkerConfig = Field(default_factory=NotebookWorkerConfig)


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value if v is not None]
    return value


def transport_of(spec: WorkerSpec) -> str:
    """``config.transport`` when given, else what the URL's scheme says (Strata's default for
    an executor is ``direct``, an HTTP service)."""
    if spec.backend == "local":
        return LOCAL
    given = (spec.config.transport or "").strip().lower()
    if given:
        return given
    url = (spec.config.url or "").strip().lower()
    if url.startswith("tcp://"):
        return "dask"
    if url.startswith(("grpc://", "grpc+tcp://", "grpc+tls://")):
        return "flight"
    return "direct"


def parse_specs(raw: Any, source: str) -> tuple[list[WorkerSpec], list[str]]:
    """Specs from ``notebook.toml`` or settings, tolerant: an invalid entry is skipped with a
    message (a notebook opens whatever its ``[[workers]]`` hold)."""
    specs: list[WorkerSpec] = []
    problems: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            specs.append(WorkerSpec.model_validate(_plain(item)))
        except ValidationError as exc:
            first = exc.errors()[0]
            problems.append(f"{source} worker {_plain(item)!r:.80}: {first.get('msg')}")
    return specs, problems


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name)) and len(name) <= 200


def _plain(value: Any) -> Any:
    """tomlkit containers as plain dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
