"""Sensor drivers by name, as named in the configuration's ``driver`` key.

A driver module registers a factory taking the driver's options::

    @register_sensor("bme280", quantities=("temperature", "humidity", "pressure"))
    def _bme280(options: Mapping[str, Any]) -> Sensor: ...

``create_sensor(..., simulate=True)`` never calls a real factory: it builds
a :class:`~lwm2md.drivers.simulated.SimulatedSensor` with the quantities
declared at registration (or, when none were declared, every standard kind).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


class _Entry:
    def __init__(self, factory: SensorFactory, quantities: tuple[str | Quantity, ...] | None) -> None:
        self.factory = factory
        self.quantities = quantities


_SENSORS: dict[str, _Entry] = {}


def register_sensor(
    name: str, *, quantities: Iterable[str | Quantity] | None = None
) -> Callable[[SensorFactory], SensorFactory]:
    """Decorator registering ``factory`` as sensor driver ``name``.

    ``quantities`` (kinds or full Quantity objects) shapes the driver's
    simulated twin. Registering a name twice raises ValueError.
    """

    def decorate(factory: SensorFactory) -> SensorFactory:
        if name in _SENSORS:
            raise ValueError(f"sensor driver {name!r} is already registered")
        _SENSORS[name] = _Entry(factory, tuple(quantities) if quantities is not None else None)
        return factory

    return decorate


def sensor_drivers() -> list[str]:
    """Registered driver names, sorted."""
    return sorted(_SENSORS)


def create_sensor(name: str, options: Mapping[str, Any], *, simulate: bool) -> Sensor:
    """A sensor from driver ``name`` and its ``options``.

    With ``simulate`` the driver's simulated twin is returned instead (same
    quantities; the real driver's options other than ``quantities``, ``seed``
    and ``period`` are ignored). Raises UnknownDriver, or ValueError for bad options.
    """
    entry = _SENSORS.get(name)
    if entry is None:
        raise UnknownDriver(name, _SENSORS)
    if simulate and entry.factory is not _simulated:
        return SimulatedSensor.from_options(
            options, default_quantities=entry.quantities, strict=False, name=name
        )
    return entry.factory(options)


@register_sensor("simulated")
def _simulated(options: Mapping[str, Any]) -> Sensor:
    return SimulatedSensor.from_options(options)
