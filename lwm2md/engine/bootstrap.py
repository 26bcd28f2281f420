"""Bootstrap interface, client side (Core TS 1.1.1 §6.1; objects /0, /1, /2 in Appendix E).

Transport-neutral, no I/O: the CoAP edge hands the Bootstrap-Server's requests
to :meth:`BootstrapHandler.handle` (``POST /bs``, which is not an LwM2M path,
to :meth:`BootstrapHandler.finish`) and renders the :class:`Outcome` or the
raised :class:`~lwm2md.errors.Lwm2mError`, exactly as for DM requests.

What the handler serves (refusal codes in brackets):

- Bootstrap-Write, PUT on ``/oid``, ``/oid/iid`` or ``/oid/iid/rid`` of any
  object, /0 and /1 included, with no R/W operation check. Instances that do
  not exist are created (through ``make_instance``); resources in the payload
  replace their content, the others are kept. All or nothing per request.
  [4.00 bad path, payload or value; 4.15 unsupported Content-Format]
- Bootstrap-Read, GET on /1 and /2 (object or instance) only.
  [4.01 other objects; 4.00 root or deeper paths; 4.04 absent; 4.06 Accept]
- Bootstrap-Discover, GET with Accept link-format on ``/`` or ``/oid``: the
  root link carries ``lwm2m=1.1``, objects their ``ver`` when not 1.0,
  instances of /0 their ``ssid`` (not for the Bootstrap-Server account) and
  ``uri``, instances of /1 their ``ssid``. [4.00 deeper paths; 4.04 absent]
- Bootstrap-Delete, DELETE on ``/``, ``/oid`` or ``/oid/iid``: ``/`` and
  ``/oid`` delete every instance except the Bootstrap-Server account (the /0
  instance whose /0/x/1 is true) and Device (/3); naming one of those is
  4.00, as is a deeper path. Deleting what does not exist is 2.02 (CoAP
  DELETE is idempotent); an object unknown to the catalog is 4.00.
- Bootstrap-Finish, POST /bs: 2.04 and the session is committed when
  :func:`check_configuration` finds nothing wrong, else 4.06 and the client
  stays in bootstrap with what was written, so the server can fix it.

Transactionality: the first request (or :meth:`BootstrapHandler.begin`) opens
a :class:`BootstrapSession`, which snapshots /0, /1 and /2 and journals
everything else it is about to change; :meth:`BootstrapHandler.abort` (the
session timed out, the bootstrap failed) restores that state exactly, the
same instance objects with the same values, so the previous working
configuration stays in force.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lwm2md import codec
from lwm2md.codec import ContentFormat, TypeResolver
from lwm2md.codec.linkformat import Link, format_links
from lwm2md.engine.clock import Clock
from lwm2md.engine.dm import check_value
from lwm2md.engine.requests import CHANGED, CONTENT, DATA_FORMATS, DELETED, InboundRequest, Outcome
from lwm2md.errors import (
    BadRequest,
    Lwm2mError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Unauthorized,
    UnsupportedContentFormat,
)
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import Record, ResourceData, Value
from lwm2md.objects.tree import ObjectInstance, ObjectTree

LOG = logging.getLogger(__name__)

SECURITY_OID = 0
SERVER_OID = 1
ACCESS_CONTROL_OID = 2
DEVICE_OID = 3
PROVISIONING_OIDS: tuple[int, ...] = (SECURITY_OID, SERVER_OID, ACCESS_CONTROL_OID)
"""Objects a session snapshots whole at its start."""
BOOTSTRAP_READ_OIDS = frozenset({SERVER_OID, ACCESS_CONTROL_OID})

FINISH_URI_PATH: tuple[str, ...] = ("bs",)
"""URI-Path of Bootstrap-Request (client to server) and Bootstrap-Finish (server to client)."""
PACK_URI_PATH: tuple[str, ...] = ("bspack",)
"""URI-Path of the 1.2 Bootstrap-Pack-Request (GET, client to server)."""

LWM2M_VERSION = "1.1"
DEFAULT_SESSION_TIMEOUT = 300.0
"""Seconds a bootstrap session may go without a message from the Bootstrap-Server."""

SECURITY_MODE_PSK = 0
SECURITY_MODE_RPK = 1
SECURITY_MODE_CERTIFICATE = 2
SECURITY_MODE_NOSEC = 3
SECURITY_MODE_EST = 4
SECURITY_MODE_NAMES = {0: "pre-shared key", 1: "raw public key", 2: "certificate", 3: "NoSec",
                       4: "certificate with EST"}  # fmt: skip
SUPPORTED_SECURITY_MODES = frozenset({SECURITY_MODE_PSK, SECURITY_MODE_NOSEC})
"""What the client can use today (DTLS PSK and plain CoAP)."""

PLAIN_SCHEMES = frozenset({"coap", "coap+tcp"})
SECURE_SCHEMES = frozenset({"coaps", "coaps+tcp"})
SMS_SCHEME = "sms"
_BINDING_LETTERS = frozenset("UQSNT")
_PACK_FORMATS = frozenset({ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR})

InstanceMaker = Callable[[int, int], ObjectInstance]
"""``make_instance(oid, iid)``: a new, detached, empty instance for a Bootstrap-Write to create."""


class BootstrapState(enum.Enum):
    """Where the client is in the bootstrap procedure.

    The handler moves between IDLE, BOOTSTRAPPING, FINISHED and FAILED; the
    daemon's bootstrap task uses HOLD_OFF (waiting the Client Hold Off Time,
    /0/x/11) and REQUESTING (Bootstrap-Request sent, no 2.04 yet) itself.
    """

    IDLE = "idle"
    HOLD_OFF = "hold-off"
    REQUESTING = "requesting"
    BOOTSTRAPPING = "bootstrapping"
    FINISHED = "finished"
    FAILED = "failed"


# -- small readers ------------------------------------------------------------------------


def _value(inst: ObjectInstance, rid: int) -> ResourceData | None:
    if not inst.has(rid):
        return None
    try:
        return inst.read(rid)
    except Exception:
        LOG.debug("bootstrap: cannot read %s/%d", inst.path, rid, exc_info=True)
        return None


def _int(inst: ObjectInstance, rid: int) -> int | None:
    value = _value(inst, rid)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_bootstrap_account(inst: ObjectInstance) -> bool:
    """True for a /0 instance whose Bootstrap-Server resource (/0/x/1) is true."""
    return inst.oid == SECURITY_OID and _value(inst, 1) is True


def bootstrap_account(tree: ObjectTree) -> ObjectInstance | None:
    """The Bootstrap-Server account (lowest iid if several), or None."""
    return next((i for i in tree.instances(SECURITY_OID) if is_bootstrap_account(i)), None)


def hold_off_time(tree: ObjectTree) -> float:
    """Seconds to wait before a client-initiated Bootstrap-Request (Client Hold Off Time).

    /0/x/11 of the Bootstrap-Server account; 0 when absent.
    """
    inst = bootstrap_account(tree)
    value = _int(inst, 11) if inst is not None else None
    return float(value) if value is not None and value > 0 else 0.0


def bootstrap_account_timeout(tree: ObjectTree) -> float | None:
    """Bootstrap-Server Account Timeout (/0/x/12): seconds after which the client purges
    the Bootstrap-Server account (Appendix E.1); None (never) when absent or 0.

    This is the account's lifetime, not a limit on one bootstrap session (see
    :class:`SessionTimer` for that).
    """
    inst = bootstrap_account(tree)
    value = _int(inst, 12) if inst is not None else None
    return float(value) if value is not None and value > 0 else None


def bootstrap_request_query(endpoint: str, preferred_content_format: int | None = None) -> list[str]:
    """URI-Query of a Bootstrap-Request (POST /bs): ``ep=...`` and, in 1.1, ``pct=...``.

    ValueError for an empty endpoint name.
    """
    if not endpoint:
        raise ValueError("the Bootstrap-Request needs an endpoint name")
    query = [f"ep={endpoint}"]
    if preferred_content_format is not None:
        query.append(f"pct={int(preferred_content_format)}")
    return query


# -- consistency --------------------------------------------------------------------------


def _check_uri(inst: ObjectInstance, supported_modes: Collection[int]) -> list[str]:
    """Problems with the URI (/0/x/0) and its agreement with the security mode (/0/x/2)."""
    where = f"{inst.path}"
    uri = _value(inst, 0)
    if not isinstance(uri, str) or not uri:
        return [f"{where}/0 (server URI) is missing"]
    try:
        parts = urlsplit(uri)
        _ = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        return [f"{where}/0 URI {uri!r} does not parse"]
    scheme = parts.scheme.lower()
    if scheme == SMS_SCHEME:
        return [] if (parts.netloc or parts.path) else [f"{where}/0 URI {uri!r} names no number"]
    if scheme not in PLAIN_SCHEMES | SECURE_SCHEMES:
        return [f"{where}/0 URI {uri!r}: scheme must be coap, coaps or sms"]
    if not parts.hostname:
        return [f"{where}/0 URI {uri!r} names no host"]
    mode = _int(inst, 2)
    if mode is None or mode not in SECURITY_MODE_NAMES:
        return [f"{where}/2 (security mode) is missing or unknown"]
    problems: list[str] = []
    if scheme in PLAIN_SCHEMES and mode != SECURITY_MODE_NOSEC:
        problems.append(f"{where}: {scheme} URI needs security mode 3 (NoSec), not {mode}")
    elif scheme in SECURE_SCHEMES and mode == SECURITY_MODE_NOSEC:
        problems.append(f"{where}: {scheme} URI needs a security mode other than NoSec")
    elif mode not in supported_modes:
        problems.append(f"{where}: security mode {mode} ({SECURITY_MODE_NAMES[mode]}) is not supported")
    elif mode == SECURITY_MODE_PSK:
        for rid, name in ((3, "PSK identity"), (5, "PSK key")):
            data = _value(inst, rid)
            if not isinstance(data, bytes) or not data:
                problems.append(f"{where}/{rid} ({name}) is empty")
    return problems


def check_configuration(
    tree: ObjectTree, *, supported_modes: Collection[int] = SUPPORTED_SECURITY_MODES
) -> list[str]:
    """What stands in the way of a Bootstrap-Finish; empty when the configuration is usable.

    Checks: at least one LwM2M Server account (a non-bootstrap /0 instance
    whose Short Server ID /0/x/10 equals a /1 instance's /1/x/0); every /1
    instance has such a /0 instance, a positive lifetime and a binding; Short
    Server IDs are in 1..65534 and unique per object; at most one
    Bootstrap-Server account; every /0 URI parses with scheme coap(s)
    [+tcp] or sms and agrees with the security mode (coap: NoSec; coaps: not
    NoSec, one of ``supported_modes``, PSK with identity and key); every /2
    instance names its target and owner. Messages never carry key material.
    """
    problems: list[str] = []
    security: dict[int, ObjectInstance] = {}
    bootstrap_accounts = 0
    for inst in tree.instances(SECURITY_OID):
        problems.extend(_check_uri(inst, supported_modes))
        if is_bootstrap_account(inst):
            bootstrap_accounts += 1
            continue
        ssid = _int(inst, 10)
        if ssid is None or not 1 <= ssid < MAX_ID:
            problems.append(f"{inst.path}/10 (Short Server ID) is missing or not in 1..65534")
        elif ssid in security:
            problems.append(f"{inst.path}: Short Server ID {ssid} is also in {security[ssid].path}")
        else:
            security[ssid] = inst
    if bootstrap_accounts > 1:
        problems.append("more than one Bootstrap-Server account in /0")
    accounts: set[int] = set()
    for inst in tree.instances(SERVER_OID):
        ssid = _int(inst, 0)
        if ssid is None or not 1 <= ssid < MAX_ID:
            problems.append(f"{inst.path}/0 (Short Server ID) is missing or not in 1..65534")
            continue
        if ssid in accounts:
            problems.append(f"{inst.path}: Short Server ID {ssid} appears in two /1 instances")
        elif ssid not in security:
            problems.append(f"{inst.path} (server {ssid}) has no Security (/0) instance")
        else:
            accounts.add(ssid)
        lifetime = _int(inst, 1)
        if lifetime is None or lifetime <= 0:
            problems.append(f"{inst.path}/1 (lifetime) is missing or not positive")
        binding = _value(inst, 7)
        if not isinstance(binding, str) or not binding or not set(binding) <= _BINDING_LETTERS:
            problems.append(f"{inst.path}/7 (binding) is missing or not made of U, Q, S, N, T")
    if not accounts:
        problems.insert(0, "no LwM2M Server account (a /0 instance and a /1 instance with the same ssid)")
    for inst in tree.instances(ACCESS_CONTROL_OID):
        for rid, name in ((0, "Object ID"), (1, "Object Instance ID"), (3, "Access Control Owner")):
            if _int(inst, rid) is None:
                problems.append(f"{inst.path}/{rid} ({name}) is missing")
    return problems


# -- undo journal -------------------------------------------------------------------------


_ABSENT = object()


@dataclass
class _Saved:
    """How one instance slot looked before its first change.

    ``instance`` is the instance object then (None: there was none); ``values``
    the content of the saved resources (``_ABSENT``: no value).
    """

    instance: ObjectInstance | None
    values: dict[int, object] = field(default_factory=dict)
    full: bool = False  # every resource saved: resources added later are removed on restore
    unreadable: set[int] = field(default_factory=set)


class _Journal:
    """Before-images of instances, taken just before they change; restore puts them back."""

    def __init__(self, tree: ObjectTree) -> None:
        self.tree = tree
        self.saved: dict[tuple[int, int], _Saved] = {}

    def _current(self, oid: int, iid: int) -> ObjectInstance | None:
        try:
            return self.tree.instance(oid, iid)
        except NotFound:
            return None

    def save(self, oid: int, iid: int, rids: Iterable[int] | None = None) -> None:
        """Remember (oid, iid) as it is now: ``rids`` of it, or everything when None.

        Only the first look at each resource counts, so call before every change.
        """
        current = self._current(oid, iid)
        saved = self.saved.get((oid, iid))
        if saved is None:
            saved = self.saved[(oid, iid)] = _Saved(current)
        if saved.instance is None or current is not saved.instance:
            return  # created (or replaced) since: restore removes what is there now
        wanted = current.resource_ids() if rids is None else list(rids)
        for rid in wanted:
            if rid in saved.values or rid in saved.unreadable:
                continue
            if not current.has(rid):
                saved.values[rid] = _ABSENT
                continue
            try:
                data = current.read(rid)
            except NotFound:
                saved.values[rid] = _ABSENT  # an executor: no value to keep
            except Exception:
                LOG.debug("bootstrap: %s/%d unreadable, left alone on restore", current.path, rid)
                saved.unreadable.add(rid)
            else:
                saved.values[rid] = dict(data) if isinstance(data, dict) else data
        if rids is None:
            saved.full = True

    def restore(self) -> None:
        """Put every saved slot back: remove what was added, re-add what was removed, reset values."""
        with self.tree.batch():
            for (oid, iid), saved in self.saved.items():
                current = self._current(oid, iid)
                if current is not None and current is not saved.instance:
                    self.tree.remove_instance(oid, iid)
            for (oid, iid), saved in self.saved.items():
                if saved.instance is None:
                    continue
                self._put_values(saved)
                if self._current(oid, iid) is None:
                    self.tree.add_instance(saved.instance)

    @staticmethod
    def _put_values(saved: _Saved) -> None:
        inst = saved.instance
        assert inst is not None
        if saved.full:
            for rid in inst.resource_ids():
                if rid in saved.values or rid in saved.unreadable:
                    continue
                try:
                    inst.read(rid)
                except Exception:
                    continue  # an executor or reader with nothing stored
                inst.remove(rid)
                inst.changed(rid)
        for rid, old in saved.values.items():
            try:
                now: object = inst.read(rid) if inst.has(rid) else _ABSENT
            except Exception:
                now = _ABSENT
            if old is _ABSENT:
                if now is not _ABSENT:
                    inst.remove(rid)
                    inst.changed(rid)
                continue
            if now == old:
                continue
            data: ResourceData = old  # type: ignore[assignment]
            try:
                inst.write(rid, data)
            except Exception:
                LOG.warning("bootstrap: %s/%d refused its old value back; stored as it was", inst.path, rid)
                inst.set(rid, data)


class BootstrapSession:
    """One bootstrap session's undo record.

    At construction it snapshots every instance of /0, /1 and /2 (values
    included); :meth:`save` adds the before-image of anything else just
    before it changes. :meth:`rollback` restores that state exactly (the
    same instance objects, the same values, no extra /0-/2 instances);
    :meth:`commit` keeps what was written. Either closes the session.
    """

    def __init__(self, tree: ObjectTree) -> None:
        self.tree = tree
        self._journal = _Journal(tree)
        self._start: set[tuple[int, int]] = set()
        for oid in PROVISIONING_OIDS:
            for inst in tree.instances(oid):
                self._journal.save(oid, inst.iid)
                self._start.add((oid, inst.iid))
        self.open = True

    def save(self, oid: int, iid: int, rids: Iterable[int] | None = None) -> None:
        """Record the before-image of (oid, iid) (``rids`` only, or all) unless already recorded."""
        if self.open:
            self._journal.save(oid, iid, rids)

    def commit(self) -> None:
        """Keep the current configuration; the session is closed."""
        if not self.open:
            return
        self.open = False
        self._journal = _Journal(self.tree)
        LOG.info("bootstrap: configuration committed")

    def rollback(self) -> None:
        """Restore the configuration of the session's start; the session is closed."""
        if not self.open:
            return
        self.open = False
        with self.tree.batch():
            for oid in PROVISIONING_OIDS:
                for inst in self.tree.instances(oid):
                    if (oid, inst.iid) not in self._start and (oid, inst.iid) not in self._journal.saved:
                        self.tree.remove_instance(oid, inst.iid)
            self._journal.restore()
        LOG.warning("bootstrap: configuration rolled back to the one before the session")


# -- session timer ------------------------------------------------------------------------


class SessionTimer:
    """The bootstrap session's deadline on an injected clock.

    :meth:`start` (and :meth:`touch` at each message from the Bootstrap-Server)
    sets it ``timeout`` seconds ahead; :meth:`expired` says it has passed. A
    stopped timer never expires.
    """

    def __init__(self, clock: Clock, timeout: float = DEFAULT_SESSION_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError("the bootstrap session timeout must be positive")
        self.clock = clock
        self.timeout = float(timeout)
        self.deadline: float | None = None

    def start(self) -> None:
        """Run from now."""
        self.deadline = self.clock.now() + self.timeout

    touch = start

    def stop(self) -> None:
        """Stop; :meth:`expired` is False until the next start."""
        self.deadline = None

    @property
    def running(self) -> bool:
        return self.deadline is not None

    def remaining(self) -> float | None:
        """Seconds left (0 once expired), None when stopped."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock.now())

    def expired(self) -> bool:
        """True once a running timer's deadline has passed."""
        return self.deadline is not None and self.clock.now() >= self.deadline

    async def wait_expired(self) -> None:
        """Return when the timer expires (touches push that back); cancel to stop waiting."""
        while not self.expired():
            left = self.remaining()
            await self.clock.sleep(self.timeout if left is None else left)


# -- the handler --------------------------------------------------------------------------


def _default_maker(tree: ObjectTree) -> InstanceMaker:
    def make(oid: int, iid: int) -> ObjectInstance:
        definition = tree.catalog.get(oid)
        if definition is None:
            raise BadRequest(f"/{oid} is not a known object")
        return ObjectInstance(definition, iid)

    return make


class BootstrapHandler:
    """Serve the Bootstrap-Server's requests during a bootstrap session.

    ``resolve`` gives resource definitions to the codecs (default: the
    tree's catalog, so objects that have no instance yet can be written);
    ``make_instance(oid, iid)`` builds the instances a Bootstrap-Write
    creates (default: bare instances from the catalog; the daemon passes one
    that attaches the /1 handlers). ``preferred_format`` answers
    Bootstrap-Read without Accept. ``supported_modes`` are the security modes
    Finish accepts. ``preserve_objects`` are treated like Device (/3): left
    alone by Delete ``/`` and ``/oid``, 4.00 when named (a deviation from the
    TS the daemon may choose for instances it builds from its configuration;
    empty by default). ``timer`` is started when a session opens, touched by
    every request and stopped when the session closes. ``on_finished`` runs
    after a successful Finish.
    """

    def __init__(
        self,
        tree: ObjectTree,
        *,
        resolve: TypeResolver | None = None,
        make_instance: InstanceMaker | None = None,
        preferred_format: int = ContentFormat.SENML_CBOR,
        supported_modes: Collection[int] = SUPPORTED_SECURITY_MODES,
        preserve_objects: Collection[int] = (),
        timer: SessionTimer | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.tree = tree
        self.resolve: TypeResolver = resolve if resolve is not None else tree.catalog.resource
        self.make_instance = make_instance if make_instance is not None else _default_maker(tree)
        self.preferred_format = preferred_format
        self.supported_modes = frozenset(supported_modes)
        self.preserve_objects = frozenset(preserve_objects)
        self.timer = timer
        self.on_finished = on_finished
        self.state = BootstrapState.IDLE
        self.session: BootstrapSession | None = None
        self.last_problems: list[str] = []
        """What the last refused Finish (or pack) found wrong."""

    # -- session ------------------------------------------------------------

    def begin(self) -> BootstrapSession:
        """The open session, opening one (snapshot) if there is none."""
        if self.session is None or not self.session.open:
            self.session = BootstrapSession(self.tree)
            self.state = BootstrapState.BOOTSTRAPPING
            self.last_problems = []
            if self.timer is not None:
                self.timer.start()
            LOG.info("bootstrap: session started")
        return self.session

    def abort(self, reason: str = "aborted") -> None:
        """End an open session without Finish: restore the previous configuration (state FAILED)."""
        if self.session is None or not self.session.open:
            return
        LOG.warning("bootstrap: session ends without Finish (%s)", reason)
        self.session.rollback()
        self.state = BootstrapState.FAILED
        if self.timer is not None:
            self.timer.stop()

    # -- dispatch -----------------------------------------------------------

    async def handle(self, req: InboundRequest) -> Outcome:
        """Serve one Bootstrap-Server request on an LwM2M path; raises Lwm2mError on refusal.

        Opens a session when none is open (a server-initiated bootstrap
        starts with the server's first request).
        """
        self.begin()
        if self.timer is not None:
            self.timer.touch()
        method = req.method
        LOG.debug("bootstrap: %s %s", method, req.path)
        if method == "GET":
            if req.accept == ContentFormat.LINK_FORMAT:
                links = self.discover(req.path)
                return Outcome(CONTENT, format_links(links).encode(), ContentFormat.LINK_FORMAT)
            return self._read(req)
        if method == "PUT":
            return self._write(req)
        if method == "DELETE":
            self._delete(req.path)
            return Outcome(DELETED)
        raise MethodNotAllowed(f"{method} {req.path} is not a Bootstrap-Server operation")

    def finish(self) -> Outcome:
        """Bootstrap-Finish (POST /bs): commit and answer 2.04, or raise NotAcceptable (4.06).

        On 4.06 the session stays open with everything written so far;
        ``last_problems`` lists what is wrong.
        """
        session = self.begin()
        if self.timer is not None:
            self.timer.touch()
        problems = check_configuration(self.tree, supported_modes=self.supported_modes)
        if problems:
            self.last_problems = problems
            LOG.warning("bootstrap: Finish refused: %s", "; ".join(problems))
            raise NotAcceptable("inconsistent configuration: " + "; ".join(problems))
        session.commit()
        self.state = BootstrapState.FINISHED
        if self.timer is not None:
            self.timer.stop()
        LOG.info("bootstrap: finished")
        if self.on_finished is not None:
            try:
                self.on_finished()
            except Exception:
                LOG.exception("bootstrap: finish listener failed")
        return Outcome(CHANGED)

    # -- Bootstrap-Discover -------------------------------------------------

    def discover(self, path: Path) -> list[Link]:
        """Links for Bootstrap-Discover of ``/`` or ``/oid``."""
        if path.level > 1:
            raise BadRequest("Bootstrap-Discover targets / or an object")
        links: list[Link] = []
        if path.oid is None:
            links.append(Link("/", {"lwm2m": LWM2M_VERSION}))
            objects = list(self.tree.objects())
        else:
            objects = [self.tree.object(path.oid)]
        for obj in objects:
            attrs: dict[str, str | None] = {}
            if obj.definition.version != "1.0":
                attrs["ver"] = obj.definition.version
            if attrs or not obj.instances or path.oid is not None:
                links.append(Link(f"/{obj.oid}", attrs))
            for iid in sorted(obj.instances):
                links.append(Link(f"/{obj.oid}/{iid}", self._instance_attrs(obj.instances[iid])))
        return links

    @staticmethod
    def _instance_attrs(inst: ObjectInstance) -> dict[str, str | None]:
        attrs: dict[str, str | None] = {}
        if inst.oid == SECURITY_OID:
            ssid = _int(inst, 10)
            if ssid is not None and not is_bootstrap_account(inst):
                attrs["ssid"] = str(ssid)
            uri = _value(inst, 0)
            if isinstance(uri, str) and uri:
                attrs["uri"] = uri
        elif inst.oid == SERVER_OID:
            ssid = _int(inst, 0)
            if ssid is not None:
                attrs["ssid"] = str(ssid)
        return attrs

    # -- Bootstrap-Read -----------------------------------------------------

    def _read(self, req: InboundRequest) -> Outcome:
        path = req.path
        if path.oid is None or path.level > 2:
            raise BadRequest("Bootstrap-Read targets an object or an object instance")
        if path.oid not in BOOTSTRAP_READ_OIDS:
            raise Unauthorized(f"Bootstrap-Read of /{path.oid} is not allowed (only /1 and /2)")
        obj = self.tree.object(path.oid)
        if path.iid is None:
            instances = [obj.instances[iid] for iid in sorted(obj.instances)]
        else:
            instances = [self.tree.instance(path.oid, path.iid)]
        records: list[Record] = []
        for inst in instances:
            records.extend(inst.records())
        fmt = req.accept if req.accept is not None else self.preferred_format
        if fmt not in DATA_FORMATS:
            raise NotAcceptable(f"content format {fmt} cannot be produced")
        payload = codec.encode(fmt, path, records, self.resolve)
        return Outcome(CONTENT, payload, fmt, records=records)

    # -- Bootstrap-Write ----------------------------------------------------

    def _write(self, req: InboundRequest) -> Outcome:
        path = req.path
        if path.level == 0 or path.level > 3:
            raise BadRequest("Bootstrap-Write targets an object, instance or resource")
        if not req.payload and req.content_format is None:
            raise BadRequest("Bootstrap-Write needs a payload (no Write-Attributes in bootstrap)")
        if req.content_format is None:
            raise BadRequest("a payload needs a Content-Format")
        if req.content_format not in DATA_FORMATS:
            raise UnsupportedContentFormat(f"content format {req.content_format} is not supported")
        records = self._decode(req.content_format, req.payload, path)
        if not records:
            raise BadRequest("empty Bootstrap-Write")
        self._apply(records)
        return Outcome(CHANGED)

    def _decode(self, fmt: int, payload: bytes, base: Path) -> list[Record]:
        try:
            return codec.decode(fmt, payload, base, self.resolve)
        except NotFound as exc:
            raise BadRequest(str(exc)) from None

    def _plan(self, records: Sequence[Record]) -> dict[tuple[int, int], dict[int, ResourceData]]:
        """Group validated values by instance; each named resource gets exactly what is given."""
        plan: dict[tuple[int, int], dict[int, ResourceData]] = {}
        for record in records:
            rpath = record.path
            if rpath.level < 3:
                raise BadRequest(f"{rpath} is not a resource")
            assert rpath.oid is not None and rpath.iid is not None and rpath.rid is not None
            if rpath.iid == MAX_ID:
                raise BadRequest(f"{rpath}: Bootstrap-Write needs instance IDs")
            rdef = self.resolve(rpath.resource())
            if rdef is None:
                raise BadRequest(f"{rpath.resource()} is not defined")
            value: Value = check_value(rdef, rpath, record.value)
            values = plan.setdefault((rpath.oid, rpath.iid), {})
            if rdef.multiple:
                if rpath.riid is None:
                    raise BadRequest(f"{rpath} needs resource instances")
                current = values.get(rpath.rid)
                merged: dict[int, Value] = dict(current) if isinstance(current, dict) else {}
                merged[rpath.riid] = value
                values[rpath.rid] = merged
            else:
                if rpath.riid is not None:
                    raise BadRequest(f"{rpath.resource()} is single-instance")
                values[rpath.rid] = value
        for oid, iid in plan:
            definition = self.tree.catalog.get(oid)
            if definition is None:
                raise BadRequest(f"/{oid} is not a known object")
            others = [i for i in self.tree.instances(oid) if i.iid != iid]
            if not definition.multiple and others:
                raise BadRequest(f"/{oid} is single-instance and already has {others[0].path}")
        return plan

    def _apply(self, records: Sequence[Record]) -> None:
        """Write ``records`` (creating instances as needed); on failure undo this request only."""
        plan = self._plan(records)
        session = self.begin()
        undo = _Journal(self.tree)
        with self.tree.batch():
            try:
                for (oid, iid), values in plan.items():
                    session.save(oid, iid, values)
                    undo.save(oid, iid, values)
                    try:
                        inst: ObjectInstance | None = self.tree.instance(oid, iid)
                    except NotFound:
                        inst = None
                    fresh = inst is None
                    if inst is None:
                        inst = self.make_instance(oid, iid)
                        if (inst.oid, inst.iid) != (oid, iid):
                            raise ValueError(f"make_instance({oid}, {iid}) built {inst.path}")
                    for rid, data in sorted(values.items()):
                        inst.write(rid, data)
                    if fresh:
                        self.tree.add_instance(inst)
                        LOG.info("bootstrap: created %s", inst.path)
            except Exception:
                undo.restore()
                raise
        LOG.info("bootstrap: wrote %s", ", ".join(f"/{oid}/{iid}" for oid, iid in plan))

    # -- Bootstrap-Delete ---------------------------------------------------

    def _protected(self, inst: ObjectInstance) -> bool:
        return inst.oid == DEVICE_OID or inst.oid in self.preserve_objects or is_bootstrap_account(inst)

    def _delete(self, path: Path) -> None:
        if path.level > 2:
            raise BadRequest("Bootstrap-Delete targets /, an object or an object instance")
        if path.oid is None:
            targets = [inst for obj in self.tree.objects() for inst in self.tree.instances(obj.oid)]
        elif path.oid == DEVICE_OID or path.oid in self.preserve_objects:
            raise BadRequest(f"/{path.oid} cannot be deleted")
        elif not self.tree.has_object(path.oid):
            if self.tree.catalog.get(path.oid) is None:
                raise BadRequest(f"/{path.oid} is not a known object")
            targets = []
        elif path.iid is None:
            targets = self.tree.instances(path.oid)
        else:
            try:
                target = self.tree.instance(path.oid, path.iid)
            except NotFound:
                targets = []
            else:
                if is_bootstrap_account(target):
                    raise BadRequest(f"{path} is the Bootstrap-Server account")
                targets = [target]
        self._remove([inst for inst in targets if not self._protected(inst)])
        LOG.info("bootstrap: deleted %s", path)

    def _remove(self, instances: Sequence[ObjectInstance]) -> None:
        session = self.begin()
        with self.tree.batch():
            for inst in instances:
                session.save(inst.oid, inst.iid)
                self.tree.remove_instance(inst.oid, inst.iid)

    # -- Bootstrap-Pack -----------------------------------------------------

    def apply_pack(self, payload: bytes, fmt: int) -> None:
        """Apply a Bootstrap-Pack (1.2, the answer to GET /bspack), all or nothing.

        For each of /0, /1 and /2 the pack names, the existing instances go
        first (the Bootstrap-Server account stays); then every record is
        written as by Bootstrap-Write, and the Finish check runs. Success
        commits (state FINISHED, ``on_finished`` runs). On failure the
        configuration before the pack is back (state FAILED) and the error is
        raised: UnsupportedContentFormat (not SenML or LwM2M CBOR),
        BadRequest (bad pack), NotAcceptable (inconsistent result; see
        ``last_problems``).
        """
        if fmt not in _PACK_FORMATS:
            raise UnsupportedContentFormat(f"a Bootstrap-Pack cannot be in content format {fmt}")
        records = self._decode(fmt, payload, Path())
        if not records:
            raise BadRequest("empty Bootstrap-Pack")
        self.abort("a Bootstrap-Pack replaces it")
        self.begin()
        try:
            named = sorted({r.path.oid for r in records if r.path.oid in PROVISIONING_OIDS})
            for oid in named:
                assert oid is not None
                self._remove([i for i in self.tree.instances(oid) if not self._protected(i)])
            self._apply(records)
            self.finish()
        except Lwm2mError as exc:
            self.abort(f"Bootstrap-Pack refused: {exc}")
            raise


def apply_bootstrap_pack(
    tree: ObjectTree,
    payload: bytes,
    fmt: int,
    *,
    resolve: TypeResolver | None = None,
    make_instance: InstanceMaker | None = None,
    supported_modes: Collection[int] = SUPPORTED_SECURITY_MODES,
) -> None:
    """:meth:`BootstrapHandler.apply_pack` on ``tree`` with a handler of its own."""
    handler = BootstrapHandler(
        tree, resolve=resolve, make_instance=make_instance, supported_modes=supported_modes
    )
    handler.apply_pack(payload, fmt)
