"""Bosch BME280 temperature, humidity and pressure sensor (registry name ``bme280``).

Contract: at construction the chip id (register 0xD0) must read 0x60, then
the chip is soft-reset and its factory calibration read once. Every
:meth:`BME280.read` runs one forced-mode conversion (oversampling x1 for all
three channels, filter off), waits for the status register's measuring bit
to clear, burst-reads the data registers and applies the datasheet's
floating-point compensation (values rounded to 0.01). Temperature and pressure outside the chip's
operating range, or data registers still at their reset values, raise DriverError; humidity is
clamped to 0..100 %RH. Options: ``bus`` (default 1), ``address`` 0x76
(default) or 0x77.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lwm2md.drivers.base import Quantity
from lwm2md.drivers.fake.bme280 import FakeBME280
from lwm2md.drivers.i2c._common import I2COptions, I2CSensor, register_i2c_sensor
from lwm2md.drivers.i2c.bus import SMBusLike

LOG = logging.getLogger(__name__)

ADDRESSES = (0x76, 0x77)
CHIP_ID = 0x60
BMP280_CHIP_ID = 0x58

REG_CALIB_TP = 0x88  # 0x88..0xA1: dig_T1..dig_P9, a reserved byte, dig_H1
CALIB_TP_LENGTH = 26
REG_CALIB_H = 0xE1  # 0xE1..0xE7: dig_H2..dig_H6
CALIB_H_LENGTH = 7
REG_CHIP_ID = 0xD0
REG_RESET = 0xE0
RESET_WORD = 0xB6
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_DATA = 0xF7  # 0xF7..0xFE: press[3], temp[3], hum[2]
DATA_LENGTH = 8

STATUS_MEASURING = 0x08
STATUS_IM_UPDATE = 0x01
OVERSAMPLING_X1 = 0b001
MODE_FORCED = 0b01
CTRL_HUM = OVERSAMPLING_X1
CTRL_MEAS = (OVERSAMPLING_X1 << 5) | (OVERSAMPLING_X1 << 2) | MODE_FORCED

SKIPPED_20BIT = 0x80000
SKIPPED_16BIT = 0x8000

STARTUP_DELAY = 0.002
"""Seconds after a soft reset before the chip answers (datasheet start-up time)."""
MEASURE_TIME = 0.0093
"""Maximum conversion time in seconds with x1 oversampling on all three channels."""
DECIMALS = 2
"""Values are rounded to 0.01 of their unit, finer than the chip resolves."""
POLL_INTERVAL = 0.001
POLL_LIMIT = 50

QUANTITIES = (
    Quantity("temperature", "Cel", -40.0, 85.0),
    Quantity("humidity", "%RH", 0.0, 100.0),
    Quantity("pressure", "Pa", 30000.0, 110000.0),
)
OBJECTS = (3303, 3304, 3315)


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _s16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little", signed=True)


def _s8(value: int) -> int:
    return value - 256 if value & 0x80 else value


@dataclass(frozen=True)
class Calibration:
    """The factory trimming words dig_T1..dig_H6."""

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: int
    h2: int
    h3: int
    h4: int
    h5: int
    h6: int

    @classmethod
    def parse(cls, tp: bytes, h: bytes) -> Calibration:
        """Decode the 26 bytes from 0x88 and the 7 bytes from 0xE1 (H4/H5 share 0xE5)."""
        if len(tp) != CALIB_TP_LENGTH or len(h) != CALIB_H_LENGTH:
            raise ValueError("calibration blocks have the wrong length")
        return cls(
            t1=_u16(tp, 0),
            t2=_s16(tp, 2),
            t3=_s16(tp, 4),
            p1=_u16(tp, 6),
            p2=_s16(tp, 8),
            p3=_s16(tp, 10),
            p4=_s16(tp, 12),
            p5=_s16(tp, 14),
            p6=_s16(tp, 16),
            p7=_s16(tp, 18),
            p8=_s16(tp, 20),
            p9=_s16(tp, 22),
            h1=tp[25],
            h2=_s16(h, 0),
            h3=h[2],
            h4=(_s8(h[3]) << 4) | (h[4] & 0x0F),
            h5=(_s8(h[5]) << 4) | (h[4] >> 4),
            h6=_s8(h[6]),
        )

    def plausible(self) -> bool:
        """False for blank or erased trimming data (T1/P1 zero would divide by zero)."""
        return self.t1 != 0 and self.p1 != 0


def fine_temperature(cal: Calibration, adc_t: int) -> float:
    """The datasheet's ``t_fine`` (floating point) from the 20-bit temperature reading."""
    linear = (adc_t / 16384.0 - cal.t1 / 1024.0) * cal.t2
    offset = adc_t / 131072.0 - cal.t1 / 8192.0
    return linear + offset * offset * cal.t3


def compensate_temperature(t_fine: float) -> float:
    """Degrees Celsius."""
    return t_fine / 5120.0


def compensate_pressure(cal: Calibration, adc_p: int, t_fine: float) -> float:
    """Pascal from the 20-bit pressure reading; 0.0 when the calibration makes it undefined."""
    a = t_fine / 2.0 - 64000.0
    b = a * a * cal.p6 / 32768.0
    b = b + a * cal.p5 * 2.0
    b = b / 4.0 + cal.p4 * 65536.0
    a = (cal.p3 * a * a / 524288.0 + cal.p2 * a) / 524288.0
    a = (1.0 + a / 32768.0) * cal.p1
    if a == 0.0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - b / 4096.0) * 6250.0 / a
    a = cal.p9 * p * p / 2147483648.0
    b = p * cal.p8 / 32768.0
    return p + (a + b + cal.p7) / 16.0


def compensate_humidity(cal: Calibration, adc_h: int, t_fine: float) -> float:
    """%RH from the 16-bit humidity reading, clamped to 0..100."""
    x = t_fine - 76800.0
    h = (adc_h - (cal.h4 * 64.0 + cal.h5 / 16384.0 * x)) * (
        cal.h2 / 65536.0 * (1.0 + cal.h6 / 67108864.0 * x * (1.0 + cal.h3 / 67108864.0 * x))
    )
    h = h * (1.0 - cal.h1 * h / 524288.0)
    return min(max(h, 0.0), 100.0)


def measure_time(osrs_t: int = 1, osrs_p: int = 1, osrs_h: int = 1) -> float:
    """Maximum forced-mode conversion time in seconds for the given oversampling ratios."""
    ms = 1.25 + 2.3 * osrs_t
    if osrs_p:
        ms += 2.3 * osrs_p + 0.575
    if osrs_h:
        ms += 2.3 * osrs_h + 0.575
    return ms / 1000


class BME280(I2CSensor):
    """A BME280 on an open bus; see the module docstring for the contract."""

    driver = "bme280"

    def __init__(
        self,
        bus: SMBusLike,
        address: int = ADDRESSES[0],
        *,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        chip_id = self.read_register(REG_CHIP_ID, 1, "reading chip id")[0]
        if chip_id != CHIP_ID:
            hint = " (a BMP280: no humidity)" if chip_id == BMP280_CHIP_ID else ""
            raise self.error(f"chip id 0x{chip_id:02x}{hint} is not a BME280 (0x{CHIP_ID:02x})")
        self.reset()
        tp = self.read_register(REG_CALIB_TP, CALIB_TP_LENGTH, "reading calibration")
        h = self.read_register(REG_CALIB_H, CALIB_H_LENGTH, "reading calibration")
        self.calibration = Calibration.parse(tp, h)
        if not self.calibration.plausible():
            raise self.error("calibration data is blank")
        LOG.debug("%s: calibration %s", self.name, self.calibration)

    def quantities(self) -> dict[str, Quantity]:
        return {q.kind: q for q in QUANTITIES}

    def reset(self) -> None:
        """Soft reset, then wait until the calibration copy to the image registers is done."""
        self.write_register(REG_RESET, [RESET_WORD], "soft reset")
        self.sleep(STARTUP_DELAY)
        self._wait_status(STATUS_IM_UPDATE, "calibration copy after reset")

    def _wait_status(self, bit: int, what: str) -> None:
        for _ in range(POLL_LIMIT):
            if not self.read_register(REG_STATUS, 1, "reading status")[0] & bit:
                return
            self.sleep(POLL_INTERVAL)
        raise self.error(f"{what} did not finish")

    def _measure(self) -> dict[str, float]:
        # ctrl_hum only takes effect with the following ctrl_meas write.
        self.write_register(REG_CTRL_HUM, [CTRL_HUM], "writing ctrl_hum")
        self.write_register(REG_CTRL_MEAS, [CTRL_MEAS], "starting a forced measurement")
        self.sleep(measure_time())
        self._wait_status(STATUS_MEASURING, "measurement")
        raw = self.read_register(REG_DATA, DATA_LENGTH, "reading measurement data")
        return self.convert(raw)

    def convert(self, raw: Sequence[int]) -> dict[str, float]:
        """Compensated values from the 8 data register bytes (0xF7..0xFE)."""
        adc_p = (raw[0] << 12) | (raw[1] << 4) | (raw[2] >> 4)
        adc_t = (raw[3] << 12) | (raw[4] << 4) | (raw[5] >> 4)
        adc_h = (raw[6] << 8) | raw[7]
        # One channel alone may legitimately read its "skipped" value (adc_T 0x80000 is
        # about 26.5 Cel); all three at once means no conversion completed since reset.
        if (adc_p, adc_t, adc_h) == (SKIPPED_20BIT, SKIPPED_20BIT, SKIPPED_16BIT):
            raise self.error("no measurement data (data registers hold their reset values)")
        cal = self.calibration
        t_fine = fine_temperature(cal, adc_t)
        temperature = round(compensate_temperature(t_fine), DECIMALS)
        pressure = round(compensate_pressure(cal, adc_p, t_fine), DECIMALS)
        humidity = round(compensate_humidity(cal, adc_h, t_fine), DECIMALS)
        low_t, high_t = QUANTITIES[0].min_range, QUANTITIES[0].max_range
        low_p, high_p = QUANTITIES[2].min_range, QUANTITIES[2].max_range
        assert low_t is not None and high_t is not None and low_p is not None and high_p is not None
        if not low_t <= temperature <= high_t:
            raise self.error(f"implausible temperature {temperature:.2f} Cel (raw 0x{adc_t:05x})")
        if not low_p <= pressure <= high_p:
            raise self.error(f"implausible pressure {pressure:.2f} Pa (raw 0x{adc_p:05x})")
        return {"temperature": temperature, "humidity": humidity, "pressure": pressure}


def is_bme280(bus: SMBusLike, address: int) -> bool:
    """Chip-id check only (reads register 0xD0)."""
    return bus.read_byte_data(address, REG_CHIP_ID) == CHIP_ID


def _make(bus: SMBusLike, options: I2COptions) -> BME280:
    return BME280(bus, options.address, name=options.label)


register_i2c_sensor(
    _make,
    driver="bme280",
    addresses=ADDRESSES,
    quantities=QUANTITIES,
    objects=OBJECTS,
    check=is_bme280,
    chip=FakeBME280,
)
