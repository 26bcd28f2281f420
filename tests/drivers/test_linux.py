"""Tests for Linux host facts read from a fake root."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lwm2md.drivers.system.linux import (
    format_utc_offset,
    read_host_facts,
    read_meminfo,
    read_os_release,
    read_timezone,
)

MEMINFO = """\
MemTotal:        8041204 kB
MemFree:          512000 kB
MemAvailable:    4020602 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def put(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def moment(gmtoff: int) -> time.struct_time:
    return time.struct_time((2024, 7, 1, 12, 0, 0, 0, 183, 1, "X", gmtoff))


@pytest.fixture
def pc_root(tmp_path: Path) -> Path:
    put(tmp_path, "sys/class/dmi/id/sys_vendor", "Acme Industrial\n")
    put(tmp_path, "sys/class/dmi/id/product_name", "GW-400\n")
    put(tmp_path, "sys/class/dmi/id/product_serial", "SN-0042\n")
    put(tmp_path, "sys/class/dmi/id/product_version", "rev C\n")
    put(tmp_path, "proc/meminfo", MEMINFO)
    put(tmp_path, "etc/os-release", 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    put(tmp_path, "etc/timezone", "Europe/Berlin\n")
    return tmp_path


def test_pc_facts(pc_root: Path) -> None:
    facts = read_host_facts(pc_root, localtime=lambda: moment(7200))
    assert facts.manufacturer == "Acme Industrial"
    assert facts.model == "GW-400"
    assert facts.serial == "SN-0042"
    assert facts.hardware_version == "rev C"
    assert facts.os_release == "Debian GNU/Linux 12 (bookworm)"
    assert facts.memory_total_kib == 8041204
    assert facts.memory_free_kib() == 4020602
    assert facts.timezone == "Europe/Berlin"
    assert facts.utc_offset() == "+02:00"
    assert facts.battery_level is None


def test_memory_free_is_live(pc_root: Path) -> None:
    facts = read_host_facts(pc_root)
    put(pc_root, "proc/meminfo", MEMINFO.replace("4020602", "1000"))
    assert facts.memory_free_kib() == 1000
    assert facts.memory_total_kib == 8041204


def test_memfree_used_when_memavailable_missing(tmp_path: Path) -> None:
    put(tmp_path, "proc/meminfo", "MemTotal: 100 kB\nMemFree: 40 kB\n")
    assert read_host_facts(tmp_path).memory_free_kib() == 40


def test_device_tree_board(tmp_path: Path) -> None:
    put(tmp_path, "proc/device-tree/model", b"Raspberry Pi 4 Model B Rev 1.4\x00")
    put(tmp_path, "proc/device-tree/serial-number", b"10000000abcdef01\x00")
    facts = read_host_facts(tmp_path)
    assert facts.model == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts.serial == "10000000abcdef01"
    assert facts.manufacturer is None


def test_dmi_placeholders_fall_back(tmp_path: Path) -> None:
    put(tmp_path, "sys/class/dmi/id/sys_vendor", "To Be Filled By O.E.M.\n")
    put(tmp_path, "sys/class/dmi/id/product_name", "Default string\n")
    put(tmp_path, "sys/class/dmi/id/product_serial", "\n")
    put(tmp_path, "proc/device-tree/model", b"Board X\x00")
    facts = read_host_facts(tmp_path)
    assert facts.manufacturer is None
    assert facts.model == "Board X"
    assert facts.serial is None


def test_empty_root_gives_nones_not_errors(tmp_path: Path) -> None:
    facts = read_host_facts(tmp_path, localtime=lambda: time.struct_time((2024, 1, 1, 0, 0, 0, 0, 1, 0)))
    assert facts.manufacturer is None
    assert facts.model is None
    assert facts.serial is None
    assert facts.hardware_version is None
    assert facts.os_release is None
    assert facts.memory_total_kib is None
    assert facts.memory_free_kib() is None
    assert facts.timezone is None
    assert facts.utc_offset() is None


def test_unreadable_entries_give_none(tmp_path: Path) -> None:
    (tmp_path / "sys/class/dmi/id/sys_vendor").mkdir(parents=True)  # a directory, not a file
    (tmp_path / "proc/meminfo").mkdir(parents=True)
    put(tmp_path, "etc/localtime", "not a link")
    facts = read_host_facts(tmp_path)
    assert facts.manufacturer is None
    assert facts.memory_total_kib is None
    assert facts.timezone is None


def test_failing_localtime_gives_none(tmp_path: Path) -> None:
    def broken() -> time.struct_time:
        raise OverflowError("timestamp out of range")

    assert read_host_facts(tmp_path, localtime=broken).utc_offset() is None


def test_os_release_fallbacks(tmp_path: Path) -> None:
    put(tmp_path, "usr/lib/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")
    assert read_os_release(tmp_path) == "alpine 3.19.1"
    put(tmp_path, "etc/os-release", "# comment\nID='debian'\n")
    assert read_os_release(tmp_path) == "debian"


def test_meminfo_ignores_junk(tmp_path: Path) -> None:
    put(tmp_path, "proc/meminfo", "garbage\nMemTotal: lots kB\nMemFree: 12 kB\n")
    assert read_meminfo(tmp_path) == {"MemFree": 12}


def test_timezone_from_localtime_link(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/usr/share/zoneinfo/America/New_York", tmp_path / "etc/localtime")
    assert read_timezone(tmp_path) == "America/New_York"


def test_timezone_link_outside_zoneinfo(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/somewhere/else", tmp_path / "etc/localtime")
    assert read_timezone(tmp_path) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "+00:00"), (3600, "+01:00"), (19800, "+05:30"), (-18000, "-05:00"), (-12600, "-03:30")],
)
def test_utc_offset_format(seconds: int, text: str) -> None:
    assert format_utc_offset(moment(seconds)) == text
