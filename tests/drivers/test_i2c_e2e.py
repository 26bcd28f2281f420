"""I2C drivers end to end: chip model -> real driver -> sampler -> IPSO object -> CoAP -> test server.

Each scenario runs a real Client against the TestServer on loopback; the
sensor factory hands the client a real driver on a FakeSMBus whose chip
model the test controls. Time for sampling and backoff is a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import pytest

from lwm2md.app import Client
from lwm2md.config import SensorConfig
from lwm2md.drivers.base import Sensor
from lwm2md.drivers.fake.bme280 import FakeBME280
from lwm2md.drivers.fake.sht import FakeSHT3x, FakeSHT4x
from lwm2md.drivers.fake.smbus import FakeChip, FakeSMBus
from lwm2md.drivers.fake.tmp102 import FakeTMP102
from lwm2md.drivers.i2c.bme280 import BME280
from lwm2md.drivers.i2c.sht import SHT3x, SHT4x
from lwm2md.drivers.i2c.tmp102 import TMP102
from lwm2md.engine.clock import FakeClock
from lwm2md.objects.sampling import SensorSampler
from lwm2md.testing import TestServer
from tests.integration.harness import EP, inline, make_config, run

QUIET = 0.3  # wall seconds within which an unwanted notification would have arrived on loopback
INTERVAL = 5.0


def no_sleep(seconds: float) -> None:
    """Chip models answer at once: skip the conversion waits."""


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (wall time) for a worker-thread read to land."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def no_notification(obs: object) -> None:
    queue = obs.notifications  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(queue.get(), QUIET)
        raise AssertionError(f"unexpected notification {extra.records}")


@dataclass
class I2CRig:
    server: TestServer
    client: Client
    clock: FakeClock

    @property
    def sampler(self) -> SensorSampler:
        return self.client.samplers[0]

    async def sample(self) -> bool:
        return await self.sampler.sample_once()


@contextlib.asynccontextmanager
async def i2c_rig(
    driver: str, objects: Sequence[int], chip: FakeChip, build: Callable[[FakeSMBus, int], Sensor]
) -> AsyncIterator[I2CRig]:
    """A registered client whose only sensor is ``build(bus, address)`` with ``chip`` on the bus."""
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    clock = FakeClock()
    bus = FakeSMBus(1)
    bus.attach(chip)

    def factory(config: SensorConfig, simulate: bool) -> Sensor:
        assert config.driver == driver and not simulate
        return build(bus, config.options["address"])

    table = {
        "driver": driver,
        "objects": list(objects),
        "interval": INTERVAL,
        "bus": 1,
        "address": chip.address,
    }
    client = Client(
        make_config(server.uri, sensor=[table]), clock=clock, sensor_factory=factory, run_blocking=inline
    )
    try:
        await client.start()
        await server.wait_registered(EP)
        rig = I2CRig(server, client, clock)
        # the sampler's first read (at start, in a worker thread) must land before the test changes the chip
        instances = rig.sampler.instances
        await until(lambda: all(i.value is not None or i.faulted for i in instances), "first sample")
        yield rig
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await server.stop()


def bme280(bus: FakeSMBus, address: int) -> Sensor:
    return BME280(bus, address, sleep=no_sleep)


async def value(r: I2CRig, path: str) -> float:
    answer = await r.server.read(EP, path)
    assert answer.code == "2.05", f"{path}: {answer.code} {answer.text}"
    result = answer.value
    assert isinstance(result, float)
    return result


# -- datasheet values over LwM2M --------------------------------------------------------


def test_bme280_datasheet_example_read_over_lwm2m() -> None:
    async def scenario() -> None:
        chip = FakeBME280(0x76)
        async with i2c_rig("bme280", [3303, 3304, 3315], chip, bme280) as r:
            chip.set_raw(adc_t=519888, adc_p=415148, adc_h=28000)
            assert await r.sample()
            # Datasheet example: adc_T 519888 -> 25.08 Cel, adc_P 415148 -> 100653.27 Pa.
            assert round(await value(r, "/3303/0/5700"), 2) == 25.08
            assert round(await value(r, "/3315/0/5700"), 2) == 100653.27
            # Humidity by hand (floating-point formula), H1..H6 = 75, 362, 0, 313, 50, 30:
            #   t_fine = 128422.287; x = t_fine - 76800 = 51622.287
            #   offset = 313 * 64 + 50 / 16384 * x = 20189.539
            #   gain = 362 / 65536 * (1 + 30 / 67108864 * x * (1 + 0)) = 0.0056512
            #   h = (28000 - offset) * gain = 44.1381; h * (1 - 75 * h / 524288) = 43.859 -> 43.86 %RH
            assert round(await value(r, "/3304/0/5700"), 2) == 43.86
            units = await r.server.read(EP, "/3315/0/5701")
            assert units.value == "Pa"

    run(scenario())


def test_sht3x_value_read_over_lwm2m() -> None:
    async def scenario() -> None:
        chip = FakeSHT3x(0x45)
        async with i2c_rig("sht3x", [3303, 3304], chip, lambda b, a: SHT3x(b, a, sleep=no_sleep)) as r:
            chip.set_raw(t=0x4CCD, rh=0x2000)
            assert await r.sample()
            # T = -45 + 175 * 19661 / 65535 = 7.5010 -> 7.50; RH = 100 * 8192 / 65535 = 12.500 -> 12.50
            assert round(await value(r, "/3303/0/5700"), 2) == 7.50
            assert round(await value(r, "/3304/0/5700"), 2) == 12.50

    run(scenario())


def test_sht4x_value_read_over_lwm2m() -> None:
    async def scenario() -> None:
        chip = FakeSHT4x(0x44)
        async with i2c_rig("sht4x", [3303, 3304], chip, lambda b, a: SHT4x(b, a, sleep=no_sleep)) as r:
            chip.set_raw(t=0x1000, rh=0xF000)
            assert await r.sample()
            # T = -45 + 175 * 4096 / 65535 = -34.0623 -> -34.06; RH = -6 + 125 * 61440 / 65535 = 111.19 -> 100
            assert round(await value(r, "/3303/0/5700"), 2) == -34.06
            assert await value(r, "/3304/0/5700") == 100.0

    run(scenario())


def test_tmp102_negative_value_read_over_lwm2m() -> None:
    async def scenario() -> None:
        chip = FakeTMP102(0x4A)
        async with i2c_rig("tmp102", [3303], chip, lambda b, a: TMP102(b, a, sleep=no_sleep)) as r:
            chip.set_raw(0xE640)
            assert await r.sample()
            # 0xE640 >> 4 = 0xE64 = 3684 - 4096 = -412 counts * 0.0625 = -25.75 Cel
            assert await value(r, "/3303/0/5700") == -25.75

    run(scenario())


# -- observation driven by raw register changes ---------------------------------------------

# adc_T values and what the datasheet formula makes of them with the example calibration
ADC_T = {20.0: 503664, 21.0: 506856, 24.9: 519296, 26.0: 522808, 27.0: 526000, 14.0: 484552,
         14.5: 486144, 15.2: 488368}  # fmt: skip


def test_observe_gt_lt_on_a_fake_bme280() -> None:
    """Observing /3303/0/5700 with gt/lt set produces exactly the notifications the attributes call for."""

    async def scenario() -> None:
        chip = FakeBME280(0x77)
        async with i2c_rig("bme280", [3303, 3304, 3315], chip, bme280) as r:

            async def sample(celsius: float) -> None:
                chip.set_raw(adc_t=ADC_T[celsius])
                assert await r.sample()

            await sample(20.0)
            await r.server.write_attributes(EP, "/3303/0/5700", gt=25, lt=15)
            obs = await r.server.observe(EP, "/3303/0/5700")
            assert obs.first.value == 20.0
            for celsius in (21.0, 24.9):  # inside the band
                await sample(celsius)
                await no_notification(obs)
            await sample(26.0)  # crosses gt upwards
            assert (await obs.next()).value == 26.0
            await sample(27.0)  # stays above
            await no_notification(obs)
            await sample(14.0)  # crosses gt and lt downwards
            assert (await obs.next()).value == 14.0
            await sample(14.5)  # stays below
            await no_notification(obs)
            await sample(15.2)  # crosses lt upwards
            assert (await obs.next()).value == 15.2
            await sample(20.0)
            await no_notification(obs)
            chip.set_raw(adc_h=0x7000, adc_p=400000)  # other channels change: nothing for 3303
            assert await r.sample()
            await no_notification(obs)

    run(scenario())


# -- faults and recovery through the sampler's backoff ------------------------------------------------


def fault_lines(caplog: pytest.LogCaptureFixture, path: str) -> list[str]:
    """Warnings about the instance of resource ``path``."""
    instance = path.rsplit("/", 1)[0]
    return [
        rec.getMessage()
        for rec in caplog.records
        if rec.levelno >= logging.WARNING and rec.getMessage().startswith(f"{instance}:")
    ]


async def fault_episode(
    r: I2CRig,
    caplog: pytest.LogCaptureFixture,
    paths: Sequence[str],
    fail: Callable[[bool], None],
    reason: str,
) -> None:
    """Fail the chip, check 5.00 and the backoff schedule, heal it, check the value returns."""
    sampler = r.sampler
    before = {path: len(fault_lines(caplog, path)) for path in paths}
    fail(True)
    await r.clock.advance(INTERVAL)  # the regular read fails
    await until(lambda: sampler.failures == 1, "first failure")
    for path in paths:
        answer = await r.server.read(EP, path)
        assert answer.code == "5.00", answer
    # backoff: the retry comes 2 intervals later, not sooner
    await r.clock.advance(2 * INTERVAL - 0.5)
    await asyncio.sleep(0.1)
    assert sampler.failures == 1, "retried before the backoff delay"
    await r.clock.advance(0.5)
    await until(lambda: sampler.failures == 2, "second failure")
    # the chip answers again; the next retry (4 intervals later) brings the value back
    fail(False)
    await r.clock.advance(4 * INTERVAL - 0.5)
    await asyncio.sleep(0.1)
    assert sampler.failures == 2
    assert (await r.server.read(EP, paths[0])).code == "5.00"
    await r.clock.advance(0.5)
    await until(lambda: sampler.failures == 0, "recovery")
    for path in paths:
        lines = fault_lines(caplog, path)[before[path] :]
        assert len(lines) == 1, f"{path}: one log line per episode, got {lines}"
        assert reason in lines[0]


def test_bme280_nak_gives_5_00_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        chip = FakeBME280(0x76)
        async with i2c_rig("bme280", [3303], chip, bme280) as r:
            assert await value(r, "/3303/0/5700") == 25.08

            def nak(on: bool) -> None:
                chip.nak = on
                if not on:
                    chip.set_raw(adc_t=ADC_T[27.0])

            await fault_episode(r, caplog, ["/3303/0/5700"], nak, "no acknowledge")
            assert await value(r, "/3303/0/5700") == 27.0
            assert sum("sensor recovered" in rec.getMessage() for rec in caplog.records) == 1
            # a second episode logs its own line
            await fault_episode(r, caplog, ["/3303/0/5700"], nak, "no acknowledge")
            assert len(fault_lines(caplog, "/3303/0/5700")) == 2

    run(scenario())


def test_sht3x_crc_error_gives_5_00_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        chip = FakeSHT3x(0x44)
        async with i2c_rig("sht3x", [3303, 3304], chip, lambda b, a: SHT3x(b, a, sleep=no_sleep)) as r:

            def corrupt(on: bool) -> None:
                chip.corrupt_crc = on
                if not on:
                    chip.set_raw(t=0x8000, rh=0x4000)

            await fault_episode(r, caplog, ["/3303/0/5700", "/3304/0/5700"], corrupt, "CRC mismatch")
            # T = -45 + 175 * 32768 / 65535 = 42.5013 -> 42.50; RH = 100 * 16384 / 65535 = 25.0004 -> 25.00
            assert await value(r, "/3303/0/5700") == 42.5
            assert await value(r, "/3304/0/5700") == 25.0

    run(scenario())
