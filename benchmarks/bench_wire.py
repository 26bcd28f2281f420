"""Bytes on the wire per LwM2M operation over UDP (NoSec), DTLS (PSK) and SMS (binding US).

The client is the real ``lwm2md.app.Client`` (simulated sensor, FakeClock
timers); the server is the in-repo ``TestServer``: plain, the PSK variant of
``tests/integration/test_dtls_e2e.py``, or plain plus the SMS transport of
``tests/integration/test_sms_e2e.py``. Counting is done at the boundary, not
by asking either side:

- UDP and DTLS: a counting UDP proxy sits between client and server (the
  client's server URI points at it; the server sees the proxy's sockets).
  It counts datagrams and UDP payload octets (CoAP messages, or DTLS
  records) each way. IP and UDP headers (28 octets per IPv4 datagram) are
  not included.
- SMS: the fake SMS network's records of delivered SMS. Per SMS, the user
  data (TP-UD: UDH, when concatenated, plus payload) and the SMS-DELIVER
  TPDU the recipient gets (without the SMSC field) are counted.

Operations: Register (request and response; with binding US it goes over
UDP, so the SMS row is measured through the proxy too), a Read of /3/0 by
the server (every block of request and response), one notification of
/3303/0/5700 (and its ACK if confirmable), and for DTLS the handshake
(every datagram before the first application-data record).

Run from the repository root (the ``tests`` package is imported).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package

from _common import print_table

from lwm2md.app import Client
from lwm2md.drivers.fake.sms_network import SmsNetwork, SmsRecord
from lwm2md.drivers.modem.pdu import encode_deliver, tpdu_length
from lwm2md.engine.clock import FakeClock
from lwm2md.testing import TestServer
from lwm2md.transport.dtls import DtlsSession
from tests.integration.harness import EP, Rig, inline, make_config
from tests.integration.test_dtls_e2e import FAST_COAP, IDENTITY, KEY, start_psk_server
from tests.integration.test_sms_e2e import CLIENT_NUMBER, SERVER_NUMBER, add_sms_transport

TIMEOUT = 20.0
QUIET = 0.3
"""Seconds without traffic after which an exchange is taken as over."""

DTLS_APPLICATION_DATA = 23

Row = tuple[str, str, str, str, str]


# -- the counting proxy ----------------------------------------------------------------


@dataclass
class Datagram:
    upstream: bool  # client to server
    data: bytes
    at: float


@dataclass
class Tally:
    up_count: int = 0
    up_bytes: int = 0
    down_count: int = 0
    down_bytes: int = 0

    def add(self, datagram: Datagram) -> None:
        if datagram.upstream:
            self.up_count += 1
            self.up_bytes += len(datagram.data)
        else:
            self.down_count += 1
            self.down_bytes += len(datagram.data)


@dataclass
class CountingProxy:
    """Forwards datagrams between clients (each on a socket of its own to the server) and one server."""

    server: tuple[str, int]
    log: list[Datagram] = field(default_factory=list)
    _front: asyncio.DatagramTransport | None = None
    _back: dict[tuple[str, int], asyncio.DatagramTransport] = field(default_factory=dict)
    _opening: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        proxy = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                proxy.log.append(Datagram(True, data, time.monotonic()))
                back = proxy._back.get(addr)
                if back is None:
                    task = loop.create_task(proxy._open_back(addr, data))
                    proxy._opening.add(task)
                    task.add_done_callback(proxy._opening.discard)
                else:
                    back.sendto(data)

        transport, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        self._front = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    async def _open_back(self, client: tuple[str, int], first: bytes) -> None:
        proxy = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                proxy.log.append(Datagram(False, data, time.monotonic()))
                assert proxy._front is not None
                proxy._front.sendto(data, client)

        if client in self._back:
            self._back[client].sendto(first)
            return
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Back, remote_addr=self.server
        )
        self._back[client] = transport
        transport.sendto(first)

    def close(self) -> None:
        for transport in [self._front, *self._back.values()]:
            if transport is not None:
                transport.close()

    def tally(self, since: int, until: int | None = None) -> Tally:
        tally = Tally()
        for datagram in self.log[since:until]:
            tally.add(datagram)
        return tally

    async def quiet(self, period: float = QUIET) -> int:
        """Wait until nothing crossed for ``period`` s; returns the log length."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                last = self.log[-1].at if self.log else 0.0
                wait = last + period - time.monotonic()
                if wait <= 0:
                    return len(self.log)
                await asyncio.sleep(wait)


def udp_row(transport: str, operation: str, tally: Tally) -> Row:
    total = tally.up_bytes + tally.down_bytes
    return (f"{transport}: {operation}", f"{tally.up_count} / {tally.down_count}",
            f"{tally.up_bytes} / {tally.down_bytes}", str(total), "-")  # fmt: skip


# -- rigs ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def client_for(server: TestServer, config: Any, **client_args: Any) -> AsyncIterator[Rig]:
    clock = FakeClock()
    client = Client(config, simulate=True, clock=clock, run_blocking=inline, **client_args)
    rig = Rig(server, client, clock)
    try:
        yield rig
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await server.stop()


async def registered(rig: Rig, proxy: CountingProxy) -> int:
    await rig.server.wait_registered(EP, timeout=TIMEOUT)
    return await proxy.quiet()


async def read_and_notify(rig: Rig, quiet: Any) -> tuple[tuple[int, int], tuple[int, int], int, bool]:
    """Read /3/0, then observe /3303/0/5700 and take one notification; (start, end) marks of each."""
    start = await quiet()
    response = await rig.server.read(EP, "/3/0", timeout=TIMEOUT)
    assert response.code == "2.05", response.code
    read = (start, await quiet())
    await rig.sample(temperature=20.0)
    obs = await rig.server.observe(EP, "/3303/0/5700", timeout=TIMEOUT)
    assert obs.active, obs.first.code
    start = await quiet()
    await rig.sample(temperature=23.5)
    notification = await obs.next(timeout=TIMEOUT)
    assert notification.value == 23.5
    assert notification.message is not None
    confirmable = str(notification.message.mtype) == "CON"
    notify = (start, await quiet())
    return read, notify, len(response.payload), confirmable


async def measure_udp() -> list[Row]:
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    proxy = CountingProxy(("127.0.0.1", server.port))
    port = await proxy.start()
    state_dir = tempfile.mkdtemp(prefix="lwm2md-bench-")
    try:
        config = make_config(f"coap://127.0.0.1:{port}", state_dir=state_dir)
        async with client_for(server, config) as rig:
            await rig.client.start()
            mark = await registered(rig, proxy)
            rows = [udp_row("UDP", "Register", proxy.tally(0, mark))]
            read, notify, size, con = await read_and_notify(rig, proxy.quiet)
            rows.append(udp_row("UDP", f"Read /3/0 ({size} B payload)", proxy.tally(*read)))
            rows.append(udp_row("UDP", f"notify /3303/0/5700 ({'CON' if con else 'NON'})",
                                proxy.tally(*notify)))  # fmt: skip
    finally:
        proxy.close()
        shutil.rmtree(state_dir, ignore_errors=True)
    return rows


def _has_application_data(datagram: bytes) -> bool:
    """True if any DTLS record in ``datagram`` is application data (13-octet record headers)."""
    offset = 0
    while offset + 13 <= len(datagram):
        if datagram[offset] == DTLS_APPLICATION_DATA:
            return True
        offset += 13 + int.from_bytes(datagram[offset + 11 : offset + 13], "big")
    return False


async def measure_dtls() -> list[Row]:
    server = await start_psk_server()
    proxy = CountingProxy(("127.0.0.1", server.port))
    port = await proxy.start()
    state_dir = tempfile.mkdtemp(prefix="lwm2md-bench-")
    uri = f"coaps://127.0.0.1:{port}"
    table = {"uri": uri, "short_id": 1, "lifetime": 300, "psk_identity": IDENTITY.decode(),
             "psk_key": KEY.hex(), "communication_retry_timer": 10}  # fmt: skip
    try:
        config = make_config(uri, state_dir=state_dir, server=[table], coap=FAST_COAP)
        async with client_for(server, config) as rig:
            await rig.client.start()
            mark = await registered(rig, proxy)
            first_data = next(i for i, d in enumerate(proxy.log) if _has_application_data(d.data))
            shake = proxy.tally(0, first_data)
            session = getattr(rig.client.registrations[1].requester, "session", None)
            assert isinstance(session, DtlsSession)
            rows = [udp_row("DTLS", f"handshake ({session.cipher_suite_name})", shake),
                    udp_row("DTLS", "Register", proxy.tally(first_data, mark))]  # fmt: skip
            read, notify, size, con = await read_and_notify(rig, proxy.quiet)
            rows.append(udp_row("DTLS", f"Read /3/0 ({size} B payload)", proxy.tally(*read)))
            rows.append(udp_row("DTLS", f"notify /3303/0/5700 ({'CON' if con else 'NON'})",
                                proxy.tally(*notify)))  # fmt: skip
            both = proxy.tally(0, mark)
            rows.append(udp_row("DTLS", "handshake + Register", both))
    finally:
        proxy.close()
        shutil.rmtree(state_dir, ignore_errors=True)
    return rows


def _sms_octets(record: SmsRecord) -> tuple[int, int]:
    """(TP-UD octets including the UDH, SMS-DELIVER TPDU octets) of one delivered SMS."""
    elements = (record.concat.element(),) if record.concat is not None else ()
    pdu = encode_deliver(record.source, record.data, scts=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                         elements=elements)  # fmt: skip
    udh = sum(2 + len(e.data) for e in elements) + (1 if elements else 0)
    return udh + len(record.data), tpdu_length(pdu)


def sms_row(operation: str, records: list[SmsRecord]) -> Row:
    delivered = [r for r in records if r.fate == "delivered"]
    up = [_sms_octets(r) for r in delivered if r.destination == SERVER_NUMBER]
    down = [_sms_octets(r) for r in delivered if r.destination == CLIENT_NUMBER]
    ud = f"{sum(u for u, _ in up)} / {sum(u for u, _ in down)}"
    tpdu = sum(t for _, t in up) + sum(t for _, t in down)
    return (f"SMS: {operation}", f"{len(up)} / {len(down)}", ud,
            str(sum(u for u, _ in up) + sum(u for u, _ in down)), str(tpdu))  # fmt: skip


async def measure_sms() -> list[Row]:
    server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
    proxy = CountingProxy(("127.0.0.1", server.port))
    port = await proxy.start()
    network = SmsNetwork()
    server_sms = await add_sms_transport(server, network.endpoint(SERVER_NUMBER))
    state_dir = tempfile.mkdtemp(prefix="lwm2md-bench-")
    uri = f"coap://127.0.0.1:{port}"
    extra: dict[str, Any] = {
        "server": [
            {"uri": uri, "short_id": 1, "lifetime": 300, "binding": "US", "sms_number": SERVER_NUMBER}
        ],
        "modem": {"port": "/dev/ttyFAKE", "interval": 3600.0, "sms": True, "own_number": CLIENT_NUMBER},
    }
    loop = asyncio.get_running_loop()

    async def quiet() -> int:
        await loop.run_in_executor(None, network.settle)
        while True:  # the client's answer may still be on its way to the modem
            count = len(network.records)
            await asyncio.sleep(QUIET)
            await loop.run_in_executor(None, network.settle)
            if len(network.records) == count:
                return count

    try:
        config = make_config(uri, state_dir=state_dir, **extra)
        async with client_for(server, config) as rig:
            assert rig.client.fake_modem is not None
            network.attach(rig.client.fake_modem, CLIENT_NUMBER)
            await rig.client.start()
            mark = await registered(rig, proxy)
            reg = rig.server.registrations[EP]
            assert (reg.binding, reg.sms) == ("US", CLIENT_NUMBER), (reg.binding, reg.sms)
            rows = [udp_row("SMS (US)", "Register (over UDP)", proxy.tally(0, mark))]
            sms_before = len(network.records)
            rig.server.registrations[EP] = replace(reg, coap_remote=server_sms.remote(CLIENT_NUMBER))
            read, notify, size, con = await read_and_notify(rig, quiet)
            assert len(proxy.log) == mark, "nothing but the Register went over UDP"
            assert sms_before == 0, "no SMS before the Read"
            rows.append(sms_row(f"Read /3/0 ({size} B payload)", network.records[read[0] : read[1]]))
            rows.append(sms_row(f"notify /3303/0/5700 ({'CON' if con else 'NON'})",
                                network.records[notify[0] : notify[1]]))  # fmt: skip
    finally:
        proxy.close()
        network.close()
        shutil.rmtree(state_dir, ignore_errors=True)
    return rows


async def main() -> int:
    for name in ("lwm2md.testing.coap", "lwm2md.testing.coaps"):  # close_notify, shutdown noise
        logging.getLogger(name).setLevel(logging.ERROR)
    started = time.monotonic()
    rows: list[Row] = []
    rows += await measure_udp()
    rows += await measure_dtls()
    rows += await measure_sms()
    header = ("transport: operation", "datagrams/SMS up / down", "octets up / down", "octets total",
              "SMS TPDU octets")  # fmt: skip
    print_table(
        "Bytes on the wire per operation (up = client to server; UDP payload octets, IP/UDP headers"
        f" excluded; SMS: TP-UD octets incl. UDH) [{time.monotonic() - started:.1f} s]",
        rows,
        header,
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
