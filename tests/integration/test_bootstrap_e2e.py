"""Bootstrap end to end: the real client, the in-repo Bootstrap-Server and test servers on loopback.

Covers client-initiated bootstrap to registration, Bootstrap-Pack,
server-initiated bootstrap, a bootstrap that stops half-way (the previous
servers stay in force), two servers with different ACLs and a restart that
resumes from the stored provisioning without bootstrapping again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.config import parse_config
from lwm2md.engine.bootstrap import BootstrapState
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.registration import State
from lwm2md.testing import TestServer
from lwm2md.testing.bootstrap import AclSpec, BootstrapServer, ServerAccountSpec
from tests.integration.harness import EP, inline, run, until

R, W, E, D, C = 1, 2, 4, 8, 16
WIDGET_DDF = (
    '<LWM2M><Object ObjectType="MODefinition"><Name>Widget</Name><ObjectID>33999</ObjectID>'
    "<MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory><Resources>"
    '<Item ID="0"><Name>Level</Name><Operations>RW</Operations>'
    "<MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>"
    "<Type>Integer</Type></Item></Resources></Object></LWM2M>"
)


def client_config(state_dir: str, bootstrap: dict[str, Any] | None, servers: list[dict[str, Any]] = (),
                  **extra: Any) -> Any:  # fmt: skip
    data: dict[str, Any] = {
        "state_dir": state_dir,
        "device": {"endpoint": EP, "manufacturer": "Test Inc", "model": "IT-1"},
        "sensor": [{"driver": "simulated", "objects": [3303, 3304], "interval": 5.0}],
        **extra,
    }
    if bootstrap is not None:
        data["bootstrap"] = bootstrap
    if servers:
        data["server"] = list(servers)
    return parse_config(data, "<bootstrap-it>")


@dataclass
class Site:
    bs: BootstrapServer
    servers: list[TestServer]
    state_dir: str
    objects_dir: str
    clients: list[Client]

    def client(self, config: Any) -> Client:
        client = Client(config, simulate=True, clock=FakeClock(), run_blocking=inline)
        self.clients.append(client)
        return client

    def account(self, index: int, ssid: int, **kw: Any) -> ServerAccountSpec:
        return ServerAccountSpec(uri=self.servers[index].uri, ssid=ssid, **kw)


@contextlib.asynccontextmanager
async def site(server_count: int = 1) -> AsyncIterator[Site]:
    bs = await BootstrapServer.start("127.0.0.1", 0, log=lambda line: None, timeout=5.0)
    servers = [
        await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        for _ in range(server_count)
    ]
    state_dir = tempfile.mkdtemp(prefix="lwm2md-bs-")
    objects_dir = tempfile.mkdtemp(prefix="lwm2md-objects-")
    (FsPath(objects_dir) / "widget.xml").write_text(WIDGET_DDF)
    here = Site(bs, servers, state_dir, objects_dir, [])
    try:
        yield here
    finally:
        for client in here.clients:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await client.stop()
        for server in servers:
            await server.stop()
        await bs.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(objects_dir, ignore_errors=True)


async def registered(client: Client, ssid: int) -> None:
    """Wait until the client itself has seen its registration with ``ssid`` accepted."""
    async with asyncio.timeout(10):
        while (reg := client.registrations.get(ssid)) is None or reg.state is not State.REGISTERED:
            await asyncio.sleep(0.01)


def provisioned(state_dir: str) -> dict[str, Any]:
    path = os.path.join(state_dir, "provisioned.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as fh:
        content: dict[str, Any] = json.load(fh)["content"]
    return content


def test_client_initiated_bootstrap_then_register_and_manage() -> None:
    async def scenario() -> None:
        async with site() as s:
            s.bs.provision(EP, [s.account(0, 7, lifetime=600)])
            client = s.client(client_config(s.state_dir, {"uri": s.bs.uri}))
            await client.start()
            request = await s.bs.wait_event("bootstrap-request")
            assert request.endpoint == EP
            finished = await s.bs.wait_event("bootstrap-finished")
            assert [step.code for step in finished.steps][-1] == "2.04"
            reg = await s.servers[0].wait_registered(EP)
            assert reg.lifetime == 600
            assert (await s.servers[0].read(EP, "/3/0/1")).payload == b"IT-1"
            assert (await s.servers[0].read(EP, "/0/0")).code == "4.01", "Security is never readable"
            assert "</0" not in reg.links_text if hasattr(reg, "links_text") else True
            stored = provisioned(s.state_dir)
            assert stored["source"] == "bootstrap"
            assert stored["objects"]["1"], "the /1 instance is stored"
            assert client.bootstrap.handler.state is BootstrapState.FINISHED

    run(scenario())


def test_bootstrap_pack_when_asked_for() -> None:
    async def scenario() -> None:
        async with site() as s:
            s.bs.provision(EP, [s.account(0, 3)])
            client = s.client(client_config(s.state_dir, {"uri": s.bs.uri, "pack": True}))
            await client.start()
            await s.bs.wait_event("bspack")
            await s.servers[0].wait_registered(EP)
            await registered(client, 3)
            kinds = []
            while not s.bs.events.empty():
                kinds.append(s.bs.events.get_nowait().kind)
            assert "bootstrap-request" not in kinds, kinds

    run(scenario())


def test_server_initiated_bootstrap_while_not_registered() -> None:
    async def scenario() -> None:
        async with site() as s:
            # The Bootstrap-Server does not know the client yet: its Bootstrap-Request gets 4.00.
            client = s.client(client_config(s.state_dir, {"uri": s.bs.uri}))
            await client.start()
            await s.bs.wait_event("bootstrap-request")
            s.bs.provision(EP, [s.account(0, 5)])
            event = await s.bs.bootstrap(EP, "127.0.0.1", client.endpoint.local_port)
            assert event.kind == "bootstrap-finished", event
            await s.servers[0].wait_registered(EP)
            await registered(client, 5)
            # Registered now: the Bootstrap-Server is refused until no registration holds.
            event = await s.bs.bootstrap(EP, "127.0.0.1", client.endpoint.local_port)
            assert event.kind == "bootstrap-failed"
            assert event.steps[0].code == "4.01"

    run(scenario())


def test_a_bootstrap_that_stops_half_way_leaves_the_old_servers_in_force() -> None:
    async def scenario() -> None:
        async with site(server_count=2) as s:
            config = client_config(
                s.state_dir, {"uri": s.bs.uri, "session_timeout": 30},
                [{"uri": s.servers[0].uri, "short_id": 1}],
            )  # fmt: skip
            client = s.client(config)
            await client.start()
            await registered(client, 1)
            before = {oid: [i.iid for i in client.tree.instances(oid)] for oid in (0, 1, 2)}

            s.bs.provision(EP, [s.account(1, 9)])
            s.bs.fail_after("server")  # Delete /, write /0 and /1 of the new server, then silence
            assert client.bootstrap.request("test")
            stopped = await s.bs.wait_event("bootstrap-stopped")
            assert [step.path for step in stopped.steps][:2] == ["/", "/"] or stopped.steps
            assert client.bootstrap.session_open
            assert client.registrations[1].state is State.REGISTERED, "nothing applied mid-session"

            clock = client.clock
            assert isinstance(clock, FakeClock)
            await clock.advance(31)  # the session times out: everything written is undone
            async with asyncio.timeout(5):
                while client.bootstrap.session_open:
                    await asyncio.sleep(0.01)
            after = {oid: [i.iid for i in client.tree.instances(oid)] for oid in (0, 1, 2)}
            assert after == before
            assert set(client.accounts) == {1}
            assert (await s.servers[0].read(EP, "/3/0/1")).payload == b"IT-1"
            assert EP not in s.servers[1].registrations
            if os.path.exists(os.path.join(s.state_dir, "provisioned.json")):  # what is in force, if stored
                stored = provisioned(s.state_dir)
                assert stored["source"] == "config"
                assert [v["0"] for v in stored["objects"]["1"].values()] == [1]

    run(scenario())


def test_two_servers_with_different_acls() -> None:
    async def scenario() -> None:
        async with site(server_count=2) as s:
            acls = [
                AclSpec(3303, 0, {1: R}),  # server 1 may read the temperature, server 2 nothing
                AclSpec(3, 0, {0: R | W | E}),  # everyone may manage the device
                AclSpec(33999, 65535, {2: C}),  # server 2 may create widgets
            ]
            s.bs.provision(EP, [s.account(0, 1), s.account(1, 2)], acls)
            config = client_config(s.state_dir, {"uri": s.bs.uri}, objects_dir=s.objects_dir)
            client = s.client(config)
            await client.start()
            await s.bs.wait_event("bootstrap-finished")
            one, two = s.servers
            await one.wait_registered(EP)
            reg_two = await two.wait_registered(EP)
            await registered(client, 1)
            await registered(client, 2)

            assert (await one.read(EP, "/3303/0/5700")).code == "2.05"
            assert (await one.write(EP, "/3303/0/5750", "x", fmt=ContentFormat.TEXT)).code == "4.01"
            assert (await two.read(EP, "/3303/0/5700")).code == "4.01"
            object_read = await two.read(EP, "/3303")
            assert object_read.code == "2.05" and b"5700" not in object_read.payload
            discovered = await two.discover(EP, "/3303")
            assert "/3303/0" not in discovered.payload.decode()
            assert "/3303/0" not in ",".join(str(link) for link in reg_two.links)
            assert (await two.read(EP, "/3/0/1")).payload == b"IT-1"

            # Create by server 2 (C right on /33999): it owns the new instance; server 1 may not delete it.
            created = await two.create(EP, "/33999", bytes.fromhex("0300C10005"), fmt=ContentFormat.TLV)
            assert created.code == "2.01"
            assert (await one.create(EP, "/33999", bytes.fromhex("0301C10006"), fmt=ContentFormat.TLV)
                    ).code == "4.01"  # fmt: skip
            assert (await one.delete(EP, "/33999/0")).code == "4.01"
            assert (await one.read(EP, "/33999/0/0")).code == "4.01"
            assert (await two.read(EP, "/33999/0/0")).payload == b"5"
            owner_acl = client.access.acl_instance(33999, 0)
            assert owner_acl is not None and owner_acl.read(3) == 2
            await asyncio.sleep(0.05)  # the ACL instance is stored once the loop turns
            acl_objects = provisioned(s.state_dir)["objects"]["2"]
            assert any(values.get("0") == 33999 and values.get("1") == 0 for values in acl_objects.values())
            assert (await two.delete(EP, "/33999/0")).code == "2.02"
            assert client.access.acl_instance(33999, 0) is None

    run(scenario())


def test_a_restart_resumes_from_the_stored_provisioning_without_bootstrapping() -> None:
    async def scenario() -> None:
        async with site() as s:
            s.bs.provision(EP, [s.account(0, 7)])
            config = client_config(s.state_dir, {"uri": s.bs.uri})
            client = s.client(config)
            await client.start()
            await s.bs.wait_event("bootstrap-finished")
            await registered(client, 7)
            location = s.servers[0].registrations[EP].location
            await client.stop(deregister=False)  # power cut
            s.bs.forget(EP)
            while not s.bs.events.empty():
                s.bs.events.get_nowait()

            again = s.client(config)
            await again.start()
            update = await s.servers[0].wait_event("update", endpoint=EP)
            assert update.registration is not None and update.registration.location == location
            assert set(again.accounts) == {7}
            assert again.provisioning_source == "bootstrap"
            assert s.bs.events.empty(), "no second bootstrap"

    run(scenario())


def test_a_corrupt_provisioning_file_falls_back_to_the_configuration() -> None:
    async def scenario() -> None:
        async with site() as s:
            path = FsPath(s.state_dir) / "provisioned.json"
            path.write_text('{"version": 1, "content": {"source": "bootstrap", "objects": {"1": ')
            config = client_config(s.state_dir, None, [{"uri": s.servers[0].uri, "short_id": 4}])
            client = s.client(config)
            await client.start()
            await registered(client, 4)
            assert not path.exists()
            assert list(FsPath(s.state_dir).glob("provisioned.json.bad-*")), "kept aside"
            assert client.provisioning_source == "config"

    run(scenario())


def test_every_registration_failing_leads_to_a_bootstrap() -> None:
    async def scenario() -> None:
        async with site() as s:
            gone = await TestServer.start("127.0.0.1", 0, log=lambda line: None)
            dead_uri = gone.uri
            await gone.stop()  # nothing listens there any more: each Register fails at once
            s.bs.provision(EP, [s.account(0, 8)])
            config = client_config(
                s.state_dir, {"uri": s.bs.uri},
                [{"uri": dead_uri, "short_id": 1, "communication_retry_count": 1, "sequence_retry_count": 1}],
            )  # fmt: skip
            client = s.client(config)
            await client.start()
            await s.bs.wait_event("bootstrap-finished")
            await s.servers[0].wait_registered(EP)
            await registered(client, 8)
            assert set(client.accounts) == {8}

    run(scenario())


def test_the_bootstrap_account_goes_after_its_account_timeout() -> None:
    async def scenario() -> None:
        async with site() as s:
            s.bs.provision(EP, [s.account(0, 6)])
            client = s.client(client_config(s.state_dir, {"uri": s.bs.uri, "account_timeout": 600}))
            await client.start()
            await s.bs.wait_event("bootstrap-finished")
            await registered(client, 6)
            assert client.bootstrap.available()
            clock = client.clock
            assert isinstance(clock, FakeClock)
            await clock.advance(601)
            assert not client.bootstrap.available()
            await asyncio.sleep(0.05)  # stored once the loop turns
            stored = provisioned(s.state_dir)["objects"]["0"]
            assert [v.get("1") for v in stored.values()] == [False], "only the server's /0 instance is left"
            assert (await s.servers[0].read(EP, "/3/0/1")).payload == b"IT-1"

    run(scenario())


def test_bootstrap_writes_in_tlv_and_lwm2m_cbor() -> None:
    async def scenario() -> None:
        for fmt in (ContentFormat.TLV, ContentFormat.LWM2M_CBOR):
            async with site() as s:
                s.bs.provision(EP, [s.account(0, 11, lifetime=120)], [AclSpec(3303, 0, {11: R | W})], fmt=fmt)
                client = s.client(client_config(s.state_dir, {"uri": s.bs.uri}))
                await client.start()
                finished = await s.bs.wait_event("bootstrap-finished")
                assert all(step.code.startswith("2.") for step in finished.steps), finished.paths
                assert (await s.servers[0].wait_registered(EP)).lifetime == 120
                acl = client.access.acl_instance(3303, 0)
                assert acl is not None and acl.read(2) == {11: R | W}

    run(scenario())


def test_an_instance_a_server_created_survives_a_restart_with_its_acl() -> None:
    async def scenario() -> None:
        async with site(server_count=2) as s:
            s.bs.provision(EP, [s.account(0, 1), s.account(1, 2)], [AclSpec(33999, 65535, {2: C})])
            config = client_config(s.state_dir, {"uri": s.bs.uri}, objects_dir=s.objects_dir)
            client = s.client(config)
            await client.start()
            await registered(client, 2)
            two = s.servers[1]
            created = await two.create(EP, "/33999", bytes.fromhex("0300C10005"), fmt=ContentFormat.TLV)
            assert created.code == "2.01"
            assert (await two.write(EP, "/33999/0/0", b"9", fmt=ContentFormat.TEXT)).code == "2.04"
            await client.stop(deregister=False)

            again = s.client(config)
            await again.start()
            for server in s.servers:  # each resumed with an Update from the new port
                await until(lambda srv=server: srv.registrations[EP].remote[1] == again.endpoint.local_port)
            assert (await two.read(EP, "/33999/0/0")).payload == b"9"
            assert (await s.servers[0].read(EP, "/33999/0/0")).code == "4.01", "still server 2's"
            assert (await two.delete(EP, "/33999/0")).code == "2.02"

    run(scenario())


def test_object_notifications_leave_out_instances_the_server_may_not_read() -> None:
    async def scenario() -> None:
        async with site(server_count=2) as s:
            acls = [AclSpec(3303, 0, {1: R}), AclSpec(3303, 1, {1: R, 2: R})]
            s.bs.provision(EP, [s.account(0, 1), s.account(1, 2)], acls)
            sensors = [{"driver": "simulated", "objects": [3303], "interval": 5.0} for _ in range(2)]
            client = s.client(client_config(s.state_dir, {"uri": s.bs.uri}, sensor=sensors))  # /3303/0 and 1
            await client.start()
            await registered(client, 1)
            await registered(client, 2)
            two = s.servers[1]
            obs = await two.observe(EP, "/3303", accept=ContentFormat.SENML_CBOR)
            assert obs.first.code == "2.05"
            assert {str(r.path)[:8] for r in obs.first.records or []} == {"/3303/1/"}
            for sampler in client.samplers:
                sampler.sensor.set_value("temperature", 30.5)  # type: ignore[attr-defined]
                await sampler.sample_once()
            clock = client.clock
            assert isinstance(clock, FakeClock)
            await clock.advance(1)
            note = await asyncio.wait_for(obs.notifications.get(), 10)
            assert note.records and {str(r.path)[:8] for r in note.records} == {"/3303/1/"}

    run(scenario())
