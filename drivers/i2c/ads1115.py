"""TI ADS1115 16-bit ADC, single-ended inputs (driver ``ads1115``; IPSO 3202 Analog Input, 3316 Voltage).

Registers are 16-bit, big-endian on the wire, behind a pointer byte:
Conversion (0) and Config (1). For each configured channel :meth:`read`
writes Config = OS (start) | MUX AINx vs GND (0b100 + x) | PGA | single-shot
| data rate | comparator disabled, waits one conversion time (1/DR plus the
oscillator's 10 %), polls Config until OS reads 1 (DriverError after
``POLL_LIMIT`` polls, or when Config does not read back what was written),
then reads the signed conversion result:

    volts = code * full_scale / 32768

A result pinned at the top code (input at or above full scale) or below
-0.3 V (the inputs' absolute minimum) raises DriverError.

Options: ``channels`` (AIN numbers 0..3, default ``[0]``, no repeats);
``full_scale`` in V, one of 6.144, 4.096 (default), 2.048, 1.024, 0.512,
0.256, or a list with one per channel; ``gain`` (2/3, 1, 2, 4, 8, 16, i.e.
full_scale 4.096 V / gain) instead of ``full_scale``; ``data_rate`` in
samples/s, one of 8, 16, 32, 64, 128 (default), 250, 475, 860.

Quantities and objects: the i-th entry of ``channels`` is reported, in volts,
under the kinds ``analog<i>`` and ``voltage<i>`` (position in the list, not
the AIN number), and with a single channel also under ``analog`` and
``voltage``. The intended mapping is that entry i of the table's
``objects`` is fed by entry i of ``channels``: ``objects = [3202, 3202]``
with ``channels = [0, 3]`` gives /3202/0 = AIN0 and /3202/1 = AIN3, and
``objects = [3202, 3316]`` gives an Analog Input for the first channel and
a Voltage for the second. With a single channel the plain kinds let
``objects = [3202]`` (or ``[3316]``, or both) work as is.

Use one ``[[sensor]]`` table per chip: two tables on the same chip would
start conversions over each other.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from lwm2md.drivers.base import Quantity, Sensor
from lwm2md.drivers.fake.ads1115 import FakeADS1115
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

DRIVER = "ads1115"
ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)
OBJECTS = (3202,)
OPTIONS: dict[str, type] = {"channels": list, "full_scale": object, "gain": object, "data_rate": int}
"""Extra options and their types; full_scale and gain are a number or a list, checked by the driver."""

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
REG_LO_THRESH = 0x02
REG_HI_THRESH = 0x03
LO_THRESH_DEFAULT = 0x8000
HI_THRESH_DEFAULT = 0x7FFF

CONFIG_OS = 0x8000
MUX_SINGLE_ENDED = 0b100
MODE_SINGLE_SHOT = 0x0100
COMP_DISABLED = 0b11  # COMP_QUE: comparator off, ALERT/RDY high impedance

FULL_SCALES = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)
"""Full-scale range (V) by PGA setting 0b000..0b101."""
GAINS = (2 / 3, 1.0, 2.0, 4.0, 8.0, 16.0)
"""The same settings as gains relative to ±4.096 V."""
DATA_RATES = (8, 16, 32, 64, 128, 250, 475, 860)
"""Samples per second by DR setting 0b000..0b111."""

DEFAULT_FULL_SCALE = 4.096
DEFAULT_DATA_RATE = 128
CLOCK_TOLERANCE = 1.1  # the internal oscillator may run 10 % slow
POLL_LIMIT = 10
MIN_INPUT = -0.3  # V: absolute minimum input (GND - 0.3 V)
CODE_MAX = 0x7FFF


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pga(value: object, key: str) -> int:
    """PGA setting for a ``full_scale`` (V) or ``gain`` option value; ValueError naming ``key``."""
    table = FULL_SCALES if key == "full_scale" else GAINS
    if _number(value):
        assert isinstance(value, int | float)
        for setting, allowed in enumerate(table):
            if math.isclose(value, allowed, rel_tol=1e-3):
                return setting
    shown = ", ".join("2/3" if g == 2 / 3 else f"{g:g}" for g in table)
    raise ValueError(f"{DRIVER}: option {key} must be one of {shown} (or a list, one per channel), "
                     f"not {value!r}")  # fmt: skip


def _options(extra: Mapping[str, Any]) -> dict[str, Any]:
    """``channels``, per-channel PGA settings and DR setting, validated (ValueError naming the option)."""
    channels = extra.get("channels", [0])
    if (
        not isinstance(channels, list | tuple)
        or not channels
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 3 for c in channels)
        or len(set(channels)) != len(channels)
    ):
        raise ValueError(
            f"{DRIVER}: option channels must be a non-empty list of distinct AIN numbers 0..3, "
            f"not {channels!r}"
        )
    if "full_scale" in extra and "gain" in extra:
        raise ValueError(f"{DRIVER}: options full_scale and gain are alternatives; give one")
    key = "gain" if "gain" in extra else "full_scale"
    setting = extra.get(key, DEFAULT_FULL_SCALE)
    if isinstance(setting, list | tuple):
        if len(setting) != len(channels):
            raise ValueError(
                f"{DRIVER}: option {key} lists {len(setting)} values for {len(channels)} channels"
            )
        pgas = [_pga(value, key) for value in setting]
    else:
        pgas = [_pga(setting, key)] * len(channels)
    rate = extra.get("data_rate", DEFAULT_DATA_RATE)
    if isinstance(rate, bool) or rate not in DATA_RATES:
        rates = ", ".join(map(str, DATA_RATES))
        raise ValueError(f"{DRIVER}: option data_rate must be one of {rates} samples/s, not {rate!r}")
    return {"channels": list(channels), "pgas": pgas, "data_rate": int(rate)}


def volts_from_code(code: int, full_scale: float) -> float:
    """Input voltage for a signed conversion ``code`` at ``full_scale`` volts (correctly rounded)."""
    return float(code * Fraction(repr(full_scale)) / 32768)


def channel_quantities(channels: Sequence[int], full_scales: Sequence[float]) -> dict[str, Quantity]:
    """``analog<i>``/``voltage<i>`` per channel position, plus ``analog``/``voltage`` for a single channel."""
    out: dict[str, Quantity] = {}
    for index, full_scale in enumerate(full_scales[: len(channels)]):
        for base in ("analog", "voltage"):
            out[f"{base}{index}"] = Quantity(f"{base}{index}", "V", 0.0, full_scale)
    if len(channels) == 1:
        for base in ("analog", "voltage"):
            out[base] = Quantity(base, "V", 0.0, full_scales[0])
    return out


def _s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class ADS1115(I2CSensor):
    """The ADS1115 at ``address`` on ``bus`` converting ``channels`` single-ended, one shot each.

    ``full_scale`` is one value for all channels or one per channel;
    ``data_rate`` in samples/s. Construction reads Config (DriverError when
    the chip does not answer); ValueError for bad options.
    """

    driver = DRIVER

    def __init__(
        self,
        bus: SMBusLike,
        address: int = ADDRESSES[0],
        *,
        channels: Sequence[int] = (0,),
        full_scale: float | Sequence[float] = DEFAULT_FULL_SCALE,
        data_rate: int = DEFAULT_DATA_RATE,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        owns_bus: bool = True,
    ) -> None:
        checked = _options({
            "channels": list(channels) if isinstance(channels, Sequence) else channels,
            "full_scale": list(full_scale) if isinstance(full_scale, Sequence) else full_scale,
            "data_rate": data_rate,
        })  # fmt: skip
        super().__init__(bus, address, name=name, sleep=sleep, owns_bus=owns_bus)
        self.channels: list[int] = checked["channels"]
        self.pgas: list[int] = checked["pgas"]
        self.data_rate: int = checked["data_rate"]
        self.full_scales = [FULL_SCALES[pga] for pga in self.pgas]
        self._quantities = channel_quantities(self.channels, self.full_scales)
        self._read_word(REG_CONFIG, "reading config")

    @classmethod
    def from_options(cls, bus: SMBusLike, options: I2COptions) -> ADS1115:
        """The driver for validated table options (``gain`` turned into full scales)."""
        settings = _options(options.extra)
        return cls(
            bus,
            options.address,
            channels=settings["channels"],
            full_scale=[FULL_SCALES[pga] for pga in settings["pgas"]],
            data_rate=settings["data_rate"],
        )

    def quantities(self) -> dict[str, Quantity]:
        return dict(self._quantities)

    def conversion_time(self) -> float:
        """Nominal seconds per conversion at the configured data rate."""
        return 1.0 / self.data_rate

    def _read_word(self, register: int, what: str) -> int:
        high, low = self.read_register(register, 2, what)
        return (high << 8) | low

    def config_for(self, index: int) -> int:
        """Config word starting a single-shot conversion of channel position ``index``."""
        return (
            CONFIG_OS
            | (MUX_SINGLE_ENDED | self.channels[index]) << 12
            | self.pgas[index] << 9
            | MODE_SINGLE_SHOT
            | DATA_RATES.index(self.data_rate) << 5
            | COMP_DISABLED
        )

    def convert(self, index: int) -> float:
        """One single-shot conversion of channel position ``index``, in volts."""
        channel, full_scale = self.channels[index], self.full_scales[index]
        config = self.config_for(index)
        self.write_register(REG_CONFIG, [config >> 8, config & 0xFF], f"starting AIN{channel}")
        self.sleep(self.conversion_time() * CLOCK_TOLERANCE)
        for attempt in range(POLL_LIMIT):
            status = self._read_word(REG_CONFIG, f"polling AIN{channel}")
            if (status ^ config) & ~CONFIG_OS & 0xFFFF:
                raise self.error(f"config reads {status:#06x} after writing {config:#06x} (chip reset?)")
            if status & CONFIG_OS:
                break
            if attempt + 1 < POLL_LIMIT:
                self.sleep(self.conversion_time() / 10)
        else:
            raise self.error(f"AIN{channel}: conversion not done after {POLL_LIMIT} polls")
        code = _s16(self._read_word(REG_CONVERSION, f"reading AIN{channel}"))
        volts = volts_from_code(code, full_scale)
        if code == CODE_MAX:
            raise self.error(f"AIN{channel} at or above the {full_scale} V full scale; raise full_scale")
        if volts < MIN_INPUT:
            raise self.error(f"AIN{channel} reads an implausible {volts:.3f} V (code {code})")
        return volts

    def _measure(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for index in range(len(self.channels)):
            volts = self.convert(index)
            values[f"analog{index}"] = values[f"voltage{index}"] = volts
        if len(self.channels) == 1:
            values["analog"] = values["voltage"] = values["analog0"]
        return values


def _factory(options: Mapping[str, Any]) -> Sensor:
    opts = parse_i2c_options(options, driver=DRIVER, addresses=ADDRESSES, allowed=OPTIONS)
    _options(opts.extra)  # option errors before touching the bus
    return open_sensor(ADS1115.from_options, opts)


def is_ads1115(bus: SMBusLike, address: int) -> bool:
    """True when the comparator threshold registers hold their reset values 0x8000 and 0x7FFF.

    The driver never writes them; a chip whose thresholds other software
    changed is not recognised.
    """
    lo_high, lo_low = bus.read_i2c_block_data(address, REG_LO_THRESH, 2)
    hi_high, hi_low = bus.read_i2c_block_data(address, REG_HI_THRESH, 2)
    return ((lo_high << 8) | lo_low, (hi_high << 8) | hi_low) == (LO_THRESH_DEFAULT, HI_THRESH_DEFAULT)


QUANTITIES = tuple(channel_quantities([0], [DEFAULT_FULL_SCALE]).values())
"""Quantities with the default options (channel AIN0)."""
SIMULATED_INPUTS = tuple(Quantity(f"ain{channel}", "V", 0.0, 3.3) for channel in range(4))
"""The simulated chip's input voltages: slow waves around 1.65 V, one phase per input."""

register_sensor(
    DRIVER,
    quantities=QUANTITIES,
    simulator=simulator(
        ADS1115.from_options,
        FakeADS1115,
        driver=DRIVER,
        addresses=ADDRESSES,
        quantities=SIMULATED_INPUTS,
        allowed=OPTIONS,
    ),
    i2c_addresses=ADDRESSES,
    probe=safe_probe(is_ads1115),
    objects=OBJECTS,
)(_factory)
