"""Server-written values that survive a restart.

Values a server writes to resources of ordinary objects (an IPSO Application
Type, a Digital Input's debounce, the Device timezone) are kept in
``<state_dir>/written.json`` and written back into the tree at start. The
Security, Server and Access Control objects are provisioning state with
rules of their own (bootstrap) and are not handled here; neither are
executable or read-only resources.

The file is rewritten atomically on every successful Write; a corrupt file
is kept aside and ignored (the configuration's values apply).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from lwm2md.engine.attributes import AttributeStore
from lwm2md.engine.dm import DeviceManagement, check_resource
from lwm2md.errors import Lwm2mError
from lwm2md.model.path import Path
from lwm2md.model.types import Operations, ResourceData
from lwm2md.objects.tree import ObjectInstance, ObjectTree
from lwm2md.persist import StateFile, dump_value, load_value

LOG = logging.getLogger(__name__)

PROVISIONING_OIDS = frozenset({0, 1, 2})
FILE_NAME = "written.json"


class WrittenValues:
    """Keeps server-written resource values in a state file and restores them.

    Objects in ``skip`` are left out (data objects: :class:`StoredInstances`
    keeps their instances whole).
    """

    def __init__(self, dm: DeviceManagement, state_dir: str, *, skip: Collection[int] = ()) -> None:
        self.dm = dm
        self.tree: ObjectTree = dm.tree
        self.file = StateFile(state_dir, FILE_NAME)
        self.skip = frozenset(skip)
        self._values: dict[str, Any] = {}

    def restore(self) -> int:
        """Load the file and write every still-valid value into the tree; returns how many."""
        content = self.file.load_or_none("resource values")
        stored = content.get("values", {}) if content else {}
        restored = 0
        for text, raw in stored.items() if isinstance(stored, dict) else ():
            try:
                path = Path.parse(text)
                data = _load_data(raw)
                if not self._persistent(path):
                    raise ValueError("not a persisted resource")
                assert path.oid is not None and path.iid is not None and path.rid is not None
                rdef = self.tree.resource_def(path)
                assert rdef is not None
                self.tree.instance(path.oid, path.iid).write(path.rid, check_resource(rdef, path, data))
            except (Lwm2mError, ValueError, TypeError) as exc:
                LOG.warning("stored value for %s not restored: %s", text, exc)
                continue
            self._values[str(path)] = raw
            restored += 1
        return restored

    def attach(self) -> None:
        """Start recording server writes."""
        self.dm.written.append(self.record)

    def record(self, paths: Sequence[Path]) -> None:
        """Store the current content of every persistent resource among ``paths``."""
        changed = False
        for path in {p.resource() for p in paths if p.level >= 3}:
            if not self._persistent(path):
                continue
            assert path.oid is not None and path.iid is not None and path.rid is not None
            try:
                data = self.tree.instance(path.oid, path.iid).read(path.rid)
            except Lwm2mError:
                self._values.pop(str(path), None)
            else:
                self._values[str(path)] = _dump_data(data)
            changed = True
        if changed:
            self.file.save_or_log({"values": self._values}, "written values")

    def forget(self) -> None:
        """Drop everything stored (Factory Reset, ``lwm2md reset-state``)."""
        self._values.clear()
        self.file.remove()

    def _persistent(self, path: Path) -> bool:
        if path.level != 3 or path.oid in PROVISIONING_OIDS or path.oid in self.skip:
            return False
        rdef = self.tree.resource_def(path)
        if rdef is None or rdef.operations & Operations.E:
            return False
        return bool(rdef.operations & Operations.W)


def stored_values(inst: ObjectInstance) -> Iterator[tuple[int, ResourceData]]:
    """(rid, content) of every present resource of ``inst`` that reads without error, by rid."""
    for rid in sorted(inst.definition.resources):
        if not inst.has(rid):
            continue
        try:
            data = inst.read(rid)
        except Exception:
            continue
        yield rid, data


def _dump_data(data: ResourceData) -> Any:
    if isinstance(data, dict):
        return {"instances": {str(riid): dump_value(value) for riid, value in data.items()}}
    return {"value": dump_value(data)}


def _load_data(raw: Any) -> ResourceData:
    if isinstance(raw, dict) and set(raw) == {"value"}:
        return load_value(raw["value"])
    if isinstance(raw, dict) and set(raw) == {"instances"} and isinstance(raw["instances"], dict):
        return {int(riid): load_value(value) for riid, value in raw["instances"].items()}
    raise ValueError("malformed stored value")


REGISTRATIONS_FILE = "registrations.json"


class RegistrationStore:
    """Where each server registered us and until when, so a restart can Update instead of Register.

    Entries are keyed by short server ID and remember the server URI and the
    endpoint name they belong to; an entry for another URI or endpoint, or one
    whose lifetime has run out, is not used.
    """

    def __init__(self, state_dir: str) -> None:
        self.file = StateFile(state_dir, REGISTRATIONS_FILE)
        self._entries: dict[str, Any] = {}
        content = self.file.load_or_none("registrations")
        entries = content.get("servers") if content else None
        if isinstance(entries, dict):
            self._entries = entries

    def usable(self, ssid: int, uri: str, endpoint: str, now_wall: float, margin: float) -> list[str] | None:
        """The stored location of ``ssid`` if it still holds for ``margin`` seconds, else None."""
        entry = self._entries.get(str(ssid))
        if not isinstance(entry, dict) or entry.get("uri") != uri or entry.get("endpoint") != endpoint:
            return None
        location, expires = entry.get("location"), entry.get("expires")
        if not isinstance(location, list) or not all(isinstance(s, str) for s in location) or not location:
            return None
        if not isinstance(expires, (int, float)) or expires < now_wall + margin:
            return None
        return location

    def remember(
        self, ssid: int, uri: str, endpoint: str, location: Sequence[str], expires_wall: float
    ) -> None:
        self._entries[str(ssid)] = {"uri": uri, "endpoint": endpoint, "location": list(location),
                                    "expires": expires_wall}  # fmt: skip
        self._save()

    def forget(self, ssid: int) -> None:
        if self._entries.pop(str(ssid), None) is not None:
            self._save()

    def clear(self) -> None:
        """Forget every stored registration (Factory Reset)."""
        self._entries.clear()
        self.file.remove()

    def _save(self) -> None:
        self.file.save_or_log({"servers": self._entries}, "registrations")


ATTRIBUTES_FILE = "attributes.json"


class StoredAttributes:
    """Notification attributes servers attached (Write-Attributes), kept across restarts.

    :meth:`restore` loads them into the store; :meth:`attach` then rewrites
    the file (atomically) after every change. A corrupt file is kept aside
    and the servers start without attributes.
    """

    def __init__(self, attributes: AttributeStore, state_dir: str) -> None:
        self.attributes = attributes
        self.file = StateFile(state_dir, ATTRIBUTES_FILE)

    def restore(self) -> int:
        """Load the stored attributes; returns how many sets were restored."""
        content = self.file.load_or_none("attributes")
        if not content:
            return 0
        try:
            return self.attributes.load(content.get("servers", {}))
        except (ValueError, TypeError, Lwm2mError) as exc:
            LOG.error("ignoring stored attributes in %s: %s", self.file.path, exc)
            return 0

    def attach(self) -> None:
        """Store the attributes after every change from now on."""
        self.attributes.listeners.append(self._save)

    def forget(self) -> None:
        """Remove the file (Factory Reset, reset-state)."""
        self.file.remove()

    def _save(self) -> None:
        self.file.save_or_log({"servers": self.attributes.dump()}, "attributes")


DATA_OBJECTS_FILE = "data-objects.json"


class StoredInstances:
    """Instances servers created in data objects (objects from ``objects_dir`` no driver builds).

    :meth:`restore` recreates them with their values at start; :meth:`save`
    (after any change to those objects) rewrites the file atomically. An
    instance or value the catalog no longer accepts is skipped with a log line.
    """

    def __init__(self, tree: ObjectTree, oids: Sequence[int], state_dir: str) -> None:
        self.tree = tree
        self.oids = frozenset(oids)
        self.file = StateFile(state_dir, DATA_OBJECTS_FILE)

    def restore(self) -> int:
        """Recreate the stored instances; returns how many."""
        content = self.file.load_or_none("data object instances")
        restored = 0
        objects = content.get("objects", {}) if content else {}
        for oid_text, instances in objects.items() if isinstance(objects, dict) else ():
            for iid_text, values in instances.items() if isinstance(instances, dict) else ():
                try:
                    oid, iid = int(oid_text), int(iid_text)
                    if oid not in self.oids:
                        raise ValueError(f"/{oid} is not a data object")
                    obj = self.tree.object(oid)
                    assert obj.factory is not None
                    inst = obj.factory(iid)
                    for rid_text, raw in dict(values).items():
                        path = Path(oid, iid, int(rid_text))
                        rdef = self.tree.resource_def(path)
                        if rdef is None:
                            raise ValueError(f"{path} is not defined")
                        inst.set(int(rid_text), check_resource(rdef, path, _load_data(raw)))
                    self.tree.add_instance(inst)
                except (Lwm2mError, ValueError, TypeError) as exc:
                    LOG.warning("stored instance /%s/%s not restored: %s", oid_text, iid_text, exc)
                    continue
                restored += 1
        return restored

    def save(self) -> None:
        """Store every instance of the data objects."""
        objects: dict[str, Any] = {}
        for oid in sorted(self.oids):
            objects[str(oid)] = {
                str(inst.iid): {str(rid): _dump_data(data) for rid, data in stored_values(inst)}
                for inst in self.tree.instances(oid)
            }
        self.file.save_or_log({"objects": objects}, "data object instances")

    def forget(self) -> None:
        """Remove the file (Factory Reset, reset-state)."""
        self.file.remove()
