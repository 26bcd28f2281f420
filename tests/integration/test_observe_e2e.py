"""Information Reporting over real sockets: observe, attributes, cancel, composite, Send."""

from __future__ import annotations

import asyncio

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import EMPTY
from aiocoap.numbers.types import NON, RST

from lwm2md.codec import ContentFormat
from tests.integration.harness import EP, rig, run

QUIET = 0.3  # wall seconds within which an unwanted notification would have arrived on loopback


async def no_notification(obs: object) -> None:
    queue = obs.notifications  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(queue.get(), QUIET)
        raise AssertionError(f"unexpected notification {extra.records}")


def test_bme280_style_gt_lt_notifications_follow_the_attributes() -> None:
    """OMA interop LightweightM2M-1.1-int-301-ish: gt/lt thresholds on a temperature."""

    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            await r.server.write_attributes(EP, "/3303/0/5700", gt=25, lt=15)
            obs = await r.server.observe(EP, "/3303/0/5700")
            assert obs.first.value == 20.0
            for value in (21.0, 24.9):  # inside the band: silence
                await r.sample(temperature=value)
                await no_notification(obs)
            await r.sample(temperature=26.0)  # crosses gt
            assert (await obs.next()).value == 26.0
            await r.sample(temperature=27.0)  # stays above: silence
            await no_notification(obs)
            await r.sample(temperature=14.0)  # crosses both
            assert (await obs.next()).value == 14.0
            await r.sample(temperature=14.5)
            await no_notification(obs)

    run(scenario())


def test_pmin_holds_back_and_pmax_forces() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            await r.server.write_attributes(EP, "/3303/0", pmin=10, pmax=30)
            obs = await r.server.observe(EP, "/3303/0/5700")
            await r.sample(temperature=21.0)
            await no_notification(obs)  # pmin not over yet
            await r.sample(temperature=22.0)
            await r.clock.advance(10)
            assert (await obs.next()).value == 22.0, "sent at pmin end with the then-current value"
            await r.clock.advance(29)
            await no_notification(obs)
            await r.clock.advance(1)
            assert (await obs.next()).value == 22.0, "pmax forces a notification without change"

    run(scenario())


def test_step_attribute() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            await r.server.write_attributes(EP, "/3303/0/5700", st=1.0)
            obs = await r.server.observe(EP, "/3303/0/5700", accept=ContentFormat.SENML_JSON)
            await r.sample(temperature=20.5)
            await no_notification(obs)
            await r.sample(temperature=21.1)
            note = await obs.next()
            assert note.content_format == ContentFormat.SENML_JSON and note.value == 21.1

    run(scenario())


def test_cancel_with_get_stops_notifications() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            obs = await r.server.observe(EP, "/3303/0/5700")
            assert len(r.client.observe.observations(1)) == 1
            answer = await obs.cancel()
            assert answer.code == "2.05"
            await r.clock.settle()
            assert r.client.observe.observations(1) == []
            await r.sample(temperature=30.0)
            await no_notification(obs)

    run(scenario())


def test_observe_instance_and_removed_target_ends_with_404() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            obs = await r.server.observe(EP, "/3303/0")
            await r.sample(temperature=20.5)
            note = await obs.next()
            assert note.records is not None
            assert {str(rec.path) for rec in note.records} >= {"/3303/0/5700", "/3303/0/5601"}
            r.client.tree.remove_instance(3303, 0)
            await obs.wait_ended()
            assert obs.final is not None and obs.final.code == "4.04"

    run(scenario())


def test_observe_composite() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0, humidity=40.0)
            obs = await r.server.observe_composite(EP, ["/3303/0/5700", "/3304/0/5700"])
            assert obs.first.code == "2.05"
            await r.sample(humidity=41.0)
            note = await obs.next()
            assert note.records is not None
            assert {str(rec.path): rec.value for rec in note.records} == {
                "/3303/0/5700": 20.0,
                "/3304/0/5700": 41.0,
            }

    run(scenario())


def test_confirmable_notification_once_a_day() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            await r.server.write_attributes(EP, "/3303/0/5700", pmax=3600)
            obs = await r.server.observe(EP, "/3303/0/5700")
            kinds = []
            for _ in range(24):
                await r.clock.advance(3600)
                note = await obs.next()
                kinds.append(note.message.mtype.name)
            assert kinds.count("CON") == 1 and kinds[-1] == "CON"

    run(scenario())


def test_send_pushes_configured_paths() -> None:
    async def scenario() -> None:
        send = {"paths": ["/3303/0/5700", "/3304/0/5700"], "interval": 60}
        async with rig(send=send) as r:
            await r.sample(temperature=19.5, humidity=50.0)
            await r.clock.advance(60)
            event = await r.server.wait_event("send", endpoint=EP)
            assert event.content_format == ContentFormat.SENML_CBOR
            assert event.records is not None
            got = {str(rec.path): rec.value for rec in event.records}
            assert got == {"/3303/0/5700": 19.5, "/3304/0/5700": 50.0}
            assert all(rec.time is not None for rec in event.records)

    run(scenario())


def test_faulty_sensor_read_is_5_00_and_recovers() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            r.sensor.fail(True)
            await r.client.samplers[0].sample_once()
            assert (await r.server.read(EP, "/3303/0/5700")).code == "5.00"
            assert (await r.server.read(EP, "/3/0/0")).code == "2.05", "the rest keeps working"
            r.sensor.fail(False)
            await r.sample(temperature=21.0)
            assert (await r.server.read(EP, "/3303/0/5700")).payload == b"21.0"

    run(scenario())


def test_confirmable_notifications_when_configured() -> None:
    async def scenario() -> None:
        async with rig(coap={"confirmable_notifications": True}) as r:
            await r.sample(temperature=20.0)
            obs = await r.server.observe(EP, "/3303/0/5700")
            await r.sample(temperature=21.0)
            assert (await obs.next()).message.mtype.name == "CON"

    run(scenario())


def test_default_pmax_written_to_the_server_object_applies_to_running_observations() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            obs = await r.server.observe(EP, "/3303/0/5700")
            await r.clock.advance(3600)
            await no_notification(obs)  # no pmax anywhere yet
            assert (await r.server.write(EP, "/1/0/3", 30)).code == "2.04"
            await r.clock.advance(30)
            assert (await obs.next()).value == 20.0

    run(scenario())


def test_rst_to_a_non_confirmable_notification_cancels_the_observation() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0)
            obs = await r.server.observe(EP, "/3303/0/5700")
            await r.sample(temperature=21.0)
            note = await obs.next()
            assert note.message.mtype is NON
            # the server rejects it with RST (RFC 7641 3.6), sent from the server's own socket
            server_mman = r.server._context.request_interfaces[0].token_interface
            rst = Message(_mtype=RST, _mid=note.message.mid, code=EMPTY, payload=b"")
            rst.remote = note.message.remote
            server_mman._send_initially(rst)
            for _ in range(200):
                await asyncio.sleep(0.01)
                if not r.client.observe.observations(1):
                    break
            assert r.client.observe.observations(1) == []
            await r.sample(temperature=30.0)
            await no_notification(obs)

    run(scenario())
