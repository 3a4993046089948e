"""Fixtures for Flight tests: in-process servers on ephemeral ports, a demo warehouse,
and a test executor whose batches are released by a gate (for stream followers)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from pydantic import BaseModel

from catalog import TableRef, write_demo_warehouse
from executors import ResolvedInput, RunContext, load_registry
from flight import Core, QuiverFlightServer
from foundation import Settings

DEMO_ROWS = 20_000
GATES: dict[str, threading.Event] = {}
GATED_SCHEMA = pa.schema([("i", pa.int64()), ("b", pa.int64())])


class GatedParams(BaseModel):
    key: str
    batches: int = 4
    rows: int = 1000
    fail_at: int | None = None


class GatedExecutor:
    """``gated@v1``: yields its first batch at once, the rest once ``GATES[key]`` is set."""

    name: ClassVar[str] = "gated@v1"
    params_model: ClassVar[type[BaseModel]] = GatedParams
    ordered_inputs: ClassVar[bool] = False
    description: ClassVar[str] = "test executor: batches released by a gate"

    def check_inputs(self, input_uris: Sequence[str]) -> None:
        return None

    def identity(self, params: BaseModel) -> Any:
        return params.model_dump()

    def run(
        self, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> pa.RecordBatchReader:
        assert isinstance(params, GatedParams)
        gate = GATES.setdefault(params.key, threading.Event())
        cancelled = threading.Event()

        def cancel() -> None:
            cancelled.set()
            gate.set()

        ctx.on_cancel(cancel)
        rows = params.rows

        def batches() -> Iterator[pa.RecordBatch]:
            for b in range(params.batches):
                if b == 1:
                    gate.wait(60)
                if cancelled.is_set():
                    raise RuntimeError("cancelled")
                if params.fail_at == b:
                    raise RuntimeError(f"boom at batch {b}")
                ids = pa.array(range(b * rows, (b + 1) * rows), pa.int64())
                yield pa.record_batch([ids, pa.array([b] * rows, pa.int64())], GATED_SCHEMA)

        return pa.RecordBatchReader.from_batches(GATED_SCHEMA, batches())


def gated_request(key: str, **params: Any) -> dict[str, Any]:
    return {"inputs": [], "transform": {"executor": "gated@v1", "params": {"key": key, **params}}}


def act(
    client: fl.FlightClient,
    name: str,
    body: Any = None,
    options: fl.FlightCallOptions | None = None,
) -> Any:
    """Run a DoAction with a JSON body using only pyarrow.flight; decode the JSON answer."""
    raw = json.dumps(body if body is not None else {}).encode()
    results = list(client.do_action(fl.Action(name, raw), options or fl.FlightCallOptions()))
    assert len(results) == 1
    return json.loads(results[0].body.to_pybytes())


def cmd(body: dict[str, Any]) -> fl.FlightDescriptor:
    return fl.FlightDescriptor.for_command(json.dumps(body))


@pytest.fixture(scope="session")
def demo_table(tmp_path_factory: pytest.TempPathFactory) -> TableRef:
    return write_demo_warehouse(tmp_path_factory.mktemp("warehouse"), rows=DEMO_ROWS, files=4)


ServerFactory = Callable[..., QuiverFlightServer]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key (PEM files)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def make_flight_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """``make_flight_server(**settings)``: a started in-process server on an ephemeral port."""
    servers: list[QuiverFlightServer] = []

    def make(**overrides: Any) -> QuiverFlightServer:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "notebook_root": tmp_path / "notebooks",
            "flight_port": 0,
            "host": "127.0.0.1",
        }
        values.update(overrides)
        core = Core.open(Settings(**values), registry=load_registry([GatedExecutor()]))
        server = QuiverFlightServer(core)
        servers.append(server)
        return server

    yield make
    for key in list(GATES):
        GATES[key].set()
    GATES.clear()  # the next test's gates start closed
    for server in servers:
        server.close(cancel_builds=True)


@pytest.fixture
def flight_server(make_flight_server: ServerFactory) -> QuiverFlightServer:
    return make_flight_server()


@pytest.fixture
def flight_client(flight_server: QuiverFlightServer) -> Iterator[fl.FlightClient]:
    c = fl.connect(flight_server.location)
    yield c
    c.close()
