"""A BH1750FVI ambient light sensor model for the fake bus (ROHM datasheet).

The chip has no registers: every write transaction carries one opcode and a
read transaction returns the 16-bit data register, high byte first. The
model follows the datasheet's state machine: it starts powered down, ignores
measurement commands (and Reset) while powered down, measures for the
worst-case time of its mode scaled by MTreg, keeps returning the previous
result until a measurement completes, and powers down after a one-time
measurement. Time comes from ``clock`` so tests and simulations can run on
virtual time.

Tests pin the next results with :meth:`FakeBH1750.set_raw` or give the light
level with :meth:`FakeBH1750.set_lux`; the simulator calls
:meth:`FakeBH1750.set_environment`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lwm2md.drivers.fake.smbus import FakeChip

POWER_DOWN = 0x00
POWER_ON = 0x01
RESET = 0x07
MTREG_HIGH = 0x40  # 0b01000_xxx: MTreg bits 7..5
MTREG_LOW = 0x60  # 0b011_xxxxx: MTreg bits 4..0
MTREG_DEFAULT = 69
MTREG_MIN = 31
MTREG_MAX = 254

CONTINUOUS_MODES = frozenset({0x10, 0x11, 0x13})
ONE_TIME_MODES = frozenset({0x20, 0x21, 0x23})
_MAX_TIME_AT_DEFAULT_MTREG = {0x0: 0.180, 0x1: 0.180, 0x3: 0.024}
"""Worst-case measurement time (s) by the mode's low nibble: H-res, H-res2, L-res."""


class FakeBH1750(FakeChip):
    """BH1750 at ``address`` (0x23 with ADDR low, 0x5C with ADDR high).

    ``commands`` lists every opcode received; ``measurements`` counts started
    measurements. A write of more or fewer than one byte is a driver bug and
    raises AssertionError.
    """

    def __init__(
        self,
        address: int = 0x23,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(address)
        self.clock = clock
        self.powered = False
        self.mode: int | None = None
        self.mtreg = MTREG_DEFAULT
        self.data = 0
        self.commands: list[int] = []
        self.measurements = 0
        self._lux = 0.0
        self._pinned_raw: int | None = None
        self._done_at: float | None = None
        self._pending = 0

    # -- test and simulation controls -------------------------------------------

    def set_lux(self, lux: float) -> None:
        """Measurements from now on see ``lux`` (ends a :meth:`set_raw` pin)."""
        self._lux = float(lux)
        self._pinned_raw = None

    def set_environment(self, *, illuminance: float | None = None, **_other: float) -> None:
        """Simulator hook: the light level in lx (other kinds are ignored)."""
        if illuminance is not None:
            self.set_lux(illuminance)

    def set_raw(self, raw: int) -> None:
        """Measurements from now on yield the 16-bit count ``raw``, whatever the mode."""
        if not 0 <= raw <= 0xFFFF:
            raise ValueError(f"raw must fit 16 bits, not {raw}")
        self._pinned_raw = raw

    def measurement_time(self) -> float:
        """Worst-case seconds the current mode takes at the current MTreg."""
        base = _MAX_TIME_AT_DEFAULT_MTREG[(self.mode or 0x20) & 0x0F]
        return base * self.mtreg / MTREG_DEFAULT

    # -- wire side -------------------------------------------------------------------

    def on_write(self, data: bytes) -> None:
        if len(data) != 1:
            raise AssertionError(f"BH1750 takes one opcode per write, got {data.hex()}")
        self._settle()
        opcode = data[0]
        self.commands.append(opcode)
        if opcode == POWER_DOWN:
            self.powered = False
            self._done_at = None
        elif opcode == POWER_ON:
            self.powered = True
        elif opcode == RESET:
            if self.powered:  # "not acceptable in power down mode"
                self.data = 0
        elif opcode & 0xF8 == MTREG_HIGH:
            self.mtreg = (self.mtreg & 0x1F) | ((opcode & 0x07) << 5)
        elif opcode & 0xE0 == MTREG_LOW:
            self.mtreg = (self.mtreg & 0xE0) | (opcode & 0x1F)
        elif (opcode in CONTINUOUS_MODES or opcode in ONE_TIME_MODES) and self.powered:
            self.mode = opcode
            self._start()
        # any other opcode is ignored, like the chip

    def on_read(self, length: int) -> bytes:
        self._settle()
        word = self.data.to_bytes(2, "big")
        return bytes(word[i % 2] for i in range(length))

    # -- model -------------------------------------------------------------------------

    def _start(self) -> None:
        self.measurements += 1
        self._pending = self._raw_for_mode()
        self._done_at = self.clock() + self.measurement_time()

    def _settle(self) -> None:
        """Complete the running measurement if its time is up."""
        if self._done_at is None or self.clock() < self._done_at - 1e-12:
            return
        self.data = self._pending
        if self.mode in ONE_TIME_MODES:
            self.powered = False
            self._done_at = None
        else:
            self._start()

    def _raw_for_mode(self) -> int:
        if self._pinned_raw is not None:
            return self._pinned_raw
        counts = max(0.0, self._lux) * 1.2 * self.mtreg / MTREG_DEFAULT
        if self.mode is not None and self.mode & 0x0F == 0x1:  # H-resolution mode 2: 0.5 lx/count
            counts *= 2
        return min(0xFFFF, round(counts))
