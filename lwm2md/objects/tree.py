"""Objects, instances and the tree holding them.

An :class:`ObjectInstance` holds the values of its resources and, per
resource, optional handlers: a reader (live value, e.g. free memory), a
writer (side effect, e.g. drive a pin) and an executor. The tree knows
nothing about access rights or payload formats: the engine checks every
request against the catalog before it reaches an instance.

Change flow: anything that changes a value calls
:meth:`ObjectInstance.changed`, which tells the tree's value listeners (the
observe engine, persistence). Inside :meth:`ObjectTree.batch` those calls are
collected and delivered once each when the batch ends, so listeners never see
a half-applied multi-resource change. Adding or removing instances tells the
structure listeners (registration Update).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from lwm2md.errors import MethodNotAllowed, NotFound
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import ObjectDef, Record, ResourceData, ResourceDef, Value

LOG = logging.getLogger(__name__)

Reader = Callable[[], ResourceData]
Writer = Callable[[ResourceData], None]
Executor = Callable[[str | None], Awaitable[None] | None]
ValueListener = Callable[[Path], None]
StructureListener = Callable[[], None]


class ObjectInstance:
    """One object instance: stored values plus optional per-resource handlers.

    A resource is *present* when it has a stored value, a reader or an
    executor. Reads of a resource with a reader call it every time (it may
    raise :class:`~lwm2md.errors.DriverFault`); writes with a writer call it
    and then store the value so later reads without a reader see it.
    """

    def __init__(
        self,
        definition: ObjectDef,
        iid: int,
        values: Mapping[int, ResourceData] | None = None,
    ) -> None:
        self.definition = definition
        self.iid = iid
        self._values: dict[int, ResourceData] = {}
        self._readers: dict[int, Reader] = {}
        self._writers: dict[int, Writer] = {}
        self._executors: dict[int, Executor] = {}
        self._tree: ObjectTree | None = None
        for rid, data in (values or {}).items():
            self._values[rid] = dict(data) if isinstance(data, dict) else data

    @property
    def oid(self) -> int:
        """The object ID from the definition."""
        return self.definition.oid

    @property
    def path(self) -> Path:
        """``/oid/iid``."""
        return Path(self.oid, self.iid)

    def handle(
        self,
        rid: int,
        *,
        read: Reader | None = None,
        write: Writer | None = None,
        execute: Executor | None = None,
    ) -> None:
        """Attach handlers to resource ``rid`` (None leaves a handler unset)."""
        if read is not None:
            self._readers[rid] = read
        if write is not None:
            self._writers[rid] = write
        if execute is not None:
            self._executors[rid] = execute

    def resource_ids(self) -> list[int]:
        """IDs of the present resources, ascending."""
        return sorted(set(self._values) | set(self._readers) | set(self._executors))

    def has(self, rid: int) -> bool:
        """True if ``rid`` is present (stored value, reader or executor)."""
        return rid in self._values or rid in self._readers or rid in self._executors

    def read(self, rid: int) -> ResourceData:
        """The current content of ``rid``; NotFound when absent."""
        reader = self._readers.get(rid)
        if reader is not None:
            return reader()
        try:
            data = self._values[rid]
        except KeyError:
            raise NotFound(f"{self.path}/{rid} is not present") from None
        return dict(data) if isinstance(data, dict) else data

    def write(self, rid: int, data: ResourceData) -> None:
        """Replace the content of ``rid`` (a server or bootstrap write) and notify."""
        writer = self._writers.get(rid)
        if writer is not None:
            writer(data)
        self._values[rid] = dict(data) if isinstance(data, dict) else data
        self.changed(rid)

    def write_instance(self, rid: int, riid: int, value: Value) -> None:
        """Set one resource instance of a multiple resource, keeping the others."""
        current = self._values.get(rid)
        merged: dict[int, Value] = dict(current) if isinstance(current, dict) else {}
        merged[riid] = value
        self.write(rid, merged)

    def set(self, rid: int, data: ResourceData) -> None:
        """Update a value from the device side (driver, host); notify only on change."""
        old = self._values.get(rid)
        self._values[rid] = dict(data) if isinstance(data, dict) else data
        if old != data:
            self.changed(rid)

    def remove(self, rid: int) -> None:
        """Make an optional resource absent (handlers stay); listeners are not told."""
        self._values.pop(rid, None)

    async def execute(self, rid: int, args: str | None) -> None:
        """Run the executor of ``rid``; MethodNotAllowed when it has none."""
        executor = self._executors.get(rid)
        if executor is None:
            raise MethodNotAllowed(f"{self.path}/{rid} cannot be executed")
        result = executor(args)
        if inspect.isawaitable(result):
            await result

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """The tree's :meth:`ObjectTree.batch` (does nothing while the instance is detached).

        Wrap several related updates (a sample plus its min/max) so listeners
        see them as one change.
        """
        return self._tree.batch() if self._tree is not None else contextlib.nullcontext()

    def changed(self, rid: int, riid: int | None = None) -> None:
        """Tell the tree's listeners that ``rid`` (or one of its instances) changed."""
        if self._tree is not None:
            path = Path(self.oid, self.iid, rid, riid)
            self._tree.value_changed(path)

    def records(self, rids: list[int] | None = None) -> list[Record]:
        """Leaf records for ``rids`` (default: all present resources with values)."""
        out: list[Record] = []
        for rid in rids if rids is not None else self.resource_ids():
            if rid in self._executors and rid not in self._values and rid not in self._readers:
                continue
            out.extend(leaves(Path(self.oid, self.iid, rid), self.read(rid)))
        return out


def leaves(path: Path, data: ResourceData) -> list[Record]:
    """Leaf records of a resource's content (one per resource instance if multiple)."""
    if isinstance(data, dict):
        return [Record(path.child(riid), value) for riid, value in sorted(data.items())]
    return [Record(path, data)]


InstanceFactory = Callable[[int], ObjectInstance]


class LwM2MObject:
    """An object: its definition and instances.

    ``factory`` builds a new instance for a server Create; without one,
    Create is refused with 4.05. ``deletable`` governs server Delete.
    """

    def __init__(
        self,
        definition: ObjectDef,
        *,
        factory: InstanceFactory | None = None,
        deletable: bool = False,
    ) -> None:
        self.definition = definition
        self.instances: dict[int, ObjectInstance] = {}
        self.factory = factory
        self.deletable = deletable

    @property
    def oid(self) -> int:
        """The object ID from the definition."""
        return self.definition.oid

    def free_iid(self) -> int:
        """The lowest instance ID not in use; ValueError when all of 0..65534 are taken."""
        iid = 0
        while iid in self.instances:
            iid += 1
        if iid >= MAX_ID:
            raise ValueError(f"object {self.oid} has no free instance ID")
        return iid


class ObjectTree:
    """All objects of the client, with change notification."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._objects: dict[int, LwM2MObject] = {}
        self._value_listeners: list[ValueListener] = []
        self._structure_listeners: list[StructureListener] = []
        self._batch_depth = 0
        self._held: dict[Path, None] = {}

    # -- structure -----------------------------------------------------

    def add_object(self, obj: LwM2MObject) -> LwM2MObject:
        """Register an object (replacing none); returns it."""
        if obj.oid in self._objects:
            raise ValueError(f"object {obj.oid} is already in the tree")
        self._objects[obj.oid] = obj
        self._structure_changed()
        return obj

    def ensure_object(self, oid: int, **kwargs: Any) -> LwM2MObject:
        """The object ``oid``, created from its catalog definition if absent."""
        obj = self._objects.get(oid)
        if obj is None:
            definition = self.catalog.get(oid)
            if definition is None:
                raise KeyError(f"object {oid} is not in the catalog")
            obj = self.add_object(LwM2MObject(definition, **kwargs))
        return obj

    def add_instance(self, instance: ObjectInstance) -> ObjectInstance:
        """Put an instance into its object (created from the catalog if needed)."""
        obj = self.ensure_object(instance.oid)
        if instance.iid in obj.instances:
            raise ValueError(f"instance {instance.path} already exists")
        if not obj.definition.multiple and obj.instances:
            raise ValueError(f"object {instance.oid} is single-instance")
        instance._tree = self
        obj.instances[instance.iid] = instance
        self._structure_changed()
        return instance

    def remove_instance(self, oid: int, iid: int) -> ObjectInstance:
        """Take an instance out of the tree; NotFound when absent."""
        obj = self.object(oid)
        try:
            instance = obj.instances.pop(iid)
        except KeyError:
            raise NotFound(f"/{oid}/{iid} does not exist") from None
        instance._tree = None
        self._structure_changed()
        return instance

    def object(self, oid: int) -> LwM2MObject:
        """The object ``oid``; NotFound when absent."""
        try:
            return self._objects[oid]
        except KeyError:
            raise NotFound(f"/{oid} does not exist") from None

    def instance(self, oid: int, iid: int) -> ObjectInstance:
        """The instance ``/oid/iid``; NotFound when absent."""
        try:
            return self.object(oid).instances[iid]
        except KeyError:
            raise NotFound(f"/{oid}/{iid} does not exist") from None

    def has_object(self, oid: int) -> bool:
        """True if object ``oid`` is in the tree."""
        return oid in self._objects

    def objects(self) -> Iterator[LwM2MObject]:
        """Objects in ascending oid order."""
        for oid in sorted(self._objects):
            yield self._objects[oid]

    def instances(self, oid: int) -> list[ObjectInstance]:
        """Instances of ``oid`` in ascending iid order (empty when absent)."""
        obj = self._objects.get(oid)
        if obj is None:
            return []
        return [obj.instances[iid] for iid in sorted(obj.instances)]

    def resource_def(self, path: Path) -> ResourceDef | None:
        """Catalog definition of the resource at ``path`` (oid and rid used)."""
        obj = self._objects.get(path.oid) if path.oid is not None else None
        if obj is None or path.rid is None:
            return None
        return obj.definition.resource(path.rid)

    # -- listeners -----------------------------------------------------

    def on_value_change(self, listener: ValueListener) -> None:
        """Call ``listener(path)`` after a value at ``path`` changed."""
        self._value_listeners.append(listener)

    def on_structure_change(self, listener: StructureListener) -> None:
        """Call ``listener()`` after an object or instance was added or removed."""
        self._structure_listeners.append(listener)

    def value_changed(self, path: Path) -> None:
        """Tell value listeners (after the batch, inside one); a failing listener is only logged."""
        if self._batch_depth:
            self._held[path] = None
            return
        self._deliver(path)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold value-change notifications until the outermost batch ends.

        Each changed path is then delivered once, in first-change order, even
        when the body raised.
        """
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if not self._batch_depth:
                held, self._held = list(self._held), {}
                for path in held:
                    self._deliver(path)

    def _deliver(self, path: Path) -> None:
        for listener in list(self._value_listeners):
            try:
                listener(path)
            except Exception:
                LOG.exception("value listener failed for %s", path)

    def _structure_changed(self) -> None:
        for listener in list(self._structure_listeners):
            try:
                listener()
            except Exception:
                LOG.exception("structure listener failed")
