"""Registry actions: aliases of names, protected-alias approvals, tags and the audit.

What strata-client's registry methods need (docs/registry.md), over the store's
:class:`catalog.registry.Registry`. Which aliases are protected is this server's
setting (``QUIVER_PROTECTED_ALIASES``), applied here, so no client can bypass
it. A body's ``actor`` is recorded in the audit as given: the REST facade fills
it from the configured user header; a Flight client states its own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from catalog import ArtifactRef, Registry, artifact_uri, parse_uri
from flight.args import ArtifactArg
from flight.core import Core
from flight.dispatch import action
from flight.protocol import parse_model
from foundation import MAX_ACTOR_CHARS, MAX_AUDIT_PAGE, NotFound


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AliasArg(_Strict):
    name: str
    alias: str


class AliasChangeArg(AliasArg):
    actor: str | None = Field(default=None, max_length=MAX_ACTOR_CHARS)


class AliasSetArg(ArtifactArg):
    """The target as ``artifact_uri`` (an artifact or name URI: a name's current
    version) or ``artifact_id`` + ``version``."""

    name: str
    alias: str
    actor: str | None = Field(default=None, max_length=MAX_ACTOR_CHARS)


class NameOnlyArg(_Strict):
    name: str


class VersionArg(_Strict):
    artifact_id: str
    version: int = Field(ge=1)

    def target(self) -> tuple[str, int]:
        ref = parse_uri(artifact_uri(self.artifact_id, self.version))  # checks the id
        assert isinstance(ref, ArtifactRef)
        return ref.artifact_id, ref.version


class TagSetArg(VersionArg):
    key: str
    value: str
    actor: str | None = Field(default=None, max_length=MAX_ACTOR_CHARS)


class TagDeleteArg(VersionArg):
    key: str
    actor: str | None = Field(default=None, max_length=MAX_ACTOR_CHARS)


class AuditArg(_Strict):
    name: str | None = None
    artifact_id: str | None = None
    limit: int = Field(default=100, ge=1, le=MAX_AUDIT_PAGE)


def _protected(core: Core, alias: str) -> bool:
    return alias in core.settings.protected_aliases


@action(
    "alias-set",
    'Point name@alias at an artifact version: {"name", "alias", "artifact_uri"} or '
    '{"name", "alias", "artifact_id", "version"}, "actor"?; answers status applied|unchanged, '
    "or pending for a protected alias (nothing changes until alias-approve).",
)
def _alias_set(core: Core, body: Any) -> Any:
    arg = parse_model(AliasSetArg, body, "alias-set request")
    aid, version = arg.resolve(core)
    outcome = Registry(core.store).set_alias(
        arg.name, arg.alias, aid, version, actor=arg.actor, protected=_protected(core, arg.alias)
    )
    return outcome.json()


@action(
    "alias-get",
    'What name@alias points at: {"name", "alias"}; answers artifact_uri, artifact_id, version, '
    "state, updated_at.",
)
def _alias_get(core: Core, body: Any) -> Any:
    arg = parse_model(AliasArg, body, "alias-get request")
    found = Registry(core.store).get_alias(arg.name, arg.alias)
    try:
        state: str | None = core.store.get(found.artifact_id, found.version).state
    except NotFound:  # cannot happen (an aliased version is never deleted); be plain anyway
        state = None
    return {
        "name": found.name,
        "alias": found.alias,
        "artifact_uri": found.artifact_uri,
        "artifact_id": found.artifact_id,
        "version": found.version,
        "state": state,
        "updated_at": found.updated_at,
    }


@action("alias-list", 'The aliases a registry name holds: {"name"}.')
def _alias_list(core: Core, body: Any) -> Any:
    name = parse_model(NameOnlyArg, body, "alias-list request").name
    return {
        "name": name,
        "aliases": [
            {
                "alias": a.alias,
                "artifact_uri": a.artifact_uri,
                "artifact_id": a.artifact_id,
                "version": a.version,
                "updated_at": a.updated_at,
            }
            for a in Registry(core.store).list_aliases(name)
        ],
    }


@action(
    "alias-delete",
    'Delete name@alias: {"name", "alias", "actor"?}; status deleted, or pending for a '
    "protected alias.",
)
def _alias_delete(core: Core, body: Any) -> Any:
    arg = parse_model(AliasChangeArg, body, "alias-delete request")
    outcome = Registry(core.store).delete_alias(
        arg.name, arg.alias, actor=arg.actor, protected=_protected(core, arg.alias)
    )
    return outcome.json()


@action("alias-pending", "Changes of protected aliases waiting for approval, oldest first.")
def _alias_pending(core: Core, body: Any) -> Any:
    parse_model(_Strict, body, "alias-pending request")
    return {"pending": [p.json() for p in Registry(core.store).pending()]}


@action(
    "alias-approve",
    'Apply the pending change of name@alias: {"name", "alias", "actor"?}; status applied|deleted.',
)
def _alias_approve(core: Core, body: Any) -> Any:
    arg = parse_model(AliasChangeArg, body, "alias-approve request")
    return Registry(core.store).approve(arg.name, arg.alias, actor=arg.actor).json()


@action(
    "alias-reject",
    'Discard the pending change of name@alias: {"name", "alias", "actor"?}; status rejected.',
)
def _alias_reject(core: Core, body: Any) -> Any:
    arg = parse_model(AliasChangeArg, body, "alias-reject request")
    return Registry(core.store).reject(arg.name, arg.alias, actor=arg.actor).json()


def _tagged(aid: str, version: int) -> dict[str, Any]:
    return {"artifact_id": aid, "version": version, "artifact_uri": artifact_uri(aid, version)}


@action(
    "tag-set",
    'Set a tag on an artifact version: {"artifact_id", "version", "key", "value", "actor"?}; '
    "status applied|unchanged.",
)
def _tag_set(core: Core, body: Any) -> Any:
    arg = parse_model(TagSetArg, body, "tag-set request")
    aid, version = arg.target()
    status = Registry(core.store).set_tag(aid, version, arg.key, arg.value, actor=arg.actor)
    return {"status": status, **_tagged(aid, version), "key": arg.key, "value": arg.value}


@action("tag-list", 'The tags of an artifact version: {"artifact_id", "version"}.')
def _tag_list(core: Core, body: Any) -> Any:
    aid, version = parse_model(VersionArg, body, "tag-list request").target()
    return {**_tagged(aid, version), "tags": Registry(core.store).tags(aid, version)}


@action("tag-delete", 'Delete a tag: {"artifact_id", "version", "key", "actor"?}; status deleted.')
def _tag_delete(core: Core, body: Any) -> Any:
    arg = parse_model(TagDeleteArg, body, "tag-delete request")
    aid, version = arg.target()
    Registry(core.store).delete_tag(aid, version, arg.key, actor=arg.actor)
    return {"status": "deleted", **_tagged(aid, version), "key": arg.key}


@action(
    "registry-audit",
    'The registry audit, newest first: {"name"?, "artifact_id"?, "limit"?} (limit at most '
    f"{MAX_AUDIT_PAGE}); every name, alias and tag change with actor, from/to and time.",
)
def _registry_audit(core: Core, body: Any) -> Any:
    arg = parse_model(AuditArg, body, "registry-audit request")
    entries = Registry(core.store).audit(
        name=arg.name, artifact_id=arg.artifact_id, limit=arg.limit
    )
    return {"entries": entries, "limit": arg.limit}
