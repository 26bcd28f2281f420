"""OMA LwM2M JSON (11543), the LwM2M 1.0 JSON format.

``{"bn": base name, "bt": base time, "e": [{"n": name, value, "t": time}]}``
where the value is ``v`` (Integer, Unsigned, Time, Float), ``sv`` (String,
Corelnk, and Opaque as standard Base64), ``bv`` (Boolean) or ``ov`` (Objlnk as
``"oid:iid"``). Names resolve as ``bn`` + ``n`` like SenML (a name without a
leading ``/`` is relative to the target); times as ``bt`` + ``t``, values below
2**28 being relative to now.

Encoding writes ``bn`` as the target (or its parent when a value sits at the
target itself; ``/`` at the root) followed by ``/`` and names relative to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lwm2md.codec._values import (
    INTEGER_TYPES,
    TEXT_TYPES,
    TypeResolver,
    absolute_time,
    b64_std,
    b64decode,
    check_under,
    choose_base_time,
    dump_json,
    encode_checked,
    finite_or_not_acceptable,
    float_value,
    format_objlnk,
    int_value,
    json_number,
    load_json,
    name_base,
    name_to_path,
    parse_objlnk,
    relative_name,
    resolve_for_decode,
    time_value,
)
from lwm2md.errors import BadRequest
from lwm2md.model.path import Path
from lwm2md.model.types import ObjLnk, Record, ResourceType, Value

_VALUE_FIELDS = ("v", "sv", "bv", "ov")


def _field_for(rtype: ResourceType) -> str:
    if rtype in TEXT_TYPES or rtype is ResourceType.OPAQUE:
        return "sv"
    if rtype in INTEGER_TYPES or rtype is ResourceType.FLOAT:
        return "v"
    if rtype is ResourceType.BOOLEAN:
        return "bv"
    return "ov"


def _raw(value: Value) -> object:
    if isinstance(value, ObjLnk):
        return format_objlnk(value)
    if isinstance(value, bytes):
        return b64_std(value)
    if isinstance(value, float):
        return finite_or_not_acceptable(value, "OMA JSON")
    return value


def _typed(rtype: ResourceType, field: str, raw: object, path: Path) -> Value:
    if field != _field_for(rtype):
        raise BadRequest(f"JSON {field} does not fit {rtype.value} resource {path}")
    if rtype in INTEGER_TYPES:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise BadRequest(f"JSON v at {path} is not a number")
        return int_value(rtype, raw, path)
    if rtype is ResourceType.FLOAT:
        return float_value(raw, path)
    if rtype is ResourceType.BOOLEAN:
        if not isinstance(raw, bool):
            raise BadRequest(f"JSON bv at {path} is not a boolean")
        return raw
    if not isinstance(raw, str):
        raise BadRequest(f"JSON {field} at {path} is not a string")
    if rtype is ResourceType.OPAQUE:
        return b64decode(raw, urlsafe=False, path=path)
    if rtype is ResourceType.OBJLNK:
        return parse_objlnk(raw, path)
    return raw


def encode(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode ``records`` under ``base`` as OMA JSON."""
    checked = encode_checked(base, records, resolve)
    prefix = name_base(base, [r.path for r in records])
    base_time = choose_base_time([r.time for r in records])
    entries: list[dict[str, object]] = []
    for record, definition, value in checked:
        entry: dict[str, object] = {
            "n": relative_name(prefix, record.path),
            _field_for(definition.type): _raw(value),
        }
        if record.time is not None:
            offset = record.time if base_time is None else record.time - base_time
            if base_time is None or offset != 0:
                entry["t"] = json_number(finite_or_not_acceptable(offset, "OMA JSON"))
        entries.append(entry)
    document: dict[str, object] = {"bn": "/" if prefix.level == 0 else f"{prefix}/"}
    if base_time is not None:
        document["bt"] = json_number(base_time)
    document["e"] = entries
    return dump_json(document)


def decode(
    payload: bytes, base: Path, resolve: TypeResolver, now: Callable[[], float] = time.time
) -> list[Record]:
    """Decode an OMA JSON document whose names lie under ``base``."""
    document = load_json(payload)
    if not isinstance(document, dict) or not isinstance(document.get("e"), list):
        raise BadRequest("OMA JSON is not an object with an 'e' array")
    base_name = document.get("bn", "")
    if not isinstance(base_name, str):
        raise BadRequest("OMA JSON bn is not a string")
    base_time = time_value(document["bt"], "OMA JSON bt") if "bt" in document else None
    entries = document["e"]
    assert isinstance(entries, list)
    out: list[Record] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRequest("OMA JSON entry is not an object")
        name = entry.get("n", "")
        if not isinstance(name, str):
            raise BadRequest("OMA JSON n is not a string")
        path = name_to_path(base_name + name, base)
        check_under(base, path)
        fields = [f for f in _VALUE_FIELDS if f in entry]
        if len(fields) != 1:
            raise BadRequest(f"OMA JSON entry for {path} needs exactly one value, has {len(fields)}")
        definition = resolve_for_decode(resolve, path)
        value = _typed(definition.type, fields[0], entry[fields[0]], path)
        stamp: float | None = None
        if "t" in entry:
            stamp = time_value(entry["t"], "OMA JSON t") + (base_time or 0.0)
        elif base_time is not None:
            stamp = base_time
        out.append(Record(path, value, absolute_time(stamp, now) if stamp is not None else None))
    return out
