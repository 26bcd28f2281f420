"""BH1750 driver against the chip model: commands, timing, lux arithmetic, errors, probe."""

from __future__ import annotations

from typing import Any

import pytest

from lwm2md.drivers.base import DriverError, Sensor
from lwm2md.drivers.fake.bh1750 import FakeBH1750
from lwm2md.drivers.fake.smbus import FakeChip, FakeSMBus
from lwm2md.drivers.fake.virtual_time import VirtualTime
from lwm2md.drivers.i2c import bh1750
from lwm2md.drivers.i2c.bh1750 import BH1750, is_bh1750, lux_from_count
from lwm2md.drivers.registry import create_sensor, driver_info


def rig(address: int = 0x23, **options: Any) -> tuple[BH1750, FakeBH1750, VirtualTime]:
    vt = VirtualTime()
    bus = FakeSMBus()
    chip = FakeBH1750(address, clock=vt.now)
    bus.attach(chip)
    return BH1750(bus, address, sleep=vt.sleep, **options), chip, vt


def test_count_to_lux_by_hand() -> None:
    driver, chip, _ = rig()
    chip.set_raw(0x1C20)  # 7200 counts / 1.2 counts per lx = 6000 lx
    assert driver.read() == {"illuminance": 6000.0}
    chip.set_raw(0x0001)  # 1 / 1.2 = 0.8333... lx
    assert driver.read()["illuminance"] == pytest.approx(5 / 6, rel=1e-15)


def test_one_time_high_resolution_command_sequence_and_wait() -> None:
    driver, chip, vt = rig()
    assert chip.commands == [0x00], "construction powers the chip down (and checks it answers)"
    chip.set_raw(600)
    driver.read()
    assert chip.commands == [0x00, 0x01, 0x20], "power on, then one-time H-resolution mode"
    assert vt.sleeps == [0.180], "the datasheet's worst-case H-resolution time"
    assert [kind for kind, _ in chip.transactions[-1:]] == ["r"]
    assert chip.transactions[-1][1] == (600).to_bytes(2, "big")
    assert not chip.powered, "a one-time measurement ends in power down"


@pytest.mark.parametrize(
    ("mode", "opcode", "wait", "lux"),
    [
        ("high", 0x20, 0.180, 500.0),  # 600 / 1.2
        ("high2", 0x21, 0.180, 250.0),  # 600 / 1.2 / 2
        ("low", 0x23, 0.024, 500.0),  # 600 / 1.2
    ],
)
def test_modes(mode: str, opcode: int, wait: float, lux: float) -> None:
    driver, chip, vt = rig(mode=mode)
    chip.set_raw(600)
    assert driver.read() == {"illuminance": lux}
    assert chip.commands[-1] == opcode
    assert vt.sleeps == [wait]


def test_mtreg_commands_scale_time_and_lux() -> None:
    driver, chip, vt = rig(mtreg=138)
    chip.set_raw(600)
    # 600 / 1.2 * 69 / 138 = 250 lx; MTreg 138 = 0b100_01010 -> 0x40|0b100, 0x60|0b01010
    assert driver.read() == {"illuminance": 250.0}
    assert chip.commands == [0x00, 0x01, 0x44, 0x6A, 0x20]
    assert chip.mtreg == 138
    assert vt.sleeps == [pytest.approx(0.360)]


@pytest.mark.parametrize(("mtreg", "high", "low"), [(31, 0x40, 0x7F), (254, 0x47, 0x7E), (69, None, None)])
def test_mtreg_split_into_opcodes(mtreg: int, high: int | None, low: int | None) -> None:
    driver, chip, _ = rig(mtreg=mtreg)
    chip.set_raw(69 * 12)  # 828 / 1.2 * 69 / MTreg = 690 * 69 / MTreg lx
    assert driver.read()["illuminance"] == pytest.approx(690 * 69 / mtreg)
    expected = [0x00, 0x01] + ([high, low] if high is not None else []) + [0x20]
    assert chip.commands == expected
    assert chip.mtreg == mtreg, "the model decodes the same MTreg"


def test_driver_waits_long_enough_for_a_fresh_measurement() -> None:
    driver, chip, _ = rig()
    for lux in (500.0, 1000.0, 20.0):
        chip.set_lux(lux)  # the model answers the previous result until the measurement is done
        assert driver.read()["illuminance"] == pytest.approx(lux, abs=0.5)
    assert chip.measurements == 3


def test_model_returns_stale_data_when_read_too_early() -> None:
    """The model itself: a read before the measurement time has passed gets the old count."""
    vt = VirtualTime()
    bus = FakeSMBus()
    chip = FakeBH1750(clock=vt.now)
    bus.attach(chip)
    chip.set_raw(1234)
    bus.write_byte(0x23, 0x01)
    bus.write_byte(0x23, 0x20)
    vt.sleep(0.1)
    assert bus.read_byte(0x23) == 0, "not done yet: still the reset value"
    vt.sleep(0.08)
    assert bus.read_byte(0x23) == 1234 >> 8


def test_model_ignores_measurement_while_powered_down() -> None:
    vt = VirtualTime()
    bus = FakeSMBus()
    chip = FakeBH1750(clock=vt.now)
    bus.attach(chip)
    chip.set_raw(1234)
    bus.write_byte(0x23, 0x20)
    vt.sleep(1.0)
    assert chip.measurements == 0 and bus.read_byte(0x23) == 0


def test_nak_is_a_driver_error() -> None:
    driver, chip, _ = rig()
    chip.nak = True
    with pytest.raises(DriverError, match="no acknowledge"):
        driver.read()
    chip.nak = False
    chip.set_raw(12)
    assert driver.read() == {"illuminance": 10.0}, "recovers once the chip answers again"


def test_absent_chip_fails_construction() -> None:
    with pytest.raises(DriverError, match="no acknowledge"):
        BH1750(FakeSMBus(), 0x23)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"mode": "medium"}, "mode"),
        ({"mode": 1}, "mode"),
        ({"mtreg": 30}, "mtreg"),
        ({"mtreg": 255}, "mtreg"),
        ({"mtreg": True}, "mtreg"),
        ({"mtreg": 69.0}, "mtreg"),
        ({"address": 0x24}, "address"),
        ({"resolution": "high"}, "resolution"),
    ],
)
def test_bad_options_are_rejected_before_the_bus_is_opened(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        create_sensor("bh1750", options, simulate=False)
    with pytest.raises(ValueError, match=option):
        create_sensor("bh1750", options, simulate=True)


def test_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match="mtreg"):
        rig(mtreg=300)


def test_lux_from_count_table() -> None:
    assert lux_from_count(0xFFFF) == 54612.5  # 65535 / 1.2
    assert lux_from_count(0xFFFF, "high2") == 27306.25
    assert lux_from_count(120, "high", 31) == pytest.approx(100 * 69 / 31)


class Ones(FakeChip):
    """A device that answers every read with 0xFF bytes (e.g. an idle port expander)."""

    def on_write(self, data: bytes) -> None:
        pass

    def on_read(self, length: int) -> bytes:
        return b"\xff" * length


def test_probe() -> None:
    bus = FakeSMBus()
    chip = bus.attach(FakeBH1750(0x5C))
    assert is_bh1750(bus, 0x5C)
    assert all(kind == "r" for kind, _ in chip.transactions), "the probe must not write"
    probe = driver_info("bh1750").probe
    assert probe is not None
    assert probe(bus, 0x5C)
    assert not probe(bus, 0x23), "nothing there"
    bus.attach(Ones(0x23))
    assert not probe(bus, 0x23)


def test_registry_entry_and_simulator() -> None:
    info = driver_info("bh1750")
    assert info.i2c_addresses == (0x23, 0x5C)
    assert info.objects == (3301,)
    sensor: Sensor = create_sensor("bh1750", {"address": 0x5C, "seed": 3}, simulate=True)
    assert isinstance(sensor, BH1750) and "simulated" in sensor.name
    assert sensor.quantities() == {"illuminance": bh1750.QUANTITY}
    assert bh1750.QUANTITY.units == "lx" and bh1750.QUANTITY.max_range == 65535.0
    value = sensor.read()["illuminance"]
    assert 50.0 - 1 <= value <= 550.0 + 1, "the simulated signal is 300 +- 250 lx"
    sensor.close()
