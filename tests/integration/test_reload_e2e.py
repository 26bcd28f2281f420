"""Applying a re-read configuration to a running client (what SIGHUP does)."""

from __future__ import annotations

import dataclasses

from lwm2md.config import parse_config
from lwm2md.testing import TestServer
from tests.integration.harness import EP, make_config, rig, run


def test_add_and_remove_servers_and_change_sensors_while_running() -> None:
    async def scenario() -> None:
        async with rig() as r:
            second = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
            try:
                first_location = r.server.registrations[EP].location
                base = make_config(r.server.uri)
                both = parse_config(
                    {
                        "device": {"endpoint": EP, "manufacturer": "Test Inc", "model": "IT-1"},
                        "server": [
                            {"uri": r.server.uri, "short_id": 1, "lifetime": 300,
                             "communication_retry_timer": 10},
                            {"uri": second.uri, "short_id": 2, "lifetime": 600},
                        ],
                        "sensor": [{"driver": "simulated", "objects": [3303, 3304], "interval": 5.0}],
                    },
                    "<integration>",
                )
                both = dataclasses.replace(both, state_dir=r.client.config.state_dir)
                base = dataclasses.replace(base, state_dir=r.client.config.state_dir)
                assert dataclasses.replace(both, servers=both.servers[:1]) == base
                changes = await r.client.apply_config(both)
                assert changes == ["server 2 added"]
                reg2 = await second.wait_registered(EP)
                assert reg2.lifetime == 600 and "/1/1" in reg2.objects
                assert r.server.registrations[EP].location == first_location, "server 1 untouched"
                # server 2 may read, server 1 too
                assert (await second.read(EP, "/3/0/0")).payload == b"Test Inc"

                only_second = dataclasses.replace(both, servers=both.servers[1:])
                changes = await r.client.apply_config(only_second)
                assert changes == ["server 1 removed"]
                await r.server.wait_event("deregister", endpoint=EP)
                await r.clock.settle()
                update = await second.wait_event("update", endpoint=EP)
                assert update.registration is not None and "/1/0" not in update.registration.objects

                fewer_sensors = dataclasses.replace(
                    only_second, sensors=(dataclasses.replace(only_second.sensors[0], objects=(3303,)),)
                )
                changes = await r.client.apply_config(fewer_sensors)
                assert changes == ["[[sensor]] tables applied"]
                await r.clock.settle()
                while True:
                    update = await second.wait_event("update", endpoint=EP)
                    assert update.registration is not None
                    if "/3304/0" not in update.registration.objects:
                        break
                assert "/3303/0" in update.registration.objects
                assert (await second.read(EP, "/3304/0")).code == "4.04"
            finally:
                await second.stop()

    run(scenario())


def test_changed_uri_re_registers_at_the_new_server() -> None:
    async def scenario() -> None:
        async with rig() as r:
            other = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
            try:
                moved = make_config(other.uri)
                changes = await r.client.apply_config(moved)
                assert changes == ["server 1 re-registered"]
                await r.server.wait_event("deregister", endpoint=EP)
                await other.wait_registered(EP)
                assert (await other.read(EP, "/3/0/1")).payload == b"IT-1"
            finally:
                await other.stop()

    run(scenario())


def test_gpio_tables_from_the_config_are_served_with_the_mock_factory_under_simulate() -> None:
    async def scenario() -> None:
        gpio = [
            {"kind": "input", "pin": 17, "instance": 4, "pull_up": True},
            {"kind": "output", "pin": 27, "initial": True},
        ]
        async with rig(gpio=gpio) as r:
            reg = r.server.registrations[EP]
            assert "/3200/4" in reg.objects and "/3201/0" in reg.objects
            assert (await r.server.read(EP, "/3201/0/5550")).payload == b"1"
            assert (await r.server.write(EP, "/3201/0/5550", False, fmt=0)).code == "2.04"
            assert (await r.server.read(EP, "/3200/4/5500")).code == "2.05"
            without = dataclasses.replace(r.client.config, gpios=r.client.config.gpios[:1])
            assert await r.client.apply_config(without) == ["[[gpio]] tables applied"]
            await r.clock.settle()
            while True:
                update = await r.server.wait_event("update", endpoint=EP)
                assert update.registration is not None
                if "/3201/0" not in update.registration.objects:
                    break
            assert "/3200/4" in update.registration.objects

    run(scenario())


def test_modem_table_under_simulate_serves_connectivity_objects() -> None:
    async def scenario() -> None:
        async with rig(modem={"port": "/dev/ttyUSB2", "interval": 30}) as r:
            reg = r.server.registrations[EP]
            assert "/4/0" in reg.objects
            fake = r.client.fake_modem
            assert fake is not None
            for _ in range(200):  # the first poll runs when the channel opens
                response = await r.server.read(EP, "/4/0/2")
                if response.code == "2.05":
                    break
                await r.clock.advance(1)
            assert response.code == "2.05"
            assert isinstance(response.value, int) and -140 <= response.value <= -40

    run(scenario())
