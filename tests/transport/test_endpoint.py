"""The CoAP endpoint: one socket, IPv4 and IPv6, requests from strangers dropped."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from lwm2md.app import Client
from lwm2md.engine.clock import FakeClock
from lwm2md.testing import TestServer
from lwm2md.transport.coap import normalize_peer
from tests.integration.harness import EP, make_config, rig, run


def coap_get(mid: int, *segments: str) -> bytes:
    """A CON GET with a 1-byte token and Uri-Path options (RFC 7252 wire format)."""
    header = struct.pack("!BBH", 0x41, 0x01, mid) + b"\x7a"
    options = b""
    last = 0
    for segment in segments:
        data = segment.encode()
        delta = 11 - last
        options += bytes([(delta << 4) | len(data)]) + data
        last = 11
    return header + options


def test_normalize_peer_maps_ipv4_in_ipv6() -> None:
    assert normalize_peer("::ffff:127.0.0.1", 5683) == ("127.0.0.1", 5683)
    assert normalize_peer("::1", 1) == ("::1", 1)
    assert normalize_peer("fe80::1%eth0", 2) == ("fe80::1", 2)


def test_requests_from_unknown_peers_get_no_answer() -> None:
    async def scenario() -> None:
        async with rig() as r:
            port = r.client.endpoint.local_port
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.setblocking(False)
            loop = asyncio.get_running_loop()
            try:
                stranger.sendto(coap_get(0x1234, "3", "0"), ("127.0.0.1", port))
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(loop.sock_recv(stranger, 2048), 0.5)
                    raise AssertionError(f"a stranger got an answer: {answer!r}")
            finally:
                stranger.close()
            # the registered server is still answered on the same socket
            assert (await r.server.read(EP, "/3/0/0")).code == "2.05"

    run(scenario())


def test_one_socket_for_register_and_server_requests() -> None:
    async def scenario() -> None:
        async with rig() as r:
            reg = r.server.registrations[EP]
            assert reg.remote == ("127.0.0.1", r.client.endpoint.local_port)

    run(scenario())


def test_registers_over_ipv6_too() -> None:
    async def scenario() -> None:
        server = await TestServer.start("::1", 0, log=lambda line: None, expiry_interval=None)
        client = Client(make_config(server.uri), simulate=True, clock=FakeClock())
        try:
            await client.start()
            reg = await server.wait_registered(EP)
            assert reg.remote[0] == "::1"
            assert (await server.read(EP, "/3/0/1")).payload == b"IT-1"
        finally:
            await client.stop()
            await server.stop()

    run(scenario())
