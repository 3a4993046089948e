"""Running a cell on another Quiver node, over Arrow Flight (its ``cell-*`` actions).

The cell starts there with ``cell-run``; its console comes back by
``cell-poll`` (each call waits briefly for news) as ``cell_console`` frames;
cancel sends ``cell-cancel``, and a time-out is the remote kernel's own (with a
grace period here). Upstream tables are read there by artifact URI from the
node that holds them; the cell's tables stay on the remote node, and the
answer names it as their ``location``, so later reads go there.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from notebooks.execution import KernelDied

POLL_WAIT_S = 0.2
CANCEL_GRACE_S = 10.0
CALL_TIMEOUT_S = 30.0


class FlightBackend:
    """One remote Quiver node."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self._client: Any = None
        self._lock = threading.Lock()

    def _call(self, name: str, body: dict[str, Any]) -> Any:
        import pyarrow.flight as fl

        with self._lock:
            if self._client is None:
                self._client = fl.connect(self.url)
            client = self._client
        headers = [(b"authorization", f"Bearer {self.token}".encode())] if self.token else []
        options = fl.FlightCallOptions(timeout=CALL_TIMEOUT_S, headers=headers)
        results = list(client.do_action(fl.Action(name, json.dumps(body).encode()), options))
        return json.loads(results[0].body.to_pybytes()) if results else None

    def execute(
        self,
        request: dict[str, Any],
        *,
        on_console: Callable[[str, str], None],
        timeout: float | None,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        """Run the cell there; the kernel's answer. Raises :class:`KernelDied` on time-out."""
        origin = request.get("flight") or {}
        inputs = {}
        for name, spec in (request.get("inputs") or {}).items():
            if spec.get("kind") == "arrow" and not spec.get("location"):
                spec = {**spec, "location": origin.get("location")}
            inputs[name] = spec
        body = {k: v for k, v in request.items() if k != "flight"}
        body.update(inputs=inputs, timeout=timeout)
        run_id = self._call("cell-run", body)["run_id"]
        offset = 0
        cancelled_at: float | None = None
        while True:
            got = self._call("cell-poll", {"run_id": run_id, "offset": offset,
                                           "wait_s": POLL_WAIT_S})  # fmt: skip
            for frame in got["console"]:
                on_console(str(frame.get("stream")), str(frame.get("text", "")))
            offset = got["offset"]
            answer = got.get("answer")
            if answer is not None:
                break
            if cancel.is_set() and cancelled_at is None:
                self._call("cell-cancel", {"run_id": run_id})
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                return {"status": "cancelled", "variables": {}, "display": None}
        status = answer.get("status")
        if status == "timeout":
            raise KernelDied(str(answer.get("reason")), timed_out=True)
        if status == "died":
            raise KernelDied(f"on {self.url}: {answer.get('reason')}")
        return answer

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
