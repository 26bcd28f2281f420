"""Tests for lwm2md.engine.queue on a FakeClock: a real Registration and ObserveEngine, a fake transport.

Everything the fakes see lands in one ``log`` in order ("register",
"update", "send", "notify 25.0", "open", "close", "close session 101"), so
ordering rules (the Update first, then what was held) read off directly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from lwm2md.engine import queue as queue_module
from lwm2md.engine.attributes import AttributeStore, parse_query
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.observe import Observation, ObserveEngine
from lwm2md.engine.queue import QueueController, QueuePolicy, max_transmit_wait
from lwm2md.engine.registration import (
    CoapResponse,
    Registration,
    RegistrationParams,
    Requester,
    State,
    TransportError,
)
from lwm2md.errors import Lwm2mError, code_byte
from lwm2md.model.path import Path
from lwm2md.model.types import Record
from lwm2md.objects.tree import ObjectTree

SSID = 101
TEMP = "/3303/0/5700"
WINDOW = 93.0
CREATED, CHANGED, DELETED, NOT_FOUND = code_byte(2, 1), code_byte(2, 4), code_byte(2, 2), code_byte(4, 4)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout=10)

    asyncio.run(bounded())


class FakeTransport:
    """The endpoint as the controller sees it; closing and opening are logged."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.udp_open = True
        self.secure: set[int] = set()
        self.unacked: dict[int, int] = {}

    async def reopen_udp(self) -> None:
        self.udp_open = True
        self.log.append("open")

    def close_udp(self) -> None:
        self.udp_open = False
        self.log.append("close")

    def is_secure(self, ssid: int) -> bool:
        return ssid in self.secure

    def close_secure_session(self, ssid: int, reason: str) -> bool:
        self.log.append(f"close session {ssid}")
        return True

    def unacknowledged(self, ssid: int) -> int:
        return self.unacked.get(ssid, 0)


class FakeServer(Requester):
    """A friendly LwM2M server for one registration; ``script`` overrides answers in order."""

    def __init__(self, log: list[str], transport: FakeTransport, ssid: int) -> None:
        self.log = log
        self.transport = transport
        self.ssid = ssid
        self.location = ("rd", f"q{ssid}")
        self.script: deque[CoapResponse | Exception | asyncio.Future[CoapResponse]] = deque()

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        path = tuple(uri_path)
        kinds = {("POST", ("rd",)): "register", ("POST", self.location): "update",
                 ("DELETE", self.location): "deregister", ("POST", ("dp",)): "send"}  # fmt: skip
        kind = kinds[(method, path)]
        if not self.transport.udp_open and self.ssid not in self.transport.secure:
            raise AssertionError(f"{kind} sent on a closed socket")
        self.log.append(kind)
        answer = self.script.popleft() if self.script else None
        if isinstance(answer, asyncio.Future):
            answer = await answer
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        codes = {"register": CREATED, "update": CHANGED, "deregister": DELETED, "send": CHANGED}
        return CoapResponse(codes[kind], self.location if kind == "register" else ())


@dataclass
class Env:
    clock: FakeClock
    tree: ObjectTree
    dm: DeviceManagement
    observe: ObserveEngine
    transport: FakeTransport
    queue: QueueController
    log: list[str]
    servers: dict[int, FakeServer] = field(default_factory=dict)
    regs: dict[int, Registration] = field(default_factory=dict)
    bindings: dict[int, str] = field(default_factory=dict)
    storing: bool = True
    window: float = WINDOW

    def add_server(self, ssid: int = SSID, binding: str = "UQ", lifetime: int = 300) -> Registration:
        server = FakeServer(self.log, self.transport, ssid)
        self.bindings[ssid] = binding

        def queue_mode() -> bool:
            return "Q" in self.bindings[ssid]

        def params() -> RegistrationParams:
            return RegistrationParams("gw", lifetime, self.bindings[ssid], queue_mode=queue_mode())

        reg = Registration(ssid, server, self.clock, params, lambda: "</3/0>")
        self.queue.attach(ssid, reg, queue_mode=queue_mode, window=lambda: self.window,
                          storing=lambda: self.storing)  # fmt: skip
        self.servers[ssid], self.regs[ssid] = server, reg
        reg.start()
        return reg

    def emit(self, obs: Observation, result: list[Record] | Lwm2mError, confirmable: bool) -> None:
        """The transport's emit: refuses (TransportError) while the socket is closed."""
        if not self.transport.udp_open and obs.ssid not in self.transport.secure:
            raise TransportError("socket closed")
        value = result.dotted_code if isinstance(result, Lwm2mError) else result[0].value
        self.log.append(f"notify {value!s}")

    def observe_temp(self, ssid: int = SSID) -> Observation:
        obs = Observation(ssid, (Path.parse(TEMP),), self.emit)
        self.observe.start(obs, self.observe.read(obs))
        return obs

    def temp(self, *values: float) -> None:
        for value in values:
            self.tree.instance(3303, 0).set(5700, value)

    def attrs(self, path: str, *query: str, ssid: int = SSID) -> None:
        target = Path.parse(path)
        self.dm.attributes.apply(ssid, target, parse_query(query), numeric=self.dm.attribute_target(target))
        self.observe.attributes_changed(ssid)

    def since(self, mark: int) -> list[str]:
        return self.log[mark:]

    async def stop(self) -> None:
        for reg in self.regs.values():
            await reg.stop(deregister=False)
        self.queue.close()


@pytest.fixture
def env(tree: ObjectTree) -> Env:
    clock = FakeClock()
    dm = DeviceManagement(tree, AttributeStore())
    observe = ObserveEngine(dm, dm.attributes, clock, lambda ssid: (0, 0))
    log: list[str] = []
    transport = FakeTransport(log)
    return Env(clock, tree, dm, observe, transport, QueueController(clock, transport, observe), log)


async def registered(env: Env, ssid: int = SSID, binding: str = "UQ", lifetime: int = 300) -> Registration:
    reg = env.add_server(ssid, binding, lifetime)
    await env.clock.advance(0)
    assert reg.state is State.REGISTERED
    return reg


# -- the predicate --------------------------------------------------------------------


def test_max_transmit_wait_is_the_default_window() -> None:
    assert max_transmit_wait(2.0, 4) == 93.0
    assert max_transmit_wait(0.2, 1) == pytest.approx(0.9)


def test_policy_gives_one_line_per_reason() -> None:
    queue_mode = [False]
    unacked = [2]
    policy = QueuePolicy(7, lambda: queue_mode[0], lambda: 30.0, lambda: unacked[0])
    policy.touch(100.0)
    policy.requests, policy.serving, policy.waking = 1, 3, "pmax of /3303/0/5700"
    assert policy.online_reasons(110.0) == [
        "not in queue mode (no Q in the binding)",
        "awake window, 20 s left",
        "1 request(s) to the server awaiting an answer",
        "answering 3 request(s) from the server",
        "2 confirmable message(s) awaiting an acknowledgement",
        "waking up: pmax of /3303/0/5700",
    ]
    queue_mode[0], unacked[0] = True, 0
    policy.requests = policy.serving = 0
    policy.waking = None
    assert policy.should_be_online(129.9)
    assert policy.online_reasons(130.0) == [] and not policy.should_be_online(130.0)


def test_touch_never_shortens_the_window() -> None:
    policy = QueuePolicy(7, lambda: True, lambda: 30.0)
    policy.touch(100.0)
    policy.touch(90.0)
    assert policy.awake_until == 130.0


# -- sleeping -----------------------------------------------------------------------------


def test_awake_window_after_register_then_sleep_closes_the_socket(env: Env) -> None:
    async def scenario() -> None:
        await registered(env)
        await env.clock.advance(WINDOW - 0.1)
        assert not env.queue.asleep(SSID) and env.transport.udp_open
        await env.clock.advance(0.1)
        assert env.queue.asleep(SSID) and not env.transport.udp_open
        await env.stop()

    run(scenario)
    assert env.log == ["register", "close"]


def test_the_window_is_read_at_each_exchange(env: Env) -> None:
    async def scenario() -> None:
        await registered(env)
        await env.clock.advance(WINDOW)
        env.window = 10.0  # e.g. awake_window changed by a reload
        env.queue.wake(SSID, "test")
        await env.clock.advance(10 - 0.1)
        assert not env.queue.asleep(SSID)
        await env.clock.advance(0.1)
        assert env.queue.asleep(SSID)
        await env.stop()

    run(scenario)


def test_a_binding_without_q_never_sleeps(env: Env) -> None:
    async def scenario() -> None:
        await registered(env, binding="U", lifetime=100_000)
        await env.clock.advance(10 * WINDOW)
        assert not env.queue.asleep(SSID)
        await env.stop()

    run(scenario)
    assert env.log == ["register"]


def test_a_request_in_flight_keeps_the_connection_up_and_its_end_starts_the_window(env: Env) -> None:
    async def scenario() -> None:
        reg = await registered(env)
        answer: asyncio.Future[CoapResponse] = asyncio.get_running_loop().create_future()
        env.servers[SSID].script.append(answer)
        reg.request_update()
        await env.clock.advance(WINDOW + 50)
        assert env.queue.online_reasons(SSID) == ["1 request(s) to the server awaiting an answer"]
        answer.set_result(CoapResponse(CHANGED))
        await env.clock.advance(WINDOW - 1)
        assert not env.queue.asleep(SSID)
        await env.clock.advance(1)
        assert env.queue.asleep(SSID)
        await env.stop()

    run(scenario)


def test_unacknowledged_confirmables_keep_it_up_until_acknowledged(env: Env) -> None:
    async def scenario() -> None:
        await registered(env)
        env.transport.unacked[SSID] = 1
        await env.clock.advance(WINDOW + 5)
        assert env.queue.online_reasons(SSID) == ["1 confirmable message(s) awaiting an acknowledgement"]
        env.transport.unacked[SSID] = 0
        await env.clock.advance(queue_module.RECHECK)
        assert env.queue.asleep(SSID)
        await env.stop()

    run(scenario)


def test_a_server_without_q_keeps_the_shared_socket_open(env: Env) -> None:
    async def scenario() -> None:
        await registered(env, SSID, "U", lifetime=100_000)
        await registered(env, 102, "UQ", lifetime=100_000)
        await env.clock.advance(5 * WINDOW)
        assert env.queue.asleep(102) and not env.queue.asleep(SSID)
        assert env.transport.udp_open
        await env.stop()

    run(scenario)
    assert "close" not in env.log


def test_the_socket_closes_once_every_queue_server_sleeps(env: Env) -> None:
    async def scenario() -> None:
        await registered(env, SSID, "UQ", lifetime=100_000)
        await env.clock.advance(50)
        await registered(env, 102, "UQ", lifetime=100_000)
        await env.clock.advance(WINDOW - 50)
        assert env.queue.asleep(SSID) and not env.queue.asleep(102) and env.transport.udp_open
        await env.clock.advance(50)
        assert env.queue.asleep(102) and not env.transport.udp_open
        await env.stop()

    run(scenario)


def test_a_dtls_server_closes_its_session_and_the_udp_socket_nobody_uses(env: Env) -> None:
    async def scenario() -> None:
        env.transport.secure.add(SSID)
        await registered(env)
        await env.clock.advance(WINDOW)
        assert env.log == ["register", "close session 101", "close"]
        mark = len(env.log)
        env.queue.wake(SSID, "test")
        await env.clock.advance(0)
        assert env.since(mark) == ["update"], "the DTLS requester opens its own session; UDP stays closed"
        await env.stop()

    run(scenario)


# -- holding and waking ---------------------------------------------------------------------


def test_a_notification_while_asleep_is_held_and_follows_the_wake_up_update(env: Env) -> None:
    async def scenario() -> None:
        await registered(env)
        env.observe_temp()
        await env.clock.advance(WINDOW)
        mark = len(env.log)
        env.temp(25.0)
        held = env.queue.held(SSID)
        assert len(held) == 1 and isinstance(held[0].result, list)
        assert held[0].result[0].time == env.clock.wall(), "stamped with the time it was taken"
        assert env.queue.online_reasons(SSID) == ["waking up: notification for /3303/0/5700"]
        await env.clock.advance(0)
        assert env.since(mark) == ["open", "update", "notify 25.0"]
        assert not env.queue.held(SSID) and not env.queue.asleep(SSID)
        await env.clock.advance(WINDOW)
        assert env.queue.asleep(SSID) and env.log[-1] == "close"
        await env.stop()

    run(scenario)


@pytest.mark.parametrize(("storing", "expected"), [
    (True, ["open", "update", "notify 21.0", "notify 22.0", "notify 23.0"]),
    (False, ["open", "update", "notify 23.0"]),
])  # fmt: skip
def test_notification_storing_keeps_all_or_only_the_latest(
    env: Env, storing: bool, expected: list[str]
) -> None:
    async def scenario() -> None:
        env.storing = storing
        await registered(env)
        env.observe_temp()
        await env.clock.advance(WINDOW)
        mark = len(env.log)
        env.temp(21.0, 22.0, 23.0)
        await env.clock.advance(0)
        assert env.since(mark) == expected
        await env.stop()

    run(scenario)


def test_storing_false_keeps_the_latest_of_each_observation_in_order(env: Env) -> None:
    async def scenario() -> None:
        env.storing = False
        await registered(env)
        first = env.observe_temp()
        second = env.observe_temp()
        await env.clock.advance(WINDOW)
        answer: asyncio.Future[CoapResponse] = asyncio.get_running_loop().create_future()
        env.servers[SSID].script.append(answer)  # the wake-up Update hangs for now
        env.temp(21.0)
        await env.clock.advance(0)
        env.temp(22.0)
        held = env.queue.held(SSID)
        assert [(h.obs, h.result[0].value) for h in held] == [(first, 22.0), (second, 22.0)]  # type: ignore[index]
        answer.set_result(CoapResponse(CHANGED))
        await env.clock.advance(0)
        assert env.log[-2:] == ["notify 22.0", "notify 22.0"]
        await env.stop()

    run(scenario)


def test_pmax_wakes_the_client(env: Env) -> None:
    async def scenario() -> None:
        await registered(env)
        env.attrs(TEMP, "pmax=150")
        env.observe_temp()
        await env.clock.advance(WINDOW)
        mark = len(env.log)
        await env.clock.advance(150 - WINDOW)
        assert env.since(mark) == ["open", "update", "notify 21.5"]
        await env.stop()

    run(scenario)


def test_the_registration_update_timer_wakes_the_client(env: Env) -> None:
    async def scenario() -> None:
        await registered(env, lifetime=300)
        await env.clock.advance(WINDOW)
        await env.clock.advance(300 - WINDOW - WINDOW - 0.1)
        assert env.log == ["register", "close"]
        await env.clock.advance(0.1)
        assert env.log == ["register", "close", "open", "update"]
        await env.clock.advance(WINDOW)
        assert env.log[-1] == "close"
        await env.stop()

    run(scenario)


def test_a_send_to_a_sleeping_server_goes_after_the_wake_up_update(env: Env) -> None:
    async def scenario() -> None:
        reg = await registered(env)
        await env.clock.advance(WINDOW)
        mark = len(env.log)
        response = await reg.requester.request("POST", ["dp"], (), b"x", 112)
        assert response.code == CHANGED
        assert env.since(mark) == ["open", "update", "send"]
        await env.stop()

    run(scenario)


def test_a_send_fails_when_the_wake_up_update_fails(env: Env) -> None:
    async def scenario() -> None:
        reg = await registered(env)
        await env.clock.advance(WINDOW)
        env.servers[SSID].script.extend([TransportError("no answer"), TransportError("no answer")])
        with pytest.raises(TransportError, match="wake-up Update"):
            await reg.requester.request("POST", ["dp"], (), b"x", 112)
        assert "send" not in env.log
        await env.stop()

    run(scenario)


def test_held_notifications_survive_a_failed_wake_up_and_follow_the_next_register(env: Env) -> None:
    async def scenario() -> None:
        reg = await registered(env)
        env.observe_temp()
        await env.clock.advance(WINDOW)
        env.servers[SSID].script.extend([CoapResponse(NOT_FOUND)])  # the server forgot us
        mark = len(env.log)
        env.temp(24.0)
        await env.clock.advance(0)
        assert env.since(mark) == ["open", "update", "register", "notify 24.0"]
        assert reg.state is State.REGISTERED
        await env.stop()

    run(scenario)


def test_a_notification_the_transport_refuses_is_held_not_lost(env: Env) -> None:
    async def scenario() -> None:
        await registered(env)
        env.observe_temp()
        env.transport.udp_open = False  # closed under an awake server (cannot happen, must not lose data)
        mark = len(env.log)
        env.temp(26.0)
        assert [h.result[0].value for h in env.queue.held(SSID)] == [26.0]  # type: ignore[index]
        await env.clock.advance(0)
        assert env.since(mark) == ["open", "update", "notify 26.0"]
        await env.stop()

    run(scenario)


def test_wake_while_not_registered_waits_for_the_register(env: Env) -> None:
    async def scenario() -> None:
        answer: asyncio.Future[CoapResponse] = asyncio.get_running_loop().create_future()
        reg = env.add_server()
        env.servers[SSID].script.append(answer)
        env.queue.wake(SSID, "trigger")
        await env.clock.advance(0)
        assert reg.state is State.REGISTERING
        answer.set_result(CoapResponse(CREATED, ("rd", "q101")))
        await env.clock.advance(0)
        assert env.log == ["register"], "no Update of its own: the Register was the wake-up"
        await env.stop()

    run(scenario)


def test_a_request_from_a_sleeping_server_wakes_it_without_an_update(env: Env) -> None:
    async def scenario() -> None:
        await registered(env, SSID, "U", lifetime=100_000)  # keeps the socket open
        await registered(env, 102, "UQ", lifetime=100_000)
        await env.clock.advance(WINDOW)
        assert env.queue.asleep(102)
        env.queue.serving(102, True)
        assert not env.queue.asleep(102)
        env.queue.serving(102, False)
        await env.clock.advance(WINDOW - 1)
        assert not env.queue.asleep(102)
        await env.clock.advance(1)
        assert env.queue.asleep(102)
        await env.stop()

    run(scenario)
    assert "update" not in env.log


def test_held_notifications_are_bounded(env: Env) -> None:
    env.queue.store.limit = 3

    async def scenario() -> None:
        await registered(env)
        env.observe_temp()
        await env.clock.advance(WINDOW)
        answer: asyncio.Future[CoapResponse] = asyncio.get_running_loop().create_future()
        env.servers[SSID].script.append(answer)
        env.temp(1.0, 2.0, 3.0, 4.0, 5.0)
        assert [h.result[0].value for h in env.queue.held(SSID)] == [3.0, 4.0, 5.0]  # type: ignore[index]
        answer.set_result(CoapResponse(CHANGED))
        await env.clock.advance(0)
        assert env.log[-3:] == ["notify 3.0", "notify 4.0", "notify 5.0"]
        await env.stop()

    run(scenario)


def test_detach_drops_what_was_held_and_close_restores_direct_emits(env: Env) -> None:
    async def scenario() -> None:
        reg = await registered(env)
        env.observe_temp()
        await env.clock.advance(WINDOW)
        env.servers[SSID].script.append(asyncio.get_running_loop().create_future())
        env.temp(30.0)
        await reg.stop(deregister=False)
        env.queue.detach(SSID)
        assert env.queue.held(SSID) == [] and not env.queue.asleep(SSID)
        env.queue.close()
        env.transport.udp_open = True
        env.temp(31.0)
        assert env.log[-1] == "notify 31.0"

    run(scenario)


def test_the_wrapped_requester_is_transparent(env: Env) -> None:
    async def scenario() -> None:
        reg = await registered(env)
        assert reg.requester.location == ("rd", "q101")  # type: ignore[attr-defined]
        again = env.queue.attach(SSID, reg, queue_mode=lambda: True, window=lambda: 1.0, storing=lambda: True)
        assert again.inner is env.servers[SSID], "attaching again does not wrap twice"
        await env.stop()

    run(scenario)
