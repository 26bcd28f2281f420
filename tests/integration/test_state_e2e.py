"""Server-written values survive a restart of the client (same state directory)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tempfile

from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.registration import State
from lwm2md.testing import TestServer
from tests.integration.harness import EP, make_config, run


async def start_client(server: TestServer, state_dir: str) -> Client:
    client = Client(make_config(server.uri, state_dir=state_dir), simulate=True, clock=FakeClock())
    await client.start()
    await server.wait_registered(EP)
    async with asyncio.timeout(10):  # the client side has seen the 2.01 (and stored where it is)
        while client.registrations[1].state is not State.REGISTERED:
            await asyncio.sleep(0.01)
    return client


def test_written_values_come_back_after_restart() -> None:
    async def scenario() -> None:
        state_dir = tempfile.mkdtemp(prefix="lwm2md-state-")
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        try:
            client = await start_client(server, state_dir)
            assert (await server.write(EP, "/3303/0/5750", "boiler", fmt=ContentFormat.TEXT)).code == "2.04"
            assert (await server.write(EP, "/3/0/15", "Europe/Oslo", fmt=ContentFormat.TEXT)).code == "2.04"
            refused = await server.write(EP, "/3/0/0", "x", fmt=ContentFormat.TEXT)
            assert refused.code == "4.05"
            await client.stop()
            path = os.path.join(state_dir, "written.json")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            with open(path) as fh:
                stored = json.load(fh)["content"]["values"]
            assert set(stored) == {"/3303/0/5750", "/3/0/15"}

            server.forget(EP)
            client = await start_client(server, state_dir)
            assert (await server.read(EP, "/3303/0/5750")).payload == b"boiler"
            assert (await server.read(EP, "/3/0/15")).payload == b"Europe/Oslo"
            await client.stop()

            with open(path, "w") as fh:
                fh.write("{broken")
            server.forget(EP)
            client = await start_client(server, state_dir)  # a corrupt file is set aside, not fatal
            assert (await server.read(EP, "/3/0/15")).payload != b"Europe/Oslo"
            assert any(name.startswith("written.json.bad-") for name in os.listdir(state_dir))
            await client.stop()
        finally:
            await server.stop()

    run(scenario())


def test_restart_resumes_the_registration_with_an_update() -> None:
    async def scenario() -> None:
        state_dir = tempfile.mkdtemp(prefix="lwm2md-state-")
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        try:
            client = await start_client(server, state_dir)
            location = server.registrations[EP].location
            await client.stop(deregister=False)  # a crash or power cut: nothing said to the server
            while not server.events.empty():
                server.events.get_nowait()

            client = Client(make_config(server.uri, state_dir=state_dir), simulate=True, clock=FakeClock())
            await client.start()
            update = await server.wait_event("update", endpoint=EP)
            assert update.registration is not None and update.registration.location == location
            kinds = []
            while not server.events.empty():
                kinds.append(server.events.get_nowait().kind)
            assert "register" not in kinds, kinds
            assert (await server.read(EP, "/3/0/1")).payload == b"IT-1"
            await client.stop(deregister=False)

            server.forget(EP)  # the server lost it meanwhile: the Update gets 4.04, then a fresh Register
            client = await start_client(server, state_dir)
            assert server.registrations[EP].location != location
            await client.stop()  # a clean stop De-registers and forgets the stored registration
            with open(os.path.join(state_dir, "registrations.json")) as fh:
                assert json.load(fh)["content"]["servers"] == {}
        finally:
            await server.stop()

    run(scenario())


def test_notification_attributes_come_back_after_restart() -> None:
    async def scenario() -> None:
        state_dir = tempfile.mkdtemp(prefix="lwm2md-state-")
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        try:
            client = await start_client(server, state_dir)
            written = await server.write_attributes(EP, "/3303/0/5700", pmin=5, pmax=30, gt=25.5)
            assert written.code == "2.04"
            path = os.path.join(state_dir, "attributes.json")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            await client.stop(deregister=False)

            client = Client(make_config(server.uri, state_dir=state_dir), simulate=True, clock=FakeClock())
            await client.start()
            await server.wait_event("update", endpoint=EP)  # resumed from the new port
            found = (await server.discover(EP, "/3303/0/5700")).payload.decode()
            assert "pmin=5" in found and "pmax=30" in found and "gt=25.5" in found, found
            await client.stop()
        finally:
            await server.stop()

    run(scenario())
