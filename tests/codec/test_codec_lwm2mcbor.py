"""LwM2M CBOR (11544).

Vectors: Core TS 1.2.2 section 7.5.4.1 to 7.5.4.6 (Read /3/0/0 in both key styles,
Read /3/0/6, Read /3/0, Read /1, Read-Composite response, Create on /2). The
encoder reproduces the layout of 7.5.4.1 (array key) to 7.5.4.5 byte for byte.
"""

from __future__ import annotations

import pytest
from codec_support import DEVICE_RECORDS, RT, SERVER_RECORDS, SPEC_RESOLVE, hexbytes, rdef, rec, resolver

from lwm2md import codec
from lwm2md.codec import cbor
from lwm2md.errors import BadRequest, InternalError, NotAcceptable, NotFound
from lwm2md.model import ObjLnk, Path

LWM2M_CBOR = codec.ContentFormat.LWM2M_CBOR

OMA = "744f70656e204d6f62696c6520416c6c69616e6365"  # text(20) "Open Mobile Alliance"

READ_3_0_0_ARRAY_KEY = hexbytes("a1 83 03 00 00" + OMA)  # {[3, 0, 0]: "..."}, 26 bytes
READ_3_0_0_NESTED = hexbytes("a1 03 a1 00 a1 00" + OMA)  # {3: {0: {0: "..."}}}, 27 bytes
READ_3_0_6 = hexbytes("a1 83 03 00 06 a2 00 01 01 05")  # {[3, 0, 6]: {0: 1, 1: 5}}
READ_3_0 = hexbytes(
    "a1 82 03 00 ad 00" + OMA + "01 76 4c69676874776569676874204d324d20436c69656e74"
    " 02 69 333435303030313233 03 63 312e30 06 a2 00 01 01 05 07 a2 00 19 0ed8 01 19 1388"
    " 08 a2 00 18 7d 01 19 0384 09 18 64 0a 0f 0b a1 00 00 0d 1a 5182428f 0e 66 2b30323a3030 10 61 55"
)
READ_1 = hexbytes(
    "a1 01 a2 00 a7 00 18 65 01 1a 00015180 02 19 012c 03 19 1770 05 1a 00015180 06 f5 07 61 55"
    " 01 a7 00 18 66 01 1a 00015180 02 19 0258 03 19 1770 05 1a 00015180 06 f4 07 61 55"
)
COMPOSITE = hexbytes("a2 82 03 00 a2 00" + OMA + "09 18 64 83 01 00 01 1a 00015180")
CREATE_2_5 = hexbytes(
    "a1 82 02 05 a4 00 05 01 00 82 02 18 66 00 03 18 65"
)  # {[2, 5]: {0: 5, 1: 0, [2, 102]: 0, 3: 101}}
CREATE_2_NO_ID = hexbytes("a1 82 02 19 ffff a4 00 05 01 00 82 02 18 66 00 03 18 65")


@pytest.mark.parametrize(
    ("base", "payload", "records"),
    [
        (Path(3, 0, 0), READ_3_0_0_ARRAY_KEY, [rec("/3/0/0", "Open Mobile Alliance")]),
        (Path(3, 0, 6), READ_3_0_6, [rec("/3/0/6/0", 1), rec("/3/0/6/1", 5)]),
        (Path(3, 0), READ_3_0, DEVICE_RECORDS),
        (Path(1), READ_1, SERVER_RECORDS),
        (
            Path(),
            COMPOSITE,
            [rec("/3/0/0", "Open Mobile Alliance"), rec("/3/0/9", 100), rec("/1/0/1", 86400)],
        ),
    ],
    ids=["7.5.4.1", "7.5.4.2", "7.5.4.3", "7.5.4.4", "7.5.4.5"],
)
def test_core_ts_examples_encode_and_decode(base: Path, payload: bytes, records: list[object]) -> None:
    assert codec.encode(LWM2M_CBOR, base, records, SPEC_RESOLVE) == payload  # type: ignore[arg-type]
    assert codec.decode(LWM2M_CBOR, payload, base, SPEC_RESOLVE) == records


def test_spec_payload_sizes() -> None:
    assert (
        len(READ_3_0_0_ARRAY_KEY),
        len(READ_3_0_0_NESTED),
        len(READ_3_0),
        len(READ_1),
        len(COMPOSITE),
    ) == (
        26,
        27,
        118,
        63,
        39,
    )


def test_alternative_layout_7_5_4_1_decodes() -> None:
    assert codec.decode(LWM2M_CBOR, READ_3_0_0_NESTED, Path(3, 0, 0), SPEC_RESOLVE) == [
        rec("/3/0/0", "Open Mobile Alliance")
    ]


def test_create_7_5_4_6() -> None:
    """An array key inside an instance map, and instance id 65535 (client assigns the id)."""
    expected = [rec("/2/5/0", 5), rec("/2/5/1", 0), rec("/2/5/2/102", 0), rec("/2/5/3", 101)]
    assert codec.decode(LWM2M_CBOR, CREATE_2_5, Path(2), SPEC_RESOLVE) == expected
    no_id = codec.decode(LWM2M_CBOR, CREATE_2_NO_ID, Path(2), SPEC_RESOLVE)
    assert [str(r.path) for r in no_id] == ["/2/65535/0", "/2/65535/1", "/2/65535/2/102", "/2/65535/3"]


@pytest.mark.parametrize(
    "payload",
    [
        "a1 0d a1 18 1a a1 01 18 2a",  # {13: {26: {1: 42}}}
        "a1 81 0d a1 81 18 1a a1 81 01 18 2a",  # {[13]: {[26]: {[1]: 42}}}
        "bf 9f 0d 18 1a 01 ff 18 2a ff",  # {_ [_ 13, 26, 1]: 42}
        "a1 82 0d 18 1a a1 01 18 2a",  # {[13, 26]: {1: 42}}
        "a1 80 a1 83 0d 18 1a 01 18 2a",  # {[]: {[13, 26, 1]: 42}}
    ],
)
def test_any_key_grouping_decodes(payload: str) -> None:
    resolve = resolver({13: [rdef(1, RT.INTEGER)]})
    assert codec.decode(LWM2M_CBOR, hexbytes(payload), Path(13, 26, 1), resolve) == [rec("/13/26/1", 42)]


def test_value_types() -> None:
    resolve = resolver(
        {
            9: [
                rdef(3, RT.FLOAT),
                rdef(5, RT.OPAQUE),
                rdef(6, RT.TIME),
                rdef(7, RT.OBJLNK, True),
                rdef(2, RT.UNSIGNED),
                rdef(4, RT.BOOLEAN),
            ]
        }
    )
    records = [
        rec("/9/0/3", 69.68),
        rec("/9/0/5", b"\x00\x11"),
        rec("/9/0/6", 1476186613),
        rec("/9/0/7/0", ObjLnk(3, 0)),
        rec("/9/0/2", 2**64 - 1),
        rec("/9/0/4", False),
    ]
    payload = codec.encode(LWM2M_CBOR, Path(9, 0), records, resolve)
    assert cbor.loads(payload) == {
        (9, 0): {3: 69.68, 5: b"\x00\x11", 6: 1476186613, 7: {0: "3:0"}, 2: 2**64 - 1, 4: False}
    }
    assert codec.decode(LWM2M_CBOR, payload, Path(9, 0), resolve) == records
    # Time also as tag 1, Float also from an integer.
    assert codec.decode(LWM2M_CBOR, hexbytes("a1 83 09 00 06 c1 1a 57fcd1f5"), Path(), resolve) == [
        rec("/9/0/6", 1476186613)
    ]
    assert codec.decode(LWM2M_CBOR, hexbytes("a1 83 09 00 03 05"), Path(), resolve)[0].value == 5.0


def test_composite_over_several_objects_keeps_order() -> None:
    records = [rec("/3/0/9", 100), rec("/1/0/1", 86400), rec("/3/0/0", "x")]
    payload = codec.encode(LWM2M_CBOR, Path(), records, SPEC_RESOLVE)
    assert cbor.loads(payload) == {(3, 0): {9: 100, 0: "x"}, (1, 0, 1): 86400}
    assert codec.decode(LWM2M_CBOR, payload, Path(), SPEC_RESOLVE) == [records[0], records[2], records[1]]


@pytest.mark.parametrize(
    "payload",
    [
        "80",  # not a map
        "a1 61 41 01",  # text key (gateway prefixes are not supported)
        "a1 f5 01",  # boolean key
        "a1 83 03 00 20 01",  # negative id
        "a1 83 03 00 1a 00010000 01",  # id above 65535
        "a1 85 03 00 07 00 00 01",  # five levels
        "a1 82 03 00 01",  # value at an instance
        "a1 83 03 00 09 f6",  # null value
        "a1 83 03 00 09 61 31",  # text for Integer
        "a1 83 03 00 06 01",  # single value for a multiple resource
        "a1 84 03 00 09 00 01",  # resource instance of a single resource
        "a2 83 03 00 09 01 82 03 00 a1 09 02",  # the same path twice
        "a1 83 04 00 02 01",  # outside the target /3/0
    ],
)
def test_rejects(payload: str) -> None:
    with pytest.raises(BadRequest):
        codec.decode(LWM2M_CBOR, hexbytes(payload), Path(3, 0), SPEC_RESOLVE)


def test_unknown_resource_is_not_found() -> None:
    with pytest.raises(NotFound):
        codec.decode(LWM2M_CBOR, hexbytes("a1 83 03 00 18 63 01"), Path(3, 0), SPEC_RESOLVE)


def test_encode_refusals() -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(LWM2M_CBOR, Path(3, 0), [rec("/3/0/9", 1, 1e9), rec("/3/0/9", 2, 2e9)], SPEC_RESOLVE)
    with pytest.raises(InternalError):
        codec.encode(LWM2M_CBOR, Path(3, 0), [rec("/3/0/6", 1)], SPEC_RESOLVE)
    with pytest.raises(InternalError):
        codec.encode(LWM2M_CBOR, Path(3, 0), [rec("/1/0/1", 1)], SPEC_RESOLVE)


def test_paths_with_null_values() -> None:
    paths = [Path(3, 0, 0), Path(3, 0, 9), Path(1), Path(5, 0)]
    payload = codec.encode_paths(LWM2M_CBOR, paths)
    assert payload == hexbytes("a4 83 03 00 00 f6 83 03 00 09 f6 01 f6 82 05 00 f6")
    assert codec.decode_paths(LWM2M_CBOR, payload) == paths
    assert codec.decode_paths(LWM2M_CBOR, hexbytes("a1 03 a1 00 a2 00 f6 09 f6")) == [
        Path(3, 0, 0),
        Path(3, 0, 9),
    ]
    with pytest.raises(BadRequest):
        codec.decode_paths(LWM2M_CBOR, hexbytes("a1 83 03 00 00 01"))
