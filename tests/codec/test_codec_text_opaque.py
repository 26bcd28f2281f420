"""text/plain (0) and application/octet-stream (42).

Vectors: Core TS 1.2.2 section 7.5.1 (Read /3/0/0 -> "Open Mobile Alliance") and the
text column of Appendix C Table C.-2 (integer -750, unsigned 18, float
0.00000000006667, boolean 0/1, opaque "AQIDBAU=", time 1476186613).
"""

from __future__ import annotations

import pytest
from codec_support import RT, SPEC_RESOLVE, rdef, rec, resolver

from lwm2md import codec
from lwm2md.errors import BadRequest, InternalError, NotAcceptable, NotFound
from lwm2md.model import ObjLnk, Path

TEXT = codec.ContentFormat.TEXT
OPAQUE = codec.ContentFormat.OPAQUE

TYPES = resolver(
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
            rdef(9, RT.OPAQUE, True),
            rdef(10, RT.NONE),
        ]
    }
)


@pytest.mark.parametrize(
    ("path", "value", "text"),
    [
        ("/3/0/0", "Open Mobile Alliance", "Open Mobile Alliance"),  # 7.5.1
        ("/3/0/13", 1367491215, "1367491215"),  # Transport TS Figure 6.4.4.-1 (Write /3/0/13)
        ("/9/0/1", -750, "-750"),  # Table C.-2 Integer
        ("/9/0/2", 18, "18"),  # Table C.-2 Unsigned Integer
        ("/9/0/4", False, "0"),  # Table C.-2 Boolean
        ("/9/0/4", True, "1"),
        ("/9/0/5", b"\x01\x02\x03\x04\x05", "AQIDBAU="),  # Table C.-2 Opaque (Base64)
        ("/9/0/6", 1476186613, "1476186613"),  # Table C.-2 Time
        ("/9/0/7", ObjLnk(66, 0), "66:0"),
        ("/9/0/8", '</3/0>;ver="1.1"', '</3/0>;ver="1.1"'),
        ("/9/0/3", 0.00000000006667, "0.00000000006667"),  # Table C.-2 Float, written without exponent
        ("/9/0/3", 1.5, "1.5"),
        ("/9/0/3", -0.0, "-0.0"),
        ("/9/0/3", 1e22, "10000000000000000000000"),
        ("/9/0/0", "", ""),
        ("/9/0/0", "gr\u00fc\u00df", "gr\u00fc\u00df"),
        ("/9/0/2", 2**64 - 1, "18446744073709551615"),
        ("/9/0/9/3", b"\xff", "/w=="),
    ],
)
def test_text_values(path: str, value: object, text: str) -> None:
    record = rec(path, value)
    resolve = SPEC_RESOLVE if path.startswith("/3/") else TYPES
    assert codec.encode(TEXT, record.path, [record], resolve) == text.encode("utf-8")
    decoded = codec.decode(TEXT, text.encode("utf-8"), record.path, resolve)
    assert decoded == [record] and type(decoded[0].value) is type(value)


@pytest.mark.parametrize(
    ("rid", "text", "value"),
    [
        (3, "6.667e-11", 6.667e-11),
        (3, "7", 7.0),
        (3, "+.5", 0.5),
        (1, "+12", 12),
        (1, "007", 7),
        (5, "AQIDBAU", b"\x01\x02\x03\x04\x05"),  # missing padding tolerated
        (7, "65535:65535", ObjLnk(65535, 65535)),
    ],
)
def test_text_lenient_forms(rid: int, text: str, value: object) -> None:
    decoded = codec.decode(TEXT, text.encode(), Path(9, 0, rid), TYPES)
    assert decoded == [rec(f"/9/0/{rid}", value)] and type(decoded[0].value) is type(value)


@pytest.mark.parametrize(
    ("rid", "text"),
    [
        (1, "1.5"),
        (1, "12a"),
        (1, " 12"),
        (1, ""),
        (1, "9223372036854775808"),
        (1, "1" * 5000),
        (2, "-1"),
        (2, "18446744073709551616"),
        (3, "nan"),
        (3, "inf"),
        (3, "1e999"),
        (3, "1_0"),
        (3, "0x10"),
        (4, "true"),
        (4, "2"),
        (5, "AQID*"),
        (5, "A"),
        (7, "66"),
        (7, "66:0:1"),
        (7, "65536:0"),
        (7, "-1:0"),
        (10, ""),
    ],
)
def test_text_rejects(rid: int, text: str) -> None:
    with pytest.raises(BadRequest):
        codec.decode(TEXT, text.encode(), Path(9, 0, rid), TYPES)


def test_text_rejects_invalid_utf8_and_wrong_targets() -> None:
    with pytest.raises(BadRequest):
        codec.decode(TEXT, b"\xff", Path(9, 0, 0), TYPES)
    with pytest.raises(BadRequest):
        codec.decode(TEXT, b"1", Path(9, 0), TYPES)
    with pytest.raises(BadRequest):  # multiple resource needs a resource instance target
        codec.decode(TEXT, b"AA==", Path(9, 0, 9), TYPES)
    with pytest.raises(NotFound):
        codec.decode(TEXT, b"1", Path(9, 0, 99), TYPES)


def test_text_encode_refusals() -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(TEXT, Path(3, 0, 6), [rec("/3/0/6/0", 1), rec("/3/0/6/1", 5)], SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(TEXT, Path(3, 0), [rec("/3/0/9", 1)], SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(TEXT, Path(9, 0, 3), [rec("/9/0/3", float("nan"))], TYPES)
    with pytest.raises(InternalError):  # a value that does not fit its definition is a caller bug
        codec.encode(TEXT, Path(9, 0, 1), [rec("/9/0/1", "12")], TYPES)
    with pytest.raises(InternalError):
        codec.encode(TEXT, Path(9, 0, 1), [rec("/9/0/1", True)], TYPES)


def test_opaque() -> None:
    record = rec("/9/0/5", b"\x00firmware\xff")
    assert codec.encode(OPAQUE, record.path, [record], TYPES) == b"\x00firmware\xff"
    assert codec.decode(OPAQUE, b"\x00firmware\xff", record.path, TYPES) == [record]
    assert codec.decode(OPAQUE, b"", Path(9, 0, 9, 2), TYPES) == [rec("/9/0/9/2", b"")]


def test_opaque_refuses_other_types() -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(OPAQUE, Path(9, 0, 1), [rec("/9/0/1", 5)], TYPES)
    with pytest.raises(BadRequest):
        codec.decode(OPAQUE, b"5", Path(9, 0, 1), TYPES)
    with pytest.raises(BadRequest):
        codec.decode(OPAQUE, b"5", Path(9, 0), TYPES)
    with pytest.raises(NotAcceptable):
        codec.encode(OPAQUE, Path(9, 0, 9), [rec("/9/0/9/0", b"a"), rec("/9/0/9/1", b"b")], TYPES)
