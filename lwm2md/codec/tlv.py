"""OMA LwM2M TLV (11542).

Each TLV is a type byte (bits 7-6: 00 Object Instance, 01 Resource Instance,
10 Multiple Resource, 11 Resource with Value; bit 5: 16-bit identifier; bits
4-3: length field of 0/8/16/24 bits; bits 2-0: the length itself when the length
field is absent), the identifier, the length and the value.

Values: integers as the shortest two's complement of 1/2/4/8 bytes, Unsigned
included (so a peer reading it as signed or unsigned gets the same number; only
2**63 and above use 8 unsigned bytes), and decoded as unsigned; Float as 4 bytes when
that is exact, else 8; Boolean as one byte 0/1; Objlnk as two 16-bit ids;
String/Corelnk as UTF-8; Opaque as is.

Layout by target: an object (``/O``) is a sequence of Object Instance TLVs; an
instance (``/O/I``) a sequence of resource TLVs; a resource a single Resource
TLV or a Multiple Resource TLV; a resource instance a Resource Instance TLV.
The decoder also accepts the wrapped or bare variants peers send (an Object
Instance TLV around an instance's resources; bare Resource Instance TLVs for a
multiple resource). Under an object, bare resource TLVs (a Create that leaves
the instance id to the client) decode with instance id 65535.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lwm2md.codec._values import (
    INTEGER_TYPES,
    TEXT_TYPES,
    TypeResolver,
    encode_checked,
    float_value,
    int_value,
    reject_duplicates,
    resolve_for_decode,
    resource_def,
)
from lwm2md.errors import BadRequest, NotAcceptable
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import ObjLnk, Record, ResourceDef, ResourceType, Value

OBJECT_INSTANCE: Final = 0
RESOURCE_INSTANCE: Final = 1
MULTIPLE_RESOURCE: Final = 2
RESOURCE: Final = 3

_MAX_LENGTH: Final = 0xFFFFFF


@dataclass(frozen=True)
class Tlv:
    """One decoded TLV: its kind (0-3), identifier and raw value bytes."""

    kind: int
    ident: int
    value: bytes


# --- framing ---------------------------------------------------------------------------------------


def frame(kind: int, ident: int, value: bytes) -> bytes:
    """Encode one TLV with the shortest identifier and length fields."""
    if len(value) > _MAX_LENGTH:
        raise NotAcceptable("value too large for TLV (over 16 MiB)")
    type_byte = kind << 6
    id_bytes = ident.to_bytes(2 if ident > 0xFF else 1, "big")
    if ident > 0xFF:
        type_byte |= 0x20
    length = len(value)
    if length < 8:
        type_byte |= length
        len_bytes = b""
    elif length <= 0xFF:
        type_byte |= 0x08
        len_bytes = length.to_bytes(1, "big")
    elif length <= 0xFFFF:
        type_byte |= 0x10
        len_bytes = length.to_bytes(2, "big")
    else:
        type_byte |= 0x18
        len_bytes = length.to_bytes(3, "big")
    return bytes((type_byte,)) + id_bytes + len_bytes + value


def parse(data: bytes) -> list[Tlv]:
    """Split ``data`` into TLVs (one level); BadRequest if the framing is broken."""
    out: list[Tlv] = []
    pos, end = 0, len(data)
    while pos < end:
        type_byte = data[pos]
        pos += 1
        id_len = 2 if type_byte & 0x20 else 1
        len_len = (type_byte >> 3) & 0x03
        if pos + id_len + len_len > end:
            raise BadRequest("truncated TLV header")
        ident = int.from_bytes(data[pos : pos + id_len], "big")
        pos += id_len
        if len_len:
            length = int.from_bytes(data[pos : pos + len_len], "big")
            pos += len_len
        else:
            length = type_byte & 0x07
        if length > end - pos:
            raise BadRequest("TLV value runs past the end of the payload")
        out.append(Tlv(type_byte >> 6, ident, bytes(data[pos : pos + length])))
        pos += length
    return out


# --- values ----------------------------------------------------------------------------------------


def _int_bytes(value: int) -> bytes:
    """Shortest two's complement of 1/2/4/8 bytes; 8 unsigned bytes for 2**63..2**64-1."""
    for size in (1, 2, 4, 8):
        try:
            return value.to_bytes(size, "big", signed=True)
        except OverflowError:
            continue
    try:
        return value.to_bytes(8, "big")
    except OverflowError:
        raise NotAcceptable(f"integer {value} does not fit 64 bits") from None


def value_bytes(rtype: ResourceType, value: Value) -> bytes:
    """The TLV value field for a checked value."""
    if isinstance(value, ObjLnk):
        return struct.pack(">HH", value.oid, value.iid)
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, float):
        try:
            single = struct.pack(">f", value)
        except OverflowError:
            return struct.pack(">d", value)
        same = struct.unpack(">f", single)[0]
        if same == value or (same != same and value != value):
            return single
        return struct.pack(">d", value)
    return _int_bytes(value)


def parse_value(rtype: ResourceType, raw: bytes, path: Path) -> Value:
    """Interpret a TLV value field as ``rtype``; BadRequest if it cannot be one."""
    if rtype in TEXT_TYPES:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"string at {path} is not valid UTF-8") from exc
    if rtype is ResourceType.OPAQUE:
        return raw
    if rtype in INTEGER_TYPES:
        if len(raw) not in (1, 2, 4, 8):
            raise BadRequest(f"integer at {path} has {len(raw)} bytes")
        signed = rtype is not ResourceType.UNSIGNED
        return int_value(rtype, int.from_bytes(raw, "big", signed=signed), path)
    if rtype is ResourceType.FLOAT:
        if len(raw) == 4:
            return float_value(struct.unpack(">f", raw)[0], path)
        if len(raw) == 8:
            return float_value(struct.unpack(">d", raw)[0], path)
        raise BadRequest(f"float at {path} has {len(raw)} bytes")
    if rtype is ResourceType.BOOLEAN:
        if raw not in (b"\x00", b"\x01"):
            raise BadRequest(f"boolean at {path} is not one byte 0 or 1")
        return raw == b"\x01"
    if rtype is ResourceType.OBJLNK:
        if len(raw) != 4:
            raise BadRequest(f"object link at {path} has {len(raw)} bytes")
        oid, iid = struct.unpack(">HH", raw)
        return ObjLnk(oid, iid)
    raise BadRequest(f"{path} carries no value")


# --- encoding --------------------------------------------------------------------------------------


def encode(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode ``records`` below ``base`` (an object, instance, resource or resource instance)."""
    if base.level == 0:
        raise NotAcceptable("TLV cannot represent several objects")
    checked = encode_checked(base, records, resolve)
    reject_duplicates(records)
    if base.level == 4:
        if len(checked) != 1:
            raise NotAcceptable(f"{base} has {len(checked)} values")
        record, definition, value = checked[0]
        return frame(RESOURCE_INSTANCE, base.parts[3], value_bytes(definition.type, value))
    # Group values by instance, then by resource, keeping first-appearance order.
    instances: dict[int, dict[int, tuple[ResourceDef, list[tuple[Path, Value]]]]] = {}
    for record, definition, value in checked:
        _, iid, rid = record.path.parts[:3]
        resources = instances.setdefault(iid, {})
        resources.setdefault(rid, (definition, []))[1].append((record.path, value))
    if base.level == 3:
        definition = resource_def(resolve, base.resource())
        values = instances.get(base.parts[1], {}).get(base.parts[2], (definition, []))[1]
        return _resource_tlv(base.parts[2], definition, values)
    chunks = []
    for iid, resources in instances.items():
        body = b"".join(_resource_tlv(rid, d, vals) for rid, (d, vals) in resources.items())
        chunks.append(frame(OBJECT_INSTANCE, iid, body) if base.level == 1 else body)
    return b"".join(chunks)


def _resource_tlv(rid: int, definition: ResourceDef, values: list[tuple[Path, Value]]) -> bytes:
    if definition.multiple:
        body = b"".join(
            frame(RESOURCE_INSTANCE, path.parts[3], value_bytes(definition.type, value))
            for path, value in values
        )
        return frame(MULTIPLE_RESOURCE, rid, body)
    if len(values) != 1:
        raise NotAcceptable(f"single resource {rid} needs exactly one value, has {len(values)}")
    return frame(RESOURCE, rid, value_bytes(definition.type, values[0][1]))


# --- decoding --------------------------------------------------------------------------------------


def decode(payload: bytes, base: Path, resolve: TypeResolver) -> list[Record]:
    """Decode a TLV payload addressed to ``base``."""
    if base.level == 0:
        raise BadRequest("TLV cannot address the root")
    tlvs = parse(bytes(payload))
    out: list[Record] = []
    if base.level == 1:
        for tlv in tlvs:
            if tlv.kind == OBJECT_INSTANCE:
                _instance(Path(base.oid, tlv.ident), parse(tlv.value), resolve, out)
            else:
                _instance(Path(base.oid, MAX_ID), [tlv], resolve, out)
    elif base.level == 2:
        if tlvs and all(t.kind == OBJECT_INSTANCE for t in tlvs):
            for tlv in tlvs:
                if tlv.ident != base.iid:
                    raise BadRequest(f"object instance {tlv.ident} in a payload for {base}")
                _instance(base, parse(tlv.value), resolve, out)
        else:
            _instance(base, tlvs, resolve, out)
    elif base.level == 3:
        definition = resource_def(resolve, base.resource())
        if definition.multiple and tlvs and all(t.kind == RESOURCE_INSTANCE for t in tlvs):
            _resource_instances(base, tlvs, resolve, out)
        else:
            for tlv in tlvs:
                if tlv.ident != base.rid:
                    raise BadRequest(f"resource {tlv.ident} in a payload for {base}")
            _instance(base.parent, tlvs, resolve, out)
    else:
        for tlv in tlvs:
            if tlv.kind == MULTIPLE_RESOURCE and tlv.ident == base.rid:
                inner = parse(tlv.value)
            elif tlv.kind == RESOURCE_INSTANCE:
                inner = [tlv]
            else:
                raise BadRequest(f"unexpected TLV in a payload for {base}")
            for item in inner:
                if item.kind != RESOURCE_INSTANCE or item.ident != base.riid:
                    raise BadRequest(f"unexpected TLV in a payload for {base}")
            _resource_instances(base.parent, inner, resolve, out)
    if len({r.path for r in out}) != len(out):
        raise BadRequest("TLV payload gives a value twice")
    return out


def _instance(instance: Path, tlvs: list[Tlv], resolve: TypeResolver, out: list[Record]) -> None:
    for tlv in tlvs:
        path = instance.child(tlv.ident)
        if tlv.kind == RESOURCE:
            definition = resolve_for_decode(resolve, path)
            out.append(Record(path, parse_value(definition.type, tlv.value, path)))
        elif tlv.kind == MULTIPLE_RESOURCE:
            _resource_instances(path, parse(tlv.value), resolve, out)
        else:
            raise BadRequest(f"unexpected TLV type {tlv.kind} at {path}")


def _resource_instances(resource: Path, tlvs: list[Tlv], resolve: TypeResolver, out: list[Record]) -> None:
    definition = resource_def(resolve, resource)
    if not definition.multiple:
        raise BadRequest(f"{resource} is not a multiple-instance resource")
    for tlv in tlvs:
        if tlv.kind != RESOURCE_INSTANCE:
            raise BadRequest(f"unexpected TLV type {tlv.kind} inside {resource}")
        path = resource.child(tlv.ident)
        definition = resolve_for_decode(resolve, path)
        out.append(Record(path, parse_value(definition.type, tlv.value, path)))
