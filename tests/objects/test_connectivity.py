"""/4/0 and /7/0 fed by the fake modem (in-process stream) and a fake /sys tree."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.modem.at import AtChannel
from lwm2md.engine.clock import FakeClock
from lwm2md.errors import BadRequest
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path as LwPath
from lwm2md.objects.connectivity import (
    BEARER_ETHERNET,
    BEARER_GSM,
    BEARER_LTE_FDD,
    BEARER_LTE_TDD,
    BEARER_NB_IOT,
    BEARER_NR_TDD,
    BEARER_WCDMA,
    ConnectivityObjects,
    bearer_of,
    build_connectivity_objects,
    interface_bearer,
)
from lwm2md.objects.tree import ObjectTree

INTERVAL = 60.0
IP_JSON = json.dumps([{"ifname": "wwan0", "addr_info": [
    {"family": "inet", "local": "10.64.12.7", "prefixlen": 30, "scope": "global"},
    {"family": "inet6", "local": "2001:db8::7", "prefixlen": 64, "scope": "global"},
]}])  # fmt: skip


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(20):
            await coro

    asyncio.run(bounded())


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def put(root: Path, rel: str, content: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def set_counters(root: Path, rx: int, tx: int, rx_packets: int, tx_packets: int, name: str = "wwan0") -> None:
    for field, value in (("rx_bytes", rx), ("tx_bytes", tx), ("rx_packets", rx_packets),
                         ("tx_packets", tx_packets)):  # fmt: skip
        put(root, f"sys/class/net/{name}/statistics/{field}", f"{value}\n")


@pytest.fixture
def sysroot(tmp_path: Path) -> Path:
    put(tmp_path, "sys/class/net/wwan0/type", "519\n")
    put(tmp_path, "sys/class/net/eth0/type", "1\n")
    put(tmp_path, "proc/net/route", "Iface\tDestination\tGateway\tFlags\n"
                                    "wwan0\t00000000\t0564400A\t0003\n")  # fmt: skip
    set_counters(tmp_path, 0, 0, 0, 0)
    set_counters(tmp_path, 0, 0, 0, 0, name="eth0")
    return tmp_path


@dataclass
class Setup:
    tree: ObjectTree
    objects: ConnectivityObjects
    clock: FakeClock
    modem: FakeModem | None
    channel: AtChannel | None
    changed: list[str]

    def value(self, path: str) -> Any:
        p = LwPath.parse(path)
        assert p.oid is not None and p.iid is not None and p.rid is not None
        return self.tree.instance(p.oid, p.iid).read(p.rid)

    def has(self, path: str) -> bool:
        p = LwPath.parse(path)
        assert p.oid is not None and p.iid is not None and p.rid is not None
        return self.tree.instance(p.oid, p.iid).has(p.rid)


@asynccontextmanager
async def setup(
    catalog: Catalog,
    root: Path,
    *,
    vendor: str | None = "quectel",
    interface: str | None = "wwan0",
    configure: Callable[[FakeModem], None] | None = None,
) -> AsyncIterator[Setup]:
    clock = FakeClock()
    tree = ObjectTree(catalog)
    changed: list[str] = []
    tree.on_value_change(lambda path: changed.append(str(path)))
    modem = FakeModem(vendor) if vendor else None
    channel = None
    if modem is not None:
        if configure is not None:
            configure(modem)
        channel = AtChannel("fake:", clock=clock, opener=modem.open_stream)
        await channel.open()
    objects = build_connectivity_objects(
        tree, channel, interface=interface, interval=INTERVAL, clock=clock, netif_root=root,
        ip_json=lambda name: IP_JSON if name == "wwan0" else None,
    )  # fmt: skip
    try:
        yield Setup(tree, objects, clock, modem, channel, changed)
    finally:
        await objects.stop()
        if channel is not None:
            await channel.close()
        if modem is not None:
            modem.close()


# -- /4 ---------------------------------------------------------------------------------------


def test_monitoring_from_a_quectel_modem(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot) as s:
            await s.objects.refresh()
            assert s.objects.quirks is not None and s.objects.quirks.name == "quectel"
            expected = {
                "/4/0/0": BEARER_LTE_FDD,
                "/4/0/1": {0: BEARER_LTE_FDD},
                "/4/0/2": -95,
                "/4/0/3": -10,
                "/4/0/4": {0: "10.64.12.7", 1: "2001:db8::7"},
                "/4/0/5": {0: "10.64.100.5"},
                "/4/0/7": {0: "internet.telekom"},
                "/4/0/8": 0x1A2D001,
                "/4/0/9": 1,
                "/4/0/10": 262,
                "/4/0/11": 10,
                "/4/0/12": 0xD2AB,
            }
            assert {path: s.value(path) for path in expected} == expected
            assert not s.has("/4/0/6") and not s.has("/4/0/13")
            assert s.channel is not None and 'AT+QENG="servingcell"' not in s.channel.init_commands
            assert "AT+CEREG=2" in s.channel.init_commands, "quirk init commands join the channel's"

    run(scenario())


@pytest.mark.parametrize(
    ("vendor", "cell", "bearer", "strength"),
    [
        ("quectel", {"band": 40}, BEARER_LTE_TDD, -95),
        ("simcom", {"act": 9}, BEARER_NB_IOT, -95),
        ("telit", {"act": 2}, BEARER_WCDMA, -85),
        ("telit", {"act": 0}, BEARER_GSM, -65),
        ("ublox", {}, BEARER_LTE_FDD, -95),
    ],
)
def test_bearer_and_strength_per_technology(
    catalog: Catalog, sysroot: Path, vendor: str, cell: dict[str, Any], bearer: int, strength: int
) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot, vendor=vendor, configure=lambda m: m.set_cell(**cell)) as s:
            await s.objects.refresh()
            assert s.value("/4/0/0") == bearer
            assert s.value("/4/0/2") == strength

    run(scenario())


def test_unknown_facts_are_absent(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot, vendor="ublox") as s:
            await s.objects.refresh()
            assert s.has("/4/0/8") and s.has("/4/0/11")
            assert s.modem is not None
            s.modem.set_cell(stat=2)  # deregistered: searching
            await s.objects.refresh()
            for rid in (2, 3, 8, 9, 10, 11, 12):
                assert not s.has(f"/4/0/{rid}"), rid
            assert s.value("/4/0/4") == {0: "10.64.12.7", 1: "2001:db8::7"}

    run(scenario())


def test_observers_see_one_change_per_refresh(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot) as s:
            await s.objects.refresh()
            s.changed.clear()
            await s.objects.refresh()
            assert s.changed == [], "nothing changed, nothing notified"
            assert s.modem is not None
            s.modem.set_signal(rsrp=-80.0, sinr=12.0)
            await s.objects.refresh()
            assert s.changed == ["/4/0/2", "/4/0/11"]
            assert s.value("/4/0/2") == -80

    run(scenario())


def test_periodic_refresh_on_the_clock(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot) as s:
            s.objects.start()
            with pytest.raises(RuntimeError):
                s.objects.start()
            await eventually(lambda: s.objects.polls == 1)
            assert s.modem is not None
            s.modem.set_signal(rsrp=-100.0)
            await s.clock.advance(INTERVAL - 1)
            assert s.objects.polls == 1 and s.value("/4/0/2") == -95
            await s.clock.advance(1)
            await eventually(lambda: s.objects.polls == 2)
            assert s.value("/4/0/2") == -100

    run(scenario())


def test_stale_facts_stay_while_the_modem_is_away(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot) as s:
            await s.objects.refresh()
            assert s.modem is not None and s.channel is not None
            s.modem.unplug()
            await eventually(lambda: s.channel is not None and s.channel.state == "reopening")
            put(sysroot, "proc/net/route", "Iface\tDestination\tGateway\tFlags\n")
            await s.objects.refresh()
            assert s.value("/4/0/2") == -95 and s.value("/4/0/8") == 0x1A2D001
            assert s.value("/4/0/5") == {}, "interface facts are still fresh"
            s.modem.set_signal(rsrp=-70.0)
            s.modem.replug()
            await eventually(lambda: s.clock.next_deadline() is not None)
            await s.clock.advance(1.0)
            await asyncio.wait_for(s.channel.wait_open(), 5)
            await s.objects.refresh()
            assert s.value("/4/0/2") == -70

    run(scenario())


def test_without_a_modem(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot, vendor=None, interface="eth0") as s:
            await s.objects.refresh()
            assert s.value("/4/0/0") == BEARER_ETHERNET
            assert s.value("/4/0/4") == {}
            assert not s.has("/4/0/2") and not s.has("/4/0/8")
        async with setup(catalog, sysroot, vendor=None, interface="wwan0") as s:
            await s.objects.refresh()
            assert not s.has("/4/0/0"), "a cellular interface alone does not say which technology"
            assert s.value("/4/0/4") == {0: "10.64.12.7", 1: "2001:db8::7"}
        async with setup(catalog, sysroot, vendor=None, interface=None) as s:
            await s.objects.refresh()
            assert s.tree.instance(4, 0).resource_ids() == []
            assert s.objects.polls == 1

    run(scenario())


def test_bearer_mapping() -> None:
    assert bearer_of("LTE") == BEARER_LTE_FDD and bearer_of("LTE", "TDD") == BEARER_LTE_TDD
    assert bearer_of("NR") == BEARER_NR_TDD and bearer_of("NR", "FDD") == 9
    assert (bearer_of("GSM"), bearer_of("UMTS"), bearer_of("TD-SCDMA"), bearer_of("CDMA")) == (0, 2, 1, 3)
    assert bearer_of(None) is None and bearer_of("WiMAX?") is None
    assert (interface_bearer("wlan"), interface_bearer("ethernet"), interface_bearer("wwan")) == (
        21,
        41,
        None,
    )


def test_build_refuses_duplicates_and_bad_settings(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        tree = ObjectTree(catalog)
        build_connectivity_objects(tree, None, interface="eth0", interval=10, clock=clock, netif_root=sysroot)
        with pytest.raises(ValueError, match="/4/0"):
            build_connectivity_objects(tree, None, interface="eth0", interval=10, clock=clock)
        with pytest.raises(ValueError, match="interval"):
            build_connectivity_objects(ObjectTree(catalog), None, interface=None, interval=0, clock=clock)
        with pytest.raises(ValueError, match="vendor"):
            build_connectivity_objects(ObjectTree(catalog), None, interface=None, interval=1, clock=clock,
                                       vendor="nokia")  # fmt: skip

    run(scenario())


# -- /7 ---------------------------------------------------------------------------------------


def test_statistics_start_collect_stop(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot, vendor=None) as s:
            set_counters(sysroot, 100_000, 50_000, 100, 50)
            stats = s.tree.instance(7, 0)
            assert [s.value(f"/7/0/{rid}") for rid in range(6) if rid != 4] == [0, 0, 0, 0, 0]
            assert not s.has("/7/0/4"), "no message sizes reported yet"
            await stats.execute(6, None)
            set_counters(sysroot, 100_000 + 10 * 1024, 50_000 + 3 * 1024 + 1000, 110, 60)
            assert (s.value("/7/0/2"), s.value("/7/0/3")) == (3, 10)
            assert s.value("/7/0/5") == (10 * 1024 + 3 * 1024 + 1000) // 20
            s.objects.count_sms_tx()
            s.objects.count_sms_rx()
            s.objects.count_sms_rx()
            assert (s.value("/7/0/0"), s.value("/7/0/1")) == (1, 2)
            s.objects.note_message_size(1200)
            s.objects.note_message_size(800)
            assert s.value("/7/0/4") == 1200
            await stats.execute(7, None)
            set_counters(sysroot, 900_000, 900_000, 900, 900)
            s.objects.count_sms_tx()
            assert (s.value("/7/0/0"), s.value("/7/0/2"), s.value("/7/0/3")) == (1, 3, 10), "frozen"
            await stats.execute(6, None)
            assert [s.value(f"/7/0/{rid}") for rid in range(6) if rid != 4] == [0, 0, 0, 0, 0]

    run(scenario())


def test_statistics_notify_and_survive_counter_restart(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot, vendor=None) as s:
            stats = s.tree.instance(7, 0)
            await stats.execute(6, None)
            s.changed.clear()
            set_counters(sysroot, 4096, 2048, 4, 2)
            await s.objects.refresh()
            assert "/7/0/2" in s.changed and "/7/0/3" in s.changed
            set_counters(sysroot, 1024, 0, 1, 0)  # interface recreated: counters restart
            assert s.value("/7/0/3") == 5

    run(scenario())


def test_collection_period_stops_on_the_clock(catalog: Catalog, sysroot: Path) -> None:
    async def scenario() -> None:
        async with setup(catalog, sysroot, vendor=None) as s:
            stats = s.tree.instance(7, 0)
            with pytest.raises(BadRequest):
                stats.write(8, -5)
            stats.write(8, 30)
            assert s.value("/7/0/8") == 30
            await stats.execute(6, None)
            set_counters(sysroot, 2048, 0, 2, 0)
            await s.clock.advance(29)
            set_counters(sysroot, 4096, 0, 4, 0)
            assert s.value("/7/0/3") == 4
            await s.clock.advance(1)
            set_counters(sysroot, 8192, 0, 8, 0)
            assert s.value("/7/0/3") == 4, "stopped after 30 s"
            stats.write(8, 0)
            await stats.execute(6, None)
            await s.clock.advance(3600)
            set_counters(sysroot, 9216, 0, 9, 0)
            assert s.value("/7/0/3") == 1, "period 0: collects until Stop"

    run(scenario())
