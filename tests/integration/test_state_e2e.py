"""Server-written values survive a restart of the client (same state directory)."""

from __future__ import annotations

import json
import os
import stat
import tempfile

from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.engine.clock import FakeClock
from lwm2md.testing import TestServer
from tests.integration.harness import EP, make_config, run


async def start_client(server: TestServer, state_dir: str) -> Client:
    client = Client(make_config(server.uri, state_dir=state_dir), simulate=True, clock=FakeClock())
    await client.start()
    await server.wait_registered(EP)
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
