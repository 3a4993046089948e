"""Mounts: data outside the notebook's folder, named in ``notebook.toml`` (API.md §2.6, §8).

A mount is ``{name, uri, mode: ro|rw, pin?, options}``. The notebook's
``[[mounts]]`` apply to every cell; a cell's own ``mounts`` narrow them (same
name: the cell's entry wins). Inside a cell each mount is a variable of its name
(see ``mountpath.py``, which runs in the kernel).

Credentials never live in ``notebook.toml``: an option whose name says it is a
secret (``key``, ``secret``, ``token``, ``password``…) is refused; an option
``<name>_env`` names the environment variable that holds ``<name>`` instead,
and the variable comes from the notebook's environment (or the server's).

A mount's *fingerprint* joins the provenance of every cell that uses it: its
``pin`` when set, else a digest of the listing below the URI (paths, sizes,
mtimes), so a changed file makes those cells stale with a reason naming the
mount. ``rw`` mounts are never cached: cells using them stay ``idle``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from foundation import InvalidArgument
from notebooks.model import narrowed_mounts

MOUNT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SCHEMES = ("file", "s3", "gs", "az")
MODES = ("ro", "rw")
MOUNT_URI_PATTERN = (
    r"^(?:file://(?:localhost)?/|(?:s3|gs|az)://[^/.\x00])(?:[^.\x00]|\.[^.\x00])*\.?$"
)
"""Every URI :func:`check_uri` accepts (for the API document): a known scheme, a bucket or
an absolute path, no NUL and no ``..`` anywhere."""
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas", "signature")
MOUNT_SECRET_PATTERN = "|".join("".join(f"[{c}{c.upper()}]" for c in w) for w in SECRET_WORDS)
SECRET_OPTION = re.compile(MOUNT_SECRET_PATTERN)
"""An option name that says it holds a credential (spelled out: no Unicode case folding)."""
LISTING_LIMIT = 10_000
"""Entries a fingerprint lists at most (beyond: the count so far and a marker)."""
REMOTE_TTL_S = 30.0
"""How long a remote listing stands before it is taken again (a run always retakes it)."""
HELPER = str(Path(__file__).with_name("mountpath.py"))


@dataclass(frozen=True)
class Mount:
    name: str
    uri: str
    mode: str = "ro"
    pin: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0]

    def dump(self) -> dict[str, Any]:
        """As written in ``notebook.toml`` and answered by REST (empty options omitted)."""
        out = {k: v for k, v in asdict(self).items() if v not in (None, {})}
        out.setdefault("mode", self.mode)
        return out


def check_uri(uri: str, label: str = "uri") -> str:
    """A mount URI's scheme and confinement; the URI as given, or InvalidArgument."""
    if not isinstance(uri, str) or not uri:
        raise InvalidArgument(f"mount {label} must be a non-empty string")
    if "\x00" in uri:
        raise InvalidArgument(f"mount {label} holds a NUL byte")
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in SCHEMES:
        allowed = ", ".join(f"{s}://" for s in SCHEMES)
        shown = scheme or "(none)"
        raise InvalidArgument(f"mount {label} {uri!r}: unknown scheme {shown!r}; use {allowed}")
    if ".." in uri:
        raise InvalidArgument(f"mount {label} {uri!r}: path traversal ('..') not allowed")
    if scheme == "file" and not re.match(r"file://(?:localhost)?/", uri):
        raise InvalidArgument(
            f"mount {label} {uri!r}: file:// takes an absolute path and no host (file:///path)"
        )
    if not re.fullmatch(MOUNT_URI_PATTERN, uri):
        raise InvalidArgument(f"mount {label} {uri!r}: {scheme}:// needs a bucket (or container)")
    return uri


def parse_mount(raw: Mapping[str, Any]) -> Mount:
    """One mount spec, checked; InvalidArgument names what is wrong."""
    if not isinstance(raw, Mapping):
        raise InvalidArgument("a mount must be a table {name, uri, mode, pin, options}")
    name = raw.get("name")
    if not isinstance(name, str) or not MOUNT_NAME.fullmatch(name):
        raise InvalidArgument(f"mount name {name!r} must match {MOUNT_NAME.pattern}")
    uri = check_uri(raw.get("uri"), "uri")  # type: ignore[arg-type]
    mode = raw.get("mode") or "ro"
    if mode not in MODES:
        raise InvalidArgument(f"mount {name}: mode {mode!r} must be 'ro' or 'rw'")
    pin = raw.get("pin")
    if pin is not None and (not isinstance(pin, str) or len(pin) > 200):
        raise InvalidArgument(f"mount {name}: pin must be a string of at most 200 characters")
    options = dict(raw.get("options") or {})
    for key, value in options.items():
        if key.endswith("_env"):
            if not isinstance(value, str) or not MOUNT_NAME.fullmatch(value):
                raise InvalidArgument(
                    f"mount {name}: option {key} must name an environment variable"
                )
        elif SECRET_OPTION.search(key):
            raise InvalidArgument(
                f"mount {name}: option {key!r} looks like a credential; keep it in the "
                f"notebook's environment and name it with {key}_env"
            )
    return Mount(name, uri, mode, pin, options)


def parse_mounts(raws: Sequence[Mapping[str, Any]]) -> list[Mount]:
    """Specs checked; a name given twice keeps its last spec (as a cell's narrows a notebook's)."""
    merged: dict[str, Mount] = {}
    for raw in raws:
        mount = parse_mount(raw)
        merged.pop(mount.name, None)
        merged[mount.name] = mount
    return list(merged.values())


def cell_mounts(
    notebook: Sequence[Mapping[str, Any]], cell: Sequence[Mapping[str, Any]]
) -> list[Mount]:
    """The mounts a cell sees: the notebook's, narrowed by the cell's own (by name).

    Specs that do not parse (a hand-edited toml) are left out here; PUT refuses them.
    """
    return [parse_mount(spec) for spec in narrowed_mounts(_valid(notebook), _valid(cell))]


def _valid(specs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The specs that parse, as ``Mount.dump`` writes them."""
    out = []
    for spec in specs:
        try:
            out.append(parse_mount(spec).dump())
        except InvalidArgument:
            continue
    return out


def storage_options(mount: Mount, env: Mapping[str, str]) -> dict[str, Any]:
    """fsspec options: ``<name>_env`` resolved from ``env`` (then the server's environment)."""
    out: dict[str, Any] = {}
    for key, value in mount.options.items():
        if key.endswith("_env"):
            found = env.get(value, os.environ.get(value))
            if found is not None:
                out[key.removesuffix("_env")] = found
        else:
            out[key] = value
    if mount.scheme == "s3":  # the notebook's AWS variables, as the kernel's botocore reads them
        for option, var in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"),
                            ("token", "AWS_SESSION_TOKEN")):  # fmt: skip
            if option not in out and env.get(var):
                out[option] = env[var]
        if "endpoint_url" not in out and env.get("AWS_ENDPOINT_URL"):
            out["endpoint_url"] = env["AWS_ENDPOINT_URL"]
    return out


def kernel_spec(mount: Mount) -> dict[str, Any]:
    """What the kernel needs to build the mount's variable (credentials come from its env)."""
    return {"name": mount.name, "uri": mount.uri, "mode": mount.mode, "options": mount.options}


def _listing_digest(entries: Any) -> str:
    h = hashlib.sha256()
    count = 0
    for entry in entries:
        count += 1
        if count > LISTING_LIMIT:
            h.update(b"\0truncated")
            break
        h.update(json.dumps(entry, default=str).encode())
    return f"list:{count}:{h.hexdigest()[:32]}"


def _local_listing(root: Path) -> Any:
    if root.is_file():
        st = root.stat()
        yield [root.name, st.st_size, st.st_mtime_ns]
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            yield [str(path.relative_to(root)), st.st_size, st.st_mtime_ns]


def _remote_listing(mount: Mount, env: Mapping[str, str]) -> Any:
    import fsspec  # an optional engine: only remote mounts need it

    fs, path = fsspec.core.url_to_fs(mount.uri, **storage_options(mount, env))
    found = fs.find(path, detail=True, maxdepth=None)
    for key in sorted(found):
        info = found[key]
        stamp = info.get("LastModified") or info.get("mtime") or info.get("ETag") or ""
        yield [key, info.get("size"), str(stamp)]


def fingerprint(mount: Mount, env: Mapping[str, str]) -> str:
    """The mount's pin, else a digest of what it holds; ``missing``/``error:…`` when unreadable."""
    if mount.pin:
        return f"pin:{mount.pin}"
    try:
        if mount.scheme == "file":
            root = Path(unquote(mount.uri.split("://", 1)[1].removeprefix("localhost")))
            if not root.exists():
                return "missing"
            return _listing_digest(_local_listing(root))
        return _listing_digest(_remote_listing(mount, env))
    except Exception as exc:  # an unreachable store: cells using it cannot be ready
        return f"error:{type(exc).__name__}"


class MountProbe:
    """Fingerprints mounts for a session's staleness; remote listings held for a while."""

    def __init__(self, ttl: float = REMOTE_TTL_S) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[float, str]] = {}

    def forget(self) -> None:
        with self._lock:
            self._memo.clear()

    def __call__(
        self,
        notebook: Sequence[Mapping[str, Any]],
        cell: Sequence[Mapping[str, Any]],
        env: Mapping[str, str],
        fresh: bool,
    ) -> dict[str, str]:
        """The session's hook (``Session.mount_facts``): a cell's mount fingerprints."""
        return self.fingerprints(cell_mounts(notebook, cell), env, fresh=fresh)

    def fingerprints(
        self, mounts: Sequence[Mount], env: Mapping[str, str], *, fresh: bool = False
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        for mount in mounts:
            if mount.mode == "rw":
                out[mount.name] = "rw"
                continue
            if mount.scheme == "file" or mount.pin:
                out[mount.name] = fingerprint(mount, env)
                continue
            key = json.dumps([mount.uri, mount.options], sort_keys=True, default=str)
            now = time.monotonic()
            with self._lock:
                hit = self._memo.get(key)
            if fresh or hit is None or now - hit[0] > self.ttl:
                hit = (now, fingerprint(mount, env))
                with self._lock:
                    self._memo[key] = hit
            out[mount.name] = hit[1]
        return out
