"""BH1750, INA219 and ADS1115 end to end: chip registers -> driver -> LwM2M Read on loopback.

Each test runs the real Client (its sensor factory builds the real driver on a
FakeSMBus the test holds) against the test server, sets raw chip registers,
samples once and reads the resource; the expected value is worked out by hand
from the datasheet formulas in the comments.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.config import SensorConfig
from lwm2md.drivers.base import Sensor
from lwm2md.drivers.fake.ads1115 import FakeADS1115
from lwm2md.drivers.fake.bh1750 import FakeBH1750
from lwm2md.drivers.fake.ina219 import FakeINA219
from lwm2md.drivers.fake.smbus import FakeChip, FakeSMBus
from lwm2md.drivers.fake.virtual_time import VirtualTime
from lwm2md.drivers.i2c.ads1115 import ADS1115
from lwm2md.drivers.i2c.bh1750 import BH1750
from lwm2md.drivers.i2c.ina219 import INA219
from lwm2md.engine.clock import FakeClock
from lwm2md.model.catalog import Catalog
from lwm2md.objects.sampling import build_sensor_instances
from lwm2md.objects.tree import ObjectTree
from lwm2md.testing import TestServer
from tests.integration.harness import EP, inline, make_config, run

DriverMaker = Callable[[FakeSMBus, VirtualTime], Sensor]


@dataclass
class Gateway:
    server: TestServer
    client: Client

    async def sample(self) -> bool:
        """One sampling period of the client's only sensor; True when the driver read succeeded."""
        return await self.client.samplers[0].sample_once()

    async def read_value(self, path: str) -> object:
        response = await self.server.read(EP, path, accept=ContentFormat.SENML_JSON)
        assert response.code == "2.05", f"{path}: {response.code}"
        return response.value


@contextlib.asynccontextmanager
async def gateway(
    chip: FakeChip, make: DriverMaker, vt: VirtualTime, table: dict[str, Any]
) -> AsyncIterator[Gateway]:
    """A registered Client whose one sensor table gets ``make``'s driver on a bus holding ``chip``."""
    bus = FakeSMBus()
    bus.attach(chip)
    built: list[SensorConfig] = []

    def factory(config: SensorConfig, simulate: bool) -> Sensor:
        built.append(config)
        return make(bus, vt)

    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    client = Client(
        make_config(server.uri, sensor=[table]),
        clock=FakeClock(),
        sensor_factory=factory,
        run_blocking=inline,
    )
    try:
        await client.start()
        await server.wait_registered(EP)
        assert [c.driver for c in built] == [table["driver"]]
        yield Gateway(server, client)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await server.stop()


def test_bh1750_lux_reaches_the_server() -> None:
    vt = VirtualTime()
    chip = FakeBH1750(0x23, clock=vt.now)
    chip.set_raw(0x2D00)  # 11520 counts / 1.2 = 9600 lx (H-resolution, MTreg 69)

    async def scenario() -> None:
        table = {"driver": "bh1750", "objects": [3301]}
        async with gateway(chip, lambda bus, t: BH1750(bus, 0x23, sleep=t.sleep), vt, table) as gw:
            assert await gw.sample()
            assert await gw.read_value("/3301/0/5700") == 9600.0
            text = await gw.server.read(EP, "/3301/0/5700", accept=ContentFormat.TEXT)
            assert text.payload == b"9600.0"
            assert await gw.read_value("/3301/0/5701") == "lx"
            assert await gw.read_value("/3301/0/5604") == 65535.0

    run(scenario())


def test_ina219_voltage_current_power_reach_the_server() -> None:
    vt = VirtualTime()
    chip = FakeINA219(0x41, clock=vt.now)
    # Defaults: 0.1 Ohm, 3.2 A -> Current_LSB 100 uA, Cal 4096, Power_LSB 2 mW.
    # Bus 3071 x 4 mV = 12.284 V; Shunt -1234 x 10 uV = -12.34 mV;
    # Current = -1234 x 4096 / 4096 = -1234 -> -0.1234 A;
    # Power = trunc(1234 x 3071 / 5000) = 757 -> 1.514 W.
    chip.set_raw(shunt=-1234, bus=3071)

    async def scenario() -> None:
        table = {"driver": "ina219", "objects": [3316, 3317, 3328], "address": 0x41}
        async with gateway(chip, lambda bus, t: INA219(bus, 0x41, sleep=t.sleep), vt, table) as gw:
            assert await gw.sample()
            assert await gw.read_value("/3316/0/5700") == 12.284
            assert await gw.read_value("/3317/0/5700") == -0.1234
            assert await gw.read_value("/3328/0/5700") == 1.514
            assert await gw.read_value("/3317/0/5701") == "A"
            assert await gw.read_value("/3317/0/5603") == -3.2

    run(scenario())


def test_ads1115_one_channel_as_analog_input_and_voltage() -> None:
    vt = VirtualTime()
    chip = FakeADS1115(0x49, clock=vt.now)
    chip.set_raw(2, 12345)  # AIN2 at full scale 2.048 V: 12345 x 2.048 / 32768 = 0.7715625 V

    def make(bus: FakeSMBus, t: VirtualTime) -> Sensor:
        return ADS1115(bus, 0x49, channels=[2], full_scale=2.048, sleep=t.sleep)

    async def scenario() -> None:
        table = {"driver": "ads1115", "objects": [3202, 3316], "channels": [2]}
        async with gateway(chip, make, vt, table) as gw:
            assert await gw.sample()
            assert await gw.read_value("/3202/0/5600") == 0.7715625
            assert await gw.read_value("/3316/0/5700") == 0.7715625
            assert await gw.read_value("/3202/0/5604") == 2.048

    run(scenario())


def _per_entry_kinds_supported() -> bool:
    bus = FakeSMBus()
    bus.attach(FakeADS1115(0x48))
    try:
        built = build_sensor_instances(
            ObjectTree(Catalog.builtin()), ADS1115(bus, channels=[0, 1]), [3202, 3202]
        )
    except ValueError:
        return False
    return [i.quantity.kind for i in built] == ["analog0", "analog1"]


@pytest.mark.skipif(
    not _per_entry_kinds_supported(),
    reason="needs lwm2md/objects/sampling.py build_sensor_instances to feed entry i of objects from "
    "kind '<kind><i>' when the sensor measures it (and to allow a repeated object then)",
)
def test_ads1115_two_channels_as_two_analog_inputs() -> None:
    vt = VirtualTime()
    chip = FakeADS1115(0x48, clock=vt.now)
    chip.set_raw(1, 30000)  # AIN1: 30000 x 4.096 / 32768 = 3.75 V
    chip.set_raw(0, 250)  # AIN0: 250 x 4.096 / 32768 = 0.03125 V

    def make(bus: FakeSMBus, t: VirtualTime) -> Sensor:
        return ADS1115(bus, 0x48, channels=[1, 0], sleep=t.sleep)

    async def scenario() -> None:
        table = {"driver": "ads1115", "objects": [3202, 3202], "channels": [1, 0]}
        async with gateway(chip, make, vt, table) as gw:
            assert await gw.sample()
            assert await gw.read_value("/3202/0/5600") == 3.75
            assert await gw.read_value("/3202/1/5600") == 0.03125

    run(scenario())


def test_nak_reaches_the_server_as_an_internal_server_error() -> None:
    vt = VirtualTime()
    chip = FakeBH1750(0x5C, clock=vt.now)
    chip.set_raw(1200)  # 1000 lx

    async def scenario() -> None:
        table = {"driver": "bh1750", "objects": [3301], "address": 0x5C}
        async with gateway(chip, lambda bus, t: BH1750(bus, 0x5C, sleep=t.sleep), vt, table) as gw:
            assert await gw.sample()
            assert await gw.read_value("/3301/0/5700") == 1000.0
            chip.nak = True
            assert not await gw.sample()
            response = await gw.server.read(EP, "/3301/0/5700")
            assert response.code == "5.00"

    run(scenario())
