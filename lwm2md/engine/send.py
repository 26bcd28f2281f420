"""Information Reporting Send: push configured values to a server (POST /dp).

Every ``interval`` seconds the configured paths are read and sent as one
SenML CBOR payload with the time of reading. A send that fails is logged
and dropped (storing for later delivery belongs to notification storing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from lwm2md import codec
from lwm2md.codec import ContentFormat, TypeResolver
from lwm2md.engine.clock import Clock
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.registration import CoapResponse, Requester, TransportError
from lwm2md.errors import Lwm2mError, code_byte, dotted
from lwm2md.model.path import Path
from lwm2md.model.types import Record

LOG = logging.getLogger(__name__)

CHANGED = code_byte(2, 4)
SEND_PATH = ("dp",)


def encode_send(records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """The body of a Send: ``records`` (with their times) as SenML CBOR; Lwm2mError if they cannot be."""
    return codec.encode(ContentFormat.SENML_CBOR, Path(), records, resolve)


async def post_send(requester: Requester, payload: bytes) -> CoapResponse:
    """One Send (POST /dp) of an :func:`encode_send` body; TransportError when unanswered."""
    return await requester.request("POST", SEND_PATH, (), payload, ContentFormat.SENML_CBOR)


class Sender:
    """Periodic Send of ``paths``; ``target()`` gives the registered server's requester or None."""

    def __init__(
        self,
        dm: DeviceManagement,
        clock: Clock,
        paths: Sequence[Path],
        interval: float,
        target: Callable[[], Requester | None],
    ) -> None:
        self.dm = dm
        self.clock = clock
        self.paths = tuple(paths)
        self.interval = interval
        self.target = target
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="send")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            await self.send_once()

    def payload(self) -> bytes:
        """The SenML CBOR body for the configured paths as they read now."""
        now = self.clock.wall()
        records = [replace(r, time=now) for r in self.dm.read_composite(self.paths)]
        return encode_send(records, self.dm.resolve)

    async def send_once(self) -> bool:
        """Read and send now; True when the server answered 2.04."""
        requester = self.target()
        if requester is None:
            LOG.debug("send: no registered server, skipped")
            return False
        try:
            payload = self.payload()
        except Lwm2mError as exc:
            LOG.warning("send: cannot read values (%s)", exc.dotted_code)
            return False
        try:
            response = await post_send(requester, payload)
        except TransportError as exc:
            LOG.warning("send: no answer (%s)", exc)
            return False
        if response.code != CHANGED:
            LOG.warning("send: server answered %s", dotted(response.code))
            return False
        self.sent += 1
        return True
