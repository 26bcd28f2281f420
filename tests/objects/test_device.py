"""Tests for the Device object built from (fake) host facts."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable
from pathlib import Path as FsPath
from typing import TypeVar

import pytest

from lwm2md import __version__
from lwm2md.drivers.system.linux import HostFacts, read_host_facts
from lwm2md.engine.clock import FakeClock
from lwm2md.errors import DriverFault, MethodNotAllowed, NotFound
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef
from lwm2md.objects.device import (
    ACTION_DELAY,
    DeviceInstance,
    build_device_instance,
    run_command,
)
from lwm2md.objects.tree import ObjectTree

T = TypeVar("T")

CATALOG = Catalog.builtin()

MEMINFO = "MemTotal:        2048000 kB\nMemFree:   100000 kB\nMemAvailable:    1500000 kB\n"


def device_def() -> ObjectDef:
    found = CATALOG.get(3)
    assert found is not None
    return found


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def put(root: FsPath, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def plus_one_hour() -> time.struct_time:
    return time.struct_time((2024, 7, 1, 12, 0, 0, 0, 183, 1, "CEST", 3600))


@pytest.fixture
def root(tmp_path: FsPath) -> FsPath:
    host = tmp_path / "root"
    put(host, "sys/class/dmi/id/sys_vendor", "Acme Industrial\n")
    put(host, "sys/class/dmi/id/product_name", "GW-400\n")
    put(host, "sys/class/dmi/id/product_serial", "SN-0042\n")
    put(host, "sys/class/dmi/id/product_version", "rev C\n")
    put(host, "proc/meminfo", MEMINFO)
    put(host, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    put(host, "etc/timezone", "Europe/Berlin\n")
    return host


@pytest.fixture
def facts(root: FsPath) -> HostFacts:
    return read_host_facts(root, localtime=plus_one_hour)


def test_values_from_the_host(facts: HostFacts) -> None:
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    assert device.path == Path(3, 0)
    assert device.read(0) == "Acme Industrial"
    assert device.read(1) == "GW-400"
    assert device.read(2) == "SN-0042"
    assert device.read(3) == f"Debian GNU/Linux 12 (bookworm); lwm2md {__version__}"
    assert device.read(10) == 1500000
    assert device.read(11) == {0: 0}
    assert device.read(14) == "+01:00"
    assert device.read(15) == "Europe/Berlin"
    assert device.read(16) == "U"
    assert device.read(17) == "Gateway"
    assert device.read(18) == "rev C"
    assert device.read(19) == __version__
    assert device.read(21) == 2048000
    for absent in (6, 7, 8, 9, 20, 22):
        assert not device.has(absent)
        with pytest.raises(NotFound):
            device.read(absent)


def test_records_cover_every_readable_value(facts: HostFacts) -> None:
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    paths = {record.path for record in device.records()}
    assert Path(3, 0, 11, 0) in paths
    assert Path(3, 0, 13) in paths
    assert Path(3, 0, 4) not in paths  # executables carry no value


def test_configuration_overrides_facts(facts: HostFacts) -> None:
    device = build_device_instance(
        device_def(),
        facts,
        manufacturer="Example GmbH",
        model="EX-1",
        serial="42",
        hardware_version="2.0",
        firmware_version="custom 9",
        binding_modes="UQ",
        clock=FakeClock(),
    )
    assert [device.read(rid) for rid in (0, 1, 2, 3, 16, 18)] == [
        "Example GmbH", "EX-1", "42", "custom 9", "UQ", "2.0",
    ]  # fmt: skip


def test_unknown_facts_leave_optional_resources_absent(tmp_path: FsPath) -> None:
    empty = read_host_facts(tmp_path, localtime=lambda: time.struct_time((2024, 1, 1, 0, 0, 0, 0, 1, 0)))
    device = build_device_instance(device_def(), empty, clock=FakeClock())
    for rid in (0, 1, 2, 10, 14, 15, 18, 21):
        assert not device.has(rid), rid
    assert device.read(3) == f"lwm2md {__version__}"
    assert device.has(4)
    assert device.read(11) == {0: 0}


def test_memory_free_is_read_live(root: FsPath, facts: HostFacts) -> None:
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    put(root, "proc/meminfo", MEMINFO.replace("1500000", "1234"))
    assert device.read(10) == 1234
    (root / "proc/meminfo").unlink()
    with pytest.raises(DriverFault):
        device.read(10)


def test_only_defined_resources(facts: HostFacts) -> None:
    full = device_def()
    keep = {rid: res for rid, res in full.resources.items() if rid in (0, 4, 11, 16)}
    slim = ObjectDef(3, "Device", False, True, resources=keep)
    device = build_device_instance(slim, facts, clock=FakeClock(), factory_reset=run_command(None))
    assert device.resource_ids() == [0, 4, 11, 16]


def test_wrong_object_is_refused(facts: HostFacts) -> None:
    other = CATALOG.get(4)
    assert other is not None
    with pytest.raises(ValueError):
        build_device_instance(other, facts, clock=FakeClock())


# -- Current Time / UTC offset / timezone ---------------------------------------


def test_current_time_follows_the_clock_and_a_written_offset(facts: HostFacts) -> None:
    async def scenario() -> None:
        clock = FakeClock(wall_offset=1_700_000_000.0)
        device = build_device_instance(device_def(), facts, clock=clock)
        assert device.read(13) == 1_700_000_000
        await clock.advance(2.5)
        assert device.read(13) == 1_700_000_002
        device.write(13, 1_800_000_000)
        assert device.read(13) == 1_800_000_000
        await clock.advance(10)
        assert device.read(13) == 1_800_000_010
        assert clock.wall() == 1_700_000_012.5  # the host clock is untouched

    run(scenario())


def test_utc_offset_and_timezone_are_writable(facts: HostFacts) -> None:
    tree = ObjectTree(CATALOG)
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    tree.add_instance(device)
    seen: list[Path] = []
    tree.on_value_change(seen.append)
    device.write(14, "-05:00")
    device.write(15, "America/New_York")
    assert device.read(14) == "-05:00"
    assert device.read(15) == "America/New_York"
    assert seen == [Path(3, 0, 14), Path(3, 0, 15)]


def test_utc_offset_is_live_until_written(root: FsPath) -> None:
    offsets = iter([3600, 3600, 7200])

    def shifting() -> time.struct_time:
        return time.struct_time((2024, 3, 31, 0, 0, 0, 6, 91, 0, "X", next(offsets)))

    facts = read_host_facts(root, localtime=shifting)
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    assert device.read(14) == "+01:00"
    assert device.read(14) == "+02:00"  # daylight saving time began


# -- Error codes ------------------------------------------------------------------


def test_error_codes_and_reset(facts: HostFacts) -> None:
    tree = ObjectTree(CATALOG)
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    assert isinstance(device, DeviceInstance)
    tree.add_instance(device)
    seen: list[Path] = []
    tree.on_value_change(seen.append)

    device.add_error(5)
    device.add_error(7)
    device.add_error(5)
    assert device.read(11) == {0: 5, 1: 7}
    assert device.error_codes() == [5, 7]
    assert seen == [Path(3, 0, 11), Path(3, 0, 11)]
    device.clear_error(5)
    assert device.read(11) == {0: 7}
    device.clear_error(3)
    assert len(seen) == 3
    run(device.execute(12, None))
    assert device.read(11) == {0: 0}
    assert device.error_codes() == []
    with pytest.raises(ValueError):
        device.add_error(0)
    with pytest.raises(ValueError):
        device.add_error(33)


# -- Reboot / Factory Reset -----------------------------------------------------


def test_reboot_runs_the_configured_command_after_the_delay(facts: HostFacts, tmp_path: FsPath) -> None:
    marker = tmp_path / "rebooted"

    async def scenario() -> None:
        clock = FakeClock()
        device = build_device_instance(
            device_def(), facts, clock=clock, reboot=run_command(["touch", str(marker)], what="reboot")
        )
        await device.execute(4, None)
        assert not marker.exists()  # never inside the request
        assert device.pending_actions() == ["Reboot"]
        await clock.advance(ACTION_DELAY / 2)
        await device.wait_actions()
        assert not marker.exists()
        await clock.advance(ACTION_DELAY)
        await device.wait_actions()
        assert marker.exists()
        assert device.pending_actions() == []

    run(scenario())


def test_reboot_without_command_does_nothing(facts: HostFacts, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        device = build_device_instance(device_def(), facts, clock=clock)
        await device.execute(4, None)
        assert device.pending_actions() == []
        assert clock.next_deadline() is None

    run(scenario())
    assert "Reboot requested but not configured" in caplog.text


def test_repeated_execute_runs_once(facts: HostFacts) -> None:
    calls: list[float] = []

    async def scenario() -> None:
        clock = FakeClock()

        async def action() -> None:
            calls.append(clock.now())

        device = build_device_instance(device_def(), facts, clock=clock, factory_reset=action)
        await device.execute(5, None)
        await device.execute(5, "0")
        await clock.advance(5)
        await device.wait_actions()
        await device.execute(5, None)  # a new request after completion runs again
        await clock.advance(5)
        await device.wait_actions()

    run(scenario())
    assert calls == [ACTION_DELAY, 5 + ACTION_DELAY]


def test_failing_action_is_logged(facts: HostFacts, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = FakeClock()

        async def action() -> None:
            raise RuntimeError("no power")

        device = build_device_instance(device_def(), facts, clock=clock, reboot=action)
        await device.execute(4, None)
        await clock.advance(ACTION_DELAY)
        await device.wait_actions()
        assert device.pending_actions() == []

    run(scenario())
    assert "Reboot failed" in caplog.text


def test_cancel_actions_drops_scheduled_ones(facts: HostFacts) -> None:
    calls: list[int] = []

    async def scenario() -> None:
        clock = FakeClock()

        async def action() -> None:
            calls.append(1)

        device = build_device_instance(device_def(), facts, clock=clock, reboot=action)
        await device.execute(4, None)
        device.cancel_actions()
        await clock.advance(10)
        await device.wait_actions()

    run(scenario())
    assert calls == []


def test_factory_reset_absent_unless_configured(facts: HostFacts) -> None:
    device = build_device_instance(device_def(), facts, clock=FakeClock())
    assert not device.has(5)
    with pytest.raises(MethodNotAllowed):
        run(device.execute(5, None))


# -- run_command -------------------------------------------------------------------


def test_run_command_none_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    run(run_command(None, what="factory reset")())
    run(run_command([], what="reboot")())
    assert "factory reset: no command configured" in caplog.text
    assert "reboot: no command configured" in caplog.text


def test_run_command_logs_failures(caplog: pytest.LogCaptureFixture, tmp_path: FsPath) -> None:
    run(run_command([sys.executable, "-c", "import sys; print('disk on fire'); sys.exit(3)"])())
    assert "exited with status 3: disk on fire" in caplog.text
    run(run_command([str(tmp_path / "no-such-program")], what="reboot")())
    assert "reboot: cannot start" in caplog.text


def test_run_command_kills_after_timeout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run(run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.2)())
    assert "killed after" in caplog.text


def test_run_command_success_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run(run_command(["true"], what="reboot")())
    assert "reboot: true done" in caplog.text


def test_configured_timezone_and_utc_offset_win(facts: HostFacts) -> None:
    device = build_device_instance(
        device_def(), facts, timezone="Asia/Kolkata", utc_offset="+05:30", clock=FakeClock()
    )
    assert device.read(15) == "Asia/Kolkata"
    assert device.read(14) == "+05:30"
    device.write(14, "+05:45")
    assert device.read(14) == "+05:45"


def test_run_command_takes_what_positionally(caplog: pytest.LogCaptureFixture) -> None:
    run(run_command(None, "reboot")())
    assert "reboot: no command configured" in caplog.text
