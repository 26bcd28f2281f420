"""SenML JSON (110) and SenML CBOR (112) per RFC 8428 with the LwM2M 1.1+ rules.

A pack is an array of records. Names resolve as base name ``bn`` + name ``n``
and must form an LwM2M path (a name without a leading ``/`` is taken relative to
the request target). Values: ``v`` numbers (Integer, Unsigned, Time, Float),
``vs`` strings (String, Corelnk), ``vb`` booleans, ``vd`` Opaque (base64url
without padding in JSON, a byte string in CBOR) and ``vlo`` object links as
``"oid:iid"``. Times resolve as ``bt`` + ``t``; a result below 2**28 is
relative to the current time (RFC 8428 section 4.5.3).

CBOR uses the RFC 8428 integer labels (bn -2, bt -3, n 0, v 2, vs 3, vb 4, t 6,
vd 8, ...) and the text label ``"vlo"``. The decoder also accepts text labels.

Encoding writes ``bn`` on the first record as the target (or its parent when a
value sits at the target itself) followed by ``/``, and names relative to it; at
the root there is no ``bn`` and names are full paths. Timestamps use ``bt`` when
every record has one, else an absolute ``t`` per timed record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from lwm2md.codec import cbor
from lwm2md.codec._values import (
    INTEGER_TYPES,
    TEXT_TYPES,
    TypeResolver,
    absolute_time,
    b64decode,
    b64url_nopad,
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

CBOR_LABELS: Final[dict[int, str]] = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
"""RFC 8428 section 6: CBOR integer label -> JSON label."""

_LABEL_TO_CBOR: Final = {name: label for label, name in CBOR_LABELS.items()}
_VALUE_FIELDS: Final = ("v", "vs", "vb", "vd", "vlo")


@dataclass(frozen=True)
class Entry:
    """One resolved SenML record: full name, value field and raw value, resolved time.

    ``field`` is None for a record without a value; ``time`` is ``bt + t`` as written
    (not yet made absolute), None when the record carries neither.
    """

    name: str
    field: str | None
    value: object
    time: float | None


# --- packs -----------------------------------------------------------------------------------------


def parse_json_pack(payload: bytes) -> list[Entry]:
    """Parse and resolve a SenML JSON pack; BadRequest if malformed."""
    pack = load_json(payload)
    if not isinstance(pack, list):
        raise BadRequest("SenML JSON pack is not an array")
    records: list[dict[str, object]] = []
    for item in pack:
        if not isinstance(item, dict):
            raise BadRequest("SenML record is not an object")
        record = dict(item)
        if "vd" in record:
            vd = record["vd"]
            if not isinstance(vd, str):
                raise BadRequest("SenML vd is not a string")
            record["vd"] = b64decode(vd, urlsafe=True, path=Path())
        records.append(record)
    return _resolve(records)


def parse_cbor_pack(payload: bytes) -> list[Entry]:
    """Parse and resolve a SenML CBOR pack; BadRequest if malformed."""
    pack = cbor.loads(payload)
    if not isinstance(pack, list):
        raise BadRequest("SenML CBOR pack is not an array")
    records: list[dict[str, object]] = []
    for item in pack:
        if not isinstance(item, dict):
            raise BadRequest("SenML record is not a map")
        record: dict[str, object] = {}
        for key, value in item.items():
            if isinstance(key, int) and not isinstance(key, bool) and key in CBOR_LABELS:
                label = CBOR_LABELS[key]
            elif isinstance(key, str):
                label = key
            else:
                if isinstance(key, int) and not isinstance(key, bool) and key < 0:
                    raise BadRequest(f"unknown SenML base label {key}")
                continue  # unknown regular labels are ignored (RFC 8428 section 12.2)
            if label in record:
                raise BadRequest(f"SenML label {label} given twice")
            record[label] = value
        if "vd" in record and not isinstance(record["vd"], bytes):
            raise BadRequest("SenML vd is not a byte string")
        records.append(record)
    return _resolve(records)


def _resolve(records: list[dict[str, object]]) -> list[Entry]:
    base_name = ""
    base_time: float | None = None
    base_value: float | None = None
    out: list[Entry] = []
    for record in records:
        for label in record:
            if label.endswith("_"):
                raise BadRequest(f"SenML must-understand label {label!r} is not supported")
        if "bn" in record:
            bn = record["bn"]
            if not isinstance(bn, str):
                raise BadRequest("SenML bn is not a string")
            base_name = bn
        if "bt" in record:
            base_time = time_value(record["bt"], "SenML bt")
        if "bv" in record:
            base_value = time_value(record["bv"], "SenML bv")
        name = record.get("n", "")
        if not isinstance(name, str):
            raise BadRequest("SenML n is not a string")
        entry_time: float | None = None
        if "t" in record:
            entry_time = time_value(record["t"], "SenML t") + (base_time or 0.0)
        elif base_time is not None:
            entry_time = base_time
        fields = [f for f in _VALUE_FIELDS if f in record]
        if len(fields) > 1:
            raise BadRequest(f"SenML record has several values: {fields}")
        field = fields[0] if fields else None
        value = record.get(field) if field is not None else None
        if field == "v":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest("SenML v is not a number")
            if base_value is not None:
                try:
                    value = value + base_value
                except OverflowError as exc:
                    raise BadRequest("SenML v is out of range") from exc
        elif field in ("vs", "vlo") and not isinstance(value, str):
            raise BadRequest(f"SenML {field} is not a string")
        elif field == "vb" and not isinstance(value, bool):
            raise BadRequest("SenML vb is not a boolean")
        out.append(Entry(base_name + name, field, value, entry_time))
    return out


# --- LwM2M values ----------------------------------------------------------------------------------


def _field_for(rtype: ResourceType) -> str:
    if rtype in TEXT_TYPES:
        return "vs"
    if rtype in INTEGER_TYPES or rtype is ResourceType.FLOAT:
        return "v"
    if rtype is ResourceType.BOOLEAN:
        return "vb"
    if rtype is ResourceType.OPAQUE:
        return "vd"
    return "vlo"


def _typed(rtype: ResourceType, entry: Entry, path: Path) -> Value:
    expected = _field_for(rtype)
    if entry.field != expected:
        raise BadRequest(f"SenML {entry.field} does not fit {rtype.value} resource {path}")
    raw = entry.value
    if rtype in INTEGER_TYPES:
        return int_value(rtype, raw, path)
    if rtype is ResourceType.FLOAT:
        return float_value(raw, path)
    if rtype is ResourceType.OBJLNK:
        assert isinstance(raw, str)
        return parse_objlnk(raw, path)
    assert isinstance(raw, (str, bool, bytes))
    return raw


def _records(
    entries: list[Entry], base: Path, resolve: TypeResolver, now: Callable[[], float]
) -> list[Record]:
    out: list[Record] = []
    for entry in entries:
        path = name_to_path(entry.name, base)
        check_under(base, path)
        if entry.field is None:
            raise BadRequest(f"SenML record for {path} has no value")
        definition = resolve_for_decode(resolve, path)
        stamp = absolute_time(entry.time, now) if entry.time is not None else None
        out.append(Record(path, _typed(definition.type, entry, path), stamp))
    return out


def _paths(entries: list[Entry]) -> list[Path]:
    out: list[Path] = []
    for entry in entries:
        if entry.field is not None:
            raise BadRequest(f"SenML record {entry.name!r} carries a value in a list of paths")
        out.append(name_to_path(entry.name, None))
    return out


def _plan(
    base: Path, records: Sequence[Record], resolve: TypeResolver, *, as_json: bool
) -> list[dict[str, object]]:
    """Records as SenML records keyed by JSON label, in output order."""
    checked = encode_checked(base, records, resolve)
    prefix = name_base(base, [r.path for r in records])
    base_time = choose_base_time([r.time for r in records])
    out: list[dict[str, object]] = []
    for index, (record, definition, value) in enumerate(checked):
        entry: dict[str, object] = {}
        if index == 0 and prefix.level > 0:
            entry["bn"] = f"{prefix}/"
        if index == 0 and base_time is not None:
            entry["bt"] = _number(base_time)
        entry["n"] = relative_name(prefix, record.path) if prefix.level > 0 else str(record.path)
        field = _field_for(definition.type)
        entry[field] = _raw(value, as_json)
        if record.time is not None:
            offset = record.time if base_time is None else record.time - base_time
            if base_time is None or offset != 0:
                entry["t"] = _number(offset)
        out.append(entry)
    return out


def _number(value: float) -> int | float:
    """A time for output: finite (NotAcceptable otherwise), an int when exactly integral."""
    return json_number(finite_or_not_acceptable(value, "SenML time"))


def _raw(value: Value, as_json: bool) -> object:
    if isinstance(value, ObjLnk):
        return format_objlnk(value)
    if isinstance(value, bytes):
        return b64url_nopad(value) if as_json else value
    if isinstance(value, float):
        return finite_or_not_acceptable(value, "SenML JSON") if as_json else value
    return value


# --- format entry points ---------------------------------------------------------------------------


def encode_json(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode ``records`` under ``base`` as a SenML JSON pack."""
    return dump_json(_plan(base, records, resolve, as_json=True))


def encode_cbor(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode ``records`` under ``base`` as a SenML CBOR pack."""
    pack = [
        {_LABEL_TO_CBOR.get(k, k): v for k, v in entry.items()}
        for entry in _plan(base, records, resolve, as_json=False)
    ]
    return cbor.dumps(pack)


def decode_json(
    payload: bytes, base: Path, resolve: TypeResolver, now: Callable[[], float] = time.time
) -> list[Record]:
    """Decode a SenML JSON pack whose names lie under ``base``."""
    return _records(parse_json_pack(payload), base, resolve, now)


def decode_cbor(
    payload: bytes, base: Path, resolve: TypeResolver, now: Callable[[], float] = time.time
) -> list[Record]:
    """Decode a SenML CBOR pack whose names lie under ``base``."""
    return _records(parse_cbor_pack(payload), base, resolve, now)


def decode_paths_json(payload: bytes) -> list[Path]:
    """Paths of a SenML JSON pack of records with names and no values (Read/Observe-Composite)."""
    return _paths(parse_json_pack(payload))


def decode_paths_cbor(payload: bytes) -> list[Path]:
    """Paths of a SenML CBOR pack of records with names and no values."""
    return _paths(parse_cbor_pack(payload))


def encode_paths_json(paths: Sequence[Path]) -> bytes:
    """A SenML JSON pack naming each path (full names, no values)."""
    return dump_json([{"n": str(p)} for p in paths])


def encode_paths_cbor(paths: Sequence[Path]) -> bytes:
    """A SenML CBOR pack naming each path (full names, no values)."""
    return cbor.dumps([{0: str(p)} for p in paths])
