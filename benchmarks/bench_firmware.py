"""Firmware Update (/5) on loopback: push and pull throughput, and the daemon's RSS during a push.

Push: a CoAP client in its own process PUTs a package to /5/0/0 of a real
``CoapEndpoint`` in this process (Block1, 1024-byte blocks, streamed to the
package file); RSS of this process is sampled every 20 ms meanwhile (the
peak and its growth over the idle level are printed). Pull: the /5 object
fetches a package from an aiocoap server (Block2 with ETag) and from an
HTTP server, both on loopback. Throughput counts package bytes up to the
state Downloaded (the SHA-256 check included).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table

from lwm2md.firmware.download import CoapFetcher, HttpFetcher
from lwm2md.firmware.object import PACKAGE_URI, State
from lwm2md.firmware.settings import FirmwareConfig
from tests.firmware.support import (
    BlobResource,
    RangeServer,
    blob,
    coap_blob_server,
    free_udp_port,
    make_rig,
    until,
)
from tests.firmware.test_push import endpoint_for, push_from_process

MB = 1024 * 1024
CONFIG = FirmwareConfig(installers={"script": ("/bin/sh", "{package}")})


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def push(size: int) -> tuple[float, int, int]:
    """(MB/s, idle RSS KiB, peak RSS KiB) for one push of ``size`` bytes."""
    with tempfile.TemporaryDirectory() as state:
        rig = make_rig(Path(state), CONFIG)
        await rig.fw.start()
        client_port = free_udp_port()
        async with endpoint_for(rig, client_port) as endpoint:
            idle = peak = rss_kib()
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_kib())
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            began = time.perf_counter()
            code = await push_from_process(client_port, endpoint.local_port, size)
            await until(lambda: rig.fw.state != State.DOWNLOADING, timeout=600)
            seconds = time.perf_counter() - began
            done.set()
            await sampler
        assert code == "2.04" and rig.fw.state == State.DOWNLOADED, (code, rig.fw.state)
        await rig.fw.stop()
        return size / MB / seconds, idle, peak


async def pull(uri: str, fetchers: dict[str, object], size: int) -> float:
    with tempfile.TemporaryDirectory() as state:
        rig = make_rig(Path(state), CONFIG, fetchers=fetchers)  # type: ignore[arg-type]
        await rig.fw.start()
        began = time.perf_counter()
        rig.fw.write(PACKAGE_URI, uri)
        await until(lambda: rig.fw.state != State.DOWNLOADING, timeout=600)
        seconds = time.perf_counter() - began
        assert rig.fw.state == State.DOWNLOADED, rig.fw.result
        await rig.fw.stop()
        return size / MB / seconds


async def pull_coap(size: int) -> float:
    port = free_udp_port()
    async with coap_blob_server(BlobResource(blob(size)), port):
        fetcher = CoapFetcher(None, timeout=10.0)
        return await pull(f"coap://127.0.0.1:{port}/fw.bin", {"coap": fetcher}, size)


def main() -> None:
    push_mb = 50
    pull_coap_mb = 5
    pull_http_mb = 50
    rate, idle, peak = asyncio.run(push(push_mb * MB))
    coap_rate = asyncio.run(pull_coap(pull_coap_mb * MB))
    server = RangeServer(blob(pull_http_mb * MB))
    with server.running():
        http_rate = asyncio.run(pull(server.url, {"http": HttpFetcher(timeout=10.0)}, pull_http_mb * MB))
    print_table(
        "Firmware Update (/5) on loopback",
        [
            [f"push {push_mb} MB, CoAP Block1 1024 B", f"{rate:.2f} MB/s", ""],
            ["daemon RSS during that push (idle -> peak)", f"{idle / 1024:.1f} -> {peak / 1024:.1f} MB", ""],
            [f"pull {pull_coap_mb} MB, CoAP Block2 1024 B", f"{coap_rate:.2f} MB/s", ""],
            [f"pull {pull_http_mb} MB, HTTP/1.1", f"{http_rate:.1f} MB/s", ""],
        ],
    )


if __name__ == "__main__":
    main()
