"""The action registry: every DoAction name, its description and its handler.

A handler takes the :class:`Core` and the decoded JSON body and returns a
JSON-able value; the server sends it as the one result of the action. Modules
register their actions with the :func:`action` decorator (``flight.actions``,
``flight.queries``, ``flight.runtime``, ``flight.registry``, ``flight.tables``);
the server imports them all, and a name defined twice stops the import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flight.core import Core
from flight.protocol import encode_json, load_json
from foundation import InvalidArgument

Handler = Callable[[Core, Any], Any]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    description: str
    handler: Handler


ACTIONS: dict[str, ActionSpec] = {}


def action(name: str, description: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise RuntimeError(f"action {name!r} is defined twice")
        ACTIONS[name] = ActionSpec(name, description, handler)
        return handler

    return register


def run_action(core: Core, name: str, raw: bytes) -> bytes:
    """Run the action ``name`` on its raw JSON body; its one result, JSON-encoded.

    What ``DoAction`` does with an action, and what an in-process caller (the
    REST app beside the server, :func:`local_core`) does without the gRPC hop.
    """
    spec = ACTIONS.get(name)
    if spec is None:
        raise InvalidArgument(
            f"unknown action {name!r}; actions: {', '.join(ACTIONS)}",
            detail={"action": name, "actions": list(ACTIONS)},
        )
    body = load_json(raw, f"body of action {name!r}")
    return encode_json(spec.handler(core, body))
