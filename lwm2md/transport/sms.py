"""The LwM2M SMS binding: CoAP messages carried in binary SMS (LwM2M 1.1 Transport, section 7).

A CoAP message is encoded whole (``Message.encode()``) into the payload of
one binary SMS, concatenated by the link when longer than one SMS; a
received payload is decoded with ``Message.decode()``. The remotes are
MSISDNs (:class:`SmsRemote`, ``sms://+49...``), not addresses.

:class:`SmsInterface` is an aiocoap message interface. It plugs into the
client's :class:`~lwm2md.transport.coap.CoapEndpoint` through
``CoapEndpoint.add_message_interface`` (own token manager, the endpoint's
filtering message manager, the same site and dispatcher), so a server's
request over SMS is served exactly as over UDP and answered over SMS; a
request from a number that is not a configured server's SMS number is
dropped unanswered. The same class, fed by a fake network's endpoint, serves
as the test server's SMS transport (``tests/integration/test_sms_e2e.py``).

Tuning for SMS (see ``docs/sms.md``): a message takes seconds to tens of
seconds to cross the network, so confirmable messages sent by the binding
wait :data:`ACK_TIMEOUT` for their ACK and are retransmitted at most
:data:`MAX_RETRANSMIT` times; a response is never split into an empty ACK
and a separate response (:data:`EMPTY_ACK_DELAY`). Block-wise transfers use
64-byte blocks (SZX 2): with the CoAP header, token and options a block
fits the 140 octets of one SMS.

aiocoap internals touched here: the MessageInterface/EndpointAddress
contract and ``Message.decode``/``encode`` (pinned aiocoap 0.4.17).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiocoap
from aiocoap import Code, Message
from aiocoap import error as coap_error
from aiocoap.interfaces import EndpointAddress, MessageInterface
from aiocoap.numbers.constants import TransportTuning

from lwm2md.drivers.modem.pdu import Address
from lwm2md.engine.registration import CoapResponse, Requester, TransportError
from lwm2md.transport.coap import response_of

LOG = logging.getLogger(__name__)

ACK_TIMEOUT = 30.0
"""Seconds a confirmable message over SMS waits for its ACK (RFC 7252 ACK_TIMEOUT; UDP: 2)."""
MAX_RETRANSMIT = 1
"""Retransmissions of a confirmable message over SMS (each costs an SMS; UDP: 4)."""
EMPTY_ACK_DELAY = 20.0
"""Seconds before a request over SMS gets an empty ACK ahead of a separate response."""
BLOCK_SZX = 2
"""Block-wise size exponent over SMS: 2**(4+2) = 64 bytes per block."""
MAX_PAYLOAD = 64
"""Largest payload sent over SMS before block-wise transfer starts."""

SendFunction = Callable[[str, bytes], Awaitable[Any] | Any]
"""``send(msisdn, datagram)``: :meth:`SmsLink.send` or a fake network endpoint's ``send``."""


class SmsTuning(TransportTuning):  # type: ignore[misc]
    """CoAP transmission parameters for SMS."""

    ACK_TIMEOUT = ACK_TIMEOUT
    MAX_RETRANSMIT = MAX_RETRANSMIT
    EMPTY_ACK_DELAY = EMPTY_ACK_DELAY


def max_transmit_wait() -> float:
    """Seconds a confirmable request over SMS may wait for its answer (RFC 7252 MAX_TRANSMIT_WAIT)."""
    tuning = SmsTuning()
    return float(tuning.ACK_TIMEOUT * (2 ** (tuning.MAX_RETRANSMIT + 1) - 1) * tuning.ACK_RANDOM_FACTOR)


def normalize_msisdn(number: str) -> str:
    """``"+49 170 123"`` style numbers in their canonical form (ValueError when malformed)."""
    return str(Address.parse(number.replace(" ", "")))


class SmsRemote(EndpointAddress):  # type: ignore[misc]
    """One SMS peer (an MSISDN) of an :class:`SmsInterface`; equal per interface and number."""

    scheme = "sms"
    is_multicast = False
    is_multicast_locally = False
    maximum_block_size_exp = BLOCK_SZX
    maximum_payload_size = MAX_PAYLOAD

    def __init__(self, interface: SmsInterface, msisdn: str) -> None:
        self.interface = interface
        self.msisdn = msisdn

    @property
    def binding_key(self) -> tuple[str, str]:
        """What the endpoint's peer table maps to a server short ID."""
        return ("sms", self.msisdn)

    @property
    def hostinfo(self) -> str:
        return self.msisdn

    @property
    def hostinfo_local(self) -> str:
        return self.interface.own_number or "sms"

    @property
    def uri_base(self) -> str:
        return "sms://" + self.msisdn

    @property
    def uri_base_local(self) -> str:
        return "sms://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return self

    def __hash__(self) -> int:
        return hash((id(self.interface), self.msisdn))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SmsRemote):
            return NotImplemented
        return other.interface is self.interface and other.msisdn == self.msisdn

    def __repr__(self) -> str:
        return f"<SmsRemote {self.msisdn}>"


class SmsInterface(MessageInterface):  # type: ignore[misc]
    """aiocoap message interface over binary SMS.

    ``message_manager`` gets every decoded message (with the SMS tuning);
    ``send(msisdn, datagram)`` submits one encoded message (a coroutine is
    run as a task; its failure is one log line, like a lost datagram).
    Feed received payloads to :meth:`receive` on the event loop.
    """

    def __init__(self, message_manager: Any, send: SendFunction, *, own_number: str | None = None) -> None:
        self._mman = message_manager
        self._send = send
        self.own_number = own_number
        self.sent = 0
        self.received = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shut = False

    def remote(self, msisdn: str) -> SmsRemote:
        return SmsRemote(self, normalize_msisdn(msisdn))

    def receive(self, source: str, payload: bytes) -> None:
        """One whole SMS payload from ``source``: a CoAP message for the message manager; never raises."""
        if self._shut or self._mman is None:
            return
        try:
            remote = self.remote(source)
            message = Message.decode(payload, remote)
        except (coap_error.UnparsableMessage, UnicodeDecodeError, ValueError) as exc:
            LOG.info("sms: dropping a message from %s that is not CoAP: %s", source, exc)
            return
        message.transport_tuning = SmsTuning()
        self.received += 1
        LOG.debug("sms: %s %s from %s (%d octets)", message.mtype, message.code, remote.msisdn, len(payload))
        self._mman.dispatch_message(message)

    # -- aiocoap MessageInterface ---------------------------------------------------

    def send(self, message: Message) -> None:
        remote = message.remote
        if not isinstance(remote, SmsRemote) or self._shut:
            return
        datagram = message.encode()
        self.sent += 1
        LOG.debug("sms: %s %s to %s (%d octets)", message.mtype, message.code, remote.msisdn, len(datagram))
        try:
            result = self._send(remote.msisdn, datagram)
        except Exception as exc:
            LOG.warning("sms: cannot send to %s: %s", remote.msisdn, exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._finish(remote.msisdn, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, msisdn: str, pending: Awaitable[Any]) -> None:
        try:
            await pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ModemError, ValueError: the message is lost
            LOG.warning("sms: cannot send to %s: %s", msisdn, exc)

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, SmsRemote) and remote.interface is self

    async def determine_remote(self, message: Message) -> SmsRemote | None:
        if getattr(message, "requested_scheme", None) != "sms" or not message.unresolved_remote:
            return None
        try:
            return self.remote(str(message.unresolved_remote))
        except ValueError:
            return None

    async def shutdown(self) -> None:
        self._shut = True
        self._mman = None
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class SmsRequester(Requester):
    """Confirmable requests to one server's SMS number over an :class:`SmsInterface` (binding S)."""

    def __init__(self, context: Callable[[], aiocoap.Context | None], interface: SmsInterface, msisdn: str,
                 timeout: float | None = None) -> None:  # fmt: skip
        self._context = context
        self._interface = interface
        self._remote = interface.remote(msisdn)
        self._timeout = timeout if timeout is not None else max_transmit_wait() * 2

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        context = self._context()
        if context is None:
            raise TransportError("endpoint is closed")
        msg = Message(code=Code[method], payload=payload, uri_path=tuple(uri_path),
                      uri_query=tuple(query), transport_tuning=SmsTuning())  # fmt: skip
        if content_format is not None:
            msg.opt.content_format = content_format
        msg.remote = self._remote
        try:
            response = await asyncio.wait_for(context.request(msg).response, self._timeout)
        except (aiocoap.error.Error, OSError, TimeoutError) as exc:
            raise TransportError(f"{method} /{'/'.join(uri_path)} over SMS: {type(exc).__name__}") from None
        return response_of(response)


class SmsBinding:
    """The client's SMS binding: one :class:`SmsInterface` on the endpoint, fed by an SMS link.

    ``endpoint`` is a started :class:`~lwm2md.transport.coap.CoapEndpoint`;
    ``link`` an object with ``send(msisdn, payload)`` (awaitable) and
    ``on_receive(callback)`` (:class:`~lwm2md.drivers.modem.sms.SmsLink`).
    :meth:`add_server` makes a server's SMS number a known peer.
    """

    def __init__(self, endpoint: Any, link: Any, *, own_number: str | None = None) -> None:
        self.endpoint = endpoint
        self.link = link
        self.interface: SmsInterface = endpoint.add_message_interface(
            lambda mman: SmsInterface(mman, link.send, own_number=own_number)
        )
        self._unsubscribe = link.on_receive(self.interface.receive)
        self.numbers: dict[int, str] = {}

    def add_server(self, ssid: int, msisdn: str) -> SmsRemote:
        """Accept requests from ``msisdn`` as server ``ssid``'s (and answer them over SMS)."""
        remote = self.interface.remote(msisdn)
        self.numbers[ssid] = remote.msisdn
        self.endpoint.peers.set_remote(ssid, remote.binding_key)
        return remote

    def requester(self, ssid: int) -> SmsRequester:
        """Requests to server ``ssid`` over SMS (binding S); :meth:`add_server` first."""
        return SmsRequester(lambda: self.endpoint.context, self.interface, self.numbers[ssid])

    def close(self) -> None:
        self._unsubscribe()
