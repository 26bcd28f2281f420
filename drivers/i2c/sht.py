"""Sensirion SHT3x and SHT4x humidity and temperature sensors (``sht3x``, ``sht4x``).

Both families take commands as raw writes and answer with 16-bit words,
each followed by a CRC-8 (polynomial 0x31, init 0xFF); a CRC mismatch
raises DriverError saying so.

SHT3x (0x44 default, 0x45): identified at start by a status register read
(0xF32D) with a valid CRC and reserved bits clear, then soft-reset (0x30A2).
Each read is a single-shot, high-repeatability measurement without clock
stretching (0x2400).

SHT4x (0x44 default, 0x45, 0x46): identified at start by reading its
serial number (0x89) with valid CRCs, then soft-reset (0x94). Each read is a
high-precision measurement (0xFD); humidity is clamped to 0..100 %RH.

Values are rounded to 0.01 of their unit. Options: ``bus`` (default 1),
``address``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from lwm2md.drivers.base import DriverError, Quantity
from lwm2md.drivers.fake.sht import FakeSHT3x, FakeSHT4x
from lwm2md.drivers.i2c._common import I2COptions, I2CSensor, register_i2c_sensor
from lwm2md.drivers.i2c.bus import SMBusLike

LOG = logging.getLogger(__name__)

CRC_POLYNOMIAL = 0x31
CRC_INIT = 0xFF
DECIMALS = 2

SHT3X_ADDRESSES = (0x44, 0x45)
SHT3X_MEASURE_HIGH = 0x2400
SHT3X_SOFT_RESET = 0x30A2
SHT3X_READ_STATUS = 0xF32D
SHT3X_STATUS_RESERVED = 0x51EC
"""Status bits documented as reserved (always 0)."""
SHT3X_MEASURE_TIME = 0.016
SHT3X_RESET_TIME = 0.002

SHT4X_ADDRESSES = (0x44, 0x45, 0x46)
SHT4X_MEASURE_HIGH = 0xFD
SHT4X_READ_SERIAL = 0x89
SHT4X_SOFT_RESET = 0x94
SHT4X_MEASURE_TIME = 0.009
SHT4X_COMMAND_TIME = 0.001

QUANTITIES = (
    Quantity("temperature", "Cel", -40.0, 125.0),
    Quantity("humidity", "%RH", 0.0, 100.0),
)
OBJECTS = (3303, 3304)


def crc8(data: bytes | Sequence[int]) -> int:
    """Sensirion CRC-8 of ``data`` (polynomial 0x31, init 0xFF, no reflection, no final XOR)."""
    crc = CRC_INIT
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLYNOMIAL) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def split_words(raw: bytes) -> list[int] | None:
    """The 16-bit words of a ``word, CRC`` sequence, or None when a CRC does not match."""
    words: list[int] = []
    for index in range(0, len(raw) - len(raw) % 3, 3):
        chunk = raw[index : index + 3]
        if crc8(chunk[:2]) != chunk[2]:
            return None
        words.append((chunk[0] << 8) | chunk[1])
    return words


def _temperature(raw: int) -> float:
    return -45.0 + 175.0 * raw / 65535.0


class _Sensirion(I2CSensor):
    """Command/answer transfers shared by the two families."""

    def command(self, code: int, what: str) -> None:
        """Send a 1-byte (< 0x100) or 2-byte command."""
        data = [code] if code < 0x100 else [code >> 8, code & 0xFF]
        self.write_bytes(data, what)

    def read_words(self, count: int, what: str) -> list[int]:
        """Read ``count`` words with their CRCs; DriverError names a CRC mismatch."""
        raw = self.read_bytes(3 * count, what)
        words = split_words(raw)
        if words is None:
            raise self.error(f"{what}: CRC mismatch in {raw.hex()}")
        return words


class SHT3x(_Sensirion):
    """An SHT3x on an open bus; see the module docstring."""

    driver = "sht3x"

    def __init__(
        self,
        bus: SMBusLike,
        address: int = SHT3X_ADDRESSES[0],
        *,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        self.command(SHT3X_READ_STATUS, "reading status")
        (status,) = self.read_words(1, "reading status")
        if status & SHT3X_STATUS_RESERVED:
            raise self.error(f"status 0x{status:04x} has reserved bits set: not an SHT3x")
        self.command(SHT3X_SOFT_RESET, "soft reset")
        self.sleep(SHT3X_RESET_TIME)

    def quantities(self) -> dict[str, Quantity]:
        return {q.kind: q for q in QUANTITIES}

    def _measure(self) -> dict[str, float]:
        self.command(SHT3X_MEASURE_HIGH, "starting a measurement")
        self.sleep(SHT3X_MEASURE_TIME)
        raw_t, raw_rh = self.read_words(2, "reading measurement")
        return {
            "temperature": round(_temperature(raw_t), DECIMALS),
            "humidity": round(100.0 * raw_rh / 65535.0, DECIMALS),
        }


class SHT4x(_Sensirion):
    """An SHT4x on an open bus; :attr:`serial_number` is read at start."""

    driver = "sht4x"

    def __init__(
        self,
        bus: SMBusLike,
        address: int = SHT4X_ADDRESSES[0],
        *,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        self.serial_number = _read_serial(self)
        LOG.debug("%s: serial number 0x%08x", self.name, self.serial_number)
        self.command(SHT4X_SOFT_RESET, "soft reset")
        self.sleep(SHT4X_COMMAND_TIME)

    def quantities(self) -> dict[str, Quantity]:
        return {q.kind: q for q in QUANTITIES}

    def _measure(self) -> dict[str, float]:
        self.command(SHT4X_MEASURE_HIGH, "starting a measurement")
        self.sleep(SHT4X_MEASURE_TIME)
        raw_t, raw_rh = self.read_words(2, "reading measurement")
        humidity = min(max(-6.0 + 125.0 * raw_rh / 65535.0, 0.0), 100.0)
        return {
            "temperature": round(_temperature(raw_t), DECIMALS),
            "humidity": round(humidity, DECIMALS),
        }


def _read_serial(device: _Sensirion) -> int:
    device.command(SHT4X_READ_SERIAL, "reading serial number")
    device.sleep(SHT4X_COMMAND_TIME)
    high, low = device.read_words(2, "reading serial number")
    return (high << 16) | low


def is_sht3x(bus: SMBusLike, address: int) -> bool:
    """Status read with a valid CRC and reserved bits clear (no reset, no configuration)."""
    device = _Sensirion(bus, address, owns_bus=False)
    try:
        device.command(SHT3X_READ_STATUS, "reading status")
        (status,) = device.read_words(1, "reading status")
    except DriverError:
        return False
    return not status & SHT3X_STATUS_RESERVED


def is_sht4x(bus: SMBusLike, address: int) -> bool:
    """Serial number read with valid CRCs."""
    try:
        _read_serial(_Sensirion(bus, address, owns_bus=False))
    except DriverError:
        return False
    return True


def _make_sht3x(bus: SMBusLike, options: I2COptions) -> SHT3x:
    return SHT3x(bus, options.address, name=options.label)


def _make_sht4x(bus: SMBusLike, options: I2COptions) -> SHT4x:
    return SHT4x(bus, options.address, name=options.label)


register_i2c_sensor(
    _make_sht3x,
    driver="sht3x",
    addresses=SHT3X_ADDRESSES,
    quantities=QUANTITIES,
    objects=OBJECTS,
    check=is_sht3x,
    chip=FakeSHT3x,
)
register_i2c_sensor(
    _make_sht4x,
    driver="sht4x",
    addresses=SHT4X_ADDRESSES,
    quantities=QUANTITIES,
    objects=OBJECTS,
    check=is_sht4x,
    chip=FakeSHT4x,
)
