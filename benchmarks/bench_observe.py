"""Observe at scale: the daemon's memory with 100 observations, and its notification rate.

Both parts run the real daemon (``python -m lwm2md run --simulate``) with 25
simulated sensors feeding 3303, 3304, 3315 and 3301 each: 100 instances, of
which the server observes every ``/oid/iid/5700`` after writing ``pmin=0``
on the four objects.

(a) Memory: the in-repo TestServer is the server; sensors sample every
0.5 s. Once all 100 observations are active and notifications have flowed
for a few seconds, VmHWM (peak RSS) and VmRSS come from /proc/<pid>/status.

(b) Throughput: the daemon is pinned to one CPU and its sensors sample as
fast as it can go (interval 1 ms, a signal period short enough that every
sample is a new value), so the offered load exceeds what one core can
notify and the figure is the daemon's saturated rate. The receiving side is
a minimal CoAP sink (below) on the other CPU, not the TestServer, which
would decode and log every notification and become the bottleneck: it
answers Register/Update/De-register, sends the Write-Attributes and Observe
requests, and then only counts 2.05 datagrams on the observation tokens.
The sink's own CPU use and the kernel's UDP receive-buffer drops are printed
to show that the sink kept up.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from _common import (
    SENSOR_OBJECTS,
    cpu_seconds,
    daemon_config,
    print_table,
    proc_status_kib,
    spawn_daemon,
    stop_daemon,
    unless_exits,
    write_config,
)

from lwm2md.testing.server import TestServer

SENSORS = 25
PATHS = [f"/{oid}/{iid}/5700" for iid in range(SENSORS) for oid in SENSOR_OBJECTS]
RSS_TARGET_MB = 40.0
RATE_TARGET = 2000.0
FLOW_SECONDS = 3.0
WARMUP_SECONDS = 1.0
WINDOW_SECONDS = 5.0
REGISTER_TIMEOUT = 20.0

# CoAP (RFC 7252) numbers the sink needs
CON, NON, ACK, RST = range(4)
GET, POST, PUT, DELETE = 1, 2, 3, 4
CREATED, DELETED, CHANGED, CONTENT, CONTINUE = 0x41, 0x42, 0x44, 0x45, 0x5F
OBSERVE, LOCATION_PATH, URI_PATH, URI_QUERY, BLOCK1 = 6, 8, 11, 15, 27
MORE_BLOCKS = 0x08


# -- (a) memory ----------------------------------------------------------------------------


async def measure_memory(workdir: Path) -> list[tuple[str, str, str]]:
    """Rows for part (a)."""
    endpoint = "bench-observe-rss"
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
    config = daemon_config(server.uri, endpoint, sensors=SENSORS, interval=0.5, period=60.0)
    proc = await spawn_daemon(write_config(workdir, config, "rss.toml"), workdir)
    try:
        await unless_exits(proc, server.wait_registered(endpoint, REGISTER_TIMEOUT), workdir / "daemon.log")
        for oid in SENSOR_OBJECTS:
            answer = await server.write_attributes(endpoint, f"/{oid}", pmin=0)
            if not answer.ok:
                raise RuntimeError(f"Write-Attributes /{oid} answered {answer.code}")
        observations = await asyncio.gather(*(server.observe(endpoint, path) for path in PATHS))
        active = sum(obs.active for obs in observations)
        if active != len(PATHS):
            raise RuntimeError(f"only {active} of {len(PATHS)} observations were accepted")
        queued = sum(obs.notifications.qsize() for obs in observations)
        await asyncio.sleep(FLOW_SECONDS)
        flowed = sum(obs.notifications.qsize() for obs in observations) - queued
        memory = proc_status_kib(proc.pid, ("VmHWM", "VmRSS"))
    finally:
        status = await stop_daemon(proc)
        await server.stop()
    target = f"< {RSS_TARGET_MB:.0f} MB"
    return [
        ("active observations", str(active), str(len(PATHS))),
        (f"notifications received in {FLOW_SECONDS:.0f} s", str(flowed), "> 0"),
        ("peak RSS (VmHWM)", f"{memory['VmHWM'] / 1024:.1f} MB", target),
        ("RSS at the end (VmRSS)", f"{memory['VmRSS'] / 1024:.1f} MB", target),
        ("exit status after SIGTERM", str(status), "0"),
    ]


# -- (b) throughput: a minimal CoAP sink ---------------------------------------------------------


@dataclass
class CoapMessage:
    """A parsed CoAP datagram."""

    mtype: int
    code: int
    mid: int
    token: bytes
    options: list[tuple[int, bytes]] = field(default_factory=list)
    payload: bytes = b""

    def option(self, number: int) -> bytes | None:
        """The first value of option ``number``, if present."""
        return next((value for num, value in self.options if num == number), None)


def _nibble(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


def _extended(nibble: int, data: bytes, pos: int) -> tuple[int, int]:
    if nibble == 13:
        return data[pos] + 13, pos + 1
    if nibble == 14:
        return int.from_bytes(data[pos : pos + 2], "big") + 269, pos + 2
    if nibble == 15:
        raise ValueError("reserved option nibble")
    return nibble, pos


def encode_message(msg: CoapMessage) -> bytes:
    """Serialize ``msg``; options are sorted by number, repeated ones keep their order."""
    out = bytearray([0x40 | msg.mtype << 4 | len(msg.token), msg.code, msg.mid >> 8, msg.mid & 0xFF])
    out += msg.token
    last = 0
    for number, value in sorted(msg.options, key=lambda item: item[0]):
        delta, delta_ext = _nibble(number - last)
        length, length_ext = _nibble(len(value))
        out += bytes([delta << 4 | length]) + delta_ext + length_ext + value
        last = number
    if msg.payload:
        out += b"\xff" + msg.payload
    return bytes(out)


def decode_message(data: bytes) -> CoapMessage | None:
    """Parse a datagram; None when it is not well-formed CoAP."""
    try:
        if len(data) < 4 or data[0] >> 6 != 1:
            return None
        tkl = data[0] & 0x0F
        msg = CoapMessage((data[0] >> 4) & 3, data[1], data[2] << 8 | data[3], data[4 : 4 + tkl])
        pos, number = 4 + tkl, 0
        while pos < len(data):
            head = data[pos]
            pos += 1
            if head == 0xFF:
                msg.payload = data[pos:]
                break
            delta, pos = _extended(head >> 4, data, pos)
            length, pos = _extended(head & 0x0F, data, pos)
            number += delta
            msg.options.append((number, data[pos : pos + length]))
            pos += length
        return msg
    except (IndexError, ValueError):
        return None


class CoapSink(asyncio.DatagramProtocol):
    """Just enough of an LwM2M server to register a client, observe, and count notifications."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.client: tuple[str, int] | None = None
        self.registered = asyncio.Event()
        self.observed: set[bytes] = set()
        self.per_token: Counter[bytes] = Counter()
        self.confirmable = 0
        self._pending: dict[bytes, asyncio.Future[CoapMessage]] = {}
        self._mids = itertools.count(1)
        self._tokens = itertools.count(1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # selector transports don't subclass it

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def _send(self, msg: CoapMessage, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(encode_message(msg), addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # fast path: a notification on an observation token is only counted (and ACKed if CON)
        if len(data) >= 4 and data[1] == CONTENT:
            token = data[4 : 4 + (data[0] & 0x0F)]
            if token in self.observed and token not in self._pending:
                self.per_token[token] += 1
                if (data[0] >> 4) & 3 == CON:
                    self.confirmable += 1
                    self._send(CoapMessage(ACK, 0, data[2] << 8 | data[3], b""), addr)
                return
        msg = decode_message(data)
        if msg is None:
            return
        if 1 <= msg.code <= 31:
            self._serve(msg, addr)
        elif msg.code >= 0x40:
            if msg.mtype == CON:
                self._send(CoapMessage(ACK, 0, msg.mid, b""), addr)
            future = self._pending.pop(msg.token, None)
            if future is not None and not future.done():
                future.set_result(msg)

    def _serve(self, request: CoapMessage, addr: tuple[str, int]) -> None:
        """Answer Register (Block1-aware), Update and De-register with a piggybacked response."""
        path = [value.decode() for num, value in request.options if num == URI_PATH]
        block1 = request.option(BLOCK1)
        options: list[tuple[int, bytes]] = [(BLOCK1, block1)] if block1 is not None else []
        if path == ["rd"] and request.code == POST:
            code = CONTINUE if block1 and block1[-1] & MORE_BLOCKS else CREATED
            if code == CREATED:
                options += [(LOCATION_PATH, b"rd"), (LOCATION_PATH, b"sink")]
                self.client = addr
                self.registered.set()
        elif path[:1] == ["rd"] and request.code in (POST, DELETE):
            code = CHANGED if request.code == POST else DELETED
        else:
            code = 0x84  # 4.04
        self._send(CoapMessage(ACK, code, request.mid, request.token, options), addr)

    async def request(
        self, code: int, path: str, *, query: tuple[str, ...] = (), observe: bool = False
    ) -> CoapMessage:
        """Send a CON request to the registered client and await its response."""
        assert self.client is not None
        token = next(self._tokens).to_bytes(4, "big")
        options = [(URI_PATH, segment.encode()) for segment in path.strip("/").split("/")]
        options += [(URI_QUERY, item.encode()) for item in query]
        if observe:
            options.append((OBSERVE, b""))
            self.observed.add(token)
        future: asyncio.Future[CoapMessage] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        self._send(CoapMessage(CON, code, next(self._mids) & 0xFFFF, token, options), self.client)
        return await asyncio.wait_for(future, 10.0)


def udp_receive_drops() -> int:
    """RcvbufErrors of this network namespace's UDP counters (/proc/net/snmp)."""
    with open("/proc/net/snmp", encoding="ascii") as fh:
        rows = [line.split() for line in fh if line.startswith("Udp:")]
    return int(dict(zip(rows[0], rows[1], strict=True))["RcvbufErrors"])


def pick_cpus() -> tuple[int, int | None]:
    """(CPU for the daemon, another CPU for this process or None when only one is usable)."""
    usable = sorted(os.sched_getaffinity(0))
    return usable[0], usable[1] if len(usable) > 1 else None


async def measure_rate(workdir: Path) -> list[tuple[str, str, str]]:
    """Rows for part (b)."""
    daemon_cpu, sink_cpu = pick_cpus()
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(CoapSink, local_addr=("127.0.0.1", 0))
    config = daemon_config(
        f"coap://127.0.0.1:{sink.port}", "bench-observe-rate",
        sensors=SENSORS, interval=0.001, period=0.0731,
    )  # fmt: skip
    own_affinity = os.sched_getaffinity(0)
    if sink_cpu is not None:
        os.sched_setaffinity(0, {sink_cpu})
    proc = await spawn_daemon(write_config(workdir, config, "rate.toml"), workdir, cpu=daemon_cpu)
    try:
        await unless_exits(proc, asyncio.wait_for(sink.registered.wait(), REGISTER_TIMEOUT),
                           workdir / "daemon.log")  # fmt: skip
        for oid in SENSOR_OBJECTS:
            answer = await sink.request(PUT, f"/{oid}", query=("pmin=0",))
            if answer.code != CHANGED:
                raise RuntimeError(f"Write-Attributes /{oid} answered code {answer.code:#04x}")
        firsts = await asyncio.gather(*(sink.request(GET, path, observe=True) for path in PATHS))
        accepted = sum(msg.code == CONTENT and msg.option(OBSERVE) is not None for msg in firsts)
        if accepted != len(PATHS):
            raise RuntimeError(f"only {accepted} of {len(PATHS)} observations were accepted")
        await asyncio.sleep(WARMUP_SECONDS)
        start = (time.perf_counter(), sink.per_token.copy(), cpu_seconds(proc.pid), time.process_time(),
                 udp_receive_drops())  # fmt: skip
        await asyncio.sleep(WINDOW_SECONDS)
        elapsed = time.perf_counter() - start[0]
        counts = sink.per_token - start[1]
        daemon_cpu_s = cpu_seconds(proc.pid) - start[2]
        sink_cpu_s = time.process_time() - start[3]
        drops = udp_receive_drops() - start[4]
    finally:
        status = await stop_daemon(proc)
        transport.close()
        os.sched_setaffinity(0, own_affinity)
    total = sum(counts.values())
    rate = total / elapsed
    per_note_us = daemon_cpu_s / total * 1e6 if total else float("nan")
    sink_place = f"sink on CPU {sink_cpu}" if sink_cpu is not None else "sink shares it"
    placement = f"CPU {daemon_cpu}, {sink_place}"
    return [
        ("daemon placement", placement, "one core"),
        ("notifications/s (NON, loopback)", f"{rate:,.0f}", f"> {RATE_TARGET:,.0f}/s"),
        ("observations that notified", f"{len(counts)}/{len(PATHS)}", f"{len(PATHS)}/{len(PATHS)}"),
        ("confirmable notifications", str(sink.confirmable), "0 (first CON after 24 h)"),
        ("daemon CPU use", f"{daemon_cpu_s / elapsed:.0%}", "~100% (saturated)"),
        ("daemon CPU per notification", f"{per_note_us:.0f} us", ""),
        ("sink CPU use", f"{sink_cpu_s / elapsed:.0%}", "well below 100%"),
        ("UDP receive-buffer drops", str(drops), "0"),
        ("exit status after SIGTERM", str(status), "0"),
    ]


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lwm2md-bench-") as tmp:
        workdir = Path(tmp)
        memory = await measure_memory(workdir)
        print_table(f"observe (a): daemon memory with {len(PATHS)} observed resources", memory)
        rate = await measure_rate(workdir)
        print_table(f"observe (b): notification rate, {len(PATHS)} observations, daemon on one core", rate)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
