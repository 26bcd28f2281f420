"""Shared fixtures: the built-in catalog plus one synthetic object, and a populated tree.

``TEST_OID`` is a made-up object whose resources cover every shape the engine
distinguishes (mandatory writable, write-only, multiple writable numeric,
unsigned, executable, ...), so engine tests need not lean on registry details.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from lwm2md.model.catalog import Catalog
from lwm2md.model.types import ObjectDef, Operations, ResourceData, ResourceDef, ResourceType
from lwm2md.objects.tree import LwM2MObject, ObjectInstance, ObjectTree

# Property tests draw the same examples on every run and machine: a failure in
# CI reproduces locally, and nothing passes or fails by luck of the draw.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.load_profile("deterministic")

TEST_OID = 33000
R, W, E, RW = Operations.R, Operations.W, Operations.E, Operations.RW


def _res(rid: int, ops: Operations, rtype: ResourceType, *, multiple: bool = False,
         mandatory: bool = False) -> ResourceDef:  # fmt: skip
    return ResourceDef(rid, f"r{rid}", ops, multiple, mandatory, rtype)


TEST_OBJECT = ObjectDef(
    TEST_OID,
    "Test",
    multiple=True,
    mandatory=False,
    resources={
        r.rid: r
        for r in (
            _res(0, RW, ResourceType.INTEGER, mandatory=True),  # counter
            _res(1, R, ResourceType.FLOAT, multiple=True),  # readings
            _res(2, RW, ResourceType.FLOAT, multiple=True),  # set points
            _res(3, RW, ResourceType.STRING),  # label
            _res(4, W, ResourceType.OPAQUE),  # write-only secret
            _res(5, E, ResourceType.NONE),  # trigger
            _res(6, RW, ResourceType.UNSIGNED),  # level
            _res(7, RW, ResourceType.BOOLEAN),  # flag
            _res(8, R, ResourceType.FLOAT),  # measured value
        )
    },
)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The built-in catalog plus ``TEST_OBJECT`` (shared: never mutate it)."""
    cat = Catalog.builtin()
    cat.add(TEST_OBJECT)
    return cat


@pytest.fixture
def executed() -> list[tuple[str, str | None]]:
    """(path, arguments) of every Execute the ``tree`` fixture's executors ran."""
    return []


@pytest.fixture
def tree(catalog: Catalog, executed: list[tuple[str, str | None]]) -> ObjectTree:
    """/0/0, /1/0 (ssid 101), /3/0, /3303/0 and /33000/0 with typical values.

    /3303 and /33000 accept Create (factory) and Delete; the executors of
    /3/0/4 and /33000/x/5 record into ``executed``.
    """
    t = ObjectTree(catalog)

    def defn(oid: int) -> ObjectDef:
        d = catalog.get(oid)
        assert d is not None
        return d

    t.add_instance(ObjectInstance(defn(0), 0, {0: "coap://server", 1: False, 2: 3, 10: 101}))
    t.add_instance(ObjectInstance(defn(1), 0, {0: 101, 1: 300, 6: False, 7: "U"}))
    device = ObjectInstance(
        defn(3), 0, {0: "ACME", 1: "GW-1", 6: {0: 1, 1: 5}, 7: {0: 3800, 1: 5000}, 11: {0: 0},
                     15: "Europe/Berlin", 16: "U"},
    )  # fmt: skip
    device.handle(4, execute=lambda args: executed.append(("/3/0/4", args)))
    t.add_instance(device)
    t.add_object(LwM2MObject(defn(3303), factory=lambda iid: ObjectInstance(defn(3303), iid),
                             deletable=True))  # fmt: skip
    t.add_instance(ObjectInstance(defn(3303), 0, {5700: 21.5, 5701: "Cel", 5750: "indoor"}))

    def make_test(iid: int) -> ObjectInstance:
        inst = ObjectInstance(TEST_OBJECT, iid)
        inst.handle(5, execute=lambda args: executed.append((f"/{TEST_OID}/{iid}/5", args)))
        return inst

    t.add_object(LwM2MObject(TEST_OBJECT, factory=make_test, deletable=True))
    first = make_test(0)
    values: dict[int, ResourceData] = {0: 1, 1: {0: 1.5, 1: 2.5}, 2: {0: 10.0, 1: 20.0}, 3: "first",
                                       6: 7, 8: 0.0}  # fmt: skip
    for rid, data in values.items():
        first.set(rid, data)
    t.add_instance(first)
    return t
