"""The daemon's bootstrap service: when to bootstrap, and serving the Bootstrap-Server.

:class:`BootstrapService` owns the :class:`~lwm2md.engine.bootstrap.BootstrapHandler`
of the client and decides when a bootstrap happens:

- client-initiated (:meth:`BootstrapService.request`): at start when no
  LwM2M Server account exists, and when every registration has failed
  (the daemon asks). It waits the Client Hold Off Time (/0/x/11), then
  runs :class:`~lwm2md.engine.bootstrap_client.BootstrapAttempt` until one
  succeeds, waiting ``retry`` seconds, doubling up to ``retry_max``, between
  attempts;
- server-initiated: the Bootstrap-Server's requests (routed here by the
  daemon, :meth:`BootstrapService.serve`) are served while no registration
  holds (``registered()`` false) or a session is open; otherwise 4.01.

A session that sees no message for ``session_timeout`` seconds is aborted
and the configuration before it restored. ``on_finished`` runs after every
accepted Finish (or Bootstrap-Pack), before the 2.04 goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from lwm2md.engine.bootstrap import (
    FINISH_URI_PATH,
    BootstrapHandler,
    InstanceMaker,
    SessionTimer,
    hold_off_time,
)
from lwm2md.engine.bootstrap_client import BootstrapAttempt
from lwm2md.engine.clock import Clock
from lwm2md.engine.registration import Requester
from lwm2md.engine.requests import InboundRequest, Outcome
from lwm2md.errors import NotFound, Unauthorized
from lwm2md.objects.server import bootstrap_security_instance
from lwm2md.objects.tree import ObjectTree

LOG = logging.getLogger(__name__)

RETRY = 60.0
RETRY_MAX = 3600.0


class BootstrapService:
    """Client-initiated and server-initiated bootstrap for one client (see the module docstring)."""

    def __init__(
        self,
        tree: ObjectTree,
        clock: Clock,
        *,
        endpoint_name: str,
        connect: Callable[[], Awaitable[Requester | None]],
        registered: Callable[[], bool],
        on_finished: Callable[[], None],
        make_instance: InstanceMaker | None = None,
        preferred_format: int,
        session_timeout: float = 300.0,
        pack: bool = False,
        retry: float = RETRY,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.tree = tree
        self.clock = clock
        self.timer = SessionTimer(clock, session_timeout)
        self.ended = asyncio.Event()
        """Set when a session ends (Finish accepted or aborted); cleared when an attempt starts."""
        self.handler = BootstrapHandler(
            tree, make_instance=make_instance, preferred_format=preferred_format,
            timer=self.timer, on_finished=self._finished,
        )  # fmt: skip
        self.attempt = BootstrapAttempt(
            self.handler, connect, endpoint_name, self.ended, pack=pack, preferred_format=preferred_format
        )
        self.registered = registered
        self.on_finished = on_finished
        self.retry = retry
        self.retry_max = retry_max
        self._attempting = False
        self._loop: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    # -- state ---------------------------------------------------------------------

    @property
    def session_open(self) -> bool:
        """True while a bootstrap session is writing /0-/2 (the daemon holds back meanwhile)."""
        session = self.handler.session
        return session is not None and session.open

    @property
    def running(self) -> bool:
        """True while a client-initiated bootstrap is under way (waiting, requesting or in session)."""
        return self._loop is not None and not self._loop.done()

    def available(self) -> bool:
        """True when /0 holds a Bootstrap-Server account."""
        return bootstrap_security_instance(self.tree) is not None

    def _finished(self) -> None:
        self.ended.set()
        self.on_finished()

    def abort(self, reason: str) -> None:
        """End an open session without Finish (the configuration before it comes back)."""
        self.handler.abort(reason)
        self.ended.set()

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Watch session timeouts (for server-initiated sessions)."""
        if self._watch is None:
            loop = asyncio.get_running_loop()
            self._watch = loop.create_task(self._watch_sessions(), name="bootstrap timer")

    async def stop(self) -> None:
        """Cancel what runs; an open session is aborted (the previous configuration comes back)."""
        for task in (self._loop, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop = self._watch = None
        self.abort("the daemon is stopping")

    def request(self, reason: str) -> bool:
        """Start a client-initiated bootstrap (no-op when one runs); False without a Bootstrap-Server."""
        if self.running:
            return True
        if not self.available():
            LOG.error("bootstrap needed (%s) but /0 has no Bootstrap-Server account", reason)
            return False
        LOG.info("bootstrap: starting (%s)", reason)
        self._loop = asyncio.get_running_loop().create_task(self._bootstrap(), name="bootstrap")
        return True

    async def _bootstrap(self) -> None:
        delay = hold_off_time(self.tree)
        failures = 0
        while True:
            if delay > 0:
                LOG.info("bootstrap: next attempt in %.0f s", delay)
                await self.clock.sleep(delay)
            self._attempting = True
            try:
                if await self.attempt.run():
                    return
            finally:
                self._attempting = False
            failures += 1
            delay = min(self.retry_max, self.retry * 2 ** (failures - 1))

    async def _watch_sessions(self) -> None:
        while True:
            await self.timer.wait_expired()
            self.timer.stop()
            if self.session_open:
                self.abort(f"no message from the Bootstrap-Server for {self.timer.timeout:.0f} s")

    # -- serving -------------------------------------------------------------------

    async def serve(self, req: InboundRequest) -> Outcome:
        """Serve one request from the Bootstrap-Server (raises Lwm2mError on refusal)."""
        if not (self.session_open or self._attempting) and self.registered():
            raise Unauthorized("registered with a server: no bootstrap session is open")
        if req.uri_path == FINISH_URI_PATH and req.method == "POST":
            return self.handler.finish()
        if req.uri_path:
            raise NotFound(f"/{'/'.join(req.uri_path)} is not a bootstrap resource")
        return await self.handler.handle(req)
