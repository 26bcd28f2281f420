"""GPIO objects end to end: a real Client with mock pins, driven by the test server over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gpiozero.pins.mock import MockFactory

from lwm2md.app import Client
from lwm2md.engine.clock import FakeClock
from lwm2md.objects.digital import GpioInstance, build_gpio_instance
from lwm2md.testing import TestServer
from tests.integration.harness import EP, make_config, run

DENIED_PIN = 22


class DenyingFactory(MockFactory):  # type: ignore[misc]
    """Mock pins, except that the denied ones fail like a gpiochip without permission."""

    def __init__(self, denied: set[int]) -> None:
        super().__init__()
        self.denied = denied

    def pin(self, name: Any, pin_class: Any = None, **kwargs: Any) -> Any:
        if name in self.denied:
            raise PermissionError(13, "Permission denied", "/dev/gpiochip0")
        return super().pin(name, pin_class, **kwargs)


@dataclass
class GpioRig:
    server: TestServer
    client: Client
    clock: FakeClock
    factory: MockFactory
    gpios: list[GpioInstance]

    def pin(self, number: int) -> Any:
        """The mock pin ``number``."""
        return self.factory.pin(number)


# /3200/0 door (pin 17, 20 ms debounce), /3201/0 relay (18), /3347/0 button (5), /3200/1 denied (22).
GPIOS: list[dict[str, Any]] = [
    {"kind": "input", "pin": 17, "debounce_ms": 20, "application_type": "door"},
    {"kind": "output", "pin": 18},
    {"kind": "button", "pin": 5},
    {"kind": "input", "pin": DENIED_PIN},
]


@contextlib.asynccontextmanager
async def gpio_rig() -> AsyncIterator[GpioRig]:
    """The test server and a registered client whose tree also holds :data:`GPIOS`."""
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    clock = FakeClock()
    factory = DenyingFactory({DENIED_PIN})
    client = Client(make_config(server.uri), simulate=True, clock=clock)
    gpios = [build_gpio_instance(client.tree, pin_factory=factory, clock=clock, **spec) for spec in GPIOS]
    try:
        await client.start()
        await server.wait_registered(EP)
        yield GpioRig(server, client, clock, factory, gpios)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await server.stop()
        for gpio in gpios:
            gpio.close()


def test_gpio_objects_are_registered() -> None:
    async def scenario() -> None:
        async with gpio_rig() as r:
            objects = (await r.server.wait_registered(EP)).objects
            for target in ("/3200/0", "/3200/1", "/3201/0", "/3347/0"):
                assert target in objects

    run(scenario())


def test_server_write_drives_the_output_pin() -> None:
    async def scenario() -> None:
        async with gpio_rig() as r:
            assert r.pin(18).state is False
            resp = await r.server.write(EP, "/3201/0/5550", True)
            assert resp.code == "2.04", resp.text
            assert r.pin(18).state is True
            assert (await r.server.read(EP, "/3201/0/5550")).value is True
            await r.server.write(EP, "/3201/0/5551", True)  # inverted polarity
            assert r.pin(18).state is False
            assert (await r.server.write(EP, "/3201/0/5550", False)).code == "2.04"
            assert r.pin(18).state is True

    run(scenario())


def test_an_edge_notifies_an_observer_of_the_counter_once_despite_bounce() -> None:
    async def scenario() -> None:
        async with gpio_rig() as r:
            obs = await r.server.observe(EP, "/3200/0/5501")
            assert obs.active and obs.first.value == 0
            for level in (True, False, True):  # bouncing contact, well within 20 ms
                (r.pin(17).drive_high if level else r.pin(17).drive_low)()
                await r.clock.advance(0.005)
            await r.clock.advance(0.02)
            assert (await obs.next()).value == 1
            with contextlib.suppress(TimeoutError):
                extra = await asyncio.wait_for(obs.notifications.get(), 0.3)
                raise AssertionError(f"bounce produced a second notification {extra.records}")
            assert (await r.server.read(EP, "/3200/0/5500")).value is True

    run(scenario())


def test_a_button_press_increments_the_counter() -> None:
    async def scenario() -> None:
        async with gpio_rig() as r:
            assert (await r.server.read(EP, "/3347/0/5501")).value == 0
            r.pin(5).drive_low()  # pressed: pulled-up pin shorted to ground
            await r.clock.settle()
            assert (await r.server.read(EP, "/3347/0/5500")).value is True
            r.pin(5).drive_high()
            await r.clock.settle()
            assert (await r.server.read(EP, "/3347/0/5501")).value == 1
            assert (await r.server.read(EP, "/3347/0/5500")).value is False

    run(scenario())


def test_a_pin_that_failed_to_open_errors_alone() -> None:
    async def scenario() -> None:
        async with gpio_rig() as r:
            resp = await r.server.read(EP, "/3200/1/5500")
            assert resp.code == "5.00"
            assert f"GPIO{DENIED_PIN}: cannot open: PermissionError" in resp.text
            assert (await r.server.read(EP, "/3200/0/5500")).code == "2.05"
            assert (await r.server.read(EP, "/3200/0/5750")).value == "door"
            assert (await r.server.read(EP, "/3347/0")).code == "2.05"

    run(scenario())
