"""A Bootstrap-Server for tests and demos, built directly on aiocoap.

It serves Bootstrap-Request (``POST /bs?ep=...[&pct=...]``) and the 1.2
Bootstrap-Pack-Request (``GET /bspack?ep=...``) and, for an endpoint it was
given a configuration for (:meth:`BootstrapServer.provision`), runs a
provisioning script against the client from its own socket:

1. ``discover``: Bootstrap-Discover ``/`` (optional), which tells the
   Bootstrap-Server account's /0 iid (the /0 link without ``ssid``);
2. ``delete``: Bootstrap-Delete ``/`` (optional);
3. ``security``: a Bootstrap-Write of each server account's /0 instance;
4. ``server``: a Bootstrap-Write of each /1 instance;
5. ``acl``: a Bootstrap-Write of each /2 instance;
6. ``finish``: Bootstrap-Finish (``POST /bs``).

Every run ends in one event: ``bootstrap-finished`` (Finish answered 2.04),
``bootstrap-failed`` (a step answered an error, timed out or could not be
sent) or ``bootstrap-stopped`` (:meth:`BootstrapServer.fail_after` stopped it
after a step, without Finish). Client-initiated runs are preceded by a
``bootstrap-request`` event, packs served by a ``bspack`` event. A run against
a client that did not ask (server-initiated bootstrap) is
:meth:`BootstrapServer.bootstrap`.

Writes are SenML CBOR unless the provisioning says otherwise (TLV, say) or
the Bootstrap-Request's ``pct`` names another data format. /0 instances the
script picks iids for avoid the Bootstrap-Server account's iid (the one
Discover reported, else 0). Independent of the client's engine: it shares
only the data model and the codecs (and two helpers of the test server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.util import hostportjoin, hostportsplit

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.codec.linkformat import Link, parse_links
from lwm2md.errors import BadRequest, Lwm2mError, dotted
from lwm2md.model.path import Path
from lwm2md.model.types import Record, ResourceData
from lwm2md.testing.server import (
    DEFAULT_TIMEOUT,
    EventBacklog,
    ResourceResolver,
    Response,
    Route,
    _bound_port,
    _parse_query,
    _reply,
)

LOG = logging.getLogger(__name__)

__all__ = [
    "STEPS",
    "AclSpec",
    "BootstrapEvent",
    "BootstrapEventKind",
    "BootstrapServer",
    "ServerAccountSpec",
    "Step",
]

BootstrapEventKind = Literal[
    "bootstrap-request", "bootstrap-finished", "bootstrap-failed", "bootstrap-stopped", "bspack"
]
STEPS: tuple[str, ...] = ("discover", "delete", "security", "server", "acl", "finish")
"""Script steps in order; :meth:`BootstrapServer.fail_after` names one of the first five."""

WRITE_FORMATS: frozenset[int] = frozenset(
    {ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.TLV, ContentFormat.LWM2M_CBOR}
)
PACK_FORMATS: frozenset[int] = frozenset(
    {ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.LWM2M_CBOR}
)
MODE_PSK = 0
MODE_NOSEC = 3
OWNER_BOOTSTRAP = 65535


@dataclass(frozen=True)
class ServerAccountSpec:
    """One LwM2M Server account to provision: its /0 and /1 instances.

    The security mode defaults to PSK (0) when ``psk_identity`` is given,
    else NoSec (3). iids left None are chosen by the script.
    """

    uri: str
    ssid: int
    lifetime: int = 300
    binding: str = "U"
    psk_identity: bytes | None = None
    psk_key: bytes | None = None
    security_mode: int | None = None
    notification_storing: bool = True
    security_iid: int | None = None
    server_iid: int | None = None

    @property
    def mode(self) -> int:
        if self.security_mode is not None:
            return self.security_mode
        return MODE_PSK if self.psk_identity is not None else MODE_NOSEC

    def security_values(self) -> dict[int, ResourceData]:
        """/0 resource values (key material included: this is test tooling)."""
        return {
            0: self.uri,
            1: False,
            2: self.mode,
            3: self.psk_identity or b"",
            4: b"",
            5: self.psk_key or b"",
            10: self.ssid,
        }

    def server_values(self) -> dict[int, ResourceData]:
        """/1 resource values."""
        return {0: self.ssid, 1: self.lifetime, 6: self.notification_storing, 7: self.binding}


@dataclass(frozen=True)
class AclSpec:
    """One Access Control (/2) instance: target ``/oid/iid``, ACL ``{ssid or 0: bits}``, owner."""

    oid: int
    iid: int
    acl: Mapping[int, int] = field(default_factory=dict)
    owner: int = OWNER_BOOTSTRAP
    acl_iid: int | None = None

    def values(self) -> dict[int, ResourceData]:
        out: dict[int, ResourceData] = {0: self.oid, 1: self.iid, 3: self.owner}
        if self.acl:
            out[2] = {int(ssid): int(bits) for ssid, bits in self.acl.items()}
        return out


@dataclass(frozen=True)
class _Provisioning:
    servers: tuple[ServerAccountSpec, ...]
    acls: tuple[AclSpec, ...]
    fmt: int | None
    discover: bool
    delete: bool


@dataclass(frozen=True)
class Step:
    """One request of a run and its answer (``response`` None when none came; see ``error``)."""

    name: str
    method: str
    path: str
    response: Response | None
    error: str | None = None

    @property
    def code(self) -> str:
        """The response code, or ``"-"`` when there was none."""
        return self.response.code if self.response is not None else "-"


@dataclass(frozen=True)
class BootstrapEvent:
    """Something a bootstrap run or a client did, in arrival order.

    ``steps`` are the requests the run made (for the run-ending kinds),
    ``params`` the query of a Bootstrap-Request or pack request, ``remote`` the
    client address, ``reason`` why a run failed or stopped, ``payload`` the
    pack served. ``time`` is a reading of the server's clock.
    """

    kind: BootstrapEventKind
    endpoint: str
    time: float
    steps: tuple[Step, ...] = ()
    params: dict[str, str | None] = field(default_factory=dict)
    remote: tuple[str, int] | None = None
    reason: str | None = None
    payload: bytes = b""

    @property
    def paths(self) -> list[str]:
        """``METHOD /path`` of each step, for compact assertions."""
        return [f"{s.method} {s.path}" for s in self.steps]


class _Stop(Exception):
    """The run ends here: ``kind`` and ``reason`` go into its event."""

    def __init__(self, kind: BootstrapEventKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# -- CoAP resources --------------------------------------------------------------


# -- the server -------------------------------------------------------------------


class BootstrapServer:
    """A Bootstrap-Server on one UDP socket; create with :meth:`start`, release with :meth:`stop`.

    Requests to clients time out after ``timeout`` seconds (the run then
    fails). Everything runs on the loop that called :meth:`start`.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        catalog: ResourceResolver,
        log: Callable[[str], None],
        clock: Callable[[], float],
        timeout: float,
    ) -> None:
        """Use :meth:`start`; this only sets up state."""
        self.catalog = catalog
        self.timeout = timeout
        self._events: EventBacklog[BootstrapEvent] = EventBacklog()
        self.events: asyncio.Queue[BootstrapEvent] = self._events.queue
        self.results: dict[str, BootstrapEvent] = {}
        """The event that ended the latest run per endpoint."""
        self.bind = ""
        self.port = 0
        self._log = log
        self._clock = clock
        self._context: Any = None
        self._provisioning: dict[str, _Provisioning] = {}
        self._stop_after: str | None = None
        self._runs: dict[str, asyncio.Task[BootstrapEvent]] = {}
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        bind: str = "127.0.0.1",
        port: int = 0,
        *,
        catalog: ResourceResolver | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> BootstrapServer:
        """Bind ``bind``:``port`` (0: ephemeral) and serve until :meth:`stop`.

        ``catalog`` resolves resource types for encoding (default: built-in);
        ``log`` gets one line per event (default: this module's logger).
        """
        if catalog is None:
            from lwm2md.model.catalog import Catalog

            catalog = Catalog.builtin()
        self = cls(catalog=catalog, log=log or LOG.info, clock=clock, timeout=timeout)
        site = resource.Site()
        site.add_resource(["bs"], Route(post=self._bootstrap_request))  # Bootstrap-Request
        site.add_resource(["bspack"], Route(get=self._pack_request))  # Bootstrap-Pack-Request (1.2)
        self._context = await aiocoap.Context.create_server_context(
            site, bind=(bind, port), transports=["udp6"], loggername="lwm2md.testing.bootstrap.coap"
        )
        self.bind = bind
        try:
            self.port = _bound_port(self._context)
        except BaseException:
            await self._context.shutdown()
            raise
        LOG.debug("bootstrap server listening on %s", self.uri)
        return self

    @property
    def uri(self) -> str:
        """The Bootstrap-Server URI clients are given, e.g. ``coap://127.0.0.1:5783``."""
        return f"coap://{hostportjoin(self.bind, self.port)}"

    async def stop(self) -> None:
        """Cancel running scripts and close the socket; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        runs = list(self._runs.values())
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        if self._context is not None:
            await self._context.shutdown()

    async def __aenter__(self) -> BootstrapServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration ----------------------------------------------------------

    def provision(
        self,
        endpoint: str,
        servers: Sequence[ServerAccountSpec],
        acls: Sequence[AclSpec] = (),
        *,
        fmt: int | None = None,
        discover: bool = True,
        delete: bool = True,
    ) -> None:
        """What to send ``endpoint``: its server accounts and ACL instances.

        ``fmt`` fixes the write format (default: the request's ``pct`` if it is
        a data format, else SenML CBOR); ``discover`` and ``delete`` switch the
        first two steps. ValueError for a format writes cannot use.
        """
        if fmt is not None and fmt not in WRITE_FORMATS:
            raise ValueError(f"content format {fmt} cannot carry a Bootstrap-Write of an instance")
        self._provisioning[endpoint] = _Provisioning(tuple(servers), tuple(acls), fmt, discover, delete)

    def forget(self, endpoint: str) -> None:
        """Drop ``endpoint``'s configuration (its Bootstrap-Request then gets 4.00)."""
        self._provisioning.pop(endpoint, None)

    def fail_after(self, step: str | None) -> None:
        """Stop every later run after ``step`` (no Finish): a half-done bootstrap. None: run fully."""
        if step is not None and step not in STEPS[:-1]:
            raise ValueError(f"unknown step {step!r}; one of {', '.join(STEPS[:-1])}")
        self._stop_after = step

    def pack(self, endpoint: str, fmt: int = ContentFormat.SENML_CBOR) -> bytes:
        """The Bootstrap-Pack for ``endpoint``: its /0, /1 and /2 instances as absolute records.

        KeyError when not provisioned; ValueError for a format that is not SenML or LwM2M CBOR.
        """
        if fmt not in PACK_FORMATS:
            raise ValueError(f"a Bootstrap-Pack cannot be in content format {fmt}")
        prov = self._provisioning[endpoint]
        records: list[Record] = []
        for (oid, iid), values in self._instances(prov, reserved={0}):
            records.extend(_records(Path(oid, iid), values))
        return codec.encode(fmt, Path(), records, self.catalog.resource)

    # -- events -----------------------------------------------------------------

    def _emit(self, event: BootstrapEvent, line: str) -> None:
        self._events.add(event)
        try:
            self._log(line)
        except Exception:  # a broken log sink must not break the protocol
            LOG.exception("event log callback failed")

    async def wait_event(
        self, kind: BootstrapEventKind, timeout: float = DEFAULT_TIMEOUT, endpoint: str | None = None
    ) -> BootstrapEvent:
        """The oldest event of ``kind`` (for ``endpoint``, if given) not yet returned here.

        Events from before the call count; independent of :attr:`events`.
        TimeoutError after ``timeout`` s.
        """
        if kind not in get_args(BootstrapEventKind):
            raise ValueError(f"unknown event kind {kind!r}")
        return await self._events.take(lambda e: e.kind == kind and endpoint in (None, e.endpoint), timeout)

    # -- client requests ----------------------------------------------------------

    @staticmethod
    def _remote_tuple(remote: Any) -> tuple[str, int]:
        host, port = hostportsplit(remote.hostinfo)
        return (str(host), int(port) if port is not None else aiocoap.COAP_PORT)

    def _endpoint_params(self, request: Any) -> tuple[str, dict[str, str | None]]:
        params = _parse_query(request.opt.uri_query)
        endpoint = params.get("ep")
        if not endpoint:
            raise BadRequest("missing endpoint name (ep)")
        pct = params.get("pct")
        if "pct" in params and (pct is None or not pct.isascii() or not pct.isdigit()):
            raise BadRequest(f"pct {pct!r} is not a content format number")
        return endpoint, params

    def _bootstrap_request(self, request: Any) -> Any:
        try:
            endpoint, params = self._endpoint_params(request)
        except BadRequest as exc:
            return _reply(Code.BAD_REQUEST, str(exc))
        remote = self._remote_tuple(request.remote)
        self._emit(
            BootstrapEvent("bootstrap-request", endpoint, self._clock(), params=params, remote=remote),
            f"bootstrap-request {endpoint} from {remote[0]}:{remote[1]}"
            + (f" pct={params['pct']}" if params.get("pct") else ""),
        )
        if endpoint not in self._provisioning:
            return _reply(Code.BAD_REQUEST, f"no bootstrap configuration for {endpoint}")
        pct = params.get("pct")
        self._start_run(endpoint, request.remote, remote, int(pct) if pct else None)
        return aiocoap.Message(code=Code.CHANGED)

    def _pack_request(self, request: Any) -> Any:
        try:
            endpoint, params = self._endpoint_params(request)
        except BadRequest as exc:
            return _reply(Code.BAD_REQUEST, str(exc))
        accept = request.opt.accept
        fmt = ContentFormat.SENML_CBOR if accept is None else int(accept)
        if fmt not in PACK_FORMATS:
            return _reply(Code.NOT_ACCEPTABLE, f"a Bootstrap-Pack cannot be in content format {fmt}")
        if endpoint not in self._provisioning:
            return _reply(Code.BAD_REQUEST, f"no bootstrap configuration for {endpoint}")
        payload = self.pack(endpoint, fmt)
        remote = self._remote_tuple(request.remote)
        self._emit(
            BootstrapEvent("bspack", endpoint, self._clock(), params=params, remote=remote, payload=payload),
            f"bspack {endpoint} to {remote[0]}:{remote[1]} ({len(payload)} B, ct={fmt})",
        )
        return aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=fmt)

    def _start_run(self, endpoint: str, target: Any, remote: tuple[str, int], pct: int | None) -> None:
        old = self._runs.get(endpoint)
        if old is not None and not old.done():
            old.cancel()
        task = asyncio.get_running_loop().create_task(
            self._run(endpoint, target, remote, pct), name=f"bootstrap {endpoint}"
        )
        self._runs[endpoint] = task

    # -- server-initiated bootstrap -------------------------------------------------

    async def bootstrap(self, endpoint: str, host: str, port: int) -> BootstrapEvent:
        """Run ``endpoint``'s script against a client at ``host``:``port`` that did not ask.

        Returns the run's final event (also emitted). KeyError when not provisioned.
        """
        if endpoint not in self._provisioning:
            raise KeyError(endpoint)
        self._start_run(endpoint, (host, port), (host, port), None)
        return await self._runs[endpoint]

    # -- the script -------------------------------------------------------------------

    def _instances(
        self, prov: _Provisioning, reserved: set[int]
    ) -> list[tuple[tuple[int, int], dict[int, ResourceData]]]:
        """(oid, iid) and values of every instance to write, /0 first, then /1, then /2."""
        out: list[tuple[tuple[int, int], dict[int, ResourceData]]] = []
        taken = set(reserved) | {s.security_iid for s in prov.servers if s.security_iid is not None}
        next_iid = 0
        for spec in prov.servers:
            iid = spec.security_iid
            if iid is None:
                while next_iid in taken:
                    next_iid += 1
                iid = next_iid
                taken.add(iid)
            out.append(((0, iid), spec.security_values()))
        out.extend(_numbered(1, [(s.server_iid, s.server_values()) for s in prov.servers]))
        out.extend(_numbered(2, [(a.acl_iid, a.values()) for a in prov.acls]))
        return out

    async def _run(
        self, endpoint: str, target: Any, remote: tuple[str, int], pct: int | None
    ) -> BootstrapEvent:
        prov = self._provisioning[endpoint]
        fmt = prov.fmt or (pct if pct in WRITE_FORMATS else None) or ContentFormat.SENML_CBOR
        steps: list[Step] = []
        kind: BootstrapEventKind = "bootstrap-finished"
        reason: str | None = None
        try:
            await self._script(prov, fmt, target, steps)
        except _Stop as stop:
            kind, reason = stop.kind, stop.reason
        except asyncio.CancelledError:
            LOG.debug("bootstrap run for %s cancelled", endpoint)
            raise
        event = BootstrapEvent(
            kind, endpoint, self._clock(), steps=tuple(steps), remote=remote, reason=reason
        )
        self.results[endpoint] = event
        shown = " ".join(f"{s.method} {s.path} {s.code}" for s in steps)
        self._emit(event, f"{kind} {endpoint}: {shown}" + (f" ({reason})" if reason else ""))
        return event

    async def _script(self, prov: _Provisioning, fmt: int, target: Any, steps: list[Step]) -> None:
        reserved = {0}
        if prov.discover:
            step = await self._step(
                steps, "discover", target, Code.GET, Path(), accept=ContentFormat.LINK_FORMAT
            )
            reserved = _bootstrap_iids(step.response.links if step.response else None) or reserved
            self._maybe_stop("discover")
        if prov.delete:
            await self._step(steps, "delete", target, Code.DELETE, Path())
            self._maybe_stop("delete")
        plan = self._instances(prov, reserved)
        for name, oid in (("security", 0), ("server", 1), ("acl", 2)):
            for (each_oid, iid), values in plan:
                if each_oid == oid:
                    path = Path(oid, iid)
                    payload = codec.encode(fmt, path, _records(path, values), self.catalog.resource)
                    await self._step(steps, name, target, Code.PUT, path, payload=payload, content_format=fmt)
            self._maybe_stop(name)
        await self._step(steps, "finish", target, Code.POST, None)

    def _maybe_stop(self, step: str) -> None:
        if self._stop_after == step:
            raise _Stop("bootstrap-stopped", f"stopped after {step} as told")

    async def _step(
        self,
        steps: list[Step],
        name: str,
        target: Any,
        code: Code,
        path: Path | None,
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
    ) -> Step:
        """Send one request; record it; raise _Stop unless it succeeded."""
        shown = "/bs" if path is None else str(path)
        segments = list(FINISH_SEGMENTS) if path is None else path.segments()
        msg = _message(target, code, segments, payload, content_format, accept)
        method = str(code)
        try:
            request = self._context.request(msg, handle_blockwise=True)
            async with asyncio.timeout(self.timeout):
                answer = await request.response
        except TimeoutError:
            steps.append(Step(name, method, shown, None, "no answer"))
            raise _Stop("bootstrap-failed", f"{name}: no answer to {method} {shown}") from None
        except aiocoap.error.Error as exc:
            steps.append(Step(name, method, shown, None, repr(exc)))
            raise _Stop("bootstrap-failed", f"{name}: {method} {shown} failed: {exc!r}") from None
        step = Step(name, method, shown, _response(answer))
        steps.append(step)
        if not step.code.startswith("2."):
            raise _Stop("bootstrap-failed", f"{name}: {method} {shown} answered {step.code}")
        return step


FINISH_SEGMENTS: tuple[str, ...] = ("bs",)


def _numbered(
    oid: int, items: Iterable[tuple[int | None, dict[int, ResourceData]]]
) -> list[tuple[tuple[int, int], dict[int, ResourceData]]]:
    """Given iids kept, the others numbered from 0 past the given ones."""
    listed = list(items)
    taken = {iid for iid, _ in listed if iid is not None}
    out: list[tuple[tuple[int, int], dict[int, ResourceData]]] = []
    next_iid = 0
    for iid, values in listed:
        if iid is None:
            while next_iid in taken:
                next_iid += 1
            iid = next_iid
            taken.add(iid)
        out.append(((oid, iid), values))
    return out


def _records(base: Path, values: Mapping[int, ResourceData]) -> list[Record]:
    out: list[Record] = []
    for rid, data in sorted(values.items()):
        rpath = base.child(rid)
        if isinstance(data, dict):
            out.extend(Record(rpath.child(riid), value) for riid, value in sorted(data.items()))
        else:
            out.append(Record(rpath, data))
    return out


def _bootstrap_iids(links: list[Link] | None) -> set[int]:
    """iids of the /0 links without ``ssid``: the client's Bootstrap-Server account(s)."""
    found: set[int] = set()
    for link in links or []:
        try:
            path = Path.parse(link.target)
        except BadRequest:
            continue
        if path.oid == 0 and path.level == 2 and "ssid" not in link.attrs and path.iid is not None:
            found.add(path.iid)
    return found


def _message(
    target: Any,
    code: Code,
    segments: Sequence[str],
    payload: bytes,
    content_format: int | None,
    accept: int | None,
) -> Any:
    """A request to ``target``: an aiocoap remote (client-initiated) or (host, port)."""
    if isinstance(target, tuple):
        host, port = target
        msg = aiocoap.Message(code=code, payload=payload, uri=f"coap://{hostportjoin(host, port)}/")
        msg.opt.uri_path = tuple(segments)
    else:
        msg = aiocoap.Message(code=code, payload=payload, uri_path=list(segments))
        msg.remote = target
    if content_format is not None:
        msg.opt.content_format = content_format
    if accept is not None:
        msg.opt.accept = accept
    return msg


def _response(msg: Any) -> Response:
    fmt = None if msg.opt.content_format is None else int(msg.opt.content_format)
    payload = bytes(msg.payload)
    links: list[Link] | None = None
    problem: str | None = None
    if fmt == ContentFormat.LINK_FORMAT:
        try:
            links = parse_links(payload.decode("utf-8"))
        except (Lwm2mError, UnicodeDecodeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
    return Response(dotted(int(msg.code)), fmt, payload, links=links, decode_error=problem, message=msg)
