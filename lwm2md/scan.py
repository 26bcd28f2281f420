"""``lwm2md scan``: find supported I2C chips and print ready ``[[sensor]]`` tables.

Every ``/dev/i2c-N`` that can be opened is probed at each address a
registered driver can answer on, with that driver's side-effect-free probe
(chip-id check). Buses that cannot be opened are reported and skipped.
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lwm2md.drivers.base import DriverError
from lwm2md.drivers.i2c.bus import SMBusLike, open_bus
from lwm2md.drivers.registry import driver_info, sensor_drivers

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """A chip that answered a driver's probe."""

    driver: str
    bus: int
    address: int
    objects: tuple[int, ...]

    def snippet(self) -> str:
        """A ``[[sensor]]`` table for this chip."""
        objects = ", ".join(str(oid) for oid in self.objects)
        return (
            "[[sensor]]\n"
            f'driver = "{self.driver}"\n'
            f"bus = {self.bus}\n"
            f"address = 0x{self.address:02x}\n"
            f"objects = [{objects}]\n"
        )


def i2c_buses() -> list[int]:
    """Bus numbers of the I2C adapters present (``/dev/i2c-N``), ascending."""
    numbers = []
    for path in glob.glob("/dev/i2c-*"):
        match = re.fullmatch(r"/dev/i2c-(\d+)", path)
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def scan(
    buses: Iterable[int],
    opener: Callable[[int], SMBusLike] = open_bus,
    report: Callable[[str], None] = LOG.warning,
) -> list[Found]:
    """Probe every registered I2C driver's addresses on ``buses``.

    A bus that cannot be opened is reported through ``report`` and skipped;
    an address claimed by an earlier driver's probe is not probed again.
    """
    drivers = [driver_info(name) for name in sensor_drivers()]
    i2c_drivers = [d for d in drivers if d.i2c_addresses and d.probe is not None]
    found: list[Found] = []
    for number in buses:
        try:
            bus = opener(number)
        except (DriverError, OSError) as exc:
            report(f"i2c-{number}: skipped ({exc})")
            continue
        try:
            claimed: set[int] = set()
            for info in i2c_drivers:
                assert info.probe is not None
                for address in info.i2c_addresses:
                    if address in claimed:
                        continue
                    try:
                        matched = info.probe(bus, address)
                    except Exception as exc:  # a probe must not end the scan
                        LOG.debug("probe %s at i2c-%d 0x%02x failed: %s", info.name, number, address, exc)
                        matched = False
                    if matched:
                        claimed.add(address)
                        found.append(Found(info.name, number, address, info.objects))
        finally:
            bus.close()
    return found


def run_scan(buses: Iterable[int] | None = None) -> int:
    """Print what was found as config snippets; exit code 0 if anything was found, else 1."""
    numbers = list(i2c_buses() if buses is None else buses)
    if not numbers:
        print("# no I2C adapters found (/dev/i2c-*); is the i2c-dev module loaded?")
        return 1
    found = scan(numbers, report=lambda line: print(f"# {line}"))
    if not found:
        print(f"# no supported chips found on i2c bus(es) {', '.join(map(str, numbers))}")
        return 1
    for chip in found:
        print(f"# {chip.driver} on /dev/i2c-{chip.bus} at 0x{chip.address:02x}")
        print(chip.snippet())
    return 0
