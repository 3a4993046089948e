"""Mount variables inside a kernel: loaded by path by the kernel worker, stdlib only.

``make_mounts(specs)`` answers ``{name: path object}`` for a cell's mounts:

- ``file://`` → a real ``pathlib.Path`` (a subclass; for ``ro`` mounts its
  writing methods raise ``PermissionError``);
- any other scheme → a :class:`RemotePath` backed by fsspec (``open``,
  ``read_bytes``, ``read_text``, ``glob``, ``iterdir``, ``exists``, ``/``),
  with ``.fs`` (the fsspec filesystem) and ``.uri`` for libraries that read
  remote data themselves (polars, pyarrow, DuckDB).

Credentials come from the process environment (the notebook's variables) and
from options named ``<option>_env``, never from ``notebook.toml`` values.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any
from urllib.parse import unquote, urlsplit

_WRITE_MODES = frozenset("wax+")


def _refuse(name: str, what: str) -> PermissionError:
    return PermissionError(f"mount {name!r} is read-only (mode 'ro'): cannot {what}")


class ReadOnlyPath(type(pathlib.Path())):  # type: ignore[misc]
    """A local path under a read-only mount: reads as usual, writes raise PermissionError."""

    mount_name = "mount"

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _WRITE_MODES & set(mode):
            raise _refuse(self.mount_name, f"open {str(self)!r} with mode {mode!r}")
        return super().open(mode, *args, **kwargs)

    def write_text(self, *args: Any, **kwargs: Any) -> int:
        raise _refuse(self.mount_name, f"write {str(self)!r}")

    def write_bytes(self, *args: Any, **kwargs: Any) -> int:
        raise _refuse(self.mount_name, f"write {str(self)!r}")

    def _no(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(self.mount_name, f"change {str(self)!r}")

    touch = mkdir = unlink = rmdir = rename = replace = chmod = _no
    symlink_to = hardlink_to = _no


def _read_only(name: str) -> type:
    return type(f"ReadOnlyPath_{name}", (ReadOnlyPath,), {"mount_name": name})


def _options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key.endswith("_env"):
            if value in os.environ:
                out[key.removesuffix("_env")] = os.environ[value]
        else:
            out[key] = value
    if "endpoint_url" not in out and os.environ.get("AWS_ENDPOINT_URL"):
        out["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    return out


class RemotePath:
    """A path in an fsspec filesystem (``s3://bucket/key``), read-only unless ``rw``."""

    def __init__(self, fs: Any, path: str, protocol: str, name: str, writable: bool) -> None:
        self.fs = fs
        self.path = path.rstrip("/") or path
        self.protocol = protocol
        self.mount_name = name
        self.writable = writable

    def _child(self, path: str) -> RemotePath:
        return RemotePath(self.fs, path, self.protocol, self.mount_name, self.writable)

    @property
    def uri(self) -> str:
        return f"{self.protocol}://{self.path}"

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"RemotePath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __truediv__(self, part: str) -> RemotePath:
        part = str(part).strip("/")
        if ".." in part.split("/"):
            raise ValueError(f"'..' is not allowed under mount {self.mount_name!r}")
        return self._child(f"{self.path}/{part}")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return pathlib.PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return pathlib.PurePosixPath(self.name).stem

    @property
    def parent(self) -> RemotePath:
        return self._child(self.path.rsplit("/", 1)[0])

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def iterdir(self) -> Any:
        for entry in sorted(self.fs.ls(self.path, detail=False)):
            yield self._child(entry)

    def glob(self, pattern: str) -> Any:
        for entry in sorted(self.fs.glob(f"{self.path}/{pattern}")):
            yield self._child(entry)

    def open(self, mode: str = "rb", **kwargs: Any) -> Any:
        if _WRITE_MODES & set(mode) and not self.writable:
            raise _refuse(self.mount_name, f"open {self.uri!r} with mode {mode!r}")
        return self.fs.open(self.path, mode, **kwargs)

    def read_bytes(self) -> bytes:
        return bytes(self.fs.cat_file(self.path))

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        with self.open("wb") as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self) -> None:
        if not self.writable:
            raise _refuse(self.mount_name, f"delete {self.uri!r}")
        self.fs.rm(self.path)


def make_mounts(specs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        name, uri, mode = spec["name"], spec["uri"], spec.get("mode", "ro")
        parts = urlsplit(uri)
        if parts.scheme == "file":
            local = unquote(parts.path)
            out[name] = pathlib.Path(local) if mode == "rw" else _read_only(name)(local)
            continue
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **_options(dict(spec.get("options") or {})))
        out[name] = RemotePath(fs, path, parts.scheme, name, mode == "rw")
    return out
