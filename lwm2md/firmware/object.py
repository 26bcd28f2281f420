"""The Firmware Update object (/5/0) and its state machine.

State (/5/0/3) and Update Result (/5/0/5) move as the Core TS draws it:

- Idle -> Downloading: a Package URI write that parses (pull) or the first
  Block1 block of a Package write (push); Update Result back to 0. A URI
  that does not parse leaves the state Idle with 7 (invalid URI) or 9
  (unsupported protocol); the write itself succeeds.
- Downloading -> Downloaded: the whole package is stored, its type has an
  installer (else Idle, 6) and its SHA-256 matches the expected digest
  when one is known (else Idle, 5). A download that fails ends in Idle
  with 2 (out of storage), 4 (connection lost, after the configured
  retries, each resuming where it stopped), 7 or 9.
- Downloaded -> Updating: Execute Update (/5/0/2), or at once when
  Automatic Upgrade at Download (/5/0/14) is true. The digest is checked
  again on the stored file first (Idle, 5, and the installer never runs).
- Updating -> Idle with 1 on success; -> Downloaded with 8 (or 2) when the
  installer failed; -> Idle with 5 or 6 when the helper refused the package.
- Writing an empty Package URI or an empty/NULL Package resets to Idle
  with 0; Cancel (/5/0/10) resets to Idle with 10. Both are refused (4.05)
  while Updating; so are Update outside Downloaded and URI or package
  writes outside Idle.

Every change goes through :meth:`ObjectInstance.set`, so observers are
notified of each transition; Last State Change Time (/5/0/12) is set first.
The record (``<state_dir>/firmware/state.json``) is saved at each
transition and before the installer runs, so a restart resumes a pull,
keeps a downloaded package, and reports the outcome of an update that
restarted the daemon (or the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from lwm2md.codec import ContentFormat
from lwm2md.engine.clock import Clock
from lwm2md.engine.requests import CHANGED, InboundRequest, Outcome
from lwm2md.errors import BadRequest, InternalError, Lwm2mError, MethodNotAllowed, code_byte
from lwm2md.firmware.download import (
    PROTOCOL_CODES,
    DownloadError,
    Fetcher,
    PackageUri,
    UriProblem,
    parse_package_uri,
)
from lwm2md.firmware.installer import Installer, InstallOutcome, InstallRequest
from lwm2md.firmware.settings import FirmwareConfig
from lwm2md.firmware.store import OutOfStorage, PackageStore, PackageWriter
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef, ResourceData
from lwm2md.objects.tree import ObjectInstance
from lwm2md.persist import StateError, StateFile

LOG = logging.getLogger(__name__)

FIRMWARE_OID = 5
PACKAGE, PACKAGE_URI, UPDATE, STATE, RESULT = 0, 1, 2, 3, 5
PKG_NAME, PKG_VERSION, PROTOCOLS, DELIVERY, CANCEL = 6, 7, 8, 9, 10
SEVERITY, LAST_CHANGE, MAX_DEFER, AUTO_UPDATE = 11, 12, 13, 14

STATE_FILE = "state.json"
POLL_INTERVAL = 2.0
"""Seconds between looks for an install result after a restart."""


class State(IntEnum):
    IDLE = 0
    DOWNLOADING = 1
    DOWNLOADED = 2
    UPDATING = 3


class Result(IntEnum):
    INITIAL = 0
    SUCCESS = 1
    NO_STORAGE = 2
    OUT_OF_RAM = 3
    CONNECTION_LOST = 4
    INTEGRITY = 5
    UNSUPPORTED_TYPE = 6
    INVALID_URI = 7
    FAILED = 8
    UNSUPPORTED_PROTOCOL = 9
    CANCELLED = 10
    DEFERRED = 11


class EntityTooLarge(Lwm2mError):
    """4.13: the pushed package does not fit."""

    code = code_byte(4, 13)


@dataclass
class Record:
    """What survives a restart (``state.json``); digests are hex."""

    state: int = State.IDLE
    result: int = Result.INITIAL
    uri: str = ""
    validator: str | None = None
    total: int | None = None
    size: int | None = None
    sha256: str | None = None
    expected: str | None = None
    package_type: str | None = None
    name: str | None = None
    version: str | None = None
    install_id: str | None = None
    install_deadline: float | None = None
    severity: int = 1
    max_defer: int = 0
    auto_update: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """A record from stored content; unknown keys are ignored, bad types raise ValueError."""
        record = cls()
        for f in dataclasses.fields(cls):
            if f.name in data:
                setattr(record, f.name, data[f.name])
        if record.state not in tuple(State) or record.result not in tuple(Result):
            raise ValueError(f"state {record.state!r} / result {record.result!r}")
        return record


class _Sink:
    """Writes one download or push into the package file for :class:`FirmwareUpdate`."""

    def __init__(self, owner: FirmwareUpdate) -> None:
        self._owner = owner
        self.writer: PackageWriter | None = None

    def begin(self, offset: int, validator: str | None, total: int | None) -> None:
        owner = self._owner
        self.close()
        owner.store.check_space(total, offset)
        self.writer = owner.store.writer(offset)
        owner.record.validator = validator
        owner.record.total = total
        owner.save()

    def write(self, data: bytes) -> None:
        if self.writer is None:
            raise RuntimeError("write before begin")
        self.writer.write(data)

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.commit()
            self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class PushSink:
    """One streamed Block1 Package write (the transport's block sink).

    :meth:`write` takes each block in order; :meth:`finish` answers the
    last one; :meth:`abort` ends a transfer that will not complete.
    """

    def __init__(self, owner: FirmwareUpdate) -> None:
        self._owner = owner
        self._sink = _Sink(owner)
        self._sink.begin(0, None, None)
        self.received = 0
        self.first = b""

    def write(self, data: bytes) -> None:
        owner = self._owner
        if owner._push is not self:
            raise MethodNotAllowed("this package transfer was reset")
        try:
            self._sink.write(data)
        except OutOfStorage as exc:
            owner._push_failed(self, Result.NO_STORAGE, str(exc))
            raise EntityTooLarge(str(exc)) from None
        except OSError as exc:
            owner._push_failed(self, Result.NO_STORAGE, f"cannot store the package: {exc.strerror or exc}")
            raise InternalError("cannot store the package") from None
        if self.received == 0:
            self.first = bytes(data[:1])
        self.received += len(data)

    async def finish(self) -> Outcome:
        owner = self._owner
        if owner._push is not self:
            raise MethodNotAllowed("this package transfer was reset")
        owner._push = None
        try:
            self._sink.commit()
        except (OSError, OutOfStorage) as exc:
            owner._fail(Result.NO_STORAGE, f"cannot store the package: {exc}")
            raise EntityTooLarge("cannot store the package") from None
        if self.received == 0 or (self.received == 1 and self.first == b"\0"):
            owner._reset(Result.INITIAL, "empty Package written")
        else:
            LOG.info("firmware: package of %d bytes pushed", self.received)
            owner._spawn(owner._downloaded())
        return Outcome(CHANGED)

    def abort(self, reason: str) -> None:
        self._sink.close()
        self._owner._push_failed(self, Result.CONNECTION_LOST, f"push abandoned: {reason}")


class FirmwareUpdate(ObjectInstance):
    """/5/0 for this gateway; build it with :func:`build_firmware`.

    ``fetchers`` map a URI scheme to its fetcher; ``on_updated`` is called
    after an update succeeded (also when that is learnt after a restart), so
    the registration can Update.
    """

    def __init__(
        self,
        definition: ObjectDef,
        config: FirmwareConfig,
        state_dir: str | os.PathLike[str],
        clock: Clock,
        fetchers: Mapping[str, Fetcher],
        *,
        on_updated: Callable[[], None] | None = None,
    ) -> None:
        if definition.oid != FIRMWARE_OID:
            raise ValueError(f"object {definition.oid} is not the Firmware Update object")
        super().__init__(definition, 0)
        self.config = config
        self.clock = clock
        self.store = PackageStore(state_dir, config.max_package_size)
        self.installer = Installer(self.store.directory, config.helper, config.install_timeout)
        self.fetchers = dict(fetchers)
        self.on_updated = on_updated
        self._file = StateFile(self.store.directory, STATE_FILE)
        self._task: asyncio.Task[None] | None = None
        self._push: PushSink | None = None
        self._started = False
        self.record = self._load()
        defined = definition.resources
        self._values[PACKAGE_URI] = self.record.uri
        self._values[STATE] = self.record.state
        self._values[RESULT] = self.record.result
        self._values[DELIVERY] = config.delivery_method
        if PROTOCOLS in defined and config.protocols:
            self._values[PROTOCOLS] = {i: PROTOCOL_CODES[s] for i, s in enumerate(config.protocols)}
        if SEVERITY in defined:
            self._values[SEVERITY] = self.record.severity
        if MAX_DEFER in defined:
            self._values[MAX_DEFER] = self.record.max_defer
        if AUTO_UPDATE in defined:
            self._values[AUTO_UPDATE] = self.record.auto_update
        if LAST_CHANGE in defined:
            self._values[LAST_CHANGE] = int(clock.wall())
        self._show_names()
        self.handle(PACKAGE_URI, write=self._write_uri)
        self.handle(UPDATE, execute=self._execute_update)
        if CANCEL in defined:
            self.handle(CANCEL, execute=self._execute_cancel)
        self.handle(SEVERITY, write=self._write_setting("severity", range(3)))
        self.handle(MAX_DEFER, write=self._write_setting("max_defer", None))
        self.handle(AUTO_UPDATE, write=self._write_setting("auto_update", None))

    # -- persistence ---------------------------------------------------------

    def _load(self) -> Record:
        try:
            content = self._file.load()
            record = Record.from_dict(content) if content is not None else Record()
        except StateError as exc:
            LOG.error("firmware: %s; starting from Idle", exc)
            return Record()
        except (ValueError, TypeError) as exc:
            LOG.error("firmware: stored state unusable (%s); starting from Idle", exc)
            return Record()
        if record.state == State.DOWNLOADING and not record.uri:
            LOG.warning("firmware: a pushed package was cut short by the restart; discarded")
            self.store.remove()
            record = self._cleared(record, Result.CONNECTION_LOST)
        elif record.state == State.DOWNLOADED and self.store.size() != record.size:
            LOG.error("firmware: the downloaded package is gone or changed; back to Idle")
            self.store.remove()
            record = self._cleared(record, Result.INTEGRITY)
        return record

    @staticmethod
    def _cleared(old: Record, result: int) -> Record:
        return Record(result=result, severity=old.severity, max_defer=old.max_defer,
                      auto_update=old.auto_update)  # fmt: skip

    def save(self) -> None:
        """Store the record now (errors are logged)."""
        try:
            self._file.save(dataclasses.asdict(self.record))
        except OSError as exc:
            LOG.error("firmware: cannot store state in %s: %s", self._file.path, exc)

    # -- transitions ---------------------------------------------------------

    @property
    def state(self) -> State:
        return State(self.record.state)

    @property
    def result(self) -> Result:
        return Result(self.record.result)

    def _enter(self, state: State, result: Result | None = None) -> None:
        """Move to ``state`` (and ``result``), persist, notify once."""
        with self.batch():
            if state != self.record.state:
                if LAST_CHANGE in self.definition.resources:
                    self.set(LAST_CHANGE, int(self.clock.wall()))
                LOG.info("firmware: state %s -> %s", State(self.record.state).name, state.name)
            self.record.state = state
            if result is not None:
                self.record.result = result
            self.save()
            self.set(STATE, int(state))
            self.set(RESULT, int(self.record.result))
            self._show_names()

    def _show_names(self) -> None:
        for rid, value in ((PKG_NAME, self.record.name), (PKG_VERSION, self.record.version)):
            if rid not in self.definition.resources:
                continue
            if value is not None:
                self.set(rid, value)
            elif rid in self._values:
                self.remove(rid)
                self.changed(rid)

    def _fail(self, result: Result, reason: str, *, keep_partial: bool = False) -> None:
        """Back to Idle with ``result``; the package goes unless a resumable partial is kept."""
        LOG.warning("firmware: %s (Update Result %d)", reason, int(result))
        if not keep_partial:
            self.store.remove()
            self.record.validator = None
        self.record.install_id = None
        self._enter(State.IDLE, result)

    def _reset(self, result: Result, reason: str) -> None:
        """Idle with ``result``: downloads stopped, package and partial removed."""
        if self.state == State.UPDATING:
            raise MethodNotAllowed("an update is running")
        LOG.info("firmware: %s; back to Idle", reason)
        self._cancel_task()
        self._push = None
        self.store.remove()
        keep = self.record
        self.record = self._cleared(keep, result)
        self.record.state = keep.state  # so _enter logs the transition
        self._values[PACKAGE_URI] = ""
        self._enter(State.IDLE, result)
        self.changed(PACKAGE_URI)

    def _spawn(self, coro: Any) -> None:
        self._cancel_task()
        self._task = asyncio.get_running_loop().create_task(self._guard(coro), name="firmware")

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("firmware: unexpected failure")
            if self.state in (State.DOWNLOADING, State.UPDATING):
                self._fail(Result.FAILED if self.state == State.UPDATING else Result.CONNECTION_LOST,
                           "internal error")  # fmt: skip

    def _cancel_task(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    # -- resources -------------------------------------------------------------

    def write(self, rid: int, data: ResourceData) -> None:
        """Package (/5/0/0) is never stored in memory; the rest as usual.

        Before :meth:`start` (stored values restored at start-up) Package and
        Package URI writes are ignored: the firmware record is what counts.
        """
        if rid in (PACKAGE, PACKAGE_URI) and not self._started:
            LOG.debug("firmware: write of /5/0/%d before start ignored", rid)
            return
        if rid == PACKAGE:
            self._write_package(data)
            return
        super().write(rid, data)

    def _write_setting(self, name: str, allowed: range | None) -> Callable[[ResourceData], None]:
        def write(data: ResourceData) -> None:
            if allowed is not None and data not in allowed:
                raise BadRequest(f"{name} must be in {allowed.start}..{allowed.stop - 1}")
            setattr(self.record, name, data)
            self.save()

        return write

    def _write_package(self, data: ResourceData) -> None:
        """A Package write assembled in memory (no Block1, or a non-opaque format)."""
        if not isinstance(data, bytes):
            raise BadRequest("Package is opaque")
        if data in (b"", b"\0"):
            self._reset(Result.INITIAL, "empty Package written")
            return
        if not self.config.push:
            raise MethodNotAllowed("push delivery is disabled")
        sink = self.block_sink_for_push()
        sink.write(data)
        asyncio.get_running_loop().create_task(sink.finish())

    def _write_uri(self, data: ResourceData) -> None:
        if not isinstance(data, str):
            raise BadRequest("Package URI is a string")
        if data == "":
            self._reset(Result.INITIAL, "empty Package URI written")
            return
        if self.state != State.IDLE:
            raise MethodNotAllowed(f"Package URI cannot be written while {self.state.name}")
        try:
            target = parse_package_uri(data, self.config.protocols)
        except UriProblem as problem:
            LOG.warning("firmware: Package URI refused: %s", problem)
            self._enter(State.IDLE, Result(problem.result))
            return
        record = self.record
        resumable = record.uri == data and record.validator is not None and self.store.size() > 0
        if not resumable:
            self.store.remove()
            record.validator = None
        record.uri = data
        record.total = record.size = record.sha256 = record.package_type = None
        record.name = os.path.basename(urllib.parse.urlsplit(data).path) or None
        record.version = None
        digest = target.digest or self.config.digest
        record.expected = digest.hex() if digest else None
        self._enter(State.DOWNLOADING, Result.INITIAL)
        self._spawn(self._pull(target))

    # -- push --------------------------------------------------------------------

    def block1_sink(self, request: InboundRequest, size1: int | None) -> PushSink | None:
        """The transport's hook for a Block1 request: a sink for a Package push, else None.

        Called with block 0 (``size1``: the announced total, if any). Raises
        Lwm2mError to refuse the transfer outright.
        """
        if request.path != Path(FIRMWARE_OID, self.iid, PACKAGE) or request.method not in ("PUT", "POST"):
            return None
        if request.content_format not in (None, ContentFormat.OPAQUE):
            return None  # e.g. TLV: assembled in memory and decoded by the engine
        if not self._started:
            raise MethodNotAllowed("firmware update is not running")
        if not self.config.push:
            raise MethodNotAllowed("push delivery is disabled")
        try:
            self.store.check_space(size1)
        except OutOfStorage as exc:
            if self.state == State.IDLE:
                self._enter(State.IDLE, Result.NO_STORAGE)
            raise EntityTooLarge(str(exc)) from None
        return self.block_sink_for_push()

    def block_sink_for_push(self) -> PushSink:
        """Start a push (Idle -> Downloading); MethodNotAllowed in any other state."""
        if self._push is not None and self.state == State.DOWNLOADING:
            self._push.abort("a new package transfer began")
        if self.state != State.IDLE:
            raise MethodNotAllowed(f"Package cannot be written while {self.state.name}")
        self._cancel_task()
        self.store.remove()
        self.record = self._cleared(self.record, self.record.result)
        digest = self.config.digest
        self.record.expected = digest.hex() if digest else None
        try:
            sink = PushSink(self)
        except (OutOfStorage, OSError) as exc:
            self._enter(State.IDLE, Result.NO_STORAGE)
            raise EntityTooLarge(f"cannot store the package: {exc}") from None
        self._push = sink
        self._values[PACKAGE_URI] = ""
        self._enter(State.DOWNLOADING, Result.INITIAL)
        return sink

    def _push_failed(self, sink: PushSink, result: Result, reason: str) -> None:
        if self._push is not sink:
            return
        self._push = None
        self._fail(result, reason)

    # -- pull ----------------------------------------------------------------------

    async def _pull(self, target: PackageUri) -> None:
        fetcher = self.fetchers.get(target.scheme)
        if fetcher is None:
            self._fail(Result.UNSUPPORTED_PROTOCOL, f"no fetcher for {target.scheme}")
            return
        attempt = 0
        while True:
            offset = self.store.size() if self.record.validator else 0
            sink = _Sink(self)
            try:
                if offset:
                    LOG.info("firmware: resuming %s at byte %d", target.host, offset)
                await fetcher.fetch(target, offset, self.record.validator, sink)
                sink.commit()
                break
            except DownloadError as exc:
                sink.close()
                if exc.retryable and attempt < self.config.download_retries:
                    attempt += 1
                    delay = self.config.retry_delay * 2 ** (attempt - 1)
                    LOG.warning("firmware: download from %s interrupted at byte %d (%s); retry %d in %.0f s",
                                target.host, self.store.size(), exc, attempt, delay)  # fmt: skip
                    await self.clock.sleep(delay)
                    continue
                resumable = exc.retryable and self.record.validator is not None
                reason = f"download from {target.host} failed: {exc}"
                self._fail(Result(exc.result), reason, keep_partial=resumable)
                return
            except OutOfStorage as exc:
                sink.close()
                self._fail(Result.NO_STORAGE, str(exc))
                return
            except OSError as exc:
                sink.close()
                self._fail(Result.NO_STORAGE, f"cannot store the package: {exc.strerror or exc}")
                return
        LOG.info("firmware: downloaded %d bytes from %s", self.store.size(), target.host)
        await self._downloaded()

    async def _downloaded(self) -> None:
        """Check the stored package and enter Downloaded (or Idle with 5 or 6)."""
        record = self.record
        size = self.store.size()
        digest = await asyncio.to_thread(self.store.sha256)
        if record.expected and digest.hex() != record.expected.lower():
            self._fail(Result.INTEGRITY, "package digest does not match the expected SHA-256")
            return
        kind = self.store.detect_type()
        if kind is None or kind not in self.config.installers:
            what = f"{kind} packages have no installer configured" if kind else "package type not recognised"
            self._fail(Result.UNSUPPORTED_TYPE, what)
            return
        if kind == "deb":
            fields = await asyncio.to_thread(self.store.deb_fields)
            if fields is not None:
                record.name, record.version = fields
        record.size, record.sha256, record.package_type = size, digest.hex(), kind
        self._enter(State.DOWNLOADED, Result.INITIAL)
        if record.auto_update:
            LOG.info("firmware: Automatic Upgrade at Download is set; updating now")
            self._begin_update(None)

    # -- update ------------------------------------------------------------------

    def _execute_update(self, args: str | None) -> None:
        if self.state != State.DOWNLOADED:
            raise MethodNotAllowed(f"Update needs a downloaded package (state is {self.state.name})")
        self._begin_update(_digest_argument(args))

    def _begin_update(self, expected: bytes | None) -> None:
        self._enter(State.UPDATING, Result.INITIAL)
        self._spawn(self._update(expected))

    async def _update(self, expected: bytes | None) -> None:
        await asyncio.sleep(0)  # the 2.04 for the Execute leaves first
        record = self.record
        digest = await asyncio.to_thread(self.store.sha256) if self.store.exists() else b""
        wanted = expected.hex() if expected else record.expected
        if digest.hex() != record.sha256:
            self._fail(Result.INTEGRITY, "the stored package changed since it was downloaded")
            return
        if wanted and digest.hex() != wanted.lower():
            self._fail(Result.INTEGRITY, "package digest does not match the expected SHA-256; not installed")
            return
        if self.config.require_digest and not wanted:
            self._fail(Result.INTEGRITY, "no expected digest for the package (require_digest); not installed")
            return
        assert record.package_type is not None and record.sha256 is not None
        ident = uuid.uuid4().hex
        record.install_id = ident
        record.install_deadline = self.clock.wall() + self.config.install_timeout
        self.save()  # before anything runs: a restart finds the update in progress
        self.installer.submit(InstallRequest(ident, record.package_type, record.sha256, str(self.store.path)))
        LOG.warning("firmware: installing %s package %s %s", record.package_type, record.name or "",
                    record.version or "")  # fmt: skip
        outcome = await self.installer.run(ident)
        if outcome is None:  # the helper was killed (lwm2md is being restarted): the install goes on
            await self._await_outcome()
            return
        self._finished(outcome)

    async def _await_outcome(self) -> None:
        """After a restart in Updating: wait for the helper's result (until the install deadline)."""
        ident = self.record.install_id
        while True:
            outcome = self.installer.collect(ident) if ident else None
            if outcome is not None:
                self._finished(outcome)
                return
            deadline = self.record.install_deadline
            if ident is None or deadline is None or self.clock.wall() >= deadline:
                self._finished(InstallOutcome(ident or "", Result.FAILED, "the install left no outcome"))
                return
            await self.clock.sleep(POLL_INTERVAL)

    def _finished(self, outcome: InstallOutcome) -> None:
        self.installer.clear()
        self.record.install_id = self.record.install_deadline = None
        if outcome.ok:
            LOG.warning("firmware: update succeeded: %s", outcome.reason)
            self.store.remove()
            self.record.validator = None
            self._enter(State.IDLE, Result.SUCCESS)
            if self.on_updated is not None:
                try:
                    self.on_updated()
                except Exception:
                    LOG.exception("firmware: on_updated failed")
            return
        LOG.error("firmware: update failed (Update Result %d): %s", outcome.result, outcome.reason)
        if outcome.result in (Result.INTEGRITY, Result.UNSUPPORTED_TYPE):
            self._fail(Result(outcome.result), "package refused by the install helper")
        else:
            self._enter(State.DOWNLOADED, Result(outcome.result))

    def _execute_cancel(self, args: str | None) -> None:
        if self.state not in (State.DOWNLOADING, State.DOWNLOADED):
            raise MethodNotAllowed(f"nothing to cancel while {self.state.name}")
        if self._push is not None:
            self._push = None
        self._reset(Result.CANCELLED, "firmware update cancelled")

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Resume what the record says: a pull in progress, or an update whose outcome is pending."""
        self._started = True
        if self.state == State.DOWNLOADING and self.record.uri:
            try:
                target = parse_package_uri(self.record.uri, self.config.protocols)
            except UriProblem as problem:
                self._fail(Result(problem.result), f"stored Package URI unusable: {problem}")
                return
            LOG.info("firmware: resuming the download from %s", target.host)
            self._spawn(self._pull(target))
        elif self.state == State.UPDATING:
            LOG.info("firmware: an update was running before the restart; waiting for its outcome")
            self._spawn(self._await_outcome())

    async def stop(self) -> None:
        """Stop downloads and waits (their state stays stored) and close the fetchers."""
        self._started = False
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for fetcher in {id(f): f for f in self.fetchers.values()}.values():
            await fetcher.close()

    async def idle(self) -> None:
        """Wait until the current download/update task (if any) has finished (tests, tools)."""
        while (task := self._task) is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)


def _digest_argument(args: str | None) -> bytes | None:
    """The SHA-256 an Update's argument ``0='<64 hex>'`` names, if any; BadRequest when malformed."""
    if not args:
        return None
    for item in args.split(","):
        number, _, value = item.partition("=")
        if number == "0" and value:
            text = value.strip("'")
            try:
                digest = bytes.fromhex(text)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise BadRequest("Update argument 0 must be a SHA-256 in hex")
            return digest
    return None
