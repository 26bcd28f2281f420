"""Map a server's CoAP request onto a DM / Information Reporting operation.

Transport-neutral: the CoAP edge turns each incoming request into an
:class:`InboundRequest`, calls :meth:`RequestDispatcher.handle` and renders the
:class:`Outcome` (or the raised :class:`~lwm2md.errors.Lwm2mError`).

Content negotiation: a response uses the request's Accept when given
(NotAcceptable when it cannot carry the value); without one, a single value
goes out as text/plain (opaque for Opaque resources) and anything larger in
the server's preferred format.

Access control: with an :class:`~lwm2md.engine.access.AccessControl`, every
request is checked for the requesting server first (4.01 when refused);
object-level Read, Observe and Discover leave out the instances the server
may not see; a Create gives the new instance an ACL owned by its creator and
a Delete removes the ACLs of what it deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.codec.linkformat import Link, format_links
from lwm2md.engine.access import AccessControl, Operation
from lwm2md.engine.attributes import parse_query
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.observe import Observation, ObserveEngine
from lwm2md.errors import (
    BadRequest,
    MethodNotAllowed,
    NotAcceptable,
    UnsupportedContentFormat,
    code_byte,
)
from lwm2md.model.path import Path
from lwm2md.model.types import Operations, Record, ResourceType

LOG = logging.getLogger(__name__)

ACCESS_CONTROL_OID = 2

CONTENT = code_byte(2, 5)
CHANGED = code_byte(2, 4)
CREATED = code_byte(2, 1)
DELETED = code_byte(2, 2)

DATA_FORMATS = frozenset(
    {
        ContentFormat.TEXT,
        ContentFormat.OPAQUE,
        ContentFormat.CBOR,
        ContentFormat.TLV,
        ContentFormat.OMA_JSON,
        ContentFormat.SENML_JSON,
        ContentFormat.SENML_CBOR,
        ContentFormat.LWM2M_CBOR,
    }
)
COMPOSITE_FORMATS = frozenset({ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR})


@dataclass(frozen=True)
class InboundRequest:
    """A server's request, stripped of CoAP transport details."""

    ssid: int
    method: str  # GET, POST, PUT, DELETE, FETCH, IPATCH
    path: Path
    query: tuple[str, ...] = ()
    payload: bytes = b""
    content_format: int | None = None
    accept: int | None = None
    observe: int | None = None
    uri_path: tuple[str, ...] = ()
    """The URI-Path as sent; set when it is not an LwM2M path (``path`` is then the root), e.g. ("bs",)."""


@dataclass
class Outcome:
    """A successful answer; ``observation`` is set when an observation starts."""

    code: int
    payload: bytes = b""
    content_format: int | None = None
    location: tuple[str, ...] = ()
    observation: Observation | None = None
    records: list[Record] = field(default_factory=list)


def _noop_emit(obs: Observation, records: object, confirmable: bool) -> None:
    LOG.debug("observation %d has no sender yet", obs.ident)


class RequestDispatcher:
    """Serve DM and Information Reporting requests for every server.

    ``preferred_format(ssid)`` gives the server's format for multi-value
    answers when no Accept is given.
    """

    def __init__(
        self,
        dm: DeviceManagement,
        observe: ObserveEngine,
        preferred_format: Callable[[int], int],
        *,
        access: AccessControl | None = None,
        server_count: Callable[[], int] = lambda: 1,
    ) -> None:
        self.dm = dm
        self.observe = observe
        self.preferred_format = preferred_format
        self.access = access
        self.server_count = server_count
        observe.visible = self._filter_records

    async def handle(self, req: InboundRequest) -> Outcome:
        """Serve ``req``; raises Lwm2mError with the response code on refusal."""
        self._check(req.ssid, _operation(req), req.path)
        method = req.method
        if method == "GET":
            if req.accept == ContentFormat.LINK_FORMAT:
                return self._discover(req)
            return self._read(req)
        if method == "PUT":
            if not req.payload and req.content_format is None:
                return self._write_attributes(req)
            return self._write(req, replace=True)
        if method == "POST":
            return await self._post(req)
        if method == "DELETE":
            self.dm.delete(req.path)
            if self.access is not None and req.path.iid is not None and req.path.level == 2:
                assert req.path.oid is not None
                self.access.remove_for_deleted(req.path.oid, req.path.iid)
            return Outcome(DELETED)
        if method == "FETCH":
            return self._read_composite(req)
        if method == "IPATCH":
            return self._write_composite(req)
        raise MethodNotAllowed(f"method {method} is not used by LwM2M")

    # -- access control -------------------------------------------------------

    def _check(self, ssid: int, op: Operation, path: Path) -> None:
        if self.access is not None:
            self.access.check(ssid, op, path, server_count=self.server_count())

    def _visible(self, ssid: int, path: Path, op: Operation) -> bool:
        if self.access is None:
            return True
        return self.access.visible_to(ssid, path, server_count=self.server_count(), op=op)

    def _filter_records(self, ssid: int, records: list[Record]) -> list[Record]:
        """``records`` without those of instances ``ssid`` may not read (also used for notifications)."""
        if self.access is None or self.server_count() <= 1:
            return records
        return [r for r in records if self._visible(ssid, Path(*r.path.parts[:2]), Operation.READ)]

    def _filter_links(self, ssid: int, links: list[Link]) -> list[Link]:
        kept = []
        for link in links:
            try:
                path = Path.parse(link.target)
            except Exception:
                kept.append(link)
                continue
            if self._visible(ssid, Path(*path.parts[:2]), Operation.DISCOVER):
                kept.append(link)
        return kept

    # -- encoding -------------------------------------------------------------

    def _is_single_value(self, path: Path) -> bool:
        if path.level == 4:
            return True
        if path.level == 3:
            rdef = self.dm.resolve(path)
            return rdef is not None and not rdef.multiple
        return False

    def _choose_format(self, req: InboundRequest, path: Path) -> int:
        if req.accept is not None:
            if req.accept not in DATA_FORMATS:
                raise _not_acceptable(req.accept)
            return req.accept
        if self._is_single_value(path):
            rdef = self.dm.resolve(path.resource())
            opaque = rdef is not None and rdef.type is ResourceType.OPAQUE
            return ContentFormat.OPAQUE if opaque else ContentFormat.TEXT
        return self.preferred_format(req.ssid)

    def encode(self, fmt: int, path: Path, records: Sequence[Record]) -> bytes:
        return codec.encode(fmt, path, records, self.dm.resolve)

    def _decode(self, req: InboundRequest, base: Path) -> list[Record]:
        if req.content_format is None:
            raise BadRequest("a payload needs a Content-Format")
        if req.content_format not in DATA_FORMATS:
            raise UnsupportedContentFormat(f"content format {req.content_format} is not supported")
        return codec.decode(req.content_format, req.payload, base, self.dm.resolve)

    # -- operations -----------------------------------------------------------

    def _read(self, req: InboundRequest) -> Outcome:
        fmt = self._choose_format(req, req.path)
        records = self.dm.read(req.path)
        if req.path.level < 2:
            records = self._filter_records(req.ssid, records)
        payload = self.encode(fmt, req.path, records)
        outcome = Outcome(CONTENT, payload, fmt, records=records)
        if req.observe == 0:
            outcome.observation = Observation(req.ssid, (req.path,), _noop_emit)
        return outcome

    def _read_composite(self, req: InboundRequest) -> Outcome:
        if req.path.level != 0:
            raise MethodNotAllowed("Read-Composite is sent to the root path")
        fmt_in = req.content_format
        if fmt_in is None or fmt_in not in COMPOSITE_FORMATS:
            raise UnsupportedContentFormat("Read-Composite needs SenML or LwM2M CBOR")
        paths = codec.decode_paths(fmt_in, req.payload)
        if not paths:
            raise BadRequest("Read-Composite names no path")
        op = Operation.OBSERVE if req.observe == 0 else Operation.READ
        for path in paths:
            self._check(req.ssid, op, path)
        fmt = req.accept if req.accept is not None else fmt_in
        if fmt not in COMPOSITE_FORMATS:
            raise _not_acceptable(fmt)
        records = self._filter_records(req.ssid, self.dm.read_composite(paths))
        outcome = Outcome(CONTENT, self.encode(fmt, Path(), records), fmt, records=records)
        if req.observe == 0:
            outcome.observation = Observation(req.ssid, tuple(paths), _noop_emit, composite=True)
        return outcome

    def _discover(self, req: InboundRequest) -> Outcome:
        depth: int | None = None
        for item in req.query:
            name, _, value = item.partition("=")
            if name == "depth":
                if value not in ("0", "1", "2", "3"):
                    raise BadRequest("depth must be 0..3")
                depth = int(value)
        links = self._filter_links(req.ssid, self.dm.discover(req.path, req.ssid, depth))
        return Outcome(CONTENT, format_links(links).encode(), ContentFormat.LINK_FORMAT)

    def _write(self, req: InboundRequest, *, replace: bool) -> Outcome:
        records = self._decode(req, req.path)
        self.dm.write(req.path, records, replace=replace)
        return Outcome(CHANGED)

    def _write_attributes(self, req: InboundRequest) -> Outcome:
        if not req.query:
            raise BadRequest("Write-Attributes needs attributes")
        update = parse_query(req.query)
        numeric = self.dm.attribute_target(req.path)
        self.dm.attributes.apply(req.ssid, req.path, update, numeric=numeric)
        self.observe.attributes_changed(req.ssid)
        return Outcome(CHANGED)

    def _write_composite(self, req: InboundRequest) -> Outcome:
        if req.path.level != 0:
            raise MethodNotAllowed("Write-Composite is sent to the root path")
        if req.content_format not in COMPOSITE_FORMATS:
            raise UnsupportedContentFormat("Write-Composite needs SenML or LwM2M CBOR")
        records = self._decode(req, Path())
        for record in records:
            self._check(req.ssid, Operation.WRITE, record.path)
        self.dm.write_composite(records)
        return Outcome(CHANGED)

    async def _post(self, req: InboundRequest) -> Outcome:
        path = req.path
        if path.level == 1:
            records = self._decode(req, path) if req.payload else []
            iid = self.dm.create(path, records)
            if self.access is not None and self.dm.tree.catalog.get(ACCESS_CONTROL_OID) is not None:
                assert path.oid is not None
                self.access.add_for_created(req.ssid, path.oid, iid)
            return Outcome(CREATED, location=(str(path.oid), str(iid)))
        if path.level == 2:
            return self._write(req, replace=False)
        if path.level == 3:
            rdef = self.dm.resolve(path)
            executable = rdef is not None and bool(rdef.operations & Operations.E)
            if not executable and rdef is not None and rdef.multiple and req.content_format is not None:
                return self._write(req, replace=False)  # partial update of a multiple resource
            if req.payload and not req.payload.isascii():
                raise BadRequest("Execute arguments must be ASCII")
            args = req.payload.decode("ascii") if req.payload else None
            await self.dm.execute(path, args)  # refuses non-executables with 4.05 (or 4.04/4.01)
            return Outcome(CHANGED)
        raise MethodNotAllowed("POST is not allowed on this path")


def _operation(req: InboundRequest) -> Operation:
    """The access-controlled operation ``req`` asks for (composite ones are checked per path)."""
    method, level = req.method, req.path.level
    if method == "GET":
        if req.accept == ContentFormat.LINK_FORMAT:
            return Operation.DISCOVER
        return Operation.OBSERVE if req.observe == 0 else Operation.READ
    if method == "PUT":
        attributes_only = not req.payload and req.content_format is None
        return Operation.WRITE_ATTRIBUTES if attributes_only else Operation.WRITE
    if method == "POST":
        if level == 1:
            return Operation.CREATE
        if level == 3 and not (req.content_format is not None and req.payload):
            return Operation.EXECUTE
        return Operation.WRITE
    if method == "DELETE":
        return Operation.DELETE
    if method == "IPATCH":
        return Operation.WRITE
    return Operation.READ  # FETCH (paths checked one by one) and methods refused later


def _not_acceptable(fmt: int) -> NotAcceptable:
    return NotAcceptable(f"content format {fmt} cannot be produced")
