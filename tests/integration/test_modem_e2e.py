"""/4 and /7 over real sockets: a Client with the connectivity objects, a fake modem on a pty.

The modem answers through real pyserial on a pseudo-terminal; the interface
counters live in a fake /sys tree. The client's timers (and the modem
poller) run on a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from lwm2md.app import Client
from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.modem.at import AtChannel
from lwm2md.engine.clock import FakeClock
from lwm2md.model.types import Record
from lwm2md.objects.connectivity import BEARER_LTE_FDD, ConnectivityObjects, build_connectivity_objects
from lwm2md.testing import TestServer
from tests.integration.harness import EP, make_config, run

INTERVAL = 30.0
IP_JSON = json.dumps([{"ifname": "wwan0", "addr_info": [
    {"family": "inet", "local": "10.64.12.7", "prefixlen": 30, "scope": "global"}]}])  # fmt: skip


def write_counters(root: Path, rx: int, tx: int, rx_packets: int, tx_packets: int) -> None:
    stats = root / "sys/class/net/wwan0/statistics"
    stats.mkdir(parents=True, exist_ok=True)
    for name, value in (("rx_bytes", rx), ("tx_bytes", tx), ("rx_packets", rx_packets),
                        ("tx_packets", tx_packets)):  # fmt: skip
        (stats / name).write_text(f"{value}\n")


def values(records: list[Record] | None) -> dict[str, object]:
    assert records is not None
    return {str(r.path): r.value for r in records}


@dataclass
class ModemRig:
    server: TestServer
    client: Client
    clock: FakeClock
    modem: FakeModem
    channel: AtChannel
    objects: ConnectivityObjects
    root: Path


@contextlib.asynccontextmanager
async def modem_rig(root: Path) -> AsyncIterator[ModemRig]:
    (root / "sys/class/net/wwan0").mkdir(parents=True)
    (root / "sys/class/net/wwan0/type").write_text("519\n")
    write_counters(root, 0, 0, 0, 0)
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    clock = FakeClock()
    modem = FakeModem()
    client = Client(make_config(server.uri), simulate=True, clock=clock)
    channel = AtChannel(modem.serve_pty(), clock=clock)
    try:
        await channel.open()
        objects = build_connectivity_objects(
            client.tree, channel, interface="wwan0", interval=INTERVAL, clock=clock, netif_root=root,
            ip_json=lambda name: IP_JSON,
        )  # fmt: skip
        await client.start()
        await server.wait_registered(EP)
        objects.start()
        await objects.refresh()  # the first poll is done before the test reads
        yield ModemRig(server, client, clock, modem, channel, objects, root)
        await objects.stop()
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await channel.close()
        await server.stop()
        modem.close()


def test_read_connectivity_monitoring(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with modem_rig(tmp_path) as r:
            registration = r.server.registrations[EP]
            assert {"/4/0", "/7/0"} <= set(registration.objects)
            response = await r.server.read(EP, "/4/0")
            assert response.code == "2.05"
            got = values(response.records)
            assert got["/4/0/0"] == BEARER_LTE_FDD
            assert got["/4/0/2"] == -95 and got["/4/0/3"] == -10
            assert got["/4/0/4/0"] == "10.64.12.7"
            assert got["/4/0/7/0"] == "internet.telekom"
            assert (got["/4/0/8"], got["/4/0/9"], got["/4/0/10"], got["/4/0/12"]) == (
                0x1A2D001,
                1,
                262,
                0xD2AB,
            )
            single = await r.server.read(EP, "/4/0/2")
            assert (single.code, single.payload) == ("2.05", b"-95")

    run(scenario())


def test_signal_change_notifies_an_observer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with modem_rig(tmp_path) as r:
            obs = await r.server.observe(EP, "/4/0/2")
            assert obs.first.value == -95
            r.modem.set_signal(rsrp=-80.0)
            await r.clock.advance(INTERVAL)
            note = await obs.next()
            assert note.value == -80

    run(scenario())


def test_statistics_start_traffic_stop_read(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with modem_rig(tmp_path) as r:
            write_counters(r.root, 5000, 3000, 10, 5)
            assert (await r.server.execute(EP, "/7/0/6")).code == "2.04"
            write_counters(r.root, 5000 + 20 * 1024, 3000 + 8 * 1024, 40, 25)
            r.objects.count_sms_rx()
            assert (await r.server.execute(EP, "/7/0/7")).code == "2.04"
            write_counters(r.root, 10**7, 10**7, 10**4, 10**4)  # after Stop: not counted
            got = values((await r.server.read(EP, "/7/0")).records)
            assert (got["/7/0/2"], got["/7/0/3"]) == (8, 20)
            assert got["/7/0/5"] == (28 * 1024) // 50
            assert (got["/7/0/0"], got["/7/0/1"]) == (0, 1)
            assert "/7/0/6" not in got, "executables are not read"

    run(scenario())
