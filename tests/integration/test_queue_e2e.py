"""Queue mode end to end: the real client, real sockets on loopback, the test server, a FakeClock.

Awake windows, pmax and lifetimes run on the fake clock; every datagram is
real. :class:`Wire` records what reaches a test server's socket, in order,
so "the Update came first" is checked on the wire rather than inferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiocoap import Message

from lwm2md import codec
from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.queue import QueueController
from lwm2md.engine.registration import State
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import Record
from lwm2md.testing import TestServer
from lwm2md.transport.dtls import DtlsSession
from tests.integration.harness import EP, inline, make_config, run, until
from tests.integration.test_dtls_e2e import FAST_COAP, IDENTITY, KEY, start_psk_server

WINDOW = 93.0  # MAX_TRANSMIT_WAIT with the default [coap] parameters
TEMP = "/3303/0/5700"
CATALOG = Catalog.builtin()


class Wire:
    """Every message that reaches ``server``'s socket, in arrival order (a spy on its message manager)."""

    def __init__(self, server: TestServer) -> None:
        manager = server._context.request_interfaces[0].token_interface
        original = manager.dispatch_message
        self.messages: list[Message] = []

        def spy(message: Message) -> None:
            self.messages.append(message)
            original(message)

        manager.dispatch_message = spy

    def mark(self) -> int:
        return len(self.messages)

    def since(self, mark: int) -> list[str]:
        """``update``, ``register``, ``send`` or ``notify <value>`` for each message after ``mark``."""
        out: list[str] = []
        for msg in self.messages[mark:]:
            path = tuple(msg.opt.uri_path)
            if msg.code.is_request() and path[:1] == ("rd",):
                kind = "update" if str(msg.code) == "POST" else "delete"
                out.append("register" if path == ("rd",) else kind)
            elif msg.code.is_request() and path == ("dp",):
                out.append("send")
            elif msg.code.is_response() and msg.opt.observe is not None:
                out.append(f"notify {notified(msg)[0].value!s}")
        return out

    def notifications(self, mark: int = 0) -> list[Message]:
        return [m for m in self.messages[mark:] if m.code.is_response() and m.opt.observe is not None]


def notified(msg: Message) -> list[Record]:
    fmt = int(msg.opt.content_format) if msg.opt.content_format is not None else ContentFormat.TEXT
    return codec.decode(fmt, bytes(msg.payload), Path.parse(TEMP), CATALOG.resource)


@dataclass
class QRig:
    servers: list[TestServer]
    client: Client
    clock: FakeClock
    wires: list[Wire]

    @property
    def server(self) -> TestServer:
        return self.servers[0]

    @property
    def wire(self) -> Wire:
        return self.wires[0]

    @property
    def queue(self) -> QueueController:
        assert self.client.queue is not None
        return self.client.queue

    def temperature(self, *values: float) -> None:
        """Set the simulated temperature to each value in turn, sampling synchronously (no await between)."""
        sampler = self.client.samplers[0]
        for value in values:
            sampler.sensor.set_value("temperature", value)  # type: ignore[attr-defined]
            sampler.sample_now()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await until(predicate, timeout)

    async def awake(self, ssid: int = 1) -> None:
        """Wait until the client has the answer to the wake-up Update (the server saw it earlier)."""
        await self.until(lambda: not self.queue.asleep(ssid))


@contextlib.asynccontextmanager
async def queue_rig(
    *bindings: str, version: str = "1.1", config: dict[str, Any] | None = None, **server_extra: Any
) -> AsyncIterator[QRig]:
    """One test server per binding (short IDs 1, 2, ...), a client registered to all of them.

    ``server_extra`` goes into every ``[[server]]`` table, ``config`` into the top level.
    """
    bindings = bindings or ("UQ",)
    servers = [await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
               for _ in bindings]  # fmt: skip
    tables = [{"uri": s.uri, "short_id": i + 1, "lifetime": 300, "binding": b, "lwm2m_version": version,
               **server_extra} for i, (s, b) in enumerate(zip(servers, bindings, strict=True))]  # fmt: skip
    state_dir = tempfile.mkdtemp(prefix="lwm2md-it-")
    client = Client(make_config(servers[0].uri, state_dir, server=tables, **(config or {})), simulate=True,
                    clock=(clock := FakeClock()), run_blocking=inline)  # fmt: skip
    rig = QRig(servers, client, clock, [Wire(s) for s in servers])
    try:
        client.samplers[0].sensor.set_value("temperature", 20.0)  # type: ignore[attr-defined]
        await client.start()
        for server in servers:
            await server.wait_registered(EP)
            await server.wait_event("register", endpoint=EP)
        await rig.until(lambda: all(reg.state is State.REGISTERED for reg in client.registrations.values()))
        yield rig
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        for server in rig.servers:
            await server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


async def refused(port: int) -> bool:
    """True when a datagram to ``port`` is refused (ICMP port unreachable: nothing is bound there).

    An open lwm2md socket never answers a stranger, so a silent port is open.
    """
    loop = asyncio.get_running_loop()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.setblocking(False)
    try:
        probe.connect(("127.0.0.1", port))
        probe.send(b"\x40\x01\x12\x34")  # CON GET, no token
        await asyncio.wait_for(loop.sock_recv(probe, 64), 0.5)
    except ConnectionRefusedError:
        return True
    except TimeoutError:
        return False
    finally:
        probe.close()
    raise AssertionError("a stranger got an answer")


# -- registration parameters ----------------------------------------------------------


@pytest.mark.parametrize(("version", "binding", "expected"), [
    ("1.0", "UQ", {"b": "UQ"}),
    ("1.1", "UQ", {"b": "U", "Q": None}),
])  # fmt: skip
def test_register_announces_queue_mode(version: str, binding: str, expected: dict[str, str | None]) -> None:
    async def scenario() -> None:
        async with queue_rig(binding, version=version) as r:
            reg = r.server.registrations[EP]
            assert reg.queue_mode and reg.lwm2m_version == version
            register = next(m for m in r.wire.messages if tuple(m.opt.uri_path) == ("rd",))
            parts = (q.partition("=") for q in register.opt.uri_query)
            query = {k: (v if sep else None) for k, sep, v in parts}
            assert {k: v for k, v in query.items() if k in ("b", "Q")} == expected
            assert query["lwm2m"] == version

    run(scenario())


# -- sleeping and waking ------------------------------------------------------------------


def test_the_client_sleeps_after_the_awake_window_and_the_socket_really_closes() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ") as r:
            port = r.client.endpoint.local_port
            await r.clock.advance(WINDOW - 1)
            assert r.client.endpoint.udp_open and not r.queue.asleep(1)
            assert r.queue.online_reasons(1) == ["awake window, 1 s left"]
            assert not await refused(port), "open: strangers are ignored, not refused"
            await r.clock.advance(1)
            assert r.queue.asleep(1) and r.queue.online_reasons(1) == []
            assert r.client.status().endswith(", asleep")
            assert not r.client.endpoint.udp_open
            assert await refused(port), "nothing is bound to the port any more"
            # and the port is really free: anyone may bind it now
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taker:
                taker.bind(("::", port))

    run(scenario())


def test_a_notification_while_asleep_is_held_and_follows_the_wake_up_update() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ") as r:
            obs = await r.server.observe(EP, TEMP)
            assert obs.first.value == 20.0
            await r.clock.advance(WINDOW)
            assert not r.client.endpoint.udp_open
            mark = r.wire.mark()
            r.temperature(25.0)  # the observe engine emits now; the connection is asleep
            assert [h.result[0].value for h in r.queue.held(1)] == [25.0]  # type: ignore[index]
            assert (await obs.next()).value == 25.0, "the same observation (token) goes on after the wake"
            assert r.wire.since(mark) == ["update", "notify 25.0"]
            assert r.client.endpoint.udp_open and not r.queue.asleep(1) and not r.queue.held(1)
            update = await r.server.wait_event("update", endpoint=EP)
            assert update.registration is not None
            assert update.registration.remote == ("127.0.0.1", r.client.endpoint.local_port)
            await r.clock.advance(WINDOW)  # awake for a window after the delivery, then asleep again
            assert r.queue.asleep(1) and not r.client.endpoint.udp_open

    run(scenario())


@pytest.mark.parametrize(("storing", "expected"), [
    (True, ["update", "notify 21.0", "notify 22.0", "notify 23.0"]),
    (False, ["update", "notify 23.0"]),
])  # fmt: skip
def test_notification_storing_decides_what_is_held(storing: bool, expected: list[str]) -> None:
    async def scenario() -> None:
        async with queue_rig("UQ", notification_storing=storing) as r:
            obs = await r.server.observe(EP, TEMP, accept=ContentFormat.SENML_JSON)
            await r.clock.advance(WINDOW)
            mark = r.wire.mark()
            r.temperature(21.0, 22.0, 23.0)  # three notifications before the wake-up Update can go out
            assert len(r.queue.held(1)) == (3 if storing else 1)
            await obs.next()
            await r.until(lambda: r.wire.since(mark)[-1:] == ["notify 23.0"])
            assert r.wire.since(mark) == expected
            stamps = {notified(m)[0].time for m in r.wire.notifications(mark)}
            assert stamps == {r.clock.wall()}, "held notifications carry the time they were taken"

    run(scenario())


def test_pmax_wakes_the_client() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ") as r:
            await r.server.write_attributes(EP, TEMP, pmax=200)
            obs = await r.server.observe(EP, TEMP)
            await r.clock.advance(WINDOW)
            assert r.queue.asleep(1)
            mark = r.wire.mark()
            await r.clock.advance(200 - WINDOW)  # pmax, with the value unchanged
            assert (await obs.next()).value == 20.0
            assert r.wire.since(mark) == ["update", "notify 20.0"]

    run(scenario())


def test_the_registration_update_timer_wakes_the_client() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ") as r:
            await r.clock.advance(WINDOW)
            assert not r.client.endpoint.udp_open
            mark = r.wire.mark()
            await r.clock.advance(300 - WINDOW - WINDOW)  # lifetime 300: Update due 93 s before the end
            await r.server.wait_event("update", endpoint=EP)
            await r.awake()
            assert r.wire.since(mark) == ["update"]
            assert r.client.endpoint.udp_open
            assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1", "reachable while awake"
            await r.clock.advance(WINDOW)
            assert not r.client.endpoint.udp_open

    run(scenario())


def test_wake_trigger_and_send_wake_the_client_with_the_update_first() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ", config={"send": {"paths": [TEMP], "interval": 1e6}}) as r:
            await r.clock.advance(WINDOW)
            mark = r.wire.mark()
            r.client.wake(1)
            await r.server.wait_event("update", endpoint=EP)
            await r.awake()
            assert r.client.endpoint.udp_open
            await r.clock.advance(WINDOW)
            assert r.queue.asleep(1) and not r.client.endpoint.udp_open
            assert r.client.sender is not None
            assert await r.client.sender.send_once(), "the server answered the Send with 2.04"
            assert r.wire.since(mark) == ["update", "update", "send"]
            event = await r.server.wait_event("send", endpoint=EP)
            assert event.records is not None and event.records[0].value == 20.0

    run(scenario())


def test_a_server_without_q_keeps_the_shared_socket_open() -> None:
    async def scenario() -> None:
        async with queue_rig("U", "UQ", lifetime=3600) as r:  # no periodic Update in the way
            await r.clock.advance(WINDOW * 2)
            assert r.queue.asleep(2), "the UQ server sleeps"
            assert not r.queue.asleep(1)
            assert r.queue.online_reasons(1) == ["not in queue mode (no Q in the binding)"]
            assert r.client.endpoint.udp_open, "the U server still needs the socket"
            assert (await r.servers[0].read(EP, "/3/0/1")).payload == b"IT-1"
            # the sleeping UQ server's notification is held and follows an Update, socket open or not
            obs = await r.servers[1].observe(EP, TEMP)  # a request from it wakes it ...
            await r.clock.advance(WINDOW)
            assert r.queue.asleep(2)  # ... until its window ends again
            mark = r.wires[1].mark()
            r.temperature(30.0)
            assert (await obs.next()).value == 30.0
            assert r.wires[1].since(mark) == ["update", "notify 30.0"]
            assert r.client.endpoint.udp_open

    run(scenario())


def test_a_taken_port_reopens_on_a_new_one_and_the_update_tells_the_server() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ") as r:
            obs = await r.server.observe(EP, TEMP)
            old = r.client.endpoint.local_port
            await r.clock.advance(WINDOW)
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taker:
                taker.bind(("::", old))  # someone took the port while the client slept
                mark = r.wire.mark()
                r.temperature(26.0)
                update = await r.server.wait_event("update", endpoint=EP)
                new = r.client.endpoint.local_port
                assert new != old
                assert update.registration is not None and update.registration.remote == ("127.0.0.1", new)
                await r.until(lambda: bool(r.wire.notifications(mark)))
                (notification,) = r.wire.notifications(mark)
                assert notification.token == obs.token, "the held notification keeps the observation's token"
                assert notification.remote.hostinfo == f"127.0.0.1:{new}"
                # the peer filter follows: the server reaches the client at its new address
                assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1"

    run(scenario())


def test_stop_while_asleep_reopens_the_socket_to_de_register() -> None:
    async def scenario() -> None:
        async with queue_rig("UQ", awake_window=10.0) as r:
            await r.clock.advance(10)
            assert not r.client.endpoint.udp_open
            await r.client.stop()
            event = await r.server.wait_event("deregister", endpoint=EP)
            assert event.reason == "deregister"

    run(scenario())


# -- DTLS -----------------------------------------------------------------------------------


def test_dtls_server_in_queue_mode_closes_its_session_and_handshakes_again_on_wake() -> None:
    async def scenario() -> None:
        server = await start_psk_server()
        table = {"uri": server.uri, "short_id": 1, "lifetime": 300, "binding": "UQ",
                 "psk_identity": IDENTITY.decode(), "psk_key": KEY.hex()}  # fmt: skip
        clock = FakeClock()
        client = Client(make_config(server.uri, server=[table], coap=FAST_COAP), simulate=True, clock=clock,
                        run_blocking=inline)  # fmt: skip
        try:
            await client.start()
            await server.wait_registered(EP)
            await until(lambda: client.registrations[1].state is State.REGISTERED)
            requester: Any = client.registrations[1].requester  # the queue wrapper shows its session
            before = requester.session
            assert isinstance(before, DtlsSession) and before.established
            await server.observe(EP, TEMP)
            assert client.observe.observations(1)
            window = 0.2 * 3 * 1.5  # MAX_TRANSMIT_WAIT of FAST_COAP
            await clock.advance(window)
            assert before.closed and before.close_reason == "queue mode: asleep"
            assert not client.observe.observations(1), "observations end with their DTLS session"
            assert not client.endpoint.udp_open, "no server uses the UDP socket and every server sleeps"
            client.wake(1)
            await server.wait_event("update", endpoint=EP)
            assert client.queue is not None
            await until(lambda: not client.queue.asleep(1))  # type: ignore[union-attr]
            after = requester.session
            assert isinstance(after, DtlsSession) and after is not before and after.established
            assert (await server.read(EP, "/3/0/1")).payload == b"IT-1"
            await clock.advance(window)
            assert after.closed
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await client.stop()
            await server.stop()

    run(scenario())
