"""SenML JSON (110) and SenML CBOR (112).

Vectors: Core TS 1.2.2 section 7.5.6 tables 7.5.6.-2 to -12 (SenML JSON), 7.5.7 and
Appendix M (SenML CBOR, Read /3/0), 6.1.7.7 (Bootstrap-Pack), 6.3.3.1 (Write on a
multiple resource), RFC 8428 section 6 (SenML CBOR example).
"""

from __future__ import annotations

import json

import pytest
from codec_support import DEVICE_RECORDS, RT, SPEC_RESOLVE, hexbytes, rdef, rec, resolver

from lwm2md import codec
from lwm2md.codec import senml
from lwm2md.errors import BadRequest, NotAcceptable, NotFound
from lwm2md.model import ObjLnk, Path

JSON = codec.ContentFormat.SENML_JSON
CBOR = codec.ContentFormat.SENML_CBOR


def fixed_now() -> float:
    return 1_700_000_000.0


# Table 7.5.6.-2 (Read /3/0), as printed one record per line.
DEVICE_SENML_JSON = (
    '[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},\n'
    '{"n":"1","vs":"Lightweight M2M Client"},\n'
    '{"n":"2","vs":"345000123"},\n'
    '{"n":"3","vs":"1.0"},\n'
    '{"n":"6/0","v":1},\n'
    '{"n":"6/1","v":5},\n'
    '{"n":"7/0","v":3800},\n'
    '{"n":"7/1","v":5000},\n'
    '{"n":"8/0","v":125},\n'
    '{"n":"8/1","v":900},\n'
    '{"n":"9","v":100},\n'
    '{"n":"10","v":15},\n'
    '{"n":"11/0","v":0},\n'
    '{"n":"13","v":1367491215},\n'
    '{"n":"14","vs":"+02:00"},\n'
    '{"n":"16","vs":"U"}]'
)

# Section 7.5.7 / Appendix M: the same instance in SenML CBOR (196 bytes).
DEVICE_SENML_CBOR = hexbytes(
    """
    90 a3 21 65 2f 33 2f 30 2f 00 61 30 03 74 4f 70 65 6e 20 4d 6f 62 69 6c 65 20 41 6c 6c 69 61 6e 63 65
    a2 00 61 31 03 76 4c 69 67 68 74 77 65 69 67 68 74 20 4d 32 4d 20 43 6c 69 65 6e 74
    a2 00 61 32 03 69 33 34 35 30 30 30 31 32 33
    a2 00 61 33 03 63 31 2e 30
    a2 00 63 36 2f 30 02 01
    a2 00 63 36 2f 31 02 05
    a2 00 63 37 2f 30 02 19 0e d8
    a2 00 63 37 2f 31 02 19 13 88
    a2 00 63 38 2f 30 02 18 7d
    a2 00 63 38 2f 31 02 19 03 84
    a2 00 61 39 02 18 64
    a2 00 62 31 30 02 0f
    a2 00 64 31 31 2f 30 02 00
    a2 00 62 31 33 02 1a 51 82 42 8f
    a2 00 62 31 34 03 66 2b 30 32 3a 30 30
    a2 00 62 31 36 03 61 55
    """
)


def test_device_instance_senml_json_table_7_5_6_2() -> None:
    """Encoding matches the table byte for byte (line breaks removed); the printed text decodes."""
    encoded = codec.encode(JSON, Path(3, 0), DEVICE_RECORDS, SPEC_RESOLVE)
    assert encoded == DEVICE_SENML_JSON.replace("\n", "").encode()
    assert codec.decode(JSON, DEVICE_SENML_JSON.encode(), Path(3, 0), SPEC_RESOLVE) == DEVICE_RECORDS


def test_device_instance_senml_cbor_7_5_7_appendix_m() -> None:
    assert len(DEVICE_SENML_CBOR) == 196
    assert codec.encode(CBOR, Path(3, 0), DEVICE_RECORDS, SPEC_RESOLVE) == DEVICE_SENML_CBOR
    assert codec.decode(CBOR, DEVICE_SENML_CBOR, Path(3, 0), SPEC_RESOLVE) == DEVICE_RECORDS


def test_historical_notification_table_7_5_6_3() -> None:
    """bt 25462634 with t -5/-30/-50: the resolved times are below 2**28, hence relative to now."""
    payload = (
        '[{"bn":"/72/","bt":25462634,"n":"1/2","v":22.4,"t":-5},\n'
        '{"n":"1/2","v":22.9,"t":-30},\n{"n":"1/2","v":24.1,"t":-50}]'
    )
    records = codec.decode(JSON, payload.encode(), Path(72, 1, 2), SPEC_RESOLVE, now=fixed_now)
    assert records == [
        rec("/72/1/2", 22.4, fixed_now() + 25462629),
        rec("/72/1/2", 22.9, fixed_now() + 25462604),
        rec("/72/1/2", 24.1, fixed_now() + 25462584),
    ]


def test_object_links_and_hierarchy_table_7_5_6_4() -> None:
    payload = (
        '[{"bn":"/","n":"65/0/0/0","vlo":"66:0"},\n{"n":"65/0/0/1","vlo":"66:1"},\n'
        '{"n":"65/0/1","vs":"8613800755500"},\n{"n":"65/0/2","v":1},\n'
        '{"n":"66/0/0","vs":"myService1"},\n{"n":"66/0/1","vs":"Internet.15.234"},\n'
        '{"n":"66/0/2","vlo":"67:0"},\n{"n":"66/1/0","vs":"myService2"},\n'
        '{"n":"66/1/1","vs":"Internet.15.235"},\n{"n":"66/1/2","vlo":"FFFF:FFFF"},\n'
        '{"n":"67/0/0","vs":"85.76.76.84"},\n{"n":"67/0/1","vs":"85.76.255.255"}]'
    )
    records = codec.decode(JSON, payload.encode(), Path(), SPEC_RESOLVE)
    assert records[:4] == [
        rec("/65/0/0/0", ObjLnk(66, 0)),
        rec("/65/0/0/1", ObjLnk(66, 1)),
        rec("/65/0/1", "8613800755500"),
        rec("/65/0/2", 1),
    ]
    assert records[6] == rec("/66/0/2", ObjLnk(67, 0))
    assert records[9] == rec("/66/1/2", ObjLnk(65535, 65535))  # the spec writes the null link in hex
    assert records[11] == rec("/67/0/1", "85.76.255.255")
    assert len(records) == 12
    with pytest.raises(BadRequest):  # names outside the target
        codec.decode(JSON, payload.encode(), Path(65, 0), SPEC_RESOLVE)


def test_bn_only_record_table_7_5_6_5() -> None:
    payload = b'[{"bn":"/3/0/0","vs":"Open Mobile Alliance"}]'
    assert codec.decode(JSON, payload, Path(3, 0, 0), SPEC_RESOLVE) == [rec("/3/0/0", "Open Mobile Alliance")]


def test_read_composite_tables_7_5_6_6_to_12() -> None:
    assert codec.decode_paths(JSON, b'[{"n":"/3/0/0"},\n{"n":"/3/0/9"},\n{"n":"/1/0/1"}]') == [
        Path(3, 0, 0),
        Path(3, 0, 9),
        Path(1, 0, 1),
    ]
    response = (
        b'[{"n":"/3/0/0", "vs":"Open Mobile Alliance"},\n{"n" :"/3/0/9", "v":95},\n{"n":"/1/0/1", "v":86400}]'
    )
    assert codec.decode(JSON, response, Path(), SPEC_RESOLVE) == [
        rec("/3/0/0", "Open Mobile Alliance"),
        rec("/3/0/9", 95),
        rec("/1/0/1", 86400),
    ]
    request = b'[{"bn":"/4/0/", "n":"0"},\n{"n":"1"},\n{"n":"2"},\n{"bn":"/6/", "n":"0"}]'
    assert codec.decode_paths(JSON, request) == [Path(4, 0, 0), Path(4, 0, 1), Path(4, 0, 2), Path(6, 0)]
    assert codec.decode_paths(JSON, b'[{"n":"/"}]') == [Path()]
    assert codec.decode_paths(JSON, b'[{"n":"/1"}]') == [Path(1)]
    assert codec.decode_paths(JSON, b'[{"n":"/1/0"},\n{"n":"/1/2"}]') == [Path(1, 0), Path(1, 2)]


def test_write_composite_table_7_5_6_9() -> None:
    payload = (
        b'[{"n":"/3311/0/5850", "vb":false},\n{"n":"/3311/1/5850", "vb":false},\n'
        b'{"n":"/3311/2/5851", "v":20},\n{"n":"/3308/0/5900", "v":18}]'
    )
    records = codec.decode(JSON, payload, Path(), SPEC_RESOLVE)
    assert records == [
        rec("/3311/0/5850", False),
        rec("/3311/1/5850", False),
        rec("/3311/2/5851", 20),
        rec("/3308/0/5900", 18.0),
    ]
    assert isinstance(records[3].value, float)


def test_bootstrap_read_table_6_1_7_4_2() -> None:
    payload = (
        b'[{"bn":"/2/","n":"0/0","v":1},\n{"n":"0/1","v":0},\n{"n":"0/2/127","v":7},\n{"n":"0/3","v":127},\n'
        b'{"n":"2/0","v":3},\n{"n":"2/1","v":0},\n{"n":"2/2/127","v":7},\n{"n":"2/2/310","v":7},\n{"n":"2/3","v":127}]'
    )
    records = codec.decode(JSON, payload, Path(2), SPEC_RESOLVE)
    assert [str(r.path) for r in records][6:8] == ["/2/2/2/127", "/2/2/2/310"]
    assert [r.value for r in records] == [1, 0, 7, 127, 3, 0, 7, 7, 127]


BOOTSTRAP_PACK = (
    '[{"bn":"/0/1/", "n":"0","vs":"coaps://server1.example.com"},\n{"n":"1","vb":false},\n{"n":"2","v":0},\n'
    '{"n":"3","vd":"YjMxM2NjMjItZjk2OS00MmVjLWFkNDI"},\n{"n":"4","vd":""},\n'
    '{"n":"5","vd":"HKICjXGXx3jprvXvaQgr6g"},\n{"n":"10","v":101},\n'
    '{"bn":"/0/2/", "n":"0","vs":"coaps://server2.example.com"},\n{"n":"1","vb":false},\n{"n":"2","v":1},\n'
    '{"n":"3","vd":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEoJ3LG8c55_Ga-prcsZRJaL-6c-_OwptQSG60TRspwZNEmXCjc2gwyyvV1-'
    'wF0r0fwHtt9eSLVM53pqcinDqRwg"},\n'
    '{"n":"4","vd":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgsdz83jTDCeDpI64Ebls9qkGlKhWTx5_bTZhUvEWmJUPb3xAzaWFM0-'
    'Dd1ChAvW_JVCM655V38DxKkVRmaTJYA"},\n'
    '{"n":"5","vd":"MHcCAQEEIJ81LaFklXSOFG_LU3C46W0pLO1VZ6j65Voiu2fZFlG4oAoGCCqGSM49AwEHoUQDQgAEoJ3LG8c55_Ga-'
    'prcsZRJaL-6c-_OwptQSG60TRspwZNEmXCjc2gwyyvV1-wF0r0fwHtt9eSLVM53pqcinDqRwg"},\n{"n":"10","v":102},\n'
    '{"bn":"/1/0/", "n":"0","v":101},\n{"n":"1","v":86400},\n{"n":"2","v":300},\n{"n":"3","v":6000},\n'
    '{"n":"5","v":86400},\n{"n":"6","vb":true},\n{"n":"7","vs":"U"},\n'
    '{"bn":"/1/1/", "n":"0","v":102},\n{"n":"1","v":86400},\n{"n":"2","v":60},\n{"n":"3","v":6000},\n'
    '{"n":"5","v":86400},\n{"n":"6","vb":false},\n{"n":"7","vs":"U"},\n'
    '{"bn":"/2/0/", "n":"0","v":1},\n{"n":"1","v":0},\n{"n":"2/101","v":15},\n{"n":"3","v":101},\n'
    '{"bn":"/2/1/", "n":"0","v":1},\n{"n":"1","v":1},\n{"n":"2/102","v":15},\n{"n":"3","v":102}]'
)


def test_bootstrap_pack_6_1_7_7() -> None:
    """Bootstrap-Pack: bn changes mid-pack, vd is base64url without padding."""
    records = codec.decode(JSON, BOOTSTRAP_PACK.encode(), Path(), SPEC_RESOLVE)
    assert len(records) == 36
    by_path = {str(r.path): r.value for r in records}
    assert by_path["/0/1/3"] == b"b313cc22-f969-42ec-ad42"
    assert by_path["/0/1/4"] == b""
    assert by_path["/0/1/5"] == bytes.fromhex("1ca2028d7197c778e9aef5ef69082bea")
    assert by_path["/0/2/3"] == bytes.fromhex(
        "3059301306072a8648ce3d020106082a8648ce3d03010703420004a09dcb1bc739e7f19afa9adcb1944968"
        "bfba73efcec29b50486eb44d1b29c193449970a3736830cb2bd5d7ec05d2bd1fc07b6df5e48b54ce77a6a7229c3a91c2"
    )
    assert len(by_path["/0/2/5"]) == 121  # type: ignore[arg-type]
    assert by_path["/2/1/2/102"] == 15
    assert by_path["/1/0/6"] is True


def test_write_multiple_resource_6_3_3_1() -> None:
    payload = b'[ { "n": "/34/0/1/1", "vs":"Yellow" },\n  { "n": "/34/0/1/3", "vs":"Blue" }]'
    resolve = resolver({34: [rdef(1, RT.STRING, True)]})
    assert codec.decode(JSON, payload, Path(34, 0, 1), resolve) == [
        rec("/34/0/1/1", "Yellow"),
        rec("/34/0/1/3", "Blue"),
    ]


# RFC 8428 section 6: the CBOR representation of the multiple-measurement example.
RFC8428_CBOR = hexbytes(
    "87a721781b75726e3a6465763a6f773a3130653230373361303130383030363a22fb41d303a15b00106223614120050067766f6c74"
    "61676501615602fb405e066666666666a3006763757272656e74062402fb3ff3333333333333a3006763757272656e7406230"
    "2fb3ff4cccccccccccda3006763757272656e74062202fb3ff6666666666666a3006763757272656e74062102f93e00a30067"
    "63757272656e74062002fb3ff999999999999aa3006763757272656e74060002fb3ffb333333333333"
)


def test_rfc8428_section_6_cbor_pack_resolves() -> None:
    """Base name, base time, bver, bu and u handled per RFC 8428 section 4.6."""
    entries = senml.parse_cbor_pack(RFC8428_CBOR)
    base_name = "urn:dev:ow:10e2073a0108006:"
    bt = 1.276020076001e09
    assert entries[0] == senml.Entry(base_name + "voltage", "v", 120.1, bt)
    assert [e.name for e in entries[1:]] == [base_name + "current"] * 6
    assert [e.value for e in entries[1:]] == [1.2, 1.3, 1.4, 1.5, 1.6, 1.7]
    assert [e.time for e in entries[1:]] == [bt - 5, bt - 4, bt - 3, bt - 2, bt - 1, bt]
    with pytest.raises(BadRequest):  # the names are not LwM2M paths
        codec.decode(CBOR, RFC8428_CBOR, Path(), SPEC_RESOLVE)


def test_base_value_and_text_labels_in_cbor() -> None:
    # [{-5: 10, "bn": "/3/0/", 0: "9", 2: 5}] with a text label for bn
    payload = hexbytes("81 a4 24 0a 62 62 6e 65 2f 33 2f 30 2f 00 61 39 02 05")
    assert codec.decode(CBOR, payload, Path(3, 0), SPEC_RESOLVE) == [rec("/3/0/9", 15)]


# --- timestamps ------------------------------------------------------------------------------------


def test_encode_uses_base_time_when_every_record_is_timed() -> None:
    records = [rec("/3/0/9", 90, 1_600_000_000.0), rec("/3/0/9", 80, 1_600_000_060.0)]
    payload = codec.encode(JSON, Path(3, 0, 9), records, SPEC_RESOLVE)
    assert json.loads(payload) == [
        {"bn": "/3/0/", "bt": 1600000000, "n": "9", "v": 90},
        {"n": "9", "v": 80, "t": 60},
    ]
    assert codec.decode(JSON, payload, Path(3, 0, 9), SPEC_RESOLVE, now=fixed_now) == records


def test_encode_mixed_timestamps_uses_absolute_t() -> None:
    records = [rec("/3/0/9", 90, 1_600_000_000.5), rec("/3/0/10", 5)]
    payload = codec.encode(CBOR, Path(3, 0), records, SPEC_RESOLVE)
    assert payload == hexbytes(
        "82 a4 21 65 2f332f302f 00 61 39 02 18 5a 06 fb 41d7d78400200000 a2 00 62 3130 02 05"
    )
    assert codec.decode(CBOR, payload, Path(3, 0), SPEC_RESOLVE, now=fixed_now) == records


def test_relative_time_without_base_time() -> None:
    payload = b'[{"n":"/3/0/9","v":1,"t":-10}]'
    assert codec.decode(JSON, payload, Path(), SPEC_RESOLVE, now=fixed_now) == [
        rec("/3/0/9", 1, fixed_now() - 10)
    ]


# --- names, types and errors -----------------------------------------------------------------------


def test_root_target_uses_full_names_and_resource_target_uses_parent_bn() -> None:
    records = [rec("/3/0/9", 100), rec("/1/0/1", 86400)]
    assert (
        codec.encode(JSON, Path(), records, SPEC_RESOLVE)
        == b'[{"n":"/3/0/9","v":100},{"n":"/1/0/1","v":86400}]'
    )
    assert codec.encode(JSON, Path(3, 0, 9), records[:1], SPEC_RESOLVE) == b'[{"bn":"/3/0/","n":"9","v":100}]'
    assert (
        codec.encode(JSON, Path(3, 0, 6), [rec("/3/0/6/1", 5)], SPEC_RESOLVE)
        == b'[{"bn":"/3/0/6/","n":"1","v":5}]'
    )
    assert codec.encode(JSON, Path(3, 0), [], SPEC_RESOLVE) == b"[]"


def test_relative_names_resolve_against_the_target() -> None:
    assert codec.decode(JSON, b'[{"v":7}]', Path(3, 0, 9), SPEC_RESOLVE) == [rec("/3/0/9", 7)]
    assert codec.decode(JSON, b'[{"n":"9","v":7}]', Path(3, 0), SPEC_RESOLVE) == [rec("/3/0/9", 7)]


def test_opaque_and_objlnk_fields() -> None:
    resolve = resolver({9: [rdef(5, RT.OPAQUE), rdef(7, RT.OBJLNK)]})
    records = [rec("/9/0/5", b"\xfb\xff"), rec("/9/0/7", ObjLnk(3, 0))]
    assert (
        codec.encode(JSON, Path(9, 0), records, resolve)
        == b'[{"bn":"/9/0/","n":"5","vd":"-_8"},{"n":"7","vlo":"3:0"}]'
    )
    cbor_payload = codec.encode(CBOR, Path(9, 0), records, resolve)
    assert cbor_payload == hexbytes(
        "82 a3 21 65 2f392f302f 00 61 35 08 42 fbff a2 00 61 37 63 76 6c 6f 63 333a30"
    )
    assert codec.decode(CBOR, cbor_payload, Path(9, 0), resolve) == records


@pytest.mark.parametrize(
    "payload",
    [
        b"{}",
        b"[1]",
        b'[{"n":5,"v":1}]',
        b'[{"bn":5}]',
        b'[{"n":"/3/0/9","v":"1"}]',
        b'[{"n":"/3/0/9","vs":"1"}]',
        b'[{"n":"/3/0/9","v":1.5}]',
        b'[{"n":"/3/0/9","v":true}]',
        b'[{"n":"/3/0/9","v":1,"vs":"x"}]',
        b'[{"n":"/3/0/9"}]',
        b'[{"n":"/3/0/9","v":1,"t":"x"}]',
        b'[{"n":"/3/0/9","v":NaN}]',
        b'[{"n":"/3/0/9","v":1,"v":2}]',
        b'[{"n":"/3/0/9","v":1,"foo_":1}]',
        b'[{"n":"/3/0/9","v":9223372036854775808}]',
        b'[{"n":"/3/0/0","vd":"AA"}]',
        b'[{"n":"/3/0//9","v":1}]',
        b'[{"n":"/3/0/9/1/2","v":1}]',
        b'[{"n":"/3/0/70000","v":1}]',
        b'[{"n":"/1/0/1","v":1}]',
        b"[" * 100000,
        b"\xff",
    ],
)
def test_json_rejects(payload: bytes) -> None:
    with pytest.raises(BadRequest):
        codec.decode(JSON, payload, Path(3, 0), SPEC_RESOLVE)


def test_unknown_resource_is_not_found() -> None:
    with pytest.raises(NotFound):
        codec.decode(JSON, b'[{"n":"/3/0/99","v":1}]', Path(3, 0), SPEC_RESOLVE)


@pytest.mark.parametrize(
    "payload",
    [
        "a0",  # not an array
        "81 01",  # record not a map
        "81 a2 00 66 2f332f302f39 02 62 3130",  # v as text
        "81 a2 00 64 2f332f30 08 61 41",  # vd as text
        "81 a2 00 62 2f33 0a 01",  # unknown positive labels are ignored -> no value
        "81 a2 00 66 2f332f302f39 29 01",  # unknown negative (base) label
        "81 a3 21 61 2f 62 626e 61 2f 02 01",  # bn twice (integer and text label)
    ],
)
def test_cbor_rejects(payload: str) -> None:
    with pytest.raises(BadRequest):
        codec.decode(CBOR, hexbytes(payload), Path(), SPEC_RESOLVE)


def test_decode_paths_rejects_values_and_relative_names() -> None:
    with pytest.raises(BadRequest):
        codec.decode_paths(JSON, b'[{"n":"/3/0/9","v":1}]')
    with pytest.raises(BadRequest):
        codec.decode_paths(JSON, b'[{"n":"3/0/9"}]')
    assert codec.decode_paths(CBOR, hexbytes("82 a1 00 66 2f332f302f39 a1 00 61 2f")) == [
        Path(3, 0, 9),
        Path(),
    ]


def test_encode_paths() -> None:
    paths = [Path(3, 0, 9), Path(1), Path()]
    assert codec.encode_paths(JSON, paths) == b'[{"n":"/3/0/9"},{"n":"/1"},{"n":"/"}]'
    assert codec.decode_paths(CBOR, codec.encode_paths(CBOR, paths)) == paths
    assert (
        codec.decode_paths(codec.SENML_ETCH_JSON, codec.encode_paths(codec.SENML_ETCH_JSON, paths)) == paths
    )


def test_json_refuses_non_finite_floats() -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(JSON, Path(6, 0), [rec("/6/0/0", float("inf"))], SPEC_RESOLVE)
    payload = codec.encode(CBOR, Path(6, 0), [rec("/6/0/0", float("inf"))], SPEC_RESOLVE)
    assert codec.decode(CBOR, payload, Path(6, 0), SPEC_RESOLVE) == [rec("/6/0/0", float("inf"))]


@pytest.mark.parametrize(
    "payload",
    [
        b'[{"bv":1.0,"n":"/6/0/0","v":1' + b"0" * 400 + b"}]",  # base value sum overflows a float
        b'[{"n":"/6/0/0","v":1' + b"0" * 400 + b"}]",  # integer too large for a Float resource
        b'[{"n":"/6/0/0","v":1,"t":1e400}]',  # time not finite
        b'[{"n":"/6/0/0","v":1,"bt":1' + b"0" * 400 + b"}]",  # base time too large
        b'[{"n":"/1/0/6","vb":1}]',  # vb not a boolean
        b'[{"n":"/3/0/0","vs":1}]',  # vs not a string
        b'[{"n":"/0/0/3","vd":5}]',  # vd not a string
    ],
)
def test_json_number_edge_cases(payload: bytes) -> None:
    with pytest.raises(BadRequest):
        codec.decode(JSON, payload, Path(), SPEC_RESOLVE)


def test_encode_accepts_integers_for_float_resources() -> None:
    payload = codec.encode(JSON, Path(6, 0, 0), [rec("/6/0/0", 3)], SPEC_RESOLVE)
    assert payload == b'[{"bn":"/6/0/","n":"0","v":3.0}]'
    decoded = codec.decode(JSON, payload, Path(6, 0, 0), SPEC_RESOLVE)
    assert decoded == [rec("/6/0/0", 3.0)] and isinstance(decoded[0].value, float)


def test_times_must_be_finite_and_large_integral_times_stay_floats() -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(CBOR, Path(3, 0, 9), [rec("/3/0/9", 1, float("inf"))], SPEC_RESOLVE)
    far = [rec("/3/0/9", 1, 1e300)]
    payload = codec.encode(CBOR, Path(3, 0, 9), far, SPEC_RESOLVE)
    assert codec.decode(CBOR, payload, Path(3, 0, 9), SPEC_RESOLVE) == far
