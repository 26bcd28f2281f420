"""An ADS1115 16-bit ADC model for the fake bus (TI SBAS444).

Four 16-bit registers behind a 2-bit address pointer, big-endian on the
wire: Conversion (0, read-only), Config (1, reset 0x8583), Lo_thresh (2,
0x8000) and Hi_thresh (3, 0x7FFF). Writing Config with OS set while the
device is powered down (single-shot mode) starts one conversion that takes
1/DR seconds on ``clock``; meanwhile OS reads 0 and Conversion keeps the
previous result. In continuous mode the conversions repeat. Input voltages
are converted with the programmed MUX and PGA and clipped to the code range.

Tests set codes with :meth:`FakeADS1115.set_raw` or voltages with
:meth:`FakeADS1115.set_input`; the simulator calls
:meth:`FakeADS1115.set_environment`. ``stalled`` makes conversions never finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lwm2md.drivers.fake.smbus import FakeChip

CONVERSION = 0
CONFIG = 1
LO_THRESH = 2
HI_THRESH = 3
CONFIG_DEFAULT = 0x8583
OS = 0x8000
MODE_SINGLE = 0x0100

FULL_SCALE = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
"""Full-scale range (V) by PGA bits 11:9."""
DATA_RATE = (8, 16, 32, 64, 128, 250, 475, 860)
"""Samples per second by DR bits 7:5."""
_DIFFERENTIAL = ((0, 1), (0, 3), (1, 3), (2, 3))
"""Positive and negative inputs for MUX 000..011; 1xx is AIN(x-4) against GND."""


class FakeADS1115(FakeChip):
    """ADS1115 at ``address`` (0x48..0x4B depending on the ADDR pin).

    ``conversions`` lists the MUX setting of every started conversion.
    """

    def __init__(
        self,
        address: int = 0x48,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(address)
        self.clock = clock
        self.pointer = CONVERSION
        self.registers = [0x0000, CONFIG_DEFAULT, 0x8000, 0x7FFF]
        self.inputs = [0.0, 0.0, 0.0, 0.0]
        self.raw: dict[int, int] = {}
        self.stalled = False
        """When True no conversion ever completes (OS stays 0)."""
        self.oscillator = 1.0
        """Speed of the internal oscillator relative to nominal (the datasheet allows ±10 %)."""
        self.conversions: list[int] = []
        self._done_at: float | None = None
        self._pending = 0

    # -- test and simulation controls -------------------------------------------

    def set_input(self, channel: int, volts: float) -> None:
        """AIN``channel`` is at ``volts`` (against GND) from now on; ends its :meth:`set_raw` pin."""
        self.inputs[channel] = float(volts)
        self.raw.pop(channel, None)

    def set_environment(self, **values: float) -> None:
        """Simulator hook: ``ain0``..``ain3`` are input voltages; other keys are ignored."""
        for channel in range(4):
            volts = values.get(f"ain{channel}")
            if volts is not None:
                self.set_input(channel, volts)

    def set_raw(self, channel: int, code: int) -> None:
        """Single-ended conversions of AIN``channel`` yield the signed ``code`` whatever the PGA."""
        if not -0x8000 <= code <= 0x7FFF:
            raise ValueError(f"code must fit a signed 16-bit register, not {code}")
        self.raw[channel] = code

    @property
    def config(self) -> int:
        return self.registers[CONFIG]

    # -- wire side -------------------------------------------------------------------

    def on_write(self, data: bytes) -> None:
        self._settle()
        if not data:
            return
        if data[0] & 0xFC:
            raise AssertionError(f"ADS1115: pointer bits 7:2 must be 0, got {data[0]:#04x}")
        self.pointer = data[0]
        if len(data) == 1:
            return
        if len(data) != 3:
            raise AssertionError(f"ADS1115: bad write {data.hex()}")
        value = (data[1] << 8) | data[2]
        if self.pointer == CONVERSION:
            return  # read-only
        if self.pointer != CONFIG:
            self.registers[self.pointer] = value
            return
        busy = self._done_at is not None
        self.registers[CONFIG] = value
        if not value & MODE_SINGLE or (value & OS and not busy):
            self._start()

    def on_read(self, length: int) -> bytes:
        self._settle()
        value = self.registers[self.pointer]
        if self.pointer == CONFIG:
            value = (value & ~OS & 0xFFFF) | (0 if self._done_at is not None else OS)
        word = value.to_bytes(2, "big")
        return bytes(word[i % 2] for i in range(length))

    # -- model -------------------------------------------------------------------------

    def _start(self) -> None:
        config = self.registers[CONFIG]
        mux = (config >> 12) & 0x7
        self.conversions.append(mux)
        self._pending = self._code(mux, FULL_SCALE[(config >> 9) & 0x7])
        self._done_at = self.clock() + 1.0 / (DATA_RATE[(config >> 5) & 0x7] * self.oscillator)

    def _settle(self) -> None:
        if self.stalled or self._done_at is None or self.clock() < self._done_at - 1e-12:
            return
        self.registers[CONVERSION] = self._pending & 0xFFFF
        if self.registers[CONFIG] & MODE_SINGLE:
            self._done_at = None
        else:
            self._start()

    def _code(self, mux: int, full_scale: float) -> int:
        if mux & 0b100:
            channel = mux & 0b011
            if channel in self.raw:
                return self.raw[channel]
            volts = self._volts(channel)
        else:
            positive, negative = _DIFFERENTIAL[mux]
            volts = self._volts(positive) - self._volts(negative)
        return max(-0x8000, min(0x7FFF, round(volts * 0x8000 / full_scale)))

    def _volts(self, channel: int) -> float:
        return self.inputs[channel]
