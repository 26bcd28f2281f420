"""OMA TLV (11542): the TLV examples of the LwM2M Core TS and the framing/value rules.

Section numbers refer to OMA-TS-LightweightM2M_Core-V1_2_2 (7.5.5.x); the same
examples appear in V1_0 6.4.3 and V1_1 7.4.3. Where the published bytes contain
an erratum (a length that does not match the content), the test uses the
corrected bytes and says so.
"""

from __future__ import annotations

import pytest
from codec_support import DEVICE_RECORDS, RT, SPEC_RESOLVE, hexbytes, rdef, rec, resolver

from lwm2md import codec
from lwm2md.codec import tlv
from lwm2md.errors import BadRequest, NotAcceptable, NotFound
from lwm2md.model import ObjLnk, Path

TLV = codec.ContentFormat.TLV

# 7.5.5.1 "Single Object Instance" (Read /3/0). Erratum fixed: the published Model Number
# reads "Lightweigt" (21 bytes) under a 0x16 (22) length; the intended "Lightweight" is used.
DEVICE_INSTANCE_TLV = hexbytes(
    """
    C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
    C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
    C8 02 09 33 34 35 30 30 30 31 32 33
    C3 03 31 2E 30
    86 06 41 00 01 41 01 05
    88 07 08 42 00 0E D8 42 01 13 88
    87 08 41 00 7D 42 01 03 84
    C1 09 64
    C1 0A 0F
    83 0B 41 00 00
    C4 0D 51 82 42 8F
    C6 0E 2B 30 32 3A 30 30
    C1 10 55
    """
)

# 7.5.5.2 A (Read /3): the same instance inside an Object Instance TLV of length 0x79.
DEVICE_OBJECT_TLV = hexbytes("08 00 79") + DEVICE_INSTANCE_TLV

# 7.5.5.2 B (Read /2): two Access Control instances; ACL[310] uses a 16-bit id.
ACCESS_CONTROL_TLV = hexbytes(
    """
    08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F
    08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F
    """
)
ACCESS_CONTROL_RECORDS = [
    rec("/2/0/0", 1),
    rec("/2/0/1", 0),
    rec("/2/0/2/127", 7),
    rec("/2/0/3", 127),
    rec("/2/2/0", 3),
    rec("/2/2/1", 0),
    rec("/2/2/2/127", 7),
    rec("/2/2/2/310", 1),
    rec("/2/2/3", 127),
]

# 7.5.5.2 C (Read /1): one Server instance. Erratum fixed: published length 0x0D, content is 0x0F.
SERVER_TLV = hexbytes("08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55")
SERVER_RECORDS = [rec("/1/0/0", 1), rec("/1/0/1", 86400), rec("/1/0/6", True), rec("/1/0/7", "U")]

# 7.5.5.3 Example 1 (Read /65/0): multiple Objlnk resource, string, integer.
OBJ65_TLV = hexbytes(
    "88 00 0C 44 00 00 42 00 00 44 01 00 42 00 01"
    " C8 01 0D 38 36 31 33 38 30 30 37 35 35 35 30 30 C4 02 12 34 56 78"
)
OBJ65_RECORDS = [
    rec("/65/0/0/0", ObjLnk(66, 0)),
    rec("/65/0/0/1", ObjLnk(66, 1)),
    rec("/65/0/1", "8613800755500"),
    rec("/65/0/2", 0x12345678),
]

# 7.5.5.3 Example 2 (Read /66). Erratum fixed: published instance lengths 0x23, content is 0x26.
OBJ66_TLV = hexbytes(
    """
    08 00 26 C8 00 0B 6D 79 53 65 72 76 69 63 65 20 31
             C8 01 0F 49 6E 74 65 72 6E 65 74 2E 31 35 2E 32 33 34
             C4 02 00 43 00 00
    08 01 26 C8 00 0B 6D 79 53 65 72 76 69 63 65 20 32
             C8 01 0F 49 6E 74 65 72 6E 65 74 2E 31 35 2E 32 33 35
             C4 02 FF FF FF FF
    """
)
OBJ66_RECORDS = [
    rec("/66/0/0", "myService 1"),
    rec("/66/0/1", "Internet.15.234"),
    rec("/66/0/2", ObjLnk(67, 0)),
    rec("/66/1/0", "myService 2"),
    rec("/66/1/1", "Internet.15.235"),
    rec("/66/1/2", ObjLnk(65535, 65535)),
]


@pytest.mark.parametrize(
    ("base", "payload", "records"),
    [
        (Path(3, 0), DEVICE_INSTANCE_TLV, DEVICE_RECORDS),
        (Path(3), DEVICE_OBJECT_TLV, DEVICE_RECORDS),
        (Path(2), ACCESS_CONTROL_TLV, ACCESS_CONTROL_RECORDS),
        (Path(1), SERVER_TLV, SERVER_RECORDS),
        (Path(65, 0), OBJ65_TLV, OBJ65_RECORDS),
        (Path(66), OBJ66_TLV, OBJ66_RECORDS),
    ],
    ids=[
        "7.5.5.1-read-3-0",
        "7.5.5.2A-read-3",
        "7.5.5.2B-read-2",
        "7.5.5.2C-read-1",
        "7.5.5.3-ex1",
        "7.5.5.3-ex2",
    ],
)
def test_core_ts_tlv_examples(base: Path, payload: bytes, records: list[object]) -> None:
    """The Core TS TLV examples encode byte for byte and decode back to the same values."""
    assert codec.encode(TLV, base, records, SPEC_RESOLVE) == payload  # type: ignore[arg-type]
    assert codec.decode(TLV, payload, base, SPEC_RESOLVE) == records


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (DEVICE_INSTANCE_TLV.replace(b"weight M2M", b"weigt M2M"), "published 7.5.5.1 bytes: string shorter"),
        (hexbytes("08 00 0D C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55"), "published 7.5.5.2 C bytes"),
    ],
)
def test_published_errata_are_rejected(payload: bytes, why: str) -> None:
    """The uncorrected published bytes misframe, and a strict decoder says so."""
    base = Path(3, 0) if payload.startswith(b"\xc8") else Path(1)
    with pytest.raises(BadRequest):
        codec.decode(TLV, payload, base, SPEC_RESOLVE)


def test_single_resource_and_resource_instance_targets() -> None:
    assert codec.encode(TLV, Path(3, 0, 9), [rec("/3/0/9", 100)], SPEC_RESOLVE) == hexbytes("C1 09 64")
    multi = [rec("/3/0/7/0", 3800), rec("/3/0/7/1", 5000)]
    payload = hexbytes("88 07 08 42 00 0E D8 42 01 13 88")
    assert codec.encode(TLV, Path(3, 0, 7), multi, SPEC_RESOLVE) == payload
    assert codec.decode(TLV, payload, Path(3, 0, 7), SPEC_RESOLVE) == multi
    # Bare resource instance TLVs for a multiple resource are accepted too.
    assert codec.decode(TLV, hexbytes("42 00 0E D8 42 01 13 88"), Path(3, 0, 7), SPEC_RESOLVE) == multi
    one = [rec("/3/0/7/1", 5000)]
    assert codec.encode(TLV, Path(3, 0, 7, 1), one, SPEC_RESOLVE) == hexbytes("42 01 13 88")
    assert codec.decode(TLV, hexbytes("42 01 13 88"), Path(3, 0, 7, 1), SPEC_RESOLVE) == one
    assert codec.decode(TLV, hexbytes("88 07 04 42 01 13 88"), Path(3, 0, 7, 1), SPEC_RESOLVE) == one


def test_empty_multiple_resource() -> None:
    assert codec.encode(TLV, Path(3, 0, 7), [], SPEC_RESOLVE) == hexbytes("80 07")
    assert codec.decode(TLV, hexbytes("80 07"), Path(3, 0, 7), SPEC_RESOLVE) == []
    assert codec.decode(TLV, b"", Path(3, 0), SPEC_RESOLVE) == []


def test_instance_payload_wrapped_in_object_instance_tlv() -> None:
    """Peers may wrap an instance's resources in its Object Instance TLV."""
    assert codec.decode(TLV, DEVICE_OBJECT_TLV, Path(3, 0), SPEC_RESOLVE) == DEVICE_RECORDS
    with pytest.raises(BadRequest):
        codec.decode(TLV, DEVICE_OBJECT_TLV, Path(3, 1), SPEC_RESOLVE)


def test_create_without_instance_id_decodes_with_max_id() -> None:
    """Resource TLVs directly under an object (Create without an id) get instance id 65535."""
    payload = hexbytes("C1 00 01 C4 01 00 01 51 80")
    assert codec.decode(TLV, payload, Path(1), SPEC_RESOLVE) == [
        rec("/1/65535/0", 1),
        rec("/1/65535/1", 86400),
    ]


# --- framing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "ident", "length", "header"),
    [
        (tlv.RESOURCE, 5, 0, "c0 05"),
        (tlv.RESOURCE, 5, 7, "c7 05"),
        (tlv.RESOURCE, 5, 8, "c8 05 08"),
        (tlv.RESOURCE, 5, 255, "c8 05 ff"),
        (tlv.RESOURCE, 5, 256, "d0 05 01 00"),
        (tlv.RESOURCE, 5, 65535, "d0 05 ff ff"),
        (tlv.RESOURCE, 5, 65536, "d8 05 01 00 00"),
        (tlv.RESOURCE, 256, 1, "e1 01 00"),
        (tlv.RESOURCE_INSTANCE, 65535, 300, "70 ff ff 01 2c"),
        (tlv.OBJECT_INSTANCE, 1, 3, "03 01"),
        (tlv.MULTIPLE_RESOURCE, 0x1234, 9, "a8 12 34 09"),
    ],
)
def test_frame_header_forms(kind: int, ident: int, length: int, header: str) -> None:
    value = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    framed = tlv.frame(kind, ident, value)
    assert framed == hexbytes(header) + value
    assert tlv.parse(framed) == [tlv.Tlv(kind, ident, value)]


def test_parse_accepts_non_minimal_length_fields() -> None:
    assert tlv.parse(hexbytes("C8 09 01 64")) == [tlv.Tlv(tlv.RESOURCE, 9, b"\x64")]
    assert tlv.parse(hexbytes("F8 00 09 00 00 01 64")) == [tlv.Tlv(tlv.RESOURCE, 9, b"\x64")]


@pytest.mark.parametrize(
    "payload", ["C1", "C1 09", "C2 09 00", "E1 00", "C8 09", "D0 09 00", "C8 09 05 00", "08 00 05 C1"]
)
def test_truncated_framing_is_bad_request(payload: str) -> None:
    with pytest.raises(BadRequest):
        codec.decode(TLV, hexbytes(payload), Path(3, 0), SPEC_RESOLVE)


def test_frame_refuses_values_over_16_mib() -> None:
    with pytest.raises(NotAcceptable):
        tlv.frame(tlv.RESOURCE, 0, bytes(2**24))


# --- values ----------------------------------------------------------------------------------------

VALUES = resolver(
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
            rdef(10, RT.NONE),
        ]
    }
)


@pytest.mark.parametrize(
    ("rid", "value", "raw"),
    [
        (1, 0, "00"),
        (1, 127, "7f"),
        (1, 128, "0080"),
        (1, -128, "80"),
        (1, -129, "ff7f"),
        (1, 32767, "7fff"),
        (1, 32768, "00008000"),
        (1, -(2**31), "80000000"),
        (1, 2**31, "0000000080000000"),
        (1, 2**63 - 1, "7fffffffffffffff"),
        (1, -(2**63), "8000000000000000"),
        (2, 200, "00c8"),
        (2, 65535, "0000ffff"),
        (2, 65536, "00010000"),
        (2, 2**64 - 1, "ffffffffffffffff"),
        (6, 1367491215, "5182428f"),
        (3, 1.5, "3fc00000"),
        (3, 0.1, "3fb999999999999a"),
        (3, -0.0, "80000000"),
        (3, 1e39, "48078287f49c4a1d"),
        (4, True, "01"),
        (4, False, "00"),
        (5, b"\x00\xff", "00ff"),
        (0, "h\u00e9", "68c3a9"),
        (7, ObjLnk(66, 1), "00420001"),
        (8, "</3/0>", "3c2f332f303e"),
    ],
)
def test_value_encodings(rid: int, value: object, raw: str) -> None:
    """Integers in the smallest signed width (also Unsigned), floats in 4 bytes when exact."""
    record = rec(f"/9/0/{rid}", value)
    payload = codec.encode(TLV, record.path, [record], VALUES)
    assert payload == tlv.frame(tlv.RESOURCE, rid, bytes.fromhex(raw))
    decoded = codec.decode(TLV, payload, record.path, VALUES)
    assert decoded == [record] and type(decoded[0].value) is type(value)


@pytest.mark.parametrize(
    ("rid", "raw"),
    [
        (1, "000000"),  # 3-byte integer
        (1, ""),  # empty integer
        (2, "000000"),
        (3, "0000"),  # 2-byte float
        (4, "02"),  # boolean 2
        (4, "0001"),
        (7, "000000"),  # 3-byte object link
        (0, "ff"),  # invalid UTF-8
        (10, ""),  # executable resource
    ],
)
def test_invalid_values_are_bad_request(rid: int, raw: str) -> None:
    payload = tlv.frame(tlv.RESOURCE, rid, bytes.fromhex(raw))
    with pytest.raises(BadRequest):
        codec.decode(TLV, payload, Path(9, 0), VALUES)


def test_wider_integer_encodings_decode() -> None:
    payload = tlv.frame(tlv.RESOURCE, 1, bytes.fromhex("0000000000000064"))
    assert codec.decode(TLV, payload, Path(9, 0, 1), VALUES) == [rec("/9/0/1", 100)]


def test_unsigned_decodes_as_unsigned() -> None:
    """Peers writing the shortest unsigned form (0xC8 for 200) are read correctly."""
    assert codec.decode(TLV, tlv.frame(tlv.RESOURCE, 2, b"\xc8"), Path(9, 0, 2), VALUES) == [
        rec("/9/0/2", 200)
    ]
    payload = tlv.frame(tlv.RESOURCE, 2, b"\xff\xff")
    assert codec.decode(TLV, payload, Path(9, 0, 2), VALUES) == [rec("/9/0/2", 65535)]
    assert codec.decode(TLV, tlv.frame(tlv.RESOURCE, 1, b"\xc8"), Path(9, 0, 1), VALUES) == [
        rec("/9/0/1", -56)
    ]


def test_structure_errors() -> None:
    with pytest.raises(BadRequest):  # Resource TLV for a multiple resource
        codec.decode(TLV, hexbytes("C1 06 01"), Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(BadRequest):  # Multiple Resource TLV for a single resource
        codec.decode(TLV, hexbytes("83 09 41 00 01"), Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(BadRequest):  # resource id differs from the target
        codec.decode(TLV, hexbytes("C1 0A 01"), Path(3, 0, 9), SPEC_RESOLVE)
    with pytest.raises(BadRequest):  # root target
        codec.decode(TLV, hexbytes("C1 0A 01"), Path(), SPEC_RESOLVE)
    with pytest.raises(BadRequest):  # resource instance TLV directly in an instance
        codec.decode(TLV, hexbytes("41 00 01"), Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(BadRequest):  # the same resource twice
        codec.decode(TLV, hexbytes("C1 09 01 C1 09 02"), Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(BadRequest):  # the same resource instance twice
        codec.decode(TLV, hexbytes("86 06 41 00 01 41 00 02"), Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(NotFound):
        codec.decode(TLV, hexbytes("C1 63 01"), Path(3, 0), SPEC_RESOLVE)


def test_encode_refusals() -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(TLV, Path(), DEVICE_RECORDS, SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(TLV, Path(3, 0, 9), [], SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):  # two values for one path (history) need SenML
        codec.encode(TLV, Path(3, 0), [rec("/3/0/9", 1, 1.0e9), rec("/3/0/9", 2, 1.1e9)], SPEC_RESOLVE)
