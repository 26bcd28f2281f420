"""Where the Security (/0), Server (/1) and Access Control (/2) instances come from.

Two sources, one place they end up:

- **factory**: the configuration file's ``[[server]]`` tables (a /0 and a /1
  instance each, same iid) and ``[bootstrap]`` (the Bootstrap-Server's /0
  instance), built by the daemon (``Client._factory_provision``);
- **provisioned**: ``<state_dir>/provisioned.json``, written after every
  Bootstrap-Finish and whenever a server changes /0-/2 afterwards (a Write
  to /1, an Access Control instance added for a Create).

Rules (:meth:`ProvisionedState.choose`): a file written by a bootstrap wins
over the configuration until ``lwm2md reset-state`` or Factory Reset removes
it. A file that only records server changes to the factory configuration
carries a fingerprint of the ``[[server]]``/``[bootstrap]`` tables it was
made from and is used only while they are unchanged (an operator who edits
the servers gets them). A file that is corrupt, of an unknown version or
describes an unusable configuration is kept aside, reported, and the
factory configuration applies: the daemon never starts half-configured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from lwm2md.config import Config
from lwm2md.engine.bootstrap import check_configuration
from lwm2md.engine.dm import check_resource
from lwm2md.errors import Lwm2mError
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import ResourceData
from lwm2md.objects.tree import ObjectInstance, ObjectTree
from lwm2md.persist import StateError, StateFile, dump_value, keep_aside, load_value
from lwm2md.state import stored_values

LOG = logging.getLogger(__name__)

FILE_NAME = "provisioned.json"
PROVISIONING_OIDS = (0, 1, 2)
SECURITY_OID = 0
Source = Literal["config", "bootstrap"]


def config_fingerprint(config: Config) -> str:
    """A digest of the configuration's server accounts (keys included, never shown)."""
    accounts = [dataclasses.astuple(server) for server in config.servers]
    bootstrap = dataclasses.astuple(config.bootstrap) if config.bootstrap else None
    return hashlib.sha256(repr((accounts, bootstrap)).encode()).hexdigest()


@dataclass
class Provisioned:
    """The stored /0-/2 instances ({oid: {iid: {rid: data}}}) and where they came from."""

    source: Source
    fingerprint: str | None
    saved_at: float
    objects: dict[int, dict[int, dict[int, ResourceData]]]


class ProvisionedState:
    """``provisioned.json``: load, choose, save and forget the provisioning objects."""

    def __init__(self, state_dir: str) -> None:
        self.file = StateFile(state_dir, FILE_NAME)

    def load(self, catalog: Catalog) -> Provisioned | None:
        """The stored provisioning, None when there is none or it is unusable (moved aside, logged)."""
        try:
            content = self.file.load()
        except StateError as exc:
            LOG.error("ignoring stored provisioning, using the configuration file: %s", exc)
            return None
        if content is None:
            return None
        try:
            return _parse(content, catalog)
        except (ValueError, TypeError, KeyError, Lwm2mError) as exc:
            self._reject(f"unusable content ({exc})")
            return None

    def choose(self, catalog: Catalog, config: Config) -> Provisioned | None:
        """The stored provisioning that applies over ``config``'s factory one, or None.

        The stored objects are checked with the Bootstrap-Finish consistency
        rules; a file that fails them is kept aside.
        """
        stored = self.load(catalog)
        if stored is None:
            return None
        if stored.source == "config" and stored.fingerprint != config_fingerprint(config):
            LOG.info("the configuration's servers changed since %s was written; using them",
                     self.file.path)  # fmt: skip
            self.forget()
            return None
        problems = check_configuration(_scratch_tree(catalog, stored))
        if problems:
            self._reject("unusable configuration: " + "; ".join(problems))
            return None
        return stored

    def save(self, tree: ObjectTree, source: Source, fingerprint: str | None) -> None:
        """Store every /0-/2 instance of ``tree`` atomically (0600); errors are logged."""
        objects: dict[str, Any] = {}
        for oid in PROVISIONING_OIDS:
            objects[str(oid)] = {
                str(inst.iid): {str(rid): _dump(data) for rid, data in stored_values(inst)}
                for inst in tree.instances(oid)
            }
        content = {"source": source, "fingerprint": fingerprint, "saved_at": time.time(), "objects": objects}
        self.file.save_or_log(content, "the provisioning")

    def forget(self) -> None:
        """Remove the file (reset-state, Factory Reset, servers changed in the configuration)."""
        self.file.remove()

    def _reject(self, reason: str) -> None:
        kept = keep_aside(self.file.path)
        where = f"; kept as {kept}" if kept else ""
        LOG.error("%s: %s%s; using the configuration file", self.file.path, reason, where)


def instances_from(catalog: Catalog, stored: Provisioned) -> list[ObjectInstance]:
    """Detached instances for everything in ``stored`` (values checked against the catalog)."""
    out: list[ObjectInstance] = []
    for oid, instances in sorted(stored.objects.items()):
        definition = catalog.get(oid)
        if definition is None:
            raise ValueError(f"object {oid} is not in the catalog")
        for iid, values in sorted(instances.items()):
            out.append(ObjectInstance(definition, iid, values))
    return out


def _scratch_tree(catalog: Catalog, stored: Provisioned) -> ObjectTree:
    tree = ObjectTree(catalog)
    for inst in instances_from(catalog, stored):
        tree.add_instance(inst)
    return tree


def _dump(data: ResourceData) -> Any:
    if isinstance(data, dict):
        return {"multi": {str(riid): dump_value(v) for riid, v in data.items()}}
    return dump_value(data)


def _load(raw: Any) -> ResourceData:
    """Inverse of :func:`_dump`."""
    if isinstance(raw, dict) and set(raw) == {"multi"}:
        return {int(riid): load_value(v) for riid, v in dict(raw["multi"]).items()}
    return load_value(raw)


def _parse(content: dict[str, Any], catalog: Catalog) -> Provisioned:
    source = content["source"]
    if source not in ("config", "bootstrap"):
        raise ValueError(f"unknown source {source!r}")
    fingerprint = content.get("fingerprint")
    objects: dict[int, dict[int, dict[int, ResourceData]]] = {}
    for oid_text, instances in dict(content["objects"]).items():
        oid = int(oid_text)
        if oid not in PROVISIONING_OIDS:
            raise ValueError(f"object {oid} is not a provisioning object")
        definition = catalog.get(oid)
        if definition is None:
            raise ValueError(f"object {oid} is not in the catalog")
        objects[oid] = {}
        for iid_text, values in dict(instances).items():
            iid = int(iid_text)
            checked: dict[int, ResourceData] = {}
            for rid_text, raw in dict(values).items():
                rid = int(rid_text)
                rdef = definition.resource(rid)
                if rdef is None:
                    raise ValueError(f"/{oid}/{iid}/{rid} is not a resource of object {oid}")
                path = Path(oid, iid, rid)
                try:
                    checked[rid] = check_resource(rdef, path, _load(raw))
                except (Lwm2mError, ValueError) as exc:
                    if oid == SECURITY_OID:  # the message may quote a key: never log it
                        raise ValueError(f"{path} holds no valid {rdef.type.value} value") from None
                    raise ValueError(str(exc)) from None
            objects[oid][iid] = checked
    return Provisioned(source, fingerprint if isinstance(fingerprint, str) else None,
                       float(content.get("saved_at", 0.0)), objects)  # fmt: skip
