"""Helpers shared by the benchmark scripts: daemon config and process, /proc readings, tables.

Not a benchmark itself: ``tools/dev bench`` also runs this file, which then
only defines functions and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SENSOR_OBJECTS: tuple[int, ...] = (3303, 3304, 3315, 3301)
"""Temperature, humidity, barometer, illuminance: one simulated sensor feeds all four."""


def daemon_config(
    uri: str,
    endpoint: str,
    *,
    sensors: int = 1,
    objects: Sequence[int] = SENSOR_OBJECTS,
    interval: float = 10.0,
    period: float = 600.0,
    lifetime: int = 300,
    log_level: str = "warning",
) -> str:
    """TOML for one NoSec server at ``uri`` and ``sensors`` simulated sensors.

    ``period`` is the simulated signal's full swing in seconds: a short one
    makes (nearly) every sample a new value, so every sample can notify.
    """
    lines = [
        "[device]",
        f'endpoint = "{endpoint}"',
        'manufacturer = "lwm2md benchmarks"',
        "",
        "[[server]]",
        f'uri = "{uri}"',
        "short_id = 1",
        f"lifetime = {lifetime}",
        "",
        "[logging]",
        f'level = "{log_level}"',
    ]
    for seed in range(sensors):
        lines += [
            "",
            "[[sensor]]",
            'driver = "simulated"',
            f"objects = [{', '.join(map(str, objects))}]",
            f"interval = {interval!r}",
            f"seed = {seed}",
            f"period = {period!r}",
        ]
    return "\n".join(lines) + "\n"


def write_config(workdir: Path, text: str, name: str = "lwm2md.toml") -> Path:
    """Write ``text`` to ``workdir/name`` and return the path."""
    path = workdir / name
    path.write_text(text)
    return path


async def spawn_daemon(
    config: Path, state_dir: Path, *, cpu: int | None = None
) -> asyncio.subprocess.Process:
    """Start ``python -m lwm2md run --simulate`` (stderr to ``state_dir/daemon.log``).

    ``cpu`` pins the whole process (every thread it will start) to that CPU.
    """
    argv = [sys.executable, "-m", "lwm2md", "run", "--simulate",
            "--config", str(config), "--state-dir", str(state_dir)]  # fmt: skip
    if cpu is not None:
        taskset = shutil.which("taskset")
        if taskset is None:
            raise RuntimeError("pinning the daemon to one CPU needs taskset (util-linux)")
        argv = [taskset, "-c", str(cpu), *argv]  # taskset execs: the pid stays the daemon's
    with open(state_dir / "daemon.log", "ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )


async def stop_daemon(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> int:
    """SIGTERM the daemon and return its exit status (SIGKILL, status < 0, after ``timeout``)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
        return -signal.SIGKILL
    return proc.returncode


async def unless_exits(proc: asyncio.subprocess.Process, work: Awaitable[T], log: Path) -> T:
    """Await ``work``; RuntimeError (with the daemon's log tail) if the daemon exits first."""
    job = asyncio.ensure_future(work)
    died = asyncio.ensure_future(proc.wait())
    await asyncio.wait({job, died}, return_when=asyncio.FIRST_COMPLETED)
    died.cancel()
    if not job.done():
        job.cancel()
        tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
        raise RuntimeError(f"the daemon exited with {proc.returncode}:\n" + "\n".join(tail))
    return job.result()


def proc_status_kib(pid: int, fields: Iterable[str]) -> dict[str, int]:
    """Fields of ``/proc/<pid>/status`` given in kB (VmHWM, VmRSS, ...), as KiB integers."""
    wanted = set(fields)
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in wanted:
                out[name] = int(rest.split()[0])
    missing = wanted - out.keys()
    if missing:
        raise RuntimeError(f"/proc/{pid}/status has no {', '.join(sorted(missing))}")
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(
    title: str,
    rows: Sequence[Sequence[str]],
    header: Sequence[str] = ("figure", "value", "target"),
) -> None:
    """Print ``title`` and aligned rows: first and last column left-aligned, the others right."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(title)
    for row in table:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)]
        cells.append(row[-1])
        print("  " + "  ".join(cells).rstrip())
    print(flush=True)
