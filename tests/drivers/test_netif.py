"""Interface facts from a fake /sys and /proc tree (and a little from the real host)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lwm2md.drivers.system.netif import InterfaceCounters, NetInterface, parse_ip_json

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000042 05 40 00 00    wwan0
fe800000000000000000000000000042 05 40 20 80    wwan0
20010db8000000000000000000000099 02 40 00 00     eth0
"""
ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
wwan0\t0000000A\t0102000A\t0003\t0\t0\t0\t000000FF\t0\t0\t0
wwan0\t00000000\t0202000A\t0003\t0\t0\t700\t00000000\t0\t0\t0
wwan0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""
IPV6_ROUTE = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000001 00000400 00000001 00000000 00000003    wwan0\n"
    "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001    wwan0\n"
)


def put(root: Path, rel: str, content: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def statistics(root: Path, name: str, rx: int, tx: int, rx_packets: int, tx_packets: int) -> None:
    for field, value in (("rx_bytes", rx), ("tx_bytes", tx), ("rx_packets", rx_packets),
                         ("tx_packets", tx_packets)):  # fmt: skip
        put(root, f"sys/class/net/{name}/statistics/{field}", f"{value}\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    put(tmp_path, "sys/class/net/wwan0/type", "519\n")
    put(tmp_path, "sys/class/net/wwan0/uevent", "INTERFACE=wwan0\nIFINDEX=5\n")
    put(tmp_path, "sys/class/net/eth0/type", "1\n")
    put(tmp_path, "sys/class/net/wlan0/type", "1\n")
    put(tmp_path, "sys/class/net/wlan0/uevent", "DEVTYPE=wlan\nINTERFACE=wlan0\n")
    put(tmp_path, "sys/class/net/usb0/type", "1\n")
    (tmp_path / "sys/class/net/usb0/device").mkdir(parents=True)
    os.symlink("/sys/bus/usb/drivers/qmi_wwan", tmp_path / "sys/class/net/usb0/device/driver")
    put(tmp_path, "sys/class/net/ppp0/type", "512\n")
    put(tmp_path, "proc/net/if_inet6", IF_INET6)
    put(tmp_path, "proc/net/route", ROUTE)
    put(tmp_path, "proc/net/ipv6_route", IPV6_ROUTE)
    statistics(tmp_path, "wwan0", 2048, 1024, 20, 10)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "kind"),
    [("wwan0", "wwan"), ("eth0", "ethernet"), ("wlan0", "wlan"), ("usb0", "wwan"), ("ppp0", "ppp"),
     ("nosuch0", None)],
)  # fmt: skip
def test_kind(root: Path, name: str, kind: str | None) -> None:
    assert NetInterface(name, root).kind() == kind


def test_ipv6_from_procfs_without_link_local(root: Path) -> None:
    wwan = NetInterface("wwan0", root)
    assert wwan.exists()
    assert wwan.ipv6_addresses() == ["2001:db8::42"]
    assert wwan.addresses() == ["2001:db8::42"], "no IPv4 source under a fake root"
    assert NetInterface("lo", root).ipv6_addresses() == [], "host scope is skipped"


def test_addresses_from_ip_json(root: Path) -> None:
    output = json.dumps([{
        "ifname": "wwan0",
        "addr_info": [
            {"family": "inet", "local": "10.0.2.15", "prefixlen": 30, "scope": "global"},
            {"family": "inet6", "local": "2001:db8::42", "prefixlen": 64, "scope": "global"},
            {"family": "inet6", "local": "fe80::42", "prefixlen": 64, "scope": "link"},
        ],
    }])  # fmt: skip
    asked: list[str] = []

    def ip_json(name: str) -> str | None:
        asked.append(name)
        return output

    assert NetInterface("wwan0", root, ip_json=ip_json).addresses() == ["10.0.2.15", "2001:db8::42"]
    assert asked == ["wwan0"]
    fallback = NetInterface("wwan0", root, ip_json=lambda name: None)
    assert fallback.addresses() == ["2001:db8::42"], "no ip output: procfs"
    assert parse_ip_json("not json") == [] and parse_ip_json("{}") == []


def test_routers_default_first(root: Path) -> None:
    assert NetInterface("wwan0", root).routers() == ["10.0.2.2", "fe80::1", "10.0.2.1"]
    assert NetInterface("eth0", root).routers() == ["192.168.1.1"]
    assert NetInterface("ppp0", root).routers() == []


def test_counters(root: Path) -> None:
    assert NetInterface("wwan0", root).counters() == InterfaceCounters(2048, 1024, 20, 10)
    assert NetInterface("eth0", root).counters() is None
    put(root, "sys/class/net/wwan0/statistics/tx_bytes", "garbage\n")
    assert NetInterface("wwan0", root).counters() is None


def test_missing_tree_yields_nothing(tmp_path: Path) -> None:
    iface = NetInterface("wwan0", tmp_path)
    assert not iface.exists()
    assert (iface.kind(), iface.addresses(), iface.routers(), iface.counters()) == ("wwan", [], [], None)


def test_invalid_name() -> None:
    for name in ("", "../etc", "a/b"):
        with pytest.raises(ValueError):
            NetInterface(name)


def test_real_loopback() -> None:
    lo = NetInterface("lo")
    if not lo.exists():
        pytest.skip("no /sys/class/net/lo here")
    assert lo.kind() == "loopback"
    assert lo.counters() is not None
    assert all(":" in a or "." in a for a in lo.addresses())
