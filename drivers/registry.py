"""Sensor drivers by name, as named in the configuration's ``driver`` key.

A driver module registers a factory taking the driver's options::

    @register_sensor("bme280", quantities=("temperature", "humidity", "pressure"))
    def _bme280(options: Mapping[str, Any]) -> Sensor: ...

``create_sensor(..., simulate=True)`` never touches hardware: it calls the
driver's ``simulator`` when one was registered (an I2C driver runs its real
code on a FakeSMBus holding the chip model), else it builds a
:class:`~lwm2md.drivers.simulated.SimulatedSensor` with the declared
quantities (or, when none were declared, every standard kind).

I2C drivers also register the addresses the chip can answer on and a
``probe(bus, address) -> bool`` (chip-id check) for ``lwm2md scan``, and the
IPSO objects their quantities map to, for the printed config snippet.

Driver modules register themselves on import; the built-in ones listed in
``BUILTIN_DRIVER_MODULES`` are imported on first use of the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lwm2md.drivers.base import Quantity, Sensor
from lwm2md.drivers.simulated import SimulatedSensor

SensorFactory = Callable[[Mapping[str, Any]], Sensor]
"""Builds a sensor from its options; raises ValueError for bad options, DriverError for absent hardware."""


class UnknownDriver(ValueError):
    """No sensor driver is registered under the requested name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown sensor driver {name!r}; known drivers: {', '.join(self.known)}")


Probe = Callable[[Any, int], bool]
"""``probe(bus, address)``: True when the chip at ``address`` is this driver's (chip-id check)."""

BUILTIN_DRIVER_MODULES: tuple[str, ...] = (
    "i2c.bme280",
    "i2c.sht",
    "i2c.tmp102",
    "i2c.bh1750",
    "i2c.ina219",
    "i2c.ads1115",
)
"""Modules (under lwm2md.drivers) whose import registers the built-in hardware drivers."""


@dataclass(frozen=True)
class DriverInfo:
    """What the registry knows about one sensor driver."""

    name: str
    factory: SensorFactory
    quantities: tuple[str | Quantity, ...] | None = None
    simulator: SensorFactory | None = None
    i2c_addresses: tuple[int, ...] = ()
    probe: Probe | None = None
    objects: tuple[int, ...] = ()


_SENSORS: dict[str, DriverInfo] = {}
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_DRIVER_MODULES:
        importlib.import_module(f"lwm2md.drivers.{module}")


def register_sensor(
    name: str,
    *,
    quantities: Iterable[str | Quantity] | None = None,
    simulator: SensorFactory | None = None,
    i2c_addresses: Iterable[int] = (),
    probe: Probe | None = None,
    objects: Iterable[int] = (),
) -> Callable[[SensorFactory], SensorFactory]:
    """Decorator registering ``factory`` as sensor driver ``name``.

    ``quantities`` (kinds or full Quantity objects) shapes the generic
    simulated twin used when no ``simulator`` is given. Registering a name
    twice raises ValueError.
    """

    def decorate(factory: SensorFactory) -> SensorFactory:
        if name in _SENSORS:
            raise ValueError(f"sensor driver {name!r} is already registered")
        _SENSORS[name] = DriverInfo(
            name,
            factory,
            tuple(quantities) if quantities is not None else None,
            simulator,
            tuple(i2c_addresses),
            probe,
            tuple(objects),
        )
        return factory

    return decorate


def sensor_drivers() -> list[str]:
    """Registered driver names, sorted."""
    _load_builtin()
    return sorted(_SENSORS)


def driver_info(name: str) -> DriverInfo:
    """The registry entry of ``name``; UnknownDriver when there is none."""
    _load_builtin()
    entry = _SENSORS.get(name)
    if entry is None:
        raise UnknownDriver(name, _SENSORS)
    return entry


def create_sensor(name: str, options: Mapping[str, Any], *, simulate: bool) -> Sensor:
    """A sensor from driver ``name`` and its ``options``.

    With ``simulate`` the driver's simulated twin is returned instead (same
    quantities; the real driver's options other than ``quantities``, ``seed``
    and ``period`` are ignored). Raises UnknownDriver, or ValueError for bad options.
    """
    entry = driver_info(name)
    if simulate and entry.simulator is not None:
        return entry.simulator(options)
    if simulate and entry.factory is not _simulated:
        return SimulatedSensor.from_options(
            options, default_quantities=entry.quantities, strict=False, name=name
        )
    return entry.factory(options)


@register_sensor("simulated")
def _simulated(options: Mapping[str, Any]) -> Sensor:
    return SimulatedSensor.from_options(options)
