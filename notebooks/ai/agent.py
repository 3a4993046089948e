"""The agent: a bounded tool loop over one notebook, in the background.

``POST …/ai/agent`` starts one :class:`AgentJob` per notebook (a second is
refused, 409). It streams the model's answer (``agent_text_delta``), calls the
tools it asks for (``agent_progress`` before and after each), waits for
approval of destructive ones unless ``auto_approve`` (``agent_confirm_request``;
the answer comes back as ``agent_confirm_response``; no answer within the
approval timeout is a decline), and ends after at most :data:`MAX_ITERATIONS`
model turns with ``agent_done``. ``…/ai/agent/reset`` cancels it: the provider
request is closed and the loop stops before its next step.

The loop runs on an event loop of its own in a thread; tools (which may run a
cell for minutes) run in worker threads of that loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from foundation import Conflict, QuiverError
from notebooks.ai.config import AIConfig, redact
from notebooks.ai.context import notebook_context
from notebooks.ai.providers import Provider, Reply
from notebooks.ai.tools import BY_NAME, TOOLS, NotebookTools
from notebooks.session import Session

log = logging.getLogger(__name__)

MAX_ITERATIONS = 10
BUSY = "An agent is already running for this notebook."
AGENT_INTRO = (
    "You are an agent working inside this notebook through tools. Read before you change; "
    "add or edit cells to do what the user asks, run them to check, and finish with a short "
    "report of what you did and what the results were."
)
Emit = Callable[[str, dict[str, Any]], None]


class AgentJob:
    def __init__(
        self,
        session: Session,
        config: AIConfig,
        tools: NotebookTools,
        emit: Emit,
        *,
        auto_approve: bool,
        on_end: Callable[[AgentJob], None],
    ) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.session = session
        self.config = config
        self.tools = tools
        self.emit = emit
        self.auto_approve = auto_approve
        self.on_end = on_end
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._approvals: dict[str, asyncio.Future[bool]] = {}
        self._ready = threading.Event()
        self.totals: dict[str, Any] = {
            "model": config.model, "tokens": {"input": 0, "output": 0},
            "iterations": 0, "tool_calls": [],
        }  # fmt: skip

    # -- control from other threads --------------------------------------------------------

    def start(self, message: str) -> None:
        threading.Thread(target=self._main, args=(message,), name=f"agent-{self.id}").start()
        self._ready.wait(10)

    def cancel(self) -> None:
        self.cancelled.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    def resolve(self, request_id: str, approved: bool) -> bool:
        """Answer a confirm request; whether it was pending."""
        loop = self._loop
        future = self._approvals.get(request_id)
        if loop is None or future is None:
            return False

        def answer() -> None:
            if not future.done():
                future.set_result(approved)

        loop.call_soon_threadsafe(answer)
        return True

    # -- the loop ---------------------------------------------------------------------------

    def _main(self, message: str) -> None:
        try:
            asyncio.run(self._outer(message))
        finally:
            self.done.set()
            self.on_end(self)

    async def _outer(self, message: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        outcome: dict[str, Any]
        try:
            if self.cancelled.is_set():
                raise asyncio.CancelledError
            outcome = await self._run(message)
        except asyncio.CancelledError:
            outcome = {"content": "", "cancelled": True, "error": None}
        except Exception as exc:  # a crash still ends with agent_done
            error = exc.message if isinstance(exc, QuiverError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, QuiverError):
                log.exception("agent %s crashed", self.id)
            outcome = {"content": "", "cancelled": False, "error": redact(error, self.config)}
        self.emit("agent_done", {"job_id": self.id, **self.totals, **outcome})

    async def _run(self, message: str) -> dict[str, Any]:
        provider = Provider(self.config)
        specs = [t.spec() for t in TOOLS]
        messages: list[dict[str, Any]] = [{"role": "user", "content": message}]
        content = ""
        for iteration in range(1, MAX_ITERATIONS + 1):
            self.totals["iterations"] = iteration
            system = AGENT_INTRO + "\n\n" + notebook_context(self.session)
            reply = Reply()
            async for item in provider.stream(system, messages, specs):
                if isinstance(item, Reply):
                    reply = item
                else:
                    self.emit("agent_text_delta", {"job_id": self.id, "text": item})
            self.totals["model"] = reply.model or self.config.model
            self.totals["tokens"]["input"] += reply.input_tokens
            self.totals["tokens"]["output"] += reply.output_tokens
            content = reply.content
            messages.append(
                {"role": "assistant", "content": reply.content, "tool_calls": reply.tool_calls}
            )
            if not reply.tool_calls:
                return {"content": content, "cancelled": False, "error": None}
            for call in reply.tool_calls:
                result = await self._tool(call.name, call.arguments)
                text = json.dumps(result, default=str)
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                                 "content": text[:8_000]})  # fmt: skip
        note = f"Stopped after {MAX_ITERATIONS} iterations."
        return {"content": (content + "\n\n" + note).strip(), "cancelled": False, "error": None}

    async def _tool(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        progress = {"job_id": self.id, "data": {"tool": name, "args": args}}
        self.emit("agent_progress", {"event": "tool_start", "detail": name, **progress})
        started = time.perf_counter()
        tool = BY_NAME.get(name)
        gated = tool is not None and tool.destructive and not self.auto_approve
        if gated and not await self._approved(name, args):
            result: dict[str, Any] = {"error": "The user declined this action."}
            self._record(name, args, result, started)
            return result
        result = await asyncio.to_thread(self.tools.call, self.session, name, args)
        self._record(name, args, result, started)
        done = {**progress, "data": {"tool": name, "args": args, "result": result}}
        self.emit("agent_progress", {"event": "tool_done", "detail": name, **done})
        return result

    def _record(self, name: str, args: dict[str, Any], result: Any, started: float) -> None:
        ms = round((time.perf_counter() - started) * 1000, 1)
        self.totals["tool_calls"].append(
            {"tool": name, "args": args, "result": result, "duration_ms": ms}
        )

    async def _approved(self, name: str, args: dict[str, Any]) -> bool:
        request_id = uuid.uuid4().hex[:12]
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._approvals[request_id] = future
        self.emit("agent_confirm_request", {"request_id": request_id, "tool": name,
                                            "args": args, "job_id": self.id})  # fmt: skip
        try:
            return await asyncio.wait_for(future, self.config.approval_timeout_s)
        except TimeoutError:
            return False
        finally:
            self._approvals.pop(request_id, None)


class Agents:
    """At most one running agent per notebook session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, AgentJob] = {}

    def start(
        self,
        session: Session,
        config: AIConfig,
        tools: NotebookTools,
        emit: Emit,
        message: str,
        *,
        auto_approve: bool,
    ) -> AgentJob:
        with self._lock:
            if session.id in self._jobs:
                raise Conflict(BUSY)
            job = AgentJob(session, config, tools, emit, auto_approve=auto_approve,
                           on_end=self._ended)  # fmt: skip
            self._jobs[session.id] = job
        job.start(message)
        return job

    def _ended(self, job: AgentJob) -> None:
        with self._lock:
            if self._jobs.get(job.session.id) is job:
                del self._jobs[job.session.id]

    def get(self, session_id: str) -> AgentJob | None:
        with self._lock:
            return self._jobs.get(session_id)

    def reset(self, session_id: str, wait_s: float = 10.0) -> None:
        """Cancel the session's agent and wait (bounded) for it to end."""
        job = self.get(session_id)
        if job is not None:
            job.cancel()
            job.done.wait(wait_s)

    def close(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.done.wait(10)
