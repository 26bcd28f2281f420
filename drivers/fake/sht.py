"""Command-level models of the Sensirion SHT3x and SHT4x for the fake bus.

Both answer a command with words each followed by a CRC-8 (polynomial
0x31, init 0xFF). A read with no answer pending is not acknowledged (as
the real parts do while measuring or after an unknown command), an unknown
command is not acknowledged either, and ``corrupt_crc`` flips a bit in
every CRC sent. Measurements come from :meth:`set_raw` (ticks) or
:meth:`set_environment` (Cel and %RH, converted with the datasheet's
transfer functions).
"""

from __future__ import annotations

import errno
import logging

from lwm2md.drivers.fake.smbus import FakeChip

LOG = logging.getLogger(__name__)


def sensirion_crc(data: bytes) -> int:
    """CRC-8/0x31/init 0xFF, by long division of the message (modelled independently of the driver)."""
    register = 0xFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            register <<= 1
            if register & 0x100:
                register ^= 0x131
    return register & 0xFF


def _nak() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


def _ticks(value: float) -> int:
    return min(max(round(value), 0), 0xFFFF)


class _SensirionChip(FakeChip):
    """Shared answer handling: words out with CRCs, NAK when nothing is pending."""

    def __init__(self, address: int) -> None:
        super().__init__(address)
        self.raw_t = 0x6666  # about 25 Cel
        self.raw_rh = 0x8000
        self.corrupt_crc = False
        self.commands: list[int] = []
        self.resets = 0
        self.measurements = 0
        self._answer: bytes | None = None

    def set_raw(self, *, t: int | None = None, rh: int | None = None) -> None:
        """Ticks (0..65535) the next measurement returns."""
        if t is not None:
            self.raw_t = t & 0xFFFF
        if rh is not None:
            self.raw_rh = rh & 0xFFFF

    def _answer_words(self, *words: int) -> None:
        out = bytearray()
        for word in words:
            pair = word.to_bytes(2, "big")
            crc = sensirion_crc(pair) ^ (0x01 if self.corrupt_crc else 0x00)
            out += pair + bytes([crc])
        self._answer = bytes(out)

    def _measured(self) -> None:
        self.measurements += 1
        self._answer_words(self.raw_t, self.raw_rh)

    def on_read(self, length: int) -> bytes:
        if self._answer is None:
            raise _nak()
        answer, self._answer = self._answer, None
        return (answer + b"\xff" * length)[:length]


class FakeSHT3x(_SensirionChip):
    """SHT3x: 16-bit commands; a status register that records resets."""

    STATUS_AFTER_RESET = 0x8010  # alert pending, reset detected
    MEASURE_COMMANDS = frozenset({0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10})

    def __init__(self, address: int = 0x44) -> None:
        super().__init__(address)
        self.status = self.STATUS_AFTER_RESET

    def set_environment(self, *, temperature: float | None = None, humidity: float | None = None,
                        **_other: float) -> None:  # fmt: skip
        """Physical conditions for the next measurement (Cel, %RH)."""
        if temperature is not None:
            self.raw_t = _ticks((temperature + 45.0) * 65535.0 / 175.0)
        if humidity is not None:
            self.raw_rh = _ticks(humidity * 65535.0 / 100.0)

    def on_write(self, data: bytes) -> None:
        if len(data) < 2:
            self._answer = None  # an incomplete command is ignored
            return
        code = (data[0] << 8) | data[1]
        self.commands.append(code)
        self._answer = None
        if code in self.MEASURE_COMMANDS:
            self._measured()
        elif code == 0x30A2:
            self.resets += 1
            self.status = self.STATUS_AFTER_RESET
        elif code == 0xF32D:
            self._answer_words(self.status)
        elif code == 0x3041:
            self.status &= ~0x8C10 & 0xFFFF
        else:
            raise _nak()


class FakeSHT4x(_SensirionChip):
    """SHT4x: 8-bit commands; a serial number instead of a status register."""

    MEASURE_COMMANDS = frozenset({0xFD, 0xF6, 0xE0})

    def __init__(self, address: int = 0x44, *, serial_number: int = 0x0B1C_2D3E) -> None:
        super().__init__(address)
        self.serial_number = serial_number

    def set_environment(self, *, temperature: float | None = None, humidity: float | None = None,
                        **_other: float) -> None:  # fmt: skip
        """Physical conditions for the next measurement (Cel, %RH)."""
        if temperature is not None:
            self.raw_t = _ticks((temperature + 45.0) * 65535.0 / 175.0)
        if humidity is not None:
            self.raw_rh = _ticks((humidity + 6.0) * 65535.0 / 125.0)

    def on_write(self, data: bytes) -> None:
        if not data:
            return
        code = data[0]
        self.commands.append(code)
        self._answer = None
        if len(data) > 1:
            raise _nak()  # an SHT4x command is one byte
        if code in self.MEASURE_COMMANDS:
            self._measured()
        elif code == 0x89:
            self._answer_words(self.serial_number >> 16, self.serial_number & 0xFFFF)
        elif code == 0x94:
            self.resets += 1
        else:
            raise _nak()
