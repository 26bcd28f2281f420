"""Notification storing (/1/x/6) end to end: a server that goes away gets every notification, in order.

The real client and the test server on loopback, with a UDP proxy between
them that can drop everything (the server unreachable). The client's timers
run on a FakeClock; :class:`~tests.integration.test_queue_e2e.Wire` records
what reaches the server's socket, so order and timestamps are checked on the
wire, whether they come as notifications or, once their observation is gone,
as a Send.

When a request to a server times out, aiocoap ends every observation of that
server; the transport keeps them running in the observe engine (their
``emit`` raises ``ObservationLost``), so what they produce during the outage
is held and arrives as a Send once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from lwm2md import codec
from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.config import Config
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.notification_store import NOTIFICATIONS_DIR, NotificationStore
from lwm2md.engine.queue import QueueController, max_transmit_wait
from lwm2md.engine.registration import State
from lwm2md.model.path import Path
from lwm2md.testing import TestServer
from tests.integration.harness import EP, inline, make_config, run
from tests.integration.test_queue_e2e import CATALOG, TEMP, Wire, notified, until

FAST_COAP = {"ack_timeout": 0.1, "max_retransmit": 1}  # a lost request fails within 0.5 s
WINDOW = max_transmit_wait(0.1, 1)  # the awake window of a UQ server with FAST_COAP
RETRY_TIMER = 10  # communication_retry_timer of harness.make_config
STORE_DIR = NOTIFICATIONS_DIR


class DropProxy(asyncio.DatagramProtocol):
    """Forwards datagrams between one client and the server; drops every one while ``down``."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.client: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.down = False
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr[:2] == self.server:
            target = self.client
        else:
            self.client = addr[:2]
            target = self.server
        if target is None or self.down:
            self.dropped += 1
            return
        self.transport.sendto(data, target)


@dataclass
class SRig:
    server: TestServer
    proxy: DropProxy
    wire: Wire
    config: Config
    clock: FakeClock
    client: Client

    @property
    def queue(self) -> QueueController:
        assert self.client.queue is not None
        return self.client.queue

    @property
    def store_dir(self) -> str:
        return os.path.join(self.config.state_dir, STORE_DIR)

    def state(self) -> State:
        return self.client.registrations[1].state

    async def start_client(self) -> None:
        """A client (a new one: a restart) on its own fake clock, started against the proxy."""
        self.clock = FakeClock()
        self.client = Client(self.config, simulate=True, clock=self.clock, run_blocking=inline)
        self.client.samplers[0].sensor.set_value("temperature", 20.0)  # type: ignore[attr-defined]
        await self.client.start()

    async def temperatures(self, *values: float) -> list[float]:
        """Each value one (fake) second after the previous; the wall time each was taken."""
        sampler = self.client.samplers[0]
        walls = []
        for value in values:
            await self.clock.advance(1)
            sampler.sensor.set_value("temperature", value)  # type: ignore[attr-defined]
            await sampler.sample_once()
            walls.append(self.clock.wall())
        return walls

    def stored(self) -> list[tuple[object, float | None]]:
        """(value, time) of what is on disk for server 1, read afresh."""
        return [(e.records[0].value, e.records[0].time)
                for e in NotificationStore(self.store_dir, 1000).entries(1)]  # fmt: skip

    def delivered(self, mark: int) -> list[tuple[object, float | None]]:
        """(value, time) of every record that reached the server since ``mark``, notified or sent."""
        out: list[tuple[object, float | None]] = []
        for msg in self.wire.messages[mark:]:
            if msg.code.is_response() and msg.opt.observe is not None:
                records = notified(msg)
            elif msg.code.is_request() and tuple(msg.opt.uri_path) == ("dp",):
                fmt = int(msg.opt.content_format)
                records = codec.decode(fmt, bytes(msg.payload), Path(), CATALOG.resource)
            else:
                continue
            out.extend((rec.value, rec.time) for rec in records)
        return out


@contextlib.asynccontextmanager
async def storing_rig(binding: str = "U") -> AsyncIterator[SRig]:
    """The test server, the proxy in front of it and a client registered through the proxy."""
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    loop = asyncio.get_running_loop()
    transport, proxy = await loop.create_datagram_endpoint(
        lambda: DropProxy(("127.0.0.1", server.port)), local_addr=("127.0.0.1", 0)
    )
    uri = f"coap://127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    state_dir = tempfile.mkdtemp(prefix="lwm2md-storing-")
    table: dict[str, Any] = {"uri": uri, "short_id": 1, "lifetime": 300, "binding": binding,
                             "communication_retry_timer": RETRY_TIMER}  # fmt: skip
    config = make_config(uri, state_dir, server=[table], coap=FAST_COAP, storing={"max_notifications": 50})
    rig = SRig(server, proxy, Wire(server), config, FakeClock(), None)  # type: ignore[arg-type]
    try:
        await rig.start_client()
        await server.wait_registered(EP)
        await until(lambda: rig.state() is State.REGISTERED)
        yield rig
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await rig.client.stop()
        transport.close()
        await server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


SENT = [21.0, 22.5, 23.0, 24.25, 25.0]


def test_an_unreachable_sleeping_server_gets_every_notification_in_order_with_their_times() -> None:
    async def scenario() -> None:
        async with storing_rig("UQ") as r:
            await r.server.observe(EP, TEMP, accept=ContentFormat.SENML_CBOR)
            await r.clock.advance(WINDOW)
            assert r.queue.asleep(1)
            r.proxy.down = True
            mark = r.wire.mark()
            walls = await r.temperatures(*SENT)  # the first wakes the client: its Update is lost
            assert r.stored() == list(zip(SENT, walls, strict=True)), "held on disk, with their times"
            await until(lambda: r.state() is State.WAITING_RETRY)  # the Update and a Register got no answer
            assert r.client.observe.observations(1), "kept in the engine through the outage"
            r.proxy.down = False
            await r.clock.advance(RETRY_TIMER)  # the next Register goes through
            await r.server.wait_event("send", endpoint=EP)
            assert r.wire.since(mark) == ["register", "send"]
            assert r.delivered(mark) == list(zip(SENT, walls, strict=True))
            await until(lambda: r.stored() == [] and r.queue.held(1) == [])
            assert not os.path.exists(os.path.join(r.store_dir, "notifications-1.jsonl"))

    run(scenario())


def test_a_server_refusing_registrations_for_a_while_gets_every_notification_on_its_observation() -> None:
    async def scenario() -> None:
        async with storing_rig("U") as r:
            obs = await r.server.observe(EP, TEMP, accept=ContentFormat.SENML_CBOR)
            r.server.forget(EP)  # the server restarted: the Update gets 4.04 ...
            r.server.set_reject_registration("5.03")  # ... and the Register 5.03 for now
            r.client.request_update(1)
            await until(lambda: r.state() is State.WAITING_RETRY)
            mark = r.wire.mark()
            walls = await r.temperatures(*SENT)
            assert r.wire.since(mark) == [], "nothing goes out while not registered"
            assert r.stored() == list(zip(SENT, walls, strict=True))
            r.server.set_reject_registration(None)
            await r.clock.advance(RETRY_TIMER)
            await until(lambda: len(r.wire.notifications(mark)) == len(SENT))
            assert r.wire.since(mark) == ["register", *(f"notify {v}" for v in SENT)]
            assert r.delivered(mark) == list(zip(SENT, walls, strict=True))
            assert all(m.token == obs.token for m in r.wire.notifications(mark)), "on the same observation"
            await until(lambda: r.stored() == [])

    run(scenario())


def test_a_server_that_stops_answering_gets_every_notification_in_order_with_their_times() -> None:
    async def scenario() -> None:
        async with storing_rig("U") as r:
            await r.server.observe(EP, TEMP, accept=ContentFormat.SENML_CBOR)
            r.proxy.down = True
            r.client.request_update(1)  # the Update finds out
            await until(lambda: r.state() is State.WAITING_RETRY)
            mark = r.wire.mark()
            walls = await r.temperatures(*SENT)
            assert r.stored() == list(zip(SENT, walls, strict=True))
            r.proxy.down = False
            await r.clock.advance(RETRY_TIMER)
            await until(lambda: len(r.delivered(mark)) >= len(SENT))
            assert r.delivered(mark) == list(zip(SENT, walls, strict=True))
            await until(lambda: r.stored() == [])

    run(scenario())


def test_notifications_stored_before_a_restart_arrive_as_a_send_with_their_times() -> None:
    async def scenario() -> None:
        async with storing_rig("UQ") as r:
            await r.server.observe(EP, TEMP, accept=ContentFormat.SENML_CBOR)
            await r.clock.advance(WINDOW)
            r.proxy.down = True
            sent = [21.0, 22.0, 23.5]
            walls = await r.temperatures(*sent)
            await r.client.stop(deregister=False)  # what a crash or power cut does to the registration
            assert r.stored() == list(zip(sent, walls, strict=True)), "still on disk"
            r.proxy.down = False
            mark = r.wire.mark()
            await r.start_client()
            send = await r.server.wait_event("send", endpoint=EP)
            assert send.records is not None
            assert [(rec.path, rec.value, rec.time) for rec in send.records] == [
                (Path.parse(TEMP), v, t) for v, t in zip(sent, walls, strict=True)
            ]
            assert r.wire.since(mark) == ["update", "send"], "the resumed registration, then the Send"
            await until(lambda: r.stored() == [])

    run(scenario())
