"""Shared plumbing for I2C chip drivers: options, bus transfers, probing, simulation.

A driver module needs only these names (the API is kept small on purpose):

:class:`I2COptions` / :func:`parse_i2c_options`
    ``{bus, address}`` from a ``[[sensor]]`` table, validated (ValueError
    naming the option). ``bus`` defaults to 1, ``address`` to the chip's
    primary (first listed) address. ``seed``/``period`` are accepted and
    ignored (they steer ``--simulate``); driver-specific keys named in
    ``allowed`` (key -> expected type; ``float`` also takes ints, ``int``
    never takes bools) are type-checked and land in
    :attr:`I2COptions.extra`; anything else is rejected.

:class:`I2CSensor`
    Base class of a driver. Subclasses set ``driver`` (registry name),
    implement :meth:`~I2CSensor.quantities` and :meth:`~I2CSensor._measure`,
    and talk to the chip through :meth:`~I2CSensor.read_register`,
    :meth:`~I2CSensor.write_register`, :meth:`~I2CSensor.write_bytes` and
    :meth:`~I2CSensor.read_bytes`: each transfer turns an ``OSError`` into a
    :class:`~lwm2md.drivers.base.DriverError` naming the sensor and the step
    (a NAK reads "no acknowledge"). :meth:`~I2CSensor.read` and
    :meth:`~I2CSensor.close` are serialised by a lock, so a read running in a
    worker thread and a close from elsewhere never interleave; after close
    every transfer raises DriverError. :meth:`~I2CSensor.error` builds a
    DriverError for CRC or plausibility failures. Conversion waits go
    through the injectable ``sleep``; ``pre_read`` (None by default) runs
    at the start of every read.

:func:`open_sensor`
    Opens ``/dev/i2c-<bus>`` (``BusUnavailable`` propagates) and builds the
    driver; the bus is closed again when the constructor raises.

:func:`safe_probe`
    Wraps a chip-id check ``check(bus, address) -> bool`` into a registry
    probe accepting an open bus or a bus number, that never raises.

:func:`simulator`
    A registry ``simulator=`` factory: the real driver on a
    :class:`~lwm2md.drivers.fake.smbus.FakeSMBus` holding the chip model.
    The model must satisfy :class:`EnvironmentModel`: before every read its
    ``set_environment(**values)`` is called with a
    :class:`~lwm2md.drivers.simulated.SimulatedSensor`'s values (keys: the
    quantity kinds; ignore unknown ones), so the chip reports a slow
    deterministic signal.

:func:`register_i2c_sensor`
    One call registering factory, simulator, addresses, probe and objects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from lwm2md.drivers.base import DriverError, Quantity, Sensor
from lwm2md.drivers.fake.smbus import FakeChip, FakeSMBus
from lwm2md.drivers.i2c.bus import SMBusLike, bus_error, open_bus
from lwm2md.drivers.registry import Probe, register_sensor
from lwm2md.drivers.simulated import SimulatedSensor

LOG = logging.getLogger(__name__)

DEFAULT_BUS = 1
"""Bus number used when a ``[[sensor]]`` table gives none (the Raspberry Pi header bus)."""

SIMULATION_OPTIONS = frozenset({"seed", "period"})
"""Options every I2C driver accepts; only the simulated twin uses them."""

S = TypeVar("S", bound="I2CSensor")
S_co = TypeVar("S_co", bound="I2CSensor", covariant=True)


@dataclass(frozen=True)
class I2COptions:
    """Validated options of one I2C sensor table."""

    driver: str
    bus: int
    address: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Sensor name for logs, e.g. ``bme280@i2c-1:0x76``."""
        return f"{self.driver}@i2c-{self.bus}:0x{self.address:02x}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_ok(value: object, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def parse_i2c_options(
    options: Mapping[str, Any],
    *,
    driver: str,
    addresses: Sequence[int],
    allowed: Mapping[str, type] | None = None,
) -> I2COptions:
    """Validate ``bus``/``address`` (``addresses[0]`` is the default) and ``allowed`` extras.

    Raises ValueError naming the offending option.
    """
    allowed = dict(allowed or {})
    unknown = sorted(set(options) - {"bus", "address"} - SIMULATION_OPTIONS - set(allowed))
    if unknown:
        known = ", ".join(sorted({"bus", "address", *SIMULATION_OPTIONS, *allowed}))
        raise ValueError(f"{driver}: unknown option(s) {', '.join(unknown)}; known: {known}")
    bus = options.get("bus", DEFAULT_BUS)
    if not _is_int(bus) or bus < 0:
        raise ValueError(f"{driver}: option bus must be an I2C adapter number >= 0, not {bus!r}")
    address = options.get("address", addresses[0])
    if not _is_int(address) or address not in addresses:
        choices = ", ".join(f"0x{a:02x}" for a in addresses)
        shown = f"0x{address:02x}" if _is_int(address) else repr(address)
        raise ValueError(f"{driver}: option address must be one of {choices}, not {shown}")
    extra = {key: options[key] for key in allowed if key in options}
    for key, value in extra.items():
        if not _type_ok(value, allowed[key]):
            raise ValueError(f"{driver}: option {key} must be {allowed[key].__name__}, not {value!r}")
    return I2COptions(driver, bus, address, extra)


class I2CSensor:
    """Base of a chip driver on an open bus at ``address``; a :class:`Sensor` once subclassed.

    ``name`` defaults to ``<driver>@0x<address>``. The instance does not
    own ``bus`` unless ``owns_bus`` (then :meth:`close` closes it).
    """

    driver: ClassVar[str] = "i2c"

    def __init__(
        self,
        bus: SMBusLike,
        address: int,
        *,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        self.bus = bus
        self.address = address
        self.name = name or f"{self.driver}@0x{address:02x}"
        self.sleep = sleep
        self.owns_bus = owns_bus
        self.pre_read: Callable[[], None] | None = None
        """Called at the start of every :meth:`read` (the simulator moves the chip's environment)."""
        self._lock = threading.RLock()
        self._closed = False

    # -- the Sensor protocol ------------------------------------------------------

    def quantities(self) -> dict[str, Quantity]:
        raise NotImplementedError

    def read(self) -> dict[str, float]:
        """One measurement (blocking); DriverError on NAK, CRC mismatch or implausible data."""
        with self._lock:
            self._check_open()
            if self.pre_read is not None:
                self.pre_read()
            return self._measure()

    def _measure(self) -> dict[str, float]:
        """Subclass hook: run one measurement; called with the lock held."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the bus (when owned); idempotent; waits for a read in progress."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.owns_bus:
                self.bus.close()

    # -- transfers ---------------------------------------------------------------------

    def error(self, what: str) -> DriverError:
        """A DriverError prefixed with this sensor's name (for CRC/plausibility failures)."""
        return DriverError(f"{self.name}: {what}")

    def _check_open(self) -> None:
        if self._closed:
            raise self.error("sensor is closed")

    def read_register(self, register: int, length: int, what: str) -> bytes:
        """Write the register pointer, then read ``length`` bytes (repeated start)."""
        with self._lock:
            self._check_open()
            try:
                return bytes(self.bus.read_i2c_block_data(self.address, register, length))
            except OSError as exc:
                raise bus_error(exc, f"{self.name}: {what}") from exc

    def write_register(self, register: int, data: Sequence[int], what: str) -> None:
        """Write ``data`` starting at ``register`` in one transaction."""
        with self._lock:
            self._check_open()
            try:
                self.bus.write_i2c_block_data(self.address, register, list(data))
            except OSError as exc:
                raise bus_error(exc, f"{self.name}: {what}") from exc

    def write_bytes(self, data: Sequence[int], what: str) -> None:
        """One raw write transaction of ``data`` (a command, no register pointer semantics)."""
        from smbus2 import i2c_msg

        with self._lock:
            self._check_open()
            try:
                self.bus.i2c_rdwr(i2c_msg.write(self.address, list(data)))
            except OSError as exc:
                raise bus_error(exc, f"{self.name}: {what}") from exc

    def read_bytes(self, length: int, what: str) -> bytes:
        """One raw read transaction of ``length`` bytes."""
        from smbus2 import i2c_msg

        with self._lock:
            self._check_open()
            msg = i2c_msg.read(self.address, length)
            try:
                self.bus.i2c_rdwr(msg)
            except OSError as exc:
                raise bus_error(exc, f"{self.name}: {what}") from exc
            return bytes(msg)


class DriverFactory(Protocol[S_co]):
    """Builds a driver on an open bus from validated options (a driver class's adapter)."""

    def __call__(self, bus: SMBusLike, options: I2COptions, /) -> S_co: ...


def open_sensor(make: DriverFactory[S], options: I2COptions) -> S:
    """``make`` on ``/dev/i2c-<options.bus>``; BusUnavailable/DriverError propagate, the bus is not leaked."""
    bus = open_bus(options.bus)
    try:
        return make(bus, options)
    except BaseException:
        bus.close()
        raise


def safe_probe(check: Callable[[SMBusLike, int], bool]) -> Probe:
    """A probe ``(bus or bus number, address) -> bool`` around ``check`` that never raises.

    ``check`` must only read from the chip (no reset, no configuration writes).
    """

    def probe(bus: SMBusLike | int, address: int) -> bool:
        opened: SMBusLike | None = None
        try:
            if isinstance(bus, int):
                bus = opened = open_bus(bus)
            return bool(check(bus, address))
        except Exception as exc:
            LOG.debug("probe of 0x%02x failed: %s", address, exc)
            return False
        finally:
            if opened is not None:
                try:
                    opened.close()
                except Exception:
                    LOG.debug("closing the probed bus failed", exc_info=True)

    return probe


@runtime_checkable
class EnvironmentModel(Protocol):
    """A chip model whose physical surroundings can be set (values keyed by quantity kind)."""

    def set_environment(self, **values: float) -> None: ...


def simulator(
    make: DriverFactory[I2CSensor],
    chip: Callable[[int], FakeChip],
    *,
    driver: str,
    addresses: Sequence[int],
    quantities: Iterable[Quantity],
    allowed: Mapping[str, type] | None = None,
    time_source: Callable[[], float] = time.time,
) -> Callable[[Mapping[str, Any]], Sensor]:
    """A registry simulator: the real driver built by ``make`` on a FakeSMBus with ``chip(address)``.

    Options are validated as for hardware; ``seed`` (default: the bus and
    address, so two simulated chips differ) and ``period`` shape the signal.
    ``chip(address)`` must return a model with ``set_environment`` (TypeError
    otherwise).
    """
    quantities = tuple(quantities)

    def factory(options: Mapping[str, Any]) -> Sensor:
        opts = parse_i2c_options(options, driver=driver, addresses=addresses, allowed=allowed)
        seed = options.get("seed", opts.bus * 256 + opts.address)
        if not _is_int(seed):
            raise ValueError(f"{driver}: option seed must be an integer, not {seed!r}")
        period = {"period": options["period"]} if "period" in options else {}
        source = SimulatedSensor(quantities, seed, options=period, time_source=time_source, name=driver)
        model = chip(opts.address)
        if not isinstance(model, EnvironmentModel):
            raise TypeError(f"{driver}: chip model {type(model).__name__} has no set_environment")
        bus = FakeSMBus(opts.bus)
        bus.attach(model)
        model.set_environment(**source.read())
        sensor = make(bus, opts)
        sensor.name = f"{opts.label} (simulated)"

        def follow() -> None:
            model.set_environment(**source.read())

        sensor.pre_read = follow
        return sensor

    return factory


def register_i2c_sensor(
    make: DriverFactory[I2CSensor],
    *,
    driver: str,
    addresses: Sequence[int],
    quantities: Sequence[Quantity],
    objects: Sequence[int],
    check: Callable[[SMBusLike, int], bool],
    chip: Callable[[int], FakeChip],
    allowed: Mapping[str, type] | None = None,
) -> None:
    """Register ``driver``: hardware factory, simulator, addresses, probe (``check``) and objects.

    ``make`` builds the driver on an open bus; ``chip(address)`` builds the
    simulator's chip model; ``allowed`` is passed to :func:`parse_i2c_options`.
    """

    def factory(options: Mapping[str, Any]) -> Sensor:
        opts = parse_i2c_options(options, driver=driver, addresses=addresses, allowed=allowed)
        return open_sensor(make, opts)

    register_sensor(
        driver,
        quantities=quantities,
        simulator=simulator(
            make, chip, driver=driver, addresses=addresses, quantities=quantities, allowed=allowed
        ),
        i2c_addresses=addresses,
        probe=safe_probe(check),
        objects=objects,
    )(factory)
