"""Push (Write to /5/0/0) through the real CoAP endpoint, Block1 streamed to disk.

The pushing client runs in a process of its own, so tracemalloc here sees
only the daemon side: the peak must not grow with the package size.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import aiocoap
from aiocoap import Code, Message

from lwm2md.codec import ContentFormat
from lwm2md.engine.attributes import AttributeStore
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.observe import ObserveEngine
from lwm2md.engine.requests import RequestDispatcher
from lwm2md.firmware.object import Result, State
from lwm2md.firmware.settings import FirmwareConfig
from lwm2md.transport.coap import CoapEndpoint
from tests.firmware.support import REPO, Rig, blob, free_udp_port, make_rig, sha256_hex, until

SSID = 1
MB = 1024 * 1024
CONFIG = FirmwareConfig(installers={"script": ("/bin/sh", "{package}")})


@contextlib.asynccontextmanager
async def endpoint_for(rig: Rig, client_port: int) -> AsyncIterator[CoapEndpoint]:
    """The daemon's CoAP endpoint serving ``rig``'s tree, with /5 streaming hooked in."""
    attributes = AttributeStore()
    dm = DeviceManagement(rig.tree, attributes)
    observe = ObserveEngine(dm, attributes, rig.clock, lambda ssid: (0, 0))
    dispatcher = RequestDispatcher(dm, observe, lambda ssid: ContentFormat.SENML_CBOR)
    endpoint = CoapEndpoint(dispatcher.handle, (observe.start, observe.stop), dispatcher.encode)
    endpoint.block1_sink = rig.fw.block1_sink
    await endpoint.start("::", 0)
    endpoint.peers.set(SSID, ("127.0.0.1", client_port))
    try:
        yield endpoint
    finally:
        await endpoint.close()


async def push_from_process(client_port: int, port: int, size: int, seed: int = 1, fmt: int = 42) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.firmware.push_client", str(client_port),
        f"coap://127.0.0.1:{port}/5/0/0", str(size), str(seed), str(fmt),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode()
    return output.decode().split()[0]


def push_and_measure(tmp_path: FsPath, size: int) -> int:
    """Push ``size`` bytes; return the traced peak (bytes) on the daemon side."""
    data = blob(size)

    async def scenario() -> int:
        rig = make_rig(tmp_path, CONFIG)
        await rig.fw.start()
        client_port = free_udp_port()
        async with endpoint_for(rig, client_port) as endpoint:
            tracemalloc.start()
            try:
                code = await push_from_process(client_port, endpoint.local_port, size)
                await until(lambda: rig.fw.state != State.DOWNLOADING, what="package checked")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert code == "2.04"
        assert rig.fw.state == State.DOWNLOADED and rig.fw.result == Result.INITIAL
        assert rig.fw.store.size() == size
        assert rig.fw.record.sha256 == sha256_hex(data)
        assert rig.states() == [State.DOWNLOADING, State.DOWNLOADED]
        await rig.fw.stop()
        return peak

    return asyncio.run(scenario())


def test_push_1mb_and_50mb_keep_memory_flat(tmp_path: FsPath) -> None:
    small = push_and_measure(tmp_path / "small", 1 * MB)
    large = push_and_measure(tmp_path / "large", 50 * MB)
    assert large < 4 * MB, f"peak {large} bytes while receiving 50 MB"
    assert large < small + 1 * MB, f"peak grew with the package: {small} -> {large}"


def test_push_1mb_is_streamed_to_the_package_file(tmp_path: FsPath) -> None:
    push_and_measure(tmp_path, 1 * MB)


async def _client() -> aiocoap.Context:
    return await aiocoap.Context.create_server_context(None, bind=("127.0.0.1", 0))


def _port(context: aiocoap.Context) -> int:
    for interface in context.request_interfaces:
        transport = getattr(interface.token_interface, "message_interface", None)
        sock = getattr(getattr(transport, "transport", None), "get_extra_info", None)
        if sock is not None:
            return int(sock("socket").getsockname()[1])
    raise AssertionError("no bound socket")


def test_empty_write_cancels_a_downloaded_push_and_wrong_states_are_refused(tmp_path: FsPath) -> None:
    async def scenario() -> None:
        rig = make_rig(tmp_path, CONFIG)
        await rig.fw.start()
        client = await _client()
        async with endpoint_for(rig, _port(client)) as endpoint:
            uri = f"coap://127.0.0.1:{endpoint.local_port}/5/0"

            async def send(code: Code, path: str, payload: bytes = b"", fmt: int | None = 42) -> Message:
                msg = Message(code=code, uri=uri + path, payload=payload)
                if fmt is not None:
                    msg.opt.content_format = fmt
                return await client.request(msg).response

            pkg = blob(5000)
            assert (await send(Code.PUT, "/0", pkg)).code == Code.CHANGED
            await until(lambda: rig.fw.state == State.DOWNLOADED)
            assert (await send(Code.PUT, "/0", pkg)).code == Code.METHOD_NOT_ALLOWED, "only from Idle"
            assert (await send(Code.PUT, "/1", b"coap://x/y", 0)).code == Code.METHOD_NOT_ALLOWED
            assert (await send(Code.PUT, "/0", b"\0")).code == Code.CHANGED
            assert rig.fw.state == State.IDLE and rig.fw.result == Result.INITIAL
            assert not rig.fw.store.exists(), "the package is removed on reset"
            assert (await send(Code.POST, "/2", fmt=None)).code == Code.METHOD_NOT_ALLOWED
            small = blob(700)  # one block: no Block1, assembled by the engine
            assert (await send(Code.PUT, "/0", small)).code == Code.CHANGED
            await until(lambda: rig.fw.state == State.DOWNLOADED)
            assert rig.fw.store.path.read_bytes() == small
            assert (await send(Code.POST, "/10", fmt=None)).code == Code.CHANGED
            assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.CANCELLED)
            assert rig.states() == [1, 2, 0, 1, 2, 0]
        await client.shutdown()
        await rig.fw.stop()

    asyncio.run(scenario())


def test_a_push_larger_than_allowed_is_refused_with_4_13(tmp_path: FsPath) -> None:
    config = FirmwareConfig(installers=CONFIG.installers, max_package_size=64 * 1024)

    async def scenario() -> None:
        rig = make_rig(tmp_path, config)
        await rig.fw.start()
        client_port = free_udp_port()
        async with endpoint_for(rig, client_port) as endpoint:
            code = await push_from_process(client_port, endpoint.local_port, 200 * 1024)
        assert code == "4.13"
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.NO_STORAGE)
        assert not rig.fw.store.exists()
        await rig.fw.stop()

    asyncio.run(scenario())


def test_other_block1_requests_are_capped_in_memory(tmp_path: FsPath) -> None:
    async def scenario() -> None:
        rig = make_rig(tmp_path, CONFIG)
        await rig.fw.start()
        client_port = free_udp_port()
        async with endpoint_for(rig, client_port) as endpoint:
            # a TLV Package write is not streamed: above the cap it is refused before it is assembled
            code = await push_from_process(client_port, endpoint.local_port, 300 * 1024, fmt=11542)
        assert code == "4.13"
        assert rig.fw.state == State.IDLE
        await rig.fw.stop()

    asyncio.run(scenario())
