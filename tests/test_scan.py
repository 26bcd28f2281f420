"""lwm2md scan: chip-id probes over a fake bus, and the printed [[sensor]] tables."""

from __future__ import annotations

import tomllib

from lwm2md.config import parse_config
from lwm2md.drivers.base import DriverError
from lwm2md.drivers.fake.bh1750 import FakeBH1750
from lwm2md.drivers.fake.bme280 import FakeBME280
from lwm2md.drivers.fake.ina219 import FakeINA219
from lwm2md.drivers.fake.sht import FakeSHT3x
from lwm2md.drivers.fake.smbus import FakeSMBus
from lwm2md.drivers.i2c.bus import BusUnavailable, SMBusLike
from lwm2md.scan import scan


def test_scan_finds_each_chip_once_and_snippets_validate() -> None:
    bus1 = FakeSMBus(1)
    bus1.attach(FakeBME280(0x77))
    bus1.attach(FakeSHT3x(0x44))
    bus1.attach(FakeBH1750(0x23))
    bus3 = FakeSMBus(3)
    bus3.attach(FakeINA219(0x41))
    buses = {1: bus1, 3: bus3}
    reports: list[str] = []

    def opener(number: int) -> SMBusLike:
        if number not in buses:
            raise BusUnavailable(f"/dev/i2c-{number} does not exist")
        return buses[number]

    found = scan([1, 2, 3], opener=opener, report=reports.append)
    assert sorted((f.driver, f.bus, f.address, f.objects) for f in found) == [
        ("bh1750", 1, 0x23, (3301,)),
        ("bme280", 1, 0x77, (3303, 3304, 3315)),
        ("ina219", 3, 0x41, (3316, 3317, 3328)),
        ("sht3x", 1, 0x44, (3303, 3304)),
    ]
    assert reports == ["i2c-2: skipped (/dev/i2c-2 does not exist)"]
    assert bus1.closed and bus3.closed
    text = "[[server]]\nuri = 'coap://h'\nshort_id = 1\n" + "".join(f.snippet() for f in found)
    config = parse_config(tomllib.loads(text), "snippets")
    assert sorted(s.driver for s in config.sensors) == ["bh1750", "bme280", "ina219", "sht3x"]


def test_scan_of_an_empty_bus_finds_nothing() -> None:
    assert scan([0], opener=lambda n: FakeSMBus(n), report=lambda line: None) == []


def test_a_failing_bus_is_reported_not_raised() -> None:
    def opener(number: int) -> SMBusLike:
        raise DriverError("permission denied")

    reports: list[str] = []
    assert scan([1], opener=opener, report=reports.append) == []
    assert reports == ["i2c-1: skipped (permission denied)"]
