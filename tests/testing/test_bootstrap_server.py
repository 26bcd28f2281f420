"""Self-tests of the in-repo Bootstrap-Server (lwm2md.testing.bootstrap).

The client side is played by a plain aiocoap server context (``FakeClient``)
that records every request the Bootstrap-Server sends and sends its own
Bootstrap-Request and pack requests from the same socket; one test puts the
client engine's BootstrapHandler behind it instead. Every test runs under
asyncio.run with an overall timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.engine.bootstrap import FINISH_URI_PATH, BootstrapHandler, BootstrapState
from lwm2md.engine.requests import InboundRequest
from lwm2md.errors import Lwm2mError, dotted
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import Record, Value
from lwm2md.objects.tree import ObjectInstance, ObjectTree
from lwm2md.testing.bootstrap import AclSpec, BootstrapEvent, BootstrapServer, ServerAccountSpec

TEST_TIMEOUT = 20.0
CATALOG = Catalog.builtin()
EP = "gw-0001"
DM_URI = "coap://127.0.0.1:5683"
# the client's Bootstrap-Server account is /0/1 here, so the script writes /0/0 and then /0/2
DISCOVERED = b'</>;lwm2m=1.1,</0/0>;ssid=101;uri="coap://old",</0/1>;uri="coap://bs",</1/0>;ssid=101,</3/0>'


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await coro

    asyncio.run(bounded())


def rec(path: str, value: Value) -> Record:
    return Record(Path.parse(path), value)


@dataclass
class Seen:
    method: str
    path: str
    payload: bytes
    content_format: int | None
    accept: int | None

    def records(self) -> list[Record]:
        assert self.content_format is not None
        return codec.decode(self.content_format, self.payload, Path.parse(self.path), CATALOG.resource)


@dataclass
class Answers:
    """What the fake client answers: per ``METHOD /path`` a code; silence for the listed ones."""

    codes: dict[str, Code] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)


class FakeClient(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """Records every request and answers as ``answers`` says (2.05/2.02/2.04 by default)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Seen] = []
        self.answers = Answers()

    async def render(self, request: Any) -> Any:
        path = "/" + "/".join(request.opt.uri_path)
        cf, accept = request.opt.content_format, request.opt.accept
        method = str(request.code)
        self.requests.append(
            Seen(method, path, bytes(request.payload), None if cf is None else int(cf),
                 None if accept is None else int(accept))
        )  # fmt: skip
        key = f"{method} {path}"
        if key in self.answers.silent:
            await asyncio.sleep(3600)
        if key in self.answers.codes:
            return aiocoap.Message(code=self.answers.codes[key])
        if method == "GET" and accept == ContentFormat.LINK_FORMAT:
            return aiocoap.Message(code=Code.CONTENT, payload=DISCOVERED, content_format=40)
        if method == "DELETE":
            return aiocoap.Message(code=Code.DELETED)
        return aiocoap.Message(code=Code.CHANGED)

    @property
    def shown(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.requests]


@contextlib.asynccontextmanager
async def bootstrap_setup(
    site: Any = None, **kwargs: Any
) -> AsyncIterator[tuple[BootstrapServer, Any, Any, list[str]]]:
    """A started Bootstrap-Server, a client site and its context (ephemeral ports), log lines."""
    lines: list[str] = []
    server = await BootstrapServer.start("127.0.0.1", 0, log=lines.append, **kwargs)
    site = site if site is not None else FakeClient()
    ctx = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        yield server, site, ctx, lines
    finally:
        await ctx.shutdown()
        await server.stop()


async def send(ctx: Any, server: BootstrapServer, method: Code, path: str, **options: Any) -> Any:
    msg = aiocoap.Message(code=method, uri=server.uri + path, **options)
    async with asyncio.timeout(5):
        return await ctx.request(msg).response


def code(msg: Any) -> str:
    return dotted(int(msg.code))


def client_port(ctx: Any) -> int:
    from lwm2md.testing.server import _bound_port

    return _bound_port(ctx)


# -- client-initiated bootstrap ---------------------------------------------------------------


def test_full_sequence_in_senml_cbor() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, lines):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101, lifetime=60)], [AclSpec(3, 0, {101: 1})])
            assert code(await send(ctx, server, Code.POST, f"/bs?ep={EP}")) == "2.04"
            request = await server.wait_event("bootstrap-request", endpoint=EP)
            assert request.params == {"ep": EP} and request.remote is not None
            done = await server.wait_event("bootstrap-finished", endpoint=EP)
            assert done.paths == ["GET /", "DELETE /", "PUT /0/0", "PUT /1/0", "PUT /2/0", "POST /bs"]
            assert [s.code for s in done.steps] == ["2.05", "2.02", "2.04", "2.04", "2.04", "2.04"]
            assert client.shown == done.paths and server.results[EP] is done
            discover, _, sec, srv, acl, _ = client.requests
            assert discover.accept == ContentFormat.LINK_FORMAT
            assert {s.content_format for s in (sec, srv, acl)} == {ContentFormat.SENML_CBOR}
            assert sec.records() == [rec("/0/0/0", DM_URI), rec("/0/0/1", False), rec("/0/0/2", 3),
                                     rec("/0/0/3", b""), rec("/0/0/4", b""), rec("/0/0/5", b""),
                                     rec("/0/0/10", 101)]  # fmt: skip
            assert srv.records() == [
                rec("/1/0/0", 101),
                rec("/1/0/1", 60),
                rec("/1/0/6", True),
                rec("/1/0/7", "U"),
            ]
            assert acl.records() == [
                rec("/2/0/0", 3),
                rec("/2/0/1", 0),
                rec("/2/0/2/101", 1),
                rec("/2/0/3", 65535),
            ]
            assert lines[0].startswith(f"bootstrap-request {EP} from 127.0.0.1:")
            assert lines[-1].startswith(f"bootstrap-finished {EP}: GET / 2.05 DELETE / 2.02 PUT /0/0 2.04")

    run(main())


def test_psk_account_in_tlv_with_given_iids() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            account = ServerAccountSpec("coaps://dm.example:5684", 7, psk_identity=b"gw", psk_key=b"\x01\x02",
                                        security_iid=4, server_iid=2, binding="UQ")  # fmt: skip
            server.provision(EP, [account], fmt=ContentFormat.TLV, discover=False)
            await send(ctx, server, Code.POST, f"/bs?ep={EP}&pct=112")
            done = await server.wait_event("bootstrap-finished")
            assert done.paths == ["DELETE /", "PUT /0/4", "PUT /1/2", "POST /bs"]
            sec = client.requests[1]
            assert sec.content_format == ContentFormat.TLV
            values = {r.path.rid: r.value for r in sec.records()}
            assert (values[2], values[3], values[5], values[10]) == (0, b"gw", b"\x01\x02", 7)
            assert {r.path.rid: r.value for r in client.requests[2].records()}[7] == "UQ"

    run(main())


def test_preferred_content_format_is_used_when_not_fixed() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)], delete=False, discover=False)
            await send(ctx, server, Code.POST, f"/bs?ep={EP}&pct=110")
            done = await server.wait_event("bootstrap-finished")
            assert done.paths == ["PUT /0/1", "PUT /1/0", "POST /bs"]  # /0/0 assumed the bootstrap account
            assert client.requests[0].content_format == ContentFormat.SENML_JSON

    run(main())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "4.00"),
        ("?ep=", "4.00"),
        ("?ep=unknown", "4.00"),
        (f"?ep={EP}&pct=json", "4.00"),
        (f"?ep={EP}&ep=x", "4.00"),
    ],
)
def test_invalid_bootstrap_requests(query: str, expected: str) -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            assert code(await send(ctx, server, Code.POST, "/bs" + query)) == expected
            await asyncio.sleep(0.05)
            assert client.requests == [] and server.results == {}

    run(main())


def test_unknown_endpoint_request_is_still_an_event() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, _, ctx, _):
            assert code(await send(ctx, server, Code.POST, "/bs?ep=nobody")) == "4.00"
            event = await server.wait_event("bootstrap-request", timeout=1)
            assert event.endpoint == "nobody"
            server.provision("nobody", [ServerAccountSpec(DM_URI, 101)])
            server.forget("nobody")
            assert code(await send(ctx, server, Code.POST, "/bs?ep=nobody")) == "4.00"

    run(main())


def test_fail_after_stops_before_finish() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, lines):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101), ServerAccountSpec("coap://b", 102)])
            server.fail_after("security")
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            stopped = await server.wait_event("bootstrap-stopped")
            assert stopped.paths == ["GET /", "DELETE /", "PUT /0/0", "PUT /0/2"]
            assert stopped.reason == "stopped after security as told"
            await asyncio.sleep(0.05)
            assert "POST /bs" not in client.shown
            assert lines[-1].endswith("(stopped after security as told)")
            server.fail_after(None)
            client.requests.clear()
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            await server.wait_event("bootstrap-finished")
            assert client.shown[-1] == "POST /bs"

    run(main())


def test_refused_finish_fails_the_run() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            client.answers.codes["POST /bs"] = Code.NOT_ACCEPTABLE
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            failed = await server.wait_event("bootstrap-failed")
            assert failed.steps[-1].code == "4.06"
            assert failed.reason == "finish: POST /bs answered 4.06"

    run(main())


def test_refused_write_ends_the_run_there() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            client.answers.codes["PUT /1/0"] = Code.BAD_REQUEST
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            failed = await server.wait_event("bootstrap-failed")
            assert failed.paths[-1] == "PUT /1/0" and "POST /bs" not in client.shown

    run(main())


def test_silent_client_times_out() -> None:
    async def main() -> None:
        async with bootstrap_setup(timeout=0.3) as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            client.answers.silent.add("DELETE /")
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            failed = await server.wait_event("bootstrap-failed", timeout=5)
            assert failed.reason == "delete: no answer to DELETE /"
            assert failed.steps[-1].response is None and failed.steps[-1].code == "-"

    run(main())


def test_server_initiated_bootstrap() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            event = await server.bootstrap(EP, "127.0.0.1", client_port(ctx))
            assert event.kind == "bootstrap-finished"
            assert client.shown == ["GET /", "DELETE /", "PUT /0/0", "PUT /1/0", "POST /bs"]
            assert await server.wait_event("bootstrap-finished", timeout=1) is event
            with pytest.raises(KeyError):
                await server.bootstrap("nobody", "127.0.0.1", client_port(ctx))

    run(main())


def test_stop_cancels_a_running_script() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, client, ctx, _):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            client.answers.silent.add("GET /")
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            await asyncio.sleep(0.05)
            async with asyncio.timeout(2):
                await server.stop()
            assert server.results == {}

    run(main())


# -- Bootstrap-Pack --------------------------------------------------------------------------


def test_bootstrap_pack() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, _, ctx, lines):
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)], [AclSpec(3303, 65535, {101: 16})])
            answer = await send(ctx, server, Code.GET, f"/bspack?ep={EP}")
            assert (code(answer), answer.opt.content_format) == ("2.05", ContentFormat.SENML_CBOR)
            records = codec.decode(ContentFormat.SENML_CBOR, answer.payload, Path(), CATALOG.resource)
            assert sorted({str(r.path.parent) for r in records if r.path.level == 3}) == [
                "/0/1",
                "/1/0",
                "/2/0",
            ]
            assert rec("/2/0/2/101", 16) in records
            event = await server.wait_event("bspack", timeout=1)
            assert event.payload == answer.payload and lines[-1].startswith(f"bspack {EP} to 127.0.0.1:")
            json_answer = await send(
                ctx, server, Code.GET, f"/bspack?ep={EP}", accept=ContentFormat.SENML_JSON
            )
            assert json_answer.payload == server.pack(EP, ContentFormat.SENML_JSON)
            assert (
                code(await send(ctx, server, Code.GET, f"/bspack?ep={EP}", accept=ContentFormat.TLV))
                == "4.06"
            )
            assert code(await send(ctx, server, Code.GET, "/bspack?ep=nobody")) == "4.00"
            assert code(await send(ctx, server, Code.GET, "/bspack")) == "4.00"

    run(main())


def test_argument_checks() -> None:
    async def main() -> None:
        async with bootstrap_setup() as (server, _, _, _):
            with pytest.raises(ValueError):
                server.fail_after("finish")
            with pytest.raises(ValueError):
                server.provision(EP, [], fmt=ContentFormat.TEXT)
            with pytest.raises(ValueError):
                await server.wait_event("register")  # type: ignore[arg-type]
            server.provision(EP, [])
            with pytest.raises(ValueError):
                server.pack(EP, ContentFormat.TLV)
            with pytest.raises(TimeoutError):
                await server.wait_event("bootstrap-finished", timeout=0.05)

    run(main())


# -- against the client engine's BootstrapHandler -----------------------------------------------


class HandlerSite(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """What the daemon's transport will do: bootstrap requests to a BootstrapHandler."""

    def __init__(self, handler: BootstrapHandler) -> None:
        super().__init__()
        self.handler = handler

    async def render(self, request: Any) -> Any:
        segments = tuple(request.opt.uri_path)
        method = str(request.code)
        cf, accept = request.opt.content_format, request.opt.accept
        try:
            if method == "POST" and segments == FINISH_URI_PATH:
                outcome = self.handler.finish()
            else:
                inbound = InboundRequest(
                    0,
                    method,
                    Path.from_segments(segments),
                    (),
                    bytes(request.payload),
                    None if cf is None else int(cf),
                    None if accept is None else int(accept),
                )
                outcome = await self.handler.handle(inbound)
        except Lwm2mError as exc:
            return aiocoap.Message(code=Code(exc.code), payload=str(exc).encode()[:120])
        answer = aiocoap.Message(code=Code(outcome.code), payload=outcome.payload)
        if outcome.content_format is not None:
            answer.opt.content_format = outcome.content_format
        return answer


def client_tree(bs_uri: str) -> ObjectTree:
    tree = ObjectTree(CATALOG)
    for oid, iid, values in (
        (0, 0, {0: bs_uri, 1: True, 2: 3, 3: b"", 4: b"", 5: b""}),
        (0, 1, {0: "coap://old.example", 1: False, 2: 3, 3: b"", 4: b"", 5: b"", 10: 1}),
        (1, 0, {0: 1, 1: 300, 6: False, 7: "U"}),
        (3, 0, {0: "ACME"}),
    ):
        definition = CATALOG.get(oid)
        assert definition is not None
        tree.add_instance(ObjectInstance(definition, iid, values))  # type: ignore[arg-type]
    return tree


def test_bootstraps_the_client_engine() -> None:
    async def main() -> None:
        handler = BootstrapHandler(ObjectTree(CATALOG))
        site = HandlerSite(handler)
        async with bootstrap_setup(site) as (server, _, ctx, _):
            tree = handler.tree = client_tree(server.uri)
            accounts = [
                ServerAccountSpec(DM_URI, 101, lifetime=90),
                ServerAccountSpec("coap://b.example", 102),
            ]
            server.provision(EP, accounts, [AclSpec(3, 0, {101: 1, 102: 5})], fmt=ContentFormat.TLV)
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            done: BootstrapEvent = await server.wait_event("bootstrap-finished")
            assert done.paths == ["GET /", "DELETE /", "PUT /0/1", "PUT /0/2", "PUT /1/0", "PUT /1/1",
                                  "PUT /2/0", "POST /bs"]  # fmt: skip
            assert handler.state is BootstrapState.FINISHED
            assert [(i.iid, i.read(10) if i.has(10) else None) for i in tree.instances(0)] == [
                (0, None), (1, 101), (2, 102)]  # fmt: skip
            assert tree.instance(1, 0).read(1) == 90
            assert tree.instance(2, 0).read(2) == {101: 1, 102: 5}
            assert tree.instance(3, 0).read(0) == "ACME"

    run(main())


def test_half_done_bootstrap_rolls_back_in_the_client_engine() -> None:
    async def main() -> None:
        handler = BootstrapHandler(ObjectTree(CATALOG))
        async with bootstrap_setup(HandlerSite(handler)) as (server, _, ctx, _):
            tree = handler.tree = client_tree(server.uri)
            before = {(o.oid, i.iid): i.records() for o in tree.objects() for i in tree.instances(o.oid)}
            server.provision(EP, [ServerAccountSpec(DM_URI, 101)])
            server.fail_after("server")
            await send(ctx, server, Code.POST, f"/bs?ep={EP}")
            await server.wait_event("bootstrap-stopped")
            assert tree.instance(0, 1).read(10) == 101 and handler.state is BootstrapState.BOOTSTRAPPING
            handler.abort("session timed out")
            after = {(o.oid, i.iid): i.records() for o in tree.objects() for i in tree.instances(o.oid)}
            assert after == before

    run(main())
