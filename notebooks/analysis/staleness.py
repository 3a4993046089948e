"""Cell staleness as a pure function of the DAG, sources, environment and last runs.

A cell's *provenance hash* is sha256 over its source hash, the environment
hash, the provenance hashes of its upstream cells and the worker it runs on
(when one is named), so it changes exactly
when something the cell's result depends on changed. Statuses:

- ``ready`` — markdown always; otherwise the cell ran, succeeded, and
  nothing it depends on changed since;
- ``idle`` — never ran (no run record);
- ``error`` — its last run failed and nothing changed since;
- ``stale`` — it ran, and since then at least one reason holds:
  ``self`` (its source changed), ``env`` (the environment changed) or
  ``upstream`` (an upstream cell changed, is not ready, or the set of
  upstream cells changed, or a mount's contents changed). Each reason comes
  with causality details naming the cell, the package or the mount.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["idle", "ready", "error", "stale", "running"]

NO_PROVENANCE = frozenset({"markdown"})


@dataclass(frozen=True)
class RunRecord:
    """What a cell's last run left behind (written by the executor, issue 6)."""

    source_hash: str
    env_hash: str
    provenance_hash: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Upstream cell id -> the provenance hash of the value this run consumed."""
    status: Literal["ready", "error"] = "ready"


@dataclass(frozen=True)
class Env:
    hash: str
    packages: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CellFacts:
    language: str
    source_hash: str
    name: str | None = None
    worker: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    """Environment variables the cell runs with (see :func:`provenance`)."""
    mounts: Mapping[str, str] = field(default_factory=dict)
    """Mount name -> fingerprint; ``rw`` for a writable mount (never cached: ``idle``)."""


@dataclass(frozen=True)
class Staleness:
    status: Status
    provenance_hash: str
    reasons: tuple[str, ...] = ()
    details: tuple[dict[str, Any], ...] = ()

    def causality(self) -> dict[str, Any] | None:
        if not self.reasons:
            return None
        return {"reason": self.reasons[0], "details": list(self.details)}


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def provenance(
    source_h: str,
    env_h: str,
    inputs: Mapping[str, str],
    worker: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> str:
    """A cell run's identity: source, environment, worker, environment variables, inputs.

    ``variables`` are the environment variables the run sets (notebook ``[env]``
    merged with the cell's ``env``): code reading them may give another result.
    """
    h = hashlib.sha256()
    h.update(source_h.encode())
    h.update(b"\0")
    h.update(env_h.encode())
    if worker:  # the default (local) worker leaves the hash as it always was
        h.update(b"\0worker=")
        h.update(worker.encode())
    for key in sorted(variables or {}):  # none set: the hash is as it always was
        h.update(b"\0var:")
        h.update(json.dumps([key, variables[key]]).encode())  # type: ignore[index]
    for cid in sorted(inputs):
        h.update(b"\0")
        h.update(cid.encode())
        h.update(b"=")
        h.update(inputs[cid].encode())
    return h.hexdigest()


MOUNT = "mount:"
"""Prefix of a mount's entry among a run's inputs (its fingerprint, beside upstream cells)."""


def is_mount(key: str) -> bool:
    return key.startswith(MOUNT)


def mount_inputs(mounts: Mapping[str, str]) -> dict[str, str]:
    """A cell's mount fingerprints as provenance inputs."""
    return {f"{MOUNT}{name}": fp for name, fp in mounts.items()}


def env_changes(old: Mapping[str, str] | None, new: Mapping[str, str]) -> list[dict[str, Any]]:
    """One ``env_changed`` detail per package added, removed or changed in version."""
    if old is None:
        return [{"type": "env_changed"}]
    out: list[dict[str, Any]] = []
    for pkg in sorted(set(old) | set(new)):
        before, after = old.get(pkg), new.get(pkg)
        if before != after:
            detail: dict[str, Any] = {"type": "env_changed", "package": pkg}
            if before is not None:
                detail["from_package_version"] = before
            if after is not None:
                detail["to_package_version"] = after
            out.append(detail)
    return out or [{"type": "env_changed"}]


def compute_staleness(
    order: Sequence[str],
    cells: Mapping[str, CellFacts],
    upstream: Mapping[str, Sequence[str]],
    runs: Mapping[str, RunRecord],
    env: Env,
    env_history: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Staleness]:
    """Staleness of every cell in ``order`` (topological, or notebook order when cyclic).

    An upstream not yet computed when its reader is reached (only in a cyclic
    graph) counts as not ready.
    """
    history = env_history or {}
    out: dict[str, Staleness] = {}
    for cid in order:
        facts = cells[cid]
        if facts.language in NO_PROVENANCE:
            out[cid] = Staleness("ready", facts.source_hash)
            continue
        ups = upstream.get(cid, ())
        inputs = {up: out[up].provenance_hash if up in out else "" for up in ups}
        inputs.update(mount_inputs(facts.mounts))
        prov = provenance(facts.source_hash, env.hash, inputs, facts.worker, facts.variables)
        run = runs.get(cid)
        if run is None or "rw" in facts.mounts.values():
            out[cid] = Staleness("idle", prov)
            continue
        reasons: list[str] = []
        details: list[dict[str, Any]] = []
        if run.source_hash != facts.source_hash:
            reasons.append("self")
            details.append({"type": "source_changed", "cell_id": cid})
        if run.env_hash != env.hash:
            reasons.append("env")
            details.extend(env_changes(history.get(run.env_hash), env.packages))
        changed = [
            up
            for up in ups
            if up not in out
            or out[up].status != "ready"
            or run.inputs.get(up) != out[up].provenance_hash
        ]
        changed += [up for up in run.inputs if up not in inputs and not is_mount(up)]
        mounts = sorted(
            k for k in {*inputs, *run.inputs} if is_mount(k) and run.inputs.get(k) != inputs.get(k)
        )
        if mounts and "upstream" not in reasons:
            reasons.append("upstream")
        if mounts:
            details.extend({"type": "mount_changed", "mount": k[len(MOUNT) :]} for k in mounts)
        if changed:
            reasons.append("upstream")
            for up in changed:
                detail: dict[str, Any] = {"type": "input_changed", "cell_id": up}
                name = cells[up].name if up in cells else None
                if name:
                    detail["cell_name"] = name
                details.append(detail)
        if not reasons and run.provenance_hash != prov:
            # Same source, environment and inputs, yet another run identity: the
            # cell's configuration (its environment variables or worker) changed.
            reasons.append("self")
            details.append({"type": "config_changed", "cell_id": cid})
        if reasons:
            out[cid] = Staleness("stale", prov, tuple(reasons), tuple(details))
        else:
            out[cid] = Staleness(run.status, prov)
    return out
