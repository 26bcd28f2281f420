"""Encode and decode throughput of every LwM2M content format, in this process.

Single-value formats (text/plain, opaque, CBOR) carry one resource; the
multi-record formats (TLV, OMA JSON, SenML JSON, SenML CBOR, LwM2M CBOR)
carry one Device object instance of 15 records, three of them instances of
multiple resources, read at ``/3/0``. Each case runs for about
``SECONDS_PER_CASE`` of ``time.perf_counter``; MB/s counts payload bytes.
Every payload is decoded back and compared with the records first, so a
codec that gets faster by getting wrong shows up as an error.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from _common import print_table

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import Record

SECONDS_PER_CASE = 0.5
CALIBRATION_SECONDS = 0.05

DEVICE = Path.of(3, 0)
DEVICE_VALUES: list[tuple[tuple[int, ...], str | int]] = [
    ((0,), "Acme Industrial"),
    ((1,), "GW-4000"),
    ((2,), "SN-0042-7781"),
    ((3,), "Debian GNU/Linux 12 (bookworm); lwm2md 0.1.0"),
    ((6, 0), 0),  # available power sources: DC, battery
    ((6, 1), 1),
    ((7, 0), 12000),  # their voltages, mV
    ((7, 1), 3700),
    ((10,), 24352),  # memory free, KiB
    ((11, 0), 0),  # error code
    ((13,), 1_700_000_000),  # current time
    ((14,), "+01:00"),
    ((15,), "Europe/Berlin"),
    ((16,), "U"),
    ((21,), 65536),  # memory total, KiB
]


@dataclass(frozen=True)
class Case:
    """One format and one payload's worth of records at ``base``."""

    name: str
    fmt: int
    base: Path
    records: list[Record]


def cases() -> list[Case]:
    """The benchmarked (format, records) pairs."""
    temperature = Path.of(3303, 0, 5700)
    single = [Record(temperature, 21.53)]
    package = Path.of(5, 0, 0)
    device = [Record(Path.of(3, 0, *ids), value) for ids, value in DEVICE_VALUES]
    return [
        Case("text/plain, one float", ContentFormat.TEXT, temperature, single),
        Case("CBOR, one float", ContentFormat.CBOR, temperature, single),
        Case("opaque, 512 bytes", ContentFormat.OPAQUE, package, [Record(package, bytes(range(256)) * 2)]),
        Case("TLV, /3/0", ContentFormat.TLV, DEVICE, device),
        Case("OMA JSON, /3/0", ContentFormat.OMA_JSON, DEVICE, device),
        Case("SenML JSON, /3/0", ContentFormat.SENML_JSON, DEVICE, device),
        Case("SenML CBOR, /3/0", ContentFormat.SENML_CBOR, DEVICE, device),
        Case("LwM2M CBOR, /3/0", ContentFormat.LWM2M_CBOR, DEVICE, device),
    ]


def ops_per_second(operation: Callable[[], object]) -> float:
    """Calls of ``operation`` per second over about SECONDS_PER_CASE."""
    batch = 1
    while True:  # find a batch that takes at least CALIBRATION_SECONDS
        started = time.perf_counter()
        for _ in range(batch):
            operation()
        elapsed = time.perf_counter() - started
        if elapsed >= CALIBRATION_SECONDS:
            break
        batch *= 4
    count = max(1, int(batch * SECONDS_PER_CASE / elapsed))
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def main() -> int:
    resolve = Catalog.builtin().resource
    rows: list[tuple[str, ...]] = []
    for case in cases():
        payload = codec.encode(case.fmt, case.base, case.records, resolve)
        decoded = codec.decode(case.fmt, payload, case.base, resolve)
        if sorted((r.path, r.value) for r in decoded) != sorted((r.path, r.value) for r in case.records):
            raise RuntimeError(f"{case.name}: decoding the encoded payload does not give the records back")
        encode = ops_per_second(functools.partial(codec.encode, case.fmt, case.base, case.records, resolve))
        decode = ops_per_second(functools.partial(codec.decode, case.fmt, payload, case.base, resolve))
        size = len(payload)
        rows.append((case.name, str(size), f"{encode:,.0f}", f"{encode * size / 1e6:.2f}",
                     f"{decode:,.0f}", f"{decode * size / 1e6:.2f}", "-"))  # fmt: skip
    header = ("format, payload", "bytes", "encode/s", "MB/s", "decode/s", "MB/s", "target")
    print_table("codec: encode/decode throughput, one core (no targets set)", rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
