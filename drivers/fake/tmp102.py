"""A TMP102 model for the fake bus: pointer register and four 16-bit registers, MSB first.

Modelled from the datasheet: a write's first byte sets the pointer (P1/P0),
two more bytes write the register there; reads return the pointed register
(repeating it for longer reads). The temperature register is read-only; in
the configuration register R1/R0 always read 1, AL reads 1 (no alert with
the default polarity) and the low nibble reads 0. The temperature is
encoded per the EM bit: 12-bit counts left-aligned, or 13-bit counts with
bit 0 set. :meth:`power_cycle` restores the power-on defaults.
"""

from __future__ import annotations

import logging

from lwm2md.drivers.fake.smbus import FakeChip

LOG = logging.getLogger(__name__)

TEMPERATURE, CONFIG, T_LOW, T_HIGH = 0, 1, 2, 3
POWER_ON = {TEMPERATURE: 0x0000, CONFIG: 0x60A0, T_LOW: 0x4B00, T_HIGH: 0x5000}
CONFIG_WRITABLE = 0x9F10  # OS, F1/F0, POL, TM, SD; CR1/CR0, EM
CONFIG_FIXED = 0x6020  # R1/R0 and AL read as 1
EM = 0x0010


class FakeTMP102(FakeChip):
    """The TMP102 model; set the temperature with :meth:`set_environment` or :meth:`set_raw`."""

    def __init__(self, address: int = 0x48) -> None:
        super().__init__(address)
        self.registers = dict(POWER_ON)
        self.pointer = TEMPERATURE
        self.celsius = 25.0
        self._raw: int | None = None

    def power_cycle(self) -> None:
        """Back to the power-on register values (EM cleared)."""
        self.registers = dict(POWER_ON)
        self.pointer = TEMPERATURE

    @property
    def extended(self) -> bool:
        return bool(self.registers[CONFIG] & EM)

    def set_environment(self, *, temperature: float | None = None, **_other: float) -> None:
        """The temperature (Cel) the next conversions see; ends a :meth:`set_raw` override."""
        if temperature is not None:
            self.celsius = float(temperature)
        self._raw = None

    def set_raw(self, value: int) -> None:
        """Pin the temperature register to ``value`` (16 bits as read, MSB first)."""
        self._raw = value & 0xFFFF

    def temperature_register(self) -> int:
        """What the temperature register reads now."""
        if self._raw is not None:
            return self._raw
        counts = round(self.celsius / 0.0625)
        if self.extended:
            counts = min(max(counts, -4096), 4095)
            return ((counts & 0x1FFF) << 3) | 0x0001
        counts = min(max(counts, -2048), 2047)
        return (counts & 0x0FFF) << 4

    def on_write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0] & 0x03
        if len(data) < 3 or self.pointer == TEMPERATURE:
            return
        value = (data[1] << 8) | data[2]
        if self.pointer == CONFIG:
            value = (value & CONFIG_WRITABLE) | CONFIG_FIXED
        else:
            value &= 0xFFF0
        self.registers[self.pointer] = value

    def on_read(self, length: int) -> bytes:
        if self.pointer == TEMPERATURE:
            self.registers[TEMPERATURE] = self.temperature_register()
        word = self.registers[self.pointer].to_bytes(2, "big")
        return (word * (length // 2 + 1))[:length]
