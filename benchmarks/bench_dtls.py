"""Cost of a DTLS 1.2 PSK handshake on loopback: time, datagrams and bytes.

The client is the daemon's own transport (``CoapEndpoint.secure_requester``,
tinydtls through DTLSSocket). Each run opens a fresh session with a GET,
which costs the handshake plus one request, then times a second GET on the
established session. Servers:

- aiocoap's tinydtls server in this process (its CPU time is included);
- libcoap's ``coap-server-openssl`` as a separate process, when installed
  (Debian package libcoap3-bin).

For comparison, the same GET over plain CoAP to an aiocoap UDP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiocoap
from _common import print_table
from aiocoap import resource
from aiocoap.credentials import CredentialsMap

from lwm2md.engine.registration import Requester, TransportError
from lwm2md.errors import NotFound
from lwm2md.transport.coap import CoapEndpoint
from lwm2md.transport.dtls import DtlsSession, PskCredentials

RUNS = 30
IDENTITY = b"bench-client"
KEY = b"bench-psk-16byte"
START_TIMEOUT = 5.0


class _Time(resource.Resource):  # type: ignore[misc]
    async def render_get(self, request: Any) -> aiocoap.Message:
        return aiocoap.Message(payload=b"12:00:00")


async def _refuse(request: Any) -> Any:
    raise NotFound("benchmark client serves nothing")


def _free_port() -> int:
    """A free loopback port P (and P + 1 for servers that also bind it); racy but fine here."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port pair")


@contextlib.asynccontextmanager
async def aiocoap_server(transport: str) -> AsyncIterator[int]:
    """An aiocoap server with /time on ``transport`` ("tinydtls_server" or "udp6"); yields its port."""
    site = resource.Site()
    site.add_resource(["time"], _Time())
    credentials = CredentialsMap()
    credentials.load_from_dict({":client": {"dtls": {"psk": KEY, "client-identity": IDENTITY}}})
    port = _free_port()
    bind = port - 1 if transport == "tinydtls_server" else port  # aiocoap adds 1 for DTLS
    context = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", bind), transports=[transport], server_credentials=credentials,
        loggername="bench.server",
    )  # fmt: skip
    try:
        yield port
    finally:
        await context.shutdown()


@contextlib.asynccontextmanager
async def libcoap_server(executable: str) -> AsyncIterator[int]:
    """libcoap's coap-server with the benchmark PSK; yields its DTLS port."""
    port = _free_port()
    proc = subprocess.Popen(
        [executable, "-A", "127.0.0.1", "-p", str(port), "-k", KEY.decode(), "-v", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port + 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _session(requester: Requester) -> DtlsSession:
    session = getattr(requester, "session", None)
    assert isinstance(session, DtlsSession)
    return session


async def _retrying(call: Callable[[], Awaitable[Any]]) -> None:
    """Await ``call`` until it succeeds (a server process may still be starting)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            await call()
            return
        except TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def _ms(values: list[float]) -> str:
    return f"{min(values) * 1e3:.2f} / {statistics.median(values) * 1e3:.2f} / {max(values) * 1e3:.2f}"


async def measure_dtls(endpoint: CoapEndpoint, port: int, label: str) -> list[tuple[str, str, str]]:
    credentials = PskCredentials(IDENTITY, KEY)
    warm = endpoint.secure_requester(99, "127.0.0.1", port, lambda: credentials)
    await _retrying(lambda: warm.request("GET", ["time"]))
    handshakes: list[float] = []
    first_requests: list[float] = []
    next_requests: list[float] = []
    session: DtlsSession | None = None
    for run in range(RUNS):
        requester = endpoint.secure_requester(run, "127.0.0.1", port, lambda: credentials)
        started = time.perf_counter()
        await requester.request("GET", ["time"])
        first_requests.append(time.perf_counter() - started)
        session = _session(requester)
        assert session.handshake_seconds is not None
        handshakes.append(session.handshake_seconds)
        started = time.perf_counter()
        await requester.request("GET", ["time"])
        next_requests.append(time.perf_counter() - started)
        endpoint.peers.remove(run)  # closes the session (close_notify)
    endpoint.peers.remove(99)
    assert session is not None
    shake = session.handshake
    datagrams = f"{shake.datagrams_sent} / {shake.datagrams_received}"
    return [
        (f"{label}: handshake (min / median / max)", f"{_ms(handshakes)} ms", "-"),
        (f"{label}: first GET incl. handshake", f"{_ms(first_requests)} ms", "-"),
        (f"{label}: GET on the session", f"{_ms(next_requests)} ms", "-"),
        (f"{label}: handshake datagrams out / in", datagrams, "-"),
        (f"{label}: handshake bytes out / in", f"{shake.bytes_sent} / {shake.bytes_received}", "-"),
        (f"{label}: cipher suite", session.cipher_suite_name, "-"),
    ]


async def measure_plain(endpoint: CoapEndpoint, port: int) -> list[tuple[str, str, str]]:
    requester = endpoint.requester("127.0.0.1", port)
    await requester.request("GET", ["time"])
    times: list[float] = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await requester.request("GET", ["time"])
        times.append(time.perf_counter() - started)
    return [("plain CoAP: GET", f"{_ms(times)} ms", "-")]


async def main() -> int:
    logging.getLogger("bench.server").setLevel(logging.ERROR)  # aiocoap's server warns about close_notify
    endpoint = CoapEndpoint(_refuse, (lambda obs, records: None, lambda obs: None), lambda f, p, r: b"")
    await endpoint.start()
    rows: list[tuple[str, str, str]] = []
    try:
        async with aiocoap_server("tinydtls_server") as port:
            rows += await measure_dtls(endpoint, port, "aiocoap server")
        executable = shutil.which("coap-server-openssl")
        if executable is not None:
            async with libcoap_server(executable) as port:
                rows += await measure_dtls(endpoint, port, "libcoap (OpenSSL)")
        else:
            rows.append(("libcoap (OpenSSL)", "not installed", "-"))
        async with aiocoap_server("udp6") as port:
            rows += await measure_plain(endpoint, port)
    finally:
        await endpoint.close()
    print_table(f"DTLS 1.2 PSK on loopback ({RUNS} sessions per server; datagrams/bytes of the last)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
