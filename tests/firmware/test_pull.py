"""Pull (/5/0/1) over real loopback sockets: CoAP Block2 with ETag, HTTP with Range/If-Range."""

from __future__ import annotations

import asyncio
from pathlib import Path as FsPath

from lwm2md.firmware.download import CoapFetcher, HttpFetcher
from lwm2md.firmware.object import PACKAGE_URI, PKG_NAME, Result, State
from lwm2md.firmware.settings import FirmwareConfig
from tests.firmware.support import (
    BlobResource,
    RangeServer,
    blob,
    coap_blob_server,
    free_udp_port,
    make_rig,
    sha256_hex,
    until,
)

SCRIPT = {"script": ("/bin/sh", "{package}")}
CONFIG = FirmwareConfig(installers=SCRIPT, retry_delay=5.0, download_retries=3)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def coap_fetchers() -> dict[str, object]:
    fetcher = CoapFetcher(None, timeout=5.0, ack_timeout=0.05)
    return {"coap": fetcher, "coaps": fetcher}


def test_coap_pull_resumes_at_the_block_where_the_server_went_away(tmp_path: FsPath) -> None:
    data = blob(200 * 1024 + 123)

    async def scenario() -> None:
        port = free_udp_port()
        res = BlobResource(data, etag=b"\x01\x02")
        rig = make_rig(tmp_path, CONFIG, fetchers=coap_fetchers())  # type: ignore[arg-type]
        await rig.fw.start()
        res.cut_at = 120
        async with coap_blob_server(res, port):
            rig.fw.write(PACKAGE_URI, f"coap://127.0.0.1:{port}/fw.bin#sha256={sha256_hex(data)}")
            assert rig.fw.state == State.DOWNLOADING
            await until(res.cut.is_set, what="the server saw block 120")
        # the server is gone: the client fails over ICMP/timeouts and waits for its retry
        await until(lambda: rig.clock.next_deadline() is not None, what="a retry is scheduled")
        assert rig.fw.state == State.DOWNLOADING
        assert rig.fw.store.size() == 120 * 1024
        res.requested.clear()
        async with coap_blob_server(res, port):
            await rig.clock.advance(CONFIG.retry_delay)
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download done")
        assert res.requested[0] == 120, "resumed at the block that was lost, not at 0"
        assert rig.fw.state == State.DOWNLOADED and rig.fw.result == Result.INITIAL
        assert rig.fw.store.path.read_bytes() == data
        assert rig.fw.read(PKG_NAME) == "fw.bin"
        assert rig.states() == [State.DOWNLOADING, State.DOWNLOADED]
        await rig.fw.stop()

    run(scenario())


def test_coap_pull_starts_over_when_the_etag_changed(tmp_path: FsPath) -> None:
    old, new = blob(50 * 1024, seed=1), blob(60 * 1024, seed=2)

    async def scenario() -> None:
        port = free_udp_port()
        res = BlobResource(old, etag=b"old")
        rig = make_rig(tmp_path, CONFIG, fetchers=coap_fetchers())  # type: ignore[arg-type]
        await rig.fw.start()
        res.cut_at = 20
        async with coap_blob_server(res, port):
            rig.fw.write(PACKAGE_URI, f"coap://127.0.0.1:{port}/fw.bin")
            await until(res.cut.is_set)
        await until(lambda: rig.clock.next_deadline() is not None)
        res.data, res.etag = new, b"new"
        res.requested.clear()
        async with coap_blob_server(res, port):
            await rig.clock.advance(CONFIG.retry_delay)
            await until(lambda: rig.fw.state != State.DOWNLOADING)
        assert res.requested[:2] == [20, 0], "asked to resume, saw another ETag, started over"
        assert rig.fw.store.path.read_bytes() == new
        await rig.fw.stop()

    run(scenario())


def test_http_pull_resumes_with_range_and_if_range(tmp_path: FsPath) -> None:
    data = blob(3 * 1024 * 1024 + 7)
    server = RangeServer(data)

    async def scenario() -> None:
        fetcher = HttpFetcher(timeout=10.0)
        rig = make_rig(tmp_path, CONFIG, fetchers={"http": fetcher})  # type: ignore[dict-item]
        await rig.fw.start()
        server.cut_after = 1_000_000
        rig.fw.write(PACKAGE_URI, server.url)
        await until(lambda: rig.clock.next_deadline() is not None, what="a retry is scheduled")
        assert rig.fw.store.size() == 1_000_000
        await rig.clock.advance(CONFIG.retry_delay)
        await until(lambda: rig.fw.state != State.DOWNLOADING)
        assert server.requests == [(None, None), ("bytes=1000000-", server.etag)]
        assert rig.fw.state == State.DOWNLOADED
        assert rig.fw.store.path.read_bytes() == data
        await rig.fw.stop()

    with server.running():
        run(scenario())


def test_http_pull_after_the_retries_is_connection_lost_and_a_rewrite_resumes(tmp_path: FsPath) -> None:
    data = blob(300_000)
    server = RangeServer(data)
    config = FirmwareConfig(installers=SCRIPT, download_retries=0)

    async def scenario() -> None:
        rig = make_rig(tmp_path, config, fetchers={"http": HttpFetcher(timeout=10.0)})  # type: ignore[dict-item]
        await rig.fw.start()
        server.cut_after = 100_000
        rig.fw.write(PACKAGE_URI, server.url)
        await until(lambda: rig.fw.state == State.IDLE)
        assert rig.fw.result == Result.CONNECTION_LOST
        assert rig.fw.store.size() == 100_000, "the partial package is kept for a resume"
        rig.fw.write(PACKAGE_URI, server.url)
        await until(lambda: rig.fw.state == State.DOWNLOADED)
        assert server.requests[-1] == ("bytes=100000-", server.etag)
        assert rig.states() == [State.DOWNLOADING, State.IDLE, State.DOWNLOADING, State.DOWNLOADED]
        assert rig.seen[1] == (State.IDLE, Result.CONNECTION_LOST)
        await rig.fw.stop()

    with server.running():
        run(scenario())


def test_http_404_is_invalid_uri(tmp_path: FsPath) -> None:
    server = RangeServer(b"")
    server.missing = True

    async def scenario() -> None:
        rig = make_rig(tmp_path, CONFIG, fetchers={"http": HttpFetcher(timeout=10.0)})  # type: ignore[dict-item]
        await rig.fw.start()
        rig.fw.write(PACKAGE_URI, server.url)
        await until(lambda: rig.fw.state == State.IDLE)
        assert rig.fw.result == Result.INVALID_URI
        await rig.fw.stop()

    with server.running():
        run(scenario())


def test_coap_404_is_invalid_uri(tmp_path: FsPath) -> None:
    async def scenario() -> None:
        port = free_udp_port()
        res = BlobResource(b"")
        res.missing = True
        rig = make_rig(tmp_path, CONFIG, fetchers=coap_fetchers())  # type: ignore[arg-type]
        await rig.fw.start()
        async with coap_blob_server(res, port):
            rig.fw.write(PACKAGE_URI, f"coap://127.0.0.1:{port}/fw.bin")
            await until(lambda: rig.fw.state == State.IDLE)
        assert rig.fw.result == Result.INVALID_URI
        await rig.fw.stop()

    run(scenario())
