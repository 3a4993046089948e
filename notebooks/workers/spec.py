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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    transport: str | None = Field(default=None, max_length=32)
    strata_url: str | None = Field(default=None, max_length=2000)
    token_env: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token: str | None = Field(default=None, max_length=10_000)


class WorkerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    backend: Literal["local", "executor"] = "local"
    runtime_id: str | None = Field(default=None, max_length=200)
    config: WorkerConfig = Field(default_factory=WorkerConfig)

    @model_validator(mode="after")
    def _transport(self) -> WorkerSpec:
        transport = self.config.transport
        if transport is not None and transport.strip().lower() not in TRANSPORTS:
            raise ValueError(
                f"unknown transport {transport!r} for worker {self.name!r}; "
                f"accepted: {', '.join(TRANSPORTS)}"
            )
        if self.name == LOCAL and self.backend != "local":
            raise ValueError("the name 'local' is the built-in worker's")
        return self

    @property
    def transport(self) -> str:
        """The engine this worker runs on (``local`` for the built-in kind)."""
        return transport_of(self)

    def dump(self) -> dict[str, Any]:
        """The spec as stored and shown (empty fields left out)."""
        out: dict[str, Any] = {"name": self.name, "backend": self.backend}
        if self.runtime_id is not None:
            out["runtime_id"] = self.runtime_id
        config = self.config.model_dump(exclude_none=True)
        if config:
            out["config"] = config
        return out


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


def check_for_notebook(spec: WorkerSpec) -> WorkerSpec:
    """A spec a user writes into ``notebook.toml``: the token only by ``token_env``."""
    if spec.config.token is not None:
        raise ValueError(
            f"worker {spec.name!r}: a token is never written to notebook.toml; put it in an "
            "environment variable of the server and name that variable in config.token_env"
        )
    return spec


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
