"""Tests for lwm2md.engine.access: Access Control checks with one and several servers.

The ``acl_tree`` fixture is the conftest ``tree`` with these /2 instances
(servers 101 and 202; 65535 as owner means bootstrap-managed):

- /2/0: /3303/0, ACL {101: R}, owner 65535: 101 reads but cannot write, 202 sees nothing
- /2/1: /3303/65535, ACL {202: C}, owner 65535: only 202 may create /3303 instances
- /2/2: /33000/0, ACL {0: R|E}, owner 101: the default entry applies to both
- /2/3: /3/0, empty ACL, owner 101: the owner has every right but C, 202 none
"""

from __future__ import annotations

import pytest

from lwm2md.engine.access import (
    BOOTSTRAP_OWNER,
    INSTANCE_RIGHTS,
    AccessControl,
    Operation,
    Rights,
)
from lwm2md.errors import NotFound, Unauthorized
from lwm2md.model.path import Path
from lwm2md.model.types import ResourceData
from lwm2md.objects.tree import ObjectInstance, ObjectTree

A, B = 101, 202
R, W, E, D, C = Rights.R, Rights.W, Rights.E, Rights.D, Rights.C


def P(text: str) -> Path:
    return Path.parse(text)


def add_acl(tree: ObjectTree, iid: int, oid: int, target: int, acl: dict[int, int], owner: int) -> None:
    definition = tree.catalog.get(2)
    assert definition is not None
    values: dict[int, ResourceData] = {0: oid, 1: target, 3: owner}
    if acl:
        values[2] = dict(acl)
    tree.add_instance(ObjectInstance(definition, iid, values))


@pytest.fixture
def acl_tree(tree: ObjectTree) -> ObjectTree:
    add_acl(tree, 0, 3303, 0, {A: int(R)}, BOOTSTRAP_OWNER)
    add_acl(tree, 1, 3303, 65535, {B: int(C)}, BOOTSTRAP_OWNER)
    add_acl(tree, 2, 33000, 0, {0: int(R | E)}, A)
    add_acl(tree, 3, 3, 0, {}, A)
    return tree


@pytest.fixture
def ac(acl_tree: ObjectTree) -> AccessControl:
    return AccessControl(acl_tree)


def code(ac: AccessControl, ssid: int, op: Operation, path: str, server_count: int = 2) -> str:
    """ "ok" or the code check() raises."""
    try:
        ac.check(ssid, op, P(path), server_count=server_count)
    except (Unauthorized, NotFound) as exc:
        return exc.dotted_code
    return "ok"


# -- two servers ------------------------------------------------------------------------


def test_one_server_reads_but_cannot_write_the_other_sees_nothing(ac: AccessControl) -> None:
    assert [code(ac, A, op, "/3303/0/5700") for op in Operation] == [
        "ok", "4.01", "4.01", "4.01", "ok", "ok", "ok", "ok"  # create: not an instance operation
    ]  # fmt: skip
    assert code(ac, A, Operation.DELETE, "/3303/0") == "4.01"
    for op in (Operation.READ, Operation.OBSERVE, Operation.DISCOVER, Operation.WRITE_ATTRIBUTES,
               Operation.WRITE):  # fmt: skip
        assert code(ac, B, op, "/3303/0") == "4.01", op
    assert ac.visible_to(A, P("/3303/0"), server_count=2)
    assert not ac.visible_to(B, P("/3303/0"), server_count=2)
    assert not ac.visible_to(B, P("/3303/0"), op=None, server_count=2)


def test_object_level_reads_pass_and_instances_are_filtered(ac: AccessControl, acl_tree: ObjectTree) -> None:
    definition = acl_tree.catalog.get(3303)
    assert definition is not None
    acl_tree.add_instance(ObjectInstance(definition, 1, {5700: 3.0}))
    add_acl(acl_tree, 4, 3303, 1, {B: int(R)}, BOOTSTRAP_OWNER)
    assert code(ac, B, Operation.READ, "/3303") == "ok"
    assert code(ac, B, Operation.DISCOVER, "/3303") == "ok"
    shown = {ssid: [i.iid for i in acl_tree.instances(3303) if ac.visible_to(ssid, i.path, server_count=2)]
             for ssid in (A, B)}  # fmt: skip
    assert shown == {A: [0], B: [1]}


def test_create_needs_the_create_grant(ac: AccessControl) -> None:
    assert code(ac, B, Operation.CREATE, "/3303") == "ok"
    assert code(ac, A, Operation.CREATE, "/3303") == "4.01"
    assert code(ac, A, Operation.CREATE, "/33000") == "4.01"  # no /2 instance for 33000/65535


def test_creator_owns_the_new_instance(ac: AccessControl, acl_tree: ObjectTree) -> None:
    definition = acl_tree.catalog.get(3303)
    assert definition is not None
    acl_tree.add_instance(ObjectInstance(definition, 1, {5700: 3.0}))
    added = ac.add_for_created(B, 3303, 1)
    assert added.path == P("/2/4")
    assert ac.acl_instance(3303, 1) is added
    assert ac.rights(B, 3303, 1) == INSTANCE_RIGHTS
    for op in (Operation.READ, Operation.WRITE, Operation.EXECUTE, Operation.DELETE):
        assert code(ac, B, op, "/3303/1") == "ok"
    assert code(ac, A, Operation.DELETE, "/3303/1") == "4.01"
    assert code(ac, A, Operation.READ, "/3303/1") == "4.01"
    assert ac.remove_for_deleted(3303, 1) == [4]
    assert ac.acl_instance(3303, 1) is None
    assert code(ac, B, Operation.READ, "/3303/1") == "4.01"


def test_acl_values_for_a_created_instance() -> None:
    assert AccessControl.acl_for_created_instance(A, 3303, 7) == {0: 3303, 1: 7, 2: {A: 15}, 3: A}


def test_owner_has_every_right_but_create_when_no_entry_applies(ac: AccessControl) -> None:
    assert ac.rights(A, 3, 0) == R | W | E | D
    assert ac.rights(B, 3, 0) == Rights.NONE
    assert code(ac, A, Operation.EXECUTE, "/3/0/4") == "ok"
    assert code(ac, A, Operation.WRITE, "/3/0/15") == "ok"
    assert code(ac, B, Operation.READ, "/3/0/0") == "4.01"


def test_default_entry_applies_to_servers_without_their_own(ac: AccessControl) -> None:
    for ssid in (A, B):  # A is the owner, yet the default entry decides
        assert ac.rights(ssid, 33000, 0) == R | E
        assert code(ac, ssid, Operation.EXECUTE, f"/{33000}/0/5") == "ok"
        assert code(ac, ssid, Operation.WRITE, f"/{33000}/0/3") == "4.01"


def test_own_entry_wins_over_default_and_owner(acl_tree: ObjectTree) -> None:
    add_acl(acl_tree, 9, 3, 0, {A: int(R), 0: int(R | W)}, A)
    acl_tree.remove_instance(2, 3)
    ac = AccessControl(acl_tree)
    assert ac.rights(A, 3, 0) == R
    assert ac.rights(B, 3, 0) == R | W


def test_instances_without_access_control_are_out_of_reach(ac: AccessControl) -> None:
    assert code(ac, A, Operation.READ, "/1/0") == "4.01"
    assert code(ac, A, Operation.EXECUTE, "/1/0/8") == "4.01"
    assert code(ac, A, Operation.READ, "/3303/9") == "4.01"  # no instance, no grant
    assert not ac.visible_to(A, P("/1/0"), op=None, server_count=2)


def test_registration_visibility_counts_any_right(acl_tree: ObjectTree) -> None:
    add_acl(acl_tree, 7, 1, 0, {A: int(E)}, BOOTSTRAP_OWNER)
    ac = AccessControl(acl_tree)
    assert ac.visible_to(A, P("/1/0"), op=None, server_count=2)
    assert not ac.visible_to(A, P("/1/0"), server_count=2)  # no R: left out of object reads
    assert code(ac, A, Operation.EXECUTE, "/1/0/8") == "ok"


def test_unknown_object_is_not_found(ac: AccessControl) -> None:
    assert code(ac, A, Operation.READ, "/3304/0") == "4.04"
    assert code(ac, A, Operation.CREATE, "/3304") == "4.04"


def test_malformed_acl_values_grant_nothing_extra(acl_tree: ObjectTree) -> None:
    add_acl(acl_tree, 8, 33000, 1, {A: 0xFFE1, B: -1}, BOOTSTRAP_OWNER)
    acl_tree.instance(2, 8).set(3, "nobody")  # type: ignore[arg-type]
    ac = AccessControl(acl_tree)
    assert ac.rights(A, 33000, 1) == R  # reserved bits dropped
    assert ac.rights(B, 33000, 1) == Rights.NONE  # not a 16-bit value
    assert ac.rights(303, 33000, 1) == Rights.NONE


# -- the Access Control object itself ---------------------------------------------------


def test_access_control_instances_are_written_by_their_owner_only(ac: AccessControl) -> None:
    assert code(ac, A, Operation.WRITE, "/2/3/2") == "ok"  # A owns /2/3
    assert code(ac, B, Operation.WRITE, "/2/3/2") == "4.01"
    assert code(ac, A, Operation.WRITE, "/2/0") == "4.01"  # bootstrap-managed
    assert code(ac, B, Operation.WRITE, "/2/0/2") == "4.01"
    assert code(ac, A, Operation.WRITE, "/2/9") == "4.04"


def test_access_control_instances_are_readable_not_creatable_or_deletable(ac: AccessControl) -> None:
    for ssid in (A, B):
        for op in (Operation.READ, Operation.OBSERVE, Operation.DISCOVER, Operation.WRITE_ATTRIBUTES):
            assert code(ac, ssid, op, "/2/0") == "ok"
        assert code(ac, ssid, Operation.CREATE, "/2") == "4.01"
        assert code(ac, ssid, Operation.DELETE, "/2/3") == "4.01"
        assert ac.visible_to(ssid, P("/2/1"), server_count=2)


# -- single server and /0 ---------------------------------------------------------------


def test_single_server_has_every_right(ac: AccessControl) -> None:
    for op in Operation:
        for path in ("/3303/0", "/3303", "/1/0/8", "/2/0", "/3304/0"):
            assert code(ac, B, op, path, server_count=1) == "ok", (op, path)
    assert ac.visible_to(B, P("/3303/0"), server_count=1)


@pytest.mark.parametrize("count", [1, 2])
def test_security_object_is_never_reachable(ac: AccessControl, count: int) -> None:
    for op in Operation:
        assert code(ac, A, op, "/0/0", server_count=count) == "4.01"
    assert code(ac, A, Operation.READ, "/0", server_count=count) == "4.01"
    assert not ac.visible_to(A, P("/0/0"), server_count=count)
    assert not ac.allowed(A, Operation.READ, P("/0/0"), server_count=count)


def test_root_path_passes(ac: AccessControl) -> None:
    assert ac.allowed(B, Operation.READ, Path(), server_count=2)
    assert ac.visible_to(B, Path(), server_count=2)


def test_a_new_instance_replaces_a_stale_acl_for_its_iid(ac: AccessControl, acl_tree: ObjectTree) -> None:
    add_acl(acl_tree, 8, 3303, 5, {A: int(R | W | E | D)}, A)  # left from an earlier /3303/5
    added = ac.add_for_created(B, 3303, 5)
    assert ac.acl_instances_for(3303, 5) == [added.iid]
    assert ac.rights(B, 3303, 5) == INSTANCE_RIGHTS
    assert ac.rights(A, 3303, 5) == Rights.NONE


def test_a_factory_configuration_trusts_its_servers_where_no_acl_applies(acl_tree: ObjectTree) -> None:
    trusting = AccessControl(acl_tree, trust_unlisted=lambda: True)
    assert code(trusting, A, Operation.READ, "/1/0") == "ok"
    assert code(trusting, B, Operation.CREATE, "/3303") == "ok"
    assert trusting.rights(B, 3, 0) == Rights.NONE, "an ACL that exists still decides"
    assert code(trusting, A, Operation.READ, "/0/0") == "4.01"
