"""``python -m lwm2md.testing``: run the test server, one line per client event.

Prints registrations, updates, de-registrations/expiries, notifications and
Sends to stdout until interrupted (SIGINT/SIGTERM). With ``--observe PATH``
(repeatable) every client that registers is observed on those paths.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from lwm2md.testing.server import Observation, TestServer


def _print(line: str) -> None:
    print(line, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lwm2md.testing", description="LwM2M test server printing client events."
    )
    parser.add_argument("--bind", default="::", help="address to listen on (default: all, IPv4 and IPv6)")
    parser.add_argument("--port", type=int, default=5683, help="UDP port (default: 5683; 0 = ephemeral)")
    parser.add_argument(
        "--observe",
        action="append",
        default=[],
        metavar="PATH",
        help="observe PATH (e.g. /3303/0/5700) on every client that registers; repeatable",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also log CoAP details to stderr")
    return parser.parse_args(argv)


async def _observe_all(
    server: TestServer, endpoint: str, paths: Sequence[str], keep: list[Observation]
) -> None:
    for path in paths:
        try:
            obs = await server.observe(endpoint, path)
        except Exception as exc:  # a client that does not answer must not stop the server
            _print(f"observe {endpoint} {path} -> failed ({type(exc).__name__}: {exc})")
            continue
        first = obs.first
        shown = f": {server.format_records(endpoint, first.records)}" if first.records else ""
        state = "" if obs.active else " (not established)"
        _print(f"observe {endpoint} {path} -> {first.code}{state}{shown}")
        if obs.active:
            keep.append(obs)


async def run(args: argparse.Namespace) -> None:
    """Serve until SIGINT/SIGTERM."""
    server = await TestServer.start(args.bind, args.port, log=_print)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _print(f"listening on {server.uri}")
    observations: list[Observation] = []
    tasks: set[asyncio.Task[None]] = set()

    async def consume() -> None:
        while True:
            event = await server.events.get()
            if event.kind == "register" and args.observe:
                task = loop.create_task(_observe_all(server, event.endpoint, args.observe, observations))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            observations[:] = [obs for obs in observations if obs.active]

    consumer = loop.create_task(consume())
    try:
        await stop.wait()
    finally:
        for task in (consumer, *tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(consumer, *tasks, return_exceptions=True)
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        asyncio.run(run(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
