"""Tests for lwm2md.engine.observe on a FakeClock: when notifications go out, and with what."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from lwm2md.engine.attributes import AttributeStore, parse_query
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.observe import Observation, ObserveEngine
from lwm2md.errors import DriverFault, Lwm2mError
from lwm2md.model.path import Path
from lwm2md.model.types import Record, ResourceData, Value
from lwm2md.objects.tree import ObjectTree

T = 33000  # the conftest's synthetic object
SSID = 101
TEMP = "/3303/0/5700"


@dataclass
class Sent:
    at: float
    ident: int
    values: list[tuple[str, Value]] | str  # the records, or the error code
    confirmable: bool


@dataclass
class Env:
    tree: ObjectTree
    dm: DeviceManagement
    engine: ObserveEngine
    clock: FakeClock
    defaults: dict[int, tuple[int, int]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)

    def emit(self, obs: Observation, result: list[Record] | Lwm2mError, confirmable: bool) -> None:
        if isinstance(result, Lwm2mError):
            values: list[tuple[str, Value]] | str = result.dotted_code
        else:
            values = [(str(r.path), r.value) for r in result]
        self.sent.append(Sent(self.clock.now(), obs.ident, values, confirmable))

    def observe(self, *paths: str, ssid: int = SSID, composite: bool = False) -> Observation:
        obs = Observation(ssid, tuple(Path.parse(p) for p in paths), self.emit, composite=composite)
        self.engine.start(obs, self.engine.read(obs))
        return obs

    def attrs(self, path: str, *query: str, ssid: int = SSID) -> None:
        target = Path.parse(path)
        numeric = self.dm.attribute_target(target)
        self.dm.attributes.apply(ssid, target, parse_query(query), numeric=numeric)
        self.engine.attributes_changed(ssid)

    def temp(self, value: float) -> None:
        self.tree.instance(3303, 0).set(5700, value)

    def times(self) -> list[float]:
        return [s.at for s in self.sent]

    def temps(self) -> list[tuple[float, Value]]:
        return [(s.at, s.values[0][1]) for s in self.sent if not isinstance(s.values, str)]


@pytest.fixture
def env(tree: ObjectTree) -> Env:
    clock = FakeClock()
    dm = DeviceManagement(tree, AttributeStore())
    defaults: dict[int, tuple[int, int]] = {}
    engine = ObserveEngine(
        dm, dm.attributes, clock, lambda ssid: defaults.get(ssid, (0, 0)), con_interval=1000
    )
    return Env(tree, dm, engine, clock, defaults)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run one async scenario; a scheduling loop that never ends fails instead of hanging."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout=10)

    asyncio.run(bounded())


# -- change, pmin, pmax -------------------------------------------------------------


def test_change_notifies_at_once_without_attributes(env: Env) -> None:
    async def scenario() -> None:
        env.observe("/3303/0")
        await env.clock.advance(1)
        env.temp(22.0)
        env.temp(22.0)  # no change: nothing
        await env.clock.advance(1)
        # a server writing the value the resource already has changes nothing either
        env.dm.write(Path(3303, 0, 5750), [Record(Path(3303, 0, 5750), "indoor")], replace=True)
        await env.clock.advance(100)

    run(scenario)
    assert [(s.at, s.values) for s in env.sent] == [
        (1.0, [(TEMP, 22.0), ("/3303/0/5701", "Cel"), ("/3303/0/5750", "indoor")])
    ]
    assert env.sent[0].confirmable is False


def test_change_during_pmin_goes_out_at_pmin_end_with_the_value_then(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "pmin=10")
        env.observe(TEMP)
        await env.clock.advance(3)
        env.temp(25.0)
        await env.clock.advance(3)
        env.temp(26.0)
        await env.clock.advance(6)  # t = 12
        env.temp(27.0)  # pmin since the t=10 notification not over
        await env.clock.advance(20)
        env.temp(28.0)  # t = 32: more than pmin after t=20
        await env.clock.advance(1)

    run(scenario)
    assert env.temps() == [(10.0, 26.0), (20.0, 27.0), (32.0, 28.0)]


def test_pmax_forces_notifications_and_restarts_after_each(env: Env) -> None:
    async def scenario() -> None:
        env.attrs("/3303/0", "pmax=30")
        env.observe(TEMP)
        await env.clock.advance(65)
        env.temp(30.0)  # t = 65
        await env.clock.advance(40)

    run(scenario)
    assert env.temps() == [(30.0, 21.5), (60.0, 21.5), (65.0, 30.0), (95.0, 30.0)]


def test_server_defaults_apply_until_attributes_override(env: Env) -> None:
    async def scenario() -> None:
        env.defaults[SSID] = (5, 20)
        env.observe(TEMP)
        await env.clock.advance(1)
        env.temp(1.0)  # held until t = 5
        await env.clock.advance(24)  # pmax since t = 5 -> t = 25
        env.attrs(TEMP, "pmin=0", "pmax=50")
        env.temp(2.0)
        await env.clock.advance(51)

    run(scenario)
    assert env.temps() == [(5.0, 1.0), (25.0, 1.0), (25.0, 2.0), (75.0, 2.0)]


def test_pmax_below_pmin_is_ignored(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "pmin=20", "pmax=10")
        env.observe(TEMP)
        await env.clock.advance(100)

    run(scenario)
    assert env.sent == []


def test_object_level_attributes_are_inherited(env: Env) -> None:
    async def scenario() -> None:
        env.attrs("/3303", "pmax=15")
        env.observe(TEMP)
        env.observe("/3303/0")
        await env.clock.advance(16)

    run(scenario)
    assert env.times() == [15.0, 15.0]


def test_attributes_written_after_start_rearm_the_timers(env: Env) -> None:
    async def scenario() -> None:
        env.observe(TEMP)
        await env.clock.advance(5)
        env.attrs(TEMP, "pmax=10")
        await env.clock.advance(6)
        env.attrs(TEMP, "pmin=20")
        env.temp(5.0)  # t = 11: held until t = 30 (pmin after the t = 10 notification)
        env.attrs(TEMP, "pmin=3")  # ... then released at the new pmin end, t = 13
        await env.clock.advance(3)

    run(scenario)
    assert env.temps() == [(10.0, 21.5), (13.0, 5.0)]


def test_each_server_has_its_own_attributes(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "pmin=10", ssid=1)
        env.observe(TEMP, ssid=1)
        env.observe(TEMP, ssid=2)
        await env.clock.advance(1)
        env.temp(3.0)
        await env.clock.advance(10)

    run(scenario)
    assert env.times() == [1.0, 10.0]


# -- gt / lt / st -----------------------------------------------------------------------


def _feed(env: Env, values: list[float]) -> Callable[[], Awaitable[None]]:
    async def scenario() -> None:
        env.observe(TEMP)
        for value in values:
            await env.clock.advance(1)
            env.temp(value)

    return scenario


def test_gt_notifies_on_crossing_only(env: Env) -> None:
    env.attrs(TEMP, "gt=25")
    run(_feed(env, [24.0, 25.0, 26.0, 27.0, 25.0, 24.0]))
    assert [v for _, v in env.temps()] == [26.0, 25.0]  # 25 is not above 25


def test_lt_notifies_on_crossing_only(env: Env) -> None:
    env.attrs(TEMP, "lt=0")
    run(_feed(env, [5.0, 0.0, -1.0, -2.0, 0.0, 3.0]))
    assert [v for _, v in env.temps()] == [-1.0, 0.0]  # 0 is not below 0


def test_st_notifies_on_step_from_last_notified(env: Env) -> None:
    env.attrs(TEMP, "st=2")
    run(_feed(env, [22.5, 23.5, 22.0, 21.4, 22.0, 19.0]))
    assert [v for _, v in env.temps()] == [23.5, 21.4, 19.0]


def test_gt_lt_st_combine_with_or(env: Env) -> None:
    env.attrs(TEMP, "lt=10", "gt=30", "st=5")
    run(_feed(env, [25.0, 27.0, 31.0, 29.0, 20.0, 9.0]))
    assert [v for _, v in env.temps()] == [27.0, 31.0, 29.0, 20.0, 9.0]


def test_crossing_during_pmin_is_sent_at_pmin_end_with_current_value(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "gt=25", "pmin=10")
        env.observe(TEMP)
        await env.clock.advance(2)
        env.temp(26.0)
        await env.clock.advance(2)
        env.temp(24.0)
        await env.clock.advance(10)

    run(scenario)
    assert env.temps() == [(10.0, 24.0)]


def test_pmax_overrides_value_conditions(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "gt=25", "pmax=10")
        env.observe(TEMP)
        await env.clock.advance(5)
        env.temp(22.0)  # no crossing
        await env.clock.advance(5)

    run(scenario)
    assert env.temps() == [(10.0, 22.0)]


# -- epmin / epmax ------------------------------------------------------------------------


def _silent_value(env: Env) -> dict[str, float]:
    """Make /33000/0/8 a reader-backed value that changes without telling anyone."""
    state = {"v": 0.0}
    env.tree.instance(T, 0).handle(8, read=lambda: state["v"])
    return state


def test_epmax_evaluates_values_nobody_announces(env: Env) -> None:
    state = _silent_value(env)

    async def scenario() -> None:
        env.attrs(f"/{T}/0/8", "epmax=10")
        env.observe(f"/{T}/0/8")
        await env.clock.advance(5)
        state["v"] = 1.0
        await env.clock.advance(10)  # evaluated at t = 10
        await env.clock.advance(10)  # t = 20: nothing new
        state["v"] = 2.0
        await env.clock.advance(10)

    run(scenario)
    path = f"/{T}/0/8"
    assert [(s.at, s.values) for s in env.sent] == [(10.0, [(path, 1.0)]), (30.0, [(path, 2.0)])]


def test_no_epmax_means_silent_changes_stay_unseen(env: Env) -> None:
    state = _silent_value(env)

    async def scenario() -> None:
        env.observe(f"/{T}/0/8")
        state["v"] = 1.0
        await env.clock.advance(1000)

    run(scenario)
    assert env.sent == []


def test_epmin_spaces_evaluations(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "epmin=5")
        env.observe(TEMP)
        await env.clock.advance(1)
        env.temp(1.0)
        await env.clock.advance(2)
        env.temp(2.0)  # t = 3: still within epmin of the t = 0 evaluation
        await env.clock.advance(3)  # evaluated at t = 5
        env.temp(3.0)  # t = 6: next evaluation at t = 10
        await env.clock.advance(10)

    run(scenario)
    assert env.temps() == [(5.0, 2.0), (10.0, 3.0)]


def test_epmin_never_holds_back_pmax(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "epmin=50", "pmax=30")
        env.observe(TEMP)
        await env.clock.advance(61)

    run(scenario)
    assert env.times() == [30.0, 60.0]


def test_epmax_below_epmin_is_ignored_when_inherited(env: Env) -> None:
    state = _silent_value(env)

    async def scenario() -> None:
        env.attrs(f"/{T}", "epmax=5")
        env.attrs(f"/{T}/0/8", "epmin=20")
        env.observe(f"/{T}/0/8")
        state["v"] = 1.0
        await env.clock.advance(100)

    run(scenario)
    assert env.sent == []


# -- failures, confirmable, lifecycle ------------------------------------------------------


def test_failing_reads_neither_spin_nor_end_the_observation(env: Env) -> None:
    broken = {"on": False}
    value = 21.5

    def reader() -> ResourceData:
        if broken["on"]:
            raise DriverFault("sensor gone")
        return value

    async def scenario() -> None:
        env.attrs(TEMP, "pmax=10", "pmin=2")
        env.tree.instance(3303, 0).handle(5700, read=reader)
        env.observe(TEMP)
        broken["on"] = True
        await env.clock.advance(1)
        env.tree.instance(3303, 0).changed(5700)  # evaluation fails quietly
        await env.clock.advance(34)  # pmax at 10 fails; retried every pmax
        broken["on"] = False
        await env.clock.advance(10)

    run(scenario)
    assert env.times() == [40.0]


def test_pending_change_survives_a_failed_read_at_pmin_end(env: Env) -> None:
    broken = {"on": False}
    value = {"v": 21.5}

    def reader() -> ResourceData:
        if broken["on"]:
            raise DriverFault("sensor gone")
        return value["v"]

    async def scenario() -> None:
        env.attrs(TEMP, "pmin=10")
        env.tree.instance(3303, 0).handle(5700, read=reader)
        env.observe(TEMP)
        value["v"] = 30.0
        env.tree.instance(3303, 0).changed(5700)
        broken["on"] = True
        await env.clock.advance(15)
        broken["on"] = False
        env.tree.instance(3303, 0).changed(5700)  # the held change is still owed
        await env.clock.advance(1)

    run(scenario)
    assert env.temps() == [(15.0, 30.0)]


def test_confirmable_at_least_once_per_con_interval(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "pmax=300")
        env.observe(TEMP)
        await env.clock.advance(2500)

    run(scenario)
    assert [(s.at, s.confirmable) for s in env.sent] == [
        (300.0, False), (600.0, False), (900.0, False), (1200.0, True), (1500.0, False),
        (1800.0, False), (2100.0, False), (2400.0, True),
    ]  # fmt: skip


def test_stop_ends_notifications(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "pmax=10", ssid=1)
        env.attrs(TEMP, "pmax=10", ssid=2)
        first = env.observe(TEMP, ssid=1)
        env.observe(TEMP, ssid=2)
        env.observe("/3/0", ssid=2)
        env.engine.stop(first)
        await env.clock.advance(11)
        assert len(env.engine.observations()) == 2
        env.engine.stop_server(2)
        assert env.engine.observations() == []
        env.temp(3.0)
        await env.clock.advance(100)

    run(scenario)
    assert env.times() == [10.0]


def test_failing_emit_is_logged_and_the_engine_carries_on(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    def bad_emit(obs: Observation, result: list[Record] | Lwm2mError, confirmable: bool) -> None:
        calls.append(env.clock.now())
        raise OSError("socket closed")

    async def scenario() -> None:
        env.attrs(TEMP, "pmax=10")
        obs = Observation(SSID, (Path.parse(TEMP),), bad_emit)
        env.engine.start(obs, env.engine.read(obs))
        await env.clock.advance(25)

    run(scenario)
    assert calls == [10.0, 20.0]
    assert "sending the notification failed" in caplog.text


# -- structure and scope -------------------------------------------------------------------


def test_removing_the_observed_instance_ends_with_4_04(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "pmax=10")
        resource = env.observe(TEMP)
        instance = env.observe("/3303/0")
        other = env.observe("/3/0/0")
        env.dm.delete(Path(3303, 0))
        assert env.engine.observations() == [other]
        await env.clock.advance(50)
        assert {s.ident for s in env.sent} == {resource.ident, instance.ident}

    run(scenario)
    assert [(s.at, s.values, s.confirmable) for s in env.sent] == [(0.0, "4.04", True), (0.0, "4.04", True)]


def test_object_observation_follows_instances_coming_and_going(env: Env) -> None:
    async def scenario() -> None:
        env.observe("/3303")
        await env.clock.advance(1)
        env.dm.create(Path(3303), [Record(Path(3303, 65535, 5750), "outdoor")])
        await env.clock.advance(1)
        env.dm.delete(Path(3303, 0))
        await env.clock.advance(1)

    run(scenario)
    assert [(s.at, s.values) for s in env.sent] == [
        (1.0, [(TEMP, 21.5), ("/3303/0/5701", "Cel"), ("/3303/0/5750", "indoor"),
               ("/3303/1/5750", "outdoor")]),
        (2.0, [("/3303/1/5750", "outdoor")]),
    ]  # fmt: skip


def test_instance_observation_gets_one_notification_per_multi_resource_write(env: Env) -> None:
    async def scenario() -> None:
        env.observe(f"/{T}/0")
        await env.clock.advance(1)
        env.dm.write(Path(T, 0), [Record(Path(T, 0, 3), "x"), Record(Path(T, 0, 6), 9)], replace=False)
        env.tree.instance(3303, 0).set(5700, 0.0)  # elsewhere: nothing
        await env.clock.advance(1)

    run(scenario)
    assert len(env.sent) == 1
    assert not isinstance(env.sent[0].values, str)
    values = dict(env.sent[0].values)
    assert values[f"/{T}/0/3"] == "x" and values[f"/{T}/0/6"] == 9


def test_resource_instance_observation_ignores_sibling_instances(env: Env) -> None:
    async def scenario() -> None:
        env.observe("/3/0/7/0")
        device = env.tree.instance(3, 0)
        device.set(7, {0: 3800, 1: 4000})
        await env.clock.advance(1)
        device.set(7, {0: 3700, 1: 4000})
        await env.clock.advance(1)

    run(scenario)
    assert [(s.at, s.values) for s in env.sent] == [(1.0, [("/3/0/7/0", 3700)])]


def test_composite_observation(env: Env) -> None:
    async def scenario() -> None:
        env.attrs("/3303", "pmin=10", "pmax=50")
        env.attrs("/3/0", "pmin=4", "pmax=100")
        obs = env.observe(TEMP, "/3/0/0", "/3303/9", composite=True)  # a missing path is skipped
        assert env.engine.observations() == [obs]
        await env.clock.advance(1)
        env.temp(1.0)  # held by the smallest pmin (4)
        await env.clock.advance(5)
        env.tree.instance(T, 0).set(3, "elsewhere")
        await env.clock.advance(1)
        env.tree.instance(3, 0).set(0, "Other Inc.")  # t = 7: held until t = 8
        await env.clock.advance(51)  # the smallest pmax (50, inherited from /3303) runs from t = 8

    run(scenario)
    assert [(s.at, s.values) for s in env.sent] == [
        (4.0, [(TEMP, 1.0), ("/3/0/0", "ACME")]),
        (8.0, [(TEMP, 1.0), ("/3/0/0", "Other Inc.")]),
        (58.0, [(TEMP, 1.0), ("/3/0/0", "Other Inc.")]),
    ]


def test_composite_evaluates_as_often_as_its_most_eager_path(env: Env) -> None:
    async def scenario() -> None:
        env.attrs(TEMP, "epmin=10")
        env.attrs("/3/0", "epmin=2")
        env.observe(TEMP, "/3/0/0", composite=True)
        await env.clock.advance(1)
        env.temp(1.0)
        await env.clock.advance(10)

    run(scenario)
    assert env.times() == [2.0]
