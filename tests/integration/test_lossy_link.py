"""20 % packet loss both ways: registration and confirmable notifications still complete.

A small UDP proxy sits between the client and the test server and drops
every datagram for which a seeded random draw says so, in each direction
independently. CoAP's retransmissions (with a short ACK_TIMEOUT, so the
test is quick) must carry everything through.
"""

from __future__ import annotations

import asyncio
import random
import tempfile

from lwm2md.app import Client
from lwm2md.engine.clock import FakeClock
from lwm2md.testing import TestServer
from tests.integration.harness import EP, inline, make_config, run

LOSS = 0.2


class LossyProxy(asyncio.DatagramProtocol):
    """Forwards between one client and the server, dropping LOSS of the datagrams each way."""

    def __init__(self, server: tuple[str, int], seed: int) -> None:
        self.server = server
        self.client: tuple[str, int] | None = None
        self.rng = {"up": random.Random(seed), "down": random.Random(seed + 1)}
        self.sent = {"up": 0, "down": 0}
        self.dropped = {"up": 0, "down": 0}
        self.transport: asyncio.DatagramTransport | None = None
        self.lossy = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr[:2] == self.server:
            direction, target = "down", self.client
        else:
            self.client = addr[:2]
            direction, target = "up", self.server
        if target is None:
            return
        if self.lossy and self.rng[direction].random() < LOSS:
            self.dropped[direction] += 1
            return
        self.sent[direction] += 1
        self.transport.sendto(data, target)


def test_registration_and_confirmable_notifications_survive_20_percent_loss() -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        loop = asyncio.get_running_loop()
        transport, proxy = await loop.create_datagram_endpoint(
            lambda: LossyProxy(("127.0.0.1", server.port), seed=5), local_addr=("127.0.0.1", 0)
        )
        proxy_port = transport.get_extra_info("sockname")[1]
        config = make_config(
            f"coap://127.0.0.1:{proxy_port}",
            state_dir=tempfile.mkdtemp(prefix="lwm2md-lossy-"),
            coap={"ack_timeout": 0.05, "max_retransmit": 8, "confirmable_notifications": True},
        )
        clock = FakeClock()
        client = Client(config, simulate=True, clock=clock, run_blocking=inline)
        try:
            await client.start()
            await server.wait_registered(EP, timeout=20)
            sampler = client.samplers[0]
            sensor = sampler.sensor
            # The test server's own requests retransmit on aiocoap's default 2 s timer: set the
            # observation up over a clean link, then lose packets again for the notifications.
            proxy.lossy = False
            await server.write_attributes(EP, "/3303/0/5700", pmin=0, timeout=30)
            obs = await server.observe(EP, "/3303/0/5700", timeout=30)
            assert obs.active
            proxy.lossy = True
            sent = [20.0 + i / 10 for i in range(1, 21)]
            received: list[float] = []
            for value in sent:
                sensor.set_value("temperature", value)  # type: ignore[attr-defined]
                await sampler.sample_once()
            async with asyncio.timeout(25):
                while len(received) < len(sent):
                    note = await obs.next(timeout=25)
                    received.append(float(note.value))  # type: ignore[arg-type]
            assert received == sent, "every confirmable notification arrives, in order"
            assert proxy.dropped["up"] > 0 and proxy.dropped["down"] > 0, proxy.dropped
        finally:
            await client.stop(timeout=5)
            transport.close()
            await server.stop()

    run(scenario())
