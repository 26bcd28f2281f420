"""Self-tests of the in-repo LwM2M test server.

The client side is played by plain aiocoap contexts on loopback: a client
context for the Registration interface and Send, and a small scripted
"device" (an aiocoap server context) where the server's DM requests land.
Every test runs under asyncio.run with an overall timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiocoap
import pytest
from aiocoap import resource
from aiocoap.numbers.codes import Code

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.errors import dotted
from lwm2md.model.path import Path
from lwm2md.model.types import Record
from lwm2md.testing import Event, TestServer, UnknownEndpoint

LINKS = b'</>;rt="oma.lwm2m";ct="60 110 112",</1/0>,</3/0>,</3303>;ver=1.1,</3303/0>'
TEST_TIMEOUT = 20.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run one test coroutine on a fresh loop, bounded by TEST_TIMEOUT."""

    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await coro

    asyncio.run(bounded())


def code(msg: Any) -> str:
    return dotted(int(msg.code))


@contextlib.asynccontextmanager
async def server_and_client(**kwargs: Any) -> AsyncIterator[tuple[TestServer, Any, list[str]]]:
    """A started server (ephemeral port, no background expiry) and a client context."""
    lines: list[str] = []
    kwargs.setdefault("expiry_interval", None)
    server = await TestServer.start("127.0.0.1", 0, log=lines.append, **kwargs)
    client = await aiocoap.Context.create_client_context(transports=["udp6"])
    try:
        yield server, client, lines
    finally:
        await client.shutdown()
        await server.stop()


async def request(
    ctx: Any, server: TestServer, method: Code, path: str, payload: bytes = b"", **options: Any
) -> Any:
    """Send one request to the server and return the response message."""
    msg = aiocoap.Message(code=method, uri=server.uri + path, payload=payload, **options)
    async with asyncio.timeout(5):
        return await ctx.request(msg).response


async def register(ctx: Any, server: TestServer, query: str = "ep=gw-0001&lt=300&lwm2m=1.1&b=U") -> Any:
    return await request(
        ctx, server, Code.POST, "/rd?" + query, LINKS, content_format=ContentFormat.LINK_FORMAT
    )


# -- a scripted device playing the client side of DM and Observe -------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: list[str]
    payload: bytes
    content_format: int | None
    accept: int | None
    observe: int | None
    token: bytes


class Device(resource.ObservableResource, resource.PathCapable):  # type: ignore[misc]
    """Answers every request itself (see ``render``); any path is observable."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Seen] = []
        self.values = {"/3303/0/5700": "21.5", "/3/0/0": "ACME"}
        self.observers: dict[bytes, Any] = {}
        self.silent = False

    async def add_observation(self, request: Any, serverobservation: Any) -> None:
        token = bytes(request.token)
        self.observers[token] = serverobservation
        serverobservation.accept(lambda: self.observers.pop(token, None))

    def change(self, path: str, value: str) -> None:
        self.values[path] = value
        for observation in list(self.observers.values()):
            observation.trigger()

    async def render(self, request: Any) -> Any:
        path = "/" + "/".join(request.opt.uri_path)
        cf = request.opt.content_format
        accept = request.opt.accept
        self.requests.append(
            Seen(
                str(request.code),
                path,
                list(request.opt.uri_query),
                bytes(request.payload),
                None if cf is None else int(cf),
                None if accept is None else int(accept),
                request.opt.observe,
                bytes(request.token),
            )
        )
        if self.silent:
            await asyncio.sleep(3600)
        if request.code == Code.GET and accept == ContentFormat.LINK_FORMAT:
            return aiocoap.Message(
                code=Code.CONTENT, payload=b"</3/0>,</3/0/0>", content_format=ContentFormat.LINK_FORMAT
            )
        if request.code == Code.GET:
            if path not in self.values:
                return aiocoap.Message(code=Code.NOT_FOUND)
            return aiocoap.Message(
                code=Code.CONTENT, payload=self.values[path].encode(), content_format=ContentFormat.TEXT
            )
        if request.code == Code.FETCH:
            wanted = [str(p) for p in codec.decode_paths(int(cf), bytes(request.payload))]
            pack = [
                {"n": name, "v": float(value)} if value[:1].isdigit() else {"n": name, "vs": value}
                for name, value in self.values.items()
                if name in wanted
            ]
            return aiocoap.Message(
                code=Code.CONTENT, payload=json.dumps(pack).encode(), content_format=ContentFormat.SENML_JSON
            )
        if request.code == Code.POST and path == "/3303":
            return aiocoap.Message(code=Code.CREATED, location_path=("3303", "7"))
        if request.code == Code.DELETE:
            return aiocoap.Message(code=Code.DELETED)
        return aiocoap.Message(code=Code.CHANGED)


@contextlib.asynccontextmanager
async def registered_device(
    server: TestServer, endpoint: str = "dev-1", links: bytes = LINKS
) -> AsyncIterator[Device]:
    """A Device registered with ``server`` from its own socket."""
    device = Device()
    ctx = await aiocoap.Context.create_server_context(device, bind=("127.0.0.1", 0), transports=["udp6"])
    try:
        msg = aiocoap.Message(
            code=Code.POST,
            uri=f"{server.uri}/rd?ep={endpoint}&lt=60",
            payload=links,
            content_format=ContentFormat.LINK_FORMAT,
        )
        async with asyncio.timeout(5):
            response = await ctx.request(msg).response
        assert code(response) == "2.01"
        yield device
    finally:
        await ctx.shutdown()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


# -- Registration interface ------------------------------------------------------------------


def test_register_returns_created_with_location() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, lines):
            response = await register(client, server)
            assert code(response) == "2.01"
            location = "/" + "/".join(response.opt.location_path)
            assert location.startswith("/rd/") and len(response.opt.location_path) == 2

            reg = await server.wait_registered("gw-0001", timeout=1)
            assert reg.location == location
            assert (reg.lifetime, reg.binding, reg.lwm2m_version, reg.queue_mode) == (300, "U", "1.1", False)
            assert reg.objects == ["/1/0", "/3/0", "/3303", "/3303/0"]
            assert reg.object_versions == {3303: "1.1"}
            assert reg.content_formats == (60, 110, 112)
            assert reg.remote[0] == "127.0.0.1"
            event = await server.wait_event("register", timeout=1)
            assert event.endpoint == "gw-0001" and event.registration == reg
            assert event.params["lt"] == "300"
            assert server.events.get_nowait() is event
            assert lines == [
                f"registered gw-0001 {location} lt=300 b=U lwm2m=1.1 from 127.0.0.1:{reg.remote[1]} "
                "objects=</1/0>,</3/0>,</3303>;ver=1.1,</3303/0>"
            ]

    run(main())


def test_register_defaults_and_queue_mode() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            response = await register(client, server, "ep=q-1&Q&sms=%2B4912345")
            assert code(response) == "2.01"
            reg = server.registrations["q-1"]
            assert (reg.lifetime, reg.binding, reg.lwm2m_version) == (86400, "U", "1.0")
            assert reg.queue_mode and reg.sms == "+4912345"

    run(main())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lt=300", "4.00"),  # no endpoint name
        ("ep=&lt=300", "4.00"),
        ("ep=x&lt=soon", "4.00"),
        ("ep=x&lt=0", "4.00"),
        ("ep=x&b=W", "4.00"),
        ("ep=x&ep=y", "4.00"),
        ("ep=x&lwm2m=2.0", "4.12"),
    ],
)
def test_invalid_register_is_refused(query: str, expected: str) -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            response = await register(client, server, query)
            assert code(response) == expected
            assert server.registrations == {}

    run(main())


def test_register_with_malformed_links_is_bad_request() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            for payload in (b"</3/x>", b"</3/0/1>", b"\xff\xfe"):
                response = await request(client, server, Code.POST, "/rd?ep=x", payload)
                assert code(response) == "4.00", payload
            response = await request(client, server, Code.POST, "/rd?ep=x", b"{}", content_format=50)
            assert code(response) == "4.15"

    run(main())


def test_update_changes_registration() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, lines):
            location = "/" + "/".join((await register(client, server)).opt.location_path)
            first = server.registrations["gw-0001"]

            response = await request(client, server, Code.POST, location + "?lt=60&b=UQ")
            assert code(response) == "2.04"
            event = await server.wait_event("update", timeout=1, endpoint="gw-0001")
            reg = server.registrations["gw-0001"]
            assert event.registration == reg
            assert (reg.lifetime, reg.binding, reg.update_count, reg.location) == (60, "UQ", 1, location)
            assert reg.links == first.links and first.lifetime == 300  # snapshots stay intact
            assert lines[-1] == f"updated gw-0001 {location} lt=60 b=UQ"

            response = await request(
                client,
                server,
                Code.POST,
                location,
                b"</1/0>,</3/0>,</3303/1>",
                content_format=ContentFormat.LINK_FORMAT,
            )
            assert code(response) == "2.04"
            reg = server.registrations["gw-0001"]
            assert reg.objects == ["/1/0", "/3/0", "/3303/1"] and reg.update_count == 2
            assert lines[-1] == f"updated gw-0001 {location} objects=</1/0>,</3/0>,</3303/1>"

    run(main())


def test_update_of_unknown_location_is_not_found() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            await register(client, server)
            assert code(await request(client, server, Code.POST, "/rd/nope?lt=60")) == "4.04"
            assert code(await request(client, server, Code.POST, "/rd/a/b")) == "4.04"
            assert server.registrations["gw-0001"].update_count == 0

    run(main())


def test_deregister_removes_registration() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, lines):
            location = "/" + "/".join((await register(client, server)).opt.location_path)
            assert code(await request(client, server, Code.DELETE, location)) == "2.02"
            event = await server.wait_event("deregister", timeout=1)
            assert (event.endpoint, event.reason) == ("gw-0001", "deregister")
            assert server.registrations == {}
            assert lines[-1] == f"deregistered gw-0001 {location}"
            assert code(await request(client, server, Code.POST, location)) == "4.04"
            assert code(await request(client, server, Code.DELETE, location)) == "4.04"

    run(main())


def test_reregister_replaces_registration() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            old = "/" + "/".join((await register(client, server)).opt.location_path)
            new = "/" + "/".join((await register(client, server, "ep=gw-0001&lt=120")).opt.location_path)
            assert new != old
            assert list(server.registrations) == ["gw-0001"]
            assert server.registrations["gw-0001"].location == new
            assert code(await request(client, server, Code.POST, old)) == "4.04"
            assert code(await request(client, server, Code.POST, new)) == "2.04"

    run(main())


def test_forget_and_rejection_controls() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            location = "/" + "/".join((await register(client, server)).opt.location_path)
            assert server.forget("gw-0001") is not None
            assert code(await request(client, server, Code.POST, location)) == "4.04"

            server.set_reject_registration("5.03")
            assert code(await register(client, server)) == "5.03"
            assert server.registrations == {}
            server.set_reject_registration(None)
            assert code(await register(client, server)) == "2.01"
            with pytest.raises(ValueError):
                server.set_reject_registration("0.01")

    run(main())


def test_registration_expiry_with_injected_clock() -> None:
    async def main() -> None:
        now = [1000.0]
        async with server_and_client(clock=lambda: now[0]) as (server, client, lines):
            location = "/" + "/".join((await register(client, server, "ep=gw-0001&lt=30")).opt.location_path)
            now[0] = 1020.0
            assert code(await request(client, server, Code.POST, location)) == "2.04"
            now[0] = 1050.0  # 30 s after the Update: not yet past
            assert server.expire_registrations() == []
            expired = server.expire_registrations(1050.5)
            assert [reg.endpoint for reg in expired] == ["gw-0001"]
            assert server.registrations == {}
            event = await server.wait_event("deregister", timeout=1)
            assert event.reason == "expired"
            assert lines[-1] == f"expired gw-0001 {location} (lt=30)"
            assert code(await request(client, server, Code.POST, location)) == "4.04"

    run(main())


def test_background_expiry() -> None:
    async def main() -> None:
        now = [0.0]
        async with server_and_client(clock=lambda: now[0], expiry_interval=0.05) as (server, client, _):
            await register(client, server, "ep=gw-0001&lt=30")
            now[0] = 31.0
            event = await server.wait_event("deregister", timeout=2)
            assert event.reason == "expired"

    run(main())


# -- Send --------------------------------------------------------------------------------------


def test_send_is_decoded_and_recorded() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, lines):
            await register(client, server)
            payload = json.dumps(
                [{"bn": "/3303/0/", "n": "5700", "v": 21.5}, {"n": "5701", "vs": "Cel"}]
            ).encode()
            response = await request(
                client, server, Code.POST, "/dp", payload, content_format=ContentFormat.SENML_JSON
            )
            assert code(response) == "2.04"
            event = await server.wait_event("send", timeout=1, endpoint="gw-0001")
            assert event.records == [
                Record(Path(3303, 0, 5700), 21.5),
                Record(Path(3303, 0, 5701), "Cel"),
            ]
            assert (event.content_format, event.payload) == (ContentFormat.SENML_JSON, payload)
            assert lines[-1] == "send gw-0001 /3303/0/5700 = 21.5 Cel, /3303/0/5701 = 'Cel'"

            records = [Record(Path(3303, 0, 5700), 19.0, time=1700000000.0)]
            cbor = codec.encode(ContentFormat.SENML_CBOR, Path(), records, server.catalog.resource)
            response = await request(
                client, server, Code.POST, "/dp", cbor, content_format=ContentFormat.SENML_CBOR
            )
            assert code(response) == "2.04"
            event = await server.wait_event("send", timeout=1)
            assert event.records == records
            assert lines[-1] == "send gw-0001 /3303/0/5700 = 19.0 Cel @2023-11-14T22:13:20Z"

    run(main())


def test_send_refusals() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            senml = b'[{"n":"/3303/0/5700","v":1.0}]'
            unregistered = await request(
                client, server, Code.POST, "/dp", senml, content_format=ContentFormat.SENML_JSON
            )
            assert code(unregistered) == "4.04"
            await register(client, server)
            wrong_format = await request(client, server, Code.POST, "/dp", b"1", content_format=0)
            assert code(wrong_format) == "4.15"
            garbage = await request(
                client, server, Code.POST, "/dp", b"[{", content_format=ContentFormat.SENML_JSON
            )
            assert code(garbage) == "4.00"

    run(main())


# -- Device Management and Observe ---------------------------------------------------------------


def test_dm_operations_reach_the_device() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server) as device:
            read = await server.read("dev-1", "/3/0/0", accept=ContentFormat.TEXT)
            assert (read.code, read.content_format, read.payload) == ("2.05", ContentFormat.TEXT, b"ACME")
            assert read.value == "ACME"
            assert (await server.read("dev-1", "/3/0/99")).code == "4.04"

            found = await server.discover("dev-1", "/3/0")
            assert found.links is not None and [link.target for link in found.links] == ["/3/0", "/3/0/0"]

            wrote = await server.write("dev-1", "/3/0/14", b"+02", fmt=ContentFormat.TEXT)
            assert wrote.code == "2.04"
            partial = await server.write("dev-1", "/1/0/1", b"", fmt=ContentFormat.TEXT, replace=False)
            assert partial.code == "2.04"
            assert (await server.execute("dev-1", "/3/0/4", "0='x'")).code == "2.04"
            created = await server.create("dev-1", "/3303")
            assert (created.code, created.location) == ("2.01", "/3303/7")
            assert (await server.delete("dev-1", "/3303/7")).code == "2.02"
            raw = await server.raw("dev-1", "GET", "/3/bogus", query=["x=1"])
            assert raw.code == "4.04" and raw.records is None

            seen = [(r.method, r.path, r.payload, r.content_format, r.accept) for r in device.requests]
            assert seen == [
                ("GET", "/3/0/0", b"", None, ContentFormat.TEXT),
                ("GET", "/3/0/99", b"", None, None),
                ("GET", "/3/0", b"", None, ContentFormat.LINK_FORMAT),
                ("PUT", "/3/0/14", b"+02", ContentFormat.TEXT, None),
                ("POST", "/1/0/1", b"", ContentFormat.TEXT, None),
                ("POST", "/3/0/4", b"0='x'", None, None),
                ("POST", "/3303", b"", None, None),
                ("DELETE", "/3303/7", b"", None, None),
                ("GET", "/3/bogus", b"", None, None),
            ]
            assert device.requests[-1].query == ["x=1"]

    run(main())


def test_write_encodes_values() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server) as device:
            await server.write("dev-1", "/3/0/14", "+02", fmt=ContentFormat.TEXT)
            await server.write("dev-1", "/1/0/1", 120, fmt=ContentFormat.SENML_JSON, replace=False)
            assert device.requests[0].payload == b"+02"
            posted = device.requests[1]
            assert (posted.method, posted.content_format) == ("POST", ContentFormat.SENML_JSON)
            records = json.loads(posted.payload)
            assert len(records) == 1 and records[0].get("v") == 120

    run(main())


def test_write_attributes_builds_query() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server) as device:
            response = await server.write_attributes(
                "dev-1", "/3303/0/5700", pmin=10, pmax=60, gt=25.5, st=None
            )
            assert response.code == "2.04"
            seen = device.requests[-1]
            assert (seen.method, seen.payload, seen.content_format) == ("PUT", b"", None)
            assert seen.query == ["pmin=10", "pmax=60", "gt=25.5", "st"]

    run(main())


def test_observe_notifies_and_active_cancel_reuses_token() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, lines), registered_device(server) as device:
            obs = await server.observe("dev-1", "/3303/0/5700", accept=ContentFormat.TEXT)
            assert obs.active and obs.first.code == "2.05" and obs.first.value == 21.5
            assert device.requests[-1].observe == 0
            token = device.requests[-1].token
            assert obs.token == token

            device.change("/3303/0/5700", "22.0")
            note = await obs.next(timeout=5)
            assert note.value == 22.0 and note.observe is not None
            event = await server.wait_event("notify", timeout=1, endpoint="dev-1")
            assert event.path == "/3303/0/5700" and event.response == note and event.observation is obs
            assert lines[-1] == "notify dev-1 /3303/0/5700 = 22.0"

            final = await obs.cancel(timeout=5)
            assert final.code == "2.05" and final.observe is None and not obs.active
            cancel_request = device.requests[-1]
            assert (cancel_request.observe, cancel_request.token) == (1, token)
            assert device.observers == {}  # the device matched the deregistration by token

    run(main())


def test_cancel_by_reset_makes_the_device_drop_the_observation() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server) as device:
            obs = await server.observe("dev-1", "/3303/0/5700", accept=ContentFormat.TEXT)
            assert len(device.observers) == 1
            obs.cancel_by_reset()
            assert not obs.active
            # aiocoap still acknowledges the first notification after the local cancel...
            device.change("/3303/0/5700", "1.0")
            await asyncio.sleep(0.3)
            assert len(device.observers) == 1
            # ...and resets the next one, upon which the device ends the observation.
            device.change("/3303/0/5700", "2.0")
            await eventually(lambda: not device.observers)
            assert obs.notifications.empty()

    run(main())


def test_composite_operations_and_create_with_records() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server) as device:
            senml = ContentFormat.SENML_JSON
            paths = ["/3/0/0", "/3303/0/5700"]
            read = await server.read_composite("dev-1", paths, fmt=senml, accept=senml)
            assert read.code == "2.05"
            assert read.records is not None
            assert sorted(read.records, key=lambda r: r.path) == [
                Record(Path(3, 0, 0), "ACME"),
                Record(Path(3303, 0, 5700), 21.5),
            ]
            fetch = device.requests[-1]
            assert (fetch.method, fetch.path, fetch.content_format, fetch.accept) == (
                "FETCH",
                "/",
                senml,
                senml,
            )
            assert [str(p) for p in codec.decode_paths(senml, fetch.payload)] == paths

            wrote = await server.write_composite("dev-1", [Record(Path(3, 0, 14), "+02")], fmt=senml)
            assert wrote.code == "2.04"
            patch = device.requests[-1]
            assert (patch.method, patch.path, patch.content_format) == ("iPATCH", "/", senml)
            assert codec.decode(senml, patch.payload, Path(), server.catalog.resource) == [
                Record(Path(3, 0, 14), "+02")
            ]

            created = await server.create("dev-1", "/3303", [Record(Path(3303, 7, 5700), 1.5)], fmt=senml)
            assert created.location == "/3303/7"
            post = device.requests[-1]
            assert (post.method, post.path, post.content_format) == ("POST", "/3303", senml)
            assert codec.decode(senml, post.payload, Path(3303), server.catalog.resource) == [
                Record(Path(3303, 7, 5700), 1.5)
            ]

            obs = await server.observe_composite("dev-1", paths, fmt=senml, accept=senml)
            assert obs.active and obs.path is None and obs.paths == tuple(paths)
            device.change("/3303/0/5700", "23.5")
            note = await obs.next(timeout=5)
            assert note.records is not None and Record(Path(3303, 0, 5700), 23.5) in note.records
            final = await obs.cancel(timeout=5)
            assert final.observe is None
            cancel = device.requests[-1]
            assert (cancel.method, cancel.observe, cancel.token) == ("FETCH", 1, obs.token)
            assert cancel.payload == device.requests[-3].payload  # same paths as the Observe-Composite
            assert device.observers == {}

    run(main())


def test_alternate_path_prefixes_dm_requests() -> None:
    async def main() -> None:
        links = b'</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>'
        async with server_and_client() as (server, _, _), registered_device(server, links=links) as device:
            reg = server.registrations["dev-1"]
            assert (reg.alternate_path, reg.objects) == ("/lwm2m", ["/lwm2m/3/0"])
            await server.read("dev-1", "/3/0/0")
            assert device.requests[-1].path == "/lwm2m/3/0/0"

    run(main())


def test_observe_of_missing_path_is_not_established() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server):
            obs = await server.observe("dev-1", "/3303/0/9999")
            assert obs.first.code == "4.04" and not obs.active
            with pytest.raises(RuntimeError):
                await obs.cancel()

    run(main())


def test_dm_to_unknown_endpoint_and_timeout() -> None:
    async def main() -> None:
        async with server_and_client() as (server, _, _), registered_device(server) as device:
            with pytest.raises(UnknownEndpoint):
                await server.read("nobody", "/3/0")
            with pytest.raises(ValueError):
                await server.read("dev-1", "/3/x")
            device.silent = True
            with pytest.raises(TimeoutError):
                await server.read("dev-1", "/3/0/0", timeout=0.3)

    run(main())


def test_wait_event_leaves_other_events_queued() -> None:
    async def main() -> None:
        async with server_and_client() as (server, client, _):
            location = "/" + "/".join((await register(client, server)).opt.location_path)
            await request(client, server, Code.POST, location)
            update = await server.wait_event("update", timeout=1)
            register_event = await server.wait_event("register", timeout=1)
            assert isinstance(update, Event) and register_event.kind == "register"
            with pytest.raises(TimeoutError):
                await server.wait_event("register", timeout=0.1)
            with pytest.raises(ValueError):
                await server.wait_event("nonsense", timeout=0.1)  # type: ignore[arg-type]

    run(main())


# -- CLI -----------------------------------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_prints_one_line_per_event() -> None:
    async def main() -> None:
        port = _free_udp_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lwm2md.testing",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(10):
                first = await proc.stdout.readline()
            assert first.decode().strip() == f"listening on coap://127.0.0.1:{port}"
            async with server_free_client() as client:
                msg = aiocoap.Message(
                    code=Code.POST, uri=f"coap://127.0.0.1:{port}/rd?ep=cli-1&lt=99", payload=b"</3/0>"
                )
                async with asyncio.timeout(5):
                    assert code(await client.request(msg).response) == "2.01"
            async with asyncio.timeout(5):
                line = (await proc.stdout.readline()).decode()
            assert line.startswith("registered cli-1 /rd/") and "lt=99" in line
            assert line.endswith("objects=</3/0>\n")
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(main())


@contextlib.asynccontextmanager
async def server_free_client() -> AsyncIterator[Any]:
    client = await aiocoap.Context.create_client_context(transports=["udp6"])
    try:
        yield client
    finally:
        await client.shutdown()
