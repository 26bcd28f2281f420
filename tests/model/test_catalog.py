"""Tests for lwm2md.model.catalog and the built-in object table."""

from __future__ import annotations

import dataclasses
import logging
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path as FsPath

import pytest

from lwm2md.model import catalog as catalog_module
from lwm2md.model.builtin_objects import BUILTIN_OBJECTS
from lwm2md.model.catalog import DEFAULT_OBJECTS_DIR, Catalog
from lwm2md.model.path import Path
from lwm2md.model.types import ObjectDef, Operations, ResourceDef, ResourceType

REGISTRY = FsPath(__file__).parents[2].parent / "shared" / "oma-registry"
needs_registry = pytest.mark.skipif(
    not REGISTRY.is_dir(), reason=f"official OMA registry files not present at {REGISTRY}"
)

EXPECTED_OIDS = [0, 1, 2, 3, 4, 5, 6, 7, 3200, 3201, 3202, 3203, 3301, 3303, 3304, 3315, 3316,
                 3317, 3328, 3347]  # fmt: skip

BUILTIN = {defn.oid: defn for defn in BUILTIN_OBJECTS}
RESOURCE_CASES = [(d.oid, rid) for d in BUILTIN_OBJECTS for rid in d.resources]


# --- independent reading of the official files -----------------------------------------
# Deliberately not lwm2md.model.ddf: the cross-check must not trust the loader it tests.
# The registry files are trusted input, so the plain stdlib parser is fine here.


def _field(elem: ET.Element, tag: str) -> str:
    """A field's text with surrounding whitespace removed and inner runs collapsed."""
    return " ".join((elem.findtext(tag) or "").split())


@cache
def _official(oid: int) -> ET.Element:
    root = ET.parse(REGISTRY / f"{oid}.xml").getroot()
    (obj,) = root.findall("Object")
    return obj


def _official_items(oid: int) -> dict[int, ET.Element]:
    resources = _official(oid).find("Resources")
    assert resources is not None
    return {int(item.get("ID", "")): item for item in resources.findall("Item")}


def _ops_letters(ops: Operations) -> str:
    return "".join(ch for ch in "RWE" if ops & Operations[ch])


@needs_registry
@pytest.mark.parametrize("oid", EXPECTED_OIDS)
def test_object_facts_match_official(oid: int) -> None:
    obj = _official(oid)
    mine = BUILTIN[oid]
    assert int(_field(obj, "ObjectID")) == mine.oid
    assert _field(obj, "Name") == mine.name
    assert _field(obj, "MultipleInstances") == ("Multiple" if mine.multiple else "Single")
    assert _field(obj, "Mandatory") == ("Mandatory" if mine.mandatory else "Optional")
    assert (_field(obj, "ObjectVersion") or "1.0") == mine.version
    assert (_field(obj, "LWM2MVersion") or "1.0") == mine.lwm2m_version
    assert _field(obj, "ObjectURN") == mine.urn


@needs_registry
@pytest.mark.parametrize("oid", EXPECTED_OIDS)
def test_resource_ids_match_official(oid: int) -> None:
    assert sorted(_official_items(oid)) == sorted(BUILTIN[oid].resources)


@needs_registry
@pytest.mark.parametrize(("oid", "rid"), RESOURCE_CASES, ids=[f"/{o}/{r}" for o, r in RESOURCE_CASES])
def test_resource_facts_match_official(oid: int, rid: int) -> None:
    item = _official_items(oid)[rid]
    mine = BUILTIN[oid].resources[rid]
    assert mine.rid == rid
    assert _field(item, "Name") == mine.name
    assert _field(item, "Operations") == _ops_letters(mine.operations)
    assert _field(item, "MultipleInstances") == ("Multiple" if mine.multiple else "Single")
    assert _field(item, "Mandatory") == ("Mandatory" if mine.mandatory else "Optional")
    official_type = _field(item, "Type")
    assert official_type == ("" if mine.type is ResourceType.NONE else mine.type.value)
    assert _field(item, "RangeEnumeration") == mine.range_enumeration
    assert _field(item, "Units") == mine.units


# --- internal consistency of the built-in table ----------------------------------------


def test_builtin_oids() -> None:
    assert [d.oid for d in BUILTIN_OBJECTS] == EXPECTED_OIDS
    assert Catalog.builtin().oids() == EXPECTED_OIDS


@pytest.mark.parametrize(("oid", "rid"), RESOURCE_CASES, ids=[f"/{o}/{r}" for o, r in RESOURCE_CASES])
def test_builtin_resource_is_consistent(oid: int, rid: int) -> None:
    res = BUILTIN[oid].resources[rid]
    assert res.name and res.name == " ".join(res.name.split())
    if Operations.E in res.operations:
        assert res.operations == Operations.E and res.type is ResourceType.NONE
        assert not res.multiple
    else:
        assert res.type is not ResourceType.NONE


def test_security_resources_are_not_accessible_to_servers() -> None:
    security = BUILTIN[0]
    assert all(res.operations == Operations.NONE for res in security.resources.values())


def test_urns_follow_oid_and_version() -> None:
    for defn in BUILTIN_OBJECTS:
        space = "oma" if defn.oid < 1024 else "ext"
        suffix = "" if defn.version == "1.0" else f":{defn.version}"
        assert defn.urn == f"urn:oma:lwm2m:{space}:{defn.oid}{suffix}"


# --- Catalog API -----------------------------------------------------------------------


def _extra(oid: int = 40000, version: str = "1.0") -> ObjectDef:
    res = ResourceDef(0, "Value", Operations.R, False, True, ResourceType.FLOAT)
    return ObjectDef(oid, "Extra", True, False, version=version, resources={0: res})


def test_get_and_contains() -> None:
    cat = Catalog.builtin()
    device = cat.get(3)
    assert device is not None and device.name == "Device"
    assert cat.get(40000) is None
    assert 3303 in cat and 40000 not in cat
    assert "3303" not in cat and True not in cat
    assert len(cat) == len(EXPECTED_OIDS)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("/3/0/0", "Manufacturer"),
        ("/3/0/11/2", "Error Code"),  # the riid is ignored
        ("/3303/7/5700", "Sensor Value"),
        ("/1/0/8", "Registration Update Trigger"),
        ("/", None),
        ("/3", None),
        ("/3/0", None),
        ("/3/0/99", None),
        ("/5/0/4", None),  # absent from Firmware Update 1.2
        ("/40000/0/0", None),
    ],
)
def test_resource_lookup(text: str, name: str | None) -> None:
    res = Catalog.builtin().resource(Path.parse(text))
    assert (res.name if res is not None else None) == name


def test_add_ignores_duplicate_unless_replace() -> None:
    cat = Catalog.builtin()
    assert cat.add(_extra()) is True
    assert cat.add(_extra(version="2.0")) is False
    assert cat.get(40000) == _extra()
    assert cat.add(_extra(version="2.0"), replace=True) is True
    assert cat.get(40000) == _extra(version="2.0")
    newer_temp = dataclasses.replace(BUILTIN[3303], version="9.9")
    assert cat.add(newer_temp) is False
    assert cat.get(3303) is BUILTIN[3303]


def test_iteration_sorted_by_oid() -> None:
    cat = Catalog([_extra(50000), BUILTIN[3303], _extra(1000), BUILTIN[0]])
    assert [d.oid for d in cat] == [0, 1000, 3303, 50000]
    assert cat.oids() == [0, 1000, 3303, 50000]


def test_builtin_catalogs_are_independent() -> None:
    first = Catalog.builtin()
    first.add(_extra())
    assert 40000 not in Catalog.builtin()


def test_default_objects_dir() -> None:
    assert DEFAULT_OBJECTS_DIR == "/etc/lwm2md/objects"


_DDF = """<LWM2M><Object><Name>{name}</Name><ObjectID>{oid}</ObjectID>
<ObjectVersion>{version}</ObjectVersion><MultipleInstances>Multiple</MultipleInstances>
<Mandatory>Optional</Mandatory><Resources><Item ID="1"><Name>Level</Name>
<Operations>R</Operations><Type>Float</Type></Item></Resources></Object></LWM2M>"""


def test_load_directory_adds_logs_and_reports(tmp_path: FsPath, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "40000.xml").write_text(_DDF.format(name="Tank", oid=40000, version="1.0"))
    (tmp_path / "3303.xml").write_text(_DDF.format(name="Fake", oid=3303, version="9.9"))
    (tmp_path / "broken.xml").write_text("<LWM2M><Object>")
    cat = Catalog.builtin()
    with caplog.at_level(logging.INFO, logger=catalog_module.LOG.name):
        errors = cat.load_directory(tmp_path)
    assert [FsPath(e.source).name for e in errors] == ["broken.xml"]
    tank = cat.get(40000)
    assert tank is not None and tank.name == "Tank"
    level = cat.resource(Path.of(40000, 0, 1))
    assert level is not None and level.type is ResourceType.FLOAT
    temperature = cat.get(3303)
    assert temperature is not None and temperature.version == "1.1"  # built-in kept
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken.xml" in warnings[0].getMessage()
    assert isinstance(warnings[0].args, tuple) and warnings[0].args  # %-style arguments
    assert any("9.9" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


def test_load_missing_directory_is_quiet(tmp_path: FsPath, caplog: pytest.LogCaptureFixture) -> None:
    cat = Catalog.builtin()
    with caplog.at_level(logging.INFO, logger=catalog_module.LOG.name):
        assert cat.load_directory(tmp_path / "absent") == []
    assert cat.oids() == EXPECTED_OIDS
    assert not caplog.records


@needs_registry
def test_load_whole_registry_keeps_builtins() -> None:
    cat = Catalog.builtin()
    errors = cat.load_directory(REGISTRY)
    assert len(errors) < 10
    assert len(cat) > 300
    for defn in BUILTIN_OBJECTS:
        assert cat.get(defn.oid) is defn
