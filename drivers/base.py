"""What a sensor driver provides, independent of LwM2M.

A driver measures one or more *quantities* (temperature, humidity, ...).
Each quantity names its unit as a SenML unit symbol (RFC 8428): pressure is
therefore reported in ``Pa``, not ``hPa``. The object layer maps quantities
to IPSO objects and driver failures (:class:`DriverError`) to CoAP 5.00.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

LOG = logging.getLogger(__name__)


class DriverError(Exception):
    """A failed bus transaction: NAK, CRC mismatch, timeout, implausible data."""


@dataclass(frozen=True)
class Quantity:
    """One measured quantity: its kind, SenML unit and the sensor's measurable range.

    ``min_range``/``max_range`` are None when the driver does not know them.
    """

    kind: str
    units: str
    min_range: float | None = None
    max_range: float | None = None


STANDARD_QUANTITIES: dict[str, Quantity] = {
    q.kind: q
    for q in (
        Quantity("temperature", "Cel", -40.0, 85.0),
        Quantity("humidity", "%RH", 0.0, 100.0),
        Quantity("pressure", "Pa", 30000.0, 110000.0),
        Quantity("illuminance", "lx", 0.0, 100000.0),
        Quantity("voltage", "V", 0.0, 60.0),
        Quantity("current", "A", 0.0, 20.0),
        Quantity("power", "W", 0.0, 1200.0),
        Quantity("analog", "", 0.0, 1.0),
    )
}
"""Default unit and range per known kind; ``analog`` is dimensionless (empty unit)."""


@runtime_checkable
class Sensor(Protocol):
    """A sensor driver.

    ``read`` may block on bus I/O (callers run it in a worker thread) and
    returns one value per kind in :meth:`quantities`; it raises
    :class:`DriverError` when the device does not answer or answers garbage.
    A driver may also define ``close()``; use :func:`close_sensor` to call it.
    """

    name: str

    def quantities(self) -> dict[str, Quantity]:
        """The quantities this sensor measures, keyed by kind; constant for its lifetime."""
        ...

    def read(self) -> dict[str, float]:
        """One measurement of every quantity, keyed by kind."""
        ...


def close_sensor(sensor: Sensor) -> None:
    """Call the sensor's optional ``close()``; failures are logged, never raised."""
    close = getattr(sensor, "close", None)
    if not callable(close):
        return
    try:
        close()
    except Exception:
        LOG.exception("sensor %s: close failed", sensor.name)
