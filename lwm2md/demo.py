"""``lwm2md demo``: the test server plus a real daemon process with simulated hardware.

The demo starts the in-repo Bootstrap-Server and LwM2M test server on free
loopback ports, writes the embedded demo configuration (simulated BME280
sensor, a GPIO output) with only a ``[bootstrap]`` table, and runs
``lwm2md run --simulate`` as a child process. The daemon bootstraps: the
Bootstrap-Server writes the test server's account into /0 and /1. Then the
demo acts as the server operator: waits for the registration, reads /3/0,
writes attributes and observes the temperature, prints the notifications,
and finally stops the daemon (SIGTERM), which De-registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path as FsPath
from typing import TypeVar

from lwm2md.codec import ContentFormat
from lwm2md.model.types import Record
from lwm2md.testing.bootstrap import BootstrapServer, ServerAccountSpec
from lwm2md.testing.server import TestServer

T = TypeVar("T")

DEMO_ENDPOINT = "lwm2md-demo"

DEMO_CONFIG = """\
# The embedded demo configuration: simulated hardware, one local test server.
[device]
endpoint = "{endpoint}"
manufacturer = "lwm2md demo"
model = "simulated gateway"

# No [[server]]: the Bootstrap-Server provides the server account at first start.
[bootstrap]
uri = "{bootstrap_uri}"

# A BME280 on I2C bus 1; with --simulate the real driver runs on a simulated bus.
[[sensor]]
driver = "bme280"
bus = 1
address = 0x76
objects = [3303, 3304, 3315]
interval = 1.0
period = 60.0

[[gpio]]
kind = "output"
pin = 27

[send]
paths = ["/3303/0/5700", "/3304/0/5700"]
interval = 5.0

[logging]
level = "info"
"""


def _say(text: str) -> None:
    print(text, flush=True)


def _show_records(records: list[Record] | None) -> str:
    if not records:
        return "(nothing)"
    return ", ".join(f"{r.path}={r.value!r}" for r in records)


async def _pump(stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        _say("  daemon | " + line.decode(errors="replace").rstrip())


async def _unless_exits(child: asyncio.subprocess.Process, work: Awaitable[T]) -> T:
    """Await ``work`` but fail at once if the daemon process exits meanwhile."""
    job = asyncio.ensure_future(work)
    died = asyncio.ensure_future(child.wait())
    done, _ = await asyncio.wait({job, died}, return_when=asyncio.FIRST_COMPLETED)
    died.cancel()
    if job not in done:
        job.cancel()
        raise RuntimeError(f"the daemon exited with {child.returncode} before registering")
    return job.result()


async def run_demo(duration: float = 12.0) -> int:
    """Run the demo; returns 0 when the daemon registered, reported and De-registered."""
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: _say("  server | " + line))
    bootstrap = await BootstrapServer.start("127.0.0.1", 0, log=lambda line: _say("  bootstrap | " + line))
    bootstrap.provision(DEMO_ENDPOINT, [ServerAccountSpec(uri=server.uri, ssid=1, lifetime=60)])
    workdir = tempfile.mkdtemp(prefix="lwm2md-demo-")
    config_path = FsPath(workdir) / "lwm2md.toml"
    config_path.write_text(DEMO_CONFIG.format(endpoint=DEMO_ENDPOINT, bootstrap_uri=bootstrap.uri))
    _say(f"bootstrap server on {bootstrap.uri}, test server on {server.uri}; "
         f"starting the daemon with {config_path}")  # fmt: skip
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lwm2md", "run", "--simulate", "--config", str(config_path),
        "--state-dir", workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stderr is not None
    pump = asyncio.get_running_loop().create_task(_pump(child.stderr))
    ok = False
    try:
        finished = await _unless_exits(child, bootstrap.wait_event("bootstrap-finished", timeout=15))
        _say(f"bootstrapped: {', '.join(finished.paths)}")
        reg = await _unless_exits(child, server.wait_registered(DEMO_ENDPOINT, timeout=15))
        _say(f"registered: {reg.endpoint} lifetime={reg.lifetime}s objects={' '.join(reg.objects)}")
        device = await server.read(DEMO_ENDPOINT, "/3/0")
        _say(f"read /3/0 -> {device.code}: {_show_records(device.records)}")
        written = await server.write(DEMO_ENDPOINT, "/3303/0/5750", "demo room", fmt=ContentFormat.TEXT)
        label = await server.read(DEMO_ENDPOINT, "/3303/0/5750")
        _say(f"write /3303/0/5750 (application type) -> {written.code}; read back {label.text!r}")
        triggered = await server.execute(DEMO_ENDPOINT, "/1/0/8")
        _say(f"execute /1/0/8 (registration update trigger) -> {triggered.code}")
        await server.wait_event("update", endpoint=DEMO_ENDPOINT, timeout=10)
        await server.write_attributes(DEMO_ENDPOINT, "/3303/0/5700", pmin=1, pmax=4)
        _say("write-attributes /3303/0/5700 pmin=1 pmax=4")
        obs = await server.observe(DEMO_ENDPOINT, "/3303/0/5700")
        _say(f"observing /3303/0/5700 -> {obs.first.code}, first value {_show_records(obs.first.records)}")
        if not obs.active:
            raise RuntimeError("the daemon refused the observation")
        deadline = asyncio.get_running_loop().time() + duration
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                note = await asyncio.wait_for(obs.notifications.get(), remaining)
            except TimeoutError:
                break
            _say(f"notification: {_show_records(note.records)}")
        cancelled = await obs.cancel()
        _say(f"observation cancelled -> {cancelled.code}")
        ok = True
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), 10)
        if child.returncode is None:
            child.kill()
            await child.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pump, 2)
        deregistered = DEMO_ENDPOINT not in server.registrations
        await server.stop()
        await bootstrap.stop()
    _say(f"daemon exited with {child.returncode}; de-registered: {'yes' if deregistered else 'no'}")
    return 0 if ok and deregistered and child.returncode == 0 else 1
