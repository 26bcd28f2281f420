"""ROHM BH1750FVI ambient light sensor (driver ``bh1750``, IPSO 3301 Illuminance).

The chip is command driven (no registers, no chip id). Construction sends
Power Down (which checks that the chip answers). Each :meth:`read`
sends Power On, the measurement-time (MTreg) opcodes when MTreg is not the
default 69, and a one-time measurement opcode, waits the datasheet's
worst-case measurement time for the mode scaled by MTreg/69, then reads the
two data bytes (high byte first). The chip powers itself down afterwards.

    lux = count / 1.2 * 69 / MTreg        (high and low resolution modes)
    lux = count / 1.2 * 69 / MTreg / 2    (high resolution mode 2)

Options (besides ``bus``/``address``): ``mode`` = ``"high"`` (default,
1 lx resolution, at most 180 ms), ``"high2"`` (0.5 lx, 180 ms) or ``"low"``
(4 lx, 24 ms); ``mtreg`` = 31..254 (default 69; higher is more sensitive and
slower).

:func:`is_bh1750` (the scan probe) can only check that a device answers a
two-byte read at 0x23/0x5C with something other than 0xFFFF: the chip has
no identification, and a probe must not write (a Power On byte would set the
outputs of a PCF8574 port expander sharing address 0x23).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smbus2 import i2c_msg

from lwm2md.drivers.base import Quantity, Sensor
from lwm2md.drivers.fake.bh1750 import FakeBH1750
from lwm2md.drivers.i2c._common import (
    I2COptions,
    I2CSensor,
    open_sensor,
    parse_i2c_options,
    safe_probe,
    simulator,
)
from lwm2md.drivers.i2c.bus import SMBusLike
from lwm2md.drivers.registry import register_sensor

LOG = logging.getLogger(__name__)

DRIVER = "bh1750"
ADDRESSES = (0x23, 0x5C)
OBJECTS = (3301,)
OPTIONS: dict[str, type] = {"mode": str, "mtreg": int}

POWER_DOWN = 0x00
POWER_ON = 0x01
MTREG_HIGH_BITS = 0x40  # 01000_765
MTREG_LOW_BITS = 0x60  # 011_43210
MTREG_DEFAULT = 69
MTREG_RANGE = (31, 254)
COUNTS_PER_LUX = Fraction(6, 5)


@dataclass(frozen=True)
class Mode:
    """A one-time measurement mode: opcode, worst-case seconds at MTreg 69, extra divisor of count/1.2."""

    opcode: int
    max_time: float
    divisor: int


MODES: dict[str, Mode] = {
    "high": Mode(0x20, 0.180, 1),
    "high2": Mode(0x21, 0.180, 2),
    "low": Mode(0x23, 0.024, 1),
}

QUANTITY = Quantity("illuminance", "lx", 1.0, 65535.0)


def lux_from_count(count: int, mode: str = "high", mtreg: int = MTREG_DEFAULT) -> float:
    """Illuminance for data-register ``count`` measured in ``mode`` at ``mtreg`` (correctly rounded)."""
    return float(count / COUNTS_PER_LUX * MTREG_DEFAULT / mtreg / MODES[mode].divisor)


def _options(extra: Mapping[str, Any]) -> dict[str, Any]:
    """``mode``/``mtreg`` validated (ValueError naming the option), defaults filled in."""
    mode = extra.get("mode", "high")
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{DRIVER}: option mode must be one of {', '.join(MODES)}, not {mode!r}")
    mtreg = extra.get("mtreg", MTREG_DEFAULT)
    low, high = MTREG_RANGE
    if isinstance(mtreg, bool) or not isinstance(mtreg, int) or not low <= mtreg <= high:
        raise ValueError(f"{DRIVER}: option mtreg must be an integer {low}..{high}, not {mtreg!r}")
    return {"mode": mode, "mtreg": mtreg}


class BH1750(I2CSensor):
    """The BH1750 at ``address`` on ``bus``; ``mode``/``mtreg`` as in the module docstring.

    Construction sends Power Down, so an absent chip raises DriverError
    there; ValueError for bad options.
    """

    driver = DRIVER

    def __init__(
        self,
        bus: SMBusLike,
        address: int = ADDRESSES[0],
        *,
        mode: str = "high",
        mtreg: int = MTREG_DEFAULT,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        checked = _options({"mode": mode, "mtreg": mtreg})
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        self.mode: str = checked["mode"]
        self.mtreg: int = checked["mtreg"]
        self.write_bytes([POWER_DOWN], "power down")

    def quantities(self) -> dict[str, Quantity]:
        return {QUANTITY.kind: QUANTITY}

    def measurement_time(self) -> float:
        """Worst-case seconds one measurement takes in this mode and MTreg."""
        return MODES[self.mode].max_time * self.mtreg / MTREG_DEFAULT

    def _measure(self) -> dict[str, float]:
        self.write_bytes([POWER_ON], "power on")
        if self.mtreg != MTREG_DEFAULT:
            self.write_bytes([MTREG_HIGH_BITS | (self.mtreg >> 5)], "setting MTreg")
            self.write_bytes([MTREG_LOW_BITS | (self.mtreg & 0x1F)], "setting MTreg")
        self.write_bytes([MODES[self.mode].opcode], "starting a measurement")
        self.sleep(self.measurement_time())
        high, low = self.read_bytes(2, "reading the measurement")
        count = (high << 8) | low
        if count == 0xFFFF:
            LOG.debug("%s: saturated (count 0xFFFF)", self.name)
        return {QUANTITY.kind: lux_from_count(count, self.mode, self.mtreg)}


def _make(bus: SMBusLike, options: I2COptions) -> BH1750:
    return BH1750(bus, options.address, **_options(options.extra))


def _factory(options: Mapping[str, Any]) -> Sensor:
    opts = parse_i2c_options(options, driver=DRIVER, addresses=ADDRESSES, allowed=OPTIONS)
    _options(opts.extra)  # option errors before touching the bus
    return open_sensor(_make, opts)


def is_bh1750(bus: SMBusLike, address: int) -> bool:
    """True when a device at ``address`` answers a two-byte read with anything but 0xFFFF."""
    msg = i2c_msg.read(address, 2)
    bus.i2c_rdwr(msg)
    return bytes(msg) != b"\xff\xff"


register_sensor(
    DRIVER,
    quantities=(QUANTITY,),
    simulator=simulator(
        _make, FakeBH1750, driver=DRIVER, addresses=ADDRESSES, quantities=(QUANTITY,), allowed=OPTIONS
    ),
    i2c_addresses=ADDRESSES,
    probe=safe_probe(is_bh1750),
    objects=OBJECTS,
)(_factory)
