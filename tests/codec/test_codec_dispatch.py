"""The dispatch functions of lwm2md.codec and their error contract."""

from __future__ import annotations

import pytest
from codec_support import DEVICE_RECORDS, SPEC_RESOLVE, rec

from lwm2md import codec
from lwm2md.codec import ContentFormat
from lwm2md.errors import BadRequest, InternalError, NotAcceptable, NotFound, UnsupportedContentFormat
from lwm2md.model import Path, ResourceDef

RECORD_FORMATS = [f for f in ContentFormat if f is not ContentFormat.LINK_FORMAT]


def test_content_format_numbers() -> None:
    assert {f.name: int(f) for f in ContentFormat} == {
        "TEXT": 0,
        "LINK_FORMAT": 40,
        "OPAQUE": 42,
        "CBOR": 60,
        "SENML_JSON": 110,
        "SENML_CBOR": 112,
        "TLV": 11542,
        "OMA_JSON": 11543,
        "LWM2M_CBOR": 11544,
    }
    assert {ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.CBOR} == codec.SINGLE_VALUE_FORMATS


def test_is_supported() -> None:
    assert all(codec.is_supported(f) for f in RECORD_FORMATS)
    assert not codec.is_supported(ContentFormat.LINK_FORMAT)
    assert not codec.is_supported(50)
    assert not codec.is_supported(11545)


def test_unknown_formats() -> None:
    with pytest.raises(UnsupportedContentFormat):
        codec.decode(50, b"{}", Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(UnsupportedContentFormat):
        codec.decode(ContentFormat.LINK_FORMAT, b"</3/0>", Path(3, 0), SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(50, Path(3, 0), DEVICE_RECORDS, SPEC_RESOLVE)
    with pytest.raises(UnsupportedContentFormat):
        codec.decode_paths(ContentFormat.TLV, b"")
    with pytest.raises(UnsupportedContentFormat):
        codec.encode_paths(ContentFormat.TEXT, [Path(3)])


@pytest.mark.parametrize("fmt", sorted(codec.SINGLE_VALUE_FORMATS))
def test_single_value_formats_refuse_several_values(fmt: int) -> None:
    with pytest.raises(NotAcceptable):
        codec.encode(fmt, Path(3, 0), DEVICE_RECORDS, SPEC_RESOLVE)


@pytest.mark.parametrize("fmt", sorted(set(RECORD_FORMATS) - codec.SINGLE_VALUE_FORMATS))
def test_multi_value_formats_round_trip_the_device_instance(fmt: int) -> None:
    payload = codec.encode(fmt, Path(3, 0), DEVICE_RECORDS, SPEC_RESOLVE)
    assert codec.decode(fmt, payload, Path(3, 0), SPEC_RESOLVE) == DEVICE_RECORDS


@pytest.mark.parametrize("fmt", [f for f in RECORD_FORMATS if f is not ContentFormat.OPAQUE])
def test_unknown_resource_is_not_found_everywhere(fmt: int) -> None:
    """A value for a resource the resolver does not know decodes to NotFound in every format."""

    def resolve(path: Path) -> ResourceDef | None:
        return None if path.rid == 12 else SPEC_RESOLVE(path)

    probe = rec("/3/0/9", 7)
    payload = codec.encode(fmt, probe.path, [probe], SPEC_RESOLVE)
    # Re-address the same payload to resource 12 where the format names the resource.
    moved = {
        ContentFormat.TLV: payload.replace(b"\x09", b"\x0c", 1),
        ContentFormat.SENML_JSON: payload.replace(b'"9"', b'"12"'),
        ContentFormat.SENML_CBOR: payload.replace(b"\x61\x39", b"\x62\x31\x32"),
        ContentFormat.OMA_JSON: payload.replace(b'"9"', b'"12"'),
        ContentFormat.LWM2M_CBOR: payload.replace(b"\x09\x07", b"\x0c\x07"),
    }.get(fmt, payload)
    with pytest.raises(NotFound):
        codec.decode(fmt, moved, Path(3, 0, 12), resolve)


def test_decode_errors_are_bad_request_subclasses() -> None:
    """CborError is a BadRequest so callers need only the contract's three classes."""
    with pytest.raises(BadRequest):
        codec.decode(ContentFormat.SENML_CBOR, b"\xff", Path(), SPEC_RESOLVE)


@pytest.mark.parametrize("fmt", RECORD_FORMATS)
def test_encoders_refuse_records_that_do_not_fit(fmt: int) -> None:
    """Records above resource level, of the wrong Python type or outside the target are caller bugs."""
    cases = [
        (Path(3, 0), [rec("/3/0", 1)]),
        (Path(3, 0, 9), [rec("/3/0/9", "100")]),
        (Path(3, 0, 9), [rec("/3/0/9", 2**63)]),
        (Path(3, 0, 9), [rec("/3/0/10", 1)]),
        (Path(3, 0, 6), [rec("/3/0/6", 1)]),
    ]
    for base, records in cases:
        with pytest.raises((InternalError, NotAcceptable)):
            codec.encode(fmt, base, records, SPEC_RESOLVE)


def test_encode_value_coercions() -> None:
    """Integers for Float resources and bytearrays for Opaque ones are accepted and normalized."""
    payload = codec.encode(ContentFormat.TLV, Path(6, 0, 0), [rec("/6/0/0", 2)], SPEC_RESOLVE)
    assert payload == bytes.fromhex("c40040000000")
    payload = codec.encode(
        ContentFormat.OPAQUE, Path(0, 0, 3), [rec("/0/0/3", bytearray(b"k"))], SPEC_RESOLVE
    )
    assert payload == b"k"
    with pytest.raises(InternalError):
        codec.encode(ContentFormat.TLV, Path(6, 0, 0), [rec("/6/0/0", 10**400)], SPEC_RESOLVE)
    with pytest.raises(InternalError):
        codec.encode(ContentFormat.TLV, Path(65, 0, 0, 0), [rec("/65/0/0/0", (1, 2))], SPEC_RESOLVE)
    with pytest.raises(NotAcceptable):
        codec.encode(ContentFormat.TLV, Path(65, 0, 0, 0), [], SPEC_RESOLVE)
    with pytest.raises(NotFound):
        codec.encode(ContentFormat.SENML_JSON, Path(3, 0), [rec("/3/0/99", 1)], SPEC_RESOLVE)
