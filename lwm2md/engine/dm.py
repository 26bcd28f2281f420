"""Device Management operations on the object tree, checked against the catalog.

Every operation validates first and changes nothing unless the whole
request is acceptable: unknown paths give NotFound (4.04), operations the
catalog does not allow give MethodNotAllowed (4.05), bad content gives
BadRequest (4.00). The Security object (/0) is never reachable through DM
(Unauthorized, 4.01). Writes are applied inside one tree batch; when a
resource's writer refuses a value, the values already written by the same
request are put back before the error propagates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from lwm2md.codec.linkformat import Link
from lwm2md.engine.attributes import AttributeStore
from lwm2md.errors import BadRequest, Lwm2mError, MethodNotAllowed, NotFound, Unauthorized
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import (
    ObjectDef,
    ObjLnk,
    Operations,
    Record,
    ResourceData,
    ResourceDef,
    ResourceType,
    Value,
)
from lwm2md.objects.tree import ObjectInstance, ObjectTree, leaves

LOG = logging.getLogger(__name__)

SECURITY_OID = 0
NUMERIC_TYPES = (ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.FLOAT)
# Execute arguments (LwM2M 1.1 ABNF): 0='text',1,2='x'. A value is quoted with
# apostrophes and may hold printable ASCII except space, '"', "'" and backslash.
_EXEC_ARG = re.compile(r"[0-9](='[\x21\x23-\x26\x28-\x5b\x5d-\x7e]*')?")
_MISSING = object()


def check_execute_args(args: str | None) -> None:
    """Raise BadRequest unless ``args`` follows the Execute argument grammar (None/empty is fine)."""
    if not args:
        return
    for item in args.split(","):
        if not _EXEC_ARG.fullmatch(item):
            raise BadRequest("malformed Execute arguments")


def check_value(rdef: ResourceDef, path: Path, value: Value) -> Value:
    """``value`` as stored for ``rdef``'s type (an int becomes a float for Float).

    BadRequest when the Python type does not match the resource type or an
    Unsigned Integer is negative.
    """
    rtype = rdef.type
    ok: bool
    if isinstance(value, int) and not isinstance(value, bool):
        if rtype is ResourceType.FLOAT:
            try:
                return float(value)
            except OverflowError:
                raise BadRequest(f"{path}: {value!r} is out of range for a Float") from None
        ok = rtype in (ResourceType.INTEGER, ResourceType.TIME) or (
            rtype is ResourceType.UNSIGNED and value >= 0
        )
    elif rtype in (ResourceType.STRING, ResourceType.CORELNK):
        ok = isinstance(value, str)
    elif rtype is ResourceType.FLOAT:
        ok = isinstance(value, float)
    elif rtype is ResourceType.BOOLEAN:
        ok = isinstance(value, bool)
    elif rtype is ResourceType.OPAQUE:
        ok = isinstance(value, bytes)
    elif rtype is ResourceType.OBJLNK:
        ok = isinstance(value, ObjLnk)
    else:
        ok = False
    if not ok:
        # The value itself is not quoted: it may be key material (/0/x/5).
        raise BadRequest(f"{path}: a {type(value).__name__} is not a valid {rtype.value} value")
    return value


def check_resource(rdef: ResourceDef, path: Path, data: ResourceData) -> ResourceData:
    """:func:`check_value` for a resource's whole content: a value, or {riid: value} of resource instances."""
    if isinstance(data, dict):
        return {riid: check_value(rdef, path.child(riid), value) for riid, value in data.items()}
    return check_value(rdef, path, data)


class DeviceManagement:
    """The DM interface over one object tree.

    ``attributes`` supplies the per-server attributes shown by Discover and
    is cleaned up when an instance is deleted.
    """

    def __init__(self, tree: ObjectTree, attributes: AttributeStore) -> None:
        self.tree = tree
        self.attributes = attributes
        self.written: list[Callable[[Sequence[Path]], None]] = []
        """Told the resource paths a successful server Write (or Create) changed."""

    # -- lookups ----------------------------------------------------------

    def _guard(self, path: Path) -> None:
        if path.oid == SECURITY_OID:
            raise Unauthorized("the Security object is not accessible to servers")

    def _resource_def(self, inst: ObjectInstance, rid: int) -> ResourceDef:
        rdef = inst.definition.resource(rid)
        if rdef is None:
            raise NotFound(f"{inst.path}/{rid} is not defined")
        return rdef

    def resolve(self, path: Path) -> ResourceDef | None:
        """Type resolver for codecs: the definition of a resource path, if any."""
        return self.tree.resource_def(path)

    # -- Read ---------------------------------------------------------------

    def read(self, path: Path) -> list[Record]:
        """Leaf records for a Read of an object, instance, resource or resource instance.

        Object and instance reads carry only readable resources; a resource
        read of a non-readable resource is MethodNotAllowed.
        """
        self._guard(path)
        if path.level == 0:
            raise MethodNotAllowed("Read of the root needs Read-Composite")
        assert path.oid is not None
        obj = self.tree.object(path.oid)
        if path.level == 1:
            out: list[Record] = []
            for iid in sorted(obj.instances):
                out.extend(self._read_instance(obj.instances[iid]))
            return out
        assert path.iid is not None
        inst = self.tree.instance(path.oid, path.iid)
        if path.level == 2:
            return self._read_instance(inst)
        assert path.rid is not None
        rdef = self._resource_def(inst, path.rid)
        if not rdef.operations & Operations.R:
            raise MethodNotAllowed(f"{path} is not readable")
        data = inst.read(path.rid)
        if path.riid is None:
            return leaves(path, data)
        if not isinstance(data, dict) or path.riid not in data:
            raise NotFound(f"{path} does not exist")
        return [Record(path, data[path.riid])]

    def _read_instance(self, inst: ObjectInstance) -> list[Record]:
        out: list[Record] = []
        for rid in inst.resource_ids():
            rdef = inst.definition.resource(rid)
            if rdef is not None and rdef.operations & Operations.R:
                out.extend(leaves(Path(inst.oid, inst.iid, rid), inst.read(rid)))
        return out

    def read_composite(self, paths: Sequence[Path]) -> list[Record]:
        """Records for every path that exists, in request order; NotFound when none does."""
        out: list[Record] = []
        found = False
        for path in paths:
            try:
                out.extend(self.read(path))
                found = True
            except NotFound:
                LOG.debug("read-composite: %s not found", path)
        if not found:
            raise NotFound("none of the requested paths exists")
        return out

    # -- Write --------------------------------------------------------------

    def write(self, path: Path, records: Sequence[Record], *, replace: bool) -> None:
        """Write records under an instance, resource or resource-instance path.

        ``replace`` (PUT) replaces multiple resources wholly and, at instance
        level, also makes optional writable resources that are not given
        absent; otherwise (POST, partial update) only the given values change.
        A resource instance can only be replaced.
        """
        self._guard(path)
        if path.level < 2:
            raise MethodNotAllowed("Write needs an instance or deeper path")
        assert path.oid is not None and path.iid is not None
        inst = self.tree.instance(path.oid, path.iid)
        if path.rid is not None:
            self._resource_def(inst, path.rid)
        if path.level == 4 and not replace:
            raise MethodNotAllowed("partial update of a resource instance")
        plan = self._plan_writes(inst, path, records, replace=replace)
        drops: list[int] = []
        if path.level == 2 and replace:
            for rid in inst.resource_ids():
                rdef = inst.definition.resource(rid)
                if (
                    rdef is not None
                    and rid not in plan
                    and rdef.operations & Operations.W
                    and not rdef.mandatory
                ):
                    drops.append(rid)
        self._commit([(inst, plan, drops)])

    def write_composite(self, records: Sequence[Record]) -> None:
        """Write-Composite: partial updates spread over instances, all or nothing."""
        by_instance: dict[tuple[int, int], list[Record]] = {}
        for record in records:
            self._guard(record.path)
            if record.path.level < 3:
                raise BadRequest("Write-Composite needs resource paths")
            assert record.path.oid is not None and record.path.iid is not None
            by_instance.setdefault((record.path.oid, record.path.iid), []).append(record)
        if not by_instance:
            raise BadRequest("empty Write-Composite")
        changes: list[tuple[ObjectInstance, dict[int, ResourceData], list[int]]] = []
        for (oid, iid), recs in by_instance.items():
            inst = self.tree.instance(oid, iid)
            changes.append((inst, self._plan_writes(inst, Path(oid, iid), recs, replace=False), []))
        self._commit(changes)

    def _plan_writes(
        self,
        inst: ObjectInstance,
        base: Path,
        records: Iterable[Record],
        *,
        replace: bool,
    ) -> dict[int, ResourceData]:
        """Validate records against ``inst``'s definition; return each touched resource's new content."""
        plan: dict[int, ResourceData] = {}
        for record in records:
            rpath = record.path
            if not base.contains(rpath) or rpath.level < 3:
                raise BadRequest(f"{rpath} is outside {base}")
            assert rpath.rid is not None
            rdef = self._resource_def(inst, rpath.rid)
            if not rdef.operations & Operations.W:
                raise MethodNotAllowed(f"{rpath.resource()} is not writable")
            value = check_value(rdef, rpath, record.value)
            if rdef.multiple:
                if rpath.riid is None:
                    raise BadRequest(f"{rpath} needs resource instances")
                current = plan.get(rpath.rid)
                if not isinstance(current, dict):
                    if (replace and base.level < 4) or not inst.has(rpath.rid):
                        current = {}
                    else:
                        existing = inst.read(rpath.rid)
                        current = dict(existing) if isinstance(existing, dict) else {}
                current[rpath.riid] = value
                plan[rpath.rid] = current
            else:
                if rpath.riid is not None:
                    raise BadRequest(f"{rpath.resource()} is single-instance")
                plan[rpath.rid] = value
        if not plan and base.level >= 3:
            raise BadRequest("empty write")
        return plan

    def _commit(self, changes: Sequence[tuple[ObjectInstance, dict[int, ResourceData], list[int]]]) -> None:
        """Drop and write as planned; on any failure put back what was changed, then re-raise."""
        undo: list[tuple[ObjectInstance, int, object]] = []
        with self.tree.batch():
            try:
                for inst, plan, drops in changes:
                    for rid in drops:
                        undo.append((inst, rid, self._snapshot(inst, rid)))
                        inst.remove(rid)
                        if not inst.has(rid):
                            inst.changed(rid)
                    for rid, data in sorted(plan.items()):
                        old = self._snapshot(inst, rid)
                        inst.write(rid, data)
                        undo.append((inst, rid, old))
            except Exception:
                for inst, rid, old in reversed(undo):
                    self._restore(inst, rid, old)
                raise
        self._tell_written([Path(inst.oid, inst.iid, rid) for inst, rid, _ in undo])

    def _tell_written(self, paths: Sequence[Path]) -> None:
        for listener in list(self.written):
            try:
                listener(paths)
            except Exception:
                LOG.exception("write listener failed")

    @staticmethod
    def _snapshot(inst: ObjectInstance, rid: int) -> object:
        """The content of ``rid`` to restore on failure: None if absent, _MISSING if unreadable."""
        if not inst.has(rid):
            return None
        try:
            return inst.read(rid)
        except Exception:
            return _MISSING

    @staticmethod
    def _restore(inst: ObjectInstance, rid: int, old: object) -> None:
        if old is _MISSING:
            return
        try:
            if old is None:
                inst.remove(rid)
                inst.changed(rid)
            else:
                inst.write(rid, cast(ResourceData, old))
        except Exception:
            LOG.exception("%s/%d: could not restore the value after a failed write", inst.path, rid)

    # -- Execute ------------------------------------------------------------

    async def execute(self, path: Path, args: str | None) -> None:
        """Execute a resource; arguments are checked against the TS grammar first."""
        self._guard(path)
        if path.level != 3:
            raise MethodNotAllowed("Execute needs a resource path")
        assert path.oid is not None and path.iid is not None and path.rid is not None
        inst = self.tree.instance(path.oid, path.iid)
        rdef = self._resource_def(inst, path.rid)
        if not rdef.operations & Operations.E:
            raise MethodNotAllowed(f"{path} is not executable")
        if not inst.has(path.rid):
            raise NotFound(f"{path} is not present")
        check_execute_args(args)
        await inst.execute(path.rid, args)

    # -- Create / Delete ------------------------------------------------------

    def create(self, path: Path, records: Sequence[Record]) -> int:
        """Create an instance of the object at ``path``; return its iid.

        The iid comes from the payload's paths when given there (BadRequest if
        taken), else it is the lowest free one; iid 65535 in the records means
        "not given" (what decoders produce for bare resources). Every mandatory
        writable resource must end up with a value (from the payload or the
        object's factory), else BadRequest. MethodNotAllowed when the object
        has no factory.
        """
        self._guard(path)
        if path.level != 1:
            raise MethodNotAllowed("Create needs an object path")
        assert path.oid is not None
        obj = self.tree.object(path.oid)
        if obj.factory is None:
            raise MethodNotAllowed(f"{path} does not accept Create")
        for record in records:
            if record.path.oid != path.oid or record.path.level < 3:
                raise BadRequest(f"{record.path} is not a resource of {path}")
        iids = {r.path.iid for r in records}
        if len(iids) > 1:
            raise BadRequest("Create of several instances at once")
        given = iids.pop() if iids else None
        iid = obj.free_iid() if given is None or given == MAX_ID else given
        if iid in obj.instances:
            raise BadRequest(f"{path}/{iid} already exists")
        if not obj.definition.multiple and obj.instances:
            raise BadRequest(f"{path} is single-instance and already has one")
        fresh = obj.factory(iid)
        base = Path(path.oid, iid)
        plan = self._plan_writes(
            fresh,
            base,
            [Record(Path(path.oid, iid, r.path.rid, r.path.riid), r.value, r.time) for r in records],
            replace=True,
        )
        missing = [
            rdef.rid
            for rdef in obj.definition.resources.values()
            if rdef.mandatory
            and rdef.operations & Operations.W
            and rdef.rid not in plan
            and not fresh.has(rdef.rid)
        ]
        if missing:
            raise BadRequest(f"Create lacks mandatory resources {sorted(missing)}")
        for rid, data in sorted(plan.items()):
            fresh.write(rid, data)
        self.tree.add_instance(fresh)
        return iid

    def delete(self, path: Path) -> None:
        """Delete an object instance and every server's attributes below it.

        Whole objects cannot be deleted by DM servers (MethodNotAllowed), nor
        instances of objects not marked deletable.
        """
        self._guard(path)
        if path.level != 2:
            raise MethodNotAllowed("Delete needs an instance path")
        assert path.oid is not None and path.iid is not None
        obj = self.tree.object(path.oid)
        if path.iid not in obj.instances:
            raise NotFound(f"{path} does not exist")
        if not obj.deletable:
            raise MethodNotAllowed(f"instances of /{path.oid} cannot be deleted")
        self.tree.remove_instance(path.oid, path.iid)
        self.attributes.forget_below(None, path)

    # -- Discover -----------------------------------------------------------

    def discover(self, path: Path, ssid: int, depth: int | None = None) -> list[Link]:
        """Links for Discover, with the attributes ``ssid`` attached at each level (not inherited).

        ``depth`` counts levels below ``path`` (0: the target alone). Without
        it, an object or instance lists down to its resources and a resource
        lists its resource instances. Multiple resources carry ``dim``; the
        object link carries ``ver`` when it is not 1.0.
        """
        self._guard(path)
        if path.level == 0 or path.level > 3:
            raise MethodNotAllowed("Discover needs an object, instance or resource path")
        if depth is not None and depth < 0:
            raise BadRequest("depth must not be negative")
        assert path.oid is not None
        obj = self.tree.object(path.oid)
        default_level = 4 if path.level == 3 else 3
        max_level = default_level if depth is None else path.level + depth
        links: list[Link] = []
        if path.level == 1:
            attrs: dict[str, str | None] = {}
            if obj.definition.version != "1.0":
                attrs["ver"] = obj.definition.version
            attrs.update(self.attributes.attached(ssid, path).link_attrs())
            links.append(Link(str(path), attrs))
            if max_level >= 2:
                for iid in sorted(obj.instances):
                    links.extend(self._instance_links(obj.instances[iid], ssid, max_level))
        elif path.level == 2:
            assert path.iid is not None
            inst = self.tree.instance(path.oid, path.iid)
            links.extend(self._instance_links(inst, ssid, max_level))
        else:
            assert path.iid is not None and path.rid is not None
            inst = self.tree.instance(path.oid, path.iid)
            self._resource_def(inst, path.rid)
            if not inst.has(path.rid):
                raise NotFound(f"{path} is not present")
            links.extend(self._resource_links(inst, path.rid, ssid, max_level))
        return links

    def _instance_links(self, inst: ObjectInstance, ssid: int, max_level: int) -> list[Link]:
        links = [Link(str(inst.path), dict(self.attributes.attached(ssid, inst.path).link_attrs()))]
        if max_level >= 3:
            for rid in inst.resource_ids():
                if inst.definition.resource(rid) is not None:
                    links.extend(self._resource_links(inst, rid, ssid, max_level))
        return links

    def _resource_links(self, inst: ObjectInstance, rid: int, ssid: int, max_level: int) -> list[Link]:
        rpath = Path(inst.oid, inst.iid, rid)
        rdef = inst.definition.resource(rid)
        attrs: dict[str, str | None] = {}
        riids: list[int] = []
        if rdef is not None and rdef.multiple:
            try:
                data = inst.read(rid)
            except Exception:  # a faulty driver must not break Discover
                LOG.debug("discover: cannot read %s for dim", rpath, exc_info=True)
                data = {}
            riids = sorted(data) if isinstance(data, dict) else []
            attrs["dim"] = str(len(riids))
        attrs.update(self.attributes.attached(ssid, rpath).link_attrs())
        links = [Link(str(rpath), attrs)]
        if max_level >= 4:
            for riid in riids:
                ripath = rpath.child(riid)
                links.append(Link(str(ripath), dict(self.attributes.attached(ssid, ripath).link_attrs())))
        return links

    # -- helpers for Write-Attributes ---------------------------------------

    def attribute_target(self, path: Path) -> bool:
        """Check ``path`` exists for Write-Attributes; return whether it is a single numeric value.

        Single numeric values (a single-instance Integer, Unsigned Integer or
        Float resource, or one instance of such a multiple resource) are where
        gt/lt/st may attach.
        """
        self._guard(path)
        if path.level == 0:
            raise MethodNotAllowed("attributes need an object or deeper path")
        assert path.oid is not None
        self.tree.object(path.oid)
        if path.level == 1:
            return False
        assert path.iid is not None
        inst = self.tree.instance(path.oid, path.iid)
        if path.level == 2:
            return False
        assert path.rid is not None
        rdef = self._resource_def(inst, path.rid)
        if not inst.has(path.rid):
            raise NotFound(f"{path} is not present")
        numeric = rdef.type in NUMERIC_TYPES
        if path.level == 3:
            return numeric and not rdef.multiple
        try:
            data = inst.read(path.rid)
        except Lwm2mError:
            data = {}
        if not isinstance(data, dict) or path.riid not in data:
            raise NotFound(f"{path} does not exist")
        return numeric


def numeric_value(records: Sequence[Record]) -> float | None:
    """The value of a single numeric record, else None (for gt/lt/st)."""
    if len(records) != 1:
        return None
    value: Value = records[0].value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def object_link_attrs(definition: ObjectDef) -> dict[str, str | None]:
    """Link attributes describing an object in a registration payload."""
    return {"ver": definition.version} if definition.version != "1.0" else {}
