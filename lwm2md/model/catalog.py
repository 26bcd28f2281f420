"""The object catalog: every object definition the client knows, keyed by oid."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path as FsPath

from lwm2md.model import ddf
from lwm2md.model.builtin_objects import BUILTIN_OBJECTS
from lwm2md.model.ddf import DdfError
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef, ResourceDef

LOG = logging.getLogger(__name__)

DEFAULT_OBJECTS_DIR = "/etc/lwm2md/objects"


class Catalog:
    """A set of object definitions with at most one definition per oid.

    The first definition added for an oid wins unless a later ``add`` says
    ``replace=True``; the catalog never holds two versions of one object.
    """

    def __init__(self, definitions: Iterable[ObjectDef] = ()) -> None:
        """Start with ``definitions`` (first one per oid wins)."""
        self._objects: dict[int, ObjectDef] = {}
        for defn in definitions:
            self.add(defn)

    @classmethod
    def builtin(cls) -> Catalog:
        """A new catalog holding the built-in objects (core 0-7 and the IPSO set)."""
        return cls(BUILTIN_OBJECTS)

    def get(self, oid: int) -> ObjectDef | None:
        """The definition of ``oid``, or None when the object is unknown."""
        return self._objects.get(oid)

    def resource(self, path: Path) -> ResourceDef | None:
        """The definition of the resource ``path`` names (its riid is ignored).

        None when the path is above resource level or the object or resource is unknown.
        """
        if path.oid is None or path.rid is None:
            return None
        defn = self._objects.get(path.oid)
        return defn.resource(path.rid) if defn is not None else None

    def add(self, defn: ObjectDef, *, replace: bool = False) -> bool:
        """Add ``defn``; return whether it was stored.

        When the oid is already known the new definition is ignored (False) unless
        ``replace`` is true, in which case it supersedes the old one.
        """
        if defn.oid in self._objects and not replace:
            return False
        self._objects[defn.oid] = defn
        return True

    def load_directory(self, directory: str | FsPath = DEFAULT_OBJECTS_DIR) -> list[DdfError]:
        """Add the definitions found in ``directory``'s ``*.xml`` files; never raises.

        Objects already in the catalog are kept (logged at INFO). Each problem file is
        logged at WARNING and returned; a missing directory loads nothing and is no error.
        """
        objects, errors = ddf.load_directory(directory)
        for err in errors:
            LOG.warning("object definitions: skipping %s: %s", err.source, err.reason)
        for defn in objects:
            if self.add(defn):
                LOG.info(
                    "object definitions: loaded /%d %s (version %s) from %s",
                    defn.oid, defn.name, defn.version, directory,
                )  # fmt: skip
            else:
                current = self._objects[defn.oid]
                LOG.info(
                    "object definitions: /%d version %s from %s ignored, keeping version %s",
                    defn.oid, defn.version, directory, current.version,
                )  # fmt: skip
        return errors

    def oids(self) -> list[int]:
        """The known oids in ascending order."""
        return sorted(self._objects)

    def __contains__(self, oid: object) -> bool:
        """True if ``oid`` is an int naming a known object."""
        return isinstance(oid, int) and not isinstance(oid, bool) and oid in self._objects

    def __iter__(self) -> Iterator[ObjectDef]:
        """The definitions in ascending oid order."""
        return iter([self._objects[oid] for oid in self.oids()])

    def __len__(self) -> int:
        return len(self._objects)
