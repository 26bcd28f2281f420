"""Tests for lwm2md.engine.dm: Device Management operations on the object tree.

The ``tree`` fixture (conftest) holds /0/0, /1/0, /3/0, /3303/0 and /33000/0;
/33000 is a synthetic object: 0 Integer RW mandatory, 1 Float R multiple,
2 Float RW multiple, 3 String RW, 4 Opaque W, 5 Execute, 6 Unsigned RW,
7 Boolean RW, 8 Float R.
"""

from __future__ import annotations

import asyncio

import pytest

from lwm2md.codec.linkformat import Link
from lwm2md.engine.attributes import AttributeStore, parse_query
from lwm2md.engine.dm import DeviceManagement, check_execute_args, numeric_value, object_link_attrs
from lwm2md.errors import BadRequest, DriverFault, MethodNotAllowed, NotFound, Unauthorized
from lwm2md.model.path import Path
from lwm2md.model.types import ObjLnk, Record, ResourceData, Value
from lwm2md.objects.tree import ObjectInstance, ObjectTree

T = 33000  # the conftest's synthetic object


def P(text: str) -> Path:
    return Path.parse(text)


def rec(path: str, value: Value) -> Record:
    return Record(P(path), value)


@pytest.fixture
def dm(tree: ObjectTree) -> DeviceManagement:
    return DeviceManagement(tree, AttributeStore())


def content(dm: DeviceManagement, oid: int, iid: int) -> dict[int, ResourceData]:
    """Every present resource's raw content, readable or not."""
    inst = dm.tree.instance(oid, iid)
    return {rid: inst.read(rid) for rid in inst.resource_ids() if rid != 5}


# -- Read -----------------------------------------------------------------------


def test_read_object_lists_every_instance(dm: DeviceManagement) -> None:
    dm.tree.add_instance(ObjectInstance(dm.tree.object(3303).definition, 1, {5700: -3.0}))
    assert dm.read(P("/3303")) == [
        rec("/3303/0/5700", 21.5),
        rec("/3303/0/5701", "Cel"),
        rec("/3303/0/5750", "indoor"),
        rec("/3303/1/5700", -3.0),
    ]


def test_read_instance_has_only_readable_resources(dm: DeviceManagement) -> None:
    dm.tree.instance(T, 0).set(4, b"secret")
    paths = [str(r.path) for r in dm.read(P(f"/{T}/0"))]
    assert paths == [f"/{T}/0/0", f"/{T}/0/1/0", f"/{T}/0/1/1", f"/{T}/0/2/0", f"/{T}/0/2/1",
                     f"/{T}/0/3", f"/{T}/0/6", f"/{T}/0/8"]  # fmt: skip
    device = [str(r.path) for r in dm.read(P("/3/0"))]
    assert "/3/0/4" not in device  # executable
    assert device[:4] == ["/3/0/0", "/3/0/1", "/3/0/6/0", "/3/0/6/1"]


def test_read_resource_and_resource_instance(dm: DeviceManagement) -> None:
    assert dm.read(P("/3303/0/5700")) == [rec("/3303/0/5700", 21.5)]
    assert dm.read(P("/3/0/7")) == [rec("/3/0/7/0", 3800), rec("/3/0/7/1", 5000)]
    assert dm.read(P("/3/0/7/1")) == [rec("/3/0/7/1", 5000)]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/", MethodNotAllowed),
        ("/9999", NotFound),  # not in the tree (nor the catalog)
        ("/3304", NotFound),  # in the catalog, not in the tree
        ("/3303/9", NotFound),
        ("/3303/0/1", NotFound),  # not defined for the object
        ("/3303/0/5601", NotFound),  # defined, not present
        ("/3/0/7/9", NotFound),
        ("/3/0/0/0", NotFound),  # a single resource has no instances
        ("/3/0/4", MethodNotAllowed),  # executable
        (f"/{T}/0/5", MethodNotAllowed),
        ("/0", Unauthorized),
        ("/0/0", Unauthorized),
        ("/0/0/0", Unauthorized),
        ("/0/9/0", Unauthorized),  # refused before existence is revealed
    ],
)
def test_read_errors(dm: DeviceManagement, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        dm.read(P(path))


def test_read_write_only_resource_is_refused(dm: DeviceManagement) -> None:
    dm.tree.instance(T, 0).set(4, b"secret")
    with pytest.raises(MethodNotAllowed):
        dm.read(P(f"/{T}/0/4"))


def test_read_propagates_driver_faults(dm: DeviceManagement) -> None:
    def broken() -> ResourceData:
        raise DriverFault("i2c timeout")

    dm.tree.instance(3303, 0).handle(5700, read=broken)
    with pytest.raises(DriverFault):
        dm.read(P("/3303/0/5700"))


def test_read_composite(dm: DeviceManagement) -> None:
    got = dm.read_composite([P("/3303/0/5700"), P("/3303/5"), P("/3/0/0")])
    assert got == [rec("/3303/0/5700", 21.5), rec("/3/0/0", "ACME")]
    with pytest.raises(NotFound):
        dm.read_composite([P("/3303/5"), P("/9/0")])
    with pytest.raises(Unauthorized):
        dm.read_composite([P("/0/0/0"), P("/3/0/0")])


# -- Write ----------------------------------------------------------------------


def test_replace_single_resource(dm: DeviceManagement) -> None:
    dm.write(P(f"/{T}/0/3"), [rec(f"/{T}/0/3", "new")], replace=True)
    assert dm.tree.instance(T, 0).read(3) == "new"


def test_partial_update_of_instance_changes_only_given_resources(dm: DeviceManagement) -> None:
    before = content(dm, T, 0)
    dm.write(P(f"/{T}/0"), [rec(f"/{T}/0/3", "x"), rec(f"/{T}/0/6", 9)], replace=False)
    assert content(dm, T, 0) == {**before, 3: "x", 6: 9}


def test_replace_instance_drops_optional_writable_resources_not_given(dm: DeviceManagement) -> None:
    inst = dm.tree.instance(T, 0)
    inst.set(4, b"secret")
    dm.write(P(f"/{T}/0"), [rec(f"/{T}/0/7", True)], replace=True)
    # 2, 3, 4, 6 were optional and writable; 0 is mandatory; 1 and 8 are read-only
    assert content(dm, T, 0) == {0: 1, 1: {0: 1.5, 1: 2.5}, 7: True, 8: 0.0}


def test_multiple_resource_replace_versus_partial(dm: DeviceManagement) -> None:
    inst = dm.tree.instance(T, 0)
    dm.write(P(f"/{T}/0/2"), [rec(f"/{T}/0/2/1", 21.0), rec(f"/{T}/0/2/7", 70.0)], replace=False)
    assert inst.read(2) == {0: 10.0, 1: 21.0, 7: 70.0}
    dm.write(P(f"/{T}/0/2"), [rec(f"/{T}/0/2/3", 3.0)], replace=True)
    assert inst.read(2) == {3: 3.0}
    dm.write(P(f"/{T}/0"), [rec(f"/{T}/0/2/4", 4.0)], replace=False)
    assert inst.read(2) == {3: 3.0, 4: 4.0}
    dm.write(P(f"/{T}/0"), [rec(f"/{T}/0/2/5", 5.0)], replace=True)
    assert inst.read(2) == {5: 5.0}
    dm.write(P(f"/{T}/0/2"), [rec(f"/{T}/0/2/8", 8.0), rec(f"/{T}/0/2/9", 9.0)], replace=True)
    assert inst.read(2) == {8: 8.0, 9: 9.0}


def test_resource_instance_write(dm: DeviceManagement) -> None:
    inst = dm.tree.instance(T, 0)
    dm.write(P(f"/{T}/0/2/1"), [rec(f"/{T}/0/2/1", 99.0)], replace=True)
    assert inst.read(2) == {0: 10.0, 1: 99.0}
    with pytest.raises(MethodNotAllowed):
        dm.write(P(f"/{T}/0/2/1"), [rec(f"/{T}/0/2/1", 1.0)], replace=False)
    with pytest.raises(BadRequest):  # another instance than the target
        dm.write(P(f"/{T}/0/2/1"), [rec(f"/{T}/0/2/0", 1.0)], replace=True)


def test_write_values_are_type_checked(dm: DeviceManagement) -> None:
    base = P(f"/{T}/0")
    for bad in (rec(f"/{T}/0/0", "1"), rec(f"/{T}/0/0", True), rec(f"/{T}/0/6", -1),
                rec(f"/{T}/0/7", 1), rec(f"/{T}/0/3", b"x"), rec(f"/{T}/0/2/0", "1.0"),
                rec(f"/{T}/0/2/0", 10**400)):  # fmt: skip
        with pytest.raises(BadRequest):
            dm.write(base, [bad], replace=False)
    dm.write(base, [rec(f"/{T}/0/2/0", 3)], replace=False)
    stored = dm.tree.instance(T, 0).read(2)
    assert isinstance(stored, dict) and stored[0] == 3.0 and isinstance(stored[0], float)
    dm.write(P("/1/0"), [Record(P("/1/0/10"), ObjLnk(65535, 65535))], replace=False)
    assert dm.tree.instance(1, 0).read(10) == ObjLnk(65535, 65535)


@pytest.mark.parametrize(
    ("path", "records", "error"),
    [
        ("/3303", [rec("/3303/0/5750", "x")], MethodNotAllowed),  # object level
        ("/", [rec("/3303/0/5750", "x")], MethodNotAllowed),
        ("/3303/7", [rec("/3303/7/5750", "x")], NotFound),
        ("/3303/0/1", [rec("/3303/0/1", "x")], NotFound),  # undefined resource
        ("/3303/0", [rec("/3303/0/5750", "x"), rec("/3303/0/5700", 1.0)], MethodNotAllowed),
        ("/3303/0", [rec("/3303/0/5750", "x"), rec("/3303/0/9999", 1.0)], NotFound),
        ("/3303/0", [rec("/3303/0/5750", "x"), rec("/3303/1/5750", "y")], BadRequest),
        (f"/{T}/0", [rec(f"/{T}/0/2", 1.0)], BadRequest),  # multiple needs instances
        (f"/{T}/0", [rec(f"/{T}/0/3/0", "x")], BadRequest),  # single has none
        (f"/{T}/0", [rec(f"/{T}/0/5", "x")], MethodNotAllowed),  # executable
        (f"/{T}/0/3", [], BadRequest),
        ("/0/0", [rec("/0/0/0", "coap://evil")], Unauthorized),
    ],
)
def test_write_errors_change_nothing(
    dm: DeviceManagement, path: str, records: list[Record], error: type[Exception]
) -> None:
    before = {key: content(dm, *key) for key in ((3303, 0), (T, 0), (0, 0))}
    with pytest.raises(error):
        dm.write(P(path), records, replace=True)
    with pytest.raises(error):
        dm.write(P(path), records, replace=False)
    assert {key: content(dm, *key) for key in before} == before


def test_multi_resource_write_notifies_once_per_resource_after_all_applied(dm: DeviceManagement) -> None:
    seen: list[tuple[Path, ResourceData, ResourceData]] = []
    inst = dm.tree.instance(T, 0)
    dm.tree.on_value_change(lambda path: seen.append((path, inst.read(3), inst.read(6))))
    dm.write(P(f"/{T}/0"), [rec(f"/{T}/0/3", "a"), rec(f"/{T}/0/6", 1), rec(f"/{T}/0/3", "b")],
             replace=False)  # fmt: skip
    assert seen == [(P(f"/{T}/0/3"), "b", 1), (P(f"/{T}/0/6"), "b", 1)]


def test_writer_refusal_rolls_back_the_whole_request(dm: DeviceManagement) -> None:
    inst = dm.tree.instance(T, 0)
    driven: list[ResourceData] = []
    inst.handle(3, write=driven.append)

    def refuse(data: ResourceData) -> None:
        raise BadRequest("flag is locked")

    inst.handle(7, write=refuse)
    before = content(dm, T, 0)
    with pytest.raises(BadRequest, match="locked"):
        dm.write(P(f"/{T}/0"), [rec(f"/{T}/0/3", "x"), rec(f"/{T}/0/7", True)], replace=True)
    assert content(dm, T, 0) == before  # incl. 2 and 6, dropped by the replace then restored
    assert driven == ["x", "first"]  # the writer saw the value and then the old one again


# -- Write-Composite ---------------------------------------------------------------


def test_write_composite_spans_instances(dm: DeviceManagement) -> None:
    dm.write_composite([rec("/3303/0/5750", "outdoor"), rec(f"/{T}/0/2/1", 2.0), rec("/1/0/1", 600)])
    assert dm.tree.instance(3303, 0).read(5750) == "outdoor"
    assert dm.tree.instance(T, 0).read(2) == {0: 10.0, 1: 2.0}  # partial update of the resource
    assert dm.tree.instance(1, 0).read(1) == 600


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (rec("/3303/0/5700", 1.0), MethodNotAllowed),
        (rec("/3303/7/5750", "x"), NotFound),
        (rec("/9/0/0", "x"), NotFound),
        (rec("/0/0/0", "coap://evil"), Unauthorized),
        (Record(P("/3303/0"), "x"), BadRequest),
        (rec("/1/0/1", "soon"), BadRequest),
    ],
)
def test_write_composite_is_all_or_nothing(dm: DeviceManagement, bad: Record, error: type[Exception]) -> None:
    before = {key: content(dm, *key) for key in ((3303, 0), (T, 0), (1, 0))}
    with pytest.raises(error):
        dm.write_composite([rec("/3303/0/5750", "outdoor"), rec(f"/{T}/0/3", "x"), bad])
    assert {key: content(dm, *key) for key in before} == before


def test_write_composite_rolls_back_other_instances_on_writer_refusal(dm: DeviceManagement) -> None:
    def refuse(data: ResourceData) -> None:
        raise BadRequest("no")

    dm.tree.instance(3303, 0).handle(5750, write=refuse)
    with pytest.raises(BadRequest):
        dm.write_composite([rec(f"/{T}/0/3", "x"), rec("/3303/0/5750", "y")])
    with pytest.raises(BadRequest):
        dm.write_composite([rec("/3303/0/5750", "y"), rec(f"/{T}/0/3", "x")])
    assert dm.tree.instance(T, 0).read(3) == "first"
    with pytest.raises(BadRequest):
        dm.write_composite([])


# -- Execute --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [None, "", "0", "0,1,9", "5='hello'", "0='',1", "2='!#$%&()*+-./09:;<=>?@AZ[]^_`az{|}~'"],
)
def test_execute_args_accepted(args: str | None) -> None:
    check_execute_args(args)


@pytest.mark.parametrize(
    "args",
    ["a", "10", "0=hello", "0='a b'", "0='it''s'", "0='\\'", "0='\"'", "0,", ",0", "0;1", "0='x", "0=''x"],
)
def test_execute_args_rejected(args: str) -> None:
    with pytest.raises(BadRequest):
        check_execute_args(args)


def test_execute_runs_the_executor(dm: DeviceManagement, executed: list[tuple[str, str | None]]) -> None:
    asyncio.run(dm.execute(P("/3/0/4"), None))
    asyncio.run(dm.execute(P(f"/{T}/0/5"), "1='x'"))
    assert executed == [("/3/0/4", None), (f"/{T}/0/5", "1='x'")]


@pytest.mark.parametrize(
    ("path", "args", "error"),
    [
        ("/3/0/0", None, MethodNotAllowed),  # not executable
        ("/3/0", None, MethodNotAllowed),
        ("/3/0/4/0", None, MethodNotAllowed),
        ("/3/0/5", None, NotFound),  # Factory Reset: defined, absent
        ("/3/0/1000", None, NotFound),
        ("/3/1/4", None, NotFound),
        ("/3/0/4", "bad", BadRequest),
        ("/0/0/0", None, Unauthorized),
    ],
)
def test_execute_errors(
    dm: DeviceManagement, executed: list[tuple[str, str | None]], path: str, args: str | None,
    error: type[Exception],
) -> None:  # fmt: skip
    with pytest.raises(error):
        asyncio.run(dm.execute(P(path), args))
    assert executed == []


# -- Create / Delete ------------------------------------------------------------


def test_create_without_iid_takes_the_lowest_free(dm: DeviceManagement) -> None:
    structure: list[None] = []
    dm.tree.on_structure_change(lambda: structure.append(None))
    # decoders mark "no instance given" with iid 65535
    iid = dm.create(P(f"/{T}"), [rec(f"/{T}/65535/0", 5), rec(f"/{T}/65535/2/3", 1.0)])
    assert iid == 1
    assert content(dm, T, 1) == {0: 5, 2: {3: 1.0}}
    assert structure == [None]
    assert dm.create(P("/3303"), []) == 1
    dm.tree.remove_instance(3303, 0)
    assert dm.create(P("/3303"), []) == 0


def test_create_with_iid_from_payload(dm: DeviceManagement) -> None:
    assert dm.create(P(f"/{T}"), [rec(f"/{T}/7/0", 5), rec(f"/{T}/7/3", "seven")]) == 7
    assert dm.tree.instance(T, 7).read(3) == "seven"
    with pytest.raises(BadRequest):
        dm.create(P(f"/{T}"), [rec(f"/{T}/7/0", 6)])
    assert dm.tree.instance(T, 7).read(0) == 5


@pytest.mark.parametrize(
    ("path", "records", "error"),
    [
        (f"/{T}", [rec(f"/{T}/3/3", "no counter")], BadRequest),  # mandatory 0 missing
        (f"/{T}", [], BadRequest),
        (f"/{T}", [rec(f"/{T}/3/0", 1), rec(f"/{T}/4/0", 1)], BadRequest),  # two instances
        (f"/{T}", [rec(f"/{T}/3/0", 1), rec(f"/{T}/3/8", 1.0)], MethodNotAllowed),  # read-only
        (f"/{T}", [rec(f"/{T}/3/0", "1")], BadRequest),
        (f"/{T}", [rec("/3303/3/5750", "x")], BadRequest),  # another object
        (f"/{T}/3", [rec(f"/{T}/3/0", 1)], MethodNotAllowed),
        ("/1", [rec("/1/1/1", 60)], MethodNotAllowed),  # no factory
        ("/3304", [], NotFound),
        ("/0", [], Unauthorized),
    ],
)
def test_create_errors_add_nothing(
    dm: DeviceManagement, path: str, records: list[Record], error: type[Exception]
) -> None:
    structure: list[None] = []
    dm.tree.on_structure_change(lambda: structure.append(None))
    with pytest.raises(error):
        dm.create(P(path), records)
    assert structure == []
    assert [i.iid for i in dm.tree.instances(T)] == [0]


def test_create_in_single_instance_object_that_has_one(dm: DeviceManagement) -> None:
    device = dm.tree.object(3)
    device.factory = lambda iid: ObjectInstance(device.definition, iid)
    with pytest.raises(BadRequest):
        dm.create(P("/3"), [])


def test_create_refused_by_a_writer_adds_nothing(dm: DeviceManagement) -> None:
    obj = dm.tree.object(3303)

    def factory(iid: int) -> ObjectInstance:
        inst = ObjectInstance(obj.definition, iid)
        inst.handle(5750, write=lambda data: (_ for _ in ()).throw(BadRequest("unknown type")))
        return inst

    obj.factory = factory
    with pytest.raises(BadRequest):
        dm.create(P("/3303"), [rec("/3303/65535/5750", "x")])
    assert [i.iid for i in dm.tree.instances(3303)] == [0]


def test_delete_removes_instance_and_its_attributes(dm: DeviceManagement) -> None:
    dm.tree.add_instance(ObjectInstance(dm.tree.object(3303).definition, 1))
    for ssid in (1, 2):
        dm.attributes.apply(ssid, P("/3303/0/5700"), parse_query(["gt=5"]), numeric=True)
        dm.attributes.apply(ssid, P("/3303/1"), parse_query(["pmin=5"]), numeric=False)
        dm.attributes.apply(ssid, P("/3303"), parse_query(["pmax=50"]), numeric=False)
    dm.delete(P("/3303/0"))
    assert [i.iid for i in dm.tree.instances(3303)] == [1]
    for ssid in (1, 2):
        assert dm.attributes.attached(ssid, P("/3303/0/5700")).is_empty()
        assert dm.attributes.attached(ssid, P("/3303/1")).pmin == 5
        assert dm.attributes.attached(ssid, P("/3303")).pmax == 50


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/3303/5", NotFound),
        ("/9/0", NotFound),
        ("/3303", MethodNotAllowed),
        ("/3303/0/5700", MethodNotAllowed),
        ("/1/0", MethodNotAllowed),  # not deletable
        ("/3/0", MethodNotAllowed),
        ("/0/0", Unauthorized),
    ],
)
def test_delete_errors(dm: DeviceManagement, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        dm.delete(P(path))
    assert dm.tree.instances(3303) and dm.tree.instances(1) and dm.tree.instances(0)


# -- Discover -------------------------------------------------------------------


def _links(links: list[Link]) -> list[str]:
    return [link.target + "".join(f";{k}={v}" if v is not None else f";{k}" for k, v in link.attrs.items())
            for link in links]  # fmt: skip


def _attach(dm: DeviceManagement, path: str, *query: str, ssid: int = 101) -> None:
    target = P(path)
    dm.attributes.apply(ssid, target, parse_query(query), numeric=dm.attribute_target(target))


def test_discover_object(dm: DeviceManagement) -> None:
    _attach(dm, "/3303", "pmin=10")
    _attach(dm, "/3303/0", "pmax=60")
    _attach(dm, "/3303/0/5700", "gt=50", "lt=42.2")
    _attach(dm, "/3303/0/5700", "pmin=1", ssid=7)  # another server's: not shown
    assert _links(dm.discover(P("/3303"), 101)) == [
        "/3303;ver=1.1;pmin=10",
        "/3303/0;pmax=60",
        "/3303/0/5700;gt=50;lt=42.2",
        "/3303/0/5701",
        "/3303/0/5750",
    ]


def test_discover_instance_lists_executables_and_dim(dm: DeviceManagement) -> None:
    assert _links(dm.discover(P("/3/0"), 101)) == [
        "/3/0", "/3/0/0", "/3/0/1", "/3/0/4", "/3/0/6;dim=2", "/3/0/7;dim=2", "/3/0/11;dim=1",
        "/3/0/15", "/3/0/16",
    ]  # fmt: skip


def test_discover_resource_lists_its_instances(dm: DeviceManagement) -> None:
    _attach(dm, "/3/0/7/1", "st=100")
    assert _links(dm.discover(P("/3/0/7"), 101)) == ["/3/0/7;dim=2", "/3/0/7/0", "/3/0/7/1;st=100"]
    assert _links(dm.discover(P("/3/0/0"), 101)) == ["/3/0/0"]


def test_discover_depth_counts_levels_below_the_target(dm: DeviceManagement) -> None:
    def depth(path: str, d: int) -> list[str]:
        return [link.target for link in dm.discover(P(path), 101, d)]

    assert depth("/3", 0) == ["/3"]
    assert depth("/3", 1) == ["/3", "/3/0"]
    assert len(depth("/3", 2)) == 1 + 1 + 8
    assert "/3/0/6/1" in depth("/3", 3)
    assert depth("/3/0", 0) == ["/3/0"]
    assert "/3/0/7/0" in depth("/3/0", 2)
    assert depth("/3/0/7", 0) == ["/3/0/7"]


def test_discover_dim_survives_a_faulty_reader(dm: DeviceManagement) -> None:
    def broken() -> ResourceData:
        raise DriverFault("adc")

    dm.tree.instance(3, 0).handle(7, read=broken)
    assert "/3/0/7;dim=0" in _links(dm.discover(P("/3/0"), 101))


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/", MethodNotAllowed),
        ("/3/0/7/0", MethodNotAllowed),
        ("/3304", NotFound),
        ("/3/4", NotFound),
        ("/3/0/5", NotFound),
        ("/3/0/999", NotFound),
        ("/0", Unauthorized),
    ],
)
def test_discover_errors(dm: DeviceManagement, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        dm.discover(P(path), 101)


# -- Write-Attributes targets and helpers ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "numeric"),
    [
        ("/3303", False),
        ("/3303/0", False),
        ("/3303/0/5700", True),  # Float
        (f"/{T}/0/0", True),  # Integer
        (f"/{T}/0/6", True),  # Unsigned Integer
        ("/3303/0/5701", False),  # String
        ("/3/0/7", False),  # multiple Integer
        ("/3/0/7/1", True),  # one instance of it
        ("/3/0/0", False),
    ],
)
def test_attribute_target(dm: DeviceManagement, path: str, numeric: bool) -> None:
    assert dm.attribute_target(P(path)) is numeric


@pytest.mark.parametrize(
    ("path", "error"),
    [("/", MethodNotAllowed), ("/3304", NotFound), ("/3303/4", NotFound), ("/3303/0/5601", NotFound),
     ("/3/0/7/5", NotFound), ("/3/0/0/0", NotFound), ("/0/0", Unauthorized)],
)  # fmt: skip
def test_attribute_target_errors(dm: DeviceManagement, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        dm.attribute_target(P(path))


def test_numeric_value() -> None:
    assert numeric_value([rec("/1/0/1", 60)]) == 60.0
    assert numeric_value([rec("/3303/0/5700", 21.5)]) == 21.5
    assert numeric_value([rec("/1/0/6", True)]) is None
    assert numeric_value([rec("/1/0/7", "U")]) is None
    assert numeric_value([rec("/3/0/7/0", 1), rec("/3/0/7/1", 2)]) is None
    assert numeric_value([]) is None


def test_object_link_attrs(dm: DeviceManagement) -> None:
    assert object_link_attrs(dm.tree.object(3303).definition) == {"ver": "1.1"}
    assert object_link_attrs(dm.tree.object(T).definition) == {}


def test_resolve(dm: DeviceManagement) -> None:
    rdef = dm.resolve(P("/3303/65535/5700"))
    assert rdef is not None and rdef.name == "Sensor Value"
    assert dm.resolve(P("/3303")) is None
