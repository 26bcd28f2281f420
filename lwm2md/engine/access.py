"""Access Control: which LwM2M Server may do what (Core TS 1.1.1 §7.3, Appendix E.3).

The rules, as implemented here:

- The Security object (/0) is out of every DM server's reach: 4.01, whatever
  the number of servers.
- With at most one LwM2M Server account (bootstrap account not counted) no
  ACL applies: that server has every right on everything but /0.
- With several servers, rights come from the Access Control object (/2):
  - Create on ``/oid`` needs the C bit of the /2 instance whose Object ID
    (/2/x/0) is ``oid`` and Object Instance ID (/2/x/1) is 65535.
  - Any other operation on ``/oid/iid[/...]`` needs its bit in the /2
    instance targeting (oid, iid): the ACL entry whose riid is the server's
    ssid, else the default entry (riid 0); when neither exists the Access
    Control Owner (/2/x/3) has every right but C and other servers none. No
    /2 instance for the target means no rights at all, except for a
    factory configuration (``trust_unlisted``): servers listed in the
    configuration file are trusted with every right on what no ACL names.
  - R covers Read, Observe, Write-Attributes and Discover; W Write; E Execute;
    D Delete; C Create.
  - The /2 instances themselves: any server may read (observe, discover)
    them; only the instance's owner may write them, and an owner of 65535
    means bootstrap-managed, so no DM server may; no DM server may create or
    delete them (the client does that for Create/Delete of the instances
    they describe).
- Object-level operations other than Create pass :meth:`AccessControl.check`;
  the caller leaves out the instances :meth:`AccessControl.visible_to`
  refuses (object Read, Discover, registration links) instead of failing.

The engine asks before every operation; this module only reads the tree.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping

from lwm2md.errors import NotFound, Unauthorized
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import ResourceData, Value
from lwm2md.objects.tree import ObjectInstance, ObjectTree

LOG = logging.getLogger(__name__)

SECURITY_OID = 0
ACCESS_CONTROL_OID = 2
BOOTSTRAP_OWNER = MAX_ID
"""Access Control Owner value of a /2 instance managed by the Bootstrap-Server only."""
CREATE_TARGET_IID = MAX_ID
"""Object Instance ID (/2/x/1) of the /2 instance that grants Create on an object."""
DEFAULT_ACL_RIID = 0

RID_OBJECT_ID = 0
RID_INSTANCE_ID = 1
RID_ACL = 2
RID_OWNER = 3


class Rights(enum.IntFlag):
    """ACL bits of /2/x/2 (Appendix E.3)."""

    NONE = 0
    R = 1
    W = 2
    E = 4
    D = 8
    C = 16


INSTANCE_RIGHTS = Rights.R | Rights.W | Rights.E | Rights.D
"""Everything that applies to an existing instance (C only means something for 65535)."""


class Operation(enum.Enum):
    """DM and Information Reporting operations subject to access control."""

    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    DELETE = "delete"
    CREATE = "create"
    DISCOVER = "discover"
    OBSERVE = "observe"
    WRITE_ATTRIBUTES = "write-attributes"


REQUIRED: Mapping[Operation, Rights] = {
    Operation.READ: Rights.R,
    Operation.OBSERVE: Rights.R,
    Operation.WRITE_ATTRIBUTES: Rights.R,
    Operation.DISCOVER: Rights.R,
    Operation.WRITE: Rights.W,
    Operation.EXECUTE: Rights.E,
    Operation.DELETE: Rights.D,
    Operation.CREATE: Rights.C,
}
"""The ACL bit each operation needs."""

_READ_LIKE = frozenset({Operation.READ, Operation.OBSERVE, Operation.WRITE_ATTRIBUTES, Operation.DISCOVER})


def _int(inst: ObjectInstance, rid: int) -> int | None:
    if not inst.has(rid):
        return None
    try:
        value = inst.read(rid)
    except Exception:  # a broken /2 instance grants nothing
        LOG.debug("access control: cannot read %s/%d", inst.path, rid, exc_info=True)
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _acl(inst: ObjectInstance) -> dict[int, Value]:
    if not inst.has(RID_ACL):
        return {}
    try:
        data = inst.read(RID_ACL)
    except Exception:
        LOG.debug("access control: cannot read %s/%d", inst.path, RID_ACL, exc_info=True)
        return {}
    return dict(data) if isinstance(data, dict) else {}


def _bits(value: Value) -> Rights:
    """The rights of one ACL entry: reserved bits dropped, anything but a 16-bit integer grants none."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        return Rights.NONE
    return Rights(value & int(INSTANCE_RIGHTS | Rights.C))


class AccessControl:
    """Access checks against the /2 instances of ``tree`` (read afresh at every call).

    ``server_count`` is the number of LwM2M Server accounts (not counting the
    Bootstrap-Server); the caller passes it because it knows which accounts
    are enabled.
    """

    def __init__(self, tree: ObjectTree, trust_unlisted: Callable[[], bool] = lambda: False) -> None:
        self.tree = tree
        self.trust_unlisted = trust_unlisted

    # -- lookups ------------------------------------------------------------

    def acl_instance(self, oid: int, iid: int) -> ObjectInstance | None:
        """The /2 instance targeting (oid, iid), lowest iid first; None when there is none."""
        for inst in self.tree.instances(ACCESS_CONTROL_OID):
            if _int(inst, RID_OBJECT_ID) == oid and _int(inst, RID_INSTANCE_ID) == iid:
                return inst
        return None

    def acl_instances_for(self, oid: int, iid: int) -> list[int]:
        """iids of every /2 instance targeting (oid, iid), ascending."""
        return [
            inst.iid
            for inst in self.tree.instances(ACCESS_CONTROL_OID)
            if _int(inst, RID_OBJECT_ID) == oid and _int(inst, RID_INSTANCE_ID) == iid
        ]

    def rights(self, ssid: int, oid: int, iid: int) -> Rights:
        """Rights of ``ssid`` on (oid, iid) from the ACL alone (multi-server rules).

        The server's own entry, else the default entry (riid 0), else every
        right but C for the Access Control Owner, else none; none when no /2
        instance targets (oid, iid). With ``iid`` 65535 this is the Create grant.
        """
        inst = self.acl_instance(oid, iid)
        if inst is None:
            if not self.trust_unlisted():
                return Rights.NONE
            return Rights.C if iid == CREATE_TARGET_IID else INSTANCE_RIGHTS
        acl = _acl(inst)
        if ssid in acl:
            return _bits(acl[ssid])
        if DEFAULT_ACL_RIID in acl:
            return _bits(acl[DEFAULT_ACL_RIID])
        if _int(inst, RID_OWNER) == ssid:
            return INSTANCE_RIGHTS
        return Rights.NONE

    # -- checks -------------------------------------------------------------

    def check(self, ssid: int, op: Operation, path: Path, *, server_count: int) -> None:
        """Return if server ``ssid`` may do ``op`` on ``path``, else raise.

        Unauthorized (4.01) when the rules in the module docstring refuse;
        NotFound (4.04) when a multi-server check needs an object that is not
        in the tree. The root path passes: composite operations check each of
        their paths. Whether the operation itself makes sense on ``path`` is
        the DM engine's business (4.05 and the like), not checked here.
        """
        if path.oid == SECURITY_OID:
            raise Unauthorized("the Security object is not accessible to servers")
        if path.oid is None or server_count <= 1:
            return
        if not self.tree.has_object(path.oid):
            raise NotFound(f"/{path.oid} does not exist")
        if path.oid == ACCESS_CONTROL_OID:
            self._check_access_control_object(ssid, op, path)
            return
        if path.level == 1:
            if op is Operation.CREATE and not self.rights(ssid, path.oid, CREATE_TARGET_IID) & Rights.C:
                raise Unauthorized(f"server {ssid} may not create instances of /{path.oid}")
            return
        assert path.iid is not None
        if op is Operation.CREATE:
            return  # not an instance-level operation: the DM engine answers 4.05
        if not self.rights(ssid, path.oid, path.iid) & REQUIRED[op]:
            raise Unauthorized(f"server {ssid} has no {op.value} right on {path}")

    def _check_access_control_object(self, ssid: int, op: Operation, path: Path) -> None:
        if op in _READ_LIKE:
            return
        if op in (Operation.CREATE, Operation.DELETE):
            raise Unauthorized("Access Control instances are created and deleted by the client")
        if path.level == 1:
            return
        assert path.oid is not None and path.iid is not None
        inst = self.tree.instance(path.oid, path.iid)
        owner = _int(inst, RID_OWNER)
        if owner is None or owner == BOOTSTRAP_OWNER or owner != ssid:
            raise Unauthorized(f"only the owner of {inst.path} may change it")

    def allowed(self, ssid: int, op: Operation, path: Path, *, server_count: int) -> bool:
        """:meth:`check` as a predicate (NotFound counts as not allowed)."""
        try:
            self.check(ssid, op, path, server_count=server_count)
        except (Unauthorized, NotFound):
            return False
        return True

    def visible_to(
        self, ssid: int, path: Path, *, server_count: int, op: Operation | None = Operation.READ
    ) -> bool:
        """Whether instance ``path`` (or anything below it) appears in an object-level answer.

        For object Read and Observe (``op`` READ), Discover (DISCOVER) and the
        registration's link list (``op`` None: any right on the instance).
        Never for /0; always with a single server.
        """
        if path.oid == SECURITY_OID:
            return False
        if path.oid is None or path.iid is None or server_count <= 1:
            return True
        if path.oid == ACCESS_CONTROL_OID:
            return op is None or op in _READ_LIKE
        rights = self.rights(ssid, path.oid, path.iid)
        if op is None:
            return bool(rights & INSTANCE_RIGHTS)
        return bool(rights & REQUIRED[op])

    # -- bookkeeping for Create and Delete ------------------------------------

    @staticmethod
    def acl_for_created_instance(ssid: int, oid: int, iid: int) -> dict[int, ResourceData]:
        """Values of the /2 instance to add when server ``ssid`` creates /oid/iid.

        The creating server becomes the Access Control Owner and gets R, W, E
        and D in its own ACL entry (C has no meaning for an instance).
        """
        return {
            RID_OBJECT_ID: oid,
            RID_INSTANCE_ID: iid,
            RID_ACL: {ssid: int(INSTANCE_RIGHTS)},
            RID_OWNER: ssid,
        }

    def add_for_created(self, ssid: int, oid: int, iid: int) -> ObjectInstance:
        """Add the /2 instance :meth:`acl_for_created_instance` describes; returns it.

        Takes the lowest free /2 iid; KeyError when the catalog has no /2.
        ACL instances left over for an earlier /oid/iid are removed first: the
        new instance's rights start from its creator alone.
        """
        stale = self.remove_for_deleted(oid, iid)
        if stale:
            LOG.info("access control: stale ACL(s) %s for %s removed", stale, Path(oid, iid))
        obj = self.tree.ensure_object(ACCESS_CONTROL_OID)
        inst = ObjectInstance(obj.definition, obj.free_iid(), self.acl_for_created_instance(ssid, oid, iid))
        self.tree.add_instance(inst)
        LOG.info("access control: %s created by server %d, ACL %s added", Path(oid, iid), ssid, inst.path)
        return inst

    def remove_for_deleted(self, oid: int, iid: int) -> list[int]:
        """Remove the /2 instances targeting a deleted /oid/iid; return their iids."""
        removed = self.acl_instances_for(oid, iid)
        for acl_iid in removed:
            self.tree.remove_instance(ACCESS_CONTROL_OID, acl_iid)
        return removed
