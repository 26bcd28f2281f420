"""INA219 driver against the chip model: calibration, register arithmetic, flags, errors, probe."""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import pytest

from lwm2md.drivers.base import DriverError
from lwm2md.drivers.fake.ina219 import CONFIG_DEFAULT, FakeINA219
from lwm2md.drivers.fake.smbus import FakeSMBus, RegisterChip
from lwm2md.drivers.fake.virtual_time import VirtualTime
from lwm2md.drivers.i2c.ina219 import (
    INA219,
    calibration_for,
    current_lsb_for,
    is_ina219,
)
from lwm2md.drivers.registry import create_sensor, driver_info


def rig(address: int = 0x40, **options: Any) -> tuple[INA219, FakeINA219, VirtualTime]:
    vt = VirtualTime()
    bus = FakeSMBus()
    chip = FakeINA219(address, clock=vt.now)
    bus.attach(chip)
    return INA219(bus, address, sleep=vt.sleep, **options), chip, vt


def test_construction_resets_then_writes_calibration() -> None:
    _, chip, _ = rig()
    # 3.2 A / 32767 = 97.7 uA -> Current_LSB 100 uA; Cal = trunc(0.04096 / (100e-6 * 0.1)) = 4096
    assert chip.writes == [(0x00, 0x8000), (0x05, 4096)]
    assert ("w", bytes([0x05, 0x10, 0x00])) in chip.transactions, "big-endian on the wire"
    assert chip.registers[0x00] == CONFIG_DEFAULT, "configuration left at its reset value"


@pytest.mark.parametrize(
    ("shunt_ohms", "max_current", "lsb", "cal"),
    [
        (0.1, 3.2, Fraction(1, 10_000), 4096),  # 97.7 uA -> 100 uA; 0.04096 / 1e-5
        (0.1, 1.0, Fraction(1, 20_000), 8192),  # 30.5 uA -> 50 uA; 0.04096 / 5e-6
        (0.01, 10.0, Fraction(1, 2_000), 8192),  # 305 uA -> 500 uA; 0.04096 / 5e-6
        (0.15, 2.0, Fraction(1, 10_000), 2730),  # 61 uA -> 100 uA; 0.04096 / 1.5e-5 = 2730.67, truncated
        (0.075, 2.0, Fraction(1, 10_000), 5460),  # 0.04096 / 7.5e-6 = 5461.33 -> 5461, void bit 0 -> 5460
        (0.11, 2.0, Fraction(1, 10_000), 3722),  # 0.04096 / 1.1e-5 = 3723.64 -> 3723 (not 3724) -> 3722
        (0.1, 0.5, Fraction(1, 50_000), 20480),  # 15.3 uA -> 20 uA; 0.04096 / 2e-6
        (0.1, 0.3, Fraction(1, 100_000), 40960),  # 9.2 uA -> 10 uA; 0.04096 / 1e-6
    ],
)
def test_calibration_per_datasheet_procedure(
    shunt_ohms: float, max_current: float, lsb: Fraction, cal: int
) -> None:
    assert current_lsb_for(max_current) == lsb
    _, chip, _ = rig(shunt_ohms=shunt_ohms, max_current=max_current)
    assert chip.writes[-1] == (0x05, cal)
    assert calibration_for(shunt_ohms, max_current).register == cal


def test_register_arithmetic_by_hand() -> None:
    driver, chip, _ = rig()
    chip.set_raw(shunt=15000, bus=3000)
    # shunt 15000 x 10 uV = 150 mV; Current = 15000 x 4096 / 4096 = 15000 -> x 100 uA = 1.5 A
    # bus 3000 x 4 mV = 12 V; Power = 15000 x 3000 / 5000 = 9000 -> x 20 x 100 uA = 18 W
    assert driver.read() == {"voltage": 12.0, "current": 1.5, "power": 18.0}


def test_register_arithmetic_with_another_calibration() -> None:
    driver, chip, _ = rig(max_current=1.0)  # Current_LSB 50 uA, Cal 8192, Power_LSB 1 mW
    chip.set_raw(shunt=5000, bus=3071)
    # Current = 5000 x 8192 / 4096 = 10000 -> 0.5 A; V = 3071 x 4 mV = 12.284 V
    # Power = trunc(10000 x 3071 / 5000) = 6142 -> 6.142 W
    assert driver.read() == {"voltage": 12.284, "current": 0.5, "power": 6.142}
    assert chip.registers[0x04] == 10000 and chip.registers[0x03] == 6142


def test_negative_shunt_voltage_is_a_negative_current() -> None:
    driver, chip, _ = rig()
    chip.set_raw(shunt=-1234, bus=3071)
    # Shunt register 0xFB2E = -1234 (-12.34 mV); Current = -1234 -> -0.1234 A
    # Power = trunc(1234 x 3071 / 5000) = trunc(757.92) = 757 -> 1.514 W
    assert chip.registers[0x01] == 0  # nothing converted before the read
    values = driver.read()
    assert chip.registers[0x01] == 0xFB2E and chip.registers[0x04] == 0xFB2E
    assert values == {"voltage": 12.284, "current": -0.1234, "power": 1.514}


def test_physical_load() -> None:
    driver, chip, _ = rig(shunt_ohms=0.05, max_current=2.0)
    chip.shunt_ohms = 0.05
    chip.set_load(5.0, 1.2)  # 60 mV across 50 mOhm
    values = driver.read()
    assert values["voltage"] == 5.0
    assert values["current"] == pytest.approx(1.2, abs=1e-4)
    assert values["power"] == pytest.approx(6.0, abs=2e-3)


def test_waits_for_conversion_ready_and_consumes_it() -> None:
    driver, chip, vt = rig()
    chip.set_raw(shunt=100, bus=1000)
    first = driver.read()
    assert vt.sleeps, "right after calibration no conversion is ready: the driver polls CNVR"
    assert first == {"voltage": 4.0, "current": 0.01, "power": 0.04}  # 100 x 1000 / 5000 = 20 -> 40 mW
    assert not chip.registers[0x02] & 0x0002, "reading Power cleared CNVR"
    chip.set_raw(shunt=200, bus=1000)
    assert driver.read()["current"] == 0.02, "the next read waits for a fresh conversion"


def test_conversion_never_ready_is_a_driver_error() -> None:
    driver, chip, vt = rig()
    chip.stalled = True
    with pytest.raises(DriverError, match="CNVR"):
        driver.read()
    assert len(vt.sleeps) == 9, "bounded: ten polls, nine waits between them"


def test_overflow_flag_is_a_driver_error() -> None:
    driver, chip, _ = rig(max_current=0.4)  # Current_LSB 20 uA, Cal 20480
    chip.set_raw(shunt=8000, bus=3000)  # Current = 8000 x 20480 / 4096 = 40000 > 32767: OVF
    with pytest.raises(DriverError, match="OVF"):
        driver.read()
    assert chip.registers[0x02] & 0x0001
    assert not chip.registers[0x02] & 0x0002, "the overflowed conversion was consumed"
    chip.set_raw(shunt=3000, bus=3000)  # 15000: fine again
    assert driver.read()["current"] == 0.3


def test_bus_voltage_flags_do_not_leak_into_the_value() -> None:
    driver, chip, _ = rig()
    chip.set_raw(shunt=0, bus=0x1FFF)  # register 0xFFFA: CNVR set, bits 15..3 all ones
    assert driver.read()["voltage"] == 32.764  # 8191 x 4 mV


def test_chip_reset_behind_our_back_is_reprogrammed(caplog: pytest.LogCaptureFixture) -> None:
    driver, chip, _ = rig()
    chip.set_raw(shunt=15000, bus=3000)
    chip.reset()  # a supply dip: calibration back to 0
    with caplog.at_level(logging.WARNING):
        assert driver.read()["current"] == 1.5
    assert "calibration" in caplog.text
    assert chip.writes[-2:] == [(0x00, 0x8000), (0x05, 4096)]


def test_nak_is_a_driver_error() -> None:
    driver, chip, _ = rig()
    chip.nak = True
    with pytest.raises(DriverError, match="no acknowledge"):
        driver.read()
    with pytest.raises(DriverError, match="no acknowledge"):
        INA219(FakeSMBus(), 0x41)


def test_wrong_chip_fails_construction() -> None:
    bus = FakeSMBus()
    bus.attach(RegisterChip(0x40))  # plain memory: keeps the reset bit written to it
    with pytest.raises(DriverError, match="configuration reads 0x8000 after reset"):
        INA219(bus, 0x40)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"shunt_ohms": 0}, "shunt_ohms"),
        ({"shunt_ohms": -0.1}, "shunt_ohms"),
        ({"shunt_ohms": "0.1"}, "shunt_ohms"),
        ({"shunt_ohms": True}, "shunt_ohms"),
        ({"max_current": 0.0}, "max_current"),
        ({"max_current": float("inf")}, "max_current"),
        ({"max_current": 5.0}, "max_current"),  # 5 A x 0.1 Ohm = 0.5 V > 0.32 V
        ({"shunt_ohms": 1.0, "max_current": 0.001}, "max_current"),  # Cal 819200 > 16 bits
        ({"address": 0x50}, "address"),
        ({"shunt": 0.1}, "shunt"),
    ],
)
def test_bad_options_are_rejected_before_the_bus_is_opened(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        create_sensor("ina219", options, simulate=False)
    with pytest.raises(ValueError, match=option):
        create_sensor("ina219", options, simulate=True)


def test_full_shunt_range_is_accepted() -> None:
    driver, _, _ = rig(shunt_ohms=0.1, max_current=3.2)  # exactly 320 mV
    assert driver.quantities()["current"].max_range == 3.2


def test_probe() -> None:
    bus = FakeSMBus()
    chip = bus.attach(FakeINA219(0x45))
    probe = driver_info("ina219").probe
    assert probe is not None
    assert probe(bus, 0x45) and is_ina219(bus, 0x45)
    assert all(kind == "r" or len(data) == 1 for kind, data in chip.transactions), "pointer writes only"
    INA219(bus, 0x45)
    assert probe(bus, 0x45), "still recognised after the driver programmed it"
    assert not probe(bus, 0x44)
    bus.attach(RegisterChip(0x44))
    assert not probe(bus, 0x44)


def test_registry_entry_and_simulator() -> None:
    info = driver_info("ina219")
    assert info.i2c_addresses == tuple(range(0x40, 0x50))
    assert info.objects == (3316, 3317, 3328)
    sensor = create_sensor("ina219", {"address": 0x44, "max_current": 1.0}, simulate=True)
    assert isinstance(sensor, INA219) and "simulated" in sensor.name
    quantities = sensor.quantities()
    assert {k: q.units for k, q in quantities.items()} == {"voltage": "V", "current": "A", "power": "W"}
    values = sensor.read()
    assert 11.6 <= values["voltage"] <= 12.4, "simulated bus at 12 +- 0.3 V"
    assert 0.3 <= values["current"] <= 0.65, "simulated load at (1.5 +- 0.5) / 3.2 of max_current"
    assert values["power"] == pytest.approx(values["voltage"] * values["current"], rel=0.01)
    sensor.close()
