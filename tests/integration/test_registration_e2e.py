"""Registration interface over real loopback sockets against the test server."""

from __future__ import annotations

from lwm2md.engine.registration import State
from lwm2md.testing import TestServer
from tests.integration.harness import EP, rig, run


def test_register_carries_parameters_and_object_links() -> None:
    async def scenario() -> None:
        async with rig() as r:
            reg = r.server.registrations[EP]
            assert reg.lifetime == 300
            assert reg.binding == "U"
            assert reg.lwm2m_version == "1.1"
            assert not reg.queue_mode
            assert "/3/0" in reg.objects and "/3303/0" in reg.objects and "/1/0" in reg.objects
            assert not any(target.startswith("/0") for target in reg.objects), "Security must stay hidden"
            assert reg.object_versions[3303] == "1.1"
            assert reg.content_formats == (112,), "root link announces SenML CBOR"
            assert reg.alternate_path == "/"
            assert reg.remote[1] == r.client.endpoint.local_port

    run(scenario())


def test_update_before_lifetime_expires_and_on_trigger() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.clock.advance(300 - 93 - 1)
            assert r.server.registrations[EP].update_count == 0
            await r.clock.advance(2)
            await r.server.wait_event("update", endpoint=EP)
            # /1/0/8 Registration Update Trigger
            response = await r.server.execute(EP, "/1/0/8")
            assert response.code == "2.04"
            await r.clock.settle()
            event = await r.server.wait_event("update", endpoint=EP)
            assert event.registration is not None and event.registration.update_count >= 1

    run(scenario())


def test_lifetime_write_sends_update_with_new_lifetime() -> None:
    async def scenario() -> None:
        async with rig() as r:
            response = await r.server.write(EP, "/1/0/1", 120)
            assert response.code == "2.04"
            await r.clock.settle()
            event = await r.server.wait_event("update", endpoint=EP)
            assert event.params.get("lt") == "120"
            assert r.server.registrations[EP].lifetime == 120

    run(scenario())


def test_update_answered_404_leads_to_fresh_register() -> None:
    async def scenario() -> None:
        async with rig() as r:
            first = r.server.registrations[EP].location
            r.server.forget(EP)
            r.client.request_update()
            await r.clock.settle()
            reg = await r.server.wait_registered(EP)
            assert reg.location != first

    run(scenario())


def test_register_retries_with_backoff_until_server_accepts() -> None:
    async def scenario() -> None:
        async with rig(register=False) as r:
            r.server.set_reject_registration("5.03")
            r.server.expire_registrations()
            reg = r.client.registrations[1]
            for _ in range(100):
                await r.clock.settle()
                if reg.state is State.WAITING_RETRY:
                    break
            assert reg.state is State.WAITING_RETRY
            assert EP not in r.server.registrations
            r.server.set_reject_registration(None)
            await r.clock.advance(10)  # retry timer of the config: first retry after 10 s
            await r.server.wait_registered(EP)

    run(scenario())


def test_stop_deregisters() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.client.stop()
            event = await r.server.wait_event("deregister", endpoint=EP)
            assert event.reason == "deregister"
            assert EP not in r.server.registrations

    run(scenario())


def test_server_restart_leads_to_a_fresh_registration() -> None:
    async def scenario() -> None:
        async with rig() as r:
            port = r.server.port
            old_location = r.server.registrations[EP].location
            await r.server.stop()
            r.server = await TestServer.start("127.0.0.1", port, log=lambda line: None, expiry_interval=None)
            try:
                await r.clock.advance(300 - 93)  # the regular Update reaches the restarted server: 4.04
                reg = await r.server.wait_registered(EP)
                assert reg.location  # registered afresh at the new server instance
                assert r.client.registrations[1].location == tuple(reg.location.strip("/").split("/"))
                assert reg.location != old_location or reg.update_count == 0
                assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1"
            finally:
                await r.server.stop()

    run(scenario())
