"""A simulated sensor: deterministic, smooth, controllable values without hardware.

Each quantity follows a slow sine wave around a plausible centre, with a
phase derived from the seed and the kind, so two sensors with different
seeds disagree while one seed always yields the same series for the same
times. Tests pin values with :meth:`SimulatedSensor.set_value` and inject
failures with :meth:`SimulatedSensor.fail`.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lwm2md.drivers.base import STANDARD_QUANTITIES, DriverError, Quantity

DEFAULT_PERIOD = 600.0
"""Seconds per full swing of the simulated signals."""


@dataclass(frozen=True)
class _Wave:
    centre: float
    amplitude: float
    decimals: int


_WAVES: dict[str, _Wave] = {
    "temperature": _Wave(21.5, 3.0, 2),
    "humidity": _Wave(45.0, 10.0, 1),
    "pressure": _Wave(101325.0, 300.0, 0),
    "illuminance": _Wave(300.0, 250.0, 1),
    "voltage": _Wave(12.0, 0.3, 3),
    "current": _Wave(1.5, 0.5, 3),
    "power": _Wave(18.0, 6.0, 2),
    "analog": _Wave(0.5, 0.4, 3),
}

OPTION_KEYS = frozenset({"quantities", "seed", "period"})
"""Options the ``simulated`` driver accepts."""


class SimulatedSensor:
    """A :class:`~lwm2md.drivers.base.Sensor` producing synthetic values.

    ``quantities`` lists kinds (units and ranges from
    :data:`~lwm2md.drivers.base.STANDARD_QUANTITIES`) or full
    :class:`Quantity` objects (to mimic a real driver exactly); None means
    every standard kind. ``options`` may hold ``period`` (seconds, > 0).
    ``time_source`` gives the time the signals are a function of.
    Raises ValueError for an unknown kind or a bad option value.
    """

    def __init__(
        self,
        quantities: Iterable[str | Quantity] | None = None,
        seed: int = 0,
        *,
        options: Mapping[str, Any] | None = None,
        time_source: Callable[[], float] = time.time,
        name: str = "simulated",
    ) -> None:
        self.name = name
        self._quantities = _resolve_quantities(quantities)
        self._seed = seed
        self._period = _period(options or {})
        self._time_source = time_source
        self._lock = threading.Lock()
        self._pinned: dict[str, float] = {}
        self._failing = False

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        default_quantities: Iterable[str | Quantity] | None = None,
        strict: bool = True,
        name: str = "simulated",
    ) -> SimulatedSensor:
        """Build from driver options (``quantities``, ``seed``, ``period``).

        ``strict`` rejects other keys (ValueError); a simulated twin of a real
        driver passes ``strict=False`` so that driver's own options are ignored.
        ``quantities`` in the options wins over ``default_quantities``.
        """
        if strict:
            unknown = sorted(set(options) - OPTION_KEYS)
            if unknown:
                raise ValueError(
                    f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTION_KEYS))}"
                )
        raw = options.get("quantities")
        quantities: Iterable[str | Quantity] | None = default_quantities
        if raw is not None:
            if (
                isinstance(raw, str)
                or not isinstance(raw, list | tuple)
                or not all(isinstance(k, str) for k in raw)
            ):
                raise ValueError(f"option quantities must be a list of names, not {raw!r}")
            quantities = list(raw)
        seed = options.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"option seed must be an integer, not {seed!r}")
        return cls(quantities, seed, options=options, name=name)

    def quantities(self) -> dict[str, Quantity]:
        return dict(self._quantities)

    def read(self) -> dict[str, float]:
        """Current values; raises DriverError while :meth:`fail` is on."""
        with self._lock:
            if self._failing:
                raise DriverError(f"{self.name}: simulated failure")
            pinned = dict(self._pinned)
        now = self._time_source()
        return {kind: pinned.get(kind, self._wave(kind, now)) for kind in self._quantities}

    def set_value(self, kind: str, value: float | None) -> None:
        """Pin ``kind`` to ``value`` (None returns it to the generated signal); KeyError if unknown."""
        if kind not in self._quantities:
            raise KeyError(f"{self.name} does not measure {kind!r}")
        with self._lock:
            if value is None:
                self._pinned.pop(kind, None)
            else:
                self._pinned[kind] = float(value)

    def fail(self, failing: bool = True) -> None:
        """Make every later :meth:`read` raise DriverError (True) or succeed again (False)."""
        with self._lock:
            self._failing = failing

    def close(self) -> None:
        """Nothing to release."""

    def _wave(self, kind: str, now: float) -> float:
        wave = _WAVES.get(kind) or _wave_for(self._quantities[kind])
        phase = (zlib.crc32(f"{self._seed}:{kind}".encode()) % 3600) / 3600 * 2 * math.pi
        value = wave.centre + wave.amplitude * math.sin(2 * math.pi * now / self._period + phase)
        return round(value, wave.decimals)


def _wave_for(quantity: Quantity) -> _Wave:
    """A wave inside the quantity's range for kinds without a preset."""
    low, high = quantity.min_range, quantity.max_range
    if low is None or high is None or not high > low:
        return _Wave(0.5, 0.4, 3)
    return _Wave((low + high) / 2, (high - low) / 4, 3)


def _resolve_quantities(quantities: Iterable[str | Quantity] | None) -> dict[str, Quantity]:
    if quantities is None:
        return dict(STANDARD_QUANTITIES)
    out: dict[str, Quantity] = {}
    for item in quantities:
        if isinstance(item, Quantity):
            out[item.kind] = item
        elif item in STANDARD_QUANTITIES:
            out[item] = STANDARD_QUANTITIES[item]
        else:
            raise ValueError(f"unknown quantity {item!r}; known: {', '.join(sorted(STANDARD_QUANTITIES))}")
    if not out:
        raise ValueError("a simulated sensor needs at least one quantity")
    return out


def _period(options: Mapping[str, Any]) -> float:
    period = options.get("period", DEFAULT_PERIOD)
    if isinstance(period, bool) or not isinstance(period, int | float) or not period > 0:
        raise ValueError(f"option period must be a positive number of seconds, not {period!r}")
    return float(period)
