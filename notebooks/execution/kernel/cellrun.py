"""Running one cell in a kernel: its inputs in, its code, its outputs and display out.

The worker (``worker.py``) imports it, a Dask task runs its source (``workers/on_dask.py``):
so it imports nothing of Quiver's, not even its neighbours; only the standard library,
plus pyarrow / polars / pandas / cloudpickle when the environment has them.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import os
import sys
import time
import traceback
from typing import Any, Protocol

PREVIEW_ROWS = 20
JSON_LIMIT = 1_000_000


class Sender(Protocol):
    """Where frames go: the worker's socket channel, or a Dask queue."""

    def send(self, message: dict[str, Any]) -> None: ...


class ConsoleStream(io.TextIOBase):
    """sys.stdout / sys.stderr replacement: every write becomes a console frame."""

    def __init__(self, channel: Sender, stream: str) -> None:
        self.channel = channel
        self.stream = stream
        self.request_id: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text and self.request_id is not None:
            self.channel.send(
                {"op": "console", "id": self.request_id, "stream": self.stream, "text": text}
            )
        return len(text)

    def flush(self) -> None:
        pass


# --- values --------------------------------------------------------------------


def _table_kind(value: Any) -> str | None:
    module = type(value).__module__.split(".")[0]
    name = type(value).__name__
    if module == "pyarrow" and name in ("Table", "RecordBatch"):
        return "pyarrow"
    if module == "polars" and name in ("DataFrame", "LazyFrame"):
        return "polars"
    if module == "pandas" and name == "DataFrame":
        return "pandas"
    return None


def to_arrow(value: Any) -> Any:
    import pyarrow as pa

    kind = _table_kind(value)
    if kind == "pyarrow":
        return pa.Table.from_batches([value]) if isinstance(value, pa.RecordBatch) else value
    if kind == "polars":
        if type(value).__name__ == "LazyFrame":
            value = value.collect()
        return value.to_arrow()
    if kind == "pandas":
        return pa.Table.from_pandas(value, preserve_index=False)
    raise TypeError(f"not a table: {type(value).__name__}")


def from_arrow(table: Any, fmt: str) -> Any:
    if fmt == "polars":
        import polars as pl

        return pl.from_arrow(table)
    if fmt == "pandas":
        return table.to_pandas()
    return table


def _preview(table: Any) -> list[dict[str, Any]]:
    head = table.slice(0, PREVIEW_ROWS)
    try:
        rows = head.to_pylist()
    except Exception:
        return []
    return json.loads(json.dumps(rows, default=str))


def _json_value(value: Any) -> tuple[bool, Any]:
    if value is None or isinstance(value, bool | int | float | str):
        return True, value
    if isinstance(value, list | tuple | dict):
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return False, None
        if len(text) <= JSON_LIMIT:
            return True, json.loads(text)
    return False, None


def _pickle(value: Any) -> bytes | None:
    import pickle

    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    try:
        import cloudpickle
    except ImportError:
        return None
    try:
        return cloudpickle.dumps(value)
    except Exception:
        return None


class Flight:
    """Uploads and downloads tables with plain pyarrow.flight."""

    def __init__(self, location: str, token: str | None) -> None:
        import pyarrow.flight as fl

        self.fl = fl
        self.client = fl.connect(location)
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self.options = fl.FlightCallOptions(headers=headers)

    def put(self, table: Any, metadata: dict[str, Any]) -> dict[str, Any]:
        command = json.dumps({"metadata": metadata}).encode()
        descriptor = self.fl.FlightDescriptor.for_command(command)
        writer, answers = self.client.do_put(descriptor, table.schema, self.options)
        with writer:
            writer.write_table(table, max_chunksize=65_536)
            writer.done_writing()
            buf = answers.read()
        return json.loads(buf.to_pybytes()) if buf is not None else {}

    def get(self, uri: str) -> Any:
        reader = self.client.do_get(self.fl.Ticket(uri.encode()), self.options)
        return reader.read_all()


def _display(value: Any, store: Any = None) -> dict[str, Any] | None:
    """How a cell's trailing value is shown; ``store(table)`` keeps a table display as an
    artifact (so a viewer can page through all of it) and answers its URI."""
    if value is None:
        return None
    kind = _table_kind(value)
    if kind is not None:
        table = to_arrow(value)
        return {
            "mime": "application/vnd.quiver.table+json",
            "data": {
                "columns": table.column_names,
                "rows": _preview(table),
                "row_count": table.num_rows,
                "artifact_uri": store(value, table) if store is not None else None,
            },
        }
    module = type(value).__module__.split(".")[0]
    if module == "matplotlib" and hasattr(value, "savefig"):
        buf = io.BytesIO()
        value.savefig(buf, format="png", bbox_inches="tight")
        return {"mime": "image/png", "data": base64.b64encode(buf.getvalue()).decode()}
    if module == "PIL" and hasattr(value, "save"):
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return {"mime": "image/png", "data": base64.b64encode(buf.getvalue()).decode()}
    for method, mime in (("_repr_markdown_", "text/markdown"), ("_repr_html_", "text/html")):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                text = fn()
            except Exception:
                text = None
            if isinstance(text, str):
                return {"mime": mime, "data": text}
    return {"mime": "text/plain", "data": repr(value)}


# --- execution -------------------------------------------------------------------


class Kernel:
    def __init__(self, channel: Sender) -> None:
        self.channel = channel
        self.values: dict[str, tuple[str, Any]] = {}
        self.flight: Flight | None = None
        self.flight_key: tuple[str, str | None] | None = None
        self.stdout = ConsoleStream(channel, "stdout")
        self.stderr = ConsoleStream(channel, "stderr")
        self.running = False

    def _flight(self, spec: dict[str, Any] | None) -> Flight:
        if not spec:
            raise RuntimeError("no Flight server was given to exchange tables")
        key = (spec["location"], spec.get("token"))
        if self.flight is None or self.flight_key != key:
            self.flight = Flight(spec["location"], spec.get("token"))
            self.flight_key = key
        return self.flight

    def load(self, name: str, spec: dict[str, Any], flight: dict[str, Any] | None) -> Any:
        """The value of input ``name``: the one held under the same token, else loaded."""
        token = spec.get("token", "")
        held = self.values.get(name)
        if held is not None and held[0] == token:
            return held[1]
        kind = spec["kind"]
        if kind == "memory":
            raise RuntimeError(
                f"upstream value {name!r} is no longer in this kernel; run its cell again"
            )
        if kind == "json":
            value = spec["value"]
        elif kind == "pickle":
            import pickle

            value = pickle.loads(base64.b64decode(spec["data"]))
        elif kind == "arrow":
            if spec.get("location"):  # the table is kept by another node
                flight = {"location": spec["location"], "token": (flight or {}).get("token")}
            value = from_arrow(self._flight(flight).get(spec["uri"]), spec.get("format", ""))
        else:
            raise RuntimeError(f"unknown input kind {kind!r} for {name!r}")
        self.values[name] = (token, value)
        return value

    def _export(self, name: str, value: Any, request: dict[str, Any]) -> dict[str, Any]:
        token = request.get("token", "")
        self.values[name] = (token, value)
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        kind = _table_kind(value)
        if kind is not None:
            table = to_arrow(value)
            meta = {**request.get("put_metadata", {}), "variable": name}
            answer = self._flight(request.get("flight")).put(table, meta)
            return {
                "kind": "arrow",
                "format": kind,
                "type": type_name,
                "artifact_uri": answer.get("artifact_uri"),
                "rows": table.num_rows,
                "bytes": table.nbytes,
                "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
                "preview": _preview(table),
            }
        ok, plain = _json_value(value)
        if ok:
            return {"kind": "json", "type": type_name, "value": plain}
        blob = _pickle(value)
        if blob is not None:
            return {
                "kind": "pickle",
                "type": type_name,
                "data": base64.b64encode(blob).decode(),
                "repr": repr(value)[:200],
            }
        return {
            "kind": "memory",
            "type": type_name,
            "repr": repr(value)[:200],
            "note": f"{type_name} cannot be serialised; it lives only in this kernel "
            "and will not survive a restart",
        }

    def _display_store(
        self, namespace: dict[str, Any], variables: dict[str, Any], request: dict[str, Any]
    ) -> Any:
        """Keeps a displayed table as an artifact: the one of the variable that holds that
        very object, else a new upload."""

        def store(value: Any, table: Any) -> str | None:
            for name, var in variables.items():
                if namespace.get(name) is value and var.get("artifact_uri"):
                    return var["artifact_uri"]
            if not request.get("flight"):  # nowhere to keep it: the preview only
                return None
            meta = {**request.get("put_metadata", {}), "variable": "__display__"}
            return self._flight(request.get("flight")).put(table, meta).get("artifact_uri")

        return store

    def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        rid = request["id"]
        started = time.perf_counter()
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        filename = f"<cell {request.get('cell_id', '?')}>"
        display = None
        self.stdout.request_id = self.stderr.request_id = rid
        sys.stdout, sys.stderr = self.stdout, self.stderr
        self.running = True
        saved_env = _set_env(request.get("env") or {})
        try:
            for name, spec in request.get("inputs", {}).items():
                namespace[name] = self.load(name, spec, request.get("flight"))
            if request.get("mounts"):
                namespace.update(_mounts(request["mount_helper"], request["mounts"]))
            tree = ast.parse(request["source"], filename=filename)
            tail = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                tail = ast.Expression(tree.body.pop().value)
            exec(compile(tree, filename, "exec"), namespace)
            value = None
            if tail is not None:
                value = eval(compile(tail, filename, "eval"), namespace)
            variables = {}
            for name in request.get("exports", []):
                if name in namespace:
                    variables[name] = self._export(name, namespace[name], request)
            if value is not None:
                display = _display(value, self._display_store(namespace, variables, request))
            status, error = "ok", None
        except KeyboardInterrupt:
            status, error, variables = "cancelled", None, {}
        except BaseException as exc:
            status, variables = "error", {}
            error = {
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "traceback": _user_traceback(exc, filename),
            }
        finally:
            self.running = False
            _restore_env(saved_env)
            sys.stdout.flush()
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            self.stdout.request_id = self.stderr.request_id = None
        return {
            "op": "result",
            "id": rid,
            "status": status,
            "variables": variables,
            "display": display,
            "error": error,
            "duration_ms": int((time.perf_counter() - started) * 1000),
        }


_MOUNT_HELPERS: dict[str, Any] = {}


def _mounts(helper: str, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """The cell's mount variables, made by the server's mount helper (loaded by path once)."""
    module = _MOUNT_HELPERS.get(helper)
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("quiver_mountpath", helper)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        _MOUNT_HELPERS[helper] = module
    return module.make_mounts(specs)


def _set_env(variables: dict[str, str]) -> dict[str, str | None]:
    """Set a cell's environment variables for its run; what they were before."""
    saved: dict[str, str | None] = {}
    for key, value in variables.items():
        saved[key] = os.environ.get(key)
        os.environ[key] = value
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _user_traceback(exc: BaseException, filename: str) -> str:
    """The traceback from the first frame of the user's cell on (worker frames trimmed)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for i, frame in enumerate(frames):
        if frame.filename == filename:
            frames = frames[i:]
            break
    else:
        frames = traceback.StackSummary()
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)
