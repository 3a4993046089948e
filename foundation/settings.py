"""The one typed settings object. Built once at the edge and passed in.

Every field reads ``QUIVER_<NAME>`` from the environment (or a ``.env`` file
is *not* read: explicit is better). Nothing else in Quiver reads the
environment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUIVER_", extra="forbid")

    data_dir: Path = Field(
        default=Path("~/.quiver"),
        description="Where the artifact store (store.db, artifacts/) lives.",
    )
    part_storage: str = Field(
        default="",
        description="Where the parts of partitioned artifacts live, reachable by every node: "
        "a directory (/abs/dir or file:///abs/dir) or an S3-compatible bucket "
        "(s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http&region=REGION, also "
        "max_attempts and connect_timeout; credentials from AWS_* variables). Empty means "
        "<data_dir>/parts.",
    )
    node_heartbeat_s: float = Field(
        default=2.0,
        gt=0,
        allow_inf_nan=False,
        description="How often a data node (quiver flight --join) tells its head it is alive; "
        "the head leaves a node out of its FlightInfos after 3 periods without a heartbeat.",
    )
    cache_max_bytes: int = Field(
        default=20 * 1024**3,
        ge=0,
        description="Byte cap of the artifact store: past it, the least-recently-used versions "
        "nothing needs are evicted; a gc called without max_bytes collects down to 80% of it. "
        "0 means no cap.",
    )
    gc_max_idle_days: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Retention of a gc called without max_idle_days: versions nothing needs "
        "(unnamed, not a current cell output, no named version depends on them) unused for "
        "this many days are collected. Unset means no idle limit.",
    )
    gc_min_idle_s: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Retention of a gc called without min_idle_seconds: nothing used (created "
        "or read) within this many seconds is collected.",
    )
    batch_size: int = Field(
        default=122_880, ge=1, description="Rows per record batch produced by executors."
    )
    query_time_limit_s: float = Field(
        default=300.0, gt=0, description="Wall-clock limit of one executor query, in seconds."
    )
    build_threads: int = Field(
        default=4, ge=1, description="Builds that may run at once; more wait in a queue."
    )
    build_queue: int = Field(
        default=32,
        ge=0,
        description="Builds that may wait for a build thread. A materialize that would start "
        "one more is refused with 503 and Retry-After (requests joining a build in flight "
        "never are).",
    )
    duckdb_threads: int = Field(
        default=0, ge=0, description="DuckDB threads per query; 0 means one per core."
    )
    duckdb_memory_limit: str = Field(
        default="", description="DuckDB memory limit per query, e.g. '4GB'; empty means default."
    )
    fsync_derived: bool = Field(
        default=False,
        description="fsync derived artifacts before publishing. Uploads are always fsynced; "
        "a derived artifact that fails its integrity check on open is rebuilt, never served.",
    )
    dask_scheduler: str = Field(
        default="",
        description="A Dask distributed scheduler, e.g. tcp://10.0.0.5:8786: a scan@v1 over "
        "many data files is built as one Dask task per partition, each writing a part to the "
        "part storage (docs/scale-out.md). Empty: every build runs in-process.",
    )
    part_target_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1,
        description="Data-file bytes one Dask-built part aims to read (contiguous files and "
        "row-group ranges of big ones, balanced by bytes); the number of parts is rounded up "
        "to a multiple of the cluster's worker threads as far as the files allow, and a scan "
        "under this size builds in-process.",
    )
    host: str = Field(default="127.0.0.1", description="Address the servers bind to.")
    flight_port: int = Field(default=8815, ge=0, le=65535, description="Flight (gRPC) port.")
    rest_port: int = Field(default=8765, ge=0, le=65535, description="REST (HTTP) port.")
    rest_max_body_bytes: int = Field(
        default=1024**3,
        ge=1,
        description="Largest request body the REST layer accepts (uploads included); "
        "bigger ones are refused with 413.",
    )
    rest_max_request_bytes: int = Field(
        default=16 * 1024**2,
        ge=1,
        description="Largest body of a request that is not an upload (materialize, names, "
        "notebook edits: JSON); bigger ones are refused with 413 before they are read. At "
        "most rest_max_body_bytes.",
    )
    notebook_root: Path = Field(
        default=Path("~/.quiver/notebooks"), description="Root under which notebooks live."
    )
    deployment_mode: Literal["personal", "service"] = Field(
        default="personal",
        description="personal: one user, sessions listable and notebooks deletable over REST; "
        "service: those routes answer 403 and every open makes a new session.",
    )
    notebook_session_idle_s: float = Field(
        default=4 * 3600.0, gt=0, description="Notebook sessions idle this long are closed."
    )
    notebook_max_sessions: int = Field(
        default=50, ge=1, description="Open notebook sessions kept; the oldest idle go first."
    )
    notebook_max_source_chars: int = Field(
        default=1_000_000, ge=1, description="Largest cell source accepted, in characters."
    )
    notebook_cell_lock_s: float = Field(
        default=5.0,
        ge=0,
        allow_inf_nan=False,
        description="After an author edits a cell, another author's edit of it within this "
        "many seconds is refused (cell_locked) unless forced; 0 turns the soft lock off.",
    )
    token: SecretStr | None = Field(
        default=None, description="Bearer token every client must send; unset means no auth."
    )
    tls_cert: Path | None = Field(default=None, description="TLS certificate (PEM) for Flight.")
    tls_key: Path | None = Field(default=None, description="TLS private key (PEM) for Flight.")
    tls_root_certs: Path | None = Field(
        default=None,
        description="CA certificates (PEM) trusted when this process calls a grpc+tls Flight "
        "server (a data node's head, `quiver rest --flight`); unset: tls_cert (a self-signed "
        "server's own certificate), else the system's roots.",
    )
    ipc_compression: Literal["none", "zstd", "lz4"] = Field(
        default="none", description="IPC body compression for DoGet streams."
    )
    flight_max_batch_bytes: int = Field(
        default=2 * 1024**2,
        ge=64 * 1024,
        description="DoGet re-chunks record batches larger than this many bytes, so clients "
        "with gRPC's default 4 MiB message limit never fail.",
    )
    flight_endpoint_bytes: int = Field(
        default=64 * 1024**2,
        ge=1,
        description="A ready artifact larger than this is offered as several FlightInfo "
        "endpoints (ordered ranges of batches) so clients can read them in parallel.",
    )
    allow_remote_without_token: bool = Field(
        default=False,
        description="Allow binding a non-loopback host with no token configured.",
    )
    rest_in_process_flight: bool = Field(
        default=True,
        description="When the REST app runs in the same process as the Flight server "
        "(quiver serve), run its actions and reads of finished artifacts in-process "
        "(same dispatch, same errors) instead of over loopback gRPC. `quiver rest --flight` "
        "always uses gRPC.",
    )
    personal_mode_user_header: str | None = Field(
        default=None,
        description="HTTP header naming the caller (e.g. X-Forwarded-User). When set, a "
        "notebook with an owner is reachable only by requests whose header equals it (404 "
        "otherwise), and new notebooks are owned by their creator. The registry audit records it "
        "as the actor of each change.",
    )
    protected_aliases: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Registry aliases whose changes wait for approval, e.g. prod,champion "
        "(comma-separated or a JSON array). Setting or deleting one answers 202 pending and "
        "changes nothing until POST /v1/registry/pending/approve (docs/registry.md).",
    )
    warehouses: Annotated[dict[str, str], NoDecode] = Field(
        default={},
        description="Warehouses Flight SQL names, as name=location pairs, comma-separated, e.g. "
        "wh=file:///data/warehouse,lake=/data/lake (or a JSON object). Table db.events of "
        "warehouse wh is wh.db.events in SQL (docs/flight-sql.md).",
    )
    shutdown_timeout_s: float = Field(
        default=10.0,
        ge=0,
        description="On SIGTERM/SIGINT, running calls, REST requests and builds may finish for "
        "this many seconds; then open streams end with 'server shutting down', builds are "
        "cancelled, and the process exits.",
    )
    workers: list[dict[str, Any]] = Field(
        default=[],
        description="Server-configured workers every notebook sees (API.md §2.6 WorkerSpec), as "
        'a JSON array, e.g. [{"name": "dask", "backend": "executor", "config": {"transport": '
        '"dask", "url": "tcp://10.0.0.5:8786"}}] (docs/workers.md). Tokens by config.token_env.',
    )
    worker_probe_interval_s: float = Field(
        default=30.0,
        ge=0,
        allow_inf_nan=False,
        description="Seconds between background health probes of the workers notebooks list; "
        "0 probes only on demand (GET workers?refresh=true and before a cell runs).",
    )
    worker_probe_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="Time limit of one worker health probe, in seconds.",
    )
    ai_provider: Literal["openai", "anthropic", "google", "mistral", "local", "custom"] | None = (
        Field(
            default=None,
            description="The AI assistant's provider. Unset: taken from the key's name in the "
            "notebook's environment (OPENAI_API_KEY, ANTHROPIC_API_KEY...), else openai.",
        )
    )
    ai_base_url: str | None = Field(
        default=None,
        description="Base URL of the AI provider's API, e.g. an OpenAI-compatible local "
        "server (http://127.0.0.1:8080/v1). Unset: the provider's public endpoint.",
    )
    ai_api_key: SecretStr | None = Field(
        default=None,
        description="The AI provider's key (never shown in a response, log or notebook.toml). "
        "A notebook's own key in its environment wins.",
    )
    ai_model: str | None = Field(
        default=None, description="The AI model; a notebook's [ai].model wins."
    )
    ai_timeout_s: float = Field(
        default=60.0,
        gt=0,
        allow_inf_nan=False,
        description="Longest wait for the AI provider's answer (or its next streamed token).",
    )
    ai_max_output_tokens: int = Field(
        default=4096, ge=1, description="Most tokens one AI answer may have."
    )
    ai_approval_timeout_s: float = Field(
        default=120.0,
        gt=0,
        allow_inf_nan=False,
        description="How long an agent's destructive step waits for approval; then declined.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level."
    )

    @field_validator("protected_aliases", mode="before")
    @classmethod
    def _alias_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a JSON array, or comma-separated
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list | tuple | set | frozenset):
            stripped = [a.strip() if isinstance(a, str) else a for a in value]
            return [a for a in stripped if a != ""]  # a non-string is refused by the type
        return value

    @field_validator("warehouses", mode="before")
    @classmethod
    def _warehouse_map(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a JSON object, or name=location,...
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            pairs = [p.strip() for p in text.split(",") if p.strip()]
            if any("=" not in p for p in pairs):
                raise ValueError("warehouses are name=location pairs, comma-separated")
            value = dict(p.split("=", 1) for p in pairs)
        if isinstance(value, dict):
            named = {str(k).strip().lower(): v for k, v in value.items()}
            for name in named:
                if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name == "quiver":
                    raise ValueError(
                        f"warehouse name {name!r}: letters, digits and _, and not 'quiver'"
                    )
            return named
        return value

    @field_validator("data_dir", "notebook_root", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def store_dir(self) -> Path:
        return self.data_dir
