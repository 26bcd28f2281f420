"""Device Management and content negotiation over real sockets, against the test server."""

from __future__ import annotations

from typing import Any

import pytest
from aiocoap.blockwise import Block1Spool

from lwm2md.codec import ContentFormat
from lwm2md.model.path import Path
from lwm2md.model.types import ObjLnk, Record
from lwm2md.objects.tree import LwM2MObject, ObjectInstance
from tests.integration.harness import EP, Rig, rig, run

DATA_FORMATS = [
    ContentFormat.TLV,
    ContentFormat.OMA_JSON,
    ContentFormat.SENML_JSON,
    ContentFormat.SENML_CBOR,
    ContentFormat.LWM2M_CBOR,
]


def values(records: list[Record] | None) -> dict[str, object]:
    assert records is not None
    return {str(r.path): r.value for r in records}


@pytest.mark.parametrize("accept", DATA_FORMATS)
def test_read_device_instance_in_every_format(accept: int) -> None:
    async def scenario() -> None:
        async with rig() as r:
            response = await r.server.read(EP, "/3/0", accept=accept)
            assert response.code == "2.05"
            assert response.content_format == accept
            got = values(response.records)
            assert got["/3/0/0"] == "Test Inc"
            assert got["/3/0/1"] == "IT-1"
            assert got["/3/0/11/0"] == 0
            assert "/3/0/4" not in got, "executable resources are not read"

    run(scenario())


def test_read_levels_and_default_formats() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=23.25)
            single = await r.server.read(EP, "/3303/0/5700")
            assert (single.code, single.content_format, single.payload) == ("2.05", 0, b"23.25")
            instance = await r.server.read(EP, "/3303/0")
            assert instance.content_format == ContentFormat.SENML_CBOR
            assert values(instance.records)["/3303/0/5701"] == "Cel"
            whole = await r.server.read(EP, "/3303")
            assert "/3303/0/5700" in values(whole.records)
            riid = await r.server.read(EP, "/3/0/11/0")
            assert riid.code == "2.05" and riid.payload == b"0"

    run(scenario())


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code"),
    [
        ("read", "/0/0", {}, "4.01"),  # Security is never readable by a DM server
        ("read", "/3/0/99", {}, "4.04"),
        ("read", "/3/7", {}, "4.04"),
        ("read", "/42", {}, "4.04"),
        ("read", "/3/0/4", {}, "4.05"),  # Reboot is executable only
        ("read", "/3/0", {"accept": 50}, "4.06"),
        ("read", "/3/0", {"accept": ContentFormat.TEXT}, "4.06"),
        ("execute", "/3/0/0", {}, "4.05"),
        ("execute", "/3/0/4", {"args": "0='unterminated"}, "4.00"),
        ("delete", "/3/0", {}, "4.05"),
        ("discover", "/0", {}, "4.01"),
    ],
)
def test_refusals_carry_the_right_code(method: str, path: str, kwargs: dict[str, object], code: str) -> None:
    async def scenario() -> None:
        async with rig() as r:
            response = await getattr(r.server, method)(EP, path, **kwargs)
            assert response.code == code

    run(scenario())


def test_bad_payloads_get_4_00_and_4_15() -> None:
    async def scenario() -> None:
        async with rig() as r:
            garbage = await r.server.write(EP, "/3/0/15", b"\xff\x00\x13", fmt=ContentFormat.SENML_CBOR)
            assert garbage.code == "4.00"
            unknown = await r.server.write(EP, "/3/0/15", b"x", fmt=12345)
            assert unknown.code == "4.15"
            wrong_type = await r.server.write(EP, "/1/0/1", b"soon", fmt=ContentFormat.TEXT)
            assert wrong_type.code == "4.00"
            read_only = await r.server.write(EP, "/3/0/0", "Other Inc", fmt=ContentFormat.TEXT)
            assert read_only.code == "4.05"
            # nothing changed
            assert (await r.server.read(EP, "/3/0/0")).payload == b"Test Inc"

    run(scenario())


def test_write_replace_partial_and_resource_instance() -> None:
    async def scenario() -> None:
        async with rig() as r:
            written = await r.server.write(EP, "/3/0/15", "Europe/Vienna", fmt=ContentFormat.TEXT)
            assert written.code == "2.04"
            assert (await r.server.read(EP, "/3/0/15")).payload == b"Europe/Vienna"
            partial = [Record(Path(3303, 0, 5750), "boiler room")]
            assert (await r.server.write(EP, "/3303/0", partial, replace=False)).code == "2.04"
            assert (await r.server.read(EP, "/3303/0/5750")).payload == b"boiler room"
            tlv = await r.server.write(EP, "/3/0/14", "+02:00", fmt=ContentFormat.TLV)
            assert tlv.code == "2.04"
            assert (await r.server.read(EP, "/3/0/14")).payload == b"+02:00"

    run(scenario())


def test_write_attributes_and_discover() -> None:
    async def scenario() -> None:
        async with rig() as r:
            ok = await r.server.write_attributes(EP, "/3303/0/5700", pmin=5, pmax=60, gt=30.5)
            assert ok.code == "2.04"
            assert (await r.server.write_attributes(EP, "/3303/0/5701", gt=1)).code == "4.00"
            assert (await r.server.write_attributes(EP, "/3303/0/5700", lt=40)).code == "4.00"
            found = await r.server.discover(EP, "/3303/0")
            assert found.code == "2.05" and found.links is not None
            by_target = {link.target: link.attrs for link in found.links}
            assert by_target["/3303/0/5700"] == {"pmin": "5", "pmax": "60", "gt": "30.5"}
            device = await r.server.discover(EP, "/3")
            assert device.links is not None
            targets = {link.target: link.attrs for link in device.links}
            assert targets["/3"].get("ver") == "1.2"
            assert targets["/3/0/11"].get("dim") == "1"
            assert "/3/0/4" in targets

    run(scenario())


def test_execute_reboot_without_command_is_accepted() -> None:
    async def scenario() -> None:
        async with rig() as r:
            assert (await r.server.execute(EP, "/3/0/4")).code == "2.04"
            assert (await r.server.execute(EP, "/3303/0/5605", "0='x',1")).code == "2.04"

    run(scenario())


def _add_data_object(r: Rig) -> None:
    """Give the client an object that servers may Create/Delete instances of (pure data)."""
    definition = r.client.catalog.get(3341) or r.client.catalog.get(3203)
    assert definition is not None
    r.client.tree.add_object(
        LwM2MObject(definition, factory=lambda iid: ObjectInstance(definition, iid), deletable=True)
    )


def test_create_and_delete_instance_updates_registration() -> None:
    async def scenario() -> None:
        async with rig() as r:
            _add_data_object(r)
            await r.clock.settle()
            await r.server.wait_event("update", endpoint=EP)
            created = await r.server.create(EP, "/3203", [Record(Path(3203, 7, 5650), 0.5)])
            assert created.code == "2.01"
            assert created.location == "/3203/7"
            await r.clock.settle()
            event = await r.server.wait_event("update", endpoint=EP)
            assert event.registration is not None and "/3203/7" in event.registration.objects
            assert (await r.server.read(EP, "/3203/7/5650")).payload == b"0.5"
            again = await r.server.create(EP, "/3203", [Record(Path(3203, 7, 5650), 0.1)])
            assert again.code == "4.00"
            assert (await r.server.delete(EP, "/3203/7")).code == "2.02"
            assert (await r.server.read(EP, "/3203/7")).code == "4.04"

    run(scenario())


def test_read_and_write_composite() -> None:
    async def scenario() -> None:
        async with rig() as r:
            await r.sample(temperature=20.0, humidity=55.0)
            both = await r.server.read_composite(EP, ["/3303/0/5700", "/3304/0/5700", "/3/0/0"])
            assert both.code == "2.05"
            assert values(both.records) == {"/3303/0/5700": 20.0, "/3304/0/5700": 55.0, "/3/0/0": "Test Inc"}
            writes = [Record(Path(3303, 0, 5750), "inside"), Record(Path(3, 0, 15), "UTC")]
            assert (await r.server.write_composite(EP, writes)).code == "2.04"
            assert (await r.server.read(EP, "/3/0/15")).payload == b"UTC"
            bad = [Record(Path(3303, 0, 5750), "never"), Record(Path(3, 0, 0), "read-only")]
            assert (await r.server.write_composite(EP, bad)).code == "4.05"
            assert (await r.server.read(EP, "/3303/0/5750")).payload == b"inside", "all or nothing"

    run(scenario())


def test_objlnk_and_opaque_round_trip_through_the_wire() -> None:
    async def scenario() -> None:
        async with rig() as r:
            _add_data_object(r)
            created = await r.server.create(EP, "/3203", [Record(Path(3203, 0, 5650), 1.0)])
            assert created.code == "2.01"
            # /1/0/10 APN Link is an Objlnk; write it in SenML and read it back in TLV
            link = [Record(Path(1, 0, 10), ObjLnk(11, 0))]
            assert (await r.server.write(EP, "/1/0", link, replace=False)).code == "2.04"
            back = await r.server.read(EP, "/1/0/10", accept=ContentFormat.TLV)
            assert back.value == ObjLnk(11, 0)

    run(scenario())


def test_large_read_and_write_go_blockwise(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks: list[int] = []
    original = Block1Spool.feed_and_take

    def spy(self: Block1Spool, request: Any) -> Any:
        if request.opt.block1 is not None:
            blocks.append(request.opt.block1.block_number)
        return original(self, request)

    monkeypatch.setattr(Block1Spool, "feed_and_take", spy)

    async def scenario() -> None:
        async with rig() as r:
            long_text = "Europe/" + "x" * 3000
            written = await r.server.write(EP, "/3/0/15", long_text, fmt=ContentFormat.TEXT)
            assert written.code == "2.04"
            assert blocks == [0, 1, 2], "the 3 kB payload arrived in three Block1 blocks"
            back = await r.server.read(EP, "/3/0", accept=ContentFormat.SENML_JSON)
            assert back.code == "2.05"
            assert len(back.payload) > 3000
            assert values(back.records)["/3/0/15"] == long_text

    run(scenario())


def test_extra_objects_load_from_the_objects_dir(tmp_path: Any) -> None:
    ddf = (
        '<LWM2M><Object ObjectType="MODefinition"><Name>Widget</Name><ObjectID>33999</ObjectID>'
        "<MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory><Resources>"
        '<Item ID="0"><Name>Level</Name><Operations>RW</Operations>'
        "<MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>"
        "<Type>Integer</Type></Item></Resources></Object></LWM2M>"
    )
    (tmp_path / "widget.xml").write_text(ddf)
    (tmp_path / "broken.xml").write_text("<LWM2M><Object>")

    async def scenario() -> None:
        async with rig(objects_dir=str(tmp_path)) as r:
            widget = r.client.catalog.get(33999)
            assert widget is not None and widget.resources[0].name == "Level"
            assert r.client.tree.has_object(33999), "a DDF object with no driver is a data object"
            # the test server does not know object 33999: hand-made TLV, instance 0 with /0 = 5
            created = await r.server.create(EP, "/33999", bytes.fromhex("0300C10005"), fmt=ContentFormat.TLV)
            assert created.code == "2.01"
            assert (await r.server.read(EP, "/33999/0/0")).payload == b"5"

    run(scenario())
