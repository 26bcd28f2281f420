"""The SMS binding end to end: the real client, its fake modem on the fake SMS network, the test server.

The client runs with ``--simulate`` and a ``[modem]`` table, so its AT
channel talks to a :class:`FakeModem`; that modem is attached to a
:class:`SmsNetwork` with the client's number. The test server is the
in-repo :class:`TestServer` (registering over UDP) plus an SMS transport of
its own (:func:`add_sms_transport`): an :class:`SmsInterface` fed by an
:class:`SmsEndpoint` on the same network. A test points the server's
registration at the client's SMS number (binding US: register over UDP,
the server's requests and the answers go by SMS).

The SMS binding is wired by ``Client._start_sms_binding(numbers=...)``, as
``[modem] sms`` and ``[[server]] sms_number`` will do once the config has
them. Timers run on a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.drivers.fake.sms_network import SmsEndpoint, SmsNetwork
from lwm2md.engine.clock import FakeClock
from lwm2md.testing import TestServer
from lwm2md.transport.sms import SmsInterface, SmsRemote
from tests.integration.harness import EP, Rig, inline, make_config, run, until

CLIENT_NUMBER = "+491701234567"
SERVER_NUMBER = "+491709999999"


async def add_sms_transport(server: TestServer, endpoint: SmsEndpoint) -> SmsInterface:
    """Give the test server's aiocoap context an SMS message interface on ``endpoint`` (test tooling)."""
    loop = asyncio.get_running_loop()
    box: list[SmsInterface] = []

    async def make(mman: Any) -> SmsInterface:
        interface = SmsInterface(mman, lambda to, data: endpoint.send(to, data), own_number=endpoint.msisdn)
        box.append(interface)
        return interface

    await server._context._append_tokenmanaged_messagemanaged_transport(make)
    interface = box[0]
    endpoint.on_receive(lambda source, payload: loop.call_soon_threadsafe(interface.receive, source, payload))
    return interface


class SmsRig(Rig):
    network: SmsNetwork
    server_sms: SmsInterface
    server_endpoint: SmsEndpoint

    def over_sms(self) -> SmsRemote:
        """Point the server's registration of EP at the client's SMS number (DM requests go by SMS)."""
        remote = self.server_sms.remote(CLIENT_NUMBER)
        self.server.registrations[EP] = replace(self.server.registrations[EP], coap_remote=remote)
        return remote

    def sms_to(self, number: str) -> int:
        return sum(1 for r in self.network.records if r.destination == number and r.fate == "delivered")


@contextlib.asynccontextmanager
async def sms_rig(numbers: dict[int, str] | None = None, server_table: dict[str, Any] | None = None,
                  **config_extra: Any) -> AsyncIterator[SmsRig]:  # fmt: skip
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    if server_table is not None:
        config_extra["server"] = [{"uri": server.uri, **server_table}]
    if numbers is None:  # configured the way an operator would: start() starts the binding
        config_extra.setdefault("server", [{"uri": server.uri, "short_id": 1, "binding": "US"}])
        for table in config_extra["server"]:
            table.setdefault("sms_number", SERVER_NUMBER)
        config_extra.setdefault("modem", {"port": "/dev/ttyFAKE", "interval": 3600.0, "sms": True,
                                          "own_number": CLIENT_NUMBER})  # fmt: skip
    network = SmsNetwork()
    server_endpoint = network.endpoint(SERVER_NUMBER)
    server_sms = await add_sms_transport(server, server_endpoint)
    clock = FakeClock()
    config_extra.setdefault("modem", {"port": "/dev/ttyFAKE", "interval": 3600.0})
    client = Client(make_config(server.uri, **config_extra), simulate=True, clock=clock, run_blocking=inline)
    assert client.fake_modem is not None
    network.attach(client.fake_modem, CLIENT_NUMBER)
    rig = SmsRig(server, client, clock)
    rig.network, rig.server_sms, rig.server_endpoint = network, server_sms, server_endpoint
    try:
        await client.start()
        if numbers is not None:
            await client._start_sms_binding(numbers)
        await server.wait_registered(EP)
        yield rig
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await server.stop()
        network.close()


def test_server_reads_device_over_sms_in_blocks_and_the_answer_comes_back_by_sms() -> None:
    async def scenario() -> None:
        async with sms_rig() as r:
            binding = r.client.sms_binding
            assert binding is not None and binding.numbers == {1: SERVER_NUMBER}
            reg = r.server.registrations[EP]
            assert (reg.binding, reg.sms) == ("US", CLIENT_NUMBER), "Register says where SMS reaches us"
            r.over_sms()
            response = await r.server.read(EP, "/3/0")
            assert response.code == "2.05"
            assert response.records is not None
            values = {str(rec.path): rec.value for rec in response.records}
            assert values["/3/0/0"] == "Test Inc" and values["/3/0/1"] == "IT-1"
            assert isinstance(response.message.remote, SmsRemote)
            assert len(response.payload) > 64, "the answer is larger than one block"
            answers = [rec for rec in r.network.records if rec.destination == SERVER_NUMBER]
            assert len(answers) >= 2, "the answer came back in several SMS"
            assert all(rec.concat is None for rec in answers), "one 64-byte block per SMS"
            assert binding.interface.received >= 2 and binding.interface.sent >= 2

    run(scenario())


def test_write_over_sms_changes_the_lifetime_and_the_update_goes_over_udp() -> None:
    async def scenario() -> None:
        async with sms_rig() as r:
            await r.server.wait_event("register", endpoint=EP)
            r.over_sms()
            assert (await r.server.write(EP, "/1/0/1", 120)).code == "2.04"
            await r.clock.settle()
            update = await r.server.wait_event("update", endpoint=EP)
            assert update.params.get("lt") == "120"
            assert update.registration is not None
            assert not isinstance(update.registration.coap_remote, SmsRemote)

    run(scenario())


def test_observation_over_sms_notifies_over_sms() -> None:
    async def scenario() -> None:
        async with sms_rig() as r:
            await r.sample(temperature=20.0)
            r.over_sms()
            obs = await r.server.observe(EP, "/3303/0/5700")
            assert obs.active and obs.first.value == 20.0
            await r.sample(temperature=23.5)
            notification = await obs.next(timeout=10)
            assert notification.value == 23.5
            assert isinstance(notification.message.remote, SmsRemote)

    run(scenario())


def test_a_long_write_goes_in_concatenated_sms_or_blocks() -> None:
    async def scenario() -> None:
        async with sms_rig() as r:
            r.over_sms()
            # a raw 150-byte payload from the server: aiocoap splits it into 64-byte Block1 blocks
            text = "x" * 150
            response = await r.server.write(EP, "/3/0/14", text)  # UTC Offset: refused, but assembled first
            assert response.code in ("2.04", "4.00", "4.05")
            blocks = [rec for rec in r.network.records if rec.destination == CLIENT_NUMBER]
            assert len(blocks) >= 3, "150 bytes went as at least three blocks"

    run(scenario())


def test_unknown_number_is_not_answered() -> None:
    async def scenario() -> None:
        async with sms_rig() as r:
            stranger = r.network.endpoint("+491705555555")
            get_3_0_0 = b"\x41\x01\x12\x34\x01\xb13\x010\x010"  # CON GET /3/0/0, token 01
            stranger.send(CLIENT_NUMBER, get_3_0_0)
            await asyncio.get_running_loop().run_in_executor(None, r.network.settle)
            await asyncio.sleep(0.5)
            assert stranger.received == []

    run(scenario())


def test_uqs_server_sms_executing_update_trigger_wakes_the_client_and_the_update_goes_over_udp() -> None:
    async def scenario() -> None:
        server = {"short_id": 1, "lifetime": 300, "binding": "UQS",
                  "awake_window": 5.0, "communication_retry_timer": 10}  # fmt: skip
        async with sms_rig(server_table=server) as r:
            first = await r.server.wait_event("register", endpoint=EP)
            assert first.registration is not None and first.registration.queue_mode
            await r.clock.advance(6.0)
            await until(lambda: not r.client.endpoint.udp_open)
            r.over_sms()
            response = await r.server.execute(EP, "/1/0/8")
            assert response.code == "2.04"
            assert isinstance(response.message.remote, SmsRemote), "the answer came by SMS"
            await r.clock.settle()
            update = await r.server.wait_event("update", endpoint=EP)
            assert update.registration is not None
            assert not isinstance(update.registration.coap_remote, SmsRemote), "the Update went over UDP"
            assert r.client.endpoint.udp_open

    run(scenario())


def test_sms_only_server_register_read_and_write_over_sms() -> None:
    """An sms:// server (binding S): Register, the server's Read and Write, all by SMS, no UDP."""

    async def scenario() -> None:
        table = {"uri": "sms://" + SERVER_NUMBER, "short_id": 1, "binding": "S"}
        async with sms_rig(server_table=table) as r:
            reg = r.server.registrations[EP]
            assert (reg.binding, reg.sms) == ("S", CLIENT_NUMBER)
            r.over_sms()
            assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1"
            written = await r.server.write(EP, "/3/0/15", "Europe/Rome", fmt=ContentFormat.TEXT)
            assert written.code == "2.04"
            assert (await r.server.read(EP, "/3/0/15")).payload == b"Europe/Rome"
            assert r.sms_to(SERVER_NUMBER) >= 4, "every answer went back by SMS"
            assert r.client.endpoint.peers.ssid_for(("127.0.0.1", r.server.port)) is None

    run(scenario())
