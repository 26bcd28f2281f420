"""Tests for the IPSO digital objects: 3200 Digital Input, 3201 Digital Output, 3347 Push Button."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from gpiozero.pins.mock import MockFactory

from lwm2md.drivers.gpio import GpioInput, GpioUnavailable
from lwm2md.engine.attributes import AttributeStore
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.dm import DeviceManagement
from lwm2md.errors import BadRequest, DriverFault
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef, Record, Value
from lwm2md.objects.digital import (
    DigitalInputInstance,
    DigitalOutputInstance,
    build_gpio_instance,
    edge_code,
)
from lwm2md.objects.tree import ObjectTree

T = TypeVar("T")
CATALOG = Catalog.builtin()
DEBOUNCE = 0.05  # seconds, the debounce_ms=50 used below


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def definition(oid: int) -> ObjectDef:
    found = CATALOG.get(oid)
    assert found is not None
    return found


class FakeInput:
    """A DigitalIn whose level the test sets; like gpiozero it reports changes only."""

    name = "FAKE1"

    def __init__(self, level: bool = False) -> None:
        self.level = level
        self.callbacks: list[Callable[[bool], None]] = []
        self.closed = False

    @property
    def value(self) -> bool:
        return self.level

    def on_change(self, callback: Callable[[bool], None]) -> None:
        self.callbacks.append(callback)

    def close(self) -> None:
        self.closed = True

    def drive(self, level: bool) -> None:
        if level != self.level:
            self.level = level
            for callback in list(self.callbacks):
                callback(level)


class FakeOutput:
    name = "FAKE2"

    def __init__(self) -> None:
        self.driven: list[bool] = []

    @property
    def value(self) -> bool:
        return self.driven[-1] if self.driven else False

    def set(self, value: bool) -> None:
        self.driven.append(value)

    def close(self) -> None:
        pass


class DenyingFactory(MockFactory):  # type: ignore[misc]
    """A mock factory whose listed pins fail like a gpiochip without permission."""

    def __init__(self, denied: set[int]) -> None:
        super().__init__()
        self.denied = denied

    def pin(self, name: Any, pin_class: Any = None, **kwargs: Any) -> Any:
        if name in self.denied:
            raise PermissionError(13, "Permission denied", "/dev/gpiochip0")
        return super().pin(name, pin_class, **kwargs)


class Rig:
    """A tree with one 3200 instance over a FakeInput, plus a DM and a change log."""

    def __init__(self, *, debounce_ms: int = 0, edge: int = 2, oid: int = 3200, level: bool = False) -> None:
        self.clock = FakeClock()
        self.tree = ObjectTree(CATALOG)
        self.dm = DeviceManagement(self.tree, AttributeStore())
        self.pin = FakeInput(level)
        self.inst = DigitalInputInstance(
            definition(oid), 0, self.pin, clock=self.clock, debounce_ms=debounce_ms, edge=edge
        )
        self.tree.add_instance(self.inst)
        self.changes: list[str] = []
        self.tree.on_value_change(lambda path: self.changes.append(str(path)))

    async def drive(self, level: bool, then: float = 0.0) -> None:
        """Change the pin, let the loop take the edge, then let ``then`` seconds pass."""
        self.pin.drive(level)
        await self.clock.advance(then)

    def value(self, rid: int) -> Value:
        [record] = self.dm.read(Path(self.inst.oid, 0, rid))
        return record.value

    def write(self, rid: int, value: Value) -> None:
        self.dm.write(Path(self.inst.oid, 0, rid), [Record(Path(self.inst.oid, 0, rid), value)], replace=True)


# -- 3200: state, counter, debounce ----------------------------------------------------


def test_state_and_counter_follow_the_pin_and_notify_at_once() -> None:
    async def scenario() -> None:
        r = Rig()
        assert r.value(5500) is False and r.value(5501) == 0
        await r.drive(True)
        assert r.value(5500) is True
        assert r.value(5501) == 1
        assert r.value(5518) == int(r.clock.wall())
        assert r.changes == ["/3200/0/5500", "/3200/0/5501", "/3200/0/5518"]
        await r.drive(False)
        assert r.value(5500) is False and r.value(5501) == 1, "falling edge not counted (edge 2)"

    run(scenario())


def test_initial_state_comes_from_the_pin() -> None:
    async def scenario() -> None:
        r = Rig(level=True)
        assert r.value(5500) is True and r.value(5501) == 0

    run(scenario())


def test_a_bouncing_contact_within_debounce_counts_once() -> None:
    async def scenario() -> None:
        r = Rig(debounce_ms=50)
        for level in (True, False, True, False, True):  # contact bounce, 10 ms apart
            await r.drive(level, then=0.01)
        assert r.value(5501) == 0 and r.value(5500) is False
        assert r.changes == []
        await r.clock.advance(DEBOUNCE - 0.01 - 0.001)
        assert r.value(5501) == 0, "not yet stable for 50 ms since the last bounce"
        await r.clock.advance(0.002)
        assert r.value(5500) is True
        assert r.value(5501) == 1
        assert "/3200/0/5501" in r.changes

    run(scenario())


def test_a_glitch_shorter_than_debounce_is_ignored() -> None:
    async def scenario() -> None:
        r = Rig(debounce_ms=50)
        await r.drive(True, then=0.03)
        await r.drive(False, then=1.0)
        assert r.value(5500) is False and r.value(5501) == 0
        assert r.changes == []

    run(scenario())


def test_debounce_written_by_the_server_applies_to_later_edges() -> None:
    async def scenario() -> None:
        r = Rig(debounce_ms=0)
        r.write(5503, 50)
        assert r.value(5503) == 50
        await r.drive(True, then=0.02)
        assert r.value(5501) == 0
        await r.clock.advance(0.03)
        assert r.value(5501) == 1

    run(scenario())


@pytest.mark.parametrize(("edge", "expected"), [(1, 2), (2, 2), (3, 4)], ids=["falling", "rising", "both"])
def test_edge_selection_chooses_what_counts(edge: int, expected: int) -> None:
    async def scenario() -> None:
        r = Rig()
        r.write(5504, edge)
        for level in (True, False, True, False):
            await r.drive(level)
        assert r.value(5501) == expected

    run(scenario())


def test_polarity_inverts_the_state_without_counting_and_edges_follow_it() -> None:
    async def scenario() -> None:
        r = Rig(edge=2)
        r.write(5502, True)
        assert r.value(5500) is True, "pin low, inverted"
        assert r.value(5501) == 0
        assert "/3200/0/5500" in r.changes
        await r.drive(True)  # pin rises = state falls: not a rising edge
        assert r.value(5500) is False and r.value(5501) == 0
        await r.drive(False)  # pin falls = state rises
        assert r.value(5500) is True and r.value(5501) == 1

    run(scenario())


def test_counter_reset() -> None:
    async def scenario() -> None:
        r = Rig()
        for level in (True, False, True):
            await r.drive(level)
        assert r.value(5501) == 2
        r.changes.clear()
        await r.dm.execute(Path(3200, 0, 5505), None)
        assert r.value(5501) == 0
        assert r.changes == ["/3200/0/5501"]
        await r.drive(False)
        await r.drive(True)
        assert r.value(5501) == 1

    run(scenario())


@pytest.mark.parametrize(
    ("rid", "value"), [(5504, 0), (5504, 4), (5503, -1), (5503, 60_001)], ids=["edge0", "edge4", "neg", "big"]
)
def test_out_of_range_settings_are_bad_requests(rid: int, value: int) -> None:
    async def scenario() -> None:
        r = Rig(debounce_ms=20, edge=2)
        before = r.value(rid)
        with pytest.raises(BadRequest, match=f"/3200/0/{rid}"):
            r.write(rid, value)
        assert r.value(rid) == before

    run(scenario())


def test_replace_write_of_the_instance_restores_construction_settings() -> None:
    async def scenario() -> None:
        r = Rig(debounce_ms=0, edge=2)
        r.write(5502, True)
        r.write(5503, 500)
        r.write(5504, 3)
        assert r.value(5500) is True
        r.dm.write(Path(3200, 0), [Record(Path(3200, 0, 5750), "door")], replace=True)
        assert not r.inst.has(5502) and not r.inst.has(5503) and not r.inst.has(5504)
        assert r.value(5500) is False, "polarity back to normal"
        await r.drive(True)
        assert r.value(5501) == 1, "debounce back to 0: counted at once"
        await r.drive(False)
        assert r.value(5501) == 1, "edge selection back to rising"

    run(scenario())


def test_edges_from_another_thread_are_handled_on_the_loop() -> None:
    async def scenario() -> None:
        r = Rig()
        loop_thread = threading.get_ident()
        seen: list[int] = []
        r.tree.on_value_change(lambda path: seen.append(threading.get_ident()))
        worker = threading.Thread(target=r.pin.drive, args=(True,))
        worker.start()
        worker.join()
        assert r.inst.counter == 0, "nothing happens on the driver's thread"
        await r.clock.settle()
        assert r.inst.counter == 1
        assert seen and set(seen) == {loop_thread}

    run(scenario())


def test_without_an_event_loop_edges_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    pin = FakeInput()
    inst = DigitalInputInstance(definition(3200), 0, pin, clock=FakeClock())
    with caplog.at_level(logging.WARNING):
        pin.drive(True)
        pin.drive(False)
    assert inst.counter == 0 and inst.state is False
    assert caplog.text.count("no event loop") == 1


def test_close_cancels_a_pending_debounce_and_releases_the_pin() -> None:
    async def scenario() -> None:
        r = Rig(debounce_ms=50)
        await r.drive(True, then=0.01)
        r.inst.close()
        await r.clock.advance(1.0)
        assert r.pin.closed
        assert r.value(5501) == 0
        await r.drive(False)  # an edge already on its way when the pin closed
        await r.drive(True, then=1.0)
        assert r.value(5501) == 0 and r.value(5500) is False

    run(scenario())


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="debounce_ms"):
        DigitalInputInstance(definition(3200), 0, FakeInput(), clock=FakeClock(), debounce_ms=-5)
    with pytest.raises(ValueError, match="edge"):
        DigitalInputInstance(definition(3200), 0, FakeInput(), clock=FakeClock(), edge=7)
    with pytest.raises(ValueError, match="3201"):
        DigitalInputInstance(definition(3201), 0, FakeInput(), clock=FakeClock())
    with pytest.raises(ValueError, match="3200"):
        DigitalOutputInstance(definition(3200), 0, FakeOutput())


def test_edge_code() -> None:
    assert [edge_code(e) for e in ("falling", "rising", "both", 1, 2, 3)] == [1, 2, 3, 1, 2, 3]
    for bad in ("up", 0, 4, True):
        with pytest.raises(ValueError):
            edge_code(bad)  # type: ignore[arg-type]


# -- build_gpio_instance on gpiozero's mock pins ------------------------------------------


def test_build_input_on_a_mock_pin() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        clock = FakeClock()
        inst = build_gpio_instance(
            tree, kind="input", pin=17, pin_factory=factory, debounce_ms=10, edge="both",
            application_type="door", clock=clock,
        )  # fmt: skip
        assert isinstance(inst, DigitalInputInstance)
        assert tree.instance(3200, 0) is inst
        assert inst.read(5504) == 3 and inst.read(5503) == 10
        assert inst.read(5750) == "door" and inst.read(5751) == "GPIO17"
        assert factory.pin(17).pull == "floating"
        factory.pin(17).drive_high()
        await clock.advance(0.01)
        assert inst.read(5500) is True and inst.read(5501) == 1
        inst.close()

    run(scenario())


def test_build_button_pulls_up_and_counts_presses() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        clock = FakeClock()
        button = build_gpio_instance(tree, kind="button", pin=5, pin_factory=factory, clock=clock)
        assert button.path == Path(3347, 0)
        assert set(button.resource_ids()) <= set(definition(3347).resources)
        assert not button.has(5502) and not button.has(5505)
        assert factory.pin(5).pull == "up"
        assert button.read(5500) is False
        factory.pin(5).drive_low()  # pressed
        await clock.settle()
        assert button.read(5500) is True and button.read(5501) == 1
        factory.pin(5).drive_high()  # released
        await clock.settle()
        assert button.read(5500) is False and button.read(5501) == 1

    run(scenario())


def test_build_input_with_explicit_pull_ignores_active_high() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        inst = build_gpio_instance(tree, kind="input", pin=17, pin_factory=factory, pull_up=True,
                                   clock=FakeClock())  # fmt: skip
        assert factory.pin(17).pull == "up"
        assert inst.read(5500) is False, "pulled up and idle = inactive"

    run(scenario())


def test_every_kind_populates_only_defined_resources() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        for pin, kind in ((17, "input"), (18, "output"), (5, "button")):
            inst = build_gpio_instance(tree, kind=kind, pin=pin, pin_factory=factory,  # type: ignore[arg-type]
                                       application_type="x", clock=FakeClock())  # fmt: skip
            defined = definition(inst.oid).resources
            assert inst.resource_ids(), kind
            assert set(inst.resource_ids()) <= set(defined), kind
            assert {rid for rid, d in defined.items() if d.mandatory} <= set(inst.resource_ids()), kind

    run(scenario())


def test_build_output_drives_through_polarity() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        dm = DeviceManagement(tree, AttributeStore())
        out = build_gpio_instance(tree, kind="output", pin=18, pin_factory=factory, clock=FakeClock())
        assert isinstance(out, DigitalOutputInstance)
        pin = factory.pin(18)

        def write(rid: int, value: Value) -> None:
            dm.write(Path(3201, 0, rid), [Record(Path(3201, 0, rid), value)], replace=True)

        assert pin.state is False and out.read(5550) is False and out.read(5551) is False
        write(5550, True)
        assert pin.state is True
        write(5551, True)
        assert pin.state is False, "polarity re-drives the pin inverted"
        assert out.read(5550) is True, "5550 keeps the logical state"
        write(5550, False)
        assert pin.state is True
        dm.write(Path(3201, 0), [Record(Path(3201, 0, 5750), "pump")], replace=True)  # drops 5551
        assert not out.has(5551)
        assert pin.state is False, "polarity back to normal re-drives the pin"
        assert out.read(5550) is False

    run(scenario())


def test_build_output_active_low_with_initial_state() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        out = build_gpio_instance(tree, kind="output", pin=18, pin_factory=factory, active_high=False,
                                  initial=True, clock=FakeClock())  # fmt: skip
        assert out.read(5550) is True
        assert factory.pin(18).state is False, "active low: on = pin low"

    run(scenario())


def test_output_write_rejects_non_booleans_and_failed_drives_are_faults() -> None:
    fake = FakeOutput()
    out = DigitalOutputInstance(definition(3201), 0, fake, initial=True)
    assert fake.driven == [True]
    with pytest.raises(BadRequest):
        out.write(5550, 1)

    def broken(value: bool) -> None:
        raise GpioUnavailable("FAKE2: cannot drive: EIO")

    fake.set = broken  # type: ignore[method-assign]
    with pytest.raises(DriverFault, match="/3201/0/5550: FAKE2: cannot drive"):
        out.write(5550, False)


def test_build_allocates_instance_ids() -> None:
    async def scenario() -> None:
        factory = MockFactory()
        tree = ObjectTree(CATALOG)
        clock = FakeClock()
        first = build_gpio_instance(tree, kind="input", pin=17, pin_factory=factory, clock=clock)
        fixed = build_gpio_instance(tree, kind="input", pin=27, iid=5, pin_factory=factory, clock=clock)
        second = build_gpio_instance(tree, kind="input", pin=22, pin_factory=factory, clock=clock)
        assert (first.iid, fixed.iid, second.iid) == (0, 5, 1)
        with pytest.raises(ValueError, match="/3200/5 already exists"):
            build_gpio_instance(tree, kind="input", pin=23, iid=5, pin_factory=factory, clock=clock)
        assert all(info.name != "GPIO23" for info in factory.pins), "the refused build touched no pin"

    run(scenario())


def test_build_releases_the_pin_when_the_tree_refuses_the_instance() -> None:
    async def scenario() -> None:
        single = dataclasses.replace(definition(3200), multiple=False)  # e.g. from a custom DDF
        tree = ObjectTree(Catalog([single]))
        factory = MockFactory()
        build_gpio_instance(tree, kind="input", pin=17, pin_factory=factory, clock=FakeClock())
        with pytest.raises(ValueError, match="single-instance"):
            build_gpio_instance(tree, kind="input", pin=27, pin_factory=factory, clock=FakeClock())
        GpioInput(27, pull_up=False, pin_factory=factory)

    run(scenario())


def test_build_rejects_bad_arguments_before_touching_the_pin() -> None:
    factory = MockFactory()
    tree = ObjectTree(CATALOG)
    with pytest.raises(ValueError, match="kind"):
        build_gpio_instance(tree, kind="relay", pin=17, pin_factory=factory)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="edge"):
        build_gpio_instance(tree, kind="input", pin=17, pin_factory=factory, edge="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="debounce"):
        build_gpio_instance(tree, kind="input", pin=17, pin_factory=factory, debounce_ms=-1)
    assert not tree.instances(3200)
    GpioInput(17, pull_up=False, pin_factory=factory)


def test_a_pin_that_cannot_open_gives_a_faulted_instance_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        factory = DenyingFactory({22, 23})
        tree = ObjectTree(CATALOG)
        dm = DeviceManagement(tree, AttributeStore())
        clock = FakeClock()
        good = build_gpio_instance(tree, kind="input", pin=17, pin_factory=factory, clock=clock)
        bad = build_gpio_instance(tree, kind="input", pin=22, pin_factory=factory, clock=clock)
        bad_out = build_gpio_instance(tree, kind="output", pin=23, pin_factory=factory, clock=clock)
        assert bad.iid == 1 and bad.has(5500)
        assert bad_out.fault is not None and "GPIO23" in bad_out.fault
        with pytest.raises(DriverFault, match=r"^/3200/1/5500: GPIO22: cannot open: PermissionError"):
            dm.read(Path(3200, 1, 5500))
        with pytest.raises(DriverFault, match="GPIO22"):
            dm.read(Path(3200, 1, 5501))
        assert dm.read(Path(3200, 1, 5751))[0].value == "GPIO22", "settings stay readable"
        with pytest.raises(DriverFault, match=r"/3201/0/5550: GPIO23"):
            dm.read(Path(3201, 0, 5550))
        with pytest.raises(DriverFault, match="GPIO23"):
            dm.write(Path(3201, 0, 5550), [Record(Path(3201, 0, 5550), True)], replace=True)
        assert dm.read(Path(3200, 0, 5500))[0].value is False, "the other pin works"
        assert good.fault is None and bad.fault is not None
        assert "/3200/1: GPIO22: cannot open" in caplog.text

    run(scenario())
