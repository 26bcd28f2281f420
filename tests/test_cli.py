"""The lwm2md command as a user runs it: subprocesses, real exit codes, real sockets."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from lwm2md import __version__
from lwm2md.testing import TestServer
from tests.integration.harness import run

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "lwm2md.toml"


def lwm2md(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lwm2md", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    result = lwm2md("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"lwm2md {__version__}"


def test_check_config_accepts_the_example() -> None:
    result = lwm2md("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_names_file_and_key_and_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[server]]\nuri = "coap://127.0.0.1"\nshort_id = 1\nlifetime = "long"\n')
    result = lwm2md("check-config", str(bad))
    assert result.returncode == 78
    assert str(bad) in result.stderr and "server[0].lifetime" in result.stderr and "'long'" in result.stderr


def test_psk_key_never_printed(tmp_path: Path) -> None:
    bad = tmp_path / "psk.toml"
    bad.write_text(
        '[[server]]\nuri = "coaps://127.0.0.1"\nshort_id = 1\nsecurity = "psk"\n'
        'psk_identity = "gw"\npsk_key = "c0ffee15bad"\n'
    )
    result = lwm2md("check-config", str(bad))
    assert result.returncode == 78
    assert "c0ffee15bad" not in result.stderr + result.stdout


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = lwm2md("run", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 78 and "absent.toml" in result.stderr


def test_objects_prints_the_tree_with_values() -> None:
    result = lwm2md("objects", "--config", str(EXAMPLE), "--simulate")
    assert result.returncode == 0, result.stderr
    assert "/3303 Temperature" in result.stdout
    assert "/3303/0/5700 Sensor Value = " in result.stdout
    assert "/3/0/0 Manufacturer" in result.stdout or "/3/0/3 Firmware Version" in result.stdout


def test_run_registers_and_sigterm_deregisters(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
        config = tmp_path / "lwm2md.toml"
        config.write_text(
            f'[device]\nendpoint = "cli-gw"\n[[server]]\nuri = "{server.uri}"\nshort_id = 1\n'
            '[[sensor]]\ndriver = "simulated"\nobjects = [3303]\n'
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lwm2md", "run", "--simulate", "--config", str(config),
            "--state-dir", str(tmp_path), stderr=asyncio.subprocess.PIPE,
        )
        try:
            await server.wait_registered("cli-gw", timeout=20)
            assert (await server.read("cli-gw", "/3303/0/5701")).payload == b"Cel"
            child.send_signal(signal.SIGTERM)
            event = await server.wait_event("deregister", endpoint="cli-gw", timeout=20)
            assert event.reason == "deregister"
            assert await asyncio.wait_for(child.wait(), 20) == 0
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await server.stop()
        assert child.stderr is not None
        log = (await child.stderr.read()).decode()
        assert "registered at /rd/" in log and "de-registered" in log

    run(scenario())


def test_demo_runs_end_to_end() -> None:
    result = lwm2md("demo", "--duration", "3", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered: lwm2md-demo" in result.stdout
    assert "notification: /3303/0/5700=" in result.stdout
    assert "de-registered: yes" in result.stdout


def test_example_config_under_simulate_shows_every_object(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
        config = tmp_path / "lwm2md.toml"
        text = EXAMPLE.read_text().replace("coap://127.0.0.1:5683", server.uri)
        config.write_text(text.replace('# endpoint = "gw-0001"', 'endpoint = "sim-gw"'))
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lwm2md", "run", "--simulate", "--config", str(config),
            "--state-dir", str(tmp_path), stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            reg = await server.wait_registered(timeout=20)
            wanted = ["/1/0", "/3/0", "/4/0", "/7/0", "/3200/0", "/3201/0", "/3202/0", "/3301/0", "/3303/0",
                      "/3303/1", "/3304/0", "/3304/1", "/3315/0", "/3316/0", "/3317/0", "/3328/0", "/3347/0"]
            assert [target for target in wanted if target not in reg.objects] == []
            temperature = await server.read(reg.endpoint, "/3303/0/5700")
            assert temperature.code == "2.05" and -40 <= float(temperature.text) <= 85
            pressure = await server.read(reg.endpoint, "/3315/0/5701")
            assert pressure.payload == b"Pa"
            child.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(child.wait(), 20) == 0
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await server.stop()

    run(scenario())


def test_without_hardware_each_table_fails_alone_and_the_device_registers(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
        config = tmp_path / "lwm2md.toml"
        config.write_text(EXAMPLE.read_text().replace("coap://127.0.0.1:5683", server.uri)
                          .replace('port = "/dev/ttyUSB2"', f'port = "{tmp_path}/ttyUSB9"')
                          .replace("bus = 1", "bus = 99"))  # fmt: skip
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lwm2md", "run", "--config", str(config), "--state-dir", str(tmp_path),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            reg = await server.wait_registered(timeout=20)
            assert "/3/0" in reg.objects and "/3303/0" not in reg.objects
            assert (await server.read(reg.endpoint, "/3/0/0")).code in ("2.05", "4.04")
            child.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(child.wait(), 20) == 0
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await server.stop()
        assert child.stderr is not None
        log = (await child.stderr.read()).decode()
        assert log.count("/dev/i2c-99 does not exist") == 5, log
        assert "ttyUSB9" in log

    run(scenario())


def test_reset_state_removes_stored_values(tmp_path: Path) -> None:
    names = ("written.json", "registrations.json", "provisioned.json", "attributes.json", "data-objects.json")
    for name in names:
        (tmp_path / name).write_text('{"version": 1, "content": {}}')
    (tmp_path / "unrelated").write_text("kept")
    result = lwm2md("reset-state", "--config", str(EXAMPLE), "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not any((tmp_path / name).exists() for name in names)
    assert (tmp_path / "unrelated").exists()


def test_factory_reset_forgets_state_deregisters_and_exits_for_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
        config = tmp_path / "lwm2md.toml"
        marker = tmp_path / "reset-ran"
        config.write_text(
            f'[device]\nendpoint = "reset-gw"\nfactory_reset_command = ["touch", "{marker}"]\n'
            f'[[server]]\nuri = "{server.uri}"\nshort_id = 1\n'
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lwm2md", "run", "--config", str(config), "--state-dir", str(tmp_path),
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await server.wait_registered("reset-gw", timeout=20)
            assert (await server.write("reset-gw", "/3/0/15", "Europe/Paris", fmt=0)).code == "2.04"
            assert (tmp_path / "written.json").exists()  # saved before the Write is answered
            async with asyncio.timeout(10):  # saved when the daemon's registration task sees the 2.01
                while not (tmp_path / "registrations.json").exists():
                    await asyncio.sleep(0.05)
            assert (await server.execute("reset-gw", "/3/0/5")).code == "2.04"
            await server.wait_event("deregister", endpoint="reset-gw", timeout=20)
            assert await asyncio.wait_for(child.wait(), 20) == 75  # EX_TEMPFAIL: systemd starts it again
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await server.stop()
        assert marker.exists(), "the configured factory reset command ran"
        assert not (tmp_path / "written.json").exists()
        assert not (tmp_path / "registrations.json").exists()

    run(scenario())
