"""Tests for lwm2md.engine.registration with a FakeClock and a scripted requester."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest

from lwm2md.engine.clock import FakeClock
from lwm2md.engine.registration import (
    CoapResponse,
    Registration,
    RegistrationParams,
    Requester,
    State,
    TransportError,
)
from lwm2md.errors import code_byte

CREATED, DELETED, CHANGED = code_byte(2, 1), code_byte(2, 2), code_byte(2, 4)
FORBIDDEN, NOT_FOUND = code_byte(4, 3), code_byte(4, 4)
LOCATION = ("rd", "a1")


@dataclass(frozen=True)
class Sent:
    at: float
    method: str
    path: tuple[str, ...]
    query: tuple[str, ...]
    payload: bytes
    content_format: int | None


# A scripted answer: a response, an exception to raise, or a future that delivers
# the response when the test resolves it (never, to model a request left unanswered).
Answer = CoapResponse | Exception | asyncio.Future[CoapResponse]


class FakeRequester(Requester):
    """Records requests; answers from ``script`` in order, then like a friendly server."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self.script: deque[Answer] = deque()
        self.location = LOCATION

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        now = self.clock.now()
        self.sent.append(Sent(now, method, tuple(uri_path), tuple(query), payload, content_format))
        answer = self.script.popleft() if self.script else self._friendly(method, tuple(uri_path))
        if isinstance(answer, asyncio.Future):
            answer = await answer
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _friendly(self, method: str, path: tuple[str, ...]) -> CoapResponse:
        if method == "POST" and path == ("rd",):
            return CoapResponse(CREATED, self.location)
        if method == "POST" and path == self.location:
            return CoapResponse(CHANGED)
        if method == "DELETE" and path == self.location:
            return CoapResponse(DELETED)
        return CoapResponse(NOT_FOUND)

    def fail(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def summary(self) -> list[tuple[float, str]]:
        """(time, "register" | "update" | "deregister") per request."""
        kinds = {("POST", True): "register", ("POST", False): "update", ("DELETE", False): "deregister"}
        return [(s.at, kinds[(s.method, s.path == ("rd",))]) for s in self.sent]


@dataclass
class Env:
    clock: FakeClock
    requester: FakeRequester
    reg: Registration
    params: RegistrationParams
    links: str = '</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>'
    states: list[State] = field(default_factory=list)
    failures: list[float] = field(default_factory=list)


BASE = RegistrationParams(
    endpoint="gw-1",
    lifetime=300,
    binding="U",
    retry_count=3,
    retry_timer=10.0,
    sequence_delay=1000.0,
    sequence_retry_count=2,
)


def make_env(params: RegistrationParams = BASE) -> Env:
    clock = FakeClock()
    requester = FakeRequester(clock)
    env: Env

    def on_state(reg: Registration) -> None:
        env.states.append(reg.state)

    def on_failure(reg: Registration) -> None:
        env.failures.append(clock.now())

    reg = Registration(
        101, requester, clock, lambda: env.params, lambda: env.links, on_state=on_state, on_failure=on_failure
    )
    env = Env(clock, requester, reg, params)
    return env


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run one async scenario; a loop that never settles fails instead of hanging."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout=10)

    asyncio.run(bounded())


async def stops_promptly(reg: Registration) -> None:
    """Assert that ``reg.stop()`` completes without the fake clock moving (real time bounded)."""
    stopper = asyncio.ensure_future(reg.stop())
    done, _ = await asyncio.wait({stopper}, timeout=2)
    assert stopper in done, "stop() is still waiting"
    stopper.result()


# -- Register ---------------------------------------------------------------------


def test_register_query_payload_and_state() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(0)
        await env.reg.stop(deregister=False)

    run(scenario)
    first = env.requester.sent[0]
    assert (first.method, first.path) == ("POST", ("rd",))
    assert first.query == ("ep=gw-1", "lt=300", "lwm2m=1.1", "b=U")
    assert first.payload == env.links.encode()
    assert first.content_format == 40
    assert env.states == [State.REGISTERING, State.REGISTERED]
    assert env.reg.location == LOCATION
    assert len(env.requester.sent) == 1


@pytest.mark.parametrize(
    ("changes", "query"),
    [
        ({"queue_mode": True}, ("b=U", "Q")),
        ({"binding": "UQ", "queue_mode": True}, ("b=U", "Q")),
        ({"binding": "US"}, ("b=US",)),
        ({"lwm2m_version": "1.0", "binding": "U", "queue_mode": True}, ("b=UQ",)),
        ({"lwm2m_version": "1.0", "binding": "UQ", "queue_mode": True}, ("b=UQ",)),
        ({"sms_number": "+15551234"}, ("b=U", "sms=+15551234")),
    ],
)
def test_register_binding_and_queue_mode(changes: dict[str, object], query: tuple[str, ...]) -> None:
    env = make_env(replace(BASE, **changes))  # type: ignore[arg-type]

    async def scenario() -> None:
        await env.reg.register()

    run(scenario)
    assert env.requester.sent[0].query[3:] == query
    assert env.requester.sent[0].query[2] == f"lwm2m={env.params.lwm2m_version}"


@pytest.mark.parametrize(
    "answer",
    [
        CoapResponse(CREATED),  # no location
        CoapResponse(FORBIDDEN),
        CoapResponse(CHANGED, LOCATION),
        TransportError("timeout"),
    ],
)
def test_register_failures(answer: Answer) -> None:
    env = make_env()

    async def scenario() -> None:
        env.requester.fail(answer)
        assert await env.reg.register() is False

    run(scenario)
    assert env.reg.state is State.REGISTERING
    assert env.reg.location == ()


# -- Update -------------------------------------------------------------------------


def test_periodic_update_before_lifetime_runs_out() -> None:
    env = make_env(replace(BASE, lifetime=60))

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(100)
        env.params = replace(env.params, lifetime=400)  # seen at the next Update
        await env.clock.advance(400)
        await env.reg.stop(deregister=False)

    run(scenario)
    # margin = min(93 s, lifetime / 2): 30 s for 60 s, 93 s for 400 s
    assert env.requester.summary() == [(0, "register"), (30, "update"), (60, "update"), (90, "update"),
                                       (120, "update"), (427, "update")]  # fmt: skip
    updates = env.requester.sent[1:]
    assert all(u.path == LOCATION and u.payload == b"" and u.content_format is None for u in updates)
    assert [u.query for u in updates] == [(), (), (), ("lt=400",), ()]


def test_request_update_sends_at_once_and_restarts_the_period() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(50)
        env.reg.request_update()
        await env.clock.advance(0)
        env.links += ",</3303/0>"
        env.reg.request_update()
        await env.clock.advance(210)

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (50, "update"), (50, "update"), (257, "update")]
    second, third = env.requester.sent[2:4]
    assert second.payload == env.links.encode() and second.content_format == 40
    assert third.payload == b""  # the object list did not change again


def test_lifetime_and_binding_changes_go_into_update() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(10)
        env.params = replace(env.params, lifetime=1000)
        env.reg.request_update()
        await env.clock.advance(10)
        env.params = replace(env.params, binding="UQ", queue_mode=True)
        env.reg.request_update()
        await env.clock.advance(0)
        assert env.reg.update_due_at() == 20 + 1000 - 93

    run(scenario)
    assert [s.query for s in env.requester.sent[1:]] == [("lt=1000",), ("b=U", "Q")]


def test_update_answered_4_04_registers_afresh() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(1)
        env.requester.fail(CoapResponse(NOT_FOUND))
        env.requester.location = ("rd", "b2")
        env.reg.request_update()
        await env.clock.advance(1)
        env.reg.request_update()
        await env.clock.advance(0)

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (1, "update"), (1, "register"), (2, "update")]
    assert env.requester.sent[3].path == ("rd", "b2")
    assert env.requester.sent[2].payload == env.links.encode()  # a full Register again
    assert env.reg.state is State.REGISTERED


def test_update_without_answer_registers_afresh() -> None:
    env = make_env(replace(BASE, lifetime=60))

    async def scenario() -> None:
        env.reg.start()
        env.requester.fail(CoapResponse(CREATED, LOCATION), TransportError("timeout"))
        await env.clock.advance(31)

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (30, "update"), (30, "register")]


def test_request_update_while_not_registered_is_no_extra_request() -> None:
    env = make_env()

    async def scenario() -> None:
        env.requester.fail(TransportError("timeout"))
        env.reg.start()
        await env.clock.advance(1)
        env.reg.request_update()  # during the backoff: the coming Register carries everything
        await env.clock.advance(10)

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (10, "register")]


def test_request_update_while_register_is_in_flight_is_honoured() -> None:
    env = make_env()
    old_links = env.links

    async def scenario() -> None:
        answer: asyncio.Future[CoapResponse] = asyncio.get_running_loop().create_future()
        env.requester.fail(answer)
        env.reg.start()
        await env.clock.advance(0)
        env.links += ",</3303/0>"  # an instance appeared after the Register left
        env.reg.request_update()
        answer.set_result(CoapResponse(CREATED, LOCATION))
        await env.clock.advance(0)

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (0, "update")]
    assert env.requester.sent[0].payload == old_links.encode()
    assert env.requester.sent[1].payload == env.links.encode()


# -- retries --------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [TransportError("timeout"), CoapResponse(FORBIDDEN)])
def test_retry_backoff_sequences_failure_and_restart(failure: Answer) -> None:
    env = make_env()

    async def scenario() -> None:
        env.requester.fail(*[failure] * 7)
        env.reg.start()
        await env.clock.advance(25)
        assert env.reg.next_attempt_at == 30
        assert env.reg.describe() == "server 101: waiting to retry, retrying in 5 s"
        await env.clock.advance(1040)  # t = 1065
        assert env.reg.describe() == "server 101: failed, retrying in 995 s"
        await env.clock.advance(1000)  # t = 2065: the 7th attempt (at 2060) failed, the 8th is due at 2070
        assert env.reg.describe() == "server 101: waiting to retry, retrying in 5 s"
        await env.clock.advance(10)

    run(scenario)
    # retry timer 10 s: attempt n waits 10 * 2**(n-2) s; sequences 1000 s apart; after both, FAILED
    assert [t for t, _ in env.requester.summary()] == [0, 10, 30, 1030, 1040, 1060, 2060, 2070]
    assert env.failures == [1060]
    assert env.states[:4] == [State.REGISTERING, State.WAITING_RETRY, State.REGISTERING, State.WAITING_RETRY]
    assert State.FAILED in env.states
    assert env.reg.state is State.REGISTERED


def test_success_within_the_sequence_stops_retrying() -> None:
    env = make_env()

    async def scenario() -> None:
        env.requester.fail(TransportError("timeout"), TransportError("timeout"))
        env.reg.start()
        await env.clock.advance(31)
        assert env.reg.describe() == "server 101: registered, lifetime 300 s"

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (10, "register"), (30, "register")]
    assert env.failures == []
    assert env.reg.next_attempt_at is None


def test_retry_timings_use_the_params_of_the_time() -> None:
    env = make_env(replace(BASE, retry_count=1, sequence_retry_count=1, sequence_delay=50))

    async def scenario() -> None:
        env.requester.fail(*[TransportError("timeout")] * 3)
        env.reg.start()
        await env.clock.advance(1)
        env.params = replace(env.params, sequence_delay=20)
        await env.clock.advance(100)

    run(scenario)
    assert [t for t, _ in env.requester.summary()] == [0, 50, 70, 90]


# -- stop / De-register ---------------------------------------------------------------


def test_stop_deregisters_when_registered() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(5)
        await env.reg.stop()
        await env.clock.advance(1000)

    run(scenario)
    assert env.requester.summary() == [(0, "register"), (5, "deregister")]
    assert env.requester.sent[1].path == LOCATION
    assert env.reg.state is State.DEREGISTERED
    assert env.reg.location == ()


def test_stop_without_deregister_and_failed_deregister() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(1)
        await env.reg.stop(deregister=False)
        assert env.reg.state is State.REGISTERED
        env.requester.fail(TransportError("unreachable"))
        assert await env.reg.deregister() is False
        assert await env.reg.deregister() is True
        assert await env.reg.deregister() is False  # nothing to de-register any more

    run(scenario)
    assert [k for _, k in env.requester.summary()] == ["register", "deregister", "deregister"]


def test_stop_during_backoff_returns_without_time_passing() -> None:
    env = make_env()

    async def scenario() -> None:
        env.requester.fail(TransportError("timeout"))
        env.reg.start()
        await env.clock.advance(1)
        assert env.reg.state is State.WAITING_RETRY
        await stops_promptly(env.reg)
        assert env.clock.now() == 1
        await env.clock.advance(100)

    run(scenario)
    assert env.requester.summary() == [(0, "register")]
    assert env.reg.describe() == "server 101: waiting to retry"


def test_stop_during_an_unanswered_request_returns_promptly() -> None:
    env = make_env()

    async def scenario() -> None:
        env.reg.start()
        await env.clock.advance(1)
        env.requester.fail(asyncio.get_running_loop().create_future())
        env.reg.request_update()
        await env.clock.advance(0)
        await stops_promptly(env.reg)

    run(scenario)
    # the Update was abandoned; the client was still registered, so it De-registers
    assert env.requester.summary() == [(0, "register"), (1, "update"), (1, "deregister")]
