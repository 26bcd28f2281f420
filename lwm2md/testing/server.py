"""An LwM2M server for tests and demos, built directly on aiocoap.

It serves the Registration interface (``/rd``) and the Send operation
(``/dp``) of LwM2M 1.1 and drives Device Management and Observe against a
registered client, sending every request from the server's own socket to the
address the client registered (or last updated) from. It is deliberately
independent of the client's engine; it shares only the data model and the
codecs.

Everything runs on the asyncio loop that called :meth:`TestServer.start`.

aiocoap internals (pinned aiocoap 0.4.17) are touched in exactly two helpers,
:func:`_bound_port` (the ephemeral port) and :func:`_send_with_token` (an
Observe deregistration must reuse the observation's token, which the public
request API cannot do).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.util import hostportsplit

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.codec.linkformat import Link, parse_links
from lwm2md.errors import BadRequest, Lwm2mError, dotted
from lwm2md.model.path import Path
from lwm2md.model.types import Record, ResourceDef, Value

LOG = logging.getLogger(__name__)

__all__ = [
    "DATA_FORMATS",
    "DEFAULT_LIFETIME",
    "Event",
    "EventKind",
    "Observation",
    "Registration",
    "ResourceResolver",
    "Response",
    "TestServer",
    "UnknownEndpoint",
]

DEFAULT_LIFETIME = 86400
"""Lifetime (s) of a registration whose Register carries no ``lt``."""

DEFAULT_TIMEOUT = 10.0

EventKind = Literal["register", "update", "deregister", "notify", "send"]

DATA_FORMATS: frozenset[int] = frozenset(
    {
        ContentFormat.TEXT,
        ContentFormat.OPAQUE,
        ContentFormat.CBOR,
        ContentFormat.SENML_JSON,
        ContentFormat.SENML_CBOR,
        ContentFormat.TLV,
        ContentFormat.OMA_JSON,
        ContentFormat.LWM2M_CBOR,
    }
)
"""Content formats whose payloads are decoded into records."""

SEND_FORMATS: frozenset[int] = frozenset(
    {ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR}
)

_BINDING = re.compile(r"[UQSTN]+")
_VERSION = re.compile(r"1\.\d+")
_METHODS = {
    "GET": Code.GET,
    "POST": Code.POST,
    "PUT": Code.PUT,
    "DELETE": Code.DELETE,
    "FETCH": Code.FETCH,
    "PATCH": Code.PATCH,
    "IPATCH": Code.iPATCH,
}
_MAX_BACKLOG = 10_000

E = TypeVar("E")
T = TypeVar("T")


class EventBacklog(Generic[E]):
    """What a test server saw, for tests to await: a queue to drain in order and a lookup backlog.

    ``queue`` holds every event (the oldest dropped when full); :meth:`take`
    returns the oldest matching event not yet taken, including ones from
    before the call, without touching ``queue``.
    """

    def __init__(self, maxlen: int = _MAX_BACKLOG) -> None:
        self.queue: asyncio.Queue[E] = asyncio.Queue(maxsize=maxlen)
        self._backlog: deque[E] = deque(maxlen=maxlen)
        self._changed = asyncio.Event()

    def add(self, event: E) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(event)
        self._backlog.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    async def take(self, match: Callable[[E], bool], timeout: float) -> E:
        """The oldest event ``match`` accepts, removed from the backlog; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                for index, event in enumerate(self._backlog):
                    if match(event):
                        del self._backlog[index]
                        return event
                await changed.wait()

    async def until(self, probe: Callable[[], T | None], timeout: float) -> T:
        """``probe()`` once it is not None, re-checked after every event; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                value = probe()
                if value is not None:
                    return value
                await changed.wait()
_SENSOR_UNITS = 5701  # IPSO "Sensor Units"
_SENSOR_VALUES = frozenset({5700, 5601, 5602, 5603, 5604})  # IPSO value, min/max measured, range


class ResourceResolver(Protocol):
    """What the server needs from a catalog: resource definitions by path."""

    def resource(self, path: Path) -> ResourceDef | None: ...


class UnknownEndpoint(LookupError):
    """A Device Management call named an endpoint that is not registered."""


# -- value types ---------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """One client registration as the server currently sees it.

    Snapshots: an Update replaces the registration in
    :attr:`TestServer.registrations` with a new object, so the one carried by
    an earlier :class:`Event` keeps its values. ``registered_at`` and
    ``updated_at`` are readings of the server's clock.
    """

    endpoint: str
    location: str
    lifetime: int
    binding: str
    lwm2m_version: str
    sms: str | None
    queue_mode: bool
    links: list[Link]
    object_versions: dict[int, str]
    remote: tuple[str, int]
    registered_at: float
    updated_at: float
    update_count: int = 0
    alternate_path: str = "/"
    content_formats: tuple[int, ...] = ()
    coap_remote: Any = field(default=None, repr=False, compare=False)
    """The aiocoap remote DM requests go to (from the Register or last Update)."""

    @property
    def expires_at(self) -> float:
        """Clock reading after which the registration lapses without an Update."""
        return self.updated_at + self.lifetime

    @property
    def objects(self) -> list[str]:
        """The object and instance link targets (root link excluded), in order."""
        return [link.target for link in self.links if not _is_root_link(link)]


@dataclass(frozen=True)
class Response:
    """A client's answer to a DM request, or one notification.

    ``records`` holds the decoded values when the content format is a data
    format and the payload is non-empty, ``links`` the parsed links for
    link-format; when decoding fails both stay None and ``decode_error``
    says why. ``payload`` and ``content_format`` are always the raw ones.
    """

    code: str
    content_format: int | None
    payload: bytes
    records: list[Record] | None = None
    links: list[Link] | None = None
    location: str | None = None
    observe: int | None = None
    decode_error: str | None = None
    message: Any = field(default=None, repr=False, compare=False)
    """The aiocoap message this was built from."""

    @property
    def ok(self) -> bool:
        """True for a 2.xx code."""
        return self.code.startswith("2.")

    @property
    def value(self) -> Value:
        """The value of the single decoded record; ValueError unless exactly one."""
        if self.records is None or len(self.records) != 1:
            count = "no" if self.records is None else len(self.records)
            raise ValueError(f"expected exactly one record, got {count} ({self.decode_error or self.code})")
        return self.records[0].value

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (replacing invalid bytes)."""
        return self.payload.decode("utf-8", "replace")


@dataclass(frozen=True)
class Event:
    """Something a client did, in arrival order.

    - ``register`` / ``update``: ``registration`` (after the change) and the
      raw query ``params``; an Update with a payload also changed the links.
    - ``deregister``: ``registration`` (as it was) and ``reason``:
      ``"deregister"`` for a De-register, ``"expired"`` for a lapsed lifetime.
    - ``notify``: ``observation``, ``path`` (None for a composite
      observation), ``response`` and its ``records``/``content_format``/``payload``.
    - ``send``: ``records``, ``content_format`` and ``payload`` of the Send.

    ``time`` is a reading of the server's clock.
    """

    kind: EventKind
    endpoint: str
    time: float
    registration: Registration | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    reason: str | None = None
    path: str | None = None
    response: Response | None = None
    records: list[Record] | None = None
    content_format: int | None = None
    payload: bytes = b""
    observation: Observation | None = field(default=None, repr=False, compare=False)


# -- helpers -------------------------------------------------------------------


def _parse_code(code: str | int) -> Code:
    """``"5.03"`` or a code byte -> aiocoap Code; ValueError when not a response code."""
    if isinstance(code, str):
        match = re.fullmatch(r"([2-5])\.(\d\d)", code)
        if match is None:
            raise ValueError(f"not a response code: {code!r}")
        value = int(match[1]) << 5 | int(match[2])
    else:
        value = int(code)
    result = Code(value)
    if not result.is_response():
        raise ValueError(f"not a response code: {code!r}")
    return result


def _parse_query(items: Iterable[str]) -> dict[str, str | None]:
    """URI-Query options -> {name: value or None}; BadRequest on a repeated name."""
    params: dict[str, str | None] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if name in params:
            raise BadRequest(f"query parameter {name!r} repeated")
        params[name] = value if sep else None
    return params


def _unquote(text: str | None) -> str:
    if text is None:
        return ""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _is_root_link(link: Link) -> bool:
    return link.target == "/" or "oma.lwm2m" in _unquote(link.attrs.get("rt")).split()


def _lifetime(raw: str | None) -> int:
    if raw is None or not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"lifetime {raw!r} is not a positive integer")
    return int(raw)


def _binding(raw: str | None) -> str:
    if raw is None or not _BINDING.fullmatch(raw):
        raise BadRequest(f"binding {raw!r} is not made of U, Q, S, T, N")
    return raw


@dataclass(frozen=True)
class _LinkInfo:
    links: list[Link]
    object_versions: dict[int, str]
    alternate_path: str
    content_formats: tuple[int, ...]


def _parse_registration_links(payload: bytes) -> _LinkInfo:
    """Parse and check a Register/Update link-format payload; BadRequest when invalid."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("link payload is not UTF-8") from exc
    links = parse_links(text) if text.strip() else []
    alternate = "/"
    formats: tuple[int, ...] = ()
    for link in links:
        if _is_root_link(link):
            alternate = link.target if link.target.startswith("/") else "/" + link.target
            try:
                formats = tuple(int(ct) for ct in _unquote(link.attrs.get("ct")).split())
            except ValueError as exc:
                raise BadRequest(f"bad ct attribute on {link.target!r}") from exc
    prefix = alternate.rstrip("/")
    versions: dict[int, str] = {}
    for link in links:
        if _is_root_link(link):
            continue
        target = link.target
        if prefix and target.startswith(prefix + "/"):
            target = target[len(prefix) :]
        path = Path.parse(target)  # BadRequest when not an object/instance path
        if path.level not in (1, 2):
            raise BadRequest(f"link {link.target!r} is not an object or object instance")
        ver = link.attrs.get("ver")
        if ver is not None and path.oid is not None:
            versions[path.oid] = _unquote(ver)
    return _LinkInfo(links, versions, alternate, formats)


def _format_value(value: Value) -> str:
    if isinstance(value, bytes):
        shown = value[:16].hex()
        return f"0x{shown}{'...' if len(value) > 16 else ''} ({len(value)} B)"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _utc(stamp: float) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    except (OverflowError, OSError, ValueError):
        return f"{stamp:g}"


def _format_query_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = repr(value)
        return format(value, "f").rstrip("0").rstrip(".") if "e" in text else text
    return str(value)


def _to_path(text: str) -> Path:
    """Parse a caller-given path; ValueError (not BadRequest) when malformed."""
    try:
        return Path.parse(text)
    except BadRequest as exc:
        raise ValueError(str(exc)) from exc


# -- aiocoap internals (pinned 0.4.17) -------------------------------------------


def _bound_port(ctx: Any) -> int:
    """The UDP port the server context's socket is bound to."""
    for interface in ctx.request_interfaces:
        message_interface = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        transport = getattr(message_interface, "transport", None)
        if transport is not None:
            return int(transport.get_extra_info("socket").getsockname()[1])
    raise RuntimeError("cannot find the server socket in the aiocoap context")


async def _send_with_token(ctx: Any, msg: Any, on_failure: Callable[[], None]) -> None:
    """Send ``msg`` as is, keeping its token (the token layer would replace it).

    Responses are matched by the token layer like any other: to the request
    that is still waiting on that token, which is the point of reusing it.
    ``on_failure`` runs if the message is answered with RST or never acknowledged.
    """
    interface = await ctx.find_remote_and_interface(msg)
    interface.token_interface.send_message(msg, on_failure)


# -- observations --------------------------------------------------------------


class Observation:
    """One Observe (or Observe-Composite) relation with a client.

    ``first`` is the response to the Observe request; the relation is
    established only if it is 2.05 with an Observe option (see ``active``).
    Notifications are appended to ``notifications`` in arrival order (aiocoap
    may drop an intermediate one if several arrive in a burst, as Observe
    allows). The relation ends when the client ends it (a final response or an
    error code), on :meth:`cancel`, :meth:`cancel_by_reset` or server stop.
    """

    def __init__(
        self,
        server: TestServer,
        endpoint: str,
        paths: tuple[str, ...],
        composite: bool,
        request_msg: Any,
        request: Any,
    ) -> None:
        self.endpoint = endpoint
        self.paths = paths
        self.composite = composite
        self.first: Response = Response("0.00", None, b"")
        self.notifications: asyncio.Queue[Response] = asyncio.Queue()
        self.final: Response | None = None
        """The response that ended the relation (e.g. to :meth:`cancel`), if any."""
        self.error: BaseException | None = None
        """The transport error that ended the relation, if any."""
        self._server = server
        self._request_msg = request_msg
        self._request = request  # strong reference: aiocoap only holds it weakly
        self._iterator = request.observation.__aiter__()
        self._pump: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._locally_cancelled = False

    @property
    def path(self) -> str | None:
        """The observed path, or None for a composite observation."""
        return None if self.composite else self.paths[0]

    @property
    def base(self) -> Path:
        """The path notifications are decoded against (the root when composite)."""
        return Path() if self.composite else _to_path(self.paths[0])

    @property
    def token(self) -> bytes:
        """The CoAP token of the relation (empty before the first response)."""
        return bytes(self.first.message.token) if self.first.message is not None else b""

    @property
    def active(self) -> bool:
        """True while notifications may still arrive."""
        return self._pump is not None and not self._ended.is_set()

    def _start(self, first: Response) -> None:
        self.first = first
        if first.ok and first.observe is not None:
            self._pump = asyncio.get_running_loop().create_task(
                self._run(), name=f"observation {self.endpoint} {','.join(self.paths)}"
            )
        else:
            self._end_locally()
            self._ended.set()

    async def _run(self) -> None:
        try:
            while True:
                try:
                    msg = await self._iterator.__anext__()
                except StopAsyncIteration:
                    break
                response = self._server._response(msg, self.base, self.endpoint)
                if response.observe is None or not response.ok:
                    # the client ended the relation; aiocoap ends the iteration next
                    self.final = response
                    continue
                self.notifications.put_nowait(response)
                self._server._notified(self, response)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # transport errors end the relation, they are kept for callers
            LOG.warning("observation %s %s ended: %r", self.endpoint, ",".join(self.paths), exc)
            self.error = exc
        finally:
            self._ended.set()
            self._server._observations.discard(self)

    def _end_locally(self) -> None:
        if not self._locally_cancelled and not self._request.observation.cancelled:
            self._locally_cancelled = True
            self._request.observation.cancel()

    async def next(self, timeout: float = DEFAULT_TIMEOUT) -> Response:
        """The next queued notification; TimeoutError if none comes in ``timeout`` s."""
        async with asyncio.timeout(timeout):
            return await self.notifications.get()

    async def wait_ended(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Return once the relation has ended; TimeoutError after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            await self._ended.wait()

    async def cancel(self, timeout: float = DEFAULT_TIMEOUT) -> Response:
        """Actively cancel: re-send the Observe request with Observe=1 and the same token.

        Returns the client's response to it (normally a 2.05 without Observe).
        Raises RuntimeError if the relation is no longer active, TimeoutError if
        the client does not answer in ``timeout`` s, ConnectionResetError if it
        answers with RST; the relation is over locally either way.
        """
        if not self.active:
            raise RuntimeError("the observation is not active")
        src = self._request_msg
        msg = aiocoap.Message(
            code=src.code,
            payload=src.payload,
            uri_path=src.opt.uri_path,
            observe=1,
            accept=src.opt.accept,
            content_format=src.opt.content_format,
            transport_tuning=aiocoap.Reliable,
        )
        msg.token = self.first.message.token
        msg.remote = self.first.message.remote

        def failed() -> None:
            self.error = ConnectionResetError("the Observe cancellation was reset or never acknowledged")
            self._ended.set()

        try:
            await _send_with_token(self._server._context, msg, failed)
            await self.wait_ended(timeout)
        finally:
            self._stop()
        if self.final is None:
            raise self.error or ConnectionResetError("the observation ended without a response")
        return self.final

    def cancel_by_reset(self) -> None:
        """Passively cancel: forget the relation locally (aiocoap ``ClientObservation.cancel``).

        aiocoap releases the token lazily: the next notification is still
        matched, acknowledged if confirmable, and discarded; every later
        confirmable notification on the token is answered with RST
        (non-confirmable ones are ignored, never reset).
        """
        self._stop()

    def _stop(self) -> None:
        self._end_locally()
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        self._ended.set()
        self._server._observations.discard(self)


# -- CoAP resources --------------------------------------------------------------


def _reply(code: Code, diagnostic: str = "") -> Any:
    return aiocoap.Message(code=code, payload=diagnostic.encode())


class Route(resource.Resource):  # type: ignore[misc]
    """A CoAP resource that hands each method to a server callback (``post=``, ``delete=``...).

    Methods without a callback answer 4.05. Shared by the test servers.
    """

    def __init__(self, **handlers: Callable[[Any], Any]) -> None:
        super().__init__()
        self._handlers = handlers

    def _call(self, method: str, request: Any) -> Any:
        handler = self._handlers.get(method)
        if handler is None:
            raise aiocoap.error.UnallowedMethod()
        return handler(request)

    async def render_get(self, request: Any) -> Any:
        return self._call("get", request)

    async def render_post(self, request: Any) -> Any:
        return self._call("post", request)

    async def render_delete(self, request: Any) -> Any:
        return self._call("delete", request)


class SubtreeRoute(Route, resource.PathCapable):  # type: ignore[misc]
    """A :class:`Route` that also serves every path below where it is added."""


# -- the server ------------------------------------------------------------------


class TestServer:
    """An LwM2M server on one UDP socket: Registration, Send, DM and Observe.

    Create with :meth:`start`, release with :meth:`stop` (or ``async with``).
    Every DM call targets a registered endpoint by name, raises
    :class:`UnknownEndpoint` when it is not registered, ``TimeoutError`` when
    the client does not answer within ``timeout`` seconds and aiocoap's
    ``NetworkError`` family on RST or ICMP errors. Paths are LwM2M paths such
    as ``/3/0/1`` (ValueError when malformed); the registration's alternate
    path, if any, is prefixed on the wire.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        *,
        catalog: ResourceResolver,
        log: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        """Use :meth:`start`; this only sets up state."""
        self.catalog = catalog
        self.registrations: dict[str, Registration] = {}
        self._events: EventBacklog[Event] = EventBacklog()
        self.events: asyncio.Queue[Event] = self._events.queue
        self.bind = ""
        self.port = 0
        self._log = log
        self._clock = clock
        self._context: Any = None
        self._by_location: dict[str, str] = {}  # registration id -> endpoint
        self._observations: set[Observation] = set()
        self._reject_code: Code | None = None
        self._units: dict[tuple[str, int | None, int | None], str] = {}  # IPSO 5701 seen per instance
        self._expiry_task: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        bind: str = "127.0.0.1",
        port: int = 0,
        *,
        catalog: ResourceResolver | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        expiry_interval: float | None = 1.0,
    ) -> TestServer:
        """Bind ``bind``:``port`` (0 = ephemeral) and serve until :meth:`stop`.

        ``catalog`` resolves resource types for decoding (default: the built-in
        catalog); ``log`` receives one line per event (default: this module's
        logger at INFO); ``clock`` is read for registration times and expiry;
        ``expiry_interval`` is the period of the background expiry check
        (None: only :meth:`expire_registrations` expires).
        """
        if catalog is None:
            from lwm2md.model.catalog import Catalog

            catalog = Catalog.builtin()
        self = cls(catalog=catalog, log=log or LOG.info, clock=clock)
        site = resource.Site()
        site.add_resource(["rd"], Route(post=self._register))  # Register
        site.add_resource(["rd"], SubtreeRoute(post=self._update, delete=self._deregister))  # /rd/<id>
        site.add_resource(["dp"], Route(post=self._send))  # Send
        self._context = await aiocoap.Context.create_server_context(
            site, bind=(bind, port), transports=["udp6"], loggername="lwm2md.testing.coap"
        )
        self.bind = bind
        try:
            self.port = _bound_port(self._context)
        except BaseException:
            await self._context.shutdown()
            raise
        if expiry_interval is not None:
            self._expiry_task = asyncio.get_running_loop().create_task(
                self._expire_periodically(expiry_interval), name="registration expiry"
            )
        LOG.debug("test server listening on %s", self.uri)
        return self

    @property
    def uri(self) -> str:
        """The server URI clients are given, e.g. ``coap://127.0.0.1:5683``."""
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"coap://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop observations, the expiry check and the socket; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        tasks: list[asyncio.Task[None]] = []
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            tasks.append(self._expiry_task)
        for obs in list(self._observations):
            if obs._pump is not None:
                tasks.append(obs._pump)
            obs._stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._context is not None:
            await self._context.shutdown()

    async def __aenter__(self) -> TestServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test controls -------------------------------------------------------------

    def forget(self, endpoint: str) -> Registration | None:
        """Drop ``endpoint``'s registration silently (its next Update gets 4.04)."""
        reg = self.registrations.pop(endpoint, None)
        if reg is not None:
            self._by_location.pop(reg.location.rsplit("/", 1)[-1], None)
        return reg

    def set_reject_registration(self, code: str | int | None) -> None:
        """Answer every Register with ``code`` (e.g. ``"5.03"``) until reset with None."""
        self._reject_code = None if code is None else _parse_code(code)

    def expire_registrations(self, now: float | None = None) -> list[Registration]:
        """Remove registrations whose lifetime passed without Update by ``now``.

        ``now`` defaults to the server clock. Each removal is a ``deregister``
        event with reason ``"expired"``; the removed registrations are returned.
        """
        now = self._clock() if now is None else now
        expired = [reg for reg in self.registrations.values() if now > reg.expires_at]
        for reg in expired:
            self.forget(reg.endpoint)
            self._emit(
                Event("deregister", reg.endpoint, now, registration=reg, reason="expired"),
                f"expired {reg.endpoint} {reg.location} (lt={reg.lifetime})",
            )
        return expired

    async def _expire_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.expire_registrations()

    # -- events ------------------------------------------------------------------

    def _emit(self, event: Event, line: str) -> None:
        self._events.add(event)
        try:
            self._log(line)
        except Exception:  # a broken log sink must not break the protocol
            LOG.exception("event log callback failed")

    async def wait_event(
        self, kind: EventKind, timeout: float = DEFAULT_TIMEOUT, endpoint: str | None = None
    ) -> Event:
        """The oldest event of ``kind`` (for ``endpoint``, if given) not yet returned here.

        Events that happened before the call count, so there is no race with the
        action that triggers them. Independent of :attr:`events`: neither consumes
        the other. TimeoutError after ``timeout`` s.
        """
        if kind not in get_args(EventKind):
            raise ValueError(f"unknown event kind {kind!r}")
        return await self._events.take(lambda e: e.kind == kind and endpoint in (None, e.endpoint), timeout)

    async def wait_registered(
        self, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Registration:
        """The current registration of ``endpoint`` (any endpoint if None), waiting for one.

        Consumes no events. TimeoutError after ``timeout`` s.
        """

        def current() -> Registration | None:
            if endpoint is not None:
                return self.registrations.get(endpoint)
            return next(iter(self.registrations.values()), None)

        return await self._events.until(current, timeout)

    # -- Registration interface ------------------------------------------------------

    def _register(self, request: Any) -> Any:
        if self._reject_code is not None:
            return _reply(self._reject_code, "registration rejected by test setting")
        try:
            params = _parse_query(request.opt.uri_query)
            endpoint = params.get("ep")
            if not endpoint:
                raise BadRequest("missing endpoint name (ep)")
            version = params.get("lwm2m") or "1.0"
            if not _VERSION.fullmatch(version):
                return _reply(Code.PRECONDITION_FAILED, f"LwM2M version {version!r} not supported")
            lifetime = _lifetime(params["lt"]) if "lt" in params else DEFAULT_LIFETIME
            binding = _binding(params["b"]) if "b" in params else "U"
            if request.opt.content_format not in (None, ContentFormat.LINK_FORMAT):
                return _reply(Code.UNSUPPORTED_CONTENT_FORMAT, "Register payload must be link-format")
            info = _parse_registration_links(request.payload)
        except BadRequest as exc:
            return _reply(Code.BAD_REQUEST, str(exc))

        old = self.forget(endpoint)
        reg_id = self._new_location_id(avoid=old.location if old else "")
        now = self._clock()
        reg = Registration(
            endpoint=endpoint,
            location=f"/rd/{reg_id}",
            lifetime=lifetime,
            binding=binding,
            lwm2m_version=version,
            sms=params.get("sms"),
            queue_mode="Q" in params or "Q" in binding,
            links=info.links,
            object_versions=info.object_versions,
            remote=self._remote_tuple(request.remote),
            registered_at=now,
            updated_at=now,
            alternate_path=info.alternate_path,
            content_formats=info.content_formats,
            coap_remote=request.remote,
        )
        self.registrations[endpoint] = reg
        self._by_location[reg_id] = endpoint
        queue = " Q" if reg.queue_mode else ""
        host, port = reg.remote
        self._emit(
            Event("register", endpoint, now, registration=reg, params=params),
            f"registered {endpoint} {reg.location} lt={lifetime} b={binding} lwm2m={version}{queue} "
            f"from {host}:{port} objects={_links_text(reg)}",
        )
        return aiocoap.Message(code=Code.CREATED, location_path=("rd", reg_id))

    def _new_location_id(self, avoid: str) -> str:
        while True:
            reg_id = secrets.token_hex(2)
            if reg_id not in self._by_location and f"/rd/{reg_id}" != avoid:
                return reg_id

    @staticmethod
    def _remote_tuple(remote: Any) -> tuple[str, int]:
        host, port = hostportsplit(remote.hostinfo)
        return (str(host), int(port) if port is not None else aiocoap.COAP_PORT)

    def _lookup_location(self, request: Any) -> Registration | None:
        segments = tuple(request.opt.uri_path)
        if len(segments) != 1:
            return None
        endpoint = self._by_location.get(segments[0])
        return self.registrations.get(endpoint) if endpoint is not None else None

    def _update(self, request: Any) -> Any:
        reg = self._lookup_location(request)
        if reg is None:
            return _reply(Code.NOT_FOUND, "no such registration")
        try:
            params = _parse_query(request.opt.uri_query)
            changes: dict[str, Any] = {}
            if "lt" in params:
                changes["lifetime"] = _lifetime(params["lt"])
            if "b" in params:
                changes["binding"] = _binding(params["b"])
            if "sms" in params:
                changes["sms"] = params["sms"]
            if request.payload:
                if request.opt.content_format not in (None, ContentFormat.LINK_FORMAT):
                    return _reply(Code.UNSUPPORTED_CONTENT_FORMAT, "Update payload must be link-format")
                info = _parse_registration_links(request.payload)
                changes.update(
                    links=info.links,
                    object_versions=info.object_versions,
                    alternate_path=info.alternate_path,
                    content_formats=info.content_formats,
                )
        except BadRequest as exc:
            return _reply(Code.BAD_REQUEST, str(exc))
        now = self._clock()
        reg = replace(
            reg,
            **changes,
            remote=self._remote_tuple(request.remote),
            coap_remote=request.remote,
            updated_at=now,
            update_count=reg.update_count + 1,
        )
        self.registrations[reg.endpoint] = reg
        shown = " ".join(f"{k}={v}" if v is not None else k for k, v in params.items())
        objects = f" objects={_links_text(reg)}" if request.payload else ""
        self._emit(
            Event("update", reg.endpoint, now, registration=reg, params=params),
            f"updated {reg.endpoint} {reg.location}{' ' if shown else ''}{shown}{objects}",
        )
        return aiocoap.Message(code=Code.CHANGED)

    def _deregister(self, request: Any) -> Any:
        reg = self._lookup_location(request)
        if reg is None:
            return _reply(Code.NOT_FOUND, "no such registration")
        self.forget(reg.endpoint)
        self._emit(
            Event("deregister", reg.endpoint, self._clock(), registration=reg, reason="deregister"),
            f"deregistered {reg.endpoint} {reg.location}",
        )
        return aiocoap.Message(code=Code.DELETED)

    def _send(self, request: Any) -> Any:
        reg = next((r for r in self.registrations.values() if r.coap_remote == request.remote), None)
        if reg is None:
            return _reply(Code.NOT_FOUND, "Send from an unregistered address")
        fmt = request.opt.content_format
        if fmt is None or int(fmt) not in SEND_FORMATS:
            return _reply(Code.UNSUPPORTED_CONTENT_FORMAT, "Send needs SenML JSON/CBOR or LwM2M CBOR")
        try:
            records = codec.decode(int(fmt), request.payload, Path(), self.catalog.resource)
        except Lwm2mError as exc:  # whatever the decoder refuses is the client's 4.00
            return _reply(Code.BAD_REQUEST, f"undecodable Send payload: {exc}")
        self._emit(
            Event(
                "send",
                reg.endpoint,
                self._clock(),
                registration=reg,
                records=records,
                content_format=int(fmt),
                payload=bytes(request.payload),
            ),
            f"send {reg.endpoint} {self.format_records(reg.endpoint, records)}",
        )
        return aiocoap.Message(code=Code.CHANGED)

    # -- formatting & decoding ----------------------------------------------------------

    def _remember_units(self, endpoint: str, records: Sequence[Record]) -> None:
        for rec in records:
            if rec.path.rid == _SENSOR_UNITS and rec.path.riid is None and isinstance(rec.value, str):
                self._units[(endpoint, rec.path.oid, rec.path.iid)] = rec.value

    def _units_of(self, endpoint: str, path: Path) -> str:
        rdef = self.catalog.resource(path)
        if rdef is not None and rdef.units:
            return rdef.units
        if path.rid in _SENSOR_VALUES:
            return self._units.get((endpoint, path.oid, path.iid), "")
        return ""

    def format_records(self, endpoint: str, records: Sequence[Record]) -> str:
        """One-line text such as ``/3303/0/5700 = 21.5 Cel, /3303/0/5701 = 'Cel'``.

        Units come from the catalog, else from the IPSO Sensor Units (5701) value
        last seen from ``endpoint`` for the same instance; timestamps show as UTC.
        """
        self._remember_units(endpoint, records)
        parts = []
        for rec in records:
            unit = self._units_of(endpoint, rec.path)
            units = f" {unit}" if unit else ""
            stamp = f" @{_utc(rec.time)}" if rec.time is not None else ""
            parts.append(f"{rec.path} = {_format_value(rec.value)}{units}{stamp}")
        return ", ".join(parts) if parts else "(no records)"

    def _response(self, msg: Any, base: Path | None, endpoint: str) -> Response:
        """Build a Response from ``endpoint``'s aiocoap message, decoding against ``base``."""
        fmt = None if msg.opt.content_format is None else int(msg.opt.content_format)
        payload = bytes(msg.payload)
        records: list[Record] | None = None
        links: list[Link] | None = None
        problem: str | None = None
        try:
            if fmt == ContentFormat.LINK_FORMAT:
                links = parse_links(payload.decode("utf-8"))
            elif fmt in DATA_FORMATS and base is not None and payload:
                records = codec.decode(fmt, payload, base, self.catalog.resource)
                self._remember_units(endpoint, records)
        except (Lwm2mError, UnicodeDecodeError) as exc:  # kept for the caller: undecodable payload
            problem = f"{type(exc).__name__}: {exc}"
        location = "/" + "/".join(msg.opt.location_path) if msg.opt.location_path else None
        return Response(
            code=dotted(int(msg.code)),
            content_format=fmt,
            payload=payload,
            records=records,
            links=links,
            location=location,
            observe=msg.opt.observe,
            decode_error=problem,
            message=msg,
        )

    def _notified(self, obs: Observation, response: Response) -> None:
        detail = (
            self.format_records(obs.endpoint, response.records)
            if response.records is not None
            else f"{response.code} ct={response.content_format} {len(response.payload)} B"
            + (f" ({response.decode_error})" if response.decode_error else "")
        )
        target = obs.path if obs.path is not None else "[" + ",".join(obs.paths) + "]"
        self._emit(
            Event(
                "notify",
                obs.endpoint,
                self._clock(),
                registration=self.registrations.get(obs.endpoint),
                path=obs.path,
                response=response,
                records=response.records,
                content_format=response.content_format,
                payload=response.payload,
                observation=obs,
            ),
            f"notify {obs.endpoint} {target}: {detail}"
            if obs.composite or response.records is None
            else f"notify {obs.endpoint} {detail}",
        )

    # -- Device Management -----------------------------------------------------------

    def _registration(self, endpoint: str) -> Registration:
        reg = self.registrations.get(endpoint)
        if reg is None:
            raise UnknownEndpoint(endpoint)
        return reg

    def _message(
        self,
        endpoint: str,
        code: Code,
        path: Path | None,
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        query: Iterable[str] = (),
        observe: int | None = None,
        raw_segments: Sequence[str] | None = None,
    ) -> Any:
        reg = self._registration(endpoint)
        if raw_segments is not None:
            segments = list(raw_segments)
        else:
            assert path is not None
            prefix = [s for s in reg.alternate_path.split("/") if s]
            segments = prefix + path.segments()
        msg = aiocoap.Message(code=code, payload=payload, uri_path=segments, uri_query=list(query))
        if content_format is not None:
            msg.opt.content_format = content_format
        if accept is not None:
            msg.opt.accept = accept
        if observe is not None:
            msg.opt.observe = observe
        msg.remote = reg.coap_remote
        return msg

    async def _exchange(self, ep: str, msg: Any, base: Path | None, timeout: float) -> Response:
        request = self._context.request(msg, handle_blockwise=True)
        async with asyncio.timeout(timeout):
            answer = await request.response
        return self._response(answer, base, ep)

    def _payload(self, data: Any, fmt: int, base: Path) -> bytes:
        """Raw bytes as given, else records / a value / {riid: value} encoded at ``base``."""
        if isinstance(data, bytes | bytearray):
            return bytes(data)
        if isinstance(data, Mapping):
            records = [Record(base.child(riid), value) for riid, value in data.items()]
        elif isinstance(data, Record):
            records = [data]
        elif isinstance(data, list | tuple) and all(isinstance(r, Record) for r in data):
            records = list(data)
        else:
            records = [Record(base, data)]
        return codec.encode(fmt, base, records, self.catalog.resource)

    async def read(
        self, ep: str, path: str, accept: int | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Response:
        """Read (GET) ``path``; ``accept`` asks for a content format."""
        target = _to_path(path)
        return await self._exchange(ep, self._message(ep, Code.GET, target, accept=accept), target, timeout)

    async def discover(self, ep: str, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Response:
        """Discover (GET, Accept link-format) ``path``; links in ``Response.links``."""
        target = _to_path(path)
        msg = self._message(ep, Code.GET, target, accept=ContentFormat.LINK_FORMAT)
        return await self._exchange(ep, msg, None, timeout)

    async def write(
        self,
        ep: str,
        path: str,
        records_or_value: Any,
        fmt: int = ContentFormat.SENML_CBOR,
        replace: bool = True,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Write ``path``: PUT (replace) or POST (partial update) when ``replace`` is False.

        The payload is raw bytes as given, or encoded in ``fmt`` from a list of
        Records, one Record, a mapping riid -> value (multiple resource), or a
        single value for ``path`` itself.
        """
        target = _to_path(path)
        payload = self._payload(records_or_value, fmt, target)
        code = Code.PUT if replace else Code.POST
        msg = self._message(ep, code, target, payload=payload, content_format=fmt)
        return await self._exchange(ep, msg, target, timeout)

    async def write_attributes(
        self, ep: str, path: str, *, timeout: float = DEFAULT_TIMEOUT, **attrs: float | int | bool | None
    ) -> Response:
        """Write-Attributes (PUT with query only), in keyword order.

        ``pmin=10`` sends ``pmin=10``; a None value sends the bare name, which
        unsets the attribute.
        """
        target = _to_path(path)
        query = [
            name if value is None else f"{name}={_format_query_value(value)}" for name, value in attrs.items()
        ]
        return await self._exchange(ep, self._message(ep, Code.PUT, target, query=query), target, timeout)

    async def execute(
        self, ep: str, path: str, args: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Response:
        """Execute (POST) a resource, with ``args`` as the plain-text payload."""
        target = _to_path(path)
        payload = args.encode("utf-8") if args else b""
        return await self._exchange(
            ep, self._message(ep, Code.POST, target, payload=payload), target, timeout
        )

    async def create(
        self,
        ep: str,
        path: str,
        records: Any = (),
        fmt: int = ContentFormat.SENML_CBOR,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Create (POST to an object path); the new instance's path is in ``Response.location``.

        ``records`` as for :meth:`write` (raw bytes or Records below ``path``);
        empty creates an instance with no values and no payload.
        """
        target = _to_path(path)
        payload = self._payload(records, fmt, target) if records else b""
        msg = self._message(ep, Code.POST, target, payload=payload, content_format=fmt if payload else None)
        return await self._exchange(ep, msg, target, timeout)

    async def delete(self, ep: str, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Response:
        """Delete (DELETE) an object instance (or ``/`` for Bootstrap-style deletes)."""
        target = _to_path(path)
        return await self._exchange(ep, self._message(ep, Code.DELETE, target), target, timeout)

    def _composite_paths(self, paths: Sequence[str], fmt: int) -> tuple[tuple[str, ...], bytes]:
        parsed = [_to_path(p) for p in paths]
        return tuple(str(p) for p in parsed), codec.encode_paths(fmt, parsed)

    async def read_composite(
        self,
        ep: str,
        paths: Sequence[str],
        fmt: int = ContentFormat.SENML_CBOR,
        accept: int = ContentFormat.SENML_CBOR,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Read-Composite: FETCH ``/`` with the paths encoded in ``fmt``."""
        _, payload = self._composite_paths(paths, fmt)
        msg = self._message(ep, Code.FETCH, Path(), payload=payload, content_format=fmt, accept=accept)
        return await self._exchange(ep, msg, Path(), timeout)

    async def write_composite(
        self,
        ep: str,
        records: Sequence[Record] | bytes,
        fmt: int = ContentFormat.SENML_CBOR,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Write-Composite: iPATCH ``/`` with absolute-path records (or raw bytes) in ``fmt``."""
        payload = bytes(records) if isinstance(records, bytes) else self._payload(list(records), fmt, Path())
        msg = self._message(ep, Code.iPATCH, Path(), payload=payload, content_format=fmt)
        return await self._exchange(ep, msg, Path(), timeout)

    async def _observe(
        self, msg: Any, endpoint: str, paths: tuple[str, ...], composite: bool, timeout: float
    ) -> Observation:
        request = self._context.request(msg, handle_blockwise=True)
        obs = Observation(self, endpoint, paths, composite, msg, request)
        try:
            async with asyncio.timeout(timeout):
                answer = await request.response
        except BaseException:
            obs._stop()
            raise
        # Let aiocoap's observation task start: cancelling it before its first step
        # would skip its cleanup and keep the token alive (see cancel_by_reset).
        await asyncio.sleep(0)
        self._observations.add(obs)
        obs._start(self._response(answer, obs.base, endpoint))
        return obs

    async def observe(
        self, ep: str, path: str, accept: int | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Observation:
        """Observe (GET, Observe=0) ``path``; see :class:`Observation`.

        An error or a response without Observe comes back as ``first`` of an
        inactive Observation rather than as an exception.
        """
        target = _to_path(path)
        msg = self._message(ep, Code.GET, target, accept=accept, observe=0)
        return await self._observe(msg, ep, (str(target),), False, timeout)

    async def observe_composite(
        self,
        ep: str,
        paths: Sequence[str],
        fmt: int = ContentFormat.SENML_CBOR,
        accept: int = ContentFormat.SENML_CBOR,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Observation:
        """Observe-Composite: FETCH ``/`` with Observe=0 and the paths encoded in ``fmt``."""
        shown, payload = self._composite_paths(paths, fmt)
        msg = self._message(
            ep, Code.FETCH, Path(), payload=payload, content_format=fmt, accept=accept, observe=0
        )
        return await self._observe(msg, ep, shown, True, timeout)

    async def raw(
        self,
        ep: str,
        code: str | int,
        path: str,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        query: Iterable[str] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Send any request; for negative tests.

        ``code`` is a method name (``"GET"``, ``"iPATCH"``...) or a code byte;
        ``path`` is split on ``/`` into URI-Path segments verbatim (no
        validation, no alternate-path prefix). Decoding uses ``path`` as base
        when it is a valid LwM2M path.
        """
        method = _METHODS.get(code.upper()) if isinstance(code, str) else Code(code)
        if method is None:
            raise ValueError(f"unknown method {code!r}")
        segments = [s for s in path.split("/") if s]
        try:
            base: Path | None = Path.parse(path)
        except BadRequest:
            base = None
        msg = self._message(
            ep,
            method,
            None,
            payload=payload,
            content_format=content_format,
            accept=accept,
            query=query,
            raw_segments=segments,
        )
        return await self._exchange(ep, msg, base, timeout)


def _links_text(reg: Registration) -> str:
    shown = []
    for link in reg.links:
        if _is_root_link(link):
            continue
        ver = link.attrs.get("ver")
        shown.append(f"<{link.target}>" + (f";ver={_unquote(ver)}" if ver is not None else ""))
    return ",".join(shown) if shown else "(none)"
