"""Time from starting the daemon process to its Register being acknowledged.

The in-repo TestServer runs in this process; each run spawns
``python -m lwm2md run --simulate`` against it and measures from just before
the spawn to the server's clock reading of the Register (both
``time.monotonic``). The daemon is then stopped with SIGTERM and must exit 0
after De-registering. For comparison it also times a bare interpreter and
one that only imports the package (fastest of 5 each).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import daemon_config, print_table, spawn_daemon, stop_daemon, unless_exits, write_config

from lwm2md.testing.server import TestServer

RUNS = 5
TARGET_S = 1.5
REGISTER_TIMEOUT = 20.0


def fresh_interpreter_seconds(code: str, runs: int = 5) -> float:
    """Fastest wall time of ``python -c code`` over ``runs`` runs."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - started)
    return best


async def one_run(server: TestServer, workdir: Path, run: int) -> tuple[float, int, bool]:
    """Start, wait for the registration, stop; (seconds to Register, exit status, de-registered)."""
    endpoint = f"bench-startup-{run}"
    state = workdir / f"run{run}"
    state.mkdir()
    config = write_config(state, daemon_config(server.uri, endpoint, sensors=2))
    started = time.monotonic()
    proc = await spawn_daemon(config, state)
    try:
        reg = await unless_exits(
            proc, server.wait_registered(endpoint, REGISTER_TIMEOUT), state / "daemon.log"
        )
    finally:
        status = await stop_daemon(proc)
    return reg.registered_at - started, status, endpoint not in server.registrations


async def main() -> int:
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
    try:
        with tempfile.TemporaryDirectory(prefix="lwm2md-bench-") as tmp:
            results = [await one_run(server, Path(tmp), run) for run in range(RUNS)]
    finally:
        await server.stop()
    times = [r[0] for r in results]
    statuses = [r[1] for r in results]
    deregistered = sum(r[2] for r in results)
    bare = fresh_interpreter_seconds("pass")
    imports = fresh_interpreter_seconds("import lwm2md.app")
    target = f"< {TARGET_S} s"
    print_table(
        f"startup: process start -> Register acknowledged ({RUNS} runs, 2 simulated sensors)",
        [
            ("min", f"{min(times):.3f} s", target),
            ("median", f"{statistics.median(times):.3f} s", target),
            ("max", f"{max(times):.3f} s", target),
            ("for comparison: python -c pass", f"{bare:.3f} s", ""),
            ("for comparison: python -c 'import lwm2md.app'", f"{imports:.3f} s", ""),
            ("exit status after SIGTERM", " ".join(map(str, statuses)), "0 each"),
            ("de-registered before exit", f"{deregistered}/{RUNS}", f"{RUNS}/{RUNS}"),
        ],
    )
    if any(statuses) or deregistered != RUNS:
        print("NOTE: the daemon did not stop cleanly every time (see the rows above)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
