"""Atomic, versioned state files under the state directory.

A state file is JSON with a ``version`` field, written by writing a temp
file in the same directory, fsync, rename over the old file, fsync the
directory: a crash (even ``kill -9``) leaves either the old or the new
content, never a mix. Files are created 0600 because they hold PSKs.

A file that does not parse, or carries an unknown version, is moved aside
(``<name>.bad-<unix time>``) and reported; the caller falls back to its
defaults (the config file's factory bootstrap). Values typed for LwM2M
(bytes, object links) go through :func:`dump_value` / :func:`load_value`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import Any

from lwm2md.model.types import ObjLnk, Value

LOG = logging.getLogger(__name__)

STATE_VERSION = 1
FILE_MODE = 0o600


class StateError(Exception):
    """A state file that cannot be used; it has been moved aside (``kept_as``)."""

    def __init__(self, path: FsPath, reason: str, kept_as: FsPath | None) -> None:
        self.path = path
        self.reason = reason
        self.kept_as = kept_as
        where = f"; kept as {kept_as}" if kept_as else ""
        super().__init__(f"{path}: {reason}{where}")


def dump_value(value: Value) -> Any:
    """A JSON-safe form of an LwM2M value that :func:`load_value` restores exactly."""
    if isinstance(value, ObjLnk):
        return {"objlnk": [value.oid, value.iid]}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float):
        return {"float": value}
    return value  # str, int, bool


def load_value(data: Any) -> Value:
    """Inverse of :func:`dump_value`; ValueError on anything else."""
    if isinstance(data, dict) and len(data) == 1:
        (kind, raw), = data.items()
        if kind == "objlnk" and isinstance(raw, list) and len(raw) == 2 and all(type(i) is int for i in raw):
            return ObjLnk(raw[0], raw[1])
        if kind == "bytes" and isinstance(raw, str):
            return base64.b64decode(raw.encode("ascii"), validate=True)
        if kind == "float" and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        raise ValueError(f"unknown typed value {kind!r}")
    if isinstance(data, (str, bool, int)):
        return data
    raise ValueError(f"not a stored value: {type(data).__name__}")


class StateFile:
    """One JSON state file in ``directory`` (created 0700 if missing)."""

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.directory = FsPath(directory)
        self.path = self.directory / name

    def load(self) -> dict[str, Any] | None:
        """The stored content, None when there is no file; StateError when it is unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(self.path, f"cannot read: {exc.strerror or exc}", None) from None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(self.path, f"corrupt ({exc})", self._keep_aside()) from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            found = data.get("version") if isinstance(data, dict) else type(data).__name__
            reason = f"unknown state version {found!r} (this lwm2md writes {STATE_VERSION})"
            raise StateError(self.path, reason, self._keep_aside())
        content = data.get("content")
        if not isinstance(content, dict):
            raise StateError(self.path, "no content", self._keep_aside())
        return content

    def load_or_none(self, what: str) -> dict[str, Any] | None:
        """:meth:`load`, with an unusable file reported as "ignoring stored <what>" (None then)."""
        try:
            return self.load()
        except StateError as exc:
            LOG.error("ignoring stored %s: %s", what, exc)
            return None

    def save_or_log(self, content: Mapping[str, Any], what: str) -> bool:
        """:meth:`save`; a failure is logged as "cannot store <what>" and gives False."""
        try:
            self.save(content)
        except OSError as exc:
            LOG.error("cannot store %s in %s: %s", what, self.path, exc)
            return False
        return True

    def save(self, content: Mapping[str, Any]) -> None:
        """Replace the file atomically with ``content`` (JSON-serialisable)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = json.dumps({"version": STATE_VERSION, "content": content}, sort_keys=True).encode()
        tmp = self.directory / f".{self.path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # an existing temp file keeps its mode otherwise
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._sync_directory()

    def remove(self) -> None:
        """Delete the file (``lwm2md reset-state``, Factory Reset)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sync_directory()

    def _sync_directory(self) -> None:
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _keep_aside(self) -> FsPath | None:
        target = keep_aside(self.path)
        if target is not None:
            LOG.error("state file %s is unusable; kept as %s", self.path, target)
        return target


def keep_aside(path: FsPath) -> FsPath | None:
    """Rename an unusable state file to ``<name>.bad-<unix time>``; the new path, or None (logged)."""
    target = path.with_name(f"{path.name}.bad-{int(time.time())}")
    try:
        os.replace(path, target)
    except OSError as exc:
        LOG.error("cannot move %s aside: %s", path, exc.strerror or exc)
        return None
    return target
