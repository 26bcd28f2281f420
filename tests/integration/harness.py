"""A real client (lwm2md.app.Client) and the independent test server on loopback.

Sockets are real; the client's timers run on a FakeClock so that periods
(pmin, pmax, lifetime, retry timers, sampling) are driven by the test, not
by sleeping. Wall-clock timeouts only bound how long a test waits for a
datagram that must arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from lwm2md.app import Client
from lwm2md.config import Config, parse_config
from lwm2md.drivers.simulated import SimulatedSensor
from lwm2md.engine.clock import FakeClock
from lwm2md.testing import TestServer

T = TypeVar("T")

EP = "it-gw"
TEST_TIMEOUT = 30.0


async def inline(func: Callable[[], T]) -> T:
    """Run a driver's blocking read on the event loop: with a FakeClock, no thread may race the clock."""
    return func()


async def until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` holds, polling the loop (the network runs meanwhile).

    TimeoutError after ``timeout`` wall-clock seconds: a bound on waiting, not a timing assertion.
    """
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
    assert predicate(), what


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run one scenario on a fresh loop, bounded in wall time."""

    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await coro

    asyncio.run(bounded())


def make_config(uri: str, state_dir: str | None = None, **extra: Any) -> Config:
    """A config for ``uri`` with one simulated sensor feeding /3303/0 and /3304/0.

    ``state_dir`` defaults to a fresh temporary directory.
    """
    if state_dir is None:
        state_dir = tempfile.mkdtemp(prefix="lwm2md-it-")
    data: dict[str, Any] = {
        "state_dir": state_dir,
        "device": {"endpoint": EP, "manufacturer": "Test Inc", "model": "IT-1"},
        "server": [{"uri": uri, "short_id": 1, "lifetime": 300, "binding": "U",
                    "communication_retry_timer": 10}],
        "sensor": [{"driver": "simulated", "objects": [3303, 3304], "interval": 5.0}],
    }  # fmt: skip
    for key, value in extra.items():
        data[key] = value
    return parse_config(data, "<integration>")


@dataclass
class Rig:
    server: TestServer
    client: Client
    clock: FakeClock

    @property
    def sensor(self) -> SimulatedSensor:
        sensor = self.client.samplers[0].sensor
        assert isinstance(sensor, SimulatedSensor)
        return sensor

    async def sample(self, **values: float) -> None:
        """Set the simulated sensor's values and let one sampling period pass."""
        for kind, value in values.items():
            self.sensor.set_value(kind, value)
        await self.client.samplers[0].sample_once()


@contextlib.asynccontextmanager
async def rig(register: bool = True, **config_extra: Any) -> AsyncIterator[Rig]:
    """Start the test server and a client registered to it (unless ``register`` is False)."""
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    clock = FakeClock()
    state_dir = tempfile.mkdtemp(prefix="lwm2md-it-")
    config_extra.setdefault("state_dir", state_dir)
    client = Client(make_config(server.uri, **config_extra), simulate=True, clock=clock, run_blocking=inline)
    try:
        await client.start()
        if register:
            await server.wait_registered(EP)
        yield Rig(server, client, clock)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
