"""SHT3x and SHT4x drivers against their command-level models."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2md.drivers.base import DriverError
from lwm2md.drivers.fake.sht import FakeSHT3x, FakeSHT4x, sensirion_crc
from lwm2md.drivers.fake.smbus import FakeChip, FakeSMBus
from lwm2md.drivers.i2c.sht import SHT3x, SHT4x, crc8, split_words
from lwm2md.drivers.registry import create_sensor, driver_info


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def on_bus(chip: FakeChip) -> FakeSMBus:
    bus = FakeSMBus(1)
    bus.attach(chip)
    return bus


def sht3x(chip: FakeSHT3x | None = None, sleeps: Sleeps | None = None) -> tuple[SHT3x, FakeSHT3x]:
    chip = chip or FakeSHT3x(0x44)
    return SHT3x(on_bus(chip), chip.address, sleep=sleeps if sleeps is not None else Sleeps()), chip


def sht4x(chip: FakeSHT4x | None = None, sleeps: Sleeps | None = None) -> tuple[SHT4x, FakeSHT4x]:
    chip = chip or FakeSHT4x(0x44)
    return SHT4x(on_bus(chip), chip.address, sleep=sleeps if sleeps is not None else Sleeps()), chip


# -- CRC -----------------------------------------------------------------------------


def test_crc_matches_the_datasheet_example() -> None:
    assert crc8(b"\xbe\xef") == 0x92
    assert crc8(b"") == 0xFF


@given(st.binary(max_size=8))
def test_driver_and_model_crc_agree(data: bytes) -> None:
    assert crc8(data) == sensirion_crc(data)


def test_split_words_checks_every_crc() -> None:
    assert split_words(b"\xbe\xef\x92\x00\x00\x81") == [0xBEEF, 0x0000]
    assert split_words(b"\xbe\xef\x92\x00\x00\x80") is None
    assert split_words(b"\xbe\xef\x93\x00\x00\x81") is None


# -- SHT3x ------------------------------------------------------------------------------


def test_sht3x_start_reads_status_then_soft_resets() -> None:
    _, chip = sht3x()
    assert chip.commands == [0xF32D, 0x30A2]
    assert chip.resets == 1
    assert chip.transactions[0] == ("w", b"\xf3\x2d")
    assert chip.transactions[2] == ("w", b"\x30\xa2")


def test_sht3x_refuses_a_chip_with_reserved_status_bits() -> None:
    chip = FakeSHT3x(0x44)
    chip.status = 0xFFFF
    with pytest.raises(DriverError, match="not an SHT3x"):
        sht3x(chip)
    assert chip.resets == 0


def test_sht3x_refuses_an_sht4x() -> None:
    chip = FakeSHT4x(0x44)
    with pytest.raises(DriverError, match="no acknowledge"):
        SHT3x(on_bus(chip), 0x44, sleep=Sleeps())
    assert chip.resets == 0


def test_sht3x_status_with_bad_crc_is_refused() -> None:
    chip = FakeSHT3x(0x44)
    chip.corrupt_crc = True
    with pytest.raises(DriverError, match="CRC mismatch"):
        sht3x(chip)


def test_sht3x_single_shot_measurement() -> None:
    sleeps = Sleeps()
    driver, chip = sht3x(sleeps=sleeps)
    chip.transactions.clear()
    sleeps.clear()
    chip.set_raw(t=0x6666, rh=0x8000)
    # T = -45 + 175 * 26214 / 65535 = 24.9996 -> 25.00; RH = 100 * 32768 / 65535 = 50.0008 -> 50.00
    assert driver.read() == {"temperature": 25.0, "humidity": 50.0}
    assert chip.transactions[0] == ("w", b"\x24\x00"), "high repeatability, no clock stretching"
    assert chip.transactions[1][0] == "r" and len(chip.transactions[1][1]) == 6
    assert list(sleeps) == [0.016], "waits the maximum measurement time (15.5 ms)"


@pytest.mark.parametrize("t, rh, want", [
    (0, 0, (-45.0, 0.0)),
    (0xFFFF, 0xFFFF, (130.0, 100.0)),
    # -45 + 175 * 29970 / 65535 = 35.1152; 100 * 30012 / 65535 = 45.7954 (a /65536 slip gives 35.11, 45.79)
    (0x7532, 0x753C, (35.12, 45.8)),
])  # fmt: skip
def test_sht3x_transfer_function(t: int, rh: int, want: tuple[float, float]) -> None:
    driver, chip = sht3x()
    chip.set_raw(t=t, rh=rh)
    values = driver.read()
    assert (values["temperature"], values["humidity"]) == want


def test_sht3x_crc_error_then_recovery() -> None:
    driver, chip = sht3x()
    chip.corrupt_crc = True
    with pytest.raises(DriverError, match="CRC mismatch") as caught:
        driver.read()
    assert "reading measurement" in str(caught.value)
    chip.corrupt_crc = False
    assert driver.read()["humidity"] == 50.0


def test_sht3x_nak() -> None:
    driver, chip = sht3x()
    chip.nak = True
    with pytest.raises(DriverError, match="no acknowledge"):
        driver.read()


class StillMeasuring(FakeSHT3x):
    """Takes measurement commands but never has the result ready: reads are not acknowledged."""

    def _measured(self) -> None:
        self.measurements += 1


def test_sht3x_result_not_ready_is_a_nak_on_the_read() -> None:
    driver, chip = sht3x(StillMeasuring(0x44))
    with pytest.raises(DriverError, match="reading measurement: no acknowledge"):
        driver.read()
    assert chip.measurements == 1


def test_sht3x_environment_round_trip() -> None:
    driver, chip = sht3x()
    chip.set_environment(temperature=-12.34, humidity=87.65)
    values = driver.read()
    assert values["temperature"] == pytest.approx(-12.34, abs=0.01)
    assert values["humidity"] == pytest.approx(87.65, abs=0.01)


# -- SHT4x --------------------------------------------------------------------------------------


def test_sht4x_start_reads_serial_then_soft_resets() -> None:
    driver, chip = sht4x(FakeSHT4x(0x46, serial_number=0x12345678))
    assert driver.serial_number == 0x12345678
    assert chip.commands == [0x89, 0x94]
    assert chip.transactions[0] == ("w", b"\x89") and chip.transactions[2] == ("w", b"\x94")
    assert chip.resets == 1


def test_sht4x_refuses_an_sht3x() -> None:
    chip = FakeSHT3x(0x44)
    with pytest.raises(DriverError):
        SHT4x(on_bus(chip), 0x44, sleep=Sleeps())
    assert chip.resets == 0


def test_sht4x_serial_with_bad_crc_is_refused() -> None:
    chip = FakeSHT4x(0x44)
    chip.corrupt_crc = True
    with pytest.raises(DriverError, match="CRC mismatch"):
        sht4x(chip)


def test_sht4x_high_precision_measurement() -> None:
    sleeps = Sleeps()
    driver, chip = sht4x(sleeps=sleeps)
    chip.transactions.clear()
    sleeps.clear()
    chip.set_raw(t=0x6666, rh=0x8000)
    # RH = -6 + 125 * 32768 / 65535 = 56.5010 -> 56.50
    assert driver.read() == {"temperature": 25.0, "humidity": 56.5}
    assert chip.transactions[0] == ("w", b"\xfd")
    assert list(sleeps) == [0.009], "waits the maximum measurement time (8.3 ms)"


@pytest.mark.parametrize("rh, want", [
    (0, 0.0),  # -6 %RH
    (0x0C49, 0.0),  # -6 + 125 * 3145 / 65535 = -0.0012
    (0x0C9B, 0.16),  # 0.1551
    (0x7532, 51.23),  # 51.2251
    (0xD8F0, 99.93),  # 99.9279
    (0xD916, 100.0),  # 100.0006
    (0xFFFF, 100.0),  # 119 %RH
])  # fmt: skip
def test_sht4x_humidity_is_clamped(rh: int, want: float) -> None:
    driver, chip = sht4x()
    chip.set_raw(rh=rh)
    assert driver.read()["humidity"] == want


def test_sht4x_crc_error() -> None:
    driver, chip = sht4x()
    chip.corrupt_crc = True
    with pytest.raises(DriverError, match="CRC mismatch"):
        driver.read()


# -- registry ----------------------------------------------------------------------------------------


def test_registrations() -> None:
    assert driver_info("sht3x").i2c_addresses == (0x44, 0x45)
    assert driver_info("sht4x").i2c_addresses == (0x44, 0x45, 0x46)
    assert driver_info("sht3x").objects == driver_info("sht4x").objects == (3303, 3304)


@pytest.mark.parametrize("name, options, named", [
    ("sht3x", {"address": 0x46}, "address"),
    ("sht4x", {"address": 0x47}, "address"),
    ("sht4x", {"bus": 1.5}, "bus"),
    ("sht3x", {"repeatability": "high"}, "repeatability"),
])  # fmt: skip
def test_option_validation(name: str, options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        create_sensor(name, options, simulate=False)


def test_probes_tell_the_families_apart_without_side_effects() -> None:
    probe3, probe4 = driver_info("sht3x").probe, driver_info("sht4x").probe
    assert probe3 is not None and probe4 is not None
    bus = FakeSMBus(1)
    three, four = FakeSHT3x(0x44), FakeSHT4x(0x45)
    bus.attach(three)
    bus.attach(four)
    assert probe3(bus, 0x44) is True and probe4(bus, 0x44) is False
    assert probe4(bus, 0x45) is True and probe3(bus, 0x45) is False
    assert probe3(bus, 0x46) is False and probe4(bus, 0x46) is False
    assert three.resets == four.resets == 0
    assert three.measurements == four.measurements == 0
    three.status = 0x0020  # a reserved bit
    assert probe3(bus, 0x44) is False
    three.status = FakeSHT3x.STATUS_AFTER_RESET
    three.corrupt_crc = True
    assert probe3(bus, 0x44) is False


def test_simulated_twins_are_the_real_drivers() -> None:
    for name, cls in (("sht3x", SHT3x), ("sht4x", SHT4x)):
        sensor = create_sensor(name, {"seed": 2}, simulate=True)
        assert isinstance(sensor, cls)
        values = sensor.read()
        assert -40 <= values["temperature"] <= 125 and 0 <= values["humidity"] <= 100
