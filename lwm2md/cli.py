"""The ``lwm2md`` command: run, check-config, objects, demo.

Exit codes: 0 success, 78 (EX_CONFIG) for a configuration that does not
validate, 1 for other failures, 130 after Ctrl-C during the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from lwm2md import __version__
from lwm2md.config import DEFAULT_CONFIG_PATH, Config, load_config
from lwm2md.errors import ConfigError
from lwm2md.logsetup import setup_logging

LOG = logging.getLogger(__name__)

EXIT_CONFIG = 78
EXIT_RESTART = 75  # EX_TEMPFAIL: stopped to be started afresh (Factory Reset); systemd restarts it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwm2md", description="LwM2M client daemon for Linux gateways")
    parser.add_argument("--version", action="version", version=f"lwm2md {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the client daemon")
    run.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="configuration file (TOML)")
    run.add_argument("--simulate", action="store_true", help="use simulated hardware for every driver")
    run.add_argument("--state-dir", help="state directory (default from the config)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG_PATH)

    reset = sub.add_parser("reset-state", help="forget values servers wrote (back to the config file)")
    reset.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    reset.add_argument("--state-dir", help="state directory (default from the config)")

    objects = sub.add_parser("objects", help="print the object tree with current values")
    objects.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    objects.add_argument("--simulate", action="store_true")

    scan = sub.add_parser("scan", help="probe I2C buses for supported chips, print [[sensor]] tables")
    scan.add_argument("--bus", type=int, action="append", help="bus to probe (default: every /dev/i2c-N)")

    demo = sub.add_parser("demo", help="run the test server and a simulated client against it")
    demo.add_argument("--duration", type=float, default=12.0, help="seconds of notifications to show")
    return parser


def _load(path: str) -> Config:
    return load_config(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            config = _load(args.config)
            bootstrap = ", a Bootstrap-Server" if config.bootstrap is not None else ""
            print(f"{config.source}: OK ({len(config.servers)} server(s){bootstrap}, "
                  f"{len(config.sensors)} sensor(s))")  # fmt: skip
            return 0
        if args.command == "run":
            config = _load(args.config)
            if args.state_dir:
                config = dataclasses.replace(config, state_dir=args.state_dir)
            setup_logging(args.log_level or config.logging.level)
            return asyncio.run(run_daemon(config, simulate=args.simulate, config_path=args.config))
        if args.command == "reset-state":
            config = _load(args.config)
            return reset_state(args.state_dir or config.state_dir)
        if args.command == "objects":
            config = _load(args.config)
            setup_logging("warning")
            return print_objects(config, simulate=args.simulate)
        if args.command == "scan":
            from lwm2md.scan import run_scan

            setup_logging("warning")
            return run_scan(args.bus)
        if args.command == "demo":
            from lwm2md.demo import run_demo

            setup_logging("warning")
            try:
                return asyncio.run(run_demo(args.duration))
            except KeyboardInterrupt:
                return 130
    except ConfigError as exc:
        print(f"lwm2md: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 1


async def run_daemon(config: Config, *, simulate: bool, config_path: str | None = None) -> int:
    """Run the client until SIGTERM or SIGINT, then De-register and return 0.

    Under systemd: READY=1 once the endpoint is bound, STATUS= with every
    server's registration state, WATCHDOG=1 from the event loop, RELOADING=1
    around a SIGHUP reload of ``config_path``, STOPPING=1 on the way out.
    """
    from lwm2md.app import Client
    from lwm2md.service import Notifier

    notifier = Notifier()
    client = Client(config, simulate=simulate)
    client.on_status = notifier.status
    stop = asyncio.Event()
    restart = [False]

    def restart_requested() -> None:
        restart[0] = True
        stop.set()

    client.on_restart = restart_requested
    reload_wanted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
    try:
        await client.start()
    except OSError as exc:
        LOG.error("cannot bind the CoAP endpoint: %s", exc)
        return 1
    LOG.info("lwm2md %s running as endpoint %s", __version__, config.device.endpoint)
    notifier.ready(client.status())
    watchdog = _start_watchdog(notifier)
    reloader = loop.create_task(_reload_loop(client, notifier, reload_wanted, config_path, config.state_dir))
    await stop.wait()
    notifier.stopping()
    LOG.info("stopping: de-registering")
    reloader.cancel()
    if watchdog is not None:
        watchdog.cancel()
    await client.stop()
    LOG.info("stopped%s", " for a restart" if restart[0] else "")
    return EXIT_RESTART if restart[0] else 0


def _start_watchdog(notifier: Any) -> asyncio.Task[None] | None:
    """Ping the watchdog from the event loop, so a stuck loop stops the pings."""
    interval = notifier.watchdog_interval()
    if interval is None:
        return None

    async def ping() -> None:
        while True:
            notifier.watchdog()
            await asyncio.sleep(interval)

    return asyncio.get_running_loop().create_task(ping(), name="watchdog")


async def _reload_loop(
    client: Any, notifier: Any, wanted: asyncio.Event, config_path: str | None, state_dir: str
) -> None:
    while True:
        await wanted.wait()
        wanted.clear()
        notifier.reloading()
        if config_path is None:
            LOG.warning("reload requested, but the configuration was not read from a file")
        else:
            try:
                new = load_config(config_path)
            except ConfigError as exc:
                LOG.error("reload refused, keeping the running configuration: %s", exc)
            else:
                new = dataclasses.replace(new, state_dir=state_dir)
                changes = await client.apply_config(new)
                LOG.info("configuration reloaded: %s", "; ".join(changes) or "nothing changed")
        notifier.ready(client.status())


def reset_state(state_dir: str) -> int:
    """Delete the state files under ``state_dir``; the config file's values apply at next start.

    Written values, stored registrations and the provisioning (bootstrap or
    server changes to /0-/2) go; the daemon then starts from the factory
    configuration and bootstraps again if it has only a ``[bootstrap]`` table.
    """
    from pathlib import Path as FsPath

    from lwm2md.engine.notification_store import NOTIFICATIONS_DIR, NotificationStore
    from lwm2md.persist import StateFile
    from lwm2md.provisioning import FILE_NAME as PROVISIONED
    from lwm2md.state import ATTRIBUTES_FILE, DATA_OBJECTS_FILE, REGISTRATIONS_FILE
    from lwm2md.state import FILE_NAME as WRITTEN

    for name in (WRITTEN, REGISTRATIONS_FILE, PROVISIONED, ATTRIBUTES_FILE, DATA_OBJECTS_FILE):
        StateFile(state_dir, name).remove()
    NotificationStore(str(FsPath(state_dir) / NOTIFICATIONS_DIR), 1).clear_all()
    print(f"{state_dir}: stored state removed; restart lwm2md to apply the configuration file")
    return 0


def print_objects(config: Config, *, simulate: bool) -> int:
    """Print every object, instance and resource value; never prints secrets."""
    from lwm2md.app import Client, sample_once

    client = Client(config, simulate=simulate)
    sample_once(client.samplers)
    for obj, records in client.snapshot():
        definition = obj.definition
        print(f"/{obj.oid} {definition.name} (ver {definition.version}, {len(obj.instances)} instance(s))")
        if obj.oid == 0:
            print("    (security credentials are not shown)")
            continue
        for record in records:
            assert record.path.rid is not None
            rdef = definition.resource(record.path.rid)
            name = rdef.name if rdef else "?"
            units = f" {rdef.units}" if rdef and rdef.units else ""
            print(f"    {record.path} {name} = {_show(record.value)}{units}")
    return 0


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return repr(value) if isinstance(value, str) else str(value)
