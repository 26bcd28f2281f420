"""CBOR primitives (lwm2md.codec.cbor.loads/dumps) and the application/cbor (60) format."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from codec_support import RT, SPEC_RESOLVE, hexbytes, rdef, rec, resolver
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2md import codec
from lwm2md.codec import cbor
from lwm2md.codec.cbor import UNDEFINED, CborError, Simple, Tag
from lwm2md.errors import BadRequest, NotAcceptable
from lwm2md.model import ObjLnk, Path

# RFC 8949 Appendix A: value -> preferred encoding (encode and decode).
RFC8949_ROUND_TRIP = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (math.inf, "f97c00"),
    (-math.inf, "f9fc00"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (UNDEFINED, "f7"),
    (Simple(16), "f0"),
    (Simple(255), "f8ff"),
    (Tag(1, 1363896240), "c11a514b67b0"),
    (Tag(1, 1363896240.5), "c1fb41d452d9ec200000"),
    (Tag(23, b"\x01\x02\x03\x04"), "d74401020304"),
    (Tag(32, "http://www.example.com"), "d82076687474703a2f2f7777772e6578616d706c652e636f6d"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
]

# RFC 8949 Appendix A: encodings that decode to a value but are not what dumps writes.
RFC8949_DECODE_ONLY = [
    ("f97e00", math.nan),
    ("fa7fc00000", math.nan),
    ("fb7ff8000000000000", math.nan),
    ("fa7f800000", math.inf),
    ("fb7ff0000000000000", math.inf),
    ("faff800000", -math.inf),
    ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"),
    ("7f657374726561646d696e67ff", "streaming"),
    ("9fff", []),
    ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
    ("9f01820203820405ff", [1, [2, 3], [4, 5]]),
    ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
    ("83019f0203ff820405", [1, [2, 3], [4, 5]]),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", list(range(1, 26))),
    ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
    ("826161bf61626163ff", ["a", {"b": "c"}]),
    ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}),
]

# RFC 8949 Appendix F (and a few more): not well-formed.
MALFORMED = [
    "",
    "18",
    "1901",
    "1a010203",
    "1b01020304050607",
    "38",
    "58",
    "78",
    "98",
    "9a01ff00",
    "b8",
    "d8",
    "f8",
    "f900",
    "fa0000",
    "fb000000",
    "41",
    "61",
    "5affffffff00",
    "5bffffffffffffffff010203",
    "7affffffff00",
    "7b7fffffffffffffff010203",
    "81",
    "818181818181818181",
    "8200",
    "a1",
    "a20102",
    "a100",
    "a2000000",
    "c0",
    "5f4100",
    "7f6100",
    "9f",
    "9f0102",
    "bf",
    "bf01020102",
    "819f",
    "9f8000",
    "9f9f9f9f9fffffffff",
    "9f819f819f9fffffff",
    "1c",
    "1d",
    "1e",
    "3c",
    "5c",
    "7c",
    "9c",
    "bc",
    "dc",
    "fc",
    "fd",
    "fe",
    "1f",
    "3f",
    "df",
    "ff",
    "5f00ff",
    "5f21ff",
    "5f6100ff",
    "5f80ff",
    "5fa0ff",
    "5fc000ff",
    "5fe0ff",
    "7f4100ff",
    "5f5f4100ffff",
    "7f7f6100ffff",
    "81ff",
    "8200ff",
    "a1ff",
    "a1ff00",
    "a100ff",
    "a20000ff",
    "9f81ff",
    "9f829f819f9fffffffff",
    "bf00ff",
    "bf000000ff",
    "f800",
    "f81f",
    "0000",  # trailing bytes
    "62c328",  # invalid UTF-8 in a text string
    "a2010201",  # duplicate key
    "a1a00000",  # map as a map key
    "a1f97e0000",  # NaN as a map key
]


@pytest.mark.parametrize(("value", "encoded"), RFC8949_ROUND_TRIP)
def test_rfc8949_appendix_a_round_trip(value: object, encoded: str) -> None:
    """RFC 8949 Appendix A vectors: dumps writes the preferred encoding, loads reads it back."""
    assert cbor.dumps(value).hex() == encoded
    decoded = cbor.loads(bytes.fromhex(encoded))
    assert decoded == value
    assert type(decoded) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, value) == math.copysign(1.0, decoded)  # type: ignore[arg-type]


@pytest.mark.parametrize(("encoded", "value"), RFC8949_DECODE_ONLY)
def test_rfc8949_appendix_a_decode_only(encoded: str, value: object) -> None:
    """Non-preferred encodings of RFC 8949 Appendix A (indefinite lengths, wide floats) decode."""
    decoded = cbor.loads(bytes.fromhex(encoded))
    if isinstance(value, float) and math.isnan(value):
        assert isinstance(decoded, float) and math.isnan(decoded)
    else:
        assert decoded == value


def test_nan_encodes_as_canonical_half() -> None:
    assert cbor.dumps(math.nan) == bytes.fromhex("f97e00")


@pytest.mark.parametrize("encoded", MALFORMED)
def test_malformed_input_is_bad_request(encoded: str) -> None:
    """RFC 8949 Appendix F malformed items, reserved values and invalid maps raise CborError."""
    with pytest.raises(CborError) as info:
        cbor.loads(bytes.fromhex(encoded))
    assert isinstance(info.value, BadRequest)


def test_array_keys_decode_to_tuples() -> None:
    assert cbor.loads(hexbytes("a1 83 03 00 00 61 41")) == {(3, 0, 0): "A"}
    assert cbor.dumps({(3, 0, 0): "A"}) == hexbytes("a1 83 03 00 00 61 41")


def test_depth_limit_rejects_deep_nesting_without_recursion_error() -> None:
    deep = b"\x81" * 5000 + b"\x00"
    with pytest.raises(CborError):
        cbor.loads(deep)
    assert cbor.loads(b"\x81" * 10 + b"\x00", max_depth=10) == [[[[[[[[[[0]]]]]]]]]]
    with pytest.raises(CborError):
        cbor.loads(b"\x81" * 11 + b"\x00", max_depth=10)


def test_declared_lengths_are_not_trusted() -> None:
    """A declared huge length fails fast instead of allocating."""
    for head in ("5bffffffffffffffff", "9bffffffffffffffff", "bbffffffffffffffff", "7b00000000ffffffff"):
        with pytest.raises(CborError):
            cbor.loads(bytes.fromhex(head) + b"\x00" * 16)


def test_dumps_rejects_unencodable() -> None:
    with pytest.raises(TypeError):
        cbor.dumps(object())
    with pytest.raises(ValueError):
        cbor.dumps(2**64)
    with pytest.raises(ValueError):
        cbor.dumps(Simple(21))


def test_float_shortest_widths() -> None:
    assert len(cbor.encode_float(0.5)) == 3
    assert len(cbor.encode_float(1 / 3)) == 9
    assert len(cbor.encode_float(struct.unpack(">f", struct.pack(">f", 1 / 3))[0])) == 5
    assert len(cbor.encode_float(1e-40)) == 9  # single subnormal range: 1e-40 is not exact in single


# --- hypothesis ------------------------------------------------------------------------------------

_scalars = (
    st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.text()
    | st.binary()
    | st.just(UNDEFINED)
    | st.builds(Simple, st.integers(0, 19) | st.integers(32, 255))
)
_keys = st.integers(-(2**64), 2**64 - 1) | st.text(max_size=5) | st.tuples(st.integers(0, 70000))
_items = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_keys, inner, max_size=4)
        | st.builds(Tag, st.integers(0, 2**64 - 1), inner)
    ),
    max_leaves=20,
)


def _normal(item: object) -> object:
    if isinstance(item, tuple):
        return [_normal(x) for x in item]
    if isinstance(item, list):
        return [_normal(x) for x in item]
    if isinstance(item, dict):
        return [(_normal(k), _normal(v)) for k, v in item.items()]
    if isinstance(item, Tag):
        return ("tag", item.tag, _normal(item.value))
    if isinstance(item, float):
        return ("float", struct.pack(">d", item))
    return (type(item).__name__, item)


@settings(max_examples=300, deadline=None)
@given(_items)
def test_round_trip(item: object) -> None:
    """loads(dumps(x)) == x for any encodable item (array keys come back as tuples)."""
    assert _normal(cbor.loads(cbor.dumps(item))) == _normal(item)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False))
def test_float_encoding_is_exact_and_shortest(value: float) -> None:
    encoded = cbor.encode_float(value)
    assert struct.pack(">d", cbor.loads(encoded)) == struct.pack(">d", value)  # type: ignore[arg-type]
    narrower = {3: [], 5: [">e"], 9: [">e", ">f"]}[len(encoded)]
    for fmt in narrower:
        assert not _exact(fmt, value)


def _exact(fmt: str, value: float) -> bool:
    try:
        return bool(struct.unpack(fmt, struct.pack(fmt, value))[0] == value)
    except OverflowError:
        return False


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_loads(data: bytes) -> None:
    """Arbitrary bytes decode to a value or raise CborError, nothing else."""
    with contextlib.suppress(CborError):
        cbor.loads(data)


# --- application/cbor (60) -------------------------------------------------------------------------

SINGLE = resolver(
    {
        9: [
            rdef(0, RT.STRING),
            rdef(1, RT.INTEGER),
            rdef(2, RT.UNSIGNED),
            rdef(3, RT.FLOAT),
            rdef(4, RT.BOOLEAN),
            rdef(5, RT.OPAQUE),
            rdef(6, RT.TIME),
            rdef(7, RT.OBJLNK),
            rdef(8, RT.CORELNK),
            rdef(9, RT.INTEGER, True),
        ]
    }
)


@pytest.mark.parametrize(
    ("path", "value", "encoded"),
    [
        ("/9/0/0", "abc", "63616263"),
        ("/9/0/1", -750, "3902ed"),
        ("/9/0/2", 2**64 - 1, "1bffffffffffffffff"),
        ("/9/0/3", 1.5, "f93e00"),
        ("/9/0/3", 22.4, "fb4036666666666666"),
        ("/9/0/4", True, "f5"),
        ("/9/0/5", b"\x01\x02", "420102"),
        ("/9/0/6", 1476186613, "1a57fcd1f5"),
        ("/9/0/7", ObjLnk(66, 1), "6436363a31"),
        ("/9/0/8", "</3/0>", "663c2f332f303e"),
        ("/9/0/9/4", 7, "07"),
    ],
)
def test_cbor_single_value(path: str, value: object, encoded: str) -> None:
    record = rec(path, value)
    assert codec.encode(60, record.path, [record], SINGLE).hex() == encoded
    assert codec.decode(60, bytes.fromhex(encoded), record.path, SINGLE) == [record]


@pytest.mark.parametrize(
    ("path", "encoded", "value"),
    [
        ("/9/0/6", "c11a57fcd1f5", 1476186613),  # Time as tag 1 (epoch-based date/time)
        ("/9/0/6", "c1fb41d5ff347d400000", 1476186613),  # tag 1 with an integral float
        ("/9/0/1", "f94900", 10),  # integral float for an Integer
        ("/9/0/3", "0a", 10.0),  # integer for a Float
        ("/9/0/7", "6b36353533353a3635353335", ObjLnk(65535, 65535)),
    ],
)
def test_cbor_single_value_lenient_decode(path: str, encoded: str, value: object) -> None:
    decoded = codec.decode(60, bytes.fromhex(encoded), Path.parse(path), SINGLE)
    assert decoded == [rec(path, value)]
    assert type(decoded[0].value) is type(value)


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("/9/0/1", "6131"),  # text for Integer
        ("/9/0/1", "f93e00"),  # 1.5 for Integer
        ("/9/0/1", "1b8000000000000000"),  # above int64
        ("/9/0/2", "20"),  # negative for Unsigned
        ("/9/0/1", "f5"),  # boolean for Integer
        ("/9/0/1", "c101"),  # tag 1 on a plain Integer
        ("/9/0/4", "01"),  # 1 for Boolean
        ("/9/0/5", "6161"),  # text for Opaque
        ("/9/0/0", "4161"),  # bytes for String
        ("/9/0/7", "62333a"),  # malformed object link
        ("/9/0/7", "6837303030303a3130"),  # object id out of range
        ("/9/0/0", "f6"),  # null
        ("/9/0/9", "07"),  # multiple resource without riid
        ("/9/0", "07"),  # not a resource
        ("/9/0/0", "6161ff"),  # trailing garbage
    ],
)
def test_cbor_single_value_rejects(path: str, encoded: str) -> None:
    with pytest.raises(BadRequest):
        codec.decode(60, bytes.fromhex(encoded), Path.parse(path), SINGLE)


def test_cbor_single_value_format_refuses_several_values() -> None:
    records = [rec("/3/0/6/0", 1), rec("/3/0/6/1", 5)]
    with pytest.raises(NotAcceptable):
        codec.encode(60, Path(3, 0, 6), records, SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(60, Path(3, 0), [rec("/3/0/9", 1)], SPEC_RESOLVE)
