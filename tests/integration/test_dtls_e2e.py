"""DTLS-PSK (security mode 0) end to end: the real client against the test server over coaps.

The test server is the in-repo :class:`TestServer` with aiocoap's
``tinydtls_server`` transport in place of UDP (see :func:`start_psk_server`),
so every request, response and notification in these tests crossed a DTLS
session. The client's CoAP timers are short (ACK_TIMEOUT 0.2 s, one
retransmission): an unanswered request or handshake gives up within about
a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import aiocoap
import pytest
from aiocoap.credentials import CredentialsMap
from aiocoap.transports.tinydtls_server import MessageInterfaceTinyDTLSServer, _AddressDTLS

from lwm2md.app import Client
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.registration import State
from lwm2md.testing import TestServer
from lwm2md.transport.dtls import DtlsSession
from tests.integration.harness import EP, Rig, make_config, run, until

IDENTITY = b"it-gw-identity"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
WRONG_KEY = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
FAST_COAP = {"ack_timeout": 0.2, "max_retransmit": 1}
RETRY_TIMER = 10


# -- a DTLS-capable TestServer (test tooling only) --------------------------------------


class _ServerDtls(MessageInterfaceTinyDTLSServer):  # type: ignore[misc]
    """aiocoap's DTLS server transport, able to send requests over the sessions clients opened.

    Upstream only recognizes plain simplesocketserver addresses as its own,
    so a request to a DTLS session remote found no interface. ``transport``
    lets :class:`TestServer` find its port.
    """

    @property
    def transport(self) -> Any:
        return self._pool._transport

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, _AddressDTLS) and remote._protocol is self._pool

    def forget_sessions(self) -> None:
        """Drop every session's state without telling the clients (a crash, a NAT rebinding)."""
        self._pool._connections.clear()


async def dtls_server_context(site: Any, host: str, port: int, identity: bytes, key: bytes,
                              loggername: str = "lwm2md.testing.coaps") -> aiocoap.Context:  # fmt: skip
    """An aiocoap server context serving ``site`` over DTLS-PSK only, on ``host``:``port`` (0 = ephemeral)."""
    credentials = CredentialsMap()
    credentials.load_from_dict({":client": {"dtls": {"psk": key, "client-identity": identity}}})
    loop = asyncio.get_running_loop()
    context = aiocoap.Context(loop=loop, serversite=site, loggername=loggername,
                              server_credentials=credentials)  # fmt: skip
    # aiocoap binds a DTLS server to the given port + 1 (5683 -> 5684)
    await context._append_tokenmanaged_messagemanaged_transport(
        lambda mman: _ServerDtls.create_server(
            (host, port - 1), mman, log=context.log, loop=loop, server_credentials=credentials
        )
    )
    return context


def server_dtls(context: aiocoap.Context) -> _ServerDtls:
    interface = context.request_interfaces[0].token_interface.message_interface
    assert isinstance(interface, _ServerDtls)
    return interface


class PskTestServer(TestServer):
    """The TestServer on a DTLS-PSK socket; ``uri`` is coaps://."""

    __test__ = False

    @property
    def uri(self) -> str:
        return f"coaps://{self.bind}:{self.port}"

    def forget_sessions(self) -> None:
        server_dtls(self._context).forget_sessions()

    def close_sessions(self) -> None:
        """Send close_notify on every session (as a server that shuts a session down does)."""
        for address in list(server_dtls(self._context)._pool._connections.values()):
            address._dtls_socket.resetPeer(address._dtls_session)


async def start_psk_server(identity: bytes = IDENTITY, key: bytes = KEY, port: int = 0) -> PskTestServer:
    """Start a :class:`PskTestServer` that accepts ``identity`` with ``key``.

    :meth:`TestServer.start` has no transport parameter, so its context
    factory is swapped for :func:`dtls_server_context` while it runs.
    """

    async def create(site: Any, bind: tuple[str, int], *, loggername: str, **_: Any) -> aiocoap.Context:
        return await dtls_server_context(site, bind[0], bind[1], identity, key, loggername)

    with mock.patch.object(aiocoap.Context, "create_server_context", create):
        server = await PskTestServer.start("127.0.0.1", port, log=lambda line: None, expiry_interval=None)
    assert isinstance(server, PskTestServer)
    return server


@contextlib.asynccontextmanager
async def psk_rig(key: bytes = KEY, register: bool = True) -> AsyncIterator[Rig]:
    """The PSK test server and a client configured with ``IDENTITY`` and ``key`` for it."""
    server = await start_psk_server()
    server_table = {"uri": server.uri, "short_id": 1, "lifetime": 300, "psk_identity": IDENTITY.decode(),
                    "psk_key": key.hex(), "communication_retry_timer": RETRY_TIMER}  # fmt: skip
    config = make_config(server.uri, server=[server_table], coap=FAST_COAP)
    clock = FakeClock()
    client = Client(config, simulate=True, clock=clock)
    rig = Rig(server, client, clock)
    try:
        await client.start()
        if register:
            await server.wait_registered(EP)
            await server.wait_event("register", endpoint=EP)  # consumed: tests wait for the next one
        yield rig
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.stop()
        await rig.server.stop()


def psk_server(rig: Rig) -> PskTestServer:
    assert isinstance(rig.server, PskTestServer)
    return rig.server


def session_of(rig: Rig) -> DtlsSession:
    requester = rig.client.registrations[1].requester
    session = getattr(requester, "session", None)
    assert isinstance(session, DtlsSession)
    return session


# -- tests -----------------------------------------------------------------------------


def test_registers_over_coaps_and_the_server_reads_over_the_session() -> None:
    async def scenario() -> None:
        async with psk_rig() as r:
            session = session_of(r)
            assert session.established
            assert session.cipher_suite_name == "TLS_PSK_WITH_AES_128_CCM_8"
            reg = r.server.registrations[EP]
            assert isinstance(reg.coap_remote, _AddressDTLS), "Register arrived over DTLS"
            assert reg.remote[1] != r.client.endpoint.local_port, "the session has a socket of its own"
            assert "/3/0" in reg.objects and not any(t.startswith("/0") for t in reg.objects)
            response = await r.server.read(EP, "/3/0")
            assert response.code == "2.05"
            assert response.records is not None
            values = {str(rec.path): rec.value for rec in response.records}
            assert values["/3/0/0"] == "Test Inc" and values["/3/0/1"] == "IT-1"
            assert (await r.server.write(EP, "/1/0/1", 120)).code == "2.04"
            await r.clock.settle()
            update = await r.server.wait_event("update", endpoint=EP)
            assert update.params.get("lt") == "120"
            assert session_of(r) is session, "the Update went over the same session"

    run(scenario())


def test_observation_over_dtls_notifies_over_dtls() -> None:
    async def scenario() -> None:
        async with psk_rig() as r:
            await r.sample(temperature=20.0)
            obs = await r.server.observe(EP, "/3303/0/5700")
            assert obs.active and obs.first.value == 20.0
            await r.sample(temperature=23.5)
            notification = await obs.next(timeout=5)
            assert notification.value == 23.5
            assert isinstance(notification.message.remote, _AddressDTLS)
            cancelled = await obs.cancel()
            assert cancelled.code == "2.05"
            await until(lambda: not r.client.observe.observations(1))

    run(scenario())


def test_wrong_key_fails_with_a_clear_log_line_and_retries_with_the_key_from_security_object(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with psk_rig(key=WRONG_KEY, register=False) as r:
            reg = r.client.registrations[1]
            await until(lambda: reg.state is State.WAITING_RETRY)
            lines = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
            failure = next(line for line in lines if "register got no answer" in line)
            assert "DTLS handshake with 127.0.0.1:" in failure
            assert f"wrong PSK identity '{IDENTITY.decode()}' or key?" in failure
            assert EP not in r.server.registrations
            # the key comes from /0/0/5 at each handshake: correct it there (as bootstrap would)
            r.client.tree.instance(0, 0).write(5, KEY)
            await r.clock.advance(RETRY_TIMER)
            await r.server.wait_registered(EP)
            await until(lambda: reg.state is State.REGISTERED)
        text = caplog.text
        for secret in (KEY, WRONG_KEY):
            assert secret.hex() not in text and repr(secret) not in text

    caplog.set_level(logging.DEBUG)
    run(scenario())


def test_server_restart_leads_to_a_new_session_and_registration() -> None:
    async def scenario() -> None:
        async with psk_rig() as r:
            before = session_of(r)
            old_port = r.server.registrations[EP].remote[1]
            port = r.server.port
            await r.server.stop()
            r.server = await start_psk_server(port=port)
            r.client.request_update()  # the next Update finds the session gone
            reg = await r.server.wait_registered(EP)
            assert before.closed
            after = session_of(r)
            assert after is not before and after.established
            assert reg.remote[1] != old_port, "a new session comes from a new socket"
            assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1"

    run(scenario())


def test_session_lost_silently_is_replaced_and_the_client_registers_again() -> None:
    """The server forgets the session silently (crash, NAT rebinding): Update fails, Register follows."""

    async def scenario() -> None:
        async with psk_rig() as r:
            before = session_of(r)
            first = r.server.registrations[EP].location
            psk_server(r).forget_sessions()
            r.client.request_update()
            event = await r.server.wait_event("register", endpoint=EP)
            assert event.registration is not None and event.registration.location != first
            assert before.closed and "no answer" in (before.close_reason or "")
            assert session_of(r).established
            assert (await r.server.read(EP, "/3/0/0")).code == "2.05"

    run(scenario())


def test_close_notify_ends_the_session_and_its_observations_and_the_next_update_opens_a_new_one() -> None:
    async def scenario() -> None:
        async with psk_rig() as r:
            obs = await r.server.observe(EP, "/3303/0/5700")
            assert obs.active
            before = session_of(r)
            psk_server(r).close_sessions()
            await until(lambda: before.closed)
            assert before.close_reason == "the server closed the session (close_notify)"
            await until(lambda: not r.client.observe.observations(1))
            r.client.request_update()
            update = await r.server.wait_event("update", endpoint=EP)
            assert update.registration is not None
            assert session_of(r) is not before and session_of(r).established
            assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1"

    run(scenario())


def test_de_register_goes_over_the_session_and_stop_closes_it() -> None:
    async def scenario() -> None:
        async with psk_rig() as r:
            session = session_of(r)
            await r.client.stop()
            event = await r.server.wait_event("deregister", endpoint=EP)
            assert event.reason == "deregister"
            assert session.closed
            assert r.client.endpoint.dtls is None

    run(scenario())
