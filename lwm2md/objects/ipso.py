"""The generic IPSO sensor instance, serving every IPSO sensor object and 3202.

One class serves Illuminance, Temperature, Humidity, Barometer, Voltage,
Current, Power (value in 5700) and Analog Input (value in 5600). Only
resources the object's definition has are populated:

* value (5700/5600): the latest good sample; reads raise DriverFault while
  the sensor is faulted and before the first sample;
* 5601/5602 min/max measured since start or the last reset (5605);
* 5603/5604 range and 5701 units from the driver's Quantity;
* 5750 application type: an ordinary stored, writable value;
* 5518 timestamp: Unix time of the last value change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from lwm2md.drivers.base import Quantity
from lwm2md.errors import DriverFault
from lwm2md.model.types import ObjectDef, ResourceData
from lwm2md.objects.tree import ObjectInstance

LOG = logging.getLogger(__name__)

IPSO_QUANTITY: dict[int, str] = {
    3303: "temperature",
    3304: "humidity",
    3315: "pressure",
    3301: "illuminance",
    3316: "voltage",
    3317: "current",
    3328: "power",
    3202: "analog",
}
"""Quantity kind measured by each IPSO sensor object this module serves."""

ANALOG_INPUT = 3202
SENSOR_VALUE = 5700
ANALOG_VALUE = 5600
TIMESTAMP = 5518
MIN_MEASURED = 5601
MAX_MEASURED = 5602
MIN_RANGE = 5603
MAX_RANGE = 5604
RESET_MIN_MAX = 5605
SENSOR_UNITS = 5701
APPLICATION_TYPE = 5750


def value_rid(oid: int) -> int:
    """The resource carrying the measurement in object ``oid`` (5600 for 3202, else 5700)."""
    return ANALOG_VALUE if oid == ANALOG_INPUT else SENSOR_VALUE


def quantities_for_objects(oids: Iterable[int]) -> list[str]:
    """Quantity kinds for ``oids`` in order; KeyError names an oid that is no IPSO sensor."""
    out: list[str] = []
    for oid in oids:
        try:
            kind = IPSO_QUANTITY[oid]
        except KeyError:
            raise KeyError(f"object {oid} is not an IPSO sensor object") from None
        if kind not in out:
            out.append(kind)
    return out


class SensorInstance(ObjectInstance):
    """One IPSO sensor instance fed by :meth:`update` and :meth:`fault`.

    ``definition`` must be one of :data:`IPSO_QUANTITY`'s objects
    (ValueError otherwise). Value listeners hear about the value, min/max and
    timestamp only when they change.
    """

    def __init__(
        self,
        definition: ObjectDef,
        iid: int,
        quantity: Quantity,
        *,
        application_type: str | None = None,
    ) -> None:
        if definition.oid not in IPSO_QUANTITY:
            raise ValueError(f"object {definition.oid} is not an IPSO sensor object")
        super().__init__(definition, iid)
        self.quantity = quantity
        self.value_rid = value_rid(definition.oid)
        self._fault: str | None = None
        self._has_value = False
        defined = definition.resources
        if SENSOR_UNITS in defined and quantity.units:
            self.set(SENSOR_UNITS, quantity.units)
        if MIN_RANGE in defined and quantity.min_range is not None:
            self.set(MIN_RANGE, float(quantity.min_range))
        if MAX_RANGE in defined and quantity.max_range is not None:
            self.set(MAX_RANGE, float(quantity.max_range))
        if APPLICATION_TYPE in defined and application_type is not None:
            self.set(APPLICATION_TYPE, application_type)
        self.handle(self.value_rid, read=self._read_value)
        if RESET_MIN_MAX in defined:
            self.handle(RESET_MIN_MAX, execute=self._reset_min_max)

    @property
    def faulted(self) -> bool:
        """True between :meth:`fault` and the next :meth:`update`."""
        return self._fault is not None

    @property
    def value(self) -> float | None:
        """The latest good sample (kept while faulted), or None before the first."""
        data = self._values.get(self.value_rid)
        return float(data) if isinstance(data, int | float) else None

    def update(self, value: float, *, at: float | None = None) -> None:
        """Record a good sample taken at Unix time ``at``; ends a fault episode.

        Raises ValueError for a non-finite value (the caller reports it as a fault).
        """
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{self.path}: non-finite sample {value!r}")
        if self._fault is not None:
            LOG.info("%s: sensor recovered", self.path)
            self._fault = None
        changed = not self._has_value or self._values.get(self.value_rid) != value
        self._has_value = True
        self.set(self.value_rid, value)
        if MIN_MEASURED in self.definition.resources:
            low = self._values.get(MIN_MEASURED)
            if not isinstance(low, float) or value < low:
                self.set(MIN_MEASURED, value)
        if MAX_MEASURED in self.definition.resources:
            high = self._values.get(MAX_MEASURED)
            if not isinstance(high, float) or value > high:
                self.set(MAX_MEASURED, value)
        if changed and at is not None and TIMESTAMP in self.definition.resources:
            self.set(TIMESTAMP, int(at))

    def fault(self, error: BaseException | str) -> None:
        """Mark the sensor failed: value reads raise DriverFault until the next :meth:`update`.

        Logs a warning when an episode starts; repeated faults stay quiet.
        """
        if self._fault is None:
            LOG.warning("%s: sensor fault: %s", self.path, error)
        self._fault = str(error) or type(error).__name__

    def reset_min_max(self) -> None:
        """Restart min/max tracking from the current value (or from the next sample)."""
        for rid in (MIN_MEASURED, MAX_MEASURED):
            if rid not in self.definition.resources:
                continue
            if self._has_value:
                self.set(rid, self._values[self.value_rid])
            elif rid in self._values:
                self.remove(rid)
                self.changed(rid)

    def _reset_min_max(self, args: str | None) -> None:
        self.reset_min_max()

    def _read_value(self) -> ResourceData:
        if self._fault is not None:
            raise DriverFault(f"{self.path}/{self.value_rid}: sensor fault: {self._fault}")
        if not self._has_value:
            raise DriverFault(f"{self.path}/{self.value_rid}: no sample yet")
        return self._values[self.value_rid]
