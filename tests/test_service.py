"""Service integration: sd_notify protocol, watchdog, reload on SIGHUP, stop on SIGTERM.

The daemon runs as a real subprocess with $NOTIFY_SOCKET pointing at a
datagram socket of the test, playing systemd's part.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from lwm2md.service import Notifier
from lwm2md.testing import TestServer
from tests.integration.harness import run

EP = "svc-gw"


def test_notifier_sends_datagrams_to_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        notifier.ready("starting")
        assert sock.recv(1024) == b"READY=1\nSTATUS=starting"
        notifier.status("server 1: registered")
        notifier.status("server 1: registered")  # unchanged: not sent again
        notifier.watchdog()
        assert sock.recv(1024) == b"STATUS=server 1: registered"
        assert sock.recv(1024) == b"WATCHDOG=1"


def test_notifier_is_silent_outside_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.send("READY=1")


def test_watchdog_interval_is_half_the_timeout_for_this_pid_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_interval() == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_interval() is None


class Manager:
    """The systemd side of $NOTIFY_SOCKET: collects every line the daemon sends."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.lines: list[str] = []

    async def expect(self, wanted: str, timeout: float = 20) -> None:
        """Wait until a line starting with ``wanted`` arrives (lines are kept in order)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                for i, line in enumerate(self.lines):
                    if line.startswith(wanted):
                        del self.lines[: i + 1]
                        return
                data = await loop.sock_recv(self.sock, 4096)
                self.lines.extend(data.decode().split("\n"))


def write_config(path: Path, uri: str, lifetime: int = 300, extra: str = "") -> None:
    server = f'[[server]]\nuri = "{uri}"\nshort_id = 1\nlifetime = {lifetime}\n'
    path.write_text(f'[device]\nendpoint = "{EP}"\n' + server + extra)


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, config: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, Manager]]:
    manager = Manager(str(tmp_path / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lwm2md", "run", "--config", str(config), "--state-dir", str(tmp_path),
        env=env, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield child, manager
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        manager.sock.close()


def test_ready_without_network_then_watchdog(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = tmp_path / "c.toml"
        write_config(config, "coap://127.0.0.1:9")  # nothing answers there
        async with daemon(tmp_path, config) as (child, manager):
            await manager.expect("READY=1")
            await manager.expect("WATCHDOG=1")
            await manager.expect("WATCHDOG=1")
            child.send_signal(signal.SIGTERM)
            await manager.expect("STOPPING=1")
            assert await asyncio.wait_for(child.wait(), 20) == 0

    run(scenario())


def test_status_reload_and_stop(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
        config = tmp_path / "c.toml"
        write_config(config, server.uri)
        try:
            async with daemon(tmp_path, config) as (child, manager):
                await manager.expect("READY=1")
                first = await server.wait_registered(EP)
                await manager.expect("STATUS=server 1: registered, lifetime 300 s")
                # unchanged config: reload keeps the registration as it is
                child.send_signal(signal.SIGHUP)
                await manager.expect("RELOADING=1")
                await manager.expect("READY=1")
                assert server.registrations[EP].location == first.location
                # a broken config is refused and the daemon keeps running
                config.write_text("[[server]]\nuri = 42\n")
                child.send_signal(signal.SIGHUP)
                await manager.expect("RELOADING=1")
                await manager.expect("READY=1")
                assert child.returncode is None
                # a new lifetime is applied with an Update, not a new registration
                write_config(config, server.uri, lifetime=120)
                child.send_signal(signal.SIGHUP)
                await manager.expect("READY=1")
                update = await server.wait_event("update", endpoint=EP)
                assert update.params.get("lt") == "120"
                assert server.registrations[EP].location == first.location
                await manager.expect("STATUS=server 1: registered, lifetime 120 s")
                kinds = []
                while not server.events.empty():
                    kinds.append(server.events.get_nowait().kind)
                assert kinds.count("register") == 1 and "deregister" not in kinds
                child.send_signal(signal.SIGTERM)
                await manager.expect("STOPPING=1")
                await server.wait_event("deregister", endpoint=EP)
                assert await asyncio.wait_for(child.wait(), 20) == 0
        finally:
            await server.stop()

    run(scenario())
