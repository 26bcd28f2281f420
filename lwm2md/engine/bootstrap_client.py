"""Client-initiated bootstrap: one attempt, from the request to the Finish (Core TS 1.1.1 §6.1.3).

:class:`BootstrapAttempt` drives the client's side of one bootstrap against
the Bootstrap-Server the transport reaches through ``requester``; the
Bootstrap-Server's own requests reach :class:`~lwm2md.engine.bootstrap.BootstrapHandler`
through the CoAP endpoint meanwhile. An attempt:

1. with ``pack``, asks for a Bootstrap-Pack (GET /bspack?ep=...); a 2.05 whose
   content the handler accepts finishes the bootstrap at once; anything
   else falls back to the Bootstrap-Request;
2. opens the handler's session (the before-image of /0-/2), sends the
   Bootstrap-Request (POST /bs?ep=...&pct=...) and needs 2.04;
3. waits until the session ends: a Bootstrap-Finish the handler accepts,
   or the caller's abort (its session timer expired).

A failed attempt aborts the session, which restores the configuration in
force before it. No retries and no timer here: the caller decides when to
give up and when to try again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from lwm2md.codec import ContentFormat
from lwm2md.engine.bootstrap import (
    FINISH_URI_PATH,
    PACK_URI_PATH,
    BootstrapHandler,
    BootstrapState,
    bootstrap_request_query,
)
from lwm2md.engine.registration import CHANGED, Requester, TransportError
from lwm2md.engine.requests import CONTENT
from lwm2md.errors import Lwm2mError

LOG = logging.getLogger(__name__)


class BootstrapAttempt:
    """One client-initiated bootstrap; :meth:`run` returns True once Finish was accepted.

    ``requester()`` connects to the Bootstrap-Server (None: not reachable
    now, logged by it). ``ended`` must be set by the caller when
    the session ends: from ``handler``'s ``on_finished`` listener (a Finish
    can arrive before the answer to the Bootstrap-Request does) and after it
    aborts the session.
    """

    def __init__(
        self,
        handler: BootstrapHandler,
        requester: Callable[[], Awaitable[Requester | None]],
        endpoint: str,
        ended: asyncio.Event,
        *,
        pack: bool = False,
        preferred_format: int | None = ContentFormat.SENML_CBOR,
    ) -> None:
        self.handler = handler
        self.requester = requester
        self.endpoint = endpoint
        self.ended = ended
        self.pack = pack
        self.preferred_format = preferred_format

    async def run(self) -> bool:
        """Bootstrap once; True when the handler accepted a Finish (or a pack), else False."""
        requester = await self.requester()
        if requester is None:
            return False
        self.ended.clear()
        if self.pack and await self._pack(requester):
            return True
        self.handler.begin()
        query = bootstrap_request_query(self.endpoint, self.preferred_format)
        try:
            response = await requester.request("POST", FINISH_URI_PATH, query)
        except TransportError as exc:
            self.handler.abort(f"Bootstrap-Request not answered: {exc}")
            return False
        if response.code != CHANGED and not self.ended.is_set():
            self.handler.abort(f"Bootstrap-Request answered {response.dotted}")
            return False
        LOG.info("bootstrap: request accepted, waiting for the Bootstrap-Server")
        await self.ended.wait()
        return self.handler.state is BootstrapState.FINISHED

    async def _pack(self, requester: Requester) -> bool:
        """Ask for a Bootstrap-Pack; True when it was applied (the bootstrap is done)."""
        try:
            response = await requester.request("GET", PACK_URI_PATH, [f"ep={self.endpoint}"])
        except TransportError as exc:
            LOG.info("bootstrap: no Bootstrap-Pack (%s); sending a Bootstrap-Request", exc)
            return False
        if response.code != CONTENT or response.content_format is None:
            LOG.info("bootstrap: Bootstrap-Pack answered %s; sending a Bootstrap-Request", response.dotted)
            return False
        try:
            self.handler.apply_pack(response.payload, response.content_format)
        except Lwm2mError as exc:
            LOG.warning("bootstrap: Bootstrap-Pack refused (%s); sending a Bootstrap-Request", exc)
            return False
        return True
