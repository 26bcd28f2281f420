"""Texas Instruments TMP102 temperature sensor (registry name ``tmp102``).

The chip has no id register. It is recognised by its configuration
register (pointer 0x01): the read-only resolution bits R1/R0 read 1 and the
four unused low bits read 0. At start the configuration is set to its
power-on default 0x60A0 (continuous conversion at 4 Hz) plus the EM bit
when option ``extended`` is true: the chip's only reset is the I2C general
call, which would reset every chip on the bus.

A read takes the latest conversion from the temperature register (pointer
0x00): 12-bit two's complement, or 13-bit in extended mode, 0.0625 Cel per
count; bit 0 of the second byte tells which. Bits that must be zero but
are not, or a value outside -55..150 Cel, raise DriverError. A reading
whose mode differs from the configured one means the chip lost its
configuration (power cycle); it is decoded by its own flag and the
configuration is written again. Options: ``bus`` (default 1), ``address``
0x48 (default) to 0x4B, ``extended`` (bool, default false).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lwm2md.drivers.base import Quantity
from lwm2md.drivers.fake.tmp102 import FakeTMP102
from lwm2md.drivers.i2c._common import I2COptions, I2CSensor, register_i2c_sensor
from lwm2md.drivers.i2c.bus import SMBusLike

LOG = logging.getLogger(__name__)

ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)
REG_TEMPERATURE = 0x00
REG_CONFIG = 0x01
CONFIG_DEFAULT = 0x60A0
CONFIG_EM = 0x0010
RESOLUTION_BITS = 0x6000  # R1/R0, read-only ones
UNUSED_BITS = 0x000F
LSB_CELSIUS = 0.0625
CONVERSION_TIME = 0.035
"""Longest conversion (seconds): the first valid reading after configuring."""
OPERATING_RANGE = (-55.0, 150.0)

QUANTITY = Quantity("temperature", "Cel", -55.0, 127.9375)
QUANTITY_EXTENDED = Quantity("temperature", "Cel", -55.0, 150.0)
OBJECTS = (3303,)


def plausible_config(config: int) -> bool:
    """True when a configuration register value can come from a TMP102."""
    return config & RESOLUTION_BITS == RESOLUTION_BITS and not config & UNUSED_BITS


def decode_temperature(raw: int) -> tuple[float, bool] | None:
    """(Cel, extended) from the 16-bit temperature register, or None if bits that read 0 are set."""
    if raw & 0x0001:
        if raw & 0x0006:
            return None
        counts = raw >> 3
        if counts & 0x1000:
            counts -= 0x2000
        return counts * LSB_CELSIUS, True
    if raw & 0x000F:
        return None
    counts = raw >> 4
    if counts & 0x800:
        counts -= 0x1000
    return counts * LSB_CELSIUS, False


class TMP102(I2CSensor):
    """A TMP102 on an open bus; see the module docstring for the contract."""

    driver = "tmp102"

    def __init__(
        self,
        bus: SMBusLike,
        address: int = ADDRESSES[0],
        *,
        extended: bool = False,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        self.extended = extended
        config = self._read_word(REG_CONFIG, "reading configuration")
        if not plausible_config(config):
            raise self.error(f"configuration 0x{config:04x} is not a TMP102's")
        self.configure()
        self.sleep(CONVERSION_TIME)

    def quantities(self) -> dict[str, Quantity]:
        quantity = QUANTITY_EXTENDED if self.extended else QUANTITY
        return {quantity.kind: quantity}

    def configure(self) -> None:
        """Write the power-on default configuration, with EM as configured."""
        config = CONFIG_DEFAULT | (CONFIG_EM if self.extended else 0)
        self.write_register(REG_CONFIG, config.to_bytes(2, "big"), "writing configuration")

    def _read_word(self, register: int, what: str) -> int:
        return int.from_bytes(self.read_register(register, 2, what), "big")

    def _measure(self) -> dict[str, float]:
        raw = self._read_word(REG_TEMPERATURE, "reading temperature")
        return {"temperature": self.convert(raw)}

    def convert(self, raw: int) -> float:
        """Cel from the temperature register; restores the configuration after a mode change."""
        decoded = decode_temperature(raw)
        if decoded is None:
            raise self.error(f"implausible temperature register 0x{raw:04x}")
        celsius, extended = decoded
        if not OPERATING_RANGE[0] <= celsius <= OPERATING_RANGE[1]:
            raise self.error(f"implausible temperature {celsius:.4f} Cel (register 0x{raw:04x})")
        if extended != self.extended:
            LOG.warning("%s: chip is in %s mode, configuration lost; writing it again",
                        self.name, "extended" if extended else "normal")  # fmt: skip
            self.configure()
        return celsius


def is_tmp102(bus: SMBusLike, address: int) -> bool:
    """Configuration register plausibility, read only."""
    high, low = bus.read_i2c_block_data(address, REG_CONFIG, 2)
    return plausible_config((high << 8) | low)


def _make(bus: SMBusLike, options: I2COptions) -> TMP102:
    extended = bool(options.extra.get("extended", False))
    return TMP102(bus, options.address, extended=extended, name=options.label)


register_i2c_sensor(
    _make,
    driver="tmp102",
    addresses=ADDRESSES,
    quantities=(QUANTITY,),
    objects=OBJECTS,
    check=is_tmp102,
    chip=FakeTMP102,
    allowed={"extended": bool},
)
