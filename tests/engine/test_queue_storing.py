"""Notification storing in the queue controller: held while not registered, on disk, delivered in order.

Same fakes as ``test_queue.py`` (one ``log`` of everything in order), plus a
:class:`NotificationStore` in a temporary directory and a ``send_orphans``
callback that logs ``send 21.0,22.0`` and answers as told.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path as FsPath

import pytest

from lwm2md.engine import queue as queue_module
from lwm2md.engine.attributes import AttributeStore
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.notification_store import NotificationStore
from lwm2md.engine.observe import Observation, ObserveEngine
from lwm2md.engine.queue import ObservationLost, QueueController
from lwm2md.engine.registration import CoapResponse, Registration, State, TransportError
from lwm2md.errors import Lwm2mError, NotFound
from lwm2md.model.types import Record
from lwm2md.objects.tree import ObjectTree
from tests.engine.test_queue import CHANGED, SSID, TEMP, Env, FakeTransport, registered, run

QUEUE_LOGGER = "lwm2md.engine.queue"
LIMIT = 100


class Orphans:
    """``send_orphans``: logs ``send <values>``; answers with ``answers`` in turn (default True)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.calls: list[tuple[int, list[Record]]] = []
        self.answers: deque[bool | Exception | asyncio.Future[bool]] = deque()

    async def __call__(self, ssid: int, records: list[Record]) -> bool:
        self.calls.append((ssid, records))
        self.log.append("send " + ",".join(str(r.value) for r in records))
        answer = self.answers.popleft() if self.answers else True
        if isinstance(answer, asyncio.Future):
            answer = await answer
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Rig:
    env: Env
    store: NotificationStore
    orphans: Orphans

    @property
    def queue(self) -> QueueController:
        return self.env.queue

    def held_values(self) -> list[object]:
        return [h.result[0].value for h in self.queue.held(SSID) if isinstance(h.result, list)]

    def stored_values(self) -> list[object]:
        return [e.records[0].value for e in NotificationStore(self.store.directory, LIMIT).entries(SSID)]

    async def outage(self, reg: Registration) -> None:
        """The server stops answering: the next Update and the Register after it fail; retry in 60 s."""
        self.env.servers[SSID].script.extend([TransportError("no answer"), TransportError("no answer")])
        reg.request_update()
        await self.env.clock.advance(0)
        assert reg.state is State.WAITING_RETRY

    async def changes(self, *temps: float) -> list[float]:
        """Each temperature one second apart; returns the wall time of each."""
        walls = []
        for value in temps:
            await self.env.clock.advance(1)
            self.env.temp(value)
            walls.append(self.env.clock.wall())
        return walls


def make_rig(tree: ObjectTree, directory: FsPath, clock: FakeClock | None = None) -> Rig:
    clock = clock or FakeClock()
    dm = DeviceManagement(tree, AttributeStore())
    observe = ObserveEngine(dm, dm.attributes, clock, lambda ssid: (0, 0))
    log: list[str] = []
    transport = FakeTransport(log)
    store = NotificationStore(directory, LIMIT)
    orphans = Orphans(log)
    queue = QueueController(clock, transport, observe, store=store, send_orphans=orphans)
    return Rig(Env(clock, tree, dm, observe, transport, queue, log), store, orphans)


@pytest.fixture
def rig(tree: ObjectTree, tmp_path: FsPath) -> Rig:
    return make_rig(tree, tmp_path)


def test_held_on_disk_while_not_registered_and_sent_in_order_after_the_register(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, QUEUE_LOGGER)
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        obs = env.observe_temp()
        await rig.outage(reg)
        mark = len(env.log)
        walls = await rig.changes(21.0, 22.0, 23.0)
        assert env.since(mark) == [], "nothing goes out while not registered"
        assert rig.held_values() == [21.0, 22.0, 23.0]
        assert rig.stored_values() == [21.0, 22.0, 23.0], "on disk"
        stored = NotificationStore(rig.store.directory, LIMIT).entries(SSID)
        assert [(e.ident, e.target, e.records[0].time, e.stored_at) for e in stored] == [
            (obs.ident, TEMP, wall, wall) for wall in walls
        ]
        await env.clock.advance(60 - 3)  # the retry timer: Register again
        assert env.since(mark) == ["register", "notify 21.0", "notify 22.0", "notify 23.0"]
        assert rig.held_values() == [] and rig.stored_values() == []
        assert not rig.store.path(SSID).exists()  # type: ignore[union-attr]
        assert not rig.orphans.calls
        await env.stop()

    run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == QUEUE_LOGGER]
    outage = "server 101: waiting to retry; holding notifications until it is registered again"
    assert lines.count(outage) == 1


def test_held_records_carry_the_time_they_were_taken(rig: Rig) -> None:
    env = rig.env
    sent: list[list[Record]] = []

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        obs = env.observe_temp()
        obs.emit = lambda o, result, con: sent.append(result)  # type: ignore[arg-type,misc]
        await rig.outage(reg)
        walls = await rig.changes(21.0, 22.0)
        await env.clock.advance(60)
        assert [[(r.value, r.time) for r in records] for records in sent] == [
            [(21.0, walls[0])], [(22.0, walls[1])]
        ]  # fmt: skip
        await env.stop()

    run(scenario)


def test_storing_false_keeps_only_the_latest_also_on_disk(rig: Rig) -> None:
    env = rig.env
    env.storing = False

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        mark = len(env.log)
        await rig.changes(21.0, 22.0, 23.0)
        assert rig.held_values() == [23.0] and rig.stored_values() == [23.0]
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "notify 23.0"]
        await env.stop()

    run(scenario)


def test_held_while_disabled_and_sent_after_registering_again(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await reg.stop(deregister=True)  # what /1/x/4 Disable does first
        assert reg.state is State.DEREGISTERED
        mark = len(env.log)
        await rig.changes(21.0, 22.0)
        assert env.since(mark) == [] and rig.stored_values() == [21.0, 22.0]
        reg.start()  # the disable timeout is over
        await env.clock.advance(0)
        assert env.since(mark) == ["register", "notify 21.0", "notify 22.0"]
        await env.stop()

    run(scenario)


def test_notifications_of_ended_observations_go_to_send_orphans_in_order(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        walls = await rig.changes(21.0, 22.0)
        env.observe.stop_server(SSID)  # e.g. the server re-registered: its observations ended
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "send 21.0,22.0"]
        ((ssid, records),) = rig.orphans.calls
        assert ssid == SSID and [(r.value, r.time) for r in records] == [(21.0, walls[0]), (22.0, walls[1])]
        assert rig.stored_values() == []
        await env.stop()

    run(scenario)


def test_active_and_ended_observations_keep_one_order(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        ended = env.observe_temp()
        await rig.outage(reg)
        await rig.changes(21.0, 22.0)  # held: 21 (kept), 21 (ended), 22 (kept), 22 (ended)
        env.observe.stop(ended)
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "notify 21.0", "send 21.0", "notify 22.0", "send 22.0"]
        await env.stop()

    run(scenario)


def test_notifications_produced_while_the_orphans_are_sent_come_after_them(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        obs = env.observe_temp()
        await rig.outage(reg)
        await rig.changes(21.0)
        env.observe.stop(obs)
        env.observe_temp()
        await rig.changes(22.0)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        rig.orphans.answers.append(answer)
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "send 21.0"], "the Send is under way"
        await rig.changes(23.0)  # produced meanwhile: behind what was held
        assert rig.held_values() == [21.0, 22.0, 23.0]
        answer.set_result(True)
        await env.clock.advance(0)
        assert env.since(mark) == ["register", "send 21.0", "notify 22.0", "notify 23.0"]
        await rig.changes(24.0)
        assert env.log[-1] == "notify 24.0", "nothing held any more: straight out"
        assert rig.stored_values() == []
        await env.stop()

    run(scenario)


def test_orphans_go_in_batches(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "ORPHAN_BATCH", 2)
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        await rig.changes(1.0, 2.0, 3.0, 4.0, 5.0)
        env.observe.stop_server(SSID)
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "send 1.0,2.0", "send 3.0,4.0", "send 5.0"]
        await env.stop()

    run(scenario)


@pytest.mark.parametrize("how", ["no callback", "refused"])
def test_orphans_nobody_takes_are_dropped_with_one_line(
    rig: Rig, caplog: pytest.LogCaptureFixture, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_module, "ORPHAN_BATCH", 2)
    env = rig.env
    if how == "no callback":
        env.queue.send_orphans = None
    else:
        rig.orphans.answers.extend([False, False])

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        await rig.changes(1.0, 2.0, 3.0)
        env.observe.stop_server(SSID)
        await env.clock.advance(60)
        assert rig.held_values() == [] and rig.stored_values() == []
        await env.stop()

    run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == QUEUE_LOGGER and r.levelno >= logging.INFO]
    assert lines == ["server 101: 3 held notification(s) of ended observations dropped (not sent as a Send)"]


def test_orphans_are_kept_when_the_send_gets_no_answer(rig: Rig) -> None:
    env = rig.env
    rig.orphans.answers.append(TransportError("no answer"))

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        await rig.changes(21.0, 22.0)
        env.observe.stop_server(SSID)
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "send 21.0,22.0"]
        assert rig.held_values() == [21.0, 22.0] and rig.stored_values() == [21.0, 22.0]
        reg.request_update()
        await env.clock.advance(0)
        assert env.since(mark) == ["register", "send 21.0,22.0", "update", "send 21.0,22.0"]
        assert rig.stored_values() == []
        await env.stop()

    run(scenario)


def test_a_restart_sends_what_was_stored_after_the_first_registration(
    tree: ObjectTree, tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, QUEUE_LOGGER)
    first = make_rig(tree, tmp_path)
    walls: list[float] = []

    async def before() -> None:
        reg = await registered(first.env, binding="U")
        first.env.observe_temp()
        await first.outage(reg)
        walls.extend(await first.changes(21.0, 22.0, 23.0))
        await first.env.stop()  # the daemon stops (or is killed) while the server is away
        first.env.observe.stop_server(SSID)

    run(before)
    assert first.stored_values() == [21.0, 22.0, 23.0], "kept on disk at stop"
    second = make_rig(tree, tmp_path)
    env = second.env

    async def after() -> None:
        reg = env.add_server(binding="U")
        assert second.held_values() == [21.0, 22.0, 23.0]
        assert all(h.obs is None for h in env.queue.held(SSID))
        await env.clock.advance(0)
        assert reg.state is State.REGISTERED
        assert env.log == ["register", "send 21.0,22.0,23.0"]
        ((_, records),) = second.orphans.calls
        assert [r.time for r in records] == walls, "the original timestamps"
        assert second.stored_values() == []
        await env.stop()

    run(after)
    lines = [r.getMessage() for r in caplog.records if r.name == QUEUE_LOGGER]
    assert any("3 held notification(s) kept in" in line for line in lines)
    assert "server 101: 3 stored notification(s) from an earlier run, sent once registered" in lines


def test_the_bound_applies_across_memory_and_disk(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, QUEUE_LOGGER)
    env = rig.env
    rig.store.limit = 3

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        await rig.changes(1.0, 2.0, 3.0, 4.0, 5.0)
        assert rig.held_values() == [3.0, 4.0, 5.0] and rig.stored_values() == [3.0, 4.0, 5.0]
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "notify 3.0", "notify 4.0", "notify 5.0"]
        await env.stop()

    run(scenario)
    lines = [r.getMessage() for r in caplog.records if "held" in r.getMessage() and r.levelno >= logging.INFO]
    assert lines == [
        "server 101: more than 3 notifications held; dropping the oldest",
        "server 101: 3 held notification(s) sent; 2 older one(s) had been dropped (more than 3 held)",
    ]


def test_a_server_removed_drops_what_is_stored_for_it(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        env.observe_temp()
        await rig.outage(reg)
        await rig.changes(21.0)
        await reg.stop(deregister=False)
        env.queue.detach(SSID)
        assert rig.stored_values() == [] and rig.held_values() == []
        env.queue.close()

    run(scenario)


def test_a_sleeping_queue_mode_server_gets_the_update_first_then_what_was_stored(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        await registered(env)
        env.observe_temp()
        await env.clock.advance(93)
        assert env.queue.asleep(SSID)
        answer: asyncio.Future[CoapResponse] = asyncio.get_running_loop().create_future()
        env.servers[SSID].script.append(answer)  # the wake-up Update hangs for now
        mark = len(env.log)
        env.temp(21.0, 22.0)
        assert rig.stored_values() == [21.0, 22.0]
        answer.set_result(CoapResponse(CHANGED))
        await env.clock.advance(0)
        assert env.since(mark) == ["open", "update", "notify 21.0", "notify 22.0"]
        assert rig.stored_values() == []
        await env.stop()

    run(scenario)


def lose(obs: Observation, log: list[str]) -> None:
    """Make ``obs``'s relation lost, as a transport that keeps it running after a timeout would."""

    def emit(o: Observation, result: list[Record] | Lwm2mError, confirmable: bool) -> None:
        log.append("emit refused")
        raise ObservationLost("the relation is gone")

    obs.emit = emit


def test_an_observation_whose_relation_was_lost_sends_what_it_held_as_orphans(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        reg = await registered(env, binding="U")
        obs = env.observe_temp()
        await rig.outage(reg)
        lose(obs, env.log)
        await rig.changes(21.0, 22.0)  # still produced and held while not registered
        mark = len(env.log)
        await env.clock.advance(60)
        assert env.since(mark) == ["register", "emit refused", "send 21.0,22.0"]
        assert not env.observe.is_active(obs), "ended: the server has to observe again"
        await rig.changes(23.0)
        await env.clock.advance(0)
        assert env.since(mark) == ["register", "emit refused", "send 21.0,22.0"], "nothing more from it"
        assert rig.stored_values() == []
        await env.stop()

    run(scenario)


def test_a_relation_lost_while_registered_sends_the_notification_as_an_orphan(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        await registered(env, binding="U")
        obs = env.observe_temp()
        lose(obs, env.log)
        mark = len(env.log)
        await rig.changes(21.0)
        await env.clock.advance(0)
        assert env.since(mark) == ["emit refused", "send 21.0"]
        assert not env.observe.is_active(obs) and rig.stored_values() == []
        await env.stop()

    run(scenario)


def test_a_final_error_response_of_a_lost_relation_is_not_retried_forever(rig: Rig) -> None:
    env = rig.env

    async def scenario() -> None:
        await registered(env, binding="U")
        obs = env.observe_temp()
        lose(obs, env.log)
        mark = len(env.log)
        env.queue.deliver(obs, NotFound("gone"), True)
        assert env.since(mark) == ["emit refused"]
        assert env.queue.held(SSID) == []
        await env.stop()

    run(scenario)
