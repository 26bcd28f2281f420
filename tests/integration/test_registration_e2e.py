"""Registration interface over real loopback sockets against the test server."""

from __future__ import annotations

from lwm2md.app import Client
from lwm2md.engine.clock import FakeClock
from lwm2md.engine.registration import State
from lwm2md.testing import TestServer
from tests.integration.harness import EP, inline, make_config, rig, run, until


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
                fresh = tuple(reg.location.strip("/").split("/"))
                await until(lambda: tuple(r.client.registrations[1].location) == fresh, what="the 2.01 seen")
                assert reg.location != old_location or reg.update_count == 0
                assert (await r.server.read(EP, "/3/0/1")).payload == b"IT-1"
            finally:
                await r.server.stop()

    run(scenario())


def _two_servers(first: str, second: str, **first_extra: object) -> list[dict[str, object]]:
    return [
        {"uri": first, "short_id": 1, "registration_priority": 0, "communication_retry_count": 2,
         "communication_retry_timer": 10, "sequence_delay_timer": 600, **first_extra},
        {"uri": second, "short_id": 2, "registration_priority": 1},
    ]  # fmt: skip


def test_initial_registration_delay_is_honoured() -> None:
    async def scenario() -> None:
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        clock = FakeClock()
        table = {"uri": server.uri, "short_id": 1, "initial_registration_delay": 30}
        config = make_config(server.uri, server=[table])
        client = Client(config, simulate=True, clock=clock, run_blocking=inline)
        try:
            await client.start()
            await clock.advance(29)
            assert EP not in server.registrations
            await clock.advance(1)
            await server.wait_registered(EP)
        finally:
            await client.stop(timeout=2)
            await server.stop()

    run(scenario())


def test_priority_order_and_failure_block() -> None:
    async def scenario() -> None:
        first = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        second = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        first.set_reject_registration("5.03")
        for block in (True, False):
            clock = FakeClock()
            servers = _two_servers(first.uri, second.uri, registration_failure_block=block)
            config = make_config(first.uri, server=servers)
            client = Client(config, simulate=True, clock=clock, run_blocking=inline)
            try:
                await client.start()
                await clock.advance(1)
                registration = client.registrations[1]
                await until(lambda: registration.state is State.WAITING_RETRY, what="5.03 seen")  # noqa: B023
                assert EP not in second.registrations, "the lower priority waits for the higher one"
                await clock.advance(10)  # the second and last attempt fails too
                await until(lambda: registration.state is State.FAILED, what="second 5.03 seen")  # noqa: B023
                if block:
                    await clock.advance(60)
                    assert EP not in second.registrations, "blocked by the failure at server 1"
                else:
                    await second.wait_registered(EP)
            finally:
                await client.stop(timeout=2)
        await first.stop()
        await second.stop()

    run(scenario())


def test_disable_deregisters_for_the_disable_timeout_then_registers_again() -> None:
    async def scenario() -> None:
        async with rig() as r:
            assert (await r.server.write(EP, "/1/0/5", 120)).code == "2.04"
            assert (await r.server.execute(EP, "/1/0/4")).code == "2.04"
            event = await r.server.wait_event("deregister", endpoint=EP)
            assert event.reason == "deregister"
            await r.clock.advance(119)
            assert EP not in r.server.registrations
            await r.clock.advance(1)
            await r.server.wait_registered(EP)
            assert r.client.registrations[1].state is State.REGISTERED

    run(scenario())
