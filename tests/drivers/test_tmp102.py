"""TMP102 driver against the pointer/register model."""

from __future__ import annotations

import logging

import pytest

from lwm2md.drivers.base import DriverError
from lwm2md.drivers.fake.smbus import FakeChip, FakeSMBus, RegisterChip
from lwm2md.drivers.fake.tmp102 import FakeTMP102
from lwm2md.drivers.i2c.tmp102 import TMP102, decode_temperature
from lwm2md.drivers.registry import create_sensor, driver_info


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(chip: FakeTMP102 | None = None, *, extended: bool = False) -> tuple[TMP102, FakeTMP102]:
    chip = chip or FakeTMP102(0x48)
    bus = FakeSMBus(1)
    bus.attach(chip)
    return TMP102(bus, chip.address, extended=extended, sleep=Sleeps()), chip


@pytest.mark.parametrize("raw, celsius", [
    (0x7FF0, 127.9375),
    (0x6400, 100.0),
    (0x1900, 25.0),
    (0x0040, 0.25),
    (0x0000, 0.0),
    (0xFFF0, -0.0625),
    (0xE700, -25.0),
    (0xC900, -55.0),
])  # fmt: skip
def test_decode_12_bit(raw: int, celsius: float) -> None:
    assert decode_temperature(raw) == (celsius, False)


@pytest.mark.parametrize("raw, celsius", [
    (0x4B01, 150.0),  # 2400 counts << 3, EM flag
    (0x3E81, 125.0),
    (0x0009, 0.0625),
    (0xFFF9, -0.0625),
    (0xE481, -55.0),
])  # fmt: skip
def test_decode_13_bit(raw: int, celsius: float) -> None:
    assert decode_temperature(raw) == (celsius, True)


@pytest.mark.parametrize("raw", [0x1902, 0x1908, 0x1903, 0x1905, 0xFFFF])
def test_decode_rejects_bits_that_read_zero(raw: int) -> None:
    assert decode_temperature(raw) is None


def test_start_checks_configuration_then_writes_the_default() -> None:
    driver, chip = make()
    assert chip.transactions[:3] == [("w", b"\x01"), ("r", b"\x60\xa0"), ("w", b"\x01\x60\xa0")]
    assert not chip.extended
    assert driver.sleep == [0.035], "waits one conversion so the first read is valid"  # type: ignore[comparison-overlap]


def test_start_in_extended_mode_sets_em() -> None:
    driver, chip = make(extended=True)
    assert chip.transactions[2] == ("w", b"\x01\x60\xb0")
    assert chip.extended
    assert driver.quantities()["temperature"].max_range == 150.0


def test_a_chip_without_a_tmp102_configuration_is_refused() -> None:
    bus = FakeSMBus(1)
    other = RegisterChip(0x48)  # all registers read 0: R1/R0 clear
    bus.attach(other)
    with pytest.raises(DriverError, match="not a TMP102"):
        TMP102(bus, 0x48, sleep=Sleeps())
    assert [data for kind, data in other.transactions if kind == "w"] == [b"\x01"], "nothing written"


@pytest.mark.parametrize("celsius", [-55.0, -40.0, -25.0, -0.0625, 0.0, 0.0625, 23.5, 85.0, 125.0])
def test_reads_positive_and_negative_temperatures(celsius: float) -> None:
    driver, chip = make()
    chip.set_environment(temperature=celsius)
    assert driver.read() == {"temperature": celsius}


def test_extended_mode_reaches_150() -> None:
    normal, chip = make()
    chip.set_environment(temperature=140.5)
    assert normal.read()["temperature"] == 127.9375, "12-bit mode saturates"
    extended, chip = make(extended=True)
    chip.set_environment(temperature=140.5)
    assert extended.read()["temperature"] == 140.5
    chip.set_environment(temperature=-40.125)
    assert extended.read()["temperature"] == -40.125


def test_lost_configuration_is_restored(caplog: pytest.LogCaptureFixture) -> None:
    driver, chip = make(extended=True)
    chip.set_environment(temperature=30.0)
    chip.power_cycle()
    assert not chip.extended
    with caplog.at_level(logging.WARNING):
        assert driver.read()["temperature"] == 30.0, "decoded by the register's own EM flag"
    assert chip.extended, "configuration written again"
    assert "configuration lost" in caplog.text


@pytest.mark.parametrize("raw", [0xFFFF, 0x7FF9, 0x1902])
def test_implausible_register_is_an_error(raw: int) -> None:
    driver, chip = make()
    chip.set_raw(raw)
    with pytest.raises(DriverError, match="implausible"):
        driver.read()


def test_nak_is_an_error() -> None:
    driver, chip = make()
    chip.nak = True
    with pytest.raises(DriverError, match="no acknowledge"):
        driver.read()


# -- registry ------------------------------------------------------------------------------


def test_registration() -> None:
    info = driver_info("tmp102")
    assert info.i2c_addresses == (0x48, 0x49, 0x4A, 0x4B)
    assert info.objects == (3303,)


@pytest.mark.parametrize("options, named", [
    ({"address": 0x47}, "address"),
    ({"address": 0x4C}, "address"),
    ({"extended": "yes"}, "extended"),
    ({"extended": 1}, "extended"),
])  # fmt: skip
def test_option_validation(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        create_sensor("tmp102", options, simulate=False)


def test_probe_reads_only() -> None:
    probe = driver_info("tmp102").probe
    assert probe is not None
    bus = FakeSMBus(1)
    chip = FakeTMP102(0x49)
    bus.attach(chip)
    bus.attach(RegisterChip(0x4A))
    almost = RegisterChip(0x48)  # R1/R0 set, but a low bit that always reads 0 on a TMP102
    almost.registers[1:3] = b"\x60\xa4"
    bus.attach(almost)
    silent: FakeChip = FakeTMP102(0x4B)
    silent.nak = True
    bus.attach(silent)
    assert probe(bus, 0x49) is True
    assert probe(bus, 0x4A) is False
    assert probe(bus, 0x4B) is False
    assert probe(bus, 0x48) is False
    assert all(kind == "r" or len(data) == 1 for kind, data in chip.transactions), "pointer writes only"


def test_simulated_twin() -> None:
    sensor = create_sensor("tmp102", {"address": 0x4B, "extended": True}, simulate=True)
    assert isinstance(sensor, TMP102) and sensor.extended
    value = sensor.read()["temperature"]
    assert -55 <= value <= 150 and (value / 0.0625).is_integer()
