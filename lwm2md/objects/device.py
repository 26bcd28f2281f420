"""The Device object (/3/0) of a Linux gateway.

Identity comes from configuration first, then from the host's facts; a
fact nobody knows leaves its optional resource absent. Reboot and Factory
Reset never run inside the Execute request: they are scheduled a short
delay later on the injected clock so the 2.04 response leaves first.
Current Time is never written to the system clock; a server's write only
shifts what later reads report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence

from lwm2md import __version__
from lwm2md.drivers.system.linux import HostFacts
from lwm2md.engine.clock import Clock, TimerHandle
from lwm2md.errors import BadRequest, DriverFault
from lwm2md.model.types import ObjectDef, ResourceData, Value
from lwm2md.objects.tree import ObjectInstance

LOG = logging.getLogger(__name__)

DEVICE_OID = 3

MANUFACTURER = 0
MODEL_NUMBER = 1
SERIAL_NUMBER = 2
FIRMWARE_VERSION = 3
REBOOT = 4
FACTORY_RESET = 5
MEMORY_FREE = 10
ERROR_CODE = 11
RESET_ERROR_CODE = 12
CURRENT_TIME = 13
UTC_OFFSET = 14
TIMEZONE = 15
SUPPORTED_BINDINGS = 16
DEVICE_TYPE = 17
HARDWARE_VERSION = 18
SOFTWARE_VERSION = 19
MEMORY_TOTAL = 21

ACTION_DELAY = 1.0
"""Seconds between an Execute of Reboot/Factory Reset and running the action."""
COMMAND_TIMEOUT = 120.0
"""Seconds a configured command may run before it is killed."""

Action = Callable[[], Awaitable[None]]


class DeviceInstance(ObjectInstance):
    """/3/0 with error-code bookkeeping, a shiftable clock and deferred actions.

    Build it with :func:`build_device_instance`.
    """

    def __init__(self, definition: ObjectDef, *, clock: Clock, action_delay: float = ACTION_DELAY) -> None:
        if definition.oid != DEVICE_OID:
            raise ValueError(f"object {definition.oid} is not the Device object")
        super().__init__(definition, 0)
        self._clock = clock
        self._action_delay = action_delay
        self._time_offset = 0.0
        self._utc_offset: str | None = None
        self._busy: set[str] = set()
        self._timers: dict[str, TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        defined = definition.resources
        self._values[ERROR_CODE] = {0: 0}  # mandatory in every Device version
        if RESET_ERROR_CODE in defined:
            self.handle(RESET_ERROR_CODE, execute=self._reset_error_code)
        if CURRENT_TIME in defined:
            self.handle(CURRENT_TIME, read=self._read_time, write=self._write_time)

    # -- error codes ------------------------------------------------------

    def error_codes(self) -> list[int]:
        """Active error codes in the order raised; empty when there is no error."""
        data = self._values[ERROR_CODE]
        assert isinstance(data, dict)
        return [v for _, v in sorted(data.items()) if isinstance(v, int) and v != 0]

    def add_error(self, code: int) -> None:
        """Raise error ``code`` (1..32); no effect if already raised."""
        if not 1 <= code <= 32:
            raise ValueError(f"error code {code} is outside 1..32")
        codes = self.error_codes()
        if code not in codes:
            self._set_errors([*codes, code])

    def clear_error(self, code: int) -> None:
        """Drop error ``code``; no effect if not raised."""
        codes = self.error_codes()
        if code in codes:
            codes.remove(code)
            self._set_errors(codes)

    def reset_errors(self) -> None:
        """Back to the single ``0`` (no error) instance."""
        self._set_errors([])

    def _set_errors(self, codes: list[int]) -> None:
        data: dict[int, Value] = dict(enumerate(codes)) if codes else {0: 0}
        self.set(ERROR_CODE, data)

    def _reset_error_code(self, args: str | None) -> None:
        LOG.info("Device: error codes reset by server (were %s)", self.error_codes() or "none")
        self.reset_errors()

    # -- time --------------------------------------------------------------

    def _read_time(self) -> ResourceData:
        return int(self._clock.wall() + self._time_offset)

    def _write_time(self, data: ResourceData) -> None:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise BadRequest("Current Time must be a Unix time")
        self._time_offset = float(data) - self._clock.wall()
        LOG.info("Device: server set Current Time to %d (offset %+.0f s from the host clock)",
                 int(data), self._time_offset)  # fmt: skip

    def set_utc_offset_source(self, source: Callable[[], str | None], *, fixed: str | None = None) -> None:
        """Serve UTC Offset live from ``source`` unless ``fixed`` is given or a server writes one."""
        self._utc_offset = fixed

        def read() -> ResourceData:
            value = self._utc_offset if self._utc_offset is not None else source()
            if value is None:
                raise DriverFault("UTC offset unknown")
            return value

        def write(data: ResourceData) -> None:
            if not isinstance(data, str):
                raise BadRequest("UTC Offset must be a string")
            self._utc_offset = data

        self.handle(UTC_OFFSET, read=read, write=write)

    # -- deferred actions ---------------------------------------------------

    def set_action(self, rid: int, name: str, action: Action | None) -> None:
        """Make ``rid`` executable: Execute schedules ``action`` after the action delay.

        With ``action`` None the Execute succeeds but only logs that nothing is configured.
        """

        def execute(args: str | None) -> None:
            if action is None:
                LOG.warning("Device: %s requested but not configured; nothing done", name)
                return
            self._schedule(name, action)

        self.handle(rid, execute=execute)

    def _schedule(self, name: str, action: Action) -> None:
        if name in self._busy:
            LOG.info("Device: %s already pending; request ignored", name)
            return
        self._busy.add(name)
        LOG.warning("Device: %s requested by server; running in %.1f s", name, self._action_delay)

        def fire() -> None:
            self._timers.pop(name, None)
            task = asyncio.get_running_loop().create_task(self._guarded(name, action), name=f"device-{name}")
            self._tasks.add(task)

            def done(t: asyncio.Task[None]) -> None:
                self._tasks.discard(t)
                self._busy.discard(name)

            task.add_done_callback(done)

        self._timers[name] = self._clock.call_at(self._clock.now() + self._action_delay, fire)

    async def _guarded(self, name: str, action: Action) -> None:
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("Device: %s failed", name)

    def pending_actions(self) -> list[str]:
        """Names of actions scheduled or running."""
        return sorted(self._busy)

    async def wait_actions(self) -> None:
        """Wait until every action already started has finished (scheduled ones are not waited for)."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    def cancel_actions(self) -> None:
        """Drop scheduled actions that have not started and cancel running ones (shutdown)."""
        for name, timer in list(self._timers.items()):
            timer.cancel()
            self._busy.discard(name)
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()


def build_device_instance(
    definition: ObjectDef,
    facts: HostFacts,
    *,
    manufacturer: str | None = None,
    model: str | None = None,
    serial: str | None = None,
    hardware_version: str | None = None,
    firmware_version: str | None = None,
    reboot: Action | None = None,
    factory_reset: Action | None = None,
    binding_modes: str = "U",
    device_type: str = "Gateway",
    timezone: str | None = None,
    utc_offset: str | None = None,
    clock: Clock,
    action_delay: float = ACTION_DELAY,
) -> DeviceInstance:
    """The Device instance for this host; only resources ``definition`` has are populated.

    Explicit identity arguments override ``facts``; ``timezone`` and
    ``utc_offset`` (``+HH:MM``) fix those values as a server write would,
    otherwise Timezone is the host's and UTC Offset follows the host's
    current offset (daylight saving time included). ``firmware_version``
    defaults to ``"<OS release>; lwm2md <version>"``. Reboot is always
    executable (logging only when ``reboot`` is None); Factory Reset is
    absent unless ``factory_reset`` is given. Memory figures are KiB.
    """
    device = DeviceInstance(definition, clock=clock, action_delay=action_delay)
    defined = definition.resources
    if firmware_version is None:
        own = f"lwm2md {__version__}"
        firmware_version = f"{facts.os_release}; {own}" if facts.os_release else own
    static: dict[int, str | int | None] = {
        MANUFACTURER: manufacturer or facts.manufacturer,
        MODEL_NUMBER: model or facts.model,
        SERIAL_NUMBER: serial or facts.serial,
        FIRMWARE_VERSION: firmware_version,
        TIMEZONE: timezone or facts.timezone,
        SUPPORTED_BINDINGS: binding_modes,
        DEVICE_TYPE: device_type,
        HARDWARE_VERSION: hardware_version or facts.hardware_version,
        SOFTWARE_VERSION: __version__,
        MEMORY_TOTAL: facts.memory_total_kib,
    }
    for rid, value in static.items():
        if rid in defined and value is not None:
            device.set(rid, value)
    if REBOOT in defined:
        device.set_action(REBOOT, "Reboot", reboot)
    if FACTORY_RESET in defined and factory_reset is not None:
        device.set_action(FACTORY_RESET, "Factory Reset", factory_reset)
    if UTC_OFFSET in defined and (utc_offset is not None or facts.utc_offset() is not None):
        device.set_utc_offset_source(facts.utc_offset, fixed=utc_offset)
    if MEMORY_FREE in defined and facts.memory_free_kib() is not None:

        def memory_free() -> ResourceData:
            free = facts.memory_free_kib()
            if free is None:
                raise DriverFault("free memory unavailable")
            return free

        device.handle(MEMORY_FREE, read=memory_free)
    return device


def run_command(
    argv: Sequence[str] | None, what: str = "command", *, timeout: float = COMMAND_TIMEOUT
) -> Action:
    """An async callback running ``argv`` (no shell); it never raises.

    ``argv`` None or empty gives a callback that only logs that nothing is
    configured. A failure to start, a non-zero exit or exceeding ``timeout``
    seconds (the process is killed) is logged with the command's output tail.
    """
    command = list(argv) if argv else []

    async def run() -> None:
        if not command:
            LOG.warning("%s: no command configured; nothing done", what)
            return
        shown = shlex.join(command)
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            LOG.error("%s: cannot start %s: %s", what, shown, exc)
            return
        try:
            async with asyncio.timeout(timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            LOG.error("%s: %s killed after %.0f s", what, shown, timeout)
            return
        tail = output.decode("utf-8", errors="replace").strip()[-500:]
        if proc.returncode != 0:
            LOG.error("%s: %s exited with status %s: %s", what, shown, proc.returncode, tail or "(no output)")
        else:
            LOG.info("%s: %s done", what, shown)

    return run
