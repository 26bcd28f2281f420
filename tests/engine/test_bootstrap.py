"""Tests for lwm2md.engine.bootstrap: the client side of the Bootstrap interface.

The ``bs_tree`` fixture is the conftest ``tree`` (/0/0 and /1/0 for server
101 over coap NoSec, /3/0, /3303/0, /33000/0) plus the Bootstrap-Server
account /0/1. Requests carry ssid 0, which the handler ignores. Test names
carry the OMA interoperability test IDs where one applies (LightweightM2M-1.1-int-N).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.codec.linkformat import format_links
from lwm2md.engine.bootstrap import (
    DEFAULT_SESSION_TIMEOUT,
    FINISH_URI_PATH,
    BootstrapHandler,
    BootstrapSession,
    BootstrapState,
    SessionTimer,
    apply_bootstrap_pack,
    bootstrap_account,
    bootstrap_account_timeout,
    bootstrap_request_query,
    check_configuration,
    hold_off_time,
)
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.requests import InboundRequest, Outcome
from lwm2md.errors import (
    BadRequest,
    Lwm2mError,
    NotAcceptable,
    UnsupportedContentFormat,
)
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import Record, ResourceData, Value
from lwm2md.objects.tree import ObjectInstance, ObjectTree

SENML_CBOR = ContentFormat.SENML_CBOR
BS_URI = "coap://bs.example.net:5683"
Snapshot = dict[tuple[int, int], tuple[int, list[Record]]]


def P(text: str) -> Path:
    return Path.parse(text)


def rec(path: str, value: Value) -> Record:
    return Record(P(path), value)


@pytest.fixture
def bs_tree(tree: ObjectTree) -> ObjectTree:
    definition = tree.catalog.get(0)
    assert definition is not None
    tree.add_instance(
        ObjectInstance(definition, 1, {0: BS_URI, 1: True, 2: 3, 3: b"", 4: b"", 5: b"", 11: 5, 12: 3600})
    )
    return tree


@pytest.fixture
def handler(bs_tree: ObjectTree) -> BootstrapHandler:
    return BootstrapHandler(bs_tree)


def request(
    handler: BootstrapHandler,
    method: str,
    path: str,
    payload: bytes = b"",
    content_format: int | None = None,
    accept: int | None = None,
) -> Outcome:
    req = InboundRequest(0, method, P(path), (), payload, content_format, accept)
    return asyncio.run(handler.handle(req))


def refused(handler: BootstrapHandler, method: str, path: str, **kwargs: object) -> str:
    """The response code of a request the handler refuses."""
    with pytest.raises(Lwm2mError) as info:
        request(handler, method, path, **kwargs)  # type: ignore[arg-type]
    return info.value.dotted_code


def encode(tree: ObjectTree, fmt: int, base: str, records: list[Record]) -> bytes:
    return codec.encode(fmt, P(base), records, tree.catalog.resource)


def write(handler: BootstrapHandler, base: str, records: list[Record], fmt: int = SENML_CBOR) -> Outcome:
    return request(handler, "PUT", base, encode(handler.tree, fmt, base, records), fmt)


def security_records(iid: int, ssid: int, uri: str, mode: int = 3, identity: bytes = b"",
                     key: bytes = b"") -> list[Record]:  # fmt: skip
    base = f"/0/{iid}"
    return [rec(f"{base}/0", uri), rec(f"{base}/1", False), rec(f"{base}/2", mode),
            rec(f"{base}/3", identity), rec(f"{base}/4", b""), rec(f"{base}/5", key),
            rec(f"{base}/10", ssid)]  # fmt: skip


def server_records(iid: int, ssid: int, lifetime: int = 120, binding: str = "U") -> list[Record]:
    base = f"/1/{iid}"
    return [rec(f"{base}/0", ssid), rec(f"{base}/1", lifetime), rec(f"{base}/6", True),
            rec(f"{base}/7", binding)]  # fmt: skip


def snapshot(tree: ObjectTree) -> Snapshot:
    """Every instance's identity and readable values."""
    return {(obj.oid, inst.iid): (id(inst), inst.records()) for obj in tree.objects()
            for inst in tree.instances(obj.oid)}  # fmt: skip


def values(tree: ObjectTree, oid: int, iid: int) -> dict[int, Value]:
    """rid -> value of an instance with single-instance resources only."""
    return {r.path.rid: r.value for r in tree.instance(oid, iid).records() if r.path.rid is not None}


# -- Bootstrap-Write ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.TLV, ContentFormat.LWM2M_CBOR]
)
def test_write_creates_security_and_server_instances(handler: BootstrapHandler, fmt: int) -> None:
    tree = handler.tree
    psk = security_records(5, 202, "coaps://dm.example.net", 0, b"gw-1", b"\x01\x02\x03")
    assert write(handler, "/0/5", psk, fmt).code == 0x44
    assert write(handler, "/1/5", server_records(5, 202), fmt).code == 0x44
    assert tree.instance(0, 5).read(5) == b"\x01\x02\x03"
    assert tree.instance(0, 5).read(10) == 202
    assert values(tree, 1, 5) == {0: 202, 1: 120, 6: True, 7: "U"}
    assert handler.state is BootstrapState.BOOTSTRAPPING


def test_write_at_object_level_carries_several_instances(handler: BootstrapHandler) -> None:
    records = security_records(5, 202, "coap://a.example") + security_records(6, 203, "coap://b.example")
    assert write(handler, "/0", records, ContentFormat.TLV).code == 0x44
    assert [i.iid for i in handler.tree.instances(0)] == [0, 1, 5, 6]
    assert handler.tree.instance(0, 6).read(0) == "coap://b.example"


def test_write_ignores_operations_and_keeps_unnamed_resources(handler: BootstrapHandler) -> None:
    # /1/x/0 (Short Server ID) and /3/0/0 (Manufacturer) are read-only for DM servers
    assert write(handler, "/1/0/0", [rec("/1/0/0", 7)]).code == 0x44
    out = request(handler, "PUT", "/3/0/0", b"Other", ContentFormat.TEXT)
    assert out.code == 0x44
    tree = handler.tree
    assert tree.instance(1, 0).read(0) == 7
    assert tree.instance(1, 0).read(1) == 300  # not in the payload: kept
    assert tree.instance(3, 0).read(0) == "Other"


def test_write_replaces_a_multiple_resource_wholly(handler: BootstrapHandler) -> None:
    write(handler, "/0/5", security_records(5, 202, "coaps://x.example", 0, b"id", b"k"))
    write(handler, "/0/5/16", [rec("/0/5/16/0", 49320), rec("/0/5/16/1", 49321)])
    write(handler, "/0/5/16", [rec("/0/5/16/3", 168)])
    assert handler.tree.instance(0, 5).read(16) == {3: 168}


def test_write_uses_the_instance_factory(bs_tree: ObjectTree) -> None:
    made: list[tuple[int, int]] = []
    definition = bs_tree.catalog.get(1)
    assert definition is not None

    def make(oid: int, iid: int) -> ObjectInstance:
        made.append((oid, iid))
        inst = ObjectInstance(definition, iid)
        inst.handle(1, write=lambda data: _positive(data))
        return inst

    handler = BootstrapHandler(bs_tree, make_instance=make)
    write(handler, "/1/4", server_records(4, 9))
    assert made == [(1, 4)]
    with pytest.raises(BadRequest):
        write(handler, "/1/6", server_records(6, 10, lifetime=-1))
    assert made == [(1, 4), (1, 6)]
    assert not bs_tree.has_object(1) or 6 not in bs_tree.object(1).instances


def _positive(data: ResourceData) -> None:
    if not isinstance(data, int) or data <= 0:
        raise BadRequest("lifetime must be positive")


def test_write_is_all_or_nothing(handler: BootstrapHandler) -> None:
    tree = handler.tree

    def only_u(data: ResourceData) -> None:
        if data != "U":
            raise BadRequest("binding not supported")

    tree.instance(1, 0).handle(7, write=only_u)
    before = snapshot(tree)
    # /1/5 is created and /1/0's lifetime changed before /1/0's binding is refused
    records = server_records(5, 202) + server_records(0, 101, lifetime=60, binding="UQ")
    assert refused(handler, "PUT", "/1", payload=encode(tree, SENML_CBOR, "/1", records),
                   content_format=SENML_CBOR) == "4.00"  # fmt: skip
    assert snapshot(tree) == before
    assert tree.instance(1, 0).read(1) == 300
    assert handler.session is not None and handler.session.open  # still in bootstrap


@pytest.mark.parametrize(
    ("path", "payload", "fmt", "code"),
    [
        ("/", b"[]", SENML_CBOR, "4.00"),  # root
        ("/0/5/16/0", b"1", ContentFormat.TEXT, "4.00"),  # resource instance
        ("/1/0/1", b"60", None, "4.00"),  # no Content-Format
        ("/1/0", b"", None, "4.00"),  # Write-Attributes has no place in bootstrap
        ("/1/0/1", b"60", 50, "4.15"),  # application/json
        ("/1/0/99", b"60", ContentFormat.TEXT, "4.00"),  # unknown resource
        ("/1/0/1", b"soon", ContentFormat.TEXT, "4.00"),  # not an integer
        ("/60000/0/1", b"1", ContentFormat.TEXT, "4.00"),  # unknown object
        ("/3/1/0", b"X", ContentFormat.TEXT, "4.00"),  # Device is single-instance
    ],
)
def test_write_refusals(
    handler: BootstrapHandler, path: str, payload: bytes, fmt: int | None, code: str
) -> None:
    before = snapshot(handler.tree)
    assert refused(handler, "PUT", path, payload=payload, content_format=fmt) == code
    assert snapshot(handler.tree) == before


def test_write_without_instance_ids_is_refused(handler: BootstrapHandler) -> None:
    tlv = codec.encode(ContentFormat.TLV, P("/1/0"), server_records(0, 5), handler.tree.catalog.resource)
    # the same resources bare under the object: a Create-style payload with no instance id
    assert refused(handler, "PUT", "/1", payload=tlv, content_format=ContentFormat.TLV) == "4.00"


# -- Bootstrap-Read (LightweightM2M-1.1-int-8) --------------------------------------------


def test_int_8_bootstrap_read_of_server_object(handler: BootstrapHandler) -> None:
    out = request(handler, "GET", "/1")
    assert (out.code, out.content_format) == (0x45, SENML_CBOR)
    decoded = codec.decode(SENML_CBOR, out.payload, P("/1"), handler.tree.catalog.resource)
    assert decoded == [rec("/1/0/0", 101), rec("/1/0/1", 300), rec("/1/0/6", False), rec("/1/0/7", "U")]
    out = request(handler, "GET", "/1/0", accept=ContentFormat.TLV)
    assert out.content_format == ContentFormat.TLV
    assert codec.decode(ContentFormat.TLV, out.payload, P("/1/0"), handler.tree.catalog.resource) == decoded


def test_bootstrap_read_of_access_control(handler: BootstrapHandler) -> None:
    write(handler, "/2/0", [rec("/2/0/0", 3303), rec("/2/0/1", 0), rec("/2/0/2/101", 1), rec("/2/0/3", 101)])
    out = request(handler, "GET", "/2/0", accept=ContentFormat.SENML_JSON)
    assert out.records == [rec("/2/0/0", 3303), rec("/2/0/1", 0), rec("/2/0/2/101", 1), rec("/2/0/3", 101)]


@pytest.mark.parametrize(
    ("path", "accept", "code"),
    [
        ("/0", None, "4.01"),
        ("/0/1", None, "4.01"),
        ("/3/0", None, "4.01"),
        ("/3303", None, "4.01"),
        ("/", None, "4.00"),
        ("/1/0/1", None, "4.00"),
        ("/1/9", None, "4.04"),
        ("/1/0", 9999, "4.06"),
        ("/1/0", ContentFormat.TEXT, "4.06"),  # several values in a single-value format
    ],
)
def test_bootstrap_read_refusals(handler: BootstrapHandler, path: str, accept: int | None, code: str) -> None:
    assert refused(handler, "GET", path, accept=accept) == code


# -- Bootstrap-Discover -------------------------------------------------------------------


def test_bootstrap_discover_root(handler: BootstrapHandler) -> None:
    out = request(handler, "GET", "/", accept=ContentFormat.LINK_FORMAT)
    assert out.content_format == ContentFormat.LINK_FORMAT
    assert out.payload.decode() == (
        '</>;lwm2m=1.1,</0>;ver=1.2,</0/0>;ssid=101;uri="coap://server",'
        f'</0/1>;uri="{BS_URI}",</1>;ver=1.2,</1/0>;ssid=101,</3>;ver=1.2,</3/0>,'
        "</3303>;ver=1.1,</3303/0>,</33000/0>"
    )


def test_bootstrap_discover_object(handler: BootstrapHandler) -> None:
    links = handler.discover(P("/1"))
    assert format_links(links) == "</1>;ver=1.2,</1/0>;ssid=101"
    out = request(handler, "GET", "/33000", accept=ContentFormat.LINK_FORMAT)
    assert out.payload == b"</33000>,</33000/0>"


def test_bootstrap_discover_lists_empty_objects(handler: BootstrapHandler) -> None:
    handler.tree.ensure_object(6)  # Location 1.0, no instance
    handler.tree.ensure_object(2)  # Access Control 1.1, no instance
    targets = [format_links([link]) for link in handler.discover(Path())]
    assert "</6>" in targets and "</2>;ver=1.1" in targets
    assert format_links(handler.discover(P("/6"))) == "</6>"


@pytest.mark.parametrize(("path", "code"), [("/1/0", "4.00"), ("/1/0/1", "4.00"), ("/60000", "4.04")])
def test_bootstrap_discover_refusals(handler: BootstrapHandler, path: str, code: str) -> None:
    assert refused(handler, "GET", path, accept=ContentFormat.LINK_FORMAT) == code


# -- Bootstrap-Delete (LightweightM2M-1.1-int-4) --------------------------------------------


def test_int_4_delete_root_keeps_bootstrap_account_and_device(handler: BootstrapHandler) -> None:
    tree = handler.tree
    device = tree.instance(3, 0)
    bs = tree.instance(0, 1)
    write(handler, "/2/0", [rec("/2/0/0", 3303), rec("/2/0/1", 0), rec("/2/0/3", 101)])
    assert request(handler, "DELETE", "/").code == 0x42
    remaining = {(obj.oid, inst.iid) for obj in tree.objects() for inst in tree.instances(obj.oid)}
    assert remaining == {(0, 1), (3, 0)}
    assert tree.instance(3, 0) is device and tree.instance(0, 1) is bs
    assert bootstrap_account(tree) is bs


def test_delete_object_keeps_bootstrap_account(handler: BootstrapHandler) -> None:
    assert request(handler, "DELETE", "/0").code == 0x42
    assert [i.iid for i in handler.tree.instances(0)] == [1]
    assert request(handler, "DELETE", "/1").code == 0x42
    assert handler.tree.instances(1) == []
    assert request(handler, "DELETE", "/3303/0").code == 0x42
    assert handler.tree.instances(3303) == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/0/1", "4.00"),  # the Bootstrap-Server account
        ("/3", "4.00"),
        ("/3/0", "4.00"),
        ("/1/0/1", "4.00"),
        ("/60000", "4.00"),  # not in the catalog
    ],
)
def test_delete_refusals(handler: BootstrapHandler, path: str, code: str) -> None:
    before = snapshot(handler.tree)
    assert refused(handler, "DELETE", path) == code
    assert snapshot(handler.tree) == before


def test_delete_of_absent_things_is_deleted(handler: BootstrapHandler) -> None:
    assert request(handler, "DELETE", "/3303/7").code == 0x42
    assert request(handler, "DELETE", "/2").code == 0x42  # in the catalog, not in the tree
    assert request(handler, "DELETE", "/2/4").code == 0x42


def test_preserved_objects_survive_delete_root(bs_tree: ObjectTree) -> None:
    handler = BootstrapHandler(bs_tree, preserve_objects={3303})
    request(handler, "DELETE", "/")
    assert [i.iid for i in bs_tree.instances(3303)] == [0]
    assert bs_tree.instances(33000) == []
    assert refused(handler, "DELETE", "/3303/0") == "4.00"


def test_other_methods_are_not_bootstrap_operations(handler: BootstrapHandler) -> None:
    assert refused(handler, "POST", "/1/0/8") == "4.05"
    assert refused(handler, "POST", "/3303") == "4.05"
    assert refused(handler, "FETCH", "/") == "4.05"
    assert refused(handler, "IPATCH", "/") == "4.05"


# -- Bootstrap-Finish (LightweightM2M-1.1-int-9) --------------------------------------------


def test_finish_commits_a_consistent_configuration(bs_tree: ObjectTree) -> None:
    finished: list[str] = []
    handler = BootstrapHandler(bs_tree, on_finished=lambda: finished.append("done"))
    request(handler, "DELETE", "/")
    write(handler, "/0/2", security_records(2, 7, "coaps://dm.example.net:5684", 0, b"gw", b"secret"))
    write(handler, "/1/0", server_records(0, 7))
    assert handler.finish().code == 0x44
    assert handler.state is BootstrapState.FINISHED and finished == ["done"]
    assert handler.session is not None and not handler.session.open
    handler.abort("too late")  # nothing to roll back once committed
    assert bs_tree.instance(0, 2).read(10) == 7 and handler.state is BootstrapState.FINISHED


def test_int_9_finish_without_server_account_is_not_acceptable_and_stays(handler: BootstrapHandler) -> None:
    request(handler, "DELETE", "/")
    with pytest.raises(NotAcceptable) as info:
        handler.finish()
    assert "no LwM2M Server account" in str(info.value)
    assert handler.state is BootstrapState.BOOTSTRAPPING and handler.session is not None
    assert handler.session.open and handler.last_problems
    # the server fixes it within the same session; nothing written so far is lost
    write(handler, "/0/3", security_records(3, 9, "coap://dm.example.net"))
    with pytest.raises(NotAcceptable):
        handler.finish()  # still no /1 for server 9
    assert handler.tree.instance(0, 3).read(10) == 9
    write(handler, "/1/3", server_records(3, 9))
    assert handler.finish().code == 0x44


def test_finish_with_server_but_no_security_is_not_acceptable(handler: BootstrapHandler) -> None:
    write(handler, "/1/4", server_records(4, 55))
    with pytest.raises(NotAcceptable) as info:
        handler.finish()
    assert "/1/4 (server 55) has no Security (/0) instance" in str(info.value)


def test_finish_without_changes_is_accepted(handler: BootstrapHandler) -> None:
    assert handler.finish().code == 0x44
    assert handler.state is BootstrapState.FINISHED


SecurityEdit = Callable[[ObjectInstance], None]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda i: i.set(2, 0), "coap URI needs security mode 3"),
        (lambda i: (i.set(0, "coaps://dm.example"), i.set(2, 3)), "needs a security mode other than NoSec"),
        (lambda i: (i.set(0, "coaps://x"), i.set(2, 0), i.set(3, b"id")), "/0/0/5 (PSK key) is empty"),
        (lambda i: (i.set(0, "coaps://x"), i.set(2, 1)), "security mode 1 (raw public key) is not supported"),
        (lambda i: i.set(0, "http://dm.example"), "scheme must be coap, coaps or sms"),
        (lambda i: i.set(0, "coap://dm.example:99999"), "does not parse"),
        (lambda i: i.set(0, "coap:///nohost"), "names no host"),
        (lambda i: i.remove(0), "/0/0/0 (server URI) is missing"),
        (lambda i: i.set(2, 9), "security mode) is missing or unknown"),
        (lambda i: i.set(10, 0), "not in 1..65534"),
    ],
)
def test_consistency_problems(bs_tree: ObjectTree, edit: SecurityEdit, problem: str) -> None:
    assert check_configuration(bs_tree) == []
    edit(bs_tree.instance(0, 0))
    found = check_configuration(bs_tree)
    assert any(problem in text for text in found), found


def test_consistency_of_server_instances(bs_tree: ObjectTree) -> None:
    server = bs_tree.instance(1, 0)
    server.set(1, 0)
    server.set(7, "X")
    found = check_configuration(bs_tree)
    assert "/1/0/1 (lifetime) is missing or not positive" in found
    assert "/1/0/7 (binding) is missing or not made of U, Q, S, N, T" in found
    definition = bs_tree.catalog.get(1)
    assert definition is not None
    bs_tree.add_instance(ObjectInstance(definition, 1, {0: 101, 1: 60, 7: "U"}))
    assert "/1/1: Short Server ID 101 appears in two /1 instances" in check_configuration(bs_tree)


def test_consistency_accepts_psk_and_sms(bs_tree: ObjectTree) -> None:
    sec = bs_tree.instance(0, 0)
    sec.set(0, "coaps://[2001:db8::1]:5684")
    sec.set(2, 0)
    sec.set(3, b"gw-1")
    sec.set(5, b"\x00" * 16)
    assert check_configuration(bs_tree) == []
    sec.set(0, "sms://+491701234567")
    assert check_configuration(bs_tree) == []
    assert check_configuration(bs_tree, supported_modes={3}) == []  # sms: no DTLS mode applies


def test_consistency_of_access_control_and_bootstrap_accounts(bs_tree: ObjectTree) -> None:
    acl = bs_tree.catalog.get(2)
    sec = bs_tree.catalog.get(0)
    assert acl is not None and sec is not None
    bs_tree.add_instance(ObjectInstance(acl, 0, {0: 3303, 1: 0}))
    bs_tree.add_instance(ObjectInstance(sec, 9, {0: "coap://bs2.example", 1: True, 2: 3}))
    found = check_configuration(bs_tree)
    assert "/2/0/3 (Access Control Owner) is missing" in found
    assert "more than one Bootstrap-Server account in /0" in found


# -- transactionality ---------------------------------------------------------------------


def test_rollback_restores_exactly(handler: BootstrapHandler) -> None:
    tree = handler.tree
    structure: list[str] = []
    tree.on_structure_change(lambda: structure.append("changed"))
    before = snapshot(tree)
    request(handler, "DELETE", "/")
    write(handler, "/0/5", security_records(5, 202, "coaps://x.example", 0, b"id", b"key"))
    write(handler, "/1/5", server_records(5, 202))
    write(handler, "/2/0", [rec("/2/0/0", 3), rec("/2/0/1", 0), rec("/2/0/2/202", 7), rec("/2/0/3", 202)])
    request(handler, "PUT", "/3/0/15", b"UTC", ContentFormat.TEXT)
    write(handler, "/0/1/12", [rec("/0/1/12", 60)])  # the bootstrap account itself
    write(handler, "/33000/0/2", [rec("/33000/0/2/5", 1.0)])  # deleted, then created afresh
    assert snapshot(tree) != before
    handler.abort("timed out")
    assert handler.state is BootstrapState.FAILED
    assert snapshot(tree) == before
    assert tree.instance(3, 0).read(15) == "Europe/Berlin"
    assert structure  # listeners heard the structure change back
    handler.abort("again")  # no session: nothing happens
    assert snapshot(tree) == before


def test_rollback_after_refused_finish(handler: BootstrapHandler) -> None:
    before = snapshot(handler.tree)
    request(handler, "DELETE", "/1")
    with pytest.raises(NotAcceptable):
        handler.finish()
    handler.abort("the server gave up")
    assert snapshot(handler.tree) == before


def test_rollback_removes_instances_added_behind_the_session(bs_tree: ObjectTree) -> None:
    session = BootstrapSession(bs_tree)
    definition = bs_tree.catalog.get(1)
    assert definition is not None
    bs_tree.add_instance(ObjectInstance(definition, 8, {0: 8}))
    bs_tree.instance(1, 0).set(2, 10)  # a resource that was absent at the start
    bs_tree.instance(1, 0).set(1, 86400)
    session.rollback()
    assert [i.iid for i in bs_tree.instances(1)] == [0]
    assert not bs_tree.instance(1, 0).has(2) and bs_tree.instance(1, 0).read(1) == 300
    assert not session.open


def test_rollback_restores_a_value_removed_from_a_saved_resource(bs_tree: ObjectTree) -> None:
    session = BootstrapSession(bs_tree)
    inst = bs_tree.instance(3303, 0)
    session.save(3303, 0, [5750, 5603])
    inst.remove(5750)
    inst.set(5603, -40.0)
    session.rollback()
    assert inst.read(5750) == "indoor" and not inst.has(5603)


def test_commit_keeps_changes(bs_tree: ObjectTree) -> None:
    handler = BootstrapHandler(bs_tree)
    request(handler, "DELETE", "/3303")
    assert handler.session is not None
    handler.session.commit()
    handler.session.rollback()  # closed: no effect
    assert bs_tree.instances(3303) == []


def test_new_request_after_finish_opens_a_new_session(handler: BootstrapHandler) -> None:
    handler.finish()
    first = handler.session
    request(handler, "DELETE", "/3303/0")
    assert handler.session is not first and handler.state is BootstrapState.BOOTSTRAPPING
    handler.abort()
    assert [i.iid for i in handler.tree.instances(3303)] == [0]


# -- Bootstrap-Pack -----------------------------------------------------------------------


def pack(tree: ObjectTree, records: list[Record], fmt: int = SENML_CBOR) -> bytes:
    return codec.encode(fmt, Path(), records, tree.catalog.resource)


def test_bootstrap_pack_replaces_provisioning_objects(handler: BootstrapHandler) -> None:
    tree = handler.tree
    records = security_records(4, 44, "coap://dm2.example") + server_records(4, 44)
    handler.apply_pack(pack(tree, records), SENML_CBOR)
    assert [i.iid for i in tree.instances(0)] == [1, 4]  # /0/0 replaced, bootstrap account kept
    assert [i.iid for i in tree.instances(1)] == [4]
    assert [i.iid for i in tree.instances(3303)] == [0]  # other objects are not touched
    assert handler.state is BootstrapState.FINISHED


def test_inconsistent_bootstrap_pack_changes_nothing(handler: BootstrapHandler) -> None:
    tree = handler.tree
    before = snapshot(tree)
    with pytest.raises(NotAcceptable):
        json_pack = pack(tree, server_records(4, 44), ContentFormat.SENML_JSON)
        handler.apply_pack(json_pack, ContentFormat.SENML_JSON)
    assert snapshot(tree) == before
    assert handler.state is BootstrapState.FAILED
    assert any("no Security (/0) instance" in p for p in handler.last_problems)


@pytest.mark.parametrize(
    ("payload", "fmt", "error"),
    [
        (b"\x00", ContentFormat.TLV, UnsupportedContentFormat),
        (b"\xff\x00", SENML_CBOR, BadRequest),
        (b"[]", ContentFormat.SENML_JSON, BadRequest),
    ],
)
def test_bad_bootstrap_pack_is_refused(bs_tree: ObjectTree, payload: bytes, fmt: int, error: type) -> None:
    before = snapshot(bs_tree)
    with pytest.raises(error):
        apply_bootstrap_pack(bs_tree, payload, fmt)
    assert snapshot(bs_tree) == before


def test_apply_bootstrap_pack_function(bs_tree: ObjectTree) -> None:
    records = security_records(0, 101, "coap://new.example") + server_records(0, 101, lifetime=600)
    apply_bootstrap_pack(bs_tree, pack(bs_tree, records), SENML_CBOR)
    assert bs_tree.instance(0, 0).read(0) == "coap://new.example"
    assert bs_tree.instance(1, 0).read(1) == 600


# -- helpers, timer ----------------------------------------------------------------------


def test_bootstrap_request_query() -> None:
    assert bootstrap_request_query("gw-0001") == ["ep=gw-0001"]
    assert bootstrap_request_query("gw-0001", ContentFormat.SENML_CBOR) == ["ep=gw-0001", "pct=112"]
    with pytest.raises(ValueError):
        bootstrap_request_query("")
    assert FINISH_URI_PATH == ("bs",)


def test_bootstrap_account_resources(bs_tree: ObjectTree) -> None:
    assert hold_off_time(bs_tree) == 5.0
    assert bootstrap_account_timeout(bs_tree) == 3600.0
    bs_tree.instance(0, 1).set(12, 0)
    assert bootstrap_account_timeout(bs_tree) is None
    bs_tree.remove_instance(0, 1)
    assert (hold_off_time(bs_tree), bootstrap_account_timeout(bs_tree)) == (0.0, None)


def test_session_timer_on_a_fake_clock() -> None:
    async def main() -> None:
        clock = FakeClock()
        timer = SessionTimer(clock)
        assert timer.timeout == DEFAULT_SESSION_TIMEOUT and not timer.expired()
        timer.start()
        await clock.advance(299)
        assert not timer.expired() and timer.remaining() == 1.0
        timer.touch()
        await clock.advance(299)
        assert not timer.expired()
        waiter = asyncio.ensure_future(timer.wait_expired())
        await clock.advance(0.5)
        assert not waiter.done()
        await clock.advance(0.5)
        assert timer.expired() and waiter.done()
        timer.stop()
        assert not timer.expired() and timer.remaining() is None and not timer.running

    asyncio.run(main())


def test_handler_drives_its_timer(bs_tree: ObjectTree) -> None:
    async def main() -> None:
        clock = FakeClock()
        timer = SessionTimer(clock, timeout=30)
        handler = BootstrapHandler(bs_tree, timer=timer)
        await handler.handle(InboundRequest(0, "DELETE", P("/3303")))
        assert timer.deadline == 30.0
        await clock.advance(20)
        await handler.handle(InboundRequest(0, "GET", P("/1"), accept=ContentFormat.LINK_FORMAT))
        assert timer.deadline == 50.0
        await clock.advance(30)
        assert timer.expired()
        handler.abort("timeout")
        assert not timer.running and bs_tree.instances(3303) != []

    asyncio.run(main())


def test_session_timer_rejects_nonpositive_timeout() -> None:
    with pytest.raises(ValueError):
        SessionTimer(FakeClock(), timeout=0)


def test_fresh_catalog_tree_can_be_bootstrapped_from_nothing() -> None:
    tree = ObjectTree(Catalog.builtin())
    handler = BootstrapHandler(tree)
    write(handler, "/0/0", [rec("/0/0/0", BS_URI), rec("/0/0/1", True), rec("/0/0/2", 3)])
    write(handler, "/0/1", security_records(1, 1, "coap://dm.example"))
    write(handler, "/1/0", server_records(0, 1))
    assert handler.finish().code == 0x44
    assert sorted(o.oid for o in tree.objects()) == [0, 1]
