"""An asyncio AT command channel over one serial port (pyserial).

:class:`AtChannel` owns the port. A dedicated reader thread blocks on the
port (pyserial ``read`` with a short timeout, so it works the same for a
tty, a pty and ``socket://``) and hands bytes to the event loop with
``call_soon_threadsafe``; all parsing happens on the loop. Writes run in a
worker thread so a stuck port never blocks the loop.

Contract:

- One command at a time (an ``asyncio.Lock``); :meth:`AtChannel.command`
  returns the information lines and the final result code, or raises
  :class:`AtError` (``ERROR``, ``+CME ERROR: n``, ``+CMS ERROR: n``,
  ``NO CARRIER`` ...), :class:`AtTimeout` or :class:`PortUnavailable`.
- Unsolicited result codes go to the listeners registered with
  :meth:`AtChannel.on_unsolicited`, whether or not a command is running.
  ``+CMT``/``+CDS``/``+CBM`` carry their PDU (or text) on the next line.
- Echo lines are tolerated; the init sequence starts with ``ATE0``.
- Recovery: when the port fails (the USB device vanished), the modem
  restarts (``RDY``) or stops answering (``max_timeouts`` timeouts in a
  row), the channel logs once, reopens with exponential backoff on the
  injected clock, re-runs the init sequence and tells the ready listeners.
  It never raises out of its own tasks.

Command timeouts are wall-clock (they bound real I/O); only backoff waits
use the injected :class:`~lwm2md.engine.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lwm2md.engine.clock import Clock, LoopClock

LOG = logging.getLogger(__name__)

ChannelState = Literal["open", "reopening", "closed"]

CTRL_Z = b"\x1a"
ESC = b"\x1b"
READ_POLL = 0.1
"""Seconds the reader thread blocks in one ``read`` before checking for shutdown."""
WRITE_TIMEOUT = 5.0
"""pyserial write timeout in seconds."""
INIT_TIMEOUT = 3.0
"""Seconds each init-sequence command may take."""

FINAL_OK = ("OK", "CONNECT")
FINAL_ERROR = (
    "ERROR",
    "+CME ERROR",
    "+CMS ERROR",
    "NO CARRIER",
    "NO DIALTONE",
    "BUSY",
    "NO ANSWER",
    "COMMAND NOT SUPPORT",
)
TWO_LINE_URCS = ("+CMT", "+CDS", "+CBM")
"""URCs whose PDU (or text) follows on the next line."""
KNOWN_URCS = (
    *TWO_LINE_URCS,
    "+CMTI",
    "+CDSI",
    "+CBMI",
    "+CREG",
    "+CGREG",
    "+CEREG",
    "+C5GREG",
    "+CGEV",
    "+CPIN",
    "+CFUN",
    "+CUSD",
    "+CIEV",
    "+CTZV",
    "+CTZE",
    "+CRING",
    "RING",
    "RDY",
    "POWERED DOWN",
    "+QIND",
    "+QIURC",
    "+QUSIM",
    "SMS DONE",
    "PB DONE",
)
RESET_INDICATORS = ("RDY",)
"""URCs meaning the modem restarted (and forgot ATE0 and every setting)."""


class ModemError(Exception):
    """Base of every failure reported by the AT channel."""


class AtError(ModemError):
    """The modem answered with an error result code.

    ``final`` is the result line as received; ``code`` the number of a
    ``+CME ERROR``/``+CMS ERROR`` (None for plain ``ERROR`` or verbose text);
    ``kind`` is ``"CME"``, ``"CMS"`` or None.
    """

    def __init__(self, final: str, command: str = "", lines: Sequence[str] = ()) -> None:
        super().__init__(f"{command}: {final}" if command else final)
        self.final = final
        self.command = command
        self.lines = list(lines)
        self.kind: str | None = None
        self.code: int | None = None
        match = re.match(r"\+(CME|CMS) ERROR:\s*(.*)$", final)
        if match:
            self.kind = match.group(1)
            text = match.group(2).strip()
            self.code = int(text) if text.isdigit() else None


class AtTimeout(ModemError):
    """No final result code (or no ``> `` prompt) within the timeout."""


class PortUnavailable(ModemError):
    """The channel is closed or reopening, or the port failed during the command."""


@dataclass(frozen=True)
class AtResponse:
    """Information lines (no echo, no URCs) and the final result code of one command."""

    lines: list[str]
    final: str

    def values(self, prefix: str) -> list[str]:
        """Payloads of the lines starting with ``prefix`` (e.g. ``"+CSQ"``), prefix and colon removed."""
        out: list[str] = []
        for line in self.lines:
            if prefix_matches(prefix, line):
                out.append(line[len(prefix) :].lstrip(":").strip())
        return out

    def first(self, prefix: str) -> str | None:
        """The first of :meth:`values`, or None."""
        found = self.values(prefix)
        return found[0] if found else None


@dataclass(frozen=True)
class Unsolicited:
    """One unsolicited result code; ``body`` is the next line for ``+CMT``-style URCs."""

    line: str
    body: str | None = None

    @property
    def name(self) -> str:
        """The part before the colon (``+CMTI``), or the whole line (``RING``)."""
        return self.line.split(":", 1)[0].strip()

    @property
    def args(self) -> str:
        """The text after the colon, stripped (empty when there is none)."""
        return self.line.split(":", 1)[1].strip() if ":" in self.line else ""


UnsolicitedListener = Callable[[Unsolicited], None]
ReadyListener = Callable[[], None]


class SerialPort(Protocol):
    """The part of a pyserial port the channel uses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


PortOpener = Callable[[], SerialPort]


def prefix_matches(prefix: str, line: str) -> bool:
    """True if ``line`` starts with ``prefix`` as a whole token.

    ``"+CMT"`` matches ``"+CMT: ,23"`` but not ``"+CMTI: ..."``; a prefix
    ending in ``:`` or a space matches as plain text. Case-insensitive.
    """
    if line[: len(prefix)].upper() != prefix.upper():
        return False
    if len(line) == len(prefix) or prefix[-1:] in (":", " "):
        return True
    return not line[len(prefix)].isalnum()


def is_final(line: str) -> bool:
    """True for a final result code (success or error)."""
    return any(prefix_matches(code, line) for code in (*FINAL_OK, *FINAL_ERROR))


def is_error(line: str) -> bool:
    """True for an error final result code."""
    return any(prefix_matches(code, line) for code in FINAL_ERROR)


def response_prefix(command: str) -> str | None:
    """The information-line prefix a command answers with: ``AT+CREG?`` -> ``+CREG``."""
    body = command.strip()
    if body[:2].upper() == "AT":
        body = body[2:]
    match = re.match(r"([+#^$%][A-Za-z0-9]+)", body)
    return match.group(1).upper() if match else None


def serial_opener(url: str, baudrate: int) -> PortOpener:
    """A :data:`PortOpener` for a device path, pty path or any pyserial URL (``socket://h:p``)."""

    def open_port() -> SerialPort:
        import serial  # imported here: the daemon runs without pyserial unless a modem is configured

        port: SerialPort = serial.serial_for_url(
            url, baudrate=baudrate, timeout=READ_POLL, write_timeout=WRITE_TIMEOUT, exclusive=True
        )
        return port

    return open_port


@dataclass
class _Pending:
    command: str
    expect_prompt: bool
    final: asyncio.Future[str]
    prompt: asyncio.Future[bool]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.echo = self.command.strip().upper()
        self.prefix = response_prefix(self.command)

    def is_echo(self, line: str) -> bool:
        return line.strip().upper() == self.echo

    def owns(self, line: str) -> bool:
        return self.prefix is not None and prefix_matches(self.prefix, line)

    def finish(self, line: str) -> None:
        if not self.prompt.done():
            self.prompt.set_result(False)
        if not self.final.done():
            self.final.set_result(line)

    def fail(self, exc: BaseException) -> None:
        for future in (self.prompt, self.final):
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: nobody may be waiting on the prompt


class AtChannel:
    """An AT command channel on one serial port, with URC dispatch and self-healing.

    ``url`` is a device path (``/dev/ttyUSB2``), a pty path or a pyserial URL
    (``socket://127.0.0.1:7000``); ``opener`` replaces pyserial (in-process
    fakes). ``init_commands`` run after ``ATE0`` at every (re)open and modem
    reset; one answering ERROR is logged and skipped, one timing out fails
    the attempt. Backoff starts at ``backoff_initial`` seconds and doubles up
    to ``backoff_max``.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        clock: Clock | None = None,
        opener: PortOpener | None = None,
        init_commands: Iterable[str] = ("AT+CMEE=1",),
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        max_timeouts: int = 3,
        init_timeout: float = INIT_TIMEOUT,
    ) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("backoff must satisfy 0 < backoff_initial <= backoff_max")
        if max_timeouts < 1:
            raise ValueError("max_timeouts must be at least 1")
        self.url = url
        self.baudrate = baudrate
        self.clock: Clock = clock or LoopClock()
        self._opener = opener or serial_opener(url, baudrate)
        self.init_commands: list[str] = list(init_commands)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_timeouts = max_timeouts
        self.init_timeout = init_timeout
        self.open_attempts = 0
        """Port open attempts so far (the first open included)."""
        self.recoveries = 0
        """Times the channel came back to ``open`` after losing the port or a modem reset."""
        self._state: ChannelState = "closed"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._opened = asyncio.Event()
        self._port: SerialPort | None = None
        self._reader: threading.Thread | None = None
        self._stop_reading = threading.Event()
        self._generation = 0
        self._buffer = bytearray()
        self._urc_head: str | None = None
        self._pending: _Pending | None = None
        self._timeouts = 0
        self._recovery: asyncio.Task[None] | None = None
        self._listeners: list[tuple[str, UnsolicitedListener]] = []
        self._ready_listeners: list[ReadyListener] = []
        self._reset_indicators: list[str] = list(RESET_INDICATORS)
        self._urc_prefixes: list[str] = list(KNOWN_URCS)

    # -- public API ---------------------------------------------------------------

    @property
    def state(self) -> ChannelState:
        """``"open"`` (commands accepted), ``"reopening"`` (recovering) or ``"closed"``."""
        return self._state

    def on_unsolicited(self, prefix: str, callback: UnsolicitedListener) -> Callable[[], None]:
        """Call ``callback(urc)`` for every URC starting with ``prefix``; returns an unsubscribe.

        The prefix is matched as a token (``"+CMT"`` does not see ``+CMTI``)
        and also teaches the channel that such lines are unsolicited.
        """
        entry = (prefix, callback)
        self._listeners.append(entry)
        if not any(p.upper() == prefix.upper() for p in self._urc_prefixes):
            self._urc_prefixes.append(prefix)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return unsubscribe

    def on_ready(self, callback: ReadyListener) -> Callable[[], None]:
        """Call ``callback()`` after every successful (re)initialisation; returns an unsubscribe."""
        self._ready_listeners.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._ready_listeners.remove(callback)

        return unsubscribe

    def add_init_commands(self, commands: Iterable[str]) -> None:
        """Append commands to the init sequence (ones already present are skipped)."""
        for command in commands:
            if command not in self.init_commands:
                self.init_commands.append(command)

    def add_reset_indicator(self, prefix: str) -> None:
        """Treat URCs starting with ``prefix`` as a modem restart (like ``RDY``)."""
        if prefix not in self._reset_indicators:
            self._reset_indicators.append(prefix)
        if prefix not in self._urc_prefixes:
            self._urc_prefixes.append(prefix)

    async def open(self) -> None:
        """Open the port and run the init sequence once.

        If that fails (port missing, modem silent) the failure is logged and
        the channel keeps retrying in the background (state ``reopening``);
        only a malformed URL raises (ValueError). A no-op unless closed.
        """
        if self._state != "closed":
            return
        self._loop = asyncio.get_running_loop()
        self._state = "reopening"
        try:
            await self._attempt(reopen=True)
        except ValueError:
            self._state = "closed"
            await self._shutdown_port()
            raise
        except (OSError, ModemError) as exc:
            LOG.warning("modem %s: cannot open: %s; retrying in the background", self.url, exc)
            await self._shutdown_port()
            self._start_recovery(reopen=True, immediate=False)
            return
        self._became_open()

    async def wait_open(self) -> None:
        """Wait until the channel is open (bound it with ``asyncio.timeout``)."""
        await self._opened.wait()

    async def close(self) -> None:
        """Stop recovery, fail a running command with PortUnavailable and release the port."""
        self._state = "closed"
        self._opened.clear()
        task, self._recovery = self._recovery, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_pending(PortUnavailable("channel closed"))
        await self._shutdown_port()

    async def command(
        self,
        cmd: str,
        *,
        timeout: float = 5.0,
        expect_prompt: bool = False,
        payload: bytes | None = None,
    ) -> AtResponse:
        """Send ``cmd`` and wait for its final result code.

        With ``expect_prompt`` (``AT+CMGS``) the channel waits for ``> ``,
        writes ``payload`` and Ctrl-Z, then waits for the final code; if the
        modem answers without a prompt, the payload is not sent. ValueError
        for a payload without ``expect_prompt`` (or the reverse), or one that
        contains Ctrl-Z/ESC.
        """
        if expect_prompt != (payload is not None):
            raise ValueError("expect_prompt and payload go together")
        if payload is not None and (CTRL_Z in payload or ESC in payload):
            raise ValueError("payload must not contain Ctrl-Z or ESC")
        if "\r" in cmd or "\n" in cmd:
            raise ValueError("command must be a single line")
        async with self._lock:
            if self._state != "open":
                raise PortUnavailable(f"modem {self.url} is {self._state}")
            return await self._transact(cmd, timeout, payload=payload)

    # -- transactions -------------------------------------------------------------

    async def _transact(
        self, cmd: str, timeout: float, *, payload: bytes | None = None, count_timeout: bool = True
    ) -> AtResponse:
        loop = asyncio.get_running_loop()
        pending = _Pending(cmd, payload is not None, loop.create_future(), loop.create_future())
        self._pending = pending
        try:
            try:
                async with asyncio.timeout(timeout):
                    await self._write(cmd.encode("ascii", "replace") + b"\r")
                    if payload is not None and await pending.prompt:
                        await self._write(payload + CTRL_Z)
                    final = await pending.final
            except TimeoutError:
                if payload is not None and not pending.prompt.done():
                    with contextlib.suppress(ModemError):
                        await self._write(ESC)  # leave the text-entry state
                if count_timeout:
                    self._timed_out(cmd)
                raise AtTimeout(f"{cmd}: no answer within {timeout:g} s") from None
        finally:
            if self._pending is pending:
                self._pending = None
        self._timeouts = 0
        if is_error(final):
            raise AtError(final, cmd, pending.lines)
        return AtResponse(pending.lines, final)

    async def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            raise PortUnavailable(f"modem {self.url} has no open port")
        try:
            await asyncio.to_thread(port.write, data)
        except OSError as exc:  # pyserial's SerialException is an OSError
            self._lost(f"write failed: {exc}")
            raise PortUnavailable(f"modem {self.url}: write failed: {exc}") from exc

    def _timed_out(self, cmd: str) -> None:
        self._timeouts += 1
        LOG.debug("modem %s: %s timed out (%d in a row)", self.url, cmd, self._timeouts)
        if self._timeouts >= self.max_timeouts:
            self._lost(f"no answer to {self._timeouts} commands in a row")

    def _fail_pending(self, exc: BaseException) -> None:
        if self._pending is not None:
            self._pending.fail(exc)

    # -- input --------------------------------------------------------------------

    def _on_data(self, generation: int, data: bytes) -> None:
        if generation != self._generation:
            return
        self._buffer += data
        try:
            self._parse()
        except Exception:  # a parser bug must not kill the reader path
            LOG.exception("modem %s: cannot parse input", self.url)
            self._buffer.clear()

    def _parse(self) -> None:
        buf = self._buffer
        while buf:
            pending = self._pending
            if pending is not None and pending.expect_prompt and not pending.prompt.done():
                stripped = buf.lstrip(b"\r\n")
                if stripped.startswith(b">"):
                    cut = len(buf) - len(stripped) + 1
                    if buf[cut : cut + 1] == b" ":
                        cut += 1
                    del buf[:cut]
                    pending.prompt.set_result(True)
                    continue
            ends = [i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0]
            if not ends:
                return
            end = min(ends)
            raw = bytes(buf[:end])
            del buf[: end + 1]
            line = raw.replace(b"\x00", b"").decode("utf-8", "replace").strip()
            if line:
                self._line(line)

    def _line(self, line: str) -> None:
        if self._urc_head is not None:
            head, self._urc_head = self._urc_head, None
            self._dispatch(Unsolicited(head, line))
            return
        pending = self._pending
        if pending is not None:
            if pending.is_echo(line):
                return
            if is_final(line):
                pending.finish(line)
                return
            if not pending.owns(line) and self._is_urc(line):
                self._unsolicited(line)
                return
            pending.lines.append(line)
            return
        if line in ("OK", "ERROR") or any(prefix_matches(p, line) for p in ("+CME ERROR", "+CMS ERROR")):
            LOG.debug("modem %s: stray result %r", self.url, line)
            return
        self._unsolicited(line)

    def _is_urc(self, line: str) -> bool:
        return any(prefix_matches(prefix, line) for prefix in self._urc_prefixes)

    def _unsolicited(self, line: str) -> None:
        if any(prefix_matches(prefix, line) for prefix in TWO_LINE_URCS):
            self._urc_head = line
            return
        self._dispatch(Unsolicited(line))

    def _dispatch(self, urc: Unsolicited) -> None:
        if any(prefix_matches(prefix, urc.line) for prefix in self._reset_indicators):
            self._modem_reset(urc.line)
        delivered = False
        for prefix, callback in list(self._listeners):
            if prefix_matches(prefix, urc.line):
                delivered = True
                try:
                    callback(urc)
                except Exception:
                    LOG.exception("modem %s: listener for %s failed", self.url, prefix)
        if not delivered:
            LOG.debug("modem %s: unhandled unsolicited %r", self.url, urc.line)

    # -- port and reader thread ---------------------------------------------------------

    async def _open_port(self) -> None:
        self.open_attempts += 1
        port = await asyncio.to_thread(self._opener)
        loop = asyncio.get_running_loop()
        self._generation += 1
        self._buffer.clear()
        self._urc_head = None
        self._port = port
        self._stop_reading = threading.Event()
        self._reader = threading.Thread(
            target=self._read_loop,
            args=(port, self._generation, self._stop_reading, loop),
            name=f"at-reader-{self.url}",
            daemon=True,
        )
        self._reader.start()

    def _read_loop(
        self, port: SerialPort, generation: int, stop: threading.Event, loop: asyncio.AbstractEventLoop
    ) -> None:
        while not stop.is_set():
            try:
                waiting = port.in_waiting
                data = port.read(waiting if waiting > 0 else 1)
                while data and not stop.is_set():
                    more = port.in_waiting
                    if more <= 0:
                        break
                    data += port.read(more)
            except Exception as exc:
                if not stop.is_set():
                    with contextlib.suppress(RuntimeError):  # loop already closed
                        loop.call_soon_threadsafe(self._port_failed, generation, exc)
                return
            if data:
                try:
                    loop.call_soon_threadsafe(self._on_data, generation, data)
                except RuntimeError:
                    return

    def _port_failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._lost(f"port failed: {exc}")

    async def _shutdown_port(self) -> None:
        port, self._port = self._port, None
        reader, self._reader = self._reader, None
        self._generation += 1
        self._stop_reading.set()
        if port is None:
            return
        cancel = getattr(port, "cancel_read", None)
        if callable(cancel):
            with contextlib.suppress(Exception):
                cancel()
        if reader is not None and reader is not threading.current_thread():
            await asyncio.to_thread(reader.join, 2 * READ_POLL + 1.0)
        try:
            await asyncio.to_thread(port.close)
        except Exception as exc:
            LOG.debug("modem %s: close failed: %s", self.url, exc)

    # -- recovery -----------------------------------------------------------------

    def _lost(self, reason: str) -> None:
        """The port failed or the modem stopped answering: reopen with backoff."""
        if self._state != "open":
            self._fail_pending(PortUnavailable(f"modem {self.url}: {reason}"))
            return
        LOG.warning("modem %s: %s; reopening", self.url, reason)
        self._state = "reopening"
        self._opened.clear()
        self._fail_pending(PortUnavailable(f"modem {self.url}: {reason}"))
        self._start_recovery(reopen=True, immediate=False)

    def _modem_reset(self, line: str) -> None:
        """The modem restarted (``RDY``): it forgot ATE0 and every setting; re-initialise."""
        self._fail_pending(PortUnavailable(f"modem {self.url} restarted ({line})"))
        if self._state != "open":
            return
        LOG.warning("modem %s: restarted (%s); re-initialising", self.url, line)
        self._state = "reopening"
        self._opened.clear()
        self._start_recovery(reopen=False, immediate=True)

    def _start_recovery(self, *, reopen: bool, immediate: bool) -> None:
        if self._recovery is not None and not self._recovery.done():
            return
        loop = self._loop or asyncio.get_running_loop()
        self._recovery = loop.create_task(self._recover(reopen, immediate), name=f"at-recover-{self.url}")

    async def _recover(self, reopen: bool, immediate: bool) -> None:
        delay = self.backoff_initial
        wait = not immediate
        while self._state == "reopening":
            if reopen:
                await self._shutdown_port()
            if wait:
                await self.clock.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                if self._state != "reopening":
                    return
            wait = True
            try:
                await self._attempt(reopen=reopen)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let recovery die: retry later
                LOG.debug("modem %s: recovery attempt failed: %s; next in %.0f s", self.url, exc, delay)
                reopen = True
                continue
            if self._state != "reopening":
                return
            self.recoveries += 1
            LOG.info("modem %s: back after %d open attempts", self.url, self.open_attempts)
            self._became_open()
            return

    async def _attempt(self, *, reopen: bool) -> None:
        if reopen or self._port is None:
            await self._shutdown_port()
            await self._open_port()
        async with self._lock:
            await self._initialize()

    async def _initialize(self) -> None:
        self._timeouts = 0
        for attempt in range(2):  # the first may meet garbage left from a restart
            try:
                await self._transact("ATE0", self.init_timeout, count_timeout=False)
                break
            except (AtError, AtTimeout):
                if attempt:
                    raise
        for cmd in list(self.init_commands):
            try:
                await self._transact(cmd, self.init_timeout, count_timeout=False)
            except AtError as exc:
                LOG.warning("modem %s: init command %s failed: %s", self.url, cmd, exc.final)

    def _became_open(self) -> None:
        self._state = "open"
        self._timeouts = 0
        self._opened.set()
        for callback in list(self._ready_listeners):
            try:
                callback()
            except Exception:
                LOG.exception("modem %s: ready listener failed", self.url)

    def __repr__(self) -> str:
        return f"AtChannel({self.url!r}, state={self._state!r})"
