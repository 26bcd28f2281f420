"""DTLS 1.2 with pre-shared keys (LwM2M security mode 0) for server connections.

A :class:`DtlsSession` is one client session to one server over a UDP socket
of its own, connected to that server. It is an aiocoap remote: requests are
sent on it, and the server's requests that arrive through it are decoded and
handed to the endpoint's message manager, so they are answered (and observed
resources notified) over the same session. :class:`DtlsInterface` is the
aiocoap message interface that owns the sessions.

Sessions are closed only by :meth:`DtlsSession.close` (or the interface's
shutdown); the interface keeps them alive until then, so garbage collection
never ends a session a registration still relies on. A session that fails
(a fatal alert, close_notify, an ICMP error, the record layer refusing to
send) is closed at once: its pending exchanges and observations end with
:class:`DtlsError`, and its owner opens a new one for the next request.

The record layer is tinydtls through DTLSSocket (imported on the first
session, so NoSec deployments do not need it). tinydtls offers
TLS_PSK_WITH_AES_128_CCM_8 first (the suite LwM2M 1.1 mandates for PSK),
then TLS_PSK_WITH_AES_128_CCM; the suite the server picked is read from its
ServerHello. tinydtls logs with printf, outside Python logging, and dumps key
material at its debug level: the level is pinned to "emergencies only".
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiocoap import Message
from aiocoap import error as coap_error
from aiocoap.interfaces import EndpointAddress, MessageInterface

LOG = logging.getLogger(__name__)

CIPHER_SUITES = {0xC0A8: "TLS_PSK_WITH_AES_128_CCM_8", 0xC0A4: "TLS_PSK_WITH_AES_128_CCM"}
ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 47: "illegal_parameter", 50: "decode_error", 51: "decrypt_error",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    110: "unsupported_extension", 115: "unknown_psk_identity",
}  # fmt: skip
MAX_IDENTITY = 32  # tinydtls' DTLS_PSK_MAX_CLIENT_IDENTITY_LEN
# tinydtls' DTLS_PSK_MAX_KEY_LEN (the AES-128 key size) in the tinydtls that DTLSSocket 0.2.3
# bundles. DTLSSocket copies a longer key into tinydtls' 16-byte buffer without a check,
# overwriting the stack, so longer keys must never reach it.
MAX_KEY = 16

# tinydtls event codes (level 0 = local state change, 1 = warning alert, 2 = fatal alert)
_EVENT_CONNECT = 0x01DC
_EVENT_CONNECTED = 0x01DE
_EVENT_RENEGOTIATE = 0x01DF
_LEVEL_WARNING = 1
_LEVEL_FATAL = 2
_CLOSE_NOTIFY = 0
# The socket is connected, so tinydtls' own peer address is only a label.
_PEER_LABEL = ("::1", 5684)
_RETRANSMIT_POLL = 0.1  # s; tinydtls' first handshake retransmission is after 1 s

_dtls_module: Any = None


def _dtls() -> Any:
    """DTLSSocket's tinydtls binding (imported once), with tinydtls' own logging silenced.

    The level is global to tinydtls and set again on every call, so nothing
    else in the process can turn the key dumps on. (DTLSSocket is normally
    built with NDEBUG, which compiles tinydtls' logging out altogether.)
    """
    global _dtls_module
    if _dtls_module is None:
        try:
            from DTLSSocket import dtls  # type: ignore[import-untyped]
        except ImportError as exc:
            raise DtlsError(f"DTLS needs the DTLSSocket package ({exc})") from None
        _dtls_module = dtls
    _dtls_module.setLogLevel(_dtls_module.DTLS_LOG_EMERG)
    return _dtls_module


class DtlsError(Exception):
    """A DTLS session could not be set up or was lost; the text never holds key material."""


@dataclass(frozen=True)
class PskCredentials:
    """PSK identity and key for one server; the key is left out of repr.

    ValueError (naming sizes only) when either is empty or longer than tinydtls accepts.
    """

    identity: bytes
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 < len(self.identity) <= MAX_IDENTITY:
            raise ValueError(f"PSK identity must be 1 to {MAX_IDENTITY} bytes, not {len(self.identity)}")
        if not 0 < len(self.key) <= MAX_KEY:
            raise ValueError(f"PSK key must be 1 to {MAX_KEY} bytes, not {len(self.key)}")

    @property
    def identity_text(self) -> str:
        """The identity for log lines (it travels in clear text in the handshake anyway)."""
        return self.identity.decode("utf-8", "backslashreplace")


@dataclass
class Traffic:
    """Datagrams and bytes on a session's socket (DTLS records, headers included)."""

    datagrams_sent: int = 0
    bytes_sent: int = 0
    datagrams_received: int = 0
    bytes_received: int = 0


def alert_text(code: int) -> str:
    """``"decrypt_error (51)"`` for an alert code."""
    return f"{ALERTS.get(code, 'alert')} ({code})"


def server_hello_suite(datagram: bytes) -> int | None:
    """The cipher suite of a plaintext ServerHello in ``datagram`` (None when there is none)."""
    offset = 0
    while offset + 13 <= len(datagram):
        content_type = datagram[offset]
        epoch = int.from_bytes(datagram[offset + 3 : offset + 5], "big")
        length = int.from_bytes(datagram[offset + 11 : offset + 13], "big")
        body = datagram[offset + 13 : offset + 13 + length]
        if content_type == 22 and epoch == 0 and len(body) >= 12 + 35 and body[0] == 2:
            hello = body[12:]  # after the handshake header
            suite_at = 35 + hello[34]  # version, random, session id
            if len(hello) >= suite_at + 2:
                return int.from_bytes(hello[suite_at : suite_at + 2], "big")
        offset += 13 + length
    return None


class _SessionProtocol(asyncio.DatagramProtocol):
    def __init__(self, session: DtlsSession) -> None:
        self.session: DtlsSession | None = session

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.session is not None:
            self.session._datagram(data)

    def error_received(self, exc: Exception) -> None:
        # may run inside a send, that is inside a tinydtls call: act on the next loop turn
        if self.session is not None:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            self.session._lost(f"socket error: {reason}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.session = None


class DtlsSession(EndpointAddress):  # type: ignore[misc]
    """One DTLS 1.2 PSK client session to ``peer`` (an (ip, port) pair), for account ``ssid``.

    Hash and equality are the object's own: a new session is a new remote,
    so no exchange, block-wise transfer or observation crosses sessions
    (RFC 7252 9.1.2). Use :meth:`DtlsInterface.open`, then :meth:`connect`.
    """

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    def __init__(self, interface: DtlsInterface, peer: tuple[str, int], credentials: PskCredentials,
                 ssid: int | None = None) -> None:  # fmt: skip
        self.peer = peer
        self.ssid = ssid
        self.traffic = Traffic()
        self.handshake = Traffic()
        """Traffic until the handshake completed."""
        self.handshake_seconds: float | None = None
        self.cipher_suite: int | None = None
        self.close_reason: str | None = None
        self._interface = interface
        self._credentials = credentials  # referenced while tinydtls holds a pointer to the identity
        self._established = False
        self._closed = False
        self._transport: asyncio.DatagramTransport | None = None
        self._context: Any = None
        self._connection: Any = None
        self._ready: asyncio.Future[None] | None = None
        self._retransmitter: asyncio.Task[None] | None = None

    # -- aiocoap EndpointAddress --------------------------------------------------

    @property
    def hostinfo(self) -> str:
        host, port = self.peer
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def hostinfo_local(self) -> str:
        sock = self._transport.get_extra_info("sockname") if self._transport is not None else None
        if not sock:
            return "unbound"
        host, port = str(sock[0]), int(sock[1])
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def uri_base(self) -> str:
        return "coaps://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coaps://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return self

    def __repr__(self) -> str:
        state = "closed" if self._closed else "established" if self._established else "handshaking"
        return f"<DtlsSession to {self.hostinfo} {state}>"

    # -- state --------------------------------------------------------------------

    @property
    def established(self) -> bool:
        """True once the handshake completed, until the session is closed."""
        return self._established and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def cipher_suite_name(self) -> str:
        if self.cipher_suite is None:
            return "unknown"
        return CIPHER_SUITES.get(self.cipher_suite, f"0x{self.cipher_suite:04X}")

    async def connect(self, timeout: float) -> None:
        """Open the socket and complete the handshake within ``timeout`` s.

        Raises :class:`DtlsError` saying why it failed (no answer; an answer
        but no completed handshake, which is what a wrong PSK looks like; an
        alert); the session is closed then.
        """
        if self._closed:
            raise DtlsError(self.close_reason or "session closed")
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._ready = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                host, port = self.peer
                self._transport, _ = await loop.create_datagram_endpoint(
                    lambda: _SessionProtocol(self), remote_addr=(host, port)
                )
                dtls = _dtls()
                self._context = dtls.DTLS(
                    read=self._on_plaintext, write=self._on_record, event=self._on_event,
                    pskId=self._credentials.identity,
                    pskStore={self._credentials.identity: self._credentials.key},
                )  # fmt: skip
                self._connection = self._context.connect(*_PEER_LABEL)
                if self._connection is None:
                    raise DtlsError("tinydtls refused to start a handshake")
                self._retransmitter = loop.create_task(self._retransmit(), name="dtls-retransmit")
                await self._ready
        except TimeoutError:
            if self.traffic.datagrams_received:
                reason = (f"the server answered but the handshake did not complete within {timeout:g} s "
                          f"(wrong PSK identity '{self._credentials.identity_text}' or key?)")  # fmt: skip
            else:
                reason = f"no answer within {timeout:g} s"
            self.close(reason)
            raise DtlsError(reason) from None
        except OSError as exc:
            reason = f"cannot open a socket: {exc.strerror or type(exc).__name__}"
            self.close(reason)
            raise DtlsError(reason) from None
        except (DtlsError, asyncio.CancelledError) as exc:
            self.close(str(exc) or "handshake cancelled")
            raise
        self.handshake_seconds = time.perf_counter() - started
        self.handshake = Traffic(**vars(self.traffic))
        LOG.info(
            "DTLS session with %s established in %.0f ms (%s, identity '%s')",
            self.hostinfo, self.handshake_seconds * 1000, self.cipher_suite_name,
            self._credentials.identity_text,
        )  # fmt: skip

    def send(self, plaintext: bytes) -> None:
        """Send one CoAP message in a record; a record layer failure closes the session."""
        if not self.established:
            LOG.debug("DTLS session with %s is %s: message dropped", self.hostinfo,
                      "closed" if self._closed else "not established")  # fmt: skip
            return
        if self._context.write(self._connection, plaintext) < 0:
            self._lost("the record layer refused to send (sequence numbers exhausted?)")

    def close(self, reason: str = "closed locally") -> None:
        """Send close_notify if established, release the socket and tinydtls state; idempotent.

        Pending handshake waits fail with ``reason``; exchanges and
        observations on the session are ended by the interface.
        """
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        LOG.debug("DTLS session with %s closed: %s", self.hostinfo, reason)
        if self._retransmitter is not None:
            self._retransmitter.cancel()
        if self._connection is not None:
            try:
                self._context.resetPeer(self._connection)  # sends close_notify when established
            except Exception:  # tinydtls state already gone; nothing left to release
                LOG.debug("DTLS session with %s: reset failed", self.hostinfo, exc_info=True)
        self._connection = None
        self._context = None
        if self._transport is not None:
            self._transport.close()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(DtlsError(reason))
            self._ready.exception()  # retrieved: connect() may be gone already
        self._interface._forget(self, reason)

    # -- internals ------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if not self._closed:
            LOG.info("DTLS session with %s lost: %s", self.hostinfo, reason)
            self.close(reason)

    def _lost(self, reason: str) -> None:
        """Stop using the session now; close it on the next loop turn (outside tinydtls and aiocoap)."""
        self._established = False  # sends are dropped; a writer must not make tinydtls reconnect
        asyncio.get_running_loop().call_soon(self._fail, reason)

    def _datagram(self, data: bytes) -> None:
        if self._closed:
            return
        self.traffic.datagrams_received += 1
        self.traffic.bytes_received += len(data)
        if self.cipher_suite is None and not self._established:
            self.cipher_suite = server_hello_suite(data)
        self._context.handleMessage(self._connection, data)

    async def _retransmit(self) -> None:
        """Let tinydtls retransmit lost handshake flights until the handshake completes."""
        while not self._established and not self._closed:
            self._context.checkRetransmit()
            await asyncio.sleep(_RETRANSMIT_POLL)

    # tinydtls callbacks run inside tinydtls calls: they must not raise, and anything that
    # could release the tinydtls context (closing, dispatching) waits for the next loop turn.

    def _on_record(self, _label: Any, record: bytes) -> int:
        transport = self._transport
        if transport is None or transport.is_closing():
            return 0
        self.traffic.datagrams_sent += 1
        self.traffic.bytes_sent += len(record)
        transport.sendto(record)
        return len(record)

    def _on_plaintext(self, _label: Any, data: bytes) -> int:
        try:
            message = Message.decode(data, self)
        except coap_error.UnparsableMessage:
            LOG.warning("DTLS session with %s: ignoring an unparsable CoAP message", self.hostinfo)
            return len(data)
        asyncio.get_running_loop().call_soon(self._deliver, message)
        return len(data)

    def _deliver(self, message: Message) -> None:
        if not self._closed:
            self._interface._deliver(message)

    def _on_event(self, level: int, code: int) -> int:
        try:
            self._event(level, code)
        except Exception:
            LOG.exception("DTLS session with %s: event handling failed", self.hostinfo)
        return 0

    def _event(self, level: int, code: int) -> None:
        if level == 0 and code == _EVENT_CONNECTED:
            self._established = True
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif level == 0 and code == _EVENT_CONNECT:
            pass
        elif level == 0 and code == _EVENT_RENEGOTIATE:
            LOG.debug("DTLS session with %s: the server asked to renegotiate (unsupported)", self.hostinfo)
        elif code == _CLOSE_NOTIFY and level in (_LEVEL_WARNING, _LEVEL_FATAL):
            self._lost("the server closed the session (close_notify)")
        elif level == _LEVEL_FATAL:
            self._lost(f"fatal alert {alert_text(code)}")
        else:
            LOG.debug("DTLS session with %s: alert level %d %s", self.hostinfo, level, alert_text(code))


class DtlsInterface(MessageInterface):  # type: ignore[misc]
    """The aiocoap message interface of the client's DTLS sessions.

    ``message_manager`` receives what arrives on any session (the endpoint's
    filtering manager). Remotes are never derived from URIs: a request must
    carry an open :class:`DtlsSession` as its remote.
    """

    def __init__(self, message_manager: Any) -> None:
        self._mman = message_manager
        self._sessions: set[DtlsSession] = set()
        self._shut = False

    def open(
        self, peer: tuple[str, int], credentials: PskCredentials, ssid: int | None = None
    ) -> DtlsSession:
        """A new session to ``peer`` (not connected yet: await its :meth:`~DtlsSession.connect`)."""
        if self._shut:
            raise DtlsError("the endpoint is shut down")
        session = DtlsSession(self, peer, credentials, ssid)
        self._sessions.add(session)
        return session

    @property
    def sessions(self) -> frozenset[DtlsSession]:
        """The sessions that are not closed."""
        return frozenset(self._sessions)

    def _deliver(self, message: Message) -> None:
        if self._mman is not None:
            self._mman.dispatch_message(message)

    def _forget(self, session: DtlsSession, reason: str) -> None:
        self._sessions.discard(session)
        if self._mman is not None:
            # ends the session's pending requests and the observations made over it
            self._mman.dispatch_error(DtlsError(reason), session)

    # -- aiocoap MessageInterface ---------------------------------------------------

    def send(self, message: Message) -> None:
        remote = message.remote
        if isinstance(remote, DtlsSession):
            remote.send(message.encode())

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, DtlsSession) and remote in self._sessions

    async def determine_remote(self, message: Message) -> None:
        return None

    async def shutdown(self) -> None:
        self._shut = True
        self._mman = None  # the message manager is shutting down: nothing to tell it
        for session in list(self._sessions):
            session.close("endpoint shut down")
