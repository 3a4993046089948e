"""Schemathesis hooks for the REST fuzz campaign (loaded by its CLI via SCHEMATHESIS_HOOKS).

- Arrow IPC parts are generated as real Arrow IPC streams (small random tables), so an
  upload the document calls valid is one.
- Path parameters are sometimes swapped for ones that name seeded things (``FUZZ_SEEDS``,
  JSON: a list of parameter sets), so the answers for things that exist (200s, their
  content types, conflicts) are checked too, not only the 404s of random ids.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pyarrow as pa
import schemathesis
from hypothesis import strategies as st

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _ipc(columns: dict[str, list[Any]]) -> bytes:
    sink = pa.BufferOutputStream()
    table = pa.table(columns)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


_ROWS = st.integers(0, 5)
_TABLES = _ROWS.flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "i": st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n),
            "s": st.lists(st.text(max_size=8), min_size=n, max_size=n),
        }
    )
)
schemathesis.openapi.media_type(ARROW_STREAM, _TABLES.map(_ipc))

SEEDS: dict[str, Any] = json.loads(os.environ.get("FUZZ_SEEDS", "{}"))
"""``{"path": [parameter sets], "inputs": [URIs]}``, from ``tests.fuzzing.seed``."""
SKIP = ("/execute",)  # a run starts a kernel: seeded sessions are not run by the fuzzer


def _seeded(case: Any, params: dict[str, Any] | None, inputs: list[str] | None) -> Any:
    if params is None and inputs is None:
        return case
    out = case.derive(keep_auth=True)
    if params is not None:
        out.path_parameters = {**case.path_parameters, **params}
    if inputs is not None:
        out.body = {**case.body, "inputs": inputs}
    return out


@schemathesis.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Positive cases only (a negative one must stay invalid): now and then, the path
    parameters of a seeded thing, and a body's ``inputs`` drawn from seeded URIs."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or meta.phase.name == "stateful":
        return st.just(case)  # a stateful step's parameters come from the step before
    if case.operation.path.endswith(SKIP):
        return st.just(case)
    given = set(case.path_parameters or {})
    fitting = [p for p in SEEDS.get("path", []) if given and set(p) <= given]
    params = st.sampled_from([None, *fitting]) if fitting else st.none()
    inputs: Any = st.none()
    known = SEEDS.get("inputs", [])
    if known and isinstance(case.body, dict) and isinstance(case.body.get("inputs"), list):
        uris = st.lists(st.sampled_from(known), min_size=1, max_size=2)
        inputs = st.one_of(st.none(), uris)
    return st.tuples(params, inputs).map(lambda chosen: _seeded(case, *chosen))


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Drop a multipart case called positive whose ``metadata`` part is not a JSON object:
    the coverage phase sends an empty part there, which the document does not allow."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return True
    media = case.media_type or ""
    return not media.startswith("multipart/") or isinstance(case.body.get("metadata"), dict)


_ALIASES = re.compile(r"^GET /v1/names/(?P<name>[^/]+)/aliases(?:/[^/]+)?$")


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but one by-design answer: a name's aliases outlive its plain
    pointer (docs/registry.md: "Deleting the name leaves its aliases"), so reading them
    after ``DELETE /v1/names/{name}`` is not a use after free."""
    if getattr(failure, "code", None) != "ST301":
        return True
    read = _ALIASES.match(str(getattr(failure, "usage", "")))
    return not (read and getattr(failure, "free", "") == f"DELETE /v1/names/{read['name']}")
