"""Notifications held for a server, kept on disk until delivered (``/1/x/6`` Notification Storing).

:class:`NotificationStore` keeps, per server, the notifications the queue
controller holds (server asleep, unreachable or disabled), oldest first and
at most ``limit`` of them: beyond that the oldest is dropped, with one
warning per overflow episode (:meth:`~NotificationStore.take_dropped` gives
the count and ends the episode).

On disk there is one append-only file per server,
``<directory>/notifications-<ssid>.jsonl`` (0600; the directory is created
0700), one JSON document per line:

- a header: ``{"format": "lwm2md-notifications", "version": 1, "ssid": 1}``;
- an entry: ``{"seq": 7, "ssid": 1, "ident": 3, "target": "/3303/0/5700",
  "confirmable": false, "stored_at": 1700000000.0, "records": [{"path":
  "/3303/0/5700", "value": {"float": 21.5}, "time": 1700000000.0}]}``
  (values as :func:`lwm2md.persist.dump_value` writes them);
- a removal: ``{"removed": [7, 8]}`` (delivered, or dropped over the limit).

Each change is one ``write`` of whole lines, then fsync. A crash (even
``kill -9`` or a power cut) can only leave the last line incomplete: loading
drops such a torn tail with a warning and rewrites the file (temp file,
fsync, rename, fsync of the directory) before anything is appended again.
The file is rewritten the same way when removals outweigh the entries, and
deleted once nothing is left. A complete line that does not parse, or a
header of another format or version, makes the file unusable: it is moved
aside as ``<name>.bad-<unix time>`` with an error line, and the server
starts with nothing stored. A failed write is logged (once until a write
succeeds again); the entries stay in memory and the next change rewrites
the whole file.

With ``directory`` None the store keeps everything in memory only.
Delivery is at least once: an entry is removed after it was sent, so a
crash in between sends it again after the restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, NamedTuple

from lwm2md.errors import Lwm2mError
from lwm2md.model.path import Path
from lwm2md.model.types import Record
from lwm2md.persist import FILE_MODE, dump_value, keep_aside, load_value

LOG = logging.getLogger(__name__)

NOTIFICATIONS_DIR = "notifications"
"""The store's directory under the state directory."""

FORMAT = "lwm2md-notifications"
VERSION = 1
DIR_MODE = 0o700
COMPACT_MIN = 64
"""Dead lines (removals, removed entries) tolerated in a file before it is rewritten."""
_NAME = re.compile(r"notifications-(\d{1,5})\.jsonl")


@dataclass(frozen=True)
class StoredNotification:
    """One held notification: its server, the observation it came from, records with their times.

    ``ident`` and ``target`` name the observation (``Observation.ident``, which
    is only unique within one run, and its paths as text); ``stored_at`` is the
    wall time it was stored; ``seq`` is given by :meth:`NotificationStore.add`.
    """

    ssid: int
    ident: int | None
    target: str
    records: tuple[Record, ...]
    confirmable: bool
    stored_at: float
    seq: int = 0


class Added(NamedTuple):
    """What :meth:`NotificationStore.add` did: the new entry's ``seq`` and the ``seq`` of those dropped."""

    seq: int
    dropped: tuple[int, ...]


@dataclass(eq=False)
class _Server:
    """One server's entries (in order) and the state of its file."""

    entries: dict[int, StoredNotification] = field(default_factory=dict)
    next_seq: int = 1
    lines: int = 0  # entry and removal lines in the file
    dirty: bool = False  # rewrite the file before appending to it
    write_failed: bool = False
    dropped: int = 0  # in the current overflow episode


class NotificationStore:
    """Bounded, ordered notification storage per server; see the module docstring.

    ``limit`` (entries per server, at least 1) may be changed at any time; it
    applies from the next :meth:`add`.
    """

    def __init__(self, directory: str | os.PathLike[str] | None, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.directory = FsPath(directory) if directory is not None else None
        self.limit = limit
        self._servers: dict[int, _Server] = {}

    @property
    def persistent(self) -> bool:
        """True when entries are kept on disk."""
        return self.directory is not None

    def path(self, ssid: int) -> FsPath | None:
        """The file of server ``ssid`` (None when memory only)."""
        return self.directory / f"notifications-{ssid}.jsonl" if self.directory is not None else None

    # -- reading --------------------------------------------------------------------

    def entries(self, ssid: int) -> list[StoredNotification]:
        """Server ``ssid``'s entries, oldest first (read from its file at the first use)."""
        return list(self._server(ssid).entries.values())

    def count(self, ssid: int) -> int:
        """How many entries server ``ssid`` has."""
        return len(self._server(ssid).entries)

    def contains(self, ssid: int, seq: int) -> bool:
        """True while entry ``seq`` of server ``ssid`` is stored."""
        return seq in self._server(ssid).entries

    def ssids(self) -> list[int]:
        """Servers with entries, in memory or in a file of the directory (sorted)."""
        found = {ssid for ssid, server in self._servers.items() if server.entries}
        if self.directory is not None:
            with contextlib.suppress(OSError):
                for child in self.directory.iterdir():
                    match = _NAME.fullmatch(child.name)
                    if match is not None and int(match[1]) not in self._servers:
                        found.add(int(match[1]))
        return sorted(found)

    # -- changing -------------------------------------------------------------------

    def add(self, entry: StoredNotification) -> Added:
        """Store ``entry`` after the others (its ``seq`` is assigned); drop the oldest beyond ``limit``.

        The first drop of an overflow episode is logged as a warning; later
        ones are only counted (see :meth:`take_dropped`).
        """
        server = self._server(entry.ssid)
        seq = server.next_seq
        server.next_seq += 1
        stored = StoredNotification(entry.ssid, entry.ident, entry.target, tuple(entry.records),
                                    entry.confirmable, entry.stored_at, seq)  # fmt: skip
        server.entries[seq] = stored
        dropped: list[int] = []
        while len(server.entries) > self.limit:
            oldest = next(iter(server.entries))
            del server.entries[oldest]
            dropped.append(oldest)
        docs: list[dict[str, Any]] = [_entry_doc(stored)]
        if dropped:
            docs.append({"removed": dropped})
            if not server.dropped:
                LOG.warning("server %d: more than %d notifications held; dropping the oldest",
                            entry.ssid, self.limit)  # fmt: skip
            server.dropped += len(dropped)
        self._write(entry.ssid, server, docs)
        return Added(seq, tuple(dropped))

    def remove(self, ssid: int, seqs: Iterable[int]) -> int:
        """Remove entries (delivered or given up); unknown ``seq`` are ignored. Returns how many went."""
        server = self._server(ssid)
        gone = [seq for seq in dict.fromkeys(seqs) if server.entries.pop(seq, None) is not None]
        if gone:
            self._write(ssid, server, [{"removed": gone}])
        return len(gone)

    def take_dropped(self, ssid: int) -> int:
        """How many entries of server ``ssid`` were dropped over the limit; ends the overflow episode."""
        server = self._server(ssid)
        dropped, server.dropped = server.dropped, 0
        return dropped

    def clear(self, ssid: int) -> int:
        """Forget every entry of server ``ssid`` and delete its file; returns how many there were."""
        server = self._server(ssid)
        count = len(server.entries)
        server.entries.clear()
        server.dropped = 0
        self._rewrite(ssid, server)
        return count

    def clear_all(self) -> int:
        """:meth:`clear` every server (Factory Reset, ``reset-state``); returns how many entries went."""
        return sum(self.clear(ssid) for ssid in self.ssids())

    # -- the files ------------------------------------------------------------------

    def _server(self, ssid: int) -> _Server:
        server = self._servers.get(ssid)
        if server is None:
            server = self._servers[ssid] = self._load(ssid)
        return server

    def _load(self, ssid: int) -> _Server:
        server = _Server()
        path = self.path(ssid)
        if path is None:
            return server
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return server
        except OSError as exc:
            LOG.error("server %d: cannot read stored notifications from %s: %s", ssid, path,
                      exc.strerror or exc)  # fmt: skip
            server.dirty = True
            return server
        lines = raw.split(b"\n")
        tail = lines.pop()  # b"" when the last line is complete
        try:
            _parse(ssid, lines, server)
        except (ValueError, TypeError, KeyError, Lwm2mError) as exc:
            kept = keep_aside(path)
            where = f"; kept as {kept}" if kept is not None else ""
            LOG.error("server %d: stored notifications in %s are unusable (%s)%s", ssid, path, exc, where)
            return _Server(dirty=kept is None)  # not moved aside: the next write replaces it
        if tail:
            LOG.warning("server %d: %s ended in an incomplete line (cut short by a crash); dropped it",
                        ssid, path)  # fmt: skip
        if tail or not server.entries or server.lines > len(server.entries):
            self._rewrite(ssid, server)
        return server

    def _write(self, ssid: int, server: _Server, docs: list[dict[str, Any]]) -> None:
        """Append ``docs`` (or rewrite the file when it is dirty or mostly dead lines)."""
        path = self.path(ssid)
        if path is None:
            return
        dead = server.lines + len(docs) - len(server.entries)
        if server.dirty or not server.entries or dead > max(COMPACT_MIN, len(server.entries)):
            self._rewrite(ssid, server)
            return
        payload = b"".join(_line(doc) for doc in docs)
        try:
            assert self.directory is not None
            self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            try:
                created = os.fstat(fd).st_size == 0
                if created:
                    os.fchmod(fd, FILE_MODE)
                    payload = _line(_header(ssid)) + payload
                _write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _sync_directory(self.directory)
        except OSError as exc:
            server.dirty = True
            self._write_failed(ssid, server, path, exc)
            return
        server.lines += len(docs)
        self._write_ok(ssid, server, path)

    def _rewrite(self, ssid: int, server: _Server) -> None:
        """Replace the file atomically with the live entries (delete it when there are none)."""
        path = self.path(ssid)
        if path is None or self.directory is None:
            return
        try:
            if not server.entries:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    _sync_directory(self.directory)
            else:
                self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                lines = [_line(_header(ssid)), *(_line(_entry_doc(e)) for e in server.entries.values())]
                payload = b"".join(lines)
                tmp = self.directory / f".{path.name}.{os.getpid()}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
                try:
                    os.fchmod(fd, FILE_MODE)  # an existing temp file keeps its mode otherwise
                    _write_all(fd, payload)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
                _sync_directory(self.directory)
        except OSError as exc:
            server.dirty = True
            self._write_failed(ssid, server, path, exc)
            return
        server.dirty = False
        server.lines = len(server.entries)
        self._write_ok(ssid, server, path)

    @staticmethod
    def _write_failed(ssid: int, server: _Server, path: FsPath, exc: OSError) -> None:
        if not server.write_failed:
            LOG.error("server %d: cannot store notifications in %s: %s; keeping them in memory",
                      ssid, path, exc.strerror or exc)  # fmt: skip
        server.write_failed = True

    @staticmethod
    def _write_ok(ssid: int, server: _Server, path: FsPath) -> None:
        if server.write_failed:
            LOG.info("server %d: storing notifications in %s again", ssid, path)
        server.write_failed = False


# -- encoding ----------------------------------------------------------------------------


def _header(ssid: int) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "ssid": ssid}


def _line(doc: dict[str, Any]) -> bytes:
    """One line of compact JSON (ASCII, so no raw newline can appear inside)."""
    return json.dumps(doc, separators=(",", ":")).encode("ascii") + b"\n"


def _entry_doc(entry: StoredNotification) -> dict[str, Any]:
    records = [{"path": str(r.path), "value": dump_value(r.value), "time": r.time} for r in entry.records]
    return {"seq": entry.seq, "ssid": entry.ssid, "ident": entry.ident, "target": entry.target,
            "confirmable": entry.confirmable, "stored_at": entry.stored_at, "records": records}  # fmt: skip


def _parse(ssid: int, lines: list[bytes], server: _Server) -> None:
    """Fill ``server`` from the complete lines of a file; ValueError (or similar) when unusable."""
    if not lines:
        return
    header = json.loads(lines[0])
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError("not a notification store")
    if header.get("version") != VERSION:
        raise ValueError(f"unknown version {header.get('version')!r} (this lwm2md writes {VERSION})")
    if header.get("ssid") != ssid:
        raise ValueError(f"the file is for server {header.get('ssid')!r}")
    for number, line in enumerate(lines[1:], start=2):
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise ValueError(f"line {number}: not an object")
        if "removed" in doc:
            removed = doc["removed"]
            if not isinstance(removed, list) or not all(_is_int(seq) for seq in removed):
                raise ValueError(f"line {number}: bad removal")
            for seq in removed:
                server.entries.pop(seq, None)
        else:
            entry = _entry(doc, ssid)
            if entry.seq < server.next_seq:
                raise ValueError(f"line {number}: entry {entry.seq} out of order")
            server.entries[entry.seq] = entry
            server.next_seq = entry.seq + 1
        server.lines += 1


def _entry(doc: dict[str, Any], ssid: int) -> StoredNotification:
    seq, ident, target = doc["seq"], doc["ident"], doc["target"]
    confirmable, stored_at, raw_records = doc["confirmable"], doc["stored_at"], doc["records"]
    if not _is_int(seq) or doc["ssid"] != ssid or not (ident is None or _is_int(ident)):
        raise ValueError(f"bad entry header {seq!r}")
    if not isinstance(target, str) or not isinstance(confirmable, bool) or not _is_number(stored_at):
        raise ValueError(f"entry {seq}: bad target, confirmable flag or storage time")
    if not isinstance(raw_records, list) or not raw_records:
        raise ValueError(f"entry {seq}: no records")
    records: list[Record] = []
    for raw in raw_records:
        if not isinstance(raw, dict) or not isinstance(raw["path"], str):
            raise ValueError(f"entry {seq}: bad record")
        path = Path.parse(raw["path"])
        stamp = raw.get("time")
        if path.level < 3 or not (stamp is None or _is_number(stamp)):
            raise ValueError(f"entry {seq}: bad record path or time")
        records.append(Record(path, load_value(raw["value"]), None if stamp is None else float(stamp)))
    return StoredNotification(ssid, ident, target, tuple(records), confirmable, float(stored_at), seq)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- file helpers ----------------------------------------------------------------------------


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def _sync_directory(directory: FsPath) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
