"""Registration interface: Register, Update, De-register, with 1.1 retry rules.

One :class:`Registration` per server account runs as a task. It owns no
socket: requests leave through an injected :class:`Requester`, time comes
from an injected :class:`~lwm2md.engine.clock.Clock`.

Timing rules:
- Update is sent ``margin`` seconds before the lifetime runs out, where
  ``margin = min(MAX_TRANSMIT_WAIT, lifetime / 2)``; at once when asked to
  (object set, lifetime or binding changed, /1/x/8 executed).
- A 4.04 answer to Update means the server forgot us: Register afresh.
- A failed Register is retried within one sequence after
  ``retry_timer * 2**(n-1)`` seconds for attempt n (``retry_count`` attempts),
  sequences are ``sequence_delay`` apart (``sequence_retry_count`` of them),
  as /1/x/17..20 describe. When all sequences fail the state becomes FAILED
  and ``on_failure`` is told; the daemon does not give up: it starts over
  after another sequence delay.
- ``stop()`` ends the task at once, whatever it is waiting for (a backoff, an
  answer), then De-registers when the client is registered.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lwm2md.engine.clock import Clock
from lwm2md.errors import code_byte, dotted
from lwm2md.logsetup import fields

LOG = logging.getLogger(__name__)

MAX_TRANSMIT_WAIT = 93.0
CREATED = code_byte(2, 1)
DELETED = code_byte(2, 2)
CHANGED = code_byte(2, 4)
NOT_FOUND = code_byte(4, 4)
LINK_FORMAT = 40


class TransportError(Exception):
    """The request got no answer (timeout, unreachable) or could not be sent."""


@dataclass(frozen=True)
class CoapResponse:
    """What a Requester returns: code byte, Location-Path segments, payload."""

    code: int
    location: tuple[str, ...] = ()
    payload: bytes = b""
    content_format: int | None = None

    @property
    def dotted(self) -> str:
        """The code as text, e.g. "4.04"."""
        return dotted(self.code)


class Requester:
    """Sends one confirmable request to one server and awaits the answer.

    Implementations raise TransportError when no answer arrives.
    """

    async def request(
        self,
        method: str,
        uri_path: Sequence[str],
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> CoapResponse:
        raise NotImplementedError


@dataclass(frozen=True)
class RegistrationParams:
    """What a Register/Update says and how retries behave; read afresh before each request."""

    endpoint: str
    lifetime: int
    binding: str
    lwm2m_version: str = "1.1"
    queue_mode: bool = False
    sms_number: str | None = None
    retry_count: int = 5
    retry_timer: float = 60.0
    sequence_delay: float = 86400.0
    sequence_retry_count: int = 1
    initial_delay: float = 0.0


class State(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    WAITING_RETRY = "waiting to retry"
    FAILED = "failed"
    DEREGISTERED = "deregistered"


class Registration:
    """The registration of this client at one server (short ID ``ssid``)."""

    def __init__(
        self,
        ssid: int,
        requester: Requester,
        clock: Clock,
        params: Callable[[], RegistrationParams],
        links: Callable[[], str],
        *,
        on_state: Callable[[Registration], None] | None = None,
        on_failure: Callable[[Registration], None] | None = None,
    ) -> None:
        self.ssid = ssid
        self._log = fields(ssid=ssid)
        self.requester = requester
        self.clock = clock
        self._params = params
        self._links = links
        self._on_state = on_state
        self._on_failure = on_failure
        self.state = State.IDLE
        self.location: tuple[str, ...] = ()
        self.registered_at = 0.0
        self.next_attempt_at: float | None = None
        self._sent: RegistrationParams | None = None
        self._sent_links = ""
        self._wake: asyncio.Future[None] | None = None
        self._update_wanted = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- control ------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`run` as a task on the running loop (no-op while it runs)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"registration-{self.ssid}")

    def request_update(self) -> None:
        """Ask for an Update now (no-op while not registered: Register carries it all)."""
        self._update_wanted = True
        self._poke()

    async def stop(self, deregister: bool = True) -> None:
        """End the task without waiting for timers or answers; then De-register if registered."""
        self._stopping = True
        self._poke()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # a cancellation of stop() itself still propagates
            if not task.cancelled() and task.exception() is not None:
                LOG.error(
                    "server %d: registration task failed",
                    self.ssid,
                    exc_info=task.exception(),
                    extra=self._log,
                )
        self.next_attempt_at = None
        if deregister and self.state is State.REGISTERED:
            await self.deregister()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _wait(self, delay: float) -> None:
        """Sleep up to ``delay`` on the clock, returning early when poked."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wake = future

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.clock.call_at(self.clock.now() + max(0.0, delay), wake)
        try:
            await future
        finally:
            handle.cancel()
            self._wake = None

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(self)

    # -- the loop -------------------------------------------------------------

    def update_due_at(self) -> float:
        """When the next periodic Update is due (``margin`` before the lifetime ends)."""
        lifetime = float(self._sent.lifetime if self._sent else self._params().lifetime)
        margin = min(MAX_TRANSMIT_WAIT, lifetime / 2)
        return self.registered_at + lifetime - margin

    async def run(self) -> None:
        """Register (after /1/x/14's initial delay), keep the registration alive, until stop()."""
        delay = self._params().initial_delay
        if delay > 0 and not self.location:
            LOG.info("server %d: initial registration delay %.0f s", self.ssid, delay, extra=self._log)
            await self._retry_wait(delay)
        while not self._stopping:
            if self.state is not State.REGISTERED:
                await self._register_sequences()
                continue
            if not self._update_wanted and not self._params_changed():
                await self._wait(self.update_due_at() - self.clock.now())
                if self._stopping:
                    break
                idle = not self._update_wanted and not self._params_changed()
                if idle and self.clock.now() < self.update_due_at():
                    continue
            self._update_wanted = False
            await self.update()

    def _params_changed(self) -> bool:
        current = self._params()
        return self._sent is not None and (
            current.lifetime != self._sent.lifetime
            or current.binding != self._sent.binding
            or current.queue_mode != self._sent.queue_mode
        )

    async def _register_sequences(self) -> None:
        params = self._params()
        for sequence in range(max(1, params.sequence_retry_count)):
            for attempt in range(max(1, params.retry_count)):
                if self._stopping:
                    return
                if attempt > 0:
                    delay = params.retry_timer * 2 ** (attempt - 1)
                    await self._retry_wait(delay)
                    if self._stopping:
                        return
                if await self.register():
                    return
            if sequence + 1 < max(1, params.sequence_retry_count):
                await self._retry_wait(params.sequence_delay)
        self._set_state(State.FAILED)
        LOG.warning("server %d: registration failed after all retries", self.ssid, extra=self._log)
        if self._on_failure is not None:
            self._on_failure(self)
        await self._retry_wait(params.sequence_delay)

    async def _retry_wait(self, delay: float) -> None:
        self.next_attempt_at = self.clock.now() + delay
        if self.state is not State.FAILED:
            self._set_state(State.WAITING_RETRY)
        LOG.info("server %d: next registration attempt in %.0f s", self.ssid, delay, extra=self._log)
        while not self._stopping and self.clock.now() < self.next_attempt_at:
            await self._wait(self.next_attempt_at - self.clock.now())
        self.next_attempt_at = None

    # -- requests -------------------------------------------------------------

    def _query(self, params: RegistrationParams) -> list[str]:
        query = [f"ep={params.endpoint}", f"lt={params.lifetime}", f"lwm2m={params.lwm2m_version}"]
        query.extend(self._binding_query(params))
        if params.sms_number:
            query.append(f"sms={params.sms_number}")
        return query

    @staticmethod
    def _binding_query(params: RegistrationParams) -> list[str]:
        if params.lwm2m_version == "1.0":
            binding = params.binding + ("Q" if params.queue_mode and "Q" not in params.binding else "")
            return [f"b={binding}"]
        out = [f"b={params.binding.replace('Q', '')}"]
        if params.queue_mode or "Q" in params.binding:
            out.append("Q")
        return out

    async def register(self) -> bool:
        """Send one Register; True on 2.01 with a location."""
        params = self._params()
        links = self._links()
        self._update_wanted = False  # this Register carries everything; later requests still count
        self._set_state(State.REGISTERING)
        LOG.info(
            "server %d: registering as %s (lifetime %d s)",
            self.ssid,
            params.endpoint,
            params.lifetime,
            extra=self._log,
        )
        try:
            response = await self.requester.request(
                "POST", ["rd"], self._query(params), links.encode(), LINK_FORMAT
            )
        except TransportError as exc:
            LOG.warning("server %d: register got no answer: %s", self.ssid, exc, extra=self._log)
            return False
        if response.code != CREATED or not response.location:
            LOG.warning(
                "server %d: register refused with %s", self.ssid, dotted(response.code), extra=self._log
            )
            return False
        self.location = response.location
        self.registered_at = self.clock.now()
        self._sent = params
        self._sent_links = links
        self._set_state(State.REGISTERED)
        LOG.info("server %d: registered at /%s", self.ssid, "/".join(self.location), extra=self._log)
        return True

    async def update(self) -> bool:
        """Send one Update with what changed; fall back to Register on 4.04 or silence."""
        params = self._params()
        links = self._links()
        query: list[str] = []
        if self._sent is None or params.lifetime != self._sent.lifetime:
            query.append(f"lt={params.lifetime}")
        if self._sent is None or (
            params.binding != self._sent.binding or params.queue_mode != self._sent.queue_mode
        ):
            query.extend(self._binding_query(params))
        if self._sent is not None and params.sms_number != self._sent.sms_number and params.sms_number:
            query.append(f"sms={params.sms_number}")
        payload = links.encode() if links != self._sent_links else b""
        LOG.debug("server %d: update %s", self.ssid, " ".join(query) or "(no parameters)", extra=self._log)
        try:
            response = await self.requester.request(
                "POST", list(self.location), query, payload, LINK_FORMAT if payload else None
            )
        except TransportError as exc:
            LOG.warning(
                "server %d: update got no answer (%s); registering again", self.ssid, exc, extra=self._log
            )
            self._set_state(State.IDLE)
            return False
        if response.code != CHANGED:
            LOG.warning(
                "server %d: update answered %s; registering again",
                self.ssid,
                dotted(response.code),
                extra=self._log,
            )
            self._set_state(State.IDLE)
            return False
        self.registered_at = self.clock.now()
        self._sent = params
        self._sent_links = links
        if self._on_state is not None:
            self._on_state(self)  # same state, renewed lifetime (and maybe new parameters)
        return True

    def resume(self, location: Sequence[str]) -> None:
        """Take over a registration that outlived a restart: the first step is an Update there.

        Call before :meth:`start`. The Update carries every parameter and the
        link list; a 4.04 or no answer falls back to a fresh Register.
        """
        self.location = tuple(location)
        self.registered_at = self.clock.now()
        self._sent = None
        self._sent_links = ""
        self._update_wanted = True
        self.state = State.REGISTERED

    def expires_in(self) -> float | None:
        """Seconds until the server drops this registration without an Update, None if not registered."""
        if self.state is not State.REGISTERED or self._sent is None:
            return None
        return self.registered_at + self._sent.lifetime - self.clock.now()

    async def deregister(self) -> bool:
        """Send De-register; True on 2.02."""
        if not self.location:
            return False
        try:
            response = await self.requester.request("DELETE", list(self.location))
        except TransportError as exc:
            LOG.warning("server %d: de-register got no answer: %s", self.ssid, exc, extra=self._log)
            return False
        self._set_state(State.DEREGISTERED)
        self.location = ()
        LOG.info("server %d: de-registered (%s)", self.ssid, dotted(response.code), extra=self._log)
        return response.code == DELETED

    def describe(self) -> str:
        """A short status for STATUS= lines and logs."""
        if self.state is State.REGISTERED and self._sent is not None:
            return f"server {self.ssid}: registered, lifetime {self._sent.lifetime} s"
        if self.next_attempt_at is not None:
            wait = max(0.0, self.next_attempt_at - self.clock.now())
            return f"server {self.ssid}: {self.state.value}, retrying in {wait:.0f} s"
        return f"server {self.ssid}: {self.state.value}"
