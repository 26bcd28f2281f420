"""transport/sms.py: CoAP over SMS between two aiocoap contexts joined by an in-memory SMS link.

The client side is a real :class:`CoapEndpoint` with the SMS binding; the
server side is the in-repo TestServer with an :class:`SmsInterface` of its
own. Binding S: the Register itself goes by SMS through :class:`SmsRequester`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiocoap import Message

from lwm2md.engine.registration import TransportError
from lwm2md.testing import TestServer
from lwm2md.transport.coap import CoapEndpoint
from lwm2md.transport.sms import (
    ACK_TIMEOUT,
    BLOCK_SZX,
    MAX_PAYLOAD,
    MAX_RETRANSMIT,
    SmsBinding,
    SmsInterface,
    SmsRemote,
    SmsTuning,
    normalize_msisdn,
)

CLIENT = "+491701234567"
SERVER = "+491709999999"


class Link:
    """An SMS link double: ``send`` hands the payload to the other side on the next loop turn."""

    def __init__(self, own: str) -> None:
        self.own = own
        self.peer: Callable[[str, bytes], None] | None = None
        self.sent: list[tuple[str, bytes]] = []
        self.listeners: list[Callable[[str, bytes], None]] = []

    async def send(self, to: str, payload: bytes) -> int:
        self.sent.append((to, payload))
        if self.peer is not None:
            asyncio.get_running_loop().call_soon(self.peer, self.own, payload)
        return 1

    def on_receive(self, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def deliver(self, source: str, payload: bytes) -> None:
        for callback in list(self.listeners):
            callback(source, payload)


def run(coro: Any) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(20):
            await coro

    asyncio.run(bounded())


def test_tuning_and_block_size_fit_one_sms() -> None:
    tuning = SmsTuning()
    assert tuning.ACK_TIMEOUT == ACK_TIMEOUT >= 30 and tuning.MAX_RETRANSMIT == MAX_RETRANSMIT <= 2
    assert 2 ** (4 + BLOCK_SZX) == MAX_PAYLOAD == 64
    assert normalize_msisdn("+49 170 1234567") == CLIENT


def test_remote_identity_and_decode_of_garbage_is_survived() -> None:
    async def scenario() -> None:
        dispatched: list[Message] = []

        class Manager:
            def dispatch_message(self, message: Message) -> None:
                dispatched.append(message)

        interface = SmsInterface(Manager(), lambda to, data: None, own_number=CLIENT)
        a, b = interface.remote(SERVER), interface.remote("+49 170 9999999")
        assert a == b and hash(a) == hash(b) and a.uri_base == f"sms://{SERVER}"
        assert a.maximum_block_size_exp == BLOCK_SZX and a.hostinfo_local == CLIENT
        interface.receive(SERVER, b"\xff\xff")  # not CoAP: one log line, nothing dispatched
        interface.receive(SERVER, b"\x41\x01\x12\x34\x01\xb13")  # CON GET /3, token 01
        assert len(dispatched) == 1 and dispatched[0].remote == a
        assert dispatched[0].transport_tuning.ACK_TIMEOUT == ACK_TIMEOUT

    run(scenario())


async def _handler(_request: Any) -> Any:
    raise AssertionError("not used")


def test_binding_s_register_and_read_over_sms() -> None:
    async def scenario() -> None:
        from lwm2md.app import Client
        from tests.integration.harness import EP, make_config

        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        table = {"uri": server.uri, "short_id": 1, "binding": "S", "sms_number": SERVER}
        modem = {"port": "/dev/ttyFAKE", "sms": True, "own_number": CLIENT}
        client = Client(make_config(server.uri, server=[table], modem=modem), simulate=True)
        client_link, server_link = Link(CLIENT), Link(SERVER)
        box: list[SmsInterface] = []

        async def make(mman: Any) -> SmsInterface:
            box.append(SmsInterface(mman, server_link.send, own_number=SERVER))
            return box[0]

        await server._context._append_tokenmanaged_messagemanaged_transport(make)
        server_sms = box[0]
        client_link.peer, server_link.peer = server_sms.receive, client_link.deliver
        endpoint: CoapEndpoint = client.endpoint
        try:
            await endpoint.start("127.0.0.1", 0)
            binding = SmsBinding(endpoint, client_link, own_number=CLIENT)
            binding.add_server(1, SERVER)
            requester = binding.requester(1)
            links = client.registration_links(1).encode()
            response = await requester.request("POST", ("rd",), (f"ep={EP}", "b=S", f"sms={CLIENT}"),
                                               links, 40)  # fmt: skip
            assert response.code == 65  # 2.01
            reg = server.registrations[EP]
            assert reg.binding == "S" and reg.sms == CLIENT
            assert isinstance(reg.coap_remote, SmsRemote)
            assert len(links) > MAX_PAYLOAD and len(client_link.sent) > 1, "Register went in Block1 blocks"
            read = await server.read(EP, "/3/0/0")
            assert read.code == "2.05" and read.payload == b"Test Inc"
            # a number that is not a server's is dropped, unanswered
            before = len(client_link.sent)
            client_link.deliver("+491705555555", b"\x41\x01\x12\x35\x02\xb13")
            await asyncio.sleep(0.1)
            assert len(client_link.sent) == before
        finally:
            await endpoint.close()
            await server.stop()
        try:
            await requester.request("GET", ("x",))
        except TransportError as exc:
            assert "closed" in str(exc)
        else:
            raise AssertionError("a closed endpoint must refuse requests")

    run(scenario())
