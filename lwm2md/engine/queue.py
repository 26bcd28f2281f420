"""LwM2M Queue Mode: when a server connection sleeps, what waits meanwhile, and what wakes it.

A server registered with Q in its binding (1.0 ``b=UQ``, 1.1 the ``Q``
flag) only expects the client to be reachable for an awake window after
each exchange. Then the client sleeps: notifications for that server are
held, and the transport is closed (that server's DTLS session; the shared
UDP socket once every server using it sleeps). A wake-up sends the
registration Update first, then the held notifications, and opens a new
awake window.

- :class:`QueuePolicy` is the one "should this connection be online now"
  predicate: :meth:`~QueuePolicy.online_reasons` gives one line per
  reason, :meth:`~QueuePolicy.should_be_online` whether there is any. It
  is plain state: no I/O, no timers.
- :class:`QueueController` keeps a policy per server, puts servers to sleep
  when their predicate turns false (a timer on the injected clock), tells
  the injected :class:`QueueTransport` what to close, holds notifications
  as the observe engine's outbox (``/1/x/6`` Notification Storing: true
  keeps them all in order, false only the latest per observation, each
  stamped with the time it was taken) and wakes a server by asking its
  registration for an Update. Requests leave through a
  :class:`QueueRequester`, which reopens the transport first.

A server wakes for a notification the observe engine emits (a change after
pmin, pmax), the registration's Update timer or any Update request
(``/1/x/8``), a Send, and :meth:`QueueController.wake` (the wake-up trigger).
A server without Q in its binding is always online and nothing is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from lwm2md.engine.clock import Clock, TimerHandle
from lwm2md.engine.observe import Observation, ObserveEngine
from lwm2md.engine.registration import (
    CHANGED,
    CREATED,
    CoapResponse,
    Registration,
    Requester,
    State,
    TransportError,
)
from lwm2md.errors import Lwm2mError
from lwm2md.model.types import Record

LOG = logging.getLogger(__name__)

ACK_RANDOM_FACTOR = 1.5  # RFC 7252 4.8
RECHECK = 1.0
"""Seconds between checks while only unacknowledged confirmable messages keep a server online."""
MAX_HELD = 1000
"""Held notifications per server; beyond it the oldest is dropped (with a warning)."""

Result = list[Record] | Lwm2mError


def max_transmit_wait(ack_timeout: float, max_retransmit: int) -> float:
    """RFC 7252 MAX_TRANSMIT_WAIT, the default awake window (93 s with the default parameters)."""
    return ack_timeout * float(2 ** (max_retransmit + 1) - 1) * ACK_RANDOM_FACTOR


class QueueTransport(Protocol):
    """What the controller needs from the CoAP endpoint."""

    @property
    def udp_open(self) -> bool: ...

    async def reopen_udp(self) -> None:
        """Open the shared UDP socket again; raise TransportError when that fails."""
        ...

    def close_udp(self) -> None: ...

    def is_secure(self, ssid: int) -> bool:
        """True when the server is reached over a DTLS session of its own (not the UDP socket)."""
        ...

    def close_secure_session(self, ssid: int, reason: str) -> bool: ...

    def unacknowledged(self, ssid: int) -> int:
        """Confirmable messages to the server still waiting for their ACK."""
        ...


@dataclass
class QueuePolicy:
    """Whether the connection to server ``ssid`` should be online: plain state, read with a time.

    ``queue_mode()`` and ``window()`` (the awake window, seconds) are read at
    each evaluation, as the binding and the configuration can change while
    running; ``unacknowledged()`` counts confirmable messages awaiting an ACK.
    The counters and ``waking`` are kept by :class:`QueueController`.
    """

    ssid: int
    queue_mode: Callable[[], bool]
    window: Callable[[], float]
    unacknowledged: Callable[[], int] = lambda: 0
    awake_until: float = float("-inf")
    requests: int = 0
    """The client's requests to the server awaiting an answer."""
    serving: int = 0
    """The server's requests being answered."""
    waking: str | None = None
    """Why a wake-up Update was asked for, until a Register or Update ends."""

    def touch(self, now: float) -> None:
        """An exchange with the server just ended: the awake window runs from ``now``."""
        self.awake_until = max(self.awake_until, now + self.window())

    def online_reasons(self, now: float) -> list[str]:
        """Every reason the connection should be online at ``now``, one line each; empty: it may sleep."""
        reasons: list[str] = []
        if not self.queue_mode():
            reasons.append("not in queue mode (no Q in the binding)")
        if now < self.awake_until:
            reasons.append(f"awake window, {self.awake_until - now:.0f} s left")
        if self.requests:
            reasons.append(f"{self.requests} request(s) to the server awaiting an answer")
        if self.serving:
            reasons.append(f"answering {self.serving} request(s) from the server")
        unacknowledged = self.unacknowledged()
        if unacknowledged:
            reasons.append(f"{unacknowledged} confirmable message(s) awaiting an acknowledgement")
        if self.waking is not None:
            reasons.append(f"waking up: {self.waking}")
        return reasons

    def should_be_online(self, now: float) -> bool:
        """True when :meth:`online_reasons` gives any reason."""
        return bool(self.online_reasons(now))


class Held(NamedTuple):
    """A notification waiting for its server to wake."""

    obs: Observation
    result: Result
    confirmable: bool


@dataclass(eq=False)
class _Server:
    """The controller's state for one server."""

    policy: QueuePolicy
    registration: Registration
    storing: Callable[[], bool]
    asleep: bool = False
    registering: int = 0  # Register / Update requests under way
    held: deque[Held] = field(default_factory=deque)
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    overflowed: bool = False

    @property
    def ssid(self) -> int:
        return self.policy.ssid

    def kind(self, method: str, path: tuple[str, ...]) -> str:
        """'register', 'update', 'deregister' or 'other' (a Send) for a request on the registration."""
        if method == "POST" and path == ("rd",):
            return "register"
        location = tuple(self.registration.location)
        if location and path == location:
            return {"POST": "update", "DELETE": "deregister"}.get(method, "other")
        return "other"


class QueueRequester(Requester):
    """The requester of one server, routed through the queue controller.

    Attributes other than :meth:`request` are the wrapped requester's
    (``inner``), so the wrapper is transparent to code that inspects it.
    """

    def __init__(self, controller: QueueController, ssid: int, inner: Requester) -> None:
        self.controller = controller
        self.ssid = ssid
        self.inner = inner

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        return await self.controller.request(
            self.ssid, self.inner, method, tuple(uri_path), query, payload, content_format
        )

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


class QueueController:
    """Queue mode for every server of the client.

    Installs itself as ``observe``'s outbox. :meth:`attach` puts a server's
    registration under it; :meth:`serving` is the endpoint's hook for the
    server's requests; :meth:`close` undoes it all (held notifications are
    dropped).
    """

    def __init__(
        self, clock: Clock, transport: QueueTransport, observe: ObserveEngine, *, recheck: float = RECHECK
    ) -> None:
        self.clock = clock
        self.transport = transport
        self.observe = observe
        self.recheck = recheck
        self._servers: dict[int, _Server] = {}
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        observe.set_outbox(self.deliver)

    # -- servers ------------------------------------------------------------------

    def attach(
        self,
        ssid: int,
        registration: Registration,
        *,
        queue_mode: Callable[[], bool],
        window: Callable[[], float],
        storing: Callable[[], bool],
    ) -> QueueRequester:
        """Put server ``ssid`` under queue mode; its registration's requester is wrapped (and returned).

        A server attached again (re-registration) starts afresh; what was held for it is dropped.
        """
        self.detach(ssid)
        policy = QueuePolicy(ssid, queue_mode, window, lambda: self.transport.unacknowledged(ssid))
        self._servers[ssid] = _Server(policy, registration, storing)
        inner = registration.requester
        if isinstance(inner, QueueRequester):
            inner = inner.inner
        wrapped = QueueRequester(self, ssid, inner)
        registration.requester = wrapped
        return wrapped

    def detach(self, ssid: int) -> None:
        """Forget server ``ssid`` (removed, or attached again); held notifications are dropped."""
        server = self._servers.pop(ssid, None)
        if server is None:
            return
        if server.held:
            LOG.info("server %d: %d held notification(s) dropped", ssid, len(server.held))
        self._resolve(server, False)
        self._reconsider()

    def policy(self, ssid: int) -> QueuePolicy:
        """The policy of server ``ssid`` (KeyError when not attached)."""
        return self._servers[ssid].policy

    def asleep(self, ssid: int) -> bool:
        """True while server ``ssid`` sleeps (its notifications are held)."""
        server = self._servers.get(ssid)
        return server is not None and server.asleep

    def held(self, ssid: int) -> list[Held]:
        """The notifications held for server ``ssid``, oldest first."""
        server = self._servers.get(ssid)
        return list(server.held) if server is not None else []

    def close(self) -> None:
        """Stop the timer, detach every server, give the observe engine its direct emits back."""
        self._cancel_timer()
        for ssid in list(self._servers):
            server = self._servers.pop(ssid)
            if server.held:
                LOG.info("server %d: %d held notification(s) dropped at stop", ssid, len(server.held))
            self._resolve(server, False)
        self.observe.set_outbox(None)

    # -- waking -------------------------------------------------------------------

    def wake(self, ssid: int, why: str) -> None:
        """Wake server ``ssid`` now (the wake-up trigger): its registration sends an Update.

        Nothing to do while a Register or Update is under way (its end is the
        wake-up) or while not registered (the next Register is).
        """
        server = self._servers.get(ssid)
        if server is None or server.registering:
            return
        if server.registration.state is not State.REGISTERED:
            LOG.debug("server %d: not registered; the next Register wakes it (%s)", ssid, why)
            return
        if server.policy.waking is None:
            LOG.info("server %d: waking up: %s", ssid, why)
        server.policy.waking = why
        server.registration.request_update()
        self._reconsider()

    async def request(
        self,
        ssid: int,
        inner: Requester,
        method: str,
        path: tuple[str, ...],
        query: Sequence[str],
        payload: bytes,
        content_format: int | None,
    ) -> CoapResponse:
        """Send one request for server ``ssid`` through ``inner``, opening the transport first.

        A request other than Register/Update/De-register to a sleeping server
        waits for the wake-up Update (TransportError when it fails or the
        server is not registered). A Register answered 2.01 or an Update
        answered 2.04 wakes the server: held notifications go out before this
        returns.
        """
        server = self._servers.get(ssid)
        if server is None:
            return await inner.request(method, path, query, payload, content_format)
        kind = server.kind(method, path)
        if kind == "other" and server.asleep:
            await self._woken_for(server, f"{method} /{'/'.join(path)}")
        wakes = kind in ("register", "update")
        policy = server.policy
        policy.requests += 1
        server.registering += wakes
        ok = False
        try:
            if not self.transport.is_secure(ssid) and not self.transport.udp_open:
                await self.transport.reopen_udp()
            response = await inner.request(method, path, query, payload, content_format)
            ok = response.code == (CREATED if kind == "register" else CHANGED)
            return response
        finally:
            policy.requests -= 1
            server.registering -= wakes
            policy.touch(self.clock.now())
            if wakes and self._servers.get(ssid) is server:
                self._registration_done(server, ok)
            self._reconsider()

    async def _woken_for(self, server: _Server, what: str) -> None:
        if server.registration.state is not State.REGISTERED:
            raise TransportError(f"{what}: not registered with server {server.ssid}")
        woken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        server.waiters.append(woken)
        self.wake(server.ssid, what)
        if not await woken:
            raise TransportError(f"{what}: the wake-up Update to server {server.ssid} failed")

    def _registration_done(self, server: _Server, ok: bool) -> None:
        """A Register or Update ended: on success the server is awake and gets what was held."""
        server.policy.waking = None
        if ok:
            if server.asleep:
                LOG.debug("server %d: awake", server.ssid)
            server.asleep = False
            self._flush(server)
        self._resolve(server, ok)

    @staticmethod
    def _resolve(server: _Server, ok: bool) -> None:
        waiters, server.waiters = server.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(ok)

    def serving(self, ssid: int, busy: bool) -> None:
        """The endpoint's hook: a request from server ``ssid`` arrived (True) or was answered (False).

        A request from a sleeping server (possible while a server without Q
        keeps the shared socket open) shows that server is talking to the
        client: it is awake from then on, without an Update.
        """
        server = self._servers.get(ssid)
        if server is None:
            return
        if busy:
            server.policy.serving += 1
            if server.asleep:
                LOG.debug("server %d: awake (it sent a request)", ssid)
                server.asleep = False
            return
        server.policy.serving = max(0, server.policy.serving - 1)
        server.policy.touch(self.clock.now())
        self._flush(server)
        self._reconsider()

    # -- notifications ------------------------------------------------------------

    def deliver(self, obs: Observation, result: Result, confirmable: bool) -> None:
        """The observe engine's outbox: send now, or hold while the server sleeps (and wake it)."""
        server = self._servers.get(obs.ssid)
        if server is not None and server.asleep:
            self._hold(server, Held(obs, result, confirmable))
            self.wake(obs.ssid, f"notification for {_target(obs)}")
            return
        try:
            obs.emit(obs, result, confirmable)
        except TransportError as exc:
            if server is None:
                raise
            LOG.debug("server %d: %s; held", obs.ssid, exc)
            self._hold(server, Held(obs, result, confirmable))
            self.wake(obs.ssid, f"notification for {_target(obs)}")
            return
        if server is not None:
            server.policy.touch(self.clock.now())
            self._reconsider()

    def _hold(self, server: _Server, item: Held) -> None:
        if isinstance(item.result, list):
            wall = self.clock.wall()
            stamped = [r if r.time is not None else replace(r, time=wall) for r in item.result]
            item = item._replace(result=stamped)
        if not server.storing():
            server.held = deque(h for h in server.held if h.obs is not item.obs)
        server.held.append(item)
        if len(server.held) > MAX_HELD:
            server.held.popleft()
            if not server.overflowed:
                LOG.warning("server %d: more than %d notifications held; dropping the oldest",
                            server.ssid, MAX_HELD)  # fmt: skip
            server.overflowed = True
        LOG.debug("server %d: notification for %s held (%d held)", server.ssid, _target(item.obs),
                  len(server.held))  # fmt: skip

    def _flush(self, server: _Server) -> None:
        """Send what was held, oldest first, while the server is awake and the transport takes it."""
        sent = 0
        while server.held and not server.asleep:
            item = server.held.popleft()
            if isinstance(item.result, list) and not self.observe.is_active(item.obs):
                continue  # the observation ended meanwhile
            try:
                item.obs.emit(item.obs, item.result, item.confirmable)
            except TransportError as exc:
                LOG.debug("server %d: held notification not sent yet: %s", server.ssid, exc)
                server.held.appendleft(item)
                break
            except Exception:
                LOG.exception("server %d: sending a held notification for %s failed", server.ssid,
                              _target(item.obs))  # fmt: skip
                continue
            sent += 1
        if sent:
            server.overflowed = False
            server.policy.touch(self.clock.now())
            LOG.debug("server %d: %d held notification(s) sent", server.ssid, sent)

    # -- sleeping -------------------------------------------------------------------

    def online_reasons(self, ssid: int) -> list[str]:
        """Why server ``ssid``'s connection should be online now (empty: it may sleep)."""
        return self._servers[ssid].policy.online_reasons(self.clock.now())

    def _reconsider(self) -> None:
        """Put servers whose predicate is false to sleep, close what nobody needs, arm the next check."""
        now = self.clock.now()
        for server in self._servers.values():
            if not server.asleep and not server.policy.should_be_online(now):
                self._sleep(server)
        self._close_unneeded(now)
        self._arm(now)

    def _sleep(self, server: _Server) -> None:
        server.asleep = True
        if self.transport.is_secure(server.ssid):
            closed = self.transport.close_secure_session(server.ssid, "queue mode: asleep")
            LOG.info("server %d: asleep%s", server.ssid, "; DTLS session closed" if closed else "")
        else:
            LOG.info("server %d: asleep", server.ssid)

    def _close_unneeded(self, now: float) -> None:
        """Close the shared UDP socket when no server that uses it should be online.

        When no server uses it (all are DTLS), it closes once every server sleeps.
        """
        if not self._servers or not self.transport.udp_open:
            return
        users = [s for s in self._servers.values() if not self.transport.is_secure(s.ssid)]
        users = users or list(self._servers.values())
        if not any(not s.asleep or s.policy.should_be_online(now) for s in users):
            self.transport.close_udp()

    def _arm(self, now: float) -> None:
        """One timer, at the earliest moment an awake server's predicate may turn false."""
        due: float | None = None
        for server in self._servers.values():
            if server.asleep or not server.policy.queue_mode():
                continue
            policy = server.policy
            when = policy.awake_until if policy.awake_until > now else now + self.recheck
            due = when if due is None else min(due, when)
        if due == self._timer_at:
            return
        self._cancel_timer()
        if due is not None:
            self._timer_at = due
            self._timer = self.clock.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._reconsider()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None


def _target(obs: Observation) -> str:
    return ",".join(str(p) for p in obs.paths)
