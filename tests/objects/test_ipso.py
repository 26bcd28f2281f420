"""Tests for the generic IPSO sensor instance and the sensor sampler."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from lwm2md.drivers.base import DriverError, Quantity
from lwm2md.drivers.simulated import SimulatedSensor
from lwm2md.engine.clock import FakeClock
from lwm2md.errors import DriverFault, MethodNotAllowed, NotFound
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef, Operations, ResourceDef, ResourceType
from lwm2md.objects.ipso import IPSO_QUANTITY, SensorInstance, quantities_for_objects, value_rid
from lwm2md.objects.sampling import SensorSampler, build_sensor_instances, default_max_backoff
from lwm2md.objects.tree import ObjectInstance, ObjectTree

T = TypeVar("T")

CATALOG = Catalog.builtin()
TEMPERATURE = Quantity("temperature", "Cel", -40.0, 85.0)


def definition(oid: int) -> ObjectDef:
    found = CATALOG.get(oid)
    assert found is not None, f"built-in catalog lacks {oid}"
    return found


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def inline(func: Callable[[], T]) -> T:
    """Run a blocking call on the loop thread: keeps FakeClock tests deterministic."""
    return func()


def listen(tree: ObjectTree) -> list[Path]:
    seen: list[Path] = []
    tree.on_value_change(seen.append)
    return seen


def temperature_in_tree() -> tuple[ObjectTree, SensorInstance, list[Path]]:
    tree = ObjectTree(CATALOG)
    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    tree.add_instance(inst)
    return tree, inst, listen(tree)


# -- SensorInstance -----------------------------------------------------------


def test_mapping_covers_the_served_objects() -> None:
    assert IPSO_QUANTITY[3303] == "temperature"
    assert IPSO_QUANTITY[3315] == "pressure"
    assert quantities_for_objects([3303, 3304, 3315]) == ["temperature", "humidity", "pressure"]
    with pytest.raises(KeyError, match="3200"):
        quantities_for_objects([3200])
    assert value_rid(3202) == 5600
    assert value_rid(3303) == 5700
    for oid in IPSO_QUANTITY:
        assert value_rid(oid) in definition(oid).resources


def test_static_resources_from_quantity() -> None:
    inst = SensorInstance(definition(3303), 0, TEMPERATURE, application_type="outdoor")
    assert inst.read(5701) == "Cel"
    assert inst.read(5603) == -40.0
    assert inst.read(5604) == 85.0
    assert inst.read(5750) == "outdoor"
    assert inst.has(5605)


def test_value_before_first_sample_is_a_driver_fault() -> None:
    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    with pytest.raises(DriverFault):
        inst.read(5700)
    with pytest.raises(NotFound):
        inst.read(5601)
    assert inst.value is None


def test_min_max_tracking_and_reset() -> None:
    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    for value in (20.0, 18.5, 23.25, 21.0):
        inst.update(value)
    assert inst.read(5700) == 21.0
    assert inst.read(5601) == 18.5
    assert inst.read(5602) == 23.25
    run(inst.execute(5605, None))
    assert inst.read(5601) == 21.0
    assert inst.read(5602) == 21.0
    inst.update(22.0)
    assert (inst.read(5601), inst.read(5602)) == (21.0, 22.0)


def test_reset_before_any_sample_keeps_min_max_absent() -> None:
    inst = SensorInstance(definition(3304), 0, Quantity("humidity", "%RH"))
    run(inst.execute(5605, None))
    assert not inst.has(5601)
    assert not inst.has(5603)  # the quantity has no range
    inst.update(40.0)
    assert inst.read(5601) == 40.0


def test_analog_input_uses_5600() -> None:
    inst = SensorInstance(definition(3202), 1, Quantity("analog", "", 0.0, 1.0))
    inst.update(0.25)
    assert inst.read(5600) == 0.25
    assert not inst.has(5700)
    assert not inst.has(5701)  # 3202 has no Sensor Units
    assert inst.read(5601) == 0.25
    assert inst.read(5603) == 0.0


def test_only_defined_resources_are_populated() -> None:
    minimal = ObjectDef(
        oid=3303,
        name="Temperature",
        multiple=True,
        mandatory=False,
        resources={5700: ResourceDef(5700, "Sensor Value", Operations.R, False, True, ResourceType.FLOAT)},
    )
    inst = SensorInstance(minimal, 0, TEMPERATURE, application_type="x")
    inst.update(1.0, at=1_700_000_000.0)
    assert inst.resource_ids() == [5700]
    with pytest.raises(MethodNotAllowed):
        run(inst.execute(5605, None))


def test_non_ipso_object_is_refused() -> None:
    with pytest.raises(ValueError, match="3200"):
        SensorInstance(definition(3200), 0, TEMPERATURE)


def test_application_type_is_writable_and_stored() -> None:
    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    inst.write(5750, "boiler return")
    assert inst.read(5750) == "boiler return"


def test_non_finite_sample_is_rejected() -> None:
    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    with pytest.raises(ValueError):
        inst.update(math.nan)
    assert inst.value is None


def test_changes_reach_listeners_only_on_change() -> None:
    _, inst, seen = temperature_in_tree()
    inst.update(20.0, at=1000.0)
    first = set(seen)
    assert Path(3303, 0, 5700) in first
    assert {Path(3303, 0, 5601), Path(3303, 0, 5602), Path(3303, 0, 5518)} <= first
    seen.clear()
    inst.update(20.0, at=1010.0)
    assert seen == []
    inst.update(19.0, at=1020.0)
    assert set(seen) == {Path(3303, 0, 5700), Path(3303, 0, 5601), Path(3303, 0, 5518)}
    assert inst.read(5518) == 1020


def test_timestamp_marks_the_last_change() -> None:
    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    inst.update(20.0, at=1000.9)
    inst.update(20.0, at=2000.0)
    assert inst.read(5518) == 1000
    inst.update(21.0)  # no time given: timestamp unchanged
    assert inst.read(5518) == 1000


def test_fault_and_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lwm2md.objects.ipso")
    _, inst, seen = temperature_in_tree()
    inst.update(20.0)
    seen.clear()
    for _ in range(3):
        inst.fault(DriverError("i2c NAK at 0x76"))
    assert inst.faulted
    with pytest.raises(DriverFault, match="NAK"):
        inst.read(5700)
    assert inst.read(5601) == 20.0  # min/max stay readable
    assert inst.value == 20.0
    assert seen == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "/3303/0" in warnings[0].getMessage()

    inst.update(20.0)
    inst.update(20.5)
    assert not inst.faulted
    assert inst.read(5700) == 20.5
    recoveries = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recoveries) == 1

    inst.fault("timeout")
    inst.fault("timeout")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# -- SensorSampler ------------------------------------------------------------


class RecordingSensor:
    """Wraps a SimulatedSensor, recording the fake time of every read."""

    def __init__(self, clock: FakeClock, kinds: list[str]) -> None:
        self.inner = SimulatedSensor(kinds, time_source=clock.now)
        self.name = "rec"
        self.clock = clock
        self.reads: list[float] = []
        self.closed = False

    def quantities(self) -> dict[str, Quantity]:
        return self.inner.quantities()

    def read(self) -> dict[str, float]:
        self.reads.append(self.clock.now())
        return self.inner.read()

    def close(self) -> None:
        self.closed = True


def test_default_backoff_cap() -> None:
    assert default_max_backoff(10) == 80
    assert default_max_backoff(60) == 300
    assert default_max_backoff(600) == 600


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SensorSampler(SimulatedSensor(["temperature"]), [], interval=0)


def test_sampling_cadence() -> None:
    async def scenario() -> list[float]:
        clock = FakeClock()
        sensor = RecordingSensor(clock, ["temperature"])
        inst = SensorInstance(definition(3303), 0, sensor.quantities()["temperature"])
        sampler = SensorSampler(sensor, [inst], interval=10, run_blocking=inline)
        sampler.start(clock)
        assert sampler.running
        await clock.advance(35)
        assert inst.value is not None
        await sampler.stop()
        assert not sampler.running
        assert sensor.closed
        await clock.advance(100)  # stopped: no more reads
        return sensor.reads

    assert run(scenario()) == [0, 10, 20, 30]


def test_backoff_doubles_to_the_cap_and_resets_after_recovery() -> None:
    async def scenario() -> tuple[list[float], list[float]]:
        clock = FakeClock()
        sensor = RecordingSensor(clock, ["temperature"])
        inst = SensorInstance(definition(3303), 0, sensor.quantities()["temperature"])
        sampler = SensorSampler(sensor, [inst], interval=10, run_blocking=inline)
        sensor.inner.fail(True)
        sampler.start(clock)
        await clock.advance(300)
        failing = list(sensor.reads)
        assert inst.faulted
        assert sampler.failures == len(failing)
        sensor.inner.fail(False)
        sensor.reads.clear()
        await clock.advance(400 - 300)
        await sampler.stop()
        return failing, sensor.reads

    failing, recovered = run(scenario())
    # waits 20, 40, 80, then capped at 80 (8 x 10 s)
    assert failing == [0, 20, 60, 140, 220, 300]
    # the read at 380 succeeds; then back to every 10 s
    assert recovered == [380, 390, 400]


def test_max_backoff_is_configurable() -> None:
    async def scenario() -> list[float]:
        clock = FakeClock()
        sensor = RecordingSensor(clock, ["temperature"])
        sensor.inner.fail(True)
        sampler = SensorSampler(sensor, [], interval=5, max_backoff=12, run_blocking=inline)
        sampler.start(clock)
        await clock.advance(50)
        await sampler.stop()
        return sensor.reads

    assert run(scenario()) == [0, 10, 22, 34, 46]


def test_one_sensor_feeds_several_objects_and_notifies_only_changes() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        tree = ObjectTree(CATALOG)
        sensor = SimulatedSensor(["temperature", "humidity", "pressure"], time_source=clock.now)
        for kind, value in (("temperature", 21.0), ("humidity", 40.0), ("pressure", 100000.0)):
            sensor.set_value(kind, value)
        built = build_sensor_instances(tree, sensor, objects=[3303, 3304, 3315])
        seen = listen(tree)
        sampler = SensorSampler(sensor, built, interval=30, run_blocking=inline)
        sampler.start(clock)
        await clock.settle()
        assert tree.instance(3303, 0).read(5700) == 21.0
        assert tree.instance(3304, 0).read(5700) == 40.0
        assert tree.instance(3315, 0).read(5700) == 100000.0
        assert tree.instance(3315, 0).read(5701) == "Pa"
        assert Path(3304, 0, 5700) in seen
        seen.clear()
        await clock.advance(90)  # three more samples, nothing changes
        assert seen == []
        sensor.set_value("humidity", 41.5)
        await clock.advance(30)
        assert Path(3304, 0, 5700) in seen
        assert Path(3303, 0, 5700) not in seen
        assert tree.instance(3304, 0).read(5602) == 41.5
        assert tree.instance(3303, 0).read(5518) == int(clock.wall_offset)
        await sampler.stop()

    run(scenario())


def test_fault_episode_is_logged_once_and_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> SensorInstance:
        clock = FakeClock()
        sensor = RecordingSensor(clock, ["temperature"])
        inst = SensorInstance(definition(3303), 0, sensor.quantities()["temperature"])
        sampler = SensorSampler(sensor, [inst], interval=10, run_blocking=inline)
        sampler.start(clock)
        await clock.settle()
        sensor.inner.fail(True)
        await clock.advance(200)
        assert len(sensor.reads) > 4
        with pytest.raises(DriverFault):
            inst.read(5700)
        sensor.inner.fail(False)
        await clock.advance(100)
        inst.read(5700)
        await sampler.stop()
        return inst

    run(scenario())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert len([r for r in caplog.records if "recovered" in r.getMessage()]) == 1


def test_missing_or_bad_values_fault_only_their_instance() -> None:
    class Partial:
        name = "partial"

        def quantities(self) -> dict[str, Quantity]:
            return {"temperature": TEMPERATURE, "humidity": Quantity("humidity", "%RH")}

        def read(self) -> dict[str, float]:
            return {"temperature": 20.0, "humidity": math.inf}

    tree = ObjectTree(CATALOG)
    temp, hum = build_sensor_instances(tree, Partial(), objects=[3303, 3304])
    sampler = SensorSampler(Partial(), [temp, hum], interval=1, run_blocking=inline)
    assert run(sampler.sample_once()) is True
    assert temp.read(5700) == 20.0
    assert hum.faulted


def test_unexpected_driver_exception_is_a_fault_with_traceback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Buggy:
        name = "buggy"

        def quantities(self) -> dict[str, Quantity]:
            return {"temperature": TEMPERATURE}

        def read(self) -> dict[str, float]:
            raise ZeroDivisionError("oops")

    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    sampler = SensorSampler(Buggy(), [inst], interval=1, run_blocking=inline)
    assert run(sampler.sample_once()) is False
    assert run(sampler.sample_once()) is False
    assert inst.faulted
    assert sampler.failures == 2
    assert len([r for r in caplog.records if r.exc_info]) == 1


def test_default_runner_uses_a_worker_thread() -> None:
    import threading

    threads: list[str] = []

    class ThreadNoting:
        name = "t"

        def quantities(self) -> dict[str, Quantity]:
            return {"temperature": TEMPERATURE}

        def read(self) -> dict[str, float]:
            threads.append(threading.current_thread().name)
            return {"temperature": 1.0}

    inst = SensorInstance(definition(3303), 0, TEMPERATURE)
    assert run(SensorSampler(ThreadNoting(), [inst], interval=1).sample_once()) is True
    assert threads and threads[0] != threading.main_thread().name
    assert inst.read(5700) == 1.0


def test_start_twice_is_an_error() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        sampler = SensorSampler(SimulatedSensor(["temperature"]), [], interval=1, run_blocking=inline)
        sampler.start(clock)
        with pytest.raises(RuntimeError):
            sampler.start(clock)
        await sampler.stop()
        await sampler.stop()

    run(scenario())


# -- build_sensor_instances ---------------------------------------------------


def test_build_takes_next_free_iids() -> None:
    tree = ObjectTree(CATALOG)
    tree.add_instance(ObjectInstance(definition(3303), 0))
    tree.add_instance(ObjectInstance(definition(3303), 2))
    sensor = SimulatedSensor(["temperature", "humidity"])
    built = build_sensor_instances(tree, sensor, objects=[3303, 3304])
    assert [(i.oid, i.iid) for i in built] == [(3303, 1), (3304, 0)]
    assert tree.instance(3303, 1) is built[0]
    again = build_sensor_instances(tree, sensor, objects=[3303])
    assert again[0].iid == 3


def test_build_with_explicit_iids() -> None:
    tree = ObjectTree(CATALOG)
    sensor = SimulatedSensor(None)
    built = build_sensor_instances(tree, sensor, objects=[3202, 3316], instances=[4, 7])
    assert [(i.oid, i.iid) for i in built] == [(3202, 4), (3316, 7)]
    assert built[1].read(5701) == "V"


@pytest.mark.parametrize(
    ("objects", "instances", "message"),
    [
        ([3303, 3200], None, "not an IPSO sensor"),
        ([3303, 3304], None, "not humidity"),
        ([3303], [0, 1], "instance ids"),
        ([3303, 3303], None, "repeat"),
        ([], None, "no objects"),
        ([3303], [5], "already exists"),
    ],
)
def test_build_refuses_bad_requests_without_touching_the_tree(
    objects: list[int], instances: list[int] | None, message: str
) -> None:
    tree = ObjectTree(CATALOG)
    tree.add_instance(ObjectInstance(definition(3303), 5))
    sensor = SimulatedSensor(["temperature"])
    with pytest.raises(ValueError, match=message):
        build_sensor_instances(tree, sensor, objects=objects, instances=instances)
    assert [i.iid for i in tree.instances(3303)] == [5]
    assert tree.instances(3304) == []


def test_build_refuses_objects_missing_from_the_catalog() -> None:
    tree = ObjectTree(Catalog([definition(3303)]))
    with pytest.raises(ValueError, match="not in the catalog"):
        build_sensor_instances(tree, SimulatedSensor(None), objects=[3303, 3304])
    assert tree.instances(3303) == []


def test_positional_call_forms_and_sample_now() -> None:
    tree = ObjectTree(CATALOG)
    sensor = SimulatedSensor(["temperature", "humidity"], time_source=lambda: 0.0)
    sensor.set_value("humidity", 55.0)
    built = build_sensor_instances(tree, sensor, [3303, 3304], [3, 4])
    sampler = SensorSampler(sensor, built, 60)
    assert sampler.interval == 60.0
    assert sampler.sample_now(at=1_000.0) is True
    assert tree.instance(3304, 4).read(5700) == 55.0
    assert tree.instance(3304, 4).read(5518) == 1000
    sensor.fail(True)
    assert sampler.sample_now() is False
    assert built[0].faulted
    assert sampler.failures == 1
