"""Tests for lwm2md.objects.tree: instances, handlers, the tree and its listeners."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lwm2md.errors import DriverFault, MethodNotAllowed, NotFound
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef, Record, ResourceData
from lwm2md.objects.tree import LwM2MObject, ObjectInstance, ObjectTree, leaves

TEST_OID = 33000  # the conftest's synthetic object


def _defn(catalog: Catalog, oid: int) -> ObjectDef:
    d = catalog.get(oid)
    assert d is not None
    return d


@pytest.fixture
def empty(catalog: Catalog) -> ObjectTree:
    return ObjectTree(catalog)


@pytest.fixture
def tdef(catalog: Catalog) -> ObjectDef:
    return _defn(catalog, TEST_OID)


def _listen(tree: ObjectTree) -> list[Path]:
    seen: list[Path] = []
    tree.on_value_change(seen.append)
    return seen


# -- ObjectInstance -------------------------------------------------------------


def test_presence_counts_values_readers_and_executors(tdef: ObjectDef) -> None:
    inst = ObjectInstance(tdef, 4, {3: "x"})
    inst.handle(8, read=lambda: 1.0)
    inst.handle(5, execute=lambda args: None)
    inst.handle(7, write=lambda data: None)  # a writer alone does not make a resource present
    assert inst.resource_ids() == [3, 5, 8]
    assert inst.has(3) and inst.has(5) and inst.has(8)
    assert not inst.has(7)
    assert inst.path == Path(TEST_OID, 4)
    assert inst.oid == TEST_OID


def test_read_calls_the_reader_every_time_and_copies_stored_dicts(tdef: ObjectDef) -> None:
    calls = []

    def reader() -> ResourceData:
        calls.append(1)
        return 2.0

    inst = ObjectInstance(tdef, 0, {2: {0: 1.0}})
    inst.handle(8, read=reader)
    assert inst.read(8) == 2.0
    assert inst.read(8) == 2.0
    assert len(calls) == 2
    copy = inst.read(2)
    assert isinstance(copy, dict)
    copy[5] = 9.0
    assert inst.read(2) == {0: 1.0}
    with pytest.raises(NotFound):
        inst.read(3)


def test_reader_fault_propagates(tdef: ObjectDef) -> None:
    inst = ObjectInstance(tdef, 0)

    def broken() -> ResourceData:
        raise DriverFault("sensor gone")

    inst.handle(8, read=broken)
    with pytest.raises(DriverFault):
        inst.read(8)


def test_write_runs_writer_stores_and_notifies(tree: ObjectTree) -> None:
    seen = _listen(tree)
    written: list[ResourceData] = []
    inst = tree.instance(TEST_OID, 0)
    inst.handle(3, write=written.append)
    inst.write(3, "new")
    assert written == ["new"]
    assert inst.read(3) == "new"
    assert seen == [Path(TEST_OID, 0, 3)]


def test_write_refused_by_writer_keeps_old_value_and_stays_quiet(tree: ObjectTree) -> None:
    seen = _listen(tree)
    inst = tree.instance(TEST_OID, 0)

    def refuse(data: ResourceData) -> None:
        raise ValueError("no")

    inst.handle(3, write=refuse)
    with pytest.raises(ValueError):
        inst.write(3, "bad")
    assert inst.read(3) == "first"
    assert seen == []


def test_write_instance_keeps_other_instances(tree: ObjectTree) -> None:
    inst = tree.instance(TEST_OID, 0)
    inst.write_instance(2, 5, 55.0)
    assert inst.read(2) == {0: 10.0, 1: 20.0, 5: 55.0}


def test_set_notifies_only_on_change(tree: ObjectTree) -> None:
    seen = _listen(tree)
    inst = tree.instance(TEST_OID, 0)
    inst.set(3, "first")
    assert seen == []
    inst.set(3, "second")
    inst.set(2, {0: 10.0, 1: 21.0})
    assert seen == [Path(TEST_OID, 0, 3), Path(TEST_OID, 0, 2)]


def test_remove_makes_resource_absent_without_notifying(tree: ObjectTree) -> None:
    seen = _listen(tree)
    inst = tree.instance(TEST_OID, 0)
    inst.remove(3)
    inst.remove(3)  # absent already: no error
    assert not inst.has(3)
    assert seen == []


def test_changed_with_riid_names_the_resource_instance(tree: ObjectTree) -> None:
    seen = _listen(tree)
    tree.instance(TEST_OID, 0).changed(2, 1)
    assert seen == [Path(TEST_OID, 0, 2, 1)]


def test_execute_sync_async_and_missing(tdef: ObjectDef) -> None:
    got: list[str | None] = []

    async def later(args: str | None) -> None:
        await asyncio.sleep(0)
        got.append(args)

    inst = ObjectInstance(tdef, 0)
    inst.handle(5, execute=later)

    async def main() -> None:
        await inst.execute(5, "0='a'")
        with pytest.raises(MethodNotAllowed):
            await inst.execute(3, None)

    asyncio.run(main())
    assert got == ["0='a'"]


def test_records_and_leaves(tdef: ObjectDef) -> None:
    inst = ObjectInstance(tdef, 2, {2: {1: 2.0, 0: 1.0}, 3: "x"})
    inst.handle(5, execute=lambda args: None)
    assert inst.records() == [
        Record(Path(TEST_OID, 2, 2, 0), 1.0),
        Record(Path(TEST_OID, 2, 2, 1), 2.0),
        Record(Path(TEST_OID, 2, 3), "x"),
    ]
    assert inst.records([3]) == [Record(Path(TEST_OID, 2, 3), "x")]
    assert leaves(Path(1, 0, 1), 60) == [Record(Path(1, 0, 1), 60)]


# -- LwM2MObject / ObjectTree ------------------------------------------------------


def test_free_iid_is_the_lowest_gap(tdef: ObjectDef) -> None:
    obj = LwM2MObject(tdef)
    assert obj.free_iid() == 0
    for iid in (0, 1, 3):
        obj.instances[iid] = ObjectInstance(tdef, iid)
    assert obj.free_iid() == 2


def test_structure_and_lookup(empty: ObjectTree, catalog: Catalog) -> None:
    changes: list[None] = []
    empty.on_structure_change(lambda: changes.append(None))
    empty.add_instance(ObjectInstance(_defn(catalog, 3303), 2))
    empty.add_instance(ObjectInstance(_defn(catalog, 3303), 0))
    empty.add_instance(ObjectInstance(_defn(catalog, 1), 0))
    assert [o.oid for o in empty.objects()] == [1, 3303]
    assert [i.iid for i in empty.instances(3303)] == [0, 2]
    assert empty.instances(3) == []
    assert empty.has_object(1) and not empty.has_object(3)
    assert empty.resource_def(Path(3303, 0, 5700)) == _defn(catalog, 3303).resource(5700)
    assert empty.resource_def(Path(3303, 0)) is None
    assert empty.resource_def(Path(3, 0, 0)) is None
    # two objects created on the way, three instances added
    assert len(changes) == 5
    removed = empty.remove_instance(3303, 2)
    assert removed.iid == 2
    assert len(changes) == 6
    with pytest.raises(NotFound):
        empty.remove_instance(3303, 2)
    with pytest.raises(NotFound):
        empty.instance(3303, 2)
    with pytest.raises(NotFound):
        empty.object(3)


def test_add_rules(empty: ObjectTree, catalog: Catalog) -> None:
    empty.add_instance(ObjectInstance(_defn(catalog, 3), 0))
    with pytest.raises(ValueError, match="single-instance"):
        empty.add_instance(ObjectInstance(_defn(catalog, 3), 1))
    empty.add_instance(ObjectInstance(_defn(catalog, 3303), 0))
    with pytest.raises(ValueError, match="already exists"):
        empty.add_instance(ObjectInstance(_defn(catalog, 3303), 0))
    with pytest.raises(ValueError, match="already in the tree"):
        empty.add_object(LwM2MObject(_defn(catalog, 3303)))
    with pytest.raises(KeyError):
        empty.ensure_object(64999)
    assert empty.ensure_object(3303) is empty.object(3303)


def test_removed_instance_no_longer_notifies(tree: ObjectTree) -> None:
    seen = _listen(tree)
    inst = tree.remove_instance(3303, 0)
    inst.set(5700, 99.0)
    assert seen == []


def test_failing_listener_is_logged_and_others_still_run(
    tree: ObjectTree, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(path: Path) -> None:
        raise RuntimeError("listener bug")

    tree.on_value_change(bad)
    seen = _listen(tree)
    tree.on_structure_change(lambda: (_ for _ in ()).throw(RuntimeError("structure bug")))
    with caplog.at_level(logging.ERROR, logger="lwm2md.objects.tree"):
        tree.instance(3303, 0).set(5700, 1.0)
        tree.remove_instance(3303, 0)
    assert seen == [Path(3303, 0, 5700)]
    assert "value listener failed" in caplog.text
    assert "structure listener failed" in caplog.text


def test_batch_holds_deduplicates_and_orders(tree: ObjectTree) -> None:
    seen = _listen(tree)
    inst = tree.instance(TEST_OID, 0)
    with tree.batch():
        inst.set(3, "a")
        inst.set(0, 5)
        with tree.batch():
            inst.set(3, "b")
        assert seen == []  # the inner batch ending delivers nothing
    assert seen == [Path(TEST_OID, 0, 3), Path(TEST_OID, 0, 0)]


def test_batch_delivers_even_when_the_body_raises(tree: ObjectTree) -> None:
    seen = _listen(tree)
    with pytest.raises(RuntimeError), tree.batch():
        tree.instance(TEST_OID, 0).set(3, "a")
        raise RuntimeError("boom")
    assert seen == [Path(TEST_OID, 0, 3)]
    tree.instance(TEST_OID, 0).set(3, "b")  # and batching is over
    assert seen[-1] == Path(TEST_OID, 0, 3) and len(seen) == 2


def test_instance_batch_uses_its_tree_or_nothing(tree: ObjectTree, tdef: ObjectDef) -> None:
    seen = _listen(tree)
    inst = tree.instance(TEST_OID, 0)
    with inst.batch():
        inst.set(3, "a")
        inst.set(6, 1)
        assert seen == []
    assert seen == [Path(TEST_OID, 0, 3), Path(TEST_OID, 0, 6)]
    with ObjectInstance(tdef, 9).batch():  # detached: a no-op
        pass
