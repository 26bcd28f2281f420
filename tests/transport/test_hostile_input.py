"""Garbage from the server's own address never crashes the client.

A minimal raw-socket "server" accepts the Register, then fires malformed
datagrams and malformed LwM2M requests at the client's port, and finally
checks the client still answers a proper Read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from typing import Any

from lwm2md.app import Client
from lwm2md.engine.clock import FakeClock
from tests.integration.harness import make_config, run

CON, ACK = 0, 2
GET, PUT, POST, CREATED = 0x01, 0x03, 0x02, 0x41


def message(
    mtype: int, code: int, mid: int, token: bytes, options: list[tuple[int, bytes]], payload: bytes = b""
) -> bytes:
    """Encode a CoAP message (RFC 7252 3): options sorted by number, short deltas/lengths only."""
    out = bytearray([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta = number - last
        assert delta < 13 and len(value) < 13
        out.append((delta << 4) | len(value))
        out += value
        last = number
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def path_options(path: str) -> list[tuple[int, bytes]]:
    return [(11, seg.encode()) for seg in path.strip("/").split("/")]


class RawServer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.client: tuple[str, int] | None = None

    async def recv(self, timeout: float = 5.0) -> bytes:
        loop = asyncio.get_running_loop()
        data, address = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 4096), timeout)
        self.client = address
        return bytes(data)

    async def accept_register(self) -> None:
        while True:
            data = await self.recv()
            if data[1] == POST:  # the Register
                break
        mid = data[2:4]
        token = data[4 : 4 + (data[0] & 0x0F)]
        location = [(8, b"rd"), (8, b"x1")]
        reply = bytes([0x60 | len(token), CREATED]) + mid + token
        last = 0
        for number, value in location:
            reply += bytes([((number - last) << 4) | len(value)]) + value
            last = number
        self.send(reply)

    def send(self, datagram: bytes) -> None:
        assert self.client is not None
        self.sock.sendto(datagram, self.client)

    async def request(self, datagram: bytes) -> bytes:
        self.send(datagram)
        while True:
            answer = await self.recv()
            if answer[2:4] == datagram[2:4]:
                return answer


HOSTILE_REQUESTS = [
    message(CON, GET, 1, b"a", path_options("/99999/0")),  # path segment out of range
    message(CON, GET, 2, b"b", path_options("/3/abc")),
    message(CON, GET, 3, b"c", path_options("/3/0/1/2/3")),  # five levels
    message(CON, PUT, 4, b"d", [*path_options("/3/0/15"), (12, b"\x2d\x16")], b"\xff\xfe\x00"),  # TLV junk
    message(CON, PUT, 5, b"e", [*path_options("/1/0/1"), (12, b"\x6e")], b"\x9f\xff"),  # truncated SenML CBOR
    message(CON, POST, 6, b"f", path_options("/3/0/4"), b"0='\xff'"),  # non-ASCII Execute args
    message(CON, PUT, 7, b"g", [*path_options("/3303/0/5700"), (15, b"pmin=-1")]),
    message(CON, GET, 8, b"h", [*path_options("/3/0"), (17, b"\x2a\xf8")]),  # unknown Accept
]


def test_malformed_requests_get_error_codes_and_the_client_keeps_serving() -> None:
    async def scenario() -> None:
        server = RawServer()
        client = Client(make_config(f"coap://127.0.0.1:{server.port}"), simulate=True, clock=FakeClock())
        try:
            await client.start()
            await server.accept_register()
            codes = []
            for datagram in HOSTILE_REQUESTS:
                answer = await server.request(datagram)
                codes.append(f"{answer[1] >> 5}.{answer[1] & 0x1F:02d}")
            assert all(code.startswith("4.") for code in codes), codes
            rng = random.Random(7)
            for _ in range(300):  # raw noise, including truncated headers and bogus option encodings
                size = rng.randrange(0, 64)
                server.send(bytes(rng.randrange(256) for _ in range(size)))
                await asyncio.sleep(0)  # let the client read it: a burst would overflow its socket buffer
            ok = await server.request(message(CON, GET, 99, b"z", path_options("/3/0/17")))
            assert ok[1] == 0x45 and ok.endswith(b"Gateway"), ok
        finally:
            await client.stop(timeout=0.2)
            server.sock.close()

    run(scenario())


def test_random_payloads_in_every_format_get_success_or_a_client_error() -> None:
    """300 seeded random bodies on writes, executes, FETCH and iPATCH: never 5.xx, never silence."""

    async def scenario() -> None:
        server = RawServer()
        client = Client(make_config(f"coap://127.0.0.1:{server.port}"), simulate=True, clock=FakeClock())
        rng = random.Random(11)
        paths = ["/3/0", "/3/0/15", "/1/0", "/3303/0/5750", "/3/0/4", "/"]
        formats = [0, 42, 60, 110, 112, 11542, 11543, 11544]
        try:
            await client.start()
            await server.accept_register()
            for mid in range(300):
                path = rng.choice(paths)
                fmt = rng.choice(formats)
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
                fmt_bytes = fmt.to_bytes((fmt.bit_length() + 7) // 8, "big") if fmt else b""
                options = [*(path_options(path) if path != "/" else []), (12, fmt_bytes)]
                code = rng.choice([PUT, POST, 0x05, 0x07])  # PUT, POST, FETCH, iPATCH
                answer = await server.request(message(CON, code, mid, b"q", options, payload))
                assert answer[1] >> 5 in (2, 4), (path, fmt, code, payload, answer)
        finally:
            await client.stop(timeout=0.2)
            server.sock.close()

    run(scenario())


def test_a_non_utf8_string_option_is_dropped_with_one_log_line(caplog: Any) -> None:
    async def scenario() -> None:
        server = RawServer()
        client = Client(make_config(f"coap://127.0.0.1:{server.port}"), simulate=True, clock=FakeClock())
        try:
            await client.start()
            await server.accept_register()
            with caplog.at_level(logging.INFO):
                server.send(message(CON, GET, 5, b"u", [(3, b"\xff\xfe")]))  # Uri-Host must be UTF-8
                ok = await server.request(message(CON, GET, 6, b"v", path_options("/3/0/17")))
            assert ok[1] == 0x45
            dropped = [r for r in caplog.records if "malformed datagram" in r.getMessage()]
            assert len(dropped) == 1 and not any(r.exc_info for r in caplog.records)
        finally:
            await client.stop(timeout=0.2)
            server.sock.close()

    run(scenario())
