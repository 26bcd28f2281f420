"""An INA219 current/power monitor model for the fake bus (TI SBOS448).

Six 16-bit registers behind a pointer byte, big-endian on the wire: a write
of ``[pointer]`` selects a register, ``[pointer, msb, lsb]`` also writes it
(only Configuration and Calibration are writable), a read returns the
selected register. The model implements the reset bit, the operating modes
(continuous conversions every shunt+bus conversion time, or one triggered
conversion per Configuration write), the shunt PGA range, the Calibration
void bit 0 and the chip's own Current and Power arithmetic with the CNVR
flag (cleared by a Power read or a Configuration write) and the OVF flag.

Tests set ADC codes with :meth:`FakeINA219.set_raw` or physical values with
:meth:`FakeINA219.set_load`, :meth:`FakeINA219.set_bus_voltage` and
:meth:`FakeINA219.set_shunt_voltage`; the simulator calls
:meth:`FakeINA219.set_environment`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lwm2md.drivers.fake.smbus import FakeChip

CONFIG = 0x00
SHUNT_VOLTAGE = 0x01
BUS_VOLTAGE = 0x02
POWER = 0x03
CURRENT = 0x04
CALIBRATION = 0x05

CONFIG_DEFAULT = 0x399F
SHUNT_LSB = 10e-6
BUS_LSB = 0.004
CNVR = 0x0002
OVF = 0x0001

_ADC_TIME = {0b0000: 84e-6, 0b0001: 148e-6, 0b0010: 276e-6, 0b0011: 532e-6}
_ADC_TIME.update({0b0100 | k: v for k, v in _ADC_TIME.items()})  # bit 2 is "don't care" with bit 3 clear
_ADC_TIME.update({0b1000: 532e-6, 0b1001: 1.06e-3, 0b1010: 2.13e-3, 0b1011: 4.26e-3,
                  0b1100: 8.51e-3, 0b1101: 17.02e-3, 0b1110: 34.05e-3, 0b1111: 68.10e-3})  # fmt: skip
"""Conversion time (s) by BADC/SADC setting (resolution or number of averaged samples)."""


class FakeINA219(FakeChip):
    """INA219 at ``address`` (0x40..0x4F) measuring across a ``shunt_ohms`` resistor.

    ``registers`` holds the raw register file (index = pointer); ``writes``
    lists every (register, value) written.
    """

    def __init__(
        self,
        address: int = 0x40,
        *,
        shunt_ohms: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(address)
        self.shunt_ohms = shunt_ohms
        self.clock = clock
        self.current_scale = 1.0
        """Factor :meth:`set_environment` applies to the simulated current."""
        self.stalled = False
        """When True no conversion ever completes (CNVR stays clear)."""
        self.pointer = 0
        self.registers = [0] * 6
        self.writes: list[tuple[int, int]] = []
        self._bus_volts = 0.0
        self._shunt_volts = 0.0
        self._raw: tuple[int, int] | None = None
        self._next_done: float | None = None
        self.reset()

    # -- test and simulation controls -------------------------------------------

    def reset(self) -> None:
        """Power-on / RST state: default configuration, calibration 0, no data."""
        self.registers = [CONFIG_DEFAULT, 0, 0, 0, 0, 0]
        self._start()

    def set_bus_voltage(self, volts: float) -> None:
        """Conversions from now on see ``volts`` on VIN- (ends a :meth:`set_raw` pin)."""
        self._bus_volts = float(volts)
        self._raw = None

    def set_shunt_voltage(self, volts: float) -> None:
        """Conversions from now on see ``volts`` across the shunt (VIN+ - VIN-; may be negative)."""
        self._shunt_volts = float(volts)
        self._raw = None

    def set_load(self, bus_volts: float, amps: float) -> None:
        """A load drawing ``amps`` at ``bus_volts`` through this chip's shunt resistor."""
        self.set_bus_voltage(bus_volts)
        self.set_shunt_voltage(amps * self.shunt_ohms)

    def set_environment(
        self, *, voltage: float | None = None, current: float | None = None, **_other: float
    ) -> None:
        """Simulator hook: bus voltage (V) and load current (A, times ``current_scale``)."""
        if voltage is not None:
            self.set_bus_voltage(voltage)
        if current is not None:
            self.set_shunt_voltage(current * self.current_scale * self.shunt_ohms)

    def set_raw(self, shunt: int, bus: int) -> None:
        """Pin the ADC results: signed shunt code (10 µV) and 13-bit bus code (4 mV)."""
        if not -0x8000 <= shunt <= 0x7FFF or not 0 <= bus <= 0x1FFF:
            raise ValueError(f"shunt {shunt} or bus {bus} out of register range")
        self._raw = (shunt, bus)

    def conversion_time(self) -> float:
        """Seconds one conversion cycle takes in the current configuration."""
        config = self.registers[CONFIG]
        mode = config & 0x7
        bus = _ADC_TIME[(config >> 7) & 0xF] if mode & 0b010 else 0.0
        shunt = _ADC_TIME[(config >> 3) & 0xF] if mode & 0b001 else 0.0
        return bus + shunt

    # -- wire side -------------------------------------------------------------------

    def on_write(self, data: bytes) -> None:
        self._settle()
        if not data:
            return
        self.pointer = data[0]
        if len(data) < 3:
            return
        if len(data) != 3 or self.pointer > CALIBRATION:
            raise AssertionError(f"INA219: bad write {data.hex()}")
        value = (data[1] << 8) | data[2]
        self.writes.append((self.pointer, value))
        if self.pointer == CONFIG:
            if value & 0x8000:
                self.reset()
                return
            self.registers[CONFIG] = value & 0xBFFF  # bit 14 unused
            self.registers[BUS_VOLTAGE] &= ~CNVR & 0xFFFF
            self._start()
        elif self.pointer == CALIBRATION:
            self.registers[CALIBRATION] = value & 0xFFFE  # FS0 is a void bit

    def on_read(self, length: int) -> bytes:
        self._settle()
        if self.pointer > CALIBRATION:
            raise AssertionError(f"INA219: read of nonexistent register {self.pointer:#x}")
        word = self.registers[self.pointer].to_bytes(2, "big")
        if self.pointer == POWER:
            self.registers[BUS_VOLTAGE] &= ~CNVR & 0xFFFF
        return bytes(word[i % 2] for i in range(length))

    # -- model -------------------------------------------------------------------------

    def _start(self) -> None:
        mode = self.registers[CONFIG] & 0x7
        self._next_done = None if mode in (0b000, 0b100) else self.clock() + self.conversion_time()

    def _settle(self) -> None:
        """Complete a due conversion: refresh the data registers and set CNVR."""
        if self.stalled or self._next_done is None or self.clock() < self._next_done - 1e-12:
            return
        self._convert()
        if self.registers[CONFIG] & 0b100:  # continuous
            self._next_done = self.clock() + self.conversion_time()
        else:
            self._next_done = None

    def _convert(self) -> None:
        config = self.registers[CONFIG]
        if self._raw is not None:
            shunt, bus = self._raw
        else:
            shunt = round(self._shunt_volts / SHUNT_LSB)
            bus = round(self._bus_volts / BUS_LSB)
        limit = 4000 << ((config >> 11) & 0x3)  # PGA /1../8: ±40..±320 mV
        shunt = max(-limit, min(limit, shunt))
        bus = max(0, min(0x1FFF, bus))
        if config & 0b001:
            self.registers[SHUNT_VOLTAGE] = shunt & 0xFFFF
        flags = CNVR
        cal = self.registers[CALIBRATION]
        current = int(shunt * cal / 4096)  # truncation toward zero
        power = int(abs(current) * bus / 5000)
        if not -0x8000 <= current <= 0x7FFF or power > 0xFFFF:
            flags |= OVF
        self.registers[CURRENT] = max(-0x8000, min(0x7FFF, current)) & 0xFFFF
        self.registers[POWER] = min(0xFFFF, power)
        bus_register = (bus << 3) if config & 0b010 else self.registers[BUS_VOLTAGE] & 0xFFF8
        self.registers[BUS_VOLTAGE] = bus_register | flags
