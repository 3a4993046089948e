"""The ``quiver`` command: ``serve``, ``flight``, ``rest``, ``demo`` and ``materialize``.

Flags override the ``QUIVER_*`` settings; settings are built once here and
passed down. The server commands are in :mod:`quiver.serve`; ``demo`` and
``materialize`` are here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from foundation import InvalidArgument, QuiverError, Settings
from quiver import serve as servers

_SETTING_FLAGS = ("data_dir", "host", "flight_port", "rest_port", "notebook_root", "token")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k) for k in _SETTING_FLAGS if getattr(args, k, None) is not None}
    if getattr(args, "warehouse", None):  # repeated --warehouse name=location
        overrides["warehouses"] = ",".join(args.warehouse)
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # a bad flag or QUIVER_* value: say which, no traceback
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise InvalidArgument(f"bad setting: {problems}") from None


# --- demo ---------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from catalog import write_demo_warehouse

    settings = settings_from(args)
    path = Path(args.path) if args.path else settings.data_dir / "demo-warehouse"
    if (path / "catalog.db").exists():
        raise InvalidArgument(f"{path} already holds a warehouse; pass --path for a new one")
    ref = write_demo_warehouse(path, rows=args.rows, files=args.files)
    flight_uri = f"grpc://{settings.host}:{settings.flight_port}"
    request = {"inputs": [ref.uri], "transform": {"executor": "scan@v1", "params": {}}}
    print(f"table: {ref.uri}  ({args.rows} rows in {args.files} files)")
    print("\nstart the server:\n  quiver serve")
    print("\nmaterialize and save a result:")
    print(f"  quiver materialize '{ref.uri}' --columns id value --filter 'value > 100' "
          "--out events.parquet")  # fmt: skip
    print("\nor with plain pyarrow:")
    print("  import json, pyarrow.flight as fl")
    print(f"  client = fl.connect({flight_uri!r})")
    print(f"  command = {json.dumps(request)!r}")
    print("  info = client.get_flight_info(fl.FlightDescriptor.for_command(command))")
    print("  table = client.do_get(info.endpoints[0].ticket).read_all()")
    return 0


# --- materialize ----------------------------------------------------------------
_FILTER = re.compile(
    r"^\s*(?P<column>[A-Za-z_][\w$]*)\s*"
    r"(?P<op>is\s+not\s+null|is\s+null|in|==|!=|<>|<=|>=|=|<|>)\s*(?P<value>.*?)\s*$",
    re.IGNORECASE,
)
_OPS = {"==": "=", "<>": "!=", "is null": "is_null", "is not null": "not_null"}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip("'\"")


def parse_filter(text: str) -> dict[str, Any]:
    """``"value > 100"`` → ``{"column": "value", "op": ">", "value": 100}``."""
    m = _FILTER.match(text)
    if not m:
        raise InvalidArgument(f"cannot read filter {text!r}; write it like 'value > 100'")
    op = " ".join(m["op"].lower().split())
    op = _OPS.get(op, op)
    out: dict[str, Any] = {"column": m["column"], "op": op}
    raw = m["value"]
    if op in ("is_null", "not_null"):
        if raw:
            raise InvalidArgument(f"filter {text!r}: nothing may follow {m['op']!r}")
        return out
    if not raw:
        raise InvalidArgument(f"filter {text!r} has no value")
    if op == "in":
        value = _value(raw) if raw.startswith("[") else [_value(v.strip()) for v in raw.split(",")]
        out["value"] = value if isinstance(value, list) else [value]
    else:
        out["value"] = _value(raw)
    return out


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    if args.sql:
        if args.columns or args.filter:
            raise InvalidArgument("--sql cannot be combined with --columns or --filter")
        transform = {"executor": "sql@v1", "params": {"sql": args.sql}}
    else:
        params: dict[str, Any] = {}
        if args.columns:
            params["columns"] = args.columns
        if args.filter:
            params["filters"] = [parse_filter(f) for f in args.filter]
        transform = {"executor": "scan@v1", "params": params}
    request: dict[str, Any] = {"inputs": [args.table_uri], "transform": transform}
    if args.name:
        request["name"] = args.name
    return request


class _Sink:
    """Where the batches go: a file by its suffix, or a short preview on stdout."""

    def __init__(self, out: str | None, schema: pa.Schema) -> None:
        self.preview: list[pa.RecordBatch] = []
        self._writer: Any = None
        if out is None:
            return
        suffix = Path(out).suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(out, schema)
        elif suffix in (".arrow", ".feather", ".ipc"):
            self._writer = pa.ipc.new_file(out, schema)
        elif suffix == ".csv":
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(out, schema)
        else:
            raise InvalidArgument(f"--out must end in .parquet, .arrow or .csv, not {suffix!r}")

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is not None:
            self._writer.write_batch(batch)
        elif sum(b.num_rows for b in self.preview) < 10:
            self.preview.append(batch.slice(0, 10))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _progress(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    if not sys.stderr.isatty():
        yield from reader
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.fields[rows]:,} rows, {task.fields[mb]:.1f} MB"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("reading", rows=0, mb=0.0)
        rows = size = 0
        for batch in reader:
            rows, size = rows + batch.num_rows, size + batch.nbytes
            progress.update(task, rows=rows, mb=size / 1e6)
            yield batch


def _materialize(args: argparse.Namespace) -> int:
    request = build_request(args)
    settings = settings_from(args)
    with contextlib.ExitStack() as stack:
        if args.embedded:
            from flight import Core
            from materialize import MaterializeRequest

            core = Core.open(settings)
            stack.callback(core.close)
            result = core.materializer.materialize(MaterializeRequest.model_validate(request))
            answer = {"artifact_uri": result.artifact_uri, "hit": result.hit}
            reader = core.materializer.open(result)
        else:
            from flight import QuiverClient

            location = args.flight or f"grpc://{settings.host}:{settings.flight_port}"
            token = settings.token.get_secret_value() if settings.token else None
            client = stack.enter_context(QuiverClient(location, token=token))
            answer = client.action("materialize", request)
            reader = client.stream(answer)
        sink = _Sink(args.out, reader.schema)
        rows = size = 0
        try:
            for batch in _progress(reader):
                sink.write(batch)
                rows, size = rows + batch.num_rows, size + batch.nbytes
        finally:
            sink.close()
    hit = "hit" if answer["hit"] else "built"
    print(f"{answer['artifact_uri']}  ({hit}, {rows:,} rows, {size / 1e6:.1f} MB)")
    if args.out:
        print(f"wrote {args.out}")
    elif sink.preview:
        print(pa.Table.from_batches(sink.preview).slice(0, 10))
    return 0


def _flight(args: argparse.Namespace) -> int:
    if args.join:
        return servers.data_node(settings_from(args), args.join, args.advertise)
    if args.advertise:
        raise InvalidArgument("--advertise is for a data node (with --join)")
    return servers.serve(settings_from(args), rest=False)


# --- the parser -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quiver", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", dest="data_dir", help="data directory (QUIVER_DATA_DIR)")
    common.add_argument("--host", help="address to bind or reach (QUIVER_HOST)")
    common.add_argument("--flight-port", dest="flight_port", type=int, help="0 picks a free port")
    common.add_argument("--token", help="bearer token (QUIVER_TOKEN)")
    common.add_argument(
        "--warehouse",
        action="append",
        help="name=location of a warehouse Flight SQL names (repeatable; QUIVER_WAREHOUSES)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="Flight server and REST app")
    serve.add_argument("--rest-port", dest="rest_port", type=int, help="0 picks a free port")
    serve.add_argument("--notebook-root", dest="notebook_root")
    serve.set_defaults(func=lambda a: servers.serve(settings_from(a), rest=True))
    fl_ = sub.add_parser("flight", parents=[common], help="only the Flight server")
    fl_.add_argument(
        "--join", help="run a data node of the head at this location (grpc://head:port)"
    )
    fl_.add_argument("--advertise", help="the location the head gives clients for this node")
    fl_.set_defaults(func=_flight)
    rest = sub.add_parser("rest", parents=[common], help="only the REST app, over a Flight server")
    rest.add_argument("--flight", help="Flight server (default grpc://<host>:<flight-port>)")
    rest.add_argument("--rest-port", dest="rest_port", type=int, help="0 picks a free port")
    rest.add_argument("--notebook-root", dest="notebook_root")
    rest.set_defaults(func=lambda a: servers.rest_only(settings_from(a), a.flight))

    demo = sub.add_parser("demo", parents=[common], help="write a demo warehouse")
    demo.add_argument("--rows", type=int, default=100_000)
    demo.add_argument("--files", type=int, default=4)
    demo.add_argument("--path", help="warehouse directory (default: <data-dir>/demo-warehouse)")
    demo.set_defaults(func=_demo)

    mat = sub.add_parser("materialize", parents=[common], help="materialize a table and read it")
    mat.add_argument("table_uri")
    mat.add_argument("--columns", nargs="+")
    mat.add_argument("--filter", action="append", help="e.g. 'value > 100' (repeatable)")
    mat.add_argument("--sql", help="DuckDB SQL over the table, bound as input0")
    mat.add_argument("--name", help="point this name at the result")
    mat.add_argument("--out", help="file.parquet, file.arrow or file.csv")
    mat.add_argument("--flight", help="server location (default grpc://<host>:<flight-port>)")
    mat.add_argument("--embedded", action="store_true", help="run in this process, no server")
    mat.set_defaults(func=_materialize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except QuiverError as exc:
        print(f"quiver: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`quiver demo | head`): that is not an error.
        # Point stdout at /dev/null so the interpreter's final flush is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def run() -> None:
    """The ``quiver`` command: :func:`main`, then exit even past a build that never stops."""
    from materialize import leave

    sys.exit(leave(main()))


if __name__ == "__main__":
    run()
