"""End to end on a real systemd: the Debian package in a booted bookworm container.

The tests run in order and share one container (module scope); each step
builds on the previous one:

install -> register and read /3/0 -> reload keeps the registration ->
journal -> sandbox probes -> bad config (exit 78, no restart loop) ->
stop De-registers -> upgrade keeps the config and restarts -> self-update:
a newer lwm2md .deb pushed to /5/0/0 and installed by Execute /5/0/2
through lwm2md-install.service -> Execute Reboot reboots the container ->
it comes back and registers -> purge.

The LwM2M server is lwm2md.testing.TestServer in this process on
127.0.0.1:<ephemeral>; the container shares the host's network namespace.

Opt in with LWM2MD_E2E=1 (or CI=true); needs root, systemd-nspawn and
debootstrap (installed with apt-get when missing) and network access to a
Debian mirror. LWM2MD_DEB=path/to/lwm2md_*.deb tests that package instead of
building one with tools/build-deb. docs/packaging.md has the details.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lwm2md.testing import Event, TestServer

from . import nspawn

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
EP = "lwm2md-e2e"
UNIT = "lwm2md.service"
INSTALL_UNIT = "lwm2md-install.service"
OPAQUE = 42  # application/octet-stream
VENV_PYTHON = "/usr/lib/lwm2md/venv/bin/python"
CONFIG = "/etc/lwm2md/lwm2md.toml"
EXIT_CONFIG = 78
MAX_EXPOSURE = 2.5


def _skip_reason() -> str | None:
    if not (os.environ.get("LWM2MD_E2E") == "1" or os.environ.get("CI") == "true"):
        return ("end-to-end systemd test not requested: set LWM2MD_E2E=1 (or CI=true); it boots a "
                "Debian container with systemd-nspawn and needs root and a Debian mirror")  # fmt: skip
    if not sys.platform.startswith("linux"):
        return "end-to-end systemd test needs Linux"
    if os.geteuid() != 0:
        return "end-to-end systemd test needs root (debootstrap, overlayfs, systemd-nspawn)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


# --------------------------------------------------------------------------- the LwM2M server


class ServerThread:
    """A TestServer on its own event loop thread, driven synchronously from the tests."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lwm2m-server", daemon=True)
        self.thread.start()
        self.server: TestServer = self.call(TestServer.start("127.0.0.1", 0, log=self._log))

    def _log(self, line: str) -> None:
        self.lines.append(f"{time.strftime('%H:%M:%S')} {line}")

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.server.port

    def drain(self) -> list[Event]:
        """Every event since the last drain, oldest first."""

        async def take() -> list[Event]:
            out = []
            while not self.server.events.empty():
                out.append(self.server.events.get_nowait())
            return out

        return self.call(take())

    def wait_event(self, kind: Any, timeout: float) -> Event:
        return self.call(self.server.wait_event(kind, timeout=timeout, endpoint=EP), timeout + 5)

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def daemon_config(port: int) -> str:
    return f"""\
# Written by tests/e2e/test_systemd.py
[device]
endpoint = "{EP}"
manufacturer = "E2E Inc"
model = "nspawn"
reboot_command = ["systemctl", "reboot"]

[[server]]
uri = "coap://127.0.0.1:{port}"
short_id = 1
lifetime = 60
communication_retry_timer = 2

[[sensor]]
driver = "simulated"
objects = [3303]
interval = 5.0

[firmware]
# helper: the default, `systemctl start lwm2md-install.service`.
installers = {{ deb = ["apt-get", "install", "-y", "-q", "--allow-downgrades", "{{package}}"] }}
install_timeout = 300.0
"""


# --------------------------------------------------------------------------- fixtures


class Rig:
    """What the steps share: the container, the server, the package, timings."""

    def __init__(self, machine: nspawn.Container, server: ServerThread, deb: Path, run_dir: Path) -> None:
        self.machine = machine
        self.server = server
        self.deb = deb
        self.run_dir = run_dir
        self.timings: dict[str, float] = {}

    def explain(self, what: str, *units: str) -> str:
        """An assertion message with the daemon's journal (and ``units``'), and the server's log."""
        server_log = "\n".join(self.server.lines[-30:])
        journals = "".join(
            f"--- journalctl -u {unit}\n{self.machine.journal(unit)}\n" for unit in (UNIT, *units)
        )
        return f"{what}\n{journals}--- test server\n{server_log}"

    def wait_registered(self, timeout: float = 30.0) -> Event:
        try:
            return self.server.wait_event("register", timeout)
        except TimeoutError:
            pytest.fail(self.explain(f"{EP} did not register within {timeout:.0f} s"))

    def wait_state(self, active: str, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            props = self.machine.show(UNIT, "ActiveState", "SubState", "Result", "ExecMainStatus",
                                      "NRestarts", "MainPID")  # fmt: skip
            if props.get("ActiveState") == active or time.monotonic() > deadline:
                return props
            time.sleep(0.3)

    def main_pid(self) -> int:
        return int(self.machine.show(UNIT, "MainPID")["MainPID"])


def _build_deb(out: Path) -> Path:
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "tools/build-deb"), str(out)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"tools/build-deb failed:\n{result.stderr[-5000:]}")
    nspawn.log(f"tools/build-deb took {time.monotonic() - started:.0f} s")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    t0 = time.monotonic()
    if nspawn.missing_host_tools():
        try:
            nspawn.install_host_tools()
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot install {', '.join(nspawn.missing_host_tools())}: {exc}")
    timings: dict[str, float] = {}

    given = os.environ.get("LWM2MD_DEB")
    if given:
        deb = Path(given).resolve()
        assert deb.is_file(), f"LWM2MD_DEB={given} is not a file"
    else:
        t = time.monotonic()
        deb = _build_deb(tmp_path_factory.mktemp("deb"))
        timings["build .deb"] = time.monotonic() - t

    t = time.monotonic()
    tree = nspawn.cached_tree()
    timings["cached tree"] = time.monotonic() - t

    run_dir = nspawn.new_run_dir()
    server = ServerThread()
    with nspawn.Overlay(tree, run_dir) as overlay:
        inbox = overlay.merged / "root/debs"
        inbox.mkdir(parents=True, exist_ok=True)
        shutil.copy2(deb, inbox / deb.name)
        machine = nspawn.Container(overlay.merged, f"lwm2md-e2e-{os.getpid()}", run_dir / "console.log")
        rig = Rig(machine, server, Path("/root/debs") / deb.name, run_dir)
        rig.timings = timings
        try:
            timings["first boot"] = machine.boot()
            yield rig
        finally:
            if machine.running:
                machine.shutdown()
            server.close()
    timings["total"] = time.monotonic() - t0
    summary = ", ".join(f"{name} {secs:.0f} s" for name, secs in timings.items())
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntests/e2e timings: {summary}")


# --------------------------------------------------------------------------- the steps


def test_install_on_clean_bookworm(rig: Rig) -> None:
    m = rig.machine
    t = time.monotonic()
    m.run(["apt-get", "update", "-q"], timeout=300)
    m.run(["apt-get", "install", "-y", "-q", str(rig.deb)], timeout=600)
    rig.timings["apt install"] = time.monotonic() - t

    assert m.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "enabled"
    assert m.run(["lwm2md", "--version"]).stdout.startswith("lwm2md ")
    assert CONFIG in m.run(["dpkg-query", "-W", "-f=${Conffiles}", "lwm2md"]).stdout
    passwd = m.run(["getent", "passwd", "lwm2md"]).stdout.strip().split(":")
    assert passwd[5] == "/var/lib/lwm2md" and passwd[6] == "/usr/sbin/nologin", passwd
    groups = m.run(["id", "-nG", "lwm2md"]).stdout.split()
    assert {"lwm2md", "i2c", "gpio", "dialout"} <= set(groups), groups
    for path in ("/lib/udev/rules.d/60-lwm2md-modem.rules", "/usr/share/polkit-1/rules.d/60-lwm2md.rules",
                 "/usr/share/man/man8/lwm2md.8.gz", "/usr/share/man/man5/lwm2md.toml.5.gz"):  # fmt: skip
        m.run(["test", "-f", path])

    # The shipped config points at coap://127.0.0.1:5683, where nobody answers:
    # the service is up (READY=1 after bind) and keeps retrying, no restarts.
    props = rig.wait_state("active", timeout=30)
    assert props["ActiveState"] == "active", rig.explain(f"after install: {props}")
    time.sleep(3)
    props = m.show(UNIT, "ActiveState", "NRestarts", "StatusText")
    assert props["ActiveState"] == "active" and props["NRestarts"] == "0", rig.explain(f"{props}")
    nspawn.log(f"status with the shipped config: {props['StatusText']!r}")

    # The unit as installed: verify is silent, exposure as tools/check-unit promises.
    verify = m.run(["systemd-analyze", "verify", "--man=no", UNIT], check=False)
    assert verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
    security = m.run(["systemd-analyze", "security", "--no-pager", UNIT], check=False).stdout
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security)
    assert match and float(match[1]) <= MAX_EXPOSURE, security[-2000:]
    nspawn.log(f"exposure of the running unit: {match[1]}")


def test_registers_and_serves_reads(rig: Rig) -> None:
    m = rig.machine
    m.write(CONFIG, daemon_config(rig.server.port))
    rig.server.drain()
    m.run(["systemctl", "restart", UNIT])
    event = rig.wait_registered()
    assert event.registration is not None and event.registration.lifetime == 60

    response = rig.server.call(rig.server.server.read(EP, "/3/0"))
    assert response.ok, response
    values = {str(r.path): r.value for r in response.records or []}
    assert values.get("/3/0/0") == "E2E Inc", values
    assert values.get("/3/0/1") == "nspawn", values
    # Free memory comes from /proc/meminfo: readable in the sandbox (no ProcSubset=pid).
    free = values.get("/3/0/10")
    assert isinstance(free, int) and free > 0, values

    # The daemon runs as lwm2md with the hardware groups.
    status = m.run(["cat", f"/proc/{rig.main_pid()}/status"]).stdout
    uid = m.run(["id", "-u", "lwm2md"]).stdout.strip()
    assert re.search(rf"^Uid:\s+{uid}\s", status, re.M), status
    gids = set(re.search(r"^Groups:\s*(.*)$", status, re.M)[1].split())  # type: ignore[index]
    for group in ("i2c", "gpio", "dialout"):
        gid = m.run(["getent", "group", group]).stdout.split(":")[2]
        assert gid in gids, (group, gid, gids)


def test_reload_keeps_registration(rig: Rig) -> None:
    m = rig.machine
    before = rig.server.server.registrations[EP]
    pid = rig.main_pid()
    rig.server.drain()
    m.run(["systemctl", "reload", UNIT])
    deadline = time.monotonic() + 15
    while "configuration reloaded" not in m.journal(UNIT, 20) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # room for a De-register/Register to show up, if one were coming
    kinds = [e.kind for e in rig.server.drain()]
    assert "configuration reloaded: nothing changed" in m.journal(UNIT, 20), rig.explain("no reload line")
    assert "deregister" not in kinds and "register" not in kinds, rig.explain(f"events after reload: {kinds}")
    assert rig.server.server.registrations[EP].location == before.location
    props = m.show(UNIT, "ActiveState", "MainPID", "NRestarts")
    assert props == {"ActiveState": "active", "MainPID": str(pid), "NRestarts": "0"}, props


def test_journal_has_the_daemons_lines(rig: Rig) -> None:
    out = rig.machine.run(["journalctl", "-u", UNIT, "--no-pager", "-o", "verbose", "--output-fields",
                           "MESSAGE,SYSLOG_IDENTIFIER,CODE_FUNC"]).stdout  # fmt: skip
    assert f"running as endpoint {EP}" in out, out[-3000:]
    # Through the journal module (structured), not only as captured stderr.
    assert "SYSLOG_IDENTIFIER=lwm2md" in out and "CODE_FUNC=" in out, out[-3000:]


def _sandbox_properties(machine: nspawn.Container) -> list[str]:
    """The [Service] sandbox settings of the installed unit, as systemd-run -p options."""
    skip = {"Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "TimeoutStopSec", "Restart",
            "RestartSec", "RestartPreventExitStatus"}  # fmt: skip
    text = machine.run(["cat", f"/lib/systemd/system/{UNIT}"]).stdout
    service = text.split("[Service]", 1)[1].split("\n[", 1)[0]
    props = []
    for line in service.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line.split("=", 1)[0] not in skip:
            props.append(f"--property={line}")
    return props


PROBE = r"""
import ctypes, importlib, pkgutil, shutil, subprocess, sys, sysconfig
cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)   # a libffi closure
assert cb(41) == 42
# The daemon runs `ip -j addr` (iproute2, recommended by the package) for interface addresses.
assert shutil.which("ip"), "iproute2 missing"
subprocess.run(["ip", "-j", "addr", "show", "dev", "lo"], check=True, capture_output=True)
site = sysconfig.get_paths()["purelib"]
names = sorted({m.name for m in pkgutil.iter_modules([site])} - {"_distutils_hack"})
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc!r}")
open("/proc/meminfo").read(1)
print("imported", " ".join(names), "- failed:", failed)
sys.exit(1 if failed else 0)
"""


def test_sandbox_allows_ctypes_ip_and_every_bundled_module(rig: Rig) -> None:
    """MemoryDenyWriteExecute, the syscall filter etc. leave ctypes, `ip` and every bundled module working."""
    m = rig.machine
    plain = m.run([VENV_PYTHON, "-c", PROBE], check=False)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    sandboxed = m.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect", *_sandbox_properties(m),
                       VENV_PYTHON, "-c", PROBE], check=False)  # fmt: skip
    assert sandboxed.returncode == 0, sandboxed.stdout + sandboxed.stderr
    assert sandboxed.stdout == plain.stdout
    nspawn.log(f"sandboxed probe: {sandboxed.stdout.strip()}")


def test_procsubset_pid_would_hide_meminfo(rig: Rig) -> None:
    """Why the unit has no ProcSubset=pid: the Device object reads /proc/meminfo."""
    m = rig.machine
    probe = m.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect", *_sandbox_properties(m),
                   "--property=ProcSubset=pid", "cat", "/proc/meminfo"], check=False)  # fmt: skip
    assert probe.returncode != 0


def test_factory_reset_forgets_state_and_the_service_comes_back(rig: Rig) -> None:
    """Execute /3/0/5 from the hardened service: state is wiped, systemd restarts it, it registers."""
    m = rig.machine
    server = rig.server.server
    pid = rig.main_pid()
    written = rig.server.call(server.write(EP, "/3/0/15", "Europe/Paris", fmt=0))
    assert written.code == "2.04", written
    assert m.run(["test", "-s", "/var/lib/lwm2md/written.json"], check=False).returncode == 0
    rig.server.drain()
    assert rig.server.call(server.execute(EP, "/3/0/5")).code == "2.04"
    rig.server.wait_event("deregister", 20)
    rig.wait_registered(timeout=40)  # RestartSec=5s, then a fresh Register
    props = m.show(UNIT, "ActiveState", "NRestarts", "MainPID")
    assert props["ActiveState"] == "active" and props["NRestarts"] == "1", props
    assert props["MainPID"] != str(pid), props
    assert m.run(["test", "-e", "/var/lib/lwm2md/written.json"], check=False).returncode != 0
    timezone = rig.server.call(server.read(EP, "/3/0/15"))
    assert timezone.payload != b"Europe/Paris", timezone


def test_bad_config_exits_78_without_restart_loop(rig: Rig) -> None:
    m = rig.machine
    good = daemon_config(rig.server.port)
    m.write(CONFIG, good.replace("lifetime = 60", 'lifetime = "forever"'))
    restart = m.run(["systemctl", "restart", UNIT], check=False)
    assert restart.returncode != 0
    props = rig.wait_state("failed", timeout=30)
    assert props["ActiveState"] == "failed", rig.explain(f"{props}")
    assert props["Result"] == "exit-code" and props["ExecMainStatus"] == str(EXIT_CONFIG), props
    time.sleep(7)  # longer than RestartSec=5s: a restart would have happened by now
    props = m.show(UNIT, "ActiveState", "NRestarts")
    assert props == {"ActiveState": "failed", "NRestarts": "0"}, props
    assert "server[0].lifetime" in m.journal(UNIT, 30), rig.explain("the error does not name the key")

    m.write(CONFIG, good)
    rig.server.drain()
    m.run(["systemctl", "restart", UNIT])
    rig.wait_registered()


def test_stop_deregisters(rig: Rig) -> None:
    m = rig.machine
    rig.server.drain()
    m.run(["systemctl", "stop", UNIT])
    event = rig.server.wait_event("deregister", 10)
    assert event.reason == "deregister"
    props = m.show(UNIT, "ActiveState", "Result")
    assert props == {"ActiveState": "inactive", "Result": "success"}, props
    m.run(["systemctl", "start", UNIT])
    rig.wait_registered()


def _repack(rig: Rig, suffix: str, out: Path) -> tuple[Path, str]:
    """The package under test rebuilt with ``+<suffix>`` appended to its version; (file, version)."""
    src = rig.machine.root / str(rig.deb).lstrip("/")
    with tempfile.TemporaryDirectory(prefix="lwm2md-repack-") as scratch:
        unpacked = Path(scratch) / "pkg"
        subprocess.run(["dpkg-deb", "-R", str(src), str(unpacked)], check=True)
        control = unpacked / "DEBIAN/control"
        version = re.search(r"^Version: (.*)$", control.read_text(), re.M)[1]  # type: ignore[index]
        newer = f"{version}+{suffix}"
        control.write_text(control.read_text().replace(f"Version: {version}", f"Version: {newer}"))
        subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(unpacked), str(out)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return out, newer


def test_upgrade_keeps_config_and_restarts(rig: Rig) -> None:
    """Install a rebuilt package with a higher version: the edited conffile stays, the service restarts."""
    m = rig.machine
    _, version = _repack(rig, "e2e1", m.root / "root/debs/lwm2md-upgrade.deb")
    pid = rig.main_pid()
    rig.server.drain()
    m.run(["apt-get", "install", "-y", "-q", "/root/debs/lwm2md-upgrade.deb"], timeout=300)
    assert m.run(["dpkg-query", "-W", "-f=${Version}", "lwm2md"]).stdout == version
    assert m.run(["cat", CONFIG]).stdout == daemon_config(rig.server.port)
    rig.wait_registered()
    assert rig.main_pid() not in (0, pid)


def _read_value(rig: Rig, path: str) -> Any:
    response = rig.server.call(rig.server.server.read(EP, path))
    assert response.ok, rig.explain(f"Read {path}: {response}")
    return response.value


def _try_read(rig: Rig, path: str) -> Any:
    """The value at ``path``, or a description of why there is none (not registered, restarting...)."""
    try:
        response = rig.server.call(rig.server.server.read(EP, path, timeout=5), timeout=10)
    except Exception as exc:
        return f"no answer: {exc!r}"[:200]
    return response.value if response.ok else f"{response.code}"


def _wait_values(rig: Rig, wanted: dict[str, Any], timeout: float, what: str, *units: str) -> dict[str, Any]:
    """Poll Reads of ``wanted``'s paths until they all hold those values (the daemon may be restarting).

    An Update Result (/5/0/5) other than 0 or 1 ends the attempt: /5 stays there, so that fails at once.
    """
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while True:
        seen = {path: _try_read(rig, path) for path in wanted}
        if seen == wanted:
            return seen
        failed = isinstance(seen.get("/5/0/5"), int) and seen["/5/0/5"] not in (0, 1)
        if failed or time.monotonic() > deadline:
            pytest.fail(rig.explain(f"{what}: wanted {wanted}, seen {seen}", *units))
        time.sleep(1.0)


def test_self_update_through_firmware_object(rig: Rig, tmp_path: Path) -> None:
    """Issue 7, item 6: a newer lwm2md .deb pushed to /5/0/0 and installed by Execute /5/0/2.

    The daemon hands the package to lwm2md-install.service (started through
    polkit), whose apt-get restarts lwm2md itself; the new daemon reads the
    helper's result, reports Update Result 1 and keeps its registration (an Update, no Register).
    """
    m = rig.machine
    server = rig.server.server
    verify = m.run(["systemd-analyze", "verify", "--man=no", INSTALL_UNIT], check=False)
    assert verify.stdout + verify.stderr == "", verify.stdout + verify.stderr

    package, version = _repack(rig, "e2e2", tmp_path / "lwm2md-self-update.deb")
    data = package.read_bytes()
    assert m.run(["dpkg-query", "-W", "-f=${Version}", "lwm2md"]).stdout != version
    _wait_values(rig, {"/5/0/3": 0}, 10, "/5 before the push")

    t = time.monotonic()
    pushed = rig.server.call(server.write(EP, "/5/0/0", data, fmt=OPAQUE, timeout=180), timeout=190)
    push_secs = time.monotonic() - t
    assert pushed.code == "2.04", rig.explain(f"push of {len(data)} bytes to /5/0/0: {pushed}")
    nspawn.log(f"pushed {len(data)} bytes to /5/0/0 in {push_secs:.1f} s")
    _wait_values(rig, {"/5/0/3": 2, "/5/0/5": 0}, 30, "/5 after the push (Downloaded)")
    assert _read_value(rig, "/5/0/6") == "lwm2md"
    assert _read_value(rig, "/5/0/7") == version

    pid = rig.main_pid()
    rig.server.drain()
    t = time.monotonic()
    executed = rig.server.call(server.execute(EP, "/5/0/2"))
    assert executed.code == "2.04", rig.explain(f"Execute /5/0/2: {executed}")

    # apt-get (run by the helper as root) installs the package and restarts lwm2md.
    deadline = time.monotonic() + 180
    while m.run(["dpkg-query", "-W", "-f=${Version}", "lwm2md"]).stdout != version:
        if time.monotonic() > deadline:
            pytest.fail(rig.explain(f"lwm2md {version} not installed", INSTALL_UNIT))
        time.sleep(1.0)
    # The new daemon finds the helper's result and reports success: Idle, Update Result 1.
    _wait_values(rig, {"/5/0/3": 0, "/5/0/5": 1}, 120, "/5 after the self-update", INSTALL_UNIT)
    rig.timings["self-update"] = time.monotonic() - t
    props = m.show(UNIT, "ActiveState", "MainPID")
    restarted = props["ActiveState"] == "active" and props["MainPID"] not in ("0", str(pid))
    assert restarted, rig.explain(f"lwm2md was PID {pid} before the update, now {props}")

    # Registered, and the server heard from the new daemon after the install.
    assert EP in server.registrations
    kinds = [e.kind for e in rig.server.drain()]
    # The registration is kept: no De-register for the restart, the new daemon resumes it with an Update.
    assert "update" in kinds and not {"register", "deregister"} & set(kinds), rig.explain(
        f"events since the Execute: {kinds}"
    )
    nspawn.log(f"events since Execute /5/0/2: {kinds}")
    firmware = _read_value(rig, "/3/0/3")
    assert isinstance(firmware, str) and "lwm2md" in firmware, firmware

    # The install ran in lwm2md-install.service, and left nothing pending.
    install = m.show(INSTALL_UNIT, "ActiveState", "Result")
    ok = install == {"ActiveState": "inactive", "Result": "success"}
    assert ok, rig.explain(f"{INSTALL_UNIT}: {install}", INSTALL_UNIT)
    journal = m.journal(INSTALL_UNIT, 40)
    ran = "installing deb package with apt-get" in journal and "result 1: installed with apt-get" in journal
    assert ran, rig.explain("the install is not in the journal", INSTALL_UNIT)
    for name in ("install-request.json", "install-result.json", "package"):
        path = f"/var/lib/lwm2md/firmware/{name}"
        assert m.run(["test", "-e", path], check=False).returncode != 0, f"{path} left after the update"


def test_reboot_by_execute(rig: Rig) -> None:
    """Execute /3/0/4 runs `systemctl reboot` as lwm2md, allowed by the polkit rule."""
    m = rig.machine
    boot_id = m.boot_id()
    response = rig.server.call(rig.server.server.execute(EP, "/3/0/4"))
    assert response.code == "2.04", response
    try:
        status = m.wait_exit(timeout=60)
    except nspawn.ContainerError:
        pytest.fail(rig.explain("the container did not go down after Execute /3/0/4"))
    assert status == 133, f"systemd-nspawn exit status {status} (133 means the container asked for a reboot)"

    # Boot the same tree again: the enabled service comes back and registers.
    rig.server.drain()
    m.boot()
    assert m.boot_id() != boot_id
    rig.wait_registered(timeout=60)


def test_purge_removes_user_and_state(rig: Rig) -> None:
    m = rig.machine
    m.run(["test", "-d", "/var/lib/lwm2md"])
    rig.server.drain()
    m.run(["apt-get", "purge", "-y", "-q", "lwm2md"], timeout=300)
    assert rig.server.wait_event("deregister", 10).reason == "deregister"
    assert m.run(["getent", "passwd", "lwm2md"], check=False).returncode == 2
    assert m.run(["getent", "group", "lwm2md"], check=False).returncode == 2
    for path in ("/var/lib/lwm2md", "/etc/lwm2md", "/usr/lib/lwm2md", f"/lib/systemd/system/{UNIT}"):
        assert m.run(["test", "-e", path], check=False).returncode != 0, f"{path} left after purge"
    assert m.run(["systemctl", "is-enabled", UNIT], check=False).returncode != 0
