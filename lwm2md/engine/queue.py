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
  as the observe engine's outbox and wakes a server by asking its
  registration for an Update. Requests leave through a
  :class:`QueueRequester`, which reopens the transport first.

Notifications are held while their server sleeps, while its registration
is not in ``State.REGISTERED`` (an outage: an Update failed and it registers
again; Disable; failed), when the transport refuses them, and while earlier
ones still wait, so that a server gets everything in the order it was
produced. ``/1/x/6`` Notification Storing true keeps them all, false only
the latest per observation; each is stamped with the time it was taken and
kept in a :class:`~lwm2md.engine.notification_store.NotificationStore` (on
disk when the controller is given one), bounded per server. After a
successful Register or Update they go out oldest first: through the
observation when it is still active, else (the observation ended, or the
entry was restored from disk after a restart) through ``send_orphans``, the
daemon's LwM2M Send.

A server wakes for a notification the observe engine emits (a change after
pmin, pmax), the registration's Update timer or any Update request
(``/1/x/8``), a Send, and :meth:`QueueController.wake` (the wake-up trigger).
A server without Q in its binding is always online and nothing is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from lwm2md.engine.clock import Clock, TimerHandle
from lwm2md.engine.notification_store import NotificationStore, StoredNotification
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
"""Held notifications per server without a store of the daemon's; beyond it the oldest is dropped."""
ORPHAN_BATCH = 32
"""Most held notifications handed to ``send_orphans`` in one call."""

Result = list[Record] | Lwm2mError
SendOrphans = Callable[[int, list[Record]], Awaitable[bool]]
"""``send_orphans(ssid, records)``: deliver notifications whose observation is gone (an LwM2M Send).

``records`` are those of one or more notifications, in order, with their
timestamps. True: delivered; False: refused or impossible (they are
dropped); TransportError: not now (they are kept for the next Register or
Update).
"""


class ObservationLost(TransportError):
    """Raised by an observation's ``emit`` when its CoAP relation is gone for good.

    For a transport that keeps an observation running in the observe engine
    after losing its relation (a request to the server timed out), so that
    what it produces meanwhile is held: the controller then ends the
    observation and delivers its notifications through ``send_orphans``.
    """


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
    """A notification waiting for its server.

    ``obs`` is None for one restored from disk (its observation is from an
    earlier run); ``key`` is its entry in the store (None for an error
    result, which is kept in memory only).
    """

    obs: Observation | None
    result: Result
    confirmable: bool
    key: int | None = None


@dataclass(eq=False)
class _Server:
    """The controller's state for one server."""

    policy: QueuePolicy
    registration: Registration
    storing: Callable[[], bool]
    asleep: bool = False
    registering: int = 0  # Register / Update requests under way
    held: deque[Held] = field(default_factory=deque)
    sending: list[Held] = field(default_factory=list)
    """Held notifications handed to ``send_orphans``, not answered yet (they come before ``held``)."""
    flush_task: asyncio.Task[None] | None = None
    orphans_dropped: int = 0
    outage_logged: bool = False
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)

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
    """Queue mode, and notification holding, for every server of the client.

    Installs itself as ``observe``'s outbox. :meth:`attach` puts a server's
    registration under it; :meth:`serving` is the endpoint's hook for the
    server's requests; :meth:`close` undoes it all. Held notifications live
    in ``store`` (None: in memory, at most :data:`MAX_HELD` per server; a
    store with a directory keeps them on disk across restarts); those whose
    observation is gone go to ``send_orphans`` (see :data:`SendOrphans`;
    None: they are dropped with a log line).
    """

    def __init__(
        self,
        clock: Clock,
        transport: QueueTransport,
        observe: ObserveEngine,
        *,
        recheck: float = RECHECK,
        store: NotificationStore | None = None,
        send_orphans: SendOrphans | None = None,
    ) -> None:
        self.clock = clock
        self.transport = transport
        self.observe = observe
        self.recheck = recheck
        self.store = store if store is not None else NotificationStore(None, MAX_HELD)
        self.send_orphans = send_orphans
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

        What the store holds for ``ssid`` (from an earlier run) is delivered
        after the first successful Register or Update, through
        ``send_orphans``. A server attached again keeps what was held for it.
        """
        previous = self._servers.pop(ssid, None)
        if previous is not None:
            held = deque(h for h in self._release(previous) if self._still_stored(ssid, h))
            self._resolve(previous, False)
            self._reconsider()
        else:
            held = deque(Held(None, list(e.records), e.confirmable, e.seq) for e in self.store.entries(ssid))
            if held:
                LOG.info("server %d: %d stored notification(s) from an earlier run, sent once registered",
                         ssid, len(held))  # fmt: skip
        policy = QueuePolicy(ssid, queue_mode, window, lambda: self.transport.unacknowledged(ssid))
        self._servers[ssid] = _Server(policy, registration, storing, held=held)
        inner = registration.requester
        if isinstance(inner, QueueRequester):
            inner = inner.inner
        wrapped = QueueRequester(self, ssid, inner)
        registration.requester = wrapped
        return wrapped

    def detach(self, ssid: int) -> None:
        """Forget server ``ssid`` (removed): what was held or stored for it is dropped."""
        server = self._servers.pop(ssid, None)
        if server is None:
            return
        held = self._release(server)
        dropped = max(len(held), self.store.clear(ssid))
        if dropped:
            LOG.info("server %d: %d held notification(s) dropped", ssid, dropped)
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
        """The notifications held for server ``ssid`` (those being sent included), oldest first."""
        server = self._servers.get(ssid)
        return [*server.sending, *server.held] if server is not None else []

    def close(self) -> None:
        """Stop the timer, detach every server, give the observe engine its direct emits back.

        Held notifications stay in a persistent store for the next start;
        those only in memory are dropped (with a log line).
        """
        self._cancel_timer()
        for ssid in list(self._servers):
            server = self._servers.pop(ssid)
            held = self._release(server)
            kept = self.store.count(ssid) if self.store.persistent else 0
            dropped = sum(1 for h in held if h.key is None or not self.store.persistent)
            if kept:
                LOG.info("server %d: %d held notification(s) kept in %s for the next start", ssid, kept,
                         self.store.path(ssid))  # fmt: skip
            if dropped:
                LOG.info("server %d: %d held notification(s) dropped at stop", ssid, dropped)
            self._resolve(server, False)
        self.observe.set_outbox(None)

    @staticmethod
    def _release(server: _Server) -> deque[Held]:
        """Stop ``server``'s delivery; what it held (those being sent first), oldest first."""
        if server.flush_task is not None:
            server.flush_task.cancel()
            server.flush_task = None
        held = deque([*server.sending, *server.held])
        server.sending, server.held = [], deque()
        return held

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
            server.outage_logged = False
            self._flush(server, registered=True)
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
        """The observe engine's outbox: send now, or hold (and wake the server when it sleeps).

        Held while the server sleeps, while its registration is not in
        ``State.REGISTERED`` (sent after the next successful Register), while
        earlier notifications still wait or are being sent, and when the
        transport refuses it (TransportError); a server that is not attached
        gets it directly.
        """
        server = self._servers.get(obs.ssid)
        if server is None:
            obs.emit(obs, result, confirmable)
            return
        why = f"notification for {_target(obs)}"
        if server.asleep:
            self._hold(server, obs, result, confirmable)
            self.wake(obs.ssid, why)
            return
        if not self._registered(server):
            if not server.outage_logged:
                LOG.info("server %d: %s; holding notifications until it is registered again", obs.ssid,
                         server.registration.state.value)  # fmt: skip
                server.outage_logged = True
            self._hold(server, obs, result, confirmable)
            return
        if server.held or server.flush_task is not None:
            self._hold(server, obs, result, confirmable)  # behind what waits already
            self._flush(server)
            if server.held and server.flush_task is None:
                self.wake(obs.ssid, why)  # the transport refused the oldest: an Update first
            self._reconsider()
            return
        try:
            obs.emit(obs, result, confirmable)
        except ObservationLost:
            self._lost(obs)
            if isinstance(result, list):  # a final error response has nowhere to go
                self._hold(server, obs, result, confirmable)
                self._flush(server)
                self._reconsider()
            return
        except TransportError as exc:
            LOG.debug("server %d: %s; held", obs.ssid, exc)
            self._hold(server, obs, result, confirmable)
            self.wake(obs.ssid, why)
            return
        server.policy.touch(self.clock.now())
        self._reconsider()

    def _hold(self, server: _Server, obs: Observation, result: Result, confirmable: bool) -> None:
        """Keep a notification (records stamped with the time now) after those already held."""
        if not server.storing():
            stale = [h for h in server.held if h.obs is obs]
            if stale:
                server.held = deque(h for h in server.held if h.obs is not obs)
                self._forget(server, stale)
        key: int | None = None
        if isinstance(result, list):
            wall = self.clock.wall()
            result = [r if r.time is not None else replace(r, time=wall) for r in result]
            entry = StoredNotification(server.ssid, obs.ident, _target(obs), tuple(result), confirmable, wall)
            added = self.store.add(entry)
            key = added.seq
            if added.dropped:
                gone = set(added.dropped)
                server.held = deque(h for h in server.held if h.key not in gone)
        server.held.append(Held(obs, result, confirmable, key))
        LOG.debug("server %d: notification for %s held (%d held)", server.ssid, _target(obs),
                  len(server.held) + len(server.sending))  # fmt: skip

    @staticmethod
    def _registered(server: _Server) -> bool:
        return server.registration.state is State.REGISTERED

    def _deliverable(self, server: _Server) -> bool:
        """Registered, and no Register or Update under way (its success flushes)."""
        return self._registered(server) and not server.registering

    def _orphan(self, item: Held) -> bool:
        """True for records whose observation is gone (ended, or from an earlier run)."""
        if item.obs is None:
            return True
        return isinstance(item.result, list) and not self.observe.is_active(item.obs)

    def _lost(self, obs: Observation) -> None:
        """``obs`` lost its relation (ObservationLost): end it; what it left goes to ``send_orphans``."""
        if self.observe.is_active(obs):
            LOG.info("server %d: observation of %s lost; its held notifications go as a Send", obs.ssid,
                     _target(obs))  # fmt: skip
            self.observe.stop(obs)

    def _still_stored(self, ssid: int, item: Held) -> bool:
        return item.key is None or self.store.contains(ssid, item.key)

    def _flush(self, server: _Server, *, registered: bool = False) -> None:
        """Send what is held, oldest first, while the server is awake and registered.

        ``registered``: a Register or Update just succeeded (the registration's
        state may not say so yet); otherwise nothing goes while one is under
        way. Notifications of active observations go out through
        ``obs.emit``; a run of orphans goes to ``send_orphans`` in a task,
        after which the flush goes on. A TransportError stops it with the
        rest still held.
        """
        if server.flush_task is not None:
            return
        delivered: list[Held] = []
        while server.held and not server.asleep and (registered or self._deliverable(server)):
            item = server.held[0]
            if self._orphan(item):
                batch: list[Held] = []
                while server.held and len(batch) < ORPHAN_BATCH and self._orphan(server.held[0]):
                    batch.append(server.held.popleft())
                if self.send_orphans is None:
                    self._drop_orphans(server, batch)
                    continue
                server.sending = batch
                server.flush_task = asyncio.get_running_loop().create_task(
                    self._send_orphans(server, self.send_orphans), name=f"stored notifications {server.ssid}"
                )
                break
            server.held.popleft()
            assert item.obs is not None
            try:
                item.obs.emit(item.obs, item.result, item.confirmable)
            except ObservationLost:
                self._lost(item.obs)
                if isinstance(item.result, list):
                    server.held.appendleft(item)  # an orphan now; a final error response has nowhere to go
                continue
            except TransportError as exc:
                LOG.debug("server %d: held notification not sent yet: %s", server.ssid, exc)
                server.held.appendleft(item)
                break
            except Exception:
                LOG.exception("server %d: sending a held notification for %s failed", server.ssid,
                              _target(item.obs))  # fmt: skip
                self._forget(server, [item])
                continue
            delivered.append(item)
        self._delivered(server, delivered)
        if server.flush_task is None and server.orphans_dropped:
            LOG.warning("server %d: %d held notification(s) of ended observations dropped (not sent as "
                        "a Send)", server.ssid, server.orphans_dropped)  # fmt: skip
            server.orphans_dropped = 0

    async def _send_orphans(self, server: _Server, send: SendOrphans) -> None:
        """Hand ``server.sending`` to ``send``; then go on with the flush."""
        records = [r for item in server.sending if isinstance(item.result, list) for r in item.result]
        try:
            ok = await send(server.ssid, records)
        except TransportError as exc:
            LOG.info("server %d: %d held notification(s) not sent yet: %s", server.ssid,
                     len(server.sending), exc)  # fmt: skip
            batch = [h for h in server.sending if self._still_stored(server.ssid, h)]
            server.held.extendleft(reversed(batch))
            server.sending, server.flush_task = [], None
            return
        except Exception:
            LOG.exception("server %d: sending held notifications of ended observations failed", server.ssid)
            ok = False
        batch, server.sending, server.flush_task = server.sending, [], None
        if ok:
            self._delivered(server, batch)
        else:
            self._drop_orphans(server, batch)
        if self._servers.get(server.ssid) is server:
            self._flush(server)
            self._reconsider()

    def _drop_orphans(self, server: _Server, batch: list[Held]) -> None:
        """Give up on ``batch`` (no ``send_orphans``, or it said False); counted for one log line."""
        self._forget(server, batch)
        server.orphans_dropped += len(batch)

    def _forget(self, server: _Server, items: Sequence[Held]) -> None:
        self.store.remove(server.ssid, [h.key for h in items if h.key is not None])

    def _delivered(self, server: _Server, items: Sequence[Held]) -> None:
        """``items`` reached the server: out of the store, a new awake window, a log line."""
        if not items:
            return
        self._forget(server, items)
        server.policy.touch(self.clock.now())
        dropped = self.store.take_dropped(server.ssid)
        if dropped:
            LOG.info("server %d: %d held notification(s) sent; %d older one(s) had been dropped (more "
                     "than %d held)", server.ssid, len(items), dropped, self.store.limit)  # fmt: skip
        else:
            LOG.debug("server %d: %d held notification(s) sent", server.ssid, len(items))

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
