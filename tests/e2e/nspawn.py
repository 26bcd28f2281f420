"""A Debian bookworm system booted with systemd-nspawn, for the end-to-end tests.

The root file system is made once with debootstrap and cached under
``/var/cache/lwm2md-e2e/`` (``LWM2MD_E2E_CACHE``), keyed on a hash of how it
is made (suite, mirror, package list); a run boots a copy-on-write overlay of
it, so runs never change the cache. The container shares the host's network
namespace, so a server on the host's 127.0.0.1 and the daemon inside reach
each other. Commands run inside through ``nsenter`` into the container's PID 1,
so neither machined nor a systemd on the host is needed.

Everything here needs root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("LWM2MD_E2E_MIRROR", "http://deb.debian.org/debian")
# libpam-systemd provides "logind", which debootstrap cannot resolve for polkitd on its own.
PACKAGES = ("systemd", "dbus", "libpam-systemd", "polkitd", "ca-certificates")
TREE_FORMAT = 1  # bump when the preparation below changes
CACHE_ROOT = Path(os.environ.get("LWM2MD_E2E_CACHE", "/var/cache/lwm2md-e2e"))
HOST_TOOLS = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap", "nsenter": "util-linux"}
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerError(RuntimeError):
    """The container did not boot, or a command inside it failed."""


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- host tools


def missing_host_tools() -> list[str]:
    return [tool for tool in HOST_TOOLS if shutil.which(tool) is None]


def install_host_tools() -> None:
    """apt-get install the Debian packages of any missing host tool."""
    packages = sorted({HOST_TOOLS[tool] for tool in missing_host_tools()})
    if not packages:
        return
    log(f"installing {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q"]
    subprocess.run([*apt, "update"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*apt, "install", "--no-install-recommends", *packages], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


# --------------------------------------------------------------------------- the cached tree


def tree_key() -> str:
    recipe = {"suite": SUITE, "mirror": MIRROR, "variant": "minbase", "packages": sorted(PACKAGES),
              "format": TREE_FORMAT}  # fmt: skip
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_tree() -> Path:
    """The cached bookworm tree, made with debootstrap on first use (a few minutes)."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    key = tree_key()
    tree = CACHE_ROOT / f"{SUITE}-{key}"
    with _locked(CACHE_ROOT / "tree.lock"):
        if (tree / ".lwm2md-e2e-complete").exists():
            log(f"using cached tree {tree}")
            return tree
        for old in CACHE_ROOT.glob(f"{SUITE}-*"):  # other recipes, or a half-made tree
            log(f"removing stale tree {old}")
            shutil.rmtree(old, ignore_errors=True)
        partial = CACHE_ROOT / f".partial-{key}"
        shutil.rmtree(partial, ignore_errors=True)
        log(f"debootstrap {SUITE} ({', '.join(PACKAGES)}) into {partial}; this takes a few minutes once")
        started = time.monotonic()
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(partial)]
        result = subprocess.run(
            [*command, MIRROR], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        if result.returncode != 0:
            raise ContainerError(f"debootstrap failed ({result.returncode}):\n{result.stdout[-3000:]}")
        _prepare_tree(partial)
        (partial / ".lwm2md-e2e-complete").write_text(key + "\n")
        partial.rename(tree)
        log(f"tree ready in {time.monotonic() - started:.0f} s")
        return tree


def _prepare_tree(root: Path) -> None:
    """Make the fresh tree a quiet, bootable container image."""
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    (root / "etc/hostname").write_text("lwm2md-e2e\n")
    # Units that only make noise or wait in vain inside a container.
    for unit in ("systemd-networkd-wait-online.service", "getty@tty1.service", "console-getty.service"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")


# --------------------------------------------------------------------------- a run's root


class Overlay:
    """A writable copy-on-write view of ``lower`` under ``workdir/merged``.

    Falls back to a full copy when overlayfs cannot be mounted here.
    """

    def __init__(self, lower: Path, workdir: Path) -> None:
        self.lower = lower
        self.workdir = workdir
        self.merged = workdir / "merged"
        self.mounted = False

    def __enter__(self) -> Overlay:
        for sub in ("upper", "work", "merged"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={self.lower},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}"
        mount = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(self.merged)],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if mount.returncode == 0:
            self.mounted = True
        else:
            log(f"overlayfs unavailable ({mount.stderr.strip()}); copying the tree instead")
            self.merged.rmdir()
            subprocess.run(["cp", "-a", "--reflink=auto", str(self.lower), str(self.merged)], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mounted and subprocess.run(["umount", str(self.merged)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(self.merged)], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def new_run_dir() -> Path:
    """A fresh directory for one run's overlay; stale ones of dead runs are removed first."""
    runs = CACHE_ROOT / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for old in runs.iterdir():
        try:
            pid = int((old / "pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and Path(f"/proc/{pid}").exists():
            continue
        merged = old / "merged"
        if os.path.ismount(merged):
            subprocess.run(["umount", "-l", str(merged)], check=False)
        shutil.rmtree(old, ignore_errors=True)
    run = Path(os.path.realpath(runs)) / f"run-{os.getpid()}-{int(time.time())}"
    run.mkdir()
    (run / "pid").write_text(str(os.getpid()))
    return run


# --------------------------------------------------------------------------- the container


class Container:
    """One ``systemd-nspawn -b`` of ``root``; commands run inside with nsenter."""

    def __init__(self, root: Path, name: str, console_log: Path) -> None:
        self.root = root
        self.name = name
        self.console_log = console_log
        self.process: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.boots = 0

    # -- lifecycle ----------------------------------------------------------------

    def boot(self, timeout: float = 90.0) -> float:
        """Boot and wait until systemd reports the system up; returns the seconds it took."""
        if self.running:
            raise ContainerError("container already running")
        started = time.monotonic()
        self.boots += 1
        with open(self.console_log, "ab") as console:
            console.write(f"\n===== boot {self.boots} =====\n".encode())
            console.flush()
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--directory", str(self.root),
                 "--machine", self.name, "--link-journal=no", "--console=pipe", "--resolv-conf=copy-host",
                 "--timezone=off"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = started + timeout
        self.leader = self._find_leader(deadline)
        # Until the manager has its bus up, systemctl fails at once instead of waiting.
        while True:
            result = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                              timeout=max(5.0, deadline - time.monotonic()))  # fmt: skip
            state = result.stdout.strip()
            if state in ("running", "degraded") or time.monotonic() > deadline:
                break
            if state not in ("", "initializing", "starting"):
                break
            time.sleep(0.2)
        if state not in ("running", "degraded"):
            raise ContainerError(
                f"container did not come up: {state!r} {result.stderr}\n{self.console_tail()}"
            )
        if state == "degraded":
            failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
            log(f"container degraded; failed units:\n{failed}")
        elapsed = time.monotonic() - started
        log(f"container {self.name} up ({state}) in {elapsed:.1f} s, PID 1 is host PID {self.leader}")
        return elapsed

    def _find_leader(self, deadline: float) -> int:
        """The host PID of the container's init: nspawn's child that is PID 1 in its namespace."""
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ContainerError(
                    f"systemd-nspawn exited with {self.process.returncode}\n{self.console_tail()}"
                )
            for task in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
                for pid in task.read_text().split():
                    with contextlib.suppress(OSError):
                        status = Path(f"/proc/{pid}/status").read_text()
                        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
                        comm = Path(f"/proc/{pid}/comm").read_text().strip()
                        # PID 1 in its namespace, and already exec'd into systemd (before
                        # that it is nspawn's child still setting up the mounts).
                        if nspid.split()[-1] == "1" and len(nspid.split()) > 2 and comm == "systemd":
                            return int(pid)
            time.sleep(0.1)
        raise ContainerError(f"no container init appeared\n{self.console_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        """Wait for systemd-nspawn to exit (the container powered off or rebooted); its status."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ContainerError(
                f"container still running after {timeout:.0f} s\n{self.console_tail()}"
            ) from None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Power the container off; kill systemd-nspawn's process group if it does not go."""
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(Exception):
            self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=10)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("container did not power off; killing systemd-nspawn")
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    # -- inside -------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container, as root, with a clean environment."""
        if not self.running:
            raise ContainerError(f"container not running; cannot run {list(argv)}")
        command = ["nsenter", "--target", str(self.leader), "--all", "--root", "--wd",
                   "env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive",
                   "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", *argv]  # fmt: skip
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ContainerError(
                f"{' '.join(argv)} exited with {result.returncode}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
            )
        return result

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-euc", script], **kwargs)  # type: ignore[arg-type]

    def write(self, path: str, text: str) -> None:
        """Write a file inside the container (keeping the mode of an existing file)."""
        self.run(["sh", "-c", 'cat > "$1"', "sh", path], input=text)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` properties of ``unit``."""
        out = self.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def boot_id(self) -> str:
        return self.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip()

    def journal(self, unit: str, lines: int = 60) -> str:
        if not self.running:
            return "(container not running)"
        return self.run(["journalctl", "-u", unit, "--no-pager", "-n", str(lines), "-o", "short-monotonic"],
                        check=False).stdout  # fmt: skip

    def console_tail(self, size: int = 4000) -> str:
        try:
            data = self.console_log.read_bytes()[-size:]
        except OSError:
            return ""
        return "--- container console (tail)\n" + data.decode("utf-8", "replace")
