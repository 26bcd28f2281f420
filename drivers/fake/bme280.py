"""A BME280 register-map model for the fake bus, written from the datasheet.

What it models: the chip id (0xD0), soft reset (0xB6 written to 0xE0) and
the calibration image copy it triggers (status bit 0), the calibration
registers holding :data:`DEFAULT_CALIBRATION` (or the words given), writes
as register/value pairs, read-only registers ignoring writes, ctrl_hum only
taking effect with the next ctrl_meas write, forced mode (a conversion that
ends after ``conversion_polls`` status reads, then the mode falls back to
sleep), skipped channels (oversampling 0 leaves 0x80000/0x8000 in the data
registers) and data registers that keep their old contents until a
conversion completes.

Physical values are turned into ADC readings by bisection over this
module's own fixed-point version of the datasheet compensation, kept
independent of the driver's floating-point one so each checks the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from lwm2md.drivers.fake.smbus import RegisterChip

LOG = logging.getLogger(__name__)

DEFAULT_CALIBRATION: dict[str, int] = {
    # Temperature and pressure words: the datasheet's worked example.
    "T1": 27504, "T2": 26435, "T3": -1000,
    "P1": 36477, "P2": -10685, "P3": 3024, "P4": 2855, "P5": 140, "P6": -7,
    "P7": 15500, "P8": -14600, "P9": 6000,
    # Humidity words: values typical of production parts (no datasheet example exists).
    "H1": 75, "H2": 362, "H3": 0, "H4": 313, "H5": 50, "H6": 30,
}  # fmt: skip

ID = 0xD0
RESET = 0xE0
CTRL_HUM = 0xF2
STATUS = 0xF3
CTRL_MEAS = 0xF4
CONFIG = 0xF5
DATA = 0xF7
DATA_RESET = bytes([0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00])
WRITABLE = frozenset({RESET, CTRL_HUM, CTRL_MEAS, CONFIG})
MEASURING = 0x08
IM_UPDATE = 0x01
SKIP_20 = 0x80000
SKIP_16 = 0x8000


def _word(value: int) -> bytes:
    return (value & 0xFFFF).to_bytes(2, "little")


def calibration_image(cal: Mapping[str, int]) -> tuple[bytes, bytes]:
    """The register contents 0x88..0xA1 and 0xE1..0xE7 holding ``cal``."""
    words = ("T1", "T2", "T3", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9")
    low = b"".join(_word(cal[k]) for k in words)
    low += bytes([0x00, cal["H1"] & 0xFF])  # 0xA0 is reserved
    h4, h5 = cal["H4"] & 0xFFF, cal["H5"] & 0xFFF
    high = _word(cal["H2"]) + bytes(
        [cal["H3"] & 0xFF, h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4), h5 >> 4, cal["H6"] & 0xFF]
    )
    return low, high


def _cdiv(num: int, den: int) -> int:
    """Integer division truncating toward zero, as C does."""
    quotient = abs(num) // abs(den)
    return quotient if (num < 0) == (den < 0) else -quotient


def t_fine_of(cal: Mapping[str, int], adc_t: int) -> int:
    """The datasheet's 32-bit fixed-point fine temperature."""
    first = (((adc_t >> 3) - (cal["T1"] << 1)) * cal["T2"]) >> 11
    delta = (adc_t >> 4) - cal["T1"]
    return first + ((((delta * delta) >> 12) * cal["T3"]) >> 14)


def centi_celsius(t_fine: int) -> int:
    """Temperature in 0.01 Cel."""
    return (t_fine * 5 + 128) >> 8


def pressure_q24_8(cal: Mapping[str, int], adc_p: int, t_fine: int) -> int:
    """Pressure in 1/256 Pa (64-bit fixed-point formula); 0 when undefined."""
    v1 = t_fine - 128000
    v2 = v1 * v1 * cal["P6"] + ((v1 * cal["P5"]) << 17) + (cal["P4"] << 35)
    v1 = ((v1 * v1 * cal["P3"]) >> 8) + ((v1 * cal["P2"]) << 12)
    v1 = (((1 << 47) + v1) * cal["P1"]) >> 33
    if v1 == 0:
        return 0
    p = _cdiv((((1048576 - adc_p) << 31) - v2) * 3125, v1)
    v1 = (cal["P9"] * (p >> 13) * (p >> 13)) >> 25
    v2 = (cal["P8"] * p) >> 19
    return ((p + v1 + v2) >> 8) + (cal["P7"] << 4)


def humidity_q22_10(cal: Mapping[str, int], adc_h: int, t_fine: int) -> int:
    """Relative humidity in 1/1024 %RH (32-bit fixed-point formula), clamped to 0..100 %RH."""
    v = t_fine - 76800
    head = ((adc_h << 14) - (cal["H4"] << 20) - cal["H5"] * v + 16384) >> 15
    tail = ((((v * cal["H6"]) >> 10) * (((v * cal["H3"]) >> 11) + 32768)) >> 10) + 2097152
    v = head * ((tail * cal["H2"] + 8192) >> 14)
    v -= ((((v >> 15) * (v >> 15)) >> 7) * cal["H1"]) >> 4
    return min(max(v, 0), 100 << 22) >> 12


def _invert(func: Callable[[int], int], target: float, top: int) -> int:
    """The integer in 0..top whose ``func`` value is nearest ``target`` (``func`` monotonic)."""
    low, high = 0, top
    rising = func(high) >= func(low)
    while high - low > 1:
        mid = (low + high) // 2
        if (func(mid) < target) == rising:
            low = mid
        else:
            high = mid
    return min((low, high), key=lambda raw: abs(func(raw) - target))


class FakeBME280(RegisterChip):
    """The BME280 model; set what it measures with :meth:`set_raw` or :meth:`set_environment`."""

    def __init__(
        self,
        address: int = 0x76,
        *,
        calibration: Mapping[str, int] | None = None,
        chip_id: int = 0x60,
        conversion_polls: int = 1,
    ) -> None:
        super().__init__(address)
        self.calibration = dict(calibration or DEFAULT_CALIBRATION)
        self.chip_id = chip_id
        self.conversion_polls = conversion_polls
        """Status reads that still show ``measuring`` after a forced conversion starts."""
        self.stuck = False
        """When True a started conversion never finishes."""
        self.resets = 0
        self.measurements = 0
        self.adc_t, self.adc_p, self.adc_h = 519888, 415148, 0x6000
        self._environment: dict[str, float] = {}
        self._busy = 0
        self._copying = 0
        self._pending: bytes | None = None
        self._power_on()

    # -- test controls ------------------------------------------------------------

    def set_raw(
        self, *, adc_t: int | None = None, adc_p: int | None = None, adc_h: int | None = None
    ) -> None:
        """ADC readings the next conversion produces (20, 20 and 16 bits)."""
        if adc_t is not None:
            self.adc_t = adc_t & 0xFFFFF
        if adc_p is not None:
            self.adc_p = adc_p & 0xFFFFF
        if adc_h is not None:
            self.adc_h = adc_h & 0xFFFF
        self._environment.clear()

    def set_environment(
        self,
        *,
        temperature: float | None = None,
        humidity: float | None = None,
        pressure: float | None = None,
        **_other: float,
    ) -> None:
        """Physical conditions for the next conversion; unnamed ones keep their last value."""
        for kind, value in (("temperature", temperature), ("humidity", humidity), ("pressure", pressure)):
            if value is not None:
                self._environment[kind] = float(value)
        cal, env = self.calibration, self._environment
        if "temperature" in env:
            target = env["temperature"] * 100
            self.adc_t = _invert(lambda raw: centi_celsius(t_fine_of(cal, raw)), target, 0xFFFFF)
        t_fine = t_fine_of(cal, self.adc_t)
        if "pressure" in env:
            target = env["pressure"] * 256
            self.adc_p = _invert(lambda raw: pressure_q24_8(cal, raw, t_fine), target, 0xFFFFF)
        if "humidity" in env:
            target = env["humidity"] * 1024
            self.adc_h = _invert(lambda raw: humidity_q22_10(cal, raw, t_fine), target, 0xFFFF)

    def environment(self) -> dict[str, float]:
        """What the current raw readings mean (fixed-point formulas, in Cel, %RH and Pa)."""
        t_fine = t_fine_of(self.calibration, self.adc_t)
        return {
            "temperature": centi_celsius(t_fine) / 100,
            "pressure": pressure_q24_8(self.calibration, self.adc_p, t_fine) / 256,
            "humidity": humidity_q22_10(self.calibration, self.adc_h, t_fine) / 1024,
        }

    # -- the register map ---------------------------------------------------------------

    def _power_on(self) -> None:
        self.registers[:] = bytes(len(self.registers))
        self.registers[ID] = self.chip_id
        low, high = calibration_image(self.calibration)
        self.registers[0x88 : 0x88 + len(low)] = low
        self.registers[0xE1 : 0xE1 + len(high)] = high
        self.registers[DATA : DATA + 8] = DATA_RESET
        self._busy = 0
        self._pending = None

    def on_write(self, data: bytes) -> None:
        """Register/value pairs; a lone byte only sets the read pointer."""
        if not data:
            return
        self.pointer = data[0]
        for index in range(0, len(data) - 1, 2):
            register, value = data[index], data[index + 1]
            if register in WRITABLE:
                self.registers[register] = value
                self.on_register_write(register, value)

    def on_register_write(self, register: int, value: int) -> None:
        if register == RESET:
            self.registers[RESET] = 0
            if value == 0xB6:
                self.resets += 1
                self._power_on()
                self._copying = 1
        elif register == CTRL_MEAS and value & 0x03 in (0x01, 0x02):
            self._start_conversion(value)

    def _start_conversion(self, ctrl_meas: int) -> None:
        osrs_t, osrs_p = ctrl_meas >> 5, (ctrl_meas >> 2) & 0x07
        osrs_h = self.registers[CTRL_HUM] & 0x07  # latched now, as on the chip
        adc_t = self.adc_t if osrs_t else SKIP_20
        adc_p = self.adc_p if osrs_p else SKIP_20
        adc_h = self.adc_h if osrs_h else SKIP_16
        self._pending = bytes(
            [adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
             adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
             adc_h >> 8, adc_h & 0xFF]
        )  # fmt: skip
        self.measurements += 1
        self._busy = self.conversion_polls
        self._finish_if_done()

    def _finish_if_done(self) -> None:
        if self._pending is None or self._busy > 0 or self.stuck:
            return
        self.registers[DATA : DATA + 8] = self._pending
        self._pending = None
        self.registers[CTRL_MEAS] &= 0xFC  # back to sleep mode

    def on_register_read(self, register: int, length: int) -> None:
        if not register <= STATUS < register + length:
            return
        status = 0
        if self._pending is not None:
            if self._busy > 0 or self.stuck:
                status |= MEASURING
                self._busy -= 1
            else:
                self._finish_if_done()
        if self._copying > 0:
            status |= IM_UPDATE
            self._copying -= 1
        self.registers[STATUS] = status
