"""The one CoAP endpoint: one aiocoap context on one UDP socket, plus DTLS sessions.

The same socket sends the client's requests (Register, Update, Send) and
serves the servers' requests, so a server behind NAT reaches the client at
the address it registered from. Requests from addresses that are not one of
the client's servers are dropped without an answer (debug log line).

A server in security mode 0 (PSK) is reached over a DTLS session instead
(``transport/dtls.py``): the session has a socket of its own, and the
server's requests arrive over it and are answered over it, through the same
site and dispatcher. Such a server's plain CoAP requests are dropped.

Queue mode (``engine/queue.py``) can close the UDP socket and open it again
(:meth:`CoapEndpoint.close_udp`, :meth:`CoapEndpoint.reopen_udp`) and close
one server's DTLS session; the aiocoap context, its exchanges and the
observation pipes stay, so notifications continue over the new socket.

With ``transport/dtls.py`` this is the only code that touches aiocoap
internals: the context is assembled by hand (token managers, filtering
message managers, the UDP6 and DTLS message interfaces) because aiocoap has
no public hook for dropping requests before they are answered. Pinned to
aiocoap 0.4.17.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiocoap
from aiocoap import Code, Message
from aiocoap.blockwise import Block1Spool, Block2Cache
from aiocoap.error import ConstructionRenderableError
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers.constants import TransportTuning
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import CON, NON, RST
from aiocoap.tokenmanager import TokenManager
from aiocoap.transports.udp6 import MessageInterfaceUDP6
from aiocoap.util import socknumbers
from aiocoap.util.asyncio.recvmsg import create_recvmsg_datagram_endpoint

from lwm2md.engine.observe import Observation
from lwm2md.engine.queue import ObservationLost
from lwm2md.engine.registration import CoapResponse, Requester, TransportError
from lwm2md.engine.requests import InboundRequest, Outcome
from lwm2md.errors import InternalError, Lwm2mError
from lwm2md.logsetup import fields
from lwm2md.model.path import Path
from lwm2md.model.types import Record
from lwm2md.transport.dtls import DtlsError, DtlsInterface, DtlsSession, PskCredentials

LOG = logging.getLogger(__name__)

Peer = tuple[str, int]
Handler = Callable[[InboundRequest], Awaitable[Outcome]]
ObservationHooks = tuple[Callable[[Observation, list[Record]], None], Callable[[Observation], None]]
Encoder = Callable[[int, Path, Sequence[Record]], bytes]
ServingHook = Callable[[int, bool], None]

NON_LWM2M_PATHS = frozenset({("bs",)})
"""URI-Paths served that are not object paths (Bootstrap-Finish); the handler sees ``uri_path``."""

_METHODS = {
    Code.GET: "GET",
    Code.POST: "POST",
    Code.PUT: "PUT",
    Code.DELETE: "DELETE",
    Code.FETCH: "FETCH",
    Code.iPATCH: "IPATCH",
}


def normalize_peer(host: str, port: int) -> Peer:
    """Canonical (ip, port): IPv4-mapped IPv6 addresses become plain IPv4."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return (host, port)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (str(ip), port)


def _remote_peer(remote: Any) -> Peer | None:
    sockaddr = getattr(remote, "sockaddr", None)
    if not sockaddr:
        return None
    return normalize_peer(str(sockaddr[0]), int(sockaddr[1]))


async def resolve_peer(host: str, port: int) -> Peer:
    """Resolve a server host name to a canonical (ip, port); TransportError when it fails."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise TransportError(f"cannot resolve {host}: {exc}") from None
    if not infos:
        raise TransportError(f"cannot resolve {host}")
    address = infos[0][4]
    return normalize_peer(str(address[0]), int(address[1]))


class PeerTable:
    """Which remote belongs to which server short ID.

    A ``coap`` server is matched by its address. A ``coaps`` server only by
    the DTLS sessions opened for its account (holding its PSK is the proof),
    so plain datagrams from its address are nobody's. ``on_remove`` is
    called with the short ID after :meth:`remove`.
    """

    def __init__(self, on_remove: Callable[[int], None] | None = None) -> None:
        self._by_peer: dict[Peer, int] = {}
        self._secure: set[int] = set()
        self._on_remove = on_remove
        self._by_key: dict[Any, int] = {}  # extra message interfaces (SMS binding hook)

    def set(self, ssid: int, peer: Peer, *, scheme: str = "coap") -> None:
        """Map server ``ssid`` (replacing what it had): at ``peer`` for coap; for coaps, its sessions."""
        self._forget(ssid)
        if scheme == "coaps":
            self._secure.add(ssid)
        else:
            self._by_peer[peer] = ssid

    def remove(self, ssid: int) -> None:
        self._forget(ssid)
        self._by_key = {key: owner for key, owner in self._by_key.items() if owner != ssid}
        if self._on_remove is not None:
            self._on_remove(ssid)

    def _forget(self, ssid: int) -> None:
        self._secure.discard(ssid)
        for known, owner in list(self._by_peer.items()):
            if owner == ssid:
                del self._by_peer[known]

    def ssid_for(self, peer: Peer | None) -> int | None:
        """The coap server at address ``peer``."""
        return self._by_peer.get(peer) if peer is not None else None

    def ssid_for_remote(self, remote: Any) -> int | None:
        """The server an aiocoap remote (UDP address or DTLS session) belongs to."""
        if isinstance(remote, DtlsSession):
            return remote.ssid if remote.ssid in self._secure else None
        # -- begin SMS binding hook: remotes of extra message interfaces --
        key = getattr(remote, "binding_key", None)
        if key is not None:
            return self._by_key.get(key)
        # -- end SMS binding hook --
        return self.ssid_for(_remote_peer(remote))

    # -- begin SMS binding hook: remotes of extra message interfaces --
    def set_remote(self, ssid: int, key: Any) -> None:
        """Map remotes whose ``binding_key`` is ``key`` (an SMS number) to server ``ssid``.

        Kept apart from :meth:`set` (a server has an address and an SMS
        number); forgotten by :meth:`remove`.
        """
        self._by_key[key] = ssid

    # -- end SMS binding hook --


class _ReopenableUDP6(MessageInterfaceUDP6):  # type: ignore[misc]
    """aiocoap's UDP6 message interface whose socket can be closed and opened again.

    aiocoap remotes point at the interface object, and the message and token
    managers keep their state, so exchanges and observation pipes survive a
    close/reopen: only the socket changes. Reopening binds the address and
    port last bound when that is free, else a new ephemeral port. While
    closed, :meth:`send` drops messages as a lost datagram would be dropped
    (queue mode does not send then; this only keeps a stray send harmless).
    """

    def __init__(self, ctx: Any, log: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(ctx, log, loop)
        self.transport: Any = None
        self.sockname: tuple[Any, ...] | None = None
        """The socket's address, kept while it is closed (the port to ask for again)."""

    @property
    def is_open(self) -> bool:
        return self.transport is not None

    def datagram_msg_received(self, data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        """aiocoap's parser, plus one log line for what it lets escape on hostile input.

        aiocoap 0.4.17 raises UnicodeDecodeError (not UnparsableMessage) for a
        string option that is not UTF-8; asyncio would log a traceback per datagram.
        """
        try:
            super().datagram_msg_received(data, ancdata, flags, address)
        except (UnicodeDecodeError, ValueError) as exc:
            LOG.info("dropping a malformed datagram from %s: %s", address[0] if address else "?", exc)

    def _local_port(self) -> int:
        return int(self.sockname[1]) if self.sockname is not None else 0

    def connection_made(self, transport: Any) -> None:
        if not self.ready.done():
            self.ready.set_result(True)
        self.transport = transport
        self.sockname = tuple(transport.get_extra_info("socket").getsockname())

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            LOG.warning("UDP socket lost: %s", exc)
        if self._shutting_down is not None and not self._shutting_down.done():
            self._shutting_down.set_result(None)

    def send(self, message: Message) -> None:
        if self.transport is None:
            LOG.debug("UDP socket closed: %s to %s dropped", message.code, message.remote.hostinfo)
            return
        super().send(message)

    def close_socket(self) -> None:
        """Close the socket now (idempotent); the interface stays usable for :meth:`reopen`."""
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()

    async def reopen(self) -> None:
        """Bind a new socket: the previous address and port if free, else an ephemeral port."""
        if self.transport is not None:
            return
        assert self.sockname is not None, "reopen() before the first bind"
        host, port, flowinfo, scope_id = self.sockname
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            if socknumbers.HAS_RECVERR:  # ICMP errors reach the message manager, as on the first socket
                sock.setsockopt(socket.IPPROTO_IPV6, socknumbers.IPV6_RECVERR, 1)
                sock.setsockopt(socket.IPPROTO_IP, socknumbers.IP_RECVERR, 1)
            try:
                sock.bind((host, port, flowinfo, scope_id))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                LOG.info("UDP port %d is taken now; reopening on a new ephemeral port", port)
                sock.bind((host, 0, flowinfo, scope_id))
            await create_recvmsg_datagram_endpoint(self.loop, lambda: self, sock)
        except BaseException:
            sock.close()
            raise

    async def shutdown(self) -> None:
        if self.transport is None:  # closed by queue mode: nothing to wait for
            del self._ctx
            return
        await super().shutdown()


class _FilteringMessageManager(MessageManager):  # type: ignore[misc]
    """aiocoap's message manager, minus requests from unknown peers.

    It also lets a server cancel an observation by answering a
    non-confirmable notification with RST (RFC 7641 3.6), which aiocoap
    only honours for confirmable ones: the stop callbacks of recent NON
    notifications are kept by (remote, message ID).
    """

    RECENT_NON = 512

    def __init__(self, token_manager: _TokenManager, peers: PeerTable) -> None:
        super().__init__(token_manager)
        self._peers = peers
        self._recent_non: OrderedDict[tuple[Any, int], Callable[[], None]] = OrderedDict()
        self._seen_until: OrderedDict[tuple[Any, int], float] = OrderedDict()

    def _deduplicate_message(self, message: Message) -> bool:
        """True for a message seen within EXCHANGE_LIFETIME (a CON gets the stored answer again).

        Replaces aiocoap's bookkeeping, which arms one timer per received
        message: here expiry is one ordered map swept on arrival, so a long
        Block1 upload does not pile up timers (and :meth:`forget_duplicate`
        can drop an entry whose answer is known to have arrived).
        """
        now = self.loop.time()
        recent = self._recent_messages
        while self._seen_until:
            oldest, deadline = next(iter(self._seen_until.items()))
            if deadline > now:
                break
            del self._seen_until[oldest]
            recent.pop(oldest, None)
        key = (message.remote, message.mid)
        if key in recent:
            stored = recent[key]
            if message.mtype is CON and stored is not None:
                self._send_initially(stored)
            return True
        self._seen_until[key] = now + message.transport_tuning.EXCHANGE_LIFETIME
        recent[key] = None
        return False

    def forget_duplicate(self, key: tuple[Any, int]) -> None:
        """Stop treating (remote, message ID) ``key`` as seen (its answer is known to have arrived)."""
        self._recent_messages.pop(key, None)
        self._seen_until.pop(key, None)

    def dispatch_message(self, message: Message) -> None:
        if message.code.is_request() and self._peers.ssid_for_remote(message.remote) is None:
            LOG.debug("dropping %s from unknown peer %s", message.code, message.remote.hostinfo)
            return
        if message.mtype is RST:
            stop = self._recent_non.pop((message.remote, message.mid), None)
            if stop is not None:
                LOG.debug("RST to a notification from %s: observation cancelled", message.remote.hostinfo)
                stop()
        super().dispatch_message(message)

    def send_message(self, message: Message, messageerror_monitor: Any) -> None:
        super().send_message(message, messageerror_monitor)
        if (
            message.mtype is NON
            and message.opt.observe is not None
            and message.code.is_response()
            and callable(messageerror_monitor)
        ):
            self._recent_non[(message.remote, message.mid)] = messageerror_monitor
            while len(self._recent_non) > self.RECENT_NON:
                self._recent_non.popitem(last=False)


class _TokenManager(TokenManager):  # type: ignore[misc]
    """aiocoap's token manager, telling which remote's failure it is dispatching.

    When a request to a server times out, aiocoap ends every exchange with
    that remote, observations included; :meth:`CoapEndpoint.begin_observation`
    asks :attr:`failing` to tell such an end (the server unreachable, its
    notifications are to be stored) from a cancellation. A DTLS session
    that closes ends its observations as before.
    """

    failing: Any = None

    def dispatch_error(self, exception: Exception, remote: Any) -> None:
        if isinstance(exception, DtlsError):  # a session closed on purpose (or lost): its relations end
            super().dispatch_error(exception, remote)
            return
        self.failing = remote
        try:
            super().dispatch_error(exception, remote)
        finally:
            self.failing = None


class _Site:
    """aiocoap server site routing every request to the LwM2M dispatcher.

    A request body sent in Block1 blocks (RFC 7959 2.5) is streamed or
    assembled. At block 0 the endpoint's ``block1_sink`` hook, when it has
    one, is called with the request as the engine would see it (payload: the
    first block) and the announced Size1 (or None); it returns None or a
    sink, or raises Lwm2mError to refuse. A sink gets every block's payload
    in order through ``write(bytes)`` (raise Lwm2mError to stop), then
    ``await finish()`` returns the Outcome answering the last block;
    ``abort(reason)`` ends a transfer that starts over at block 0, skips a
    block or stalls for STREAM_IDLE seconds. Only one block is ever held,
    whatever the size. Everything else is assembled in memory by aiocoap's
    spool, up to MAX_ASSEMBLED bytes (4.13 with Size1 beyond that).
    """

    MAX_ASSEMBLED = 256 * 1024
    STREAM_IDLE = TransportTuning().MAX_TRANSMIT_WAIT

    def __init__(self, endpoint: CoapEndpoint) -> None:
        self._endpoint = endpoint
        self._block1 = Block1Spool()
        self._block2 = Block2Cache()
        self._streams: dict[Any, _Block1Stream] = {}

    async def render_to_pipe(self, pipe: Any) -> None:
        request = pipe.request
        streaming = request.opt.block1 is not None and self._streamable(request)
        if not streaming:
            request = self._block1.feed_and_take(self._capped(request))
        ssid = self._endpoint.peers.ssid_for_remote(request.remote)
        if ssid is None:  # filtered earlier; a peer table change raced us
            pipe.add_response(Message(code=Code.UNAUTHORIZED), is_last=True)
            return
        self._endpoint.serving(ssid, True)
        try:
            if streaming:
                streamed = await self._stream_block(request, ssid)
                if streamed is not None:
                    pipe.add_response(streamed, is_last=True)
                    return
                request = self._block1.feed_and_take(self._capped(request))
            await self._render(pipe, request, ssid)
        finally:
            self._endpoint.serving(ssid, False)

    # -- Block1 ---------------------------------------------------------------

    @staticmethod
    def _stream_key(request: Message) -> Any:
        skip = [OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.OBSERVE]
        return (request.remote.blockwise_key, request.code, request.get_cache_key(skip))

    def _streamable(self, request: Message) -> bool:
        """True when this Block1 request may be streamed (decided fully in :meth:`_stream_block`)."""
        block1 = request.opt.block1
        if block1.block_number == 0:
            return self._endpoint.block1_sink is not None
        return self._stream_key(request) in self._streams

    def _capped(self, request: Message) -> Message:
        """``request`` unless its assembled body would pass MAX_ASSEMBLED (then 4.13 is raised)."""
        block1 = request.opt.block1
        if block1 is None:
            return request
        size1 = request.opt.size1
        end = block1.block_number * block1.size + len(request.payload)
        if end > self.MAX_ASSEMBLED or (size1 is not None and size1 > self.MAX_ASSEMBLED):
            raise _TooLarge(self.MAX_ASSEMBLED)
        return request

    async def _stream_block(self, request: Message, ssid: int) -> Message | None:
        """The answer to one streamed block, or None when the request is not streamed."""
        block1 = request.opt.block1
        key = self._stream_key(request)
        stream = self._streams.get(key)
        if block1.block_number == 0:
            if stream is not None:
                self._drop(key, stream, "the transfer began again")
            try:
                stream = self._open_stream(key, request, ssid)
            except Lwm2mError as exc:
                return _error_message(exc, request)
            if stream is None:
                return None
        elif stream is None:
            return None
        offset = block1.block_number * block1.size
        payload = request.payload
        if offset != stream.received:
            if offset == stream.last_offset and offset + len(payload) == stream.received and block1.more:
                return _continue(block1)  # the previous block again (its answer was lost)
            self._drop(key, stream, f"block at byte {offset}, expected {stream.received}")
            return Message(code=Code.REQUEST_ENTITY_INCOMPLETE)
        if block1.more and len(payload) != block1.size:
            self._drop(key, stream, "short block before the last one")
            return Message(code=Code.BAD_REQUEST)
        try:
            stream.sink.write(payload)
        except Lwm2mError as exc:
            self._forget(key, stream)
            return _error_message(exc, request)
        except Exception:
            LOG.exception("server %d: streaming %s failed", ssid, _path_text(request))
            self._drop(key, stream, "internal error")
            return Message(code=Code(InternalError.code))
        stream.last_offset, stream.received = offset, offset + len(payload)
        request.payload = b""  # aiocoap keeps the request (with its response) for duplicate detection
        self._release_previous(stream, request)
        if block1.more:
            stream.touch(self._expire)
            return _continue(block1)
        self._forget(key, stream)
        try:
            outcome = await stream.sink.finish()
        except Lwm2mError as exc:
            return _error_message(exc, request)
        except Exception:
            LOG.exception("server %d: finishing %s failed", ssid, _path_text(request))
            return Message(code=Code(InternalError.code))
        LOG.info("server %d: %s %s streamed, %d bytes", ssid, request.code, _path_text(request),
                 stream.received, extra=_request_fields(ssid, request))  # fmt: skip
        response = _outcome_message(outcome)
        response.opt.block1 = block1
        return response

    def _open_stream(self, key: Any, request: Message, ssid: int) -> _Block1Stream | None:
        opener = self._endpoint.block1_sink
        if opener is None:
            return None
        try:
            path = Path.from_segments(tuple(request.opt.uri_path))
        except ValueError:
            return None
        method = _METHODS.get(request.code)
        if method is None:
            return None
        inbound = InboundRequest(ssid=ssid, method=method, path=path, query=tuple(request.opt.uri_query),
                                 payload=request.payload,
                                 content_format=_int_or_none(request.opt.content_format),
                                 accept=_int_or_none(request.opt.accept))  # fmt: skip
        sink = opener(inbound, _int_or_none(request.opt.size1))
        if sink is None:
            return None
        stream = _Block1Stream(sink)
        self._streams[key] = stream
        stream.touch(self._expire)
        return stream

    def _release_previous(self, stream: _Block1Stream, request: Message) -> None:
        """Drop the stored answer to the stream's previous block from aiocoap's duplicate cache.

        The client sent this block only after that answer reached it, so the
        answer (and the request it holds) cannot be needed again; otherwise
        every block's messages would stay for EXCHANGE_LIFETIME (247 s).
        """
        previous, stream.dedup_key = stream.dedup_key, (request.remote, request.mid)
        if previous is None:
            return
        for manager in self._endpoint._managers:
            manager.forget_duplicate(previous)

    def _forget(self, key: Any, stream: _Block1Stream) -> None:
        stream.cancel_timer()
        if self._streams.get(key) is stream:
            del self._streams[key]

    def _drop(self, key: Any, stream: _Block1Stream, reason: str) -> None:
        self._forget(key, stream)
        try:
            stream.sink.abort(reason)
        except Exception:
            LOG.exception("aborting a Block1 transfer failed")

    def _expire(self, stream: _Block1Stream) -> None:
        for key, known in list(self._streams.items()):
            if known is stream:
                self._drop(key, stream, f"no block for {self.STREAM_IDLE:.0f} s")

    async def _render(self, pipe: Any, request: Message, ssid: int) -> None:
        outcome_box: list[Outcome] = []

        async def build() -> Message:
            try:
                outcome = await self._endpoint.handle(request, ssid)
            except Lwm2mError as exc:
                LOG.info("server %d: %s %s -> %s (%s)", ssid, request.code, _path_text(request),
                         exc.dotted_code, exc, extra=_request_fields(ssid, request))
                return Message(code=Code(exc.code), payload=str(exc).encode()[:120])
            except Exception:
                LOG.exception("server %d: %s %s failed", ssid, request.code, _path_text(request))
                return Message(code=Code(InternalError.code))
            outcome_box.append(outcome)
            return _outcome_message(outcome)

        response = await self._block2.extract_or_insert(request, build)
        response.opt.block1 = request.opt.block1
        outcome = outcome_box[0] if outcome_box else None
        if outcome is None or outcome.observation is None or not response.code.is_successful():
            pipe.add_response(response, is_last=True)
            return
        self._endpoint.begin_observation(pipe, response, outcome)

    async def needs_blockwise_assembly(self, request: Message) -> bool:
        return False


class _Block1Stream:
    """One Block1 transfer being streamed into a sink (see :class:`_Site`)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.received = 0
        self.last_offset = -1
        self.dedup_key: tuple[Any, int] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def touch(self, expire: Callable[[_Block1Stream], None]) -> None:
        self.cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(_Site.STREAM_IDLE, expire, self)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _TooLarge(ConstructionRenderableError):  # type: ignore[misc]
    """4.13 for a Block1 body above the in-memory cap; Size1 tells the limit (RFC 7959 2.9.3)."""

    code = Code.REQUEST_ENTITY_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body above {limit} bytes")
        self.limit = limit

    def to_message(self) -> Message:
        msg = super().to_message()
        msg.opt.size1 = self.limit
        return msg


def _continue(block1: Any) -> Message:
    msg = Message(code=Code.CONTINUE)
    msg.opt.block1 = block1
    return msg


def _error_message(exc: Lwm2mError, request: Message) -> Message:
    """A final error for a Block1 transfer: no Block1 echo, so the client stops sending blocks."""
    return Message(code=Code(exc.code), payload=str(exc).encode()[:120])


def _request_fields(ssid: int, request: Message) -> dict[str, str]:
    return fields(ssid=ssid, path=_path_text(request), operation=str(request.code),
                  peer=request.remote.hostinfo)


def _path_text(message: Message) -> str:
    return "/" + "/".join(message.opt.uri_path)


def _outcome_message(outcome: Outcome) -> Message:
    msg = Message(code=Code(outcome.code), payload=outcome.payload)
    if outcome.content_format is not None:
        msg.opt.content_format = outcome.content_format
    if outcome.location:
        msg.opt.location_path = outcome.location
    return msg


def make_tuning(ack_timeout: float, max_retransmit: int, reliable: bool) -> TransportTuning:
    """CoAP transmission parameters (RFC 7252 4.8) for one kind of message."""

    class Tuning(TransportTuning):  # type: ignore[misc]
        ACK_TIMEOUT = ack_timeout
        MAX_RETRANSMIT = max_retransmit
        reliability = reliable

    return Tuning()


class _CoapRequester(Requester):
    """Confirmable requests to one server over the endpoint's socket."""

    def __init__(self, endpoint: CoapEndpoint, host: str, port: int, timeout: float) -> None:
        self._endpoint = endpoint
        self._hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._timeout = timeout

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        msg = Message(code=Code[method], payload=payload, uri_path=tuple(uri_path),
                      uri_query=tuple(query), transport_tuning=self._endpoint.reliable)
        if content_format is not None:
            msg.opt.content_format = content_format
        msg.unresolved_remote = self._hostport
        msg.requested_scheme = "coap"
        context = self._endpoint.context
        if context is None:
            raise TransportError("endpoint is closed")
        if not self._endpoint.udp_open:
            raise TransportError(f"{method} /{'/'.join(uri_path)}: the UDP socket is closed (queue mode)")
        try:
            response = await asyncio.wait_for(context.request(msg).response, self._timeout)
        except (aiocoap.error.NetworkError, OSError, TimeoutError) as exc:
            raise TransportError(f"{method} /{'/'.join(uri_path)}: {type(exc).__name__}") from None
        return response_of(response)


class _DtlsRequester(Requester):
    """Confirmable requests to one coaps server over a DTLS session owned by this requester.

    A session is opened (``credentials`` read afresh) for the first request
    and whenever the last one is gone. A request that fails at the transport
    (no answer, an alert, an ICMP error) closes the session and raises
    TransportError, so the registration engine's retry or re-Register runs
    over a fresh handshake. :meth:`close` ends the session for good.
    """

    def __init__(
        self,
        endpoint: CoapEndpoint,
        ssid: int,
        peer: Peer,
        credentials: Callable[[], PskCredentials],
        timeout: float,
        handshake_timeout: float,
    ) -> None:
        self._endpoint = endpoint
        self._ssid = ssid
        self._peer = peer
        self._credentials = credentials
        self._timeout = timeout
        self._handshake_timeout = handshake_timeout
        self._lock = asyncio.Lock()
        self._closed = False
        self.session: DtlsSession | None = None
        """The current session (a strong reference: it lives as long as the registration)."""

    async def _ready_session(self, what: str) -> DtlsSession:
        async with self._lock:
            session = self.session
            if session is not None and session.established:
                return session
            interface = self._endpoint.dtls
            if self._closed or interface is None:
                raise TransportError("endpoint is closed")
            try:
                credentials = self._credentials()
            except (LookupError, ValueError) as exc:
                raise TransportError(f"{what}: no usable PSK credentials: {exc}") from None
            try:
                session = interface.open(self._peer, credentials, self._ssid)
            except DtlsError as exc:
                raise TransportError(f"{what}: {exc}") from None
            self.session = session
            try:
                await session.connect(self._handshake_timeout)
            except DtlsError as exc:
                self.session = None
                reason = f"DTLS handshake with {session.hostinfo} failed: {exc}"
                raise TransportError(f"{what}: {reason}") from None
            return session

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        what = f"{method} /{'/'.join(uri_path)}"
        session = await self._ready_session(what)
        context = self._endpoint.context
        if context is None:
            raise TransportError("endpoint is closed")
        msg = Message(code=Code[method], payload=payload, uri_path=tuple(uri_path),
                      uri_query=tuple(query), transport_tuning=self._endpoint.reliable)
        if content_format is not None:
            msg.opt.content_format = content_format
        msg.remote = session
        try:
            response = await asyncio.wait_for(context.request(msg).response, self._timeout)
        except (aiocoap.error.Error, OSError, TimeoutError) as exc:
            reason = session.close_reason or f"no answer ({type(exc).__name__})"
            session.close(f"{what} failed: {reason}")
            raise TransportError(f"{what} over DTLS: {reason}") from None
        return response_of(response)

    def drop_session(self, reason: str) -> bool:
        """Close the current session (close_notify); the next request opens a new one.

        True if a session was open.
        """
        session = self.session
        if session is None or session.closed:
            return False
        session.close(reason)
        return True

    def close(self) -> None:
        """Close the session (close_notify) and refuse further requests."""
        self._closed = True
        if self.session is not None:
            self.session.close("server account removed")
            self.session = None


class CoapEndpoint:
    """The client's CoAP endpoint: bind, serve servers' requests, send our own.

    ``handler`` serves a request (raising Lwm2mError to refuse);
    ``observation_hooks`` are (start, stop) for the observe engine;
    ``encode`` renders notification records. ``handshake_timeout`` bounds
    one DTLS handshake (default: the time a confirmable message is
    retransmitted, ``ack_timeout * (2 ** (max_retransmit + 1) - 1)``).
    """

    def __init__(
        self,
        handler: Callable[[InboundRequest], Awaitable[Outcome]],
        observation_hooks: ObservationHooks,
        encode: Encoder,
        *,
        request_timeout: float = 100.0,
        ack_timeout: float = 2.0,
        max_retransmit: int = 4,
        handshake_timeout: float | None = None,
    ) -> None:
        self._handler = handler
        self._start_observation, self._stop_observation = observation_hooks
        self._encode = encode
        self.request_timeout = request_timeout
        self.reliable = make_tuning(ack_timeout, max_retransmit, True)
        self.unreliable = make_tuning(ack_timeout, max_retransmit, False)
        if handshake_timeout is None:
            handshake_timeout = ack_timeout * (2 ** (max_retransmit + 1) - 1)
        self.handshake_timeout = min(handshake_timeout, request_timeout)
        self.peers = PeerTable(on_remove=self._server_removed)
        self.context: aiocoap.Context | None = None
        self.dtls: DtlsInterface | None = None
        self.on_serving: ServingHook | None = None
        """Called with (ssid, True) when a server's request arrives and (ssid, False) once answered."""
        self.on_server_removed: Callable[[int], None] | None = None
        """Called with the short ID after ``peers.remove``."""
        self._transport: _ReopenableUDP6 | None = None
        self._managers: list[_FilteringMessageManager] = []
        self._reopening = asyncio.Lock()
        self._secure: dict[int, _DtlsRequester] = {}
        self.block1_sink: Callable[[InboundRequest, int | None], Any] | None = None
        """Streams a Block1 request body (a firmware push) instead of assembling it; see ``_Site``."""

    async def start(self, bind_address: str = "::", port: int = 0) -> None:
        """Bind the socket (IPv4 and IPv6 on "::"); port 0 picks an ephemeral port."""
        loop = asyncio.get_running_loop()
        context = aiocoap.Context(loop=loop, serversite=_Site(self), loggername="lwm2md.coap")
        tman = _TokenManager(context)
        mman = _FilteringMessageManager(tman, self.peers)
        bind_host = bind_address
        if bind_host in ("0.0.0.0", ""):
            bind_host = "::"
        transport = await _ReopenableUDP6.create_server_transport_endpoint(
            mman, log=context.log, loop=loop, bind=(bind_host, port), multicast=[]
        )
        mman.message_interface = transport
        tman.token_interface = mman
        context.request_interfaces.append(tman)
        # DTLS sessions: their own token and message manager, same site and peer filter
        dtls_tman = _TokenManager(context)
        dtls_mman = _FilteringMessageManager(dtls_tman, self.peers)
        self.dtls = DtlsInterface(dtls_mman)
        dtls_mman.message_interface = self.dtls
        dtls_tman.token_interface = dtls_mman
        context.request_interfaces.append(dtls_tman)
        self.context = context
        self._transport = transport
        self._managers = [mman, dtls_mman]

    # -- begin SMS binding hook: extra message interfaces -----------------------

    def add_message_interface(self, make: Callable[[Any], Any]) -> Any:
        """Add a message interface (``transport/sms.py``) to the started context and return it.

        ``make(message_manager)`` builds it; it gets a token manager and a
        filtering message manager of its own, like the DTLS sessions: the
        same site, dispatcher and peer filter (its remotes are matched by
        their ``binding_key``, see :meth:`PeerTable.set_remote`), and its
        unacknowledged messages count for queue mode.
        """
        context = self.context
        if context is None:
            raise TransportError("endpoint is not started")
        tman = _TokenManager(context)
        mman = _FilteringMessageManager(tman, self.peers)
        interface = make(mman)
        mman.message_interface = interface
        tman.token_interface = mman
        context.request_interfaces.append(tman)
        self._managers.append(mman)
        return interface

    # -- end SMS binding hook --

    @property
    def local_port(self) -> int:
        """The bound UDP port (the last one while the socket is closed)."""
        assert self._transport is not None and self._transport.sockname is not None, "not started"
        return int(self._transport.sockname[1])

    # -- queue mode -------------------------------------------------------------

    @property
    def udp_open(self) -> bool:
        """True while the shared UDP socket is open."""
        return self.context is not None and self._transport is not None and self._transport.is_open

    def close_udp(self) -> None:
        """Close the shared UDP socket; exchanges, observations and the peer table stay."""
        if self._transport is not None and self._transport.is_open:
            port = self.local_port
            self._transport.close_socket()
            LOG.debug("UDP socket on port %d closed", port)

    async def reopen_udp(self) -> None:
        """Open the shared UDP socket again (same port when it is free); TransportError if it cannot."""
        async with self._reopening:
            if self._transport is None or self.context is None:
                raise TransportError("endpoint is closed")
            if self._transport.is_open:
                return
            try:
                await self._transport.reopen()
            except OSError as exc:
                raise TransportError(f"cannot reopen the UDP socket: {exc.strerror or exc}") from None
            LOG.debug("UDP socket reopened on port %d", self.local_port)

    def is_secure(self, ssid: int) -> bool:
        """True when server ``ssid`` is reached over DTLS (a socket of its own per session)."""
        return ssid in self._secure

    def close_secure_session(self, ssid: int, reason: str) -> bool:
        """Close server ``ssid``'s DTLS session, ending the exchanges and observations made over it.

        The next request opens a new session with a full handshake. True if a session was open.
        """
        requester = self._secure.get(ssid)
        return requester.drop_session(reason) if requester is not None else False

    def unacknowledged(self, ssid: int) -> int:
        """Confirmable messages to server ``ssid`` still waiting for their ACK."""
        count = 0
        for manager in self._managers:
            exchanges = manager._active_exchanges or {}
            count += sum(1 for remote, _mid in exchanges if self.peers.ssid_for_remote(remote) == ssid)
        return count

    def serving(self, ssid: int, busy: bool) -> None:
        if self.on_serving is not None:
            self.on_serving(ssid, busy)

    def _can_send(self, remote: Any) -> bool:
        if isinstance(remote, DtlsSession):
            return remote.established
        return self.udp_open

    async def close(self) -> None:
        """Close every DTLS session and the socket."""
        for requester in self._secure.values():
            requester.close()
        self._secure.clear()
        if self.context is not None:
            await self.context.shutdown()
            self.context = None
        self.dtls = None
        self._managers = []

    def requester(self, host: str, port: int) -> Requester:
        """Plain CoAP (NoSec) requests to ``host``:``port`` from the shared socket."""
        return _CoapRequester(self, host, port, self.request_timeout)

    def secure_requester(
        self, ssid: int, host: str, port: int, credentials: Callable[[], PskCredentials]
    ) -> Requester:
        """DTLS-PSK requests to server ``ssid`` at ``host``:``port`` (normally the resolved address).

        ``credentials`` is called before each handshake (raise ValueError or
        LookupError when there are none). A previous secure requester of
        ``ssid`` is closed; so is this one when ``peers.remove(ssid)`` runs.
        """
        previous = self._secure.pop(ssid, None)
        if previous is not None:
            previous.close()
        requester = _DtlsRequester(self, ssid, normalize_peer(host, port), credentials,
                                   self.request_timeout, self.handshake_timeout)  # fmt: skip
        self._secure[ssid] = requester
        return requester

    def _server_removed(self, ssid: int) -> None:
        requester = self._secure.pop(ssid, None)
        if requester is not None:
            requester.close()
        if self.on_server_removed is not None:
            self.on_server_removed(ssid)

    # -- serving ----------------------------------------------------------------

    async def handle(self, request: Message, ssid: int) -> Outcome:
        method = _METHODS.get(request.code)
        if method is None:
            from lwm2md.errors import MethodNotAllowed

            raise MethodNotAllowed(f"{request.code} is not used by LwM2M")
        segments = tuple(request.opt.uri_path)
        special: tuple[str, ...] = ()
        if segments in NON_LWM2M_PATHS:
            path, special = Path(), segments
        else:
            path = Path.from_segments(segments)
        inbound = InboundRequest(
            ssid=ssid,
            method=method,
            path=path,
            uri_path=special,
            query=tuple(request.opt.uri_query),
            payload=request.payload,
            content_format=_int_or_none(request.opt.content_format),
            accept=_int_or_none(request.opt.accept),
            observe=request.opt.observe,
        )
        LOG.debug("server %d: %s %s", ssid, method, inbound.path, extra=_request_fields(ssid, request))
        return await self._handler(inbound)

    def begin_observation(self, pipe: Any, first: Message, outcome: Outcome) -> None:
        """Send the first response of an observation and wire later notifications to ``pipe``.

        The observation's ``emit`` raises TransportError, sending nothing, while
        the socket or DTLS session the observation was made over is closed.
        """
        obs = outcome.observation
        assert obs is not None
        fmt = outcome.content_format if outcome.content_format is not None else 0
        base = Path() if obs.composite else obs.paths[0]
        sequence = [0]
        first.opt.observe = 0

        lost = [False]

        def emit(observation: Observation, result: list[Record] | Lwm2mError, confirmable: bool) -> None:
            if lost[0]:
                raise ObservationLost(f"notification for {base}: the observation ended with an outage")
            if not self._can_send(pipe.request.remote):
                raise TransportError(f"notification for {base}: the connection to the server is closed")
            if isinstance(result, Lwm2mError):
                final = Message(code=Code(result.code), transport_tuning=self.reliable)
                pipe.add_response(final, is_last=True)
                return
            try:
                payload = self._encode(fmt, base, result)
            except Lwm2mError as exc:
                LOG.warning("observe %s: cannot encode notification (%s)", base, exc)
                return
            sequence[0] = (sequence[0] + 1) & 0xFFFFFF
            tuning = self.reliable if confirmable else self.unreliable
            msg = Message(code=Code.CONTENT, payload=payload, transport_tuning=tuning)
            msg.opt.content_format = fmt
            msg.opt.observe = sequence[0]
            pipe.add_response(msg, is_last=False)

        def ended() -> None:
            if self._failing(pipe.request.remote):
                lost[0] = True  # kept in the engine: what it produces is held for the server
                LOG.info("observe %s: the server stopped answering; notifications are held", base)
                return
            self._stop_observation(obs)

        obs.emit = emit
        pipe.add_response(first, is_last=False)
        self._start_observation(obs, outcome.records)
        pipe.on_interest_end(ended)

    def _failing(self, remote: Any) -> bool:
        """True while a request failure to ``remote`` is being dispatched (see ``_TokenManager``)."""
        return any(
            manager.token_manager.failing is not None and manager.token_manager.failing == remote
            for manager in self._managers
        )


def response_of(message: Message) -> CoapResponse:
    """The transport-neutral form of an aiocoap response."""
    return CoapResponse(int(message.code), tuple(message.opt.location_path), message.payload,
                        _int_or_none(message.opt.content_format))  # fmt: skip


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
