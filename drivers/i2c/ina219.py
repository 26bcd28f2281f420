"""TI INA219 current/power monitor (driver ``ina219``; IPSO 3316 Voltage, 3317 Current, 3328 Power).

Registers are 16-bit, big-endian on the wire, behind a pointer byte. At
construction the driver resets the chip (Configuration bit 15), checks that
Configuration then reads its reset value 0x399F (32 V bus range, ±320 mV
shunt range, 12-bit, continuous shunt and bus conversions; left as is) and
writes Calibration, following the datasheet's programming procedure:

    Current_LSB  = smallest 1/2/5 x 10^n A  >= max_current / 32767
    Cal          = trunc(0.04096 / (Current_LSB * shunt_ohms))   (bit 0 is void: written even)
    Power_LSB    = 20 * Current_LSB

and converts with the Current_LSB the written Cal stands for,
``0.04096 / (Cal * shunt_ohms)``. Each :meth:`read` checks that Calibration
still holds (a chip reset by a supply dip is reprogrammed, with a warning),
polls the Bus Voltage register until CNVR is set, and reads:

    voltage = (BusVoltage >> 3) * 4 mV
    current = signed(Current) * Current_LSB
    power   = Power * Power_LSB

Reading Power clears CNVR, so every read reports a fresh conversion. OVF
(current or power out of range for the calibration) raises DriverError.

Options: ``shunt_ohms`` (default 0.1) and ``max_current`` in A (default 3.2);
``max_current * shunt_ohms`` must fit the ±320 mV shunt range.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lwm2md.drivers.base import Quantity, Sensor
from lwm2md.drivers.fake.ina219 import FakeINA219
from lwm2md.drivers.fake.smbus import FakeSMBus
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

DRIVER = "ina219"
ADDRESSES = tuple(range(0x40, 0x50))
OBJECTS = (3316, 3317, 3328)
OPTIONS: dict[str, type] = {"shunt_ohms": float, "max_current": float}

REG_CONFIG = 0x00
REG_SHUNT_VOLTAGE = 0x01
REG_BUS_VOLTAGE = 0x02
REG_POWER = 0x03
REG_CURRENT = 0x04
REG_CALIBRATION = 0x05

CONFIG_RESET = 0x8000
CONFIG_DEFAULT = 0x399F
BUS_CNVR = 0x0002
BUS_OVF = 0x0001
BUS_LSB = Fraction(4, 1000)  # V
SHUNT_RANGE = 0.32  # V, with the reset PGA setting /8
BUS_RANGE = 26.0  # V, the datasheet's bus voltage sensing range
CAL_SCALE = Fraction(4096, 100000)  # the datasheet's 0.04096
CAL_MAX = 0xFFFE

CONVERSION_TIME = 2 * 532e-6  # s: one 12-bit shunt plus one 12-bit bus conversion
POLL_LIMIT = 10

DEFAULT_SHUNT_OHMS = 0.1
DEFAULT_MAX_CURRENT = 3.2


@dataclass(frozen=True)
class Calibration:
    """Calibration register value and the exact LSBs (A, W) it stands for."""

    register: int
    current_lsb: Fraction

    @property
    def power_lsb(self) -> Fraction:
        return 20 * self.current_lsb


def _fraction(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def current_lsb_for(max_current: float) -> Fraction:
    """The smallest 1, 2 or 5 x 10^n A not below ``max_current / 32767`` (exact)."""
    minimum = _fraction(max_current) / 32767
    exponent = math.floor(math.log10(minimum))
    while True:
        for mantissa in (1, 2, 5):
            candidate = mantissa * Fraction(10) ** exponent
            if candidate >= minimum:
                return candidate
        exponent += 1


def calibration_for(shunt_ohms: float, max_current: float) -> Calibration:
    """Calibration per the datasheet's procedure; ValueError when it does not fit 16 bits."""
    shunt = _fraction(shunt_ohms)
    cal = math.floor(CAL_SCALE / (current_lsb_for(max_current) * shunt))
    if not 0 < cal <= CAL_MAX:
        raise ValueError(
            f"{DRIVER}: options shunt_ohms={shunt_ohms} and max_current={max_current} need "
            f"calibration {cal}, beyond the 16-bit register; raise max_current or shunt_ohms"
        )
    cal &= CAL_MAX
    return Calibration(cal, CAL_SCALE / (cal * shunt))


def _positive(extra: Mapping[str, Any], key: str, default: float) -> float:
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{DRIVER}: option {key} must be a positive number, not {value!r}")
    return float(value)


def _options(extra: Mapping[str, Any]) -> dict[str, float]:
    """``shunt_ohms``/``max_current`` validated (ValueError naming the option), defaults filled in."""
    shunt_ohms = _positive(extra, "shunt_ohms", DEFAULT_SHUNT_OHMS)
    max_current = _positive(extra, "max_current", DEFAULT_MAX_CURRENT)
    if _fraction(max_current) * _fraction(shunt_ohms) > _fraction(SHUNT_RANGE):
        raise ValueError(
            f"{DRIVER}: option max_current {max_current} A through shunt_ohms {shunt_ohms} Ω drops "
            f"{max_current * shunt_ohms:g} V, beyond the ±{SHUNT_RANGE} V shunt range"
        )
    calibration_for(shunt_ohms, max_current)
    return {"shunt_ohms": shunt_ohms, "max_current": max_current}


def _s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class INA219(I2CSensor):
    """The INA219 at ``address`` on ``bus`` measuring across ``shunt_ohms`` up to ``max_current``.

    Construction resets and calibrates the chip: DriverError when it does not
    answer or Configuration does not read back its reset value; ValueError
    for bad options.
    """

    driver = DRIVER

    def __init__(
        self,
        bus: SMBusLike,
        address: int = ADDRESSES[0],
        *,
        shunt_ohms: float = DEFAULT_SHUNT_OHMS,
        max_current: float = DEFAULT_MAX_CURRENT,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        checked = _options({"shunt_ohms": shunt_ohms, "max_current": max_current})
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        self.shunt_ohms = checked["shunt_ohms"]
        self.max_current = checked["max_current"]
        self.calibration = calibration_for(self.shunt_ohms, self.max_current)
        self._quantities = self.quantities_for(self.max_current)
        self.program()

    @staticmethod
    def quantities_for(max_current: float) -> dict[str, Quantity]:
        """Bus voltage 0..26 V, current ±max_current, power up to 26 V x max_current."""
        return {
            q.kind: q
            for q in (
                Quantity("voltage", "V", 0.0, BUS_RANGE),
                Quantity("current", "A", -max_current, max_current),
                Quantity("power", "W", 0.0, BUS_RANGE * max_current),
            )
        }

    def quantities(self) -> dict[str, Quantity]:
        return dict(self._quantities)

    def _read_word(self, register: int, what: str) -> int:
        high, low = self.read_register(register, 2, what)
        return (high << 8) | low

    def _write_word(self, register: int, value: int, what: str) -> None:
        self.write_register(register, [value >> 8, value & 0xFF], what)

    def program(self) -> None:
        """Reset the chip, check its default configuration and write Calibration."""
        self._write_word(REG_CONFIG, CONFIG_RESET, "reset")
        config = self._read_word(REG_CONFIG, "reading configuration")
        if config != CONFIG_DEFAULT:
            raise self.error(f"configuration reads {config:#06x} after reset, not {CONFIG_DEFAULT:#06x}")
        self._write_word(REG_CALIBRATION, self.calibration.register, "writing calibration")

    def _measure(self) -> dict[str, float]:
        cal = self._read_word(REG_CALIBRATION, "reading calibration")
        if cal != self.calibration.register:
            LOG.warning("%s: calibration reads %#06x, not %#06x (chip reset?); reprogramming",
                        self.name, cal, self.calibration.register)  # fmt: skip
            self.program()
        bus = self._wait_conversion()
        current = _s16(self._read_word(REG_CURRENT, "reading current"))
        power = self._read_word(REG_POWER, "reading power")  # clears CNVR
        if bus & BUS_OVF:
            raise self.error("math overflow (OVF): current or power beyond the calibrated range")
        return {  # exact products, correctly rounded
            "voltage": float((bus >> 3) * BUS_LSB),
            "current": float(current * self.calibration.current_lsb),
            "power": float(power * self.calibration.power_lsb),
        }

    def _wait_conversion(self) -> int:
        """Bus Voltage register once CNVR is set; DriverError after ``POLL_LIMIT`` polls."""
        for attempt in range(POLL_LIMIT):
            bus = self._read_word(REG_BUS_VOLTAGE, "reading bus voltage")
            if bus & BUS_CNVR:
                return bus
            if attempt + 1 < POLL_LIMIT:
                self.sleep(CONVERSION_TIME)
        raise self.error(f"no conversion ready after {POLL_LIMIT} polls (CNVR never set)")


def _make(bus: SMBusLike, options: I2COptions) -> INA219:
    settings = _options(options.extra)
    return INA219(
        bus, options.address, shunt_ohms=settings["shunt_ohms"], max_current=settings["max_current"]
    )


def _make_simulated(bus: SMBusLike, options: I2COptions) -> INA219:
    """:func:`_make` after fitting the chip model to the options: their shunt, a load below max_current."""
    settings = _options(options.extra)
    assert isinstance(bus, FakeSMBus)
    chip = bus.chips[options.address]
    assert isinstance(chip, FakeINA219)
    chip.shunt_ohms = settings["shunt_ohms"]
    chip.current_scale = settings["max_current"] / DEFAULT_MAX_CURRENT
    return _make(bus, options)


def _factory(options: Mapping[str, Any]) -> Sensor:
    opts = parse_i2c_options(options, driver=DRIVER, addresses=ADDRESSES, allowed=OPTIONS)
    _options(opts.extra)  # option errors before touching the bus
    return open_sensor(_make, opts)


def is_ina219(bus: SMBusLike, address: int) -> bool:
    """True when Configuration at ``address`` holds the INA219 reset value 0x399F."""
    high, low = bus.read_i2c_block_data(address, REG_CONFIG, 2)
    return ((high << 8) | low) == CONFIG_DEFAULT


QUANTITIES = tuple(INA219.quantities_for(DEFAULT_MAX_CURRENT).values())
"""Quantities with the default options (the simulated signal: 12 V, 1.5 A, 18 W around their centres)."""

register_sensor(
    DRIVER,
    quantities=QUANTITIES,
    simulator=simulator(
        _make_simulated,
        FakeINA219,
        driver=DRIVER,
        addresses=ADDRESSES,
        quantities=QUANTITIES,
        allowed=OPTIONS,
    ),
    i2c_addresses=ADDRESSES,
    probe=safe_probe(is_ina219),
    objects=OBJECTS,
)(_factory)
