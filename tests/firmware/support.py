"""Shared pieces for the firmware tests: an instance in a tree, package blobs, loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import random
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import aiocoap
from aiocoap import Code, Message, resource
from aiocoap.optiontypes import BlockOption

from lwm2md.engine.clock import FakeClock
from lwm2md.firmware.build import build_firmware
from lwm2md.firmware.download import Fetcher
from lwm2md.firmware.object import RESULT, STATE, FirmwareUpdate
from lwm2md.firmware.settings import FirmwareConfig
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.objects.tree import ObjectTree
from tests.integration.harness import until  # noqa: F401  (the firmware tests wait with it)

REPO = FsPath(__file__).resolve().parents[2]
SCRIPT_HEAD = b"#!/bin/sh\nexit 0\n"


def blob(size: int, seed: int = 1, head: bytes = SCRIPT_HEAD) -> bytes:
    """``size`` deterministic bytes starting with ``head`` (a shell script by default)."""
    rest = random.Random(seed).randbytes(max(0, size - len(head)))
    return (head + rest)[:size]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Rig:
    """A firmware instance in a tree, with every (state, result) pair observers were told."""

    tree: ObjectTree
    fw: FirmwareUpdate
    clock: FakeClock
    seen: list[tuple[int, int]] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)

    def states(self) -> list[int]:
        """The State values notified, one per transition."""
        return [s for s, _ in self.seen]


def make_rig(state_dir: FsPath, config: FirmwareConfig, *, fetchers: dict[str, Fetcher] | None = None,
             clock: FakeClock | None = None) -> Rig:  # fmt: skip
    tree = ObjectTree(Catalog.builtin())
    clock = clock or FakeClock()
    holder: list[Rig] = []
    fw = build_firmware(tree, tree.catalog, config, state_dir, clock,
                        on_updated=lambda: holder[0].updated.append(1), fetchers=fetchers)  # fmt: skip
    rig = Rig(tree, fw, clock)
    holder.append(rig)

    def listener(path: Path) -> None:
        if path == Path(5, 0, STATE):
            state, result = fw.read(STATE), fw.read(RESULT)
            assert isinstance(state, int) and isinstance(result, int)
            rig.seen.append((state, result))

    tree.on_value_change(listener)
    return rig


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def helper_argv(config_file: FsPath, state_dir: FsPath, work_dir: FsPath) -> list[str]:
    """The real install helper, run unprivileged from this checkout."""
    return [sys.executable, "-m", "lwm2md.firmware.helper", "--config", str(config_file),
            "--state-dir", str(state_dir), "--work-dir", str(work_dir)]  # fmt: skip


# --------------------------------------------------------------------------- CoAP blob server


class BlobResource(resource.Resource):  # type: ignore[misc]
    """Serves ``data`` with an ETag; aiocoap cuts it into Block2 blocks.

    ``requested`` lists the block numbers asked for. With ``cut_at`` set, the
    request for that block is never answered and ``cut`` is set: the test
    then shuts the server down, as if it went away mid-transfer.
    """

    def __init__(self, data: bytes, etag: bytes = b"v1") -> None:
        super().__init__()
        self.data = data
        self.etag = etag
        self.requested: list[int] = []
        self.cut_at: int | None = None
        self.cut = asyncio.Event()
        self.missing = False

    async def needs_blockwise_assembly(self, request: Message) -> bool:
        return False  # every block reaches render_get (and is counted)

    async def render_get(self, request: Message) -> Message:
        block = request.opt.block2 or BlockOption.BlockwiseTuple(0, False, 6)
        self.requested.append(block.block_number)
        if self.missing:
            return Message(code=Code.NOT_FOUND)
        if self.cut_at is not None and block.block_number == self.cut_at:
            self.cut_at = None
            self.cut.set()
            await asyncio.Future()  # never answered
        start = block.start
        end = start + block.size
        response = Message(payload=self.data[start:end], etag=self.etag)
        response.opt.block2 = BlockOption.BlockwiseTuple(block.block_number, end < len(self.data),
                                                         block.size_exponent)  # fmt: skip
        response.opt.size2 = len(self.data)
        return response


@contextlib.asynccontextmanager
async def coap_blob_server(res: BlobResource, port: int) -> AsyncIterator[aiocoap.Context]:
    site = resource.Site()
    site.add_resource(["fw.bin"], res)
    context = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
    try:
        yield context
    finally:
        await context.shutdown()


# --------------------------------------------------------------------------- HTTP range server


class RangeServer:
    """A threaded HTTP server for one blob with ETag, Range and If-Range (RFC 9110).

    With ``cut_after`` set, the next full or ranged answer sends that many
    body bytes and closes the connection. ``requests`` records (Range,
    If-Range) of each GET.
    """

    def __init__(self, data: bytes, etag: str = '"fw-1"') -> None:
        self.data = data
        self.etag = etag
        self.cut_after: int | None = None
        self.requests: list[tuple[str | None, str | None]] = []
        self.missing = False
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append((self.headers.get("Range"), self.headers.get("If-Range")))
                if owner.missing:
                    self.send_error(404)
                    return
                data, start = owner.data, 0
                wanted = self.headers.get("Range")
                if wanted and self.headers.get("If-Range") in (None, owner.etag):
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("ETag", owner.etag)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = memoryview(data)[start:]
                if owner.cut_after is not None:
                    body, owner.cut_after = body[: owner.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fw.bin"

    @contextlib.contextmanager
    def running(self) -> Iterator[RangeServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
