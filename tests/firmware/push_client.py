"""A CoAP client in its own process pushing a package with Block1 (for the push tests and benchmark).

``python -m tests.firmware.push_client BIND_PORT URI SIZE [SEED] [FORMAT]``: binds
127.0.0.1:BIND_PORT (the address the endpoint knows as its server), PUTs
``blob(SIZE, SEED)`` to URI in 1024-byte blocks and prints
``<code> <seconds>``.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiocoap
from aiocoap import Code, Message

from tests.firmware.support import blob


async def push(bind_port: int, uri: str, size: int, seed: int, fmt: int) -> tuple[str, float]:
    context = await aiocoap.Context.create_server_context(None, bind=("127.0.0.1", bind_port))
    try:
        request = Message(code=Code.PUT, uri=uri, payload=blob(size, seed) if size else b"")
        request.opt.content_format = fmt
        began = time.perf_counter()
        response = await context.request(request).response
        return str(response.code.dotted), time.perf_counter() - began
    finally:
        await context.shutdown()


def main() -> None:
    port, uri, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    fmt = int(sys.argv[5]) if len(sys.argv) > 5 else 42
    code, seconds = asyncio.run(push(port, uri, size, seed, fmt))
    print(code, f"{seconds:.3f}")


if __name__ == "__main__":
    main()
