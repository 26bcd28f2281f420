"""OMA LwM2M JSON (11543), the LwM2M 1.0 JSON format.

Vector: Core TS 1.2.2 section 7.5.6.1 (Read /3/0 in application/vnd.oma.lwm2m+json),
the same as LwM2M 1.0 section 6.4.4.
"""

from __future__ import annotations

import json

import pytest
from codec_support import DEVICE_RECORDS, RT, SPEC_RESOLVE, rdef, rec, resolver

from lwm2md import codec
from lwm2md.errors import BadRequest, NotAcceptable, NotFound
from lwm2md.model import ObjLnk, Path

OMA_JSON = codec.ContentFormat.OMA_JSON

DEVICE_OMA_JSON = (
    '{"bn":"/3/0/",\n"e":[\n'
    '{"n":"0","sv":"Open Mobile Alliance"},\n{"n":"1","sv":"Lightweight M2M Client"},\n'
    '{"n":"2","sv":"345000123"},\n{"n":"3","sv":"1.0"},\n{"n":"6/0","v":1},\n{"n":"6/1","v":5},\n'
    '{"n":"7/0","v":3800},\n{"n":"7/1","v":5000},\n{"n":"8/0","v":125},\n{"n":"8/1","v":900},\n'
    '{"n":"9","v":100},\n{"n":"10","v":15},\n{"n":"11/0","v":0},\n{"n":"13","v":1367491215},\n'
    '{"n":"14","sv":"+02:00"},\n{"n":"16","sv":"U"}]\n}'
)


def fixed_now() -> float:
    return 1_700_000_000.0


def test_device_instance_7_5_6_1() -> None:
    assert codec.decode(OMA_JSON, DEVICE_OMA_JSON.encode(), Path(3, 0), SPEC_RESOLVE) == DEVICE_RECORDS
    encoded = codec.encode(OMA_JSON, Path(3, 0), DEVICE_RECORDS, SPEC_RESOLVE)
    assert encoded == DEVICE_OMA_JSON.replace("\n", "").encode()


TYPES = resolver({9: [rdef(5, RT.OPAQUE), rdef(7, RT.OBJLNK), rdef(4, RT.BOOLEAN), rdef(3, RT.FLOAT)]})


def test_value_fields() -> None:
    records = [
        rec("/9/0/5", b"\x01\x02\x03\x04\x05"),
        rec("/9/0/7", ObjLnk(66, 0)),
        rec("/9/0/4", True),
        rec("/9/0/3", 2.5),
    ]
    payload = codec.encode(OMA_JSON, Path(9, 0), records, TYPES)
    assert json.loads(payload) == {
        "bn": "/9/0/",
        "e": [
            {"n": "5", "sv": "AQIDBAU="},
            {"n": "7", "ov": "66:0"},
            {"n": "4", "bv": True},
            {"n": "3", "v": 2.5},
        ],
    }
    assert codec.decode(OMA_JSON, payload, Path(9, 0), TYPES) == records


def test_root_and_resource_targets() -> None:
    records = [rec("/3/0/9", 100), rec("/1/0/1", 86400)]
    payload = codec.encode(OMA_JSON, Path(), records, SPEC_RESOLVE)
    assert payload == b'{"bn":"/","e":[{"n":"3/0/9","v":100},{"n":"1/0/1","v":86400}]}'
    assert codec.decode(OMA_JSON, payload, Path(), SPEC_RESOLVE) == records
    payload = codec.encode(OMA_JSON, Path(3, 0, 9), records[:1], SPEC_RESOLVE)
    assert payload == b'{"bn":"/3/0/","e":[{"n":"9","v":100}]}'


def test_timestamps() -> None:
    records = [rec("/3/0/9", 90, 1_600_000_000.0), rec("/3/0/9", 80, 1_600_000_030.0)]
    payload = codec.encode(OMA_JSON, Path(3, 0, 9), records, SPEC_RESOLVE)
    assert json.loads(payload) == {
        "bn": "/3/0/",
        "bt": 1600000000,
        "e": [{"n": "9", "v": 90}, {"n": "9", "v": 80, "t": 30}],
    }
    assert codec.decode(OMA_JSON, payload, Path(3, 0, 9), SPEC_RESOLVE, now=fixed_now) == records
    relative = b'{"e":[{"n":"/3/0/9","v":1,"t":-5}]}'
    assert codec.decode(OMA_JSON, relative, Path(), SPEC_RESOLVE, now=fixed_now) == [
        rec("/3/0/9", 1, fixed_now() - 5)
    ]


def test_names_without_bn_are_relative_to_the_target() -> None:
    assert codec.decode(OMA_JSON, b'{"e":[{"n":"9","v":1}]}', Path(3, 0), SPEC_RESOLVE) == [rec("/3/0/9", 1)]


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'{"bn":"/3/0/"}',
        b'{"e":{}}',
        b'{"bn":3,"e":[]}',
        b'{"e":[1]}',
        b'{"bn":"/3/0/","e":[{"n":"9"}]}',
        b'{"bn":"/3/0/","e":[{"n":"9","v":1,"sv":"1"}]}',
        b'{"bn":"/3/0/","e":[{"n":"9","sv":"1"}]}',
        b'{"bn":"/3/0/","e":[{"n":"0","v":1}]}',
        b'{"bn":"/3/0/","e":[{"n":"9","v":"1"}]}',
        b'{"bn":"/3/0/","e":[{"n":"9","v":1,"t":true}]}',
        b'{"bn":"/3/0/","bt":"x","e":[]}',
        b'{"bn":"/4/0/","e":[{"n":"2","v":1}]}',
        b'{"bn":"/3/0/","e":[{"n":9,"v":1}]}',
        b"",
    ],
)
def test_rejects(payload: bytes) -> None:
    with pytest.raises(BadRequest):
        codec.decode(OMA_JSON, payload, Path(3, 0), SPEC_RESOLVE)


def test_unknown_resource_and_nan() -> None:
    with pytest.raises(NotFound):
        codec.decode(OMA_JSON, b'{"bn":"/3/0/","e":[{"n":"99","v":1}]}', Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(OMA_JSON, Path(6, 0), [rec("/6/0/0", float("nan"))], SPEC_RESOLVE)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"e":[{"n":"/1/0/6","bv":1}]}',
        b'{"e":[{"n":"/3/0/0","sv":1}]}',
        b'{"e":[{"n":"/65/0/0/0","ov":66}]}',
        b'{"e":[{"n":"/65/0/0/0","ov":"66"}]}',
        b'{"e":[{"n":"/0/0/3","sv":"*"}]}',
        b'{"e":[{"n":"/6/0/0","v":true}]}',
    ],
)
def test_rejects_wrong_value_kinds(payload: bytes) -> None:
    with pytest.raises(BadRequest):
        codec.decode(OMA_JSON, payload, Path(), SPEC_RESOLVE)
