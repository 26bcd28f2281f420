"""Helpers shared by the codecs: resource lookup, value checks and conversions.

Decoding helpers raise ``BadRequest`` (value does not fit the resource) or
``NotFound`` (unknown resource). Encoding helpers raise ``InternalError``: a
record handed to an encoder that does not match its definition is a bug in the
caller, not something the peer asked for.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final

from lwm2md.errors import BadRequest, InternalError, NotAcceptable, NotFound
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import ObjLnk, Record, ResourceDef, ResourceType, Value

TypeResolver = Callable[[Path], ResourceDef | None]
"""Resource-level path (oid, iid, rid) -> its definition, or None if unknown."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1

INTEGER_TYPES: Final = frozenset({ResourceType.INTEGER, ResourceType.UNSIGNED, ResourceType.TIME})
TEXT_TYPES: Final = frozenset({ResourceType.STRING, ResourceType.CORELNK})

_OBJLNK_RE: Final = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
_NULL_OBJLNK_HEX: Final = "FFFF:FFFF"


# --- resource lookup -------------------------------------------------------------------------------


def resource_def(resolve: TypeResolver, resource: Path) -> ResourceDef:
    """The definition of the resource-level path ``resource``; NotFound if unknown."""
    definition = resolve(resource)
    if definition is None:
        raise NotFound(f"no resource {resource}")
    return definition


def resolve_for_decode(resolve: TypeResolver, path: Path) -> ResourceDef:
    """Definition of the resource at ``path`` (level 3 or 4) for a decoded value.

    NotFound if the resolver does not know it; BadRequest if the path's level does
    not match the definition (a riid on a single resource or none on a multiple one).
    """
    if path.level < 3:
        raise BadRequest(f"value at {path}, which is not a resource")
    definition = resource_def(resolve, path.resource())
    if definition.multiple != (path.level == 4):
        kind = "multiple" if definition.multiple else "single"
        raise BadRequest(f"{path} does not address a value of the {kind}-instance resource")
    if definition.type is ResourceType.NONE:
        raise BadRequest(f"{path} is executable and carries no value")
    return definition


def resolve_for_encode(resolve: TypeResolver, path: Path) -> ResourceDef:
    """Definition of the resource at ``path`` for a value to encode (InternalError on mismatch)."""
    if path.level < 3:
        raise InternalError(f"record at {path}, which is not a resource")
    definition = resource_def(resolve, path.resource())
    if definition.multiple != (path.level == 4):
        raise InternalError(f"record path {path} does not fit the resource definition")
    return definition


def check_under(base: Path, path: Path) -> None:
    """BadRequest unless ``path`` is ``base`` or below it."""
    if not base.contains(path):
        raise BadRequest(f"{path} is outside the target {base}")


def encode_checked(
    base: Path, records: Sequence[Record], resolve: TypeResolver
) -> list[tuple[Record, ResourceDef, Value]]:
    """Validate records for encoding: under ``base``, known, typed; return them with definitions."""
    out: list[tuple[Record, ResourceDef, Value]] = []
    for record in records:
        if not base.contains(record.path):
            raise InternalError(f"record {record.path} is outside the target {base}")
        definition = resolve_for_encode(resolve, record.path)
        out.append((record, definition, check_value(definition.type, record.value, record.path)))
    return out


def reject_duplicates(records: Sequence[Record]) -> None:
    """NotAcceptable if two records share a path (formats without timestamps cannot carry that)."""
    seen: set[Path] = set()
    for record in records:
        if record.path in seen:
            raise NotAcceptable(f"several values for {record.path} need a format with timestamps")
        seen.add(record.path)


def single_record(base: Path, records: Sequence[Record]) -> Record:
    """The one record a single-value format can carry, else NotAcceptable."""
    if base.level < 3:
        raise NotAcceptable(f"{base} is not a single resource or resource instance")
    if len(records) != 1:
        raise NotAcceptable(f"{base} has {len(records)} values; the format carries exactly one")
    if records[0].path != base:
        raise NotAcceptable(f"value at {records[0].path}, not at the target {base}")
    return records[0]


def single_value_target(base: Path, resolve: TypeResolver) -> ResourceDef:
    """Definition for decoding a single-value payload addressed to ``base``."""
    if base.level < 3:
        raise BadRequest(f"a single value cannot be written to {base}")
    return resolve_for_decode(resolve, base)


# --- values: encoding side -------------------------------------------------------------------------


def check_value(rtype: ResourceType, value: object, path: Path) -> Value:
    """Return ``value`` as the Python type of ``rtype``; InternalError if it does not fit."""
    ok: bool
    if rtype in TEXT_TYPES:
        ok = isinstance(value, str)
    elif rtype is ResourceType.UNSIGNED:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT64_MAX
    elif rtype in INTEGER_TYPES:
        ok = isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    elif rtype is ResourceType.FLOAT:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                ok = False
        else:
            ok = isinstance(value, float)
    elif rtype is ResourceType.BOOLEAN:
        ok = isinstance(value, bool)
    elif rtype is ResourceType.OPAQUE:
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        ok = isinstance(value, bytes)
    elif rtype is ResourceType.OBJLNK:
        ok = isinstance(value, ObjLnk) and 0 <= value.oid <= MAX_ID and 0 <= value.iid <= MAX_ID
    else:
        ok = False
    if not ok:
        raise InternalError(f"value {value!r} at {path} does not fit type {rtype.value}")
    assert isinstance(value, (str, int, float, bool, bytes, ObjLnk))
    return value


def format_objlnk(link: ObjLnk) -> str:
    """``oid:iid`` in decimal."""
    return f"{link.oid}:{link.iid}"


def finite_or_not_acceptable(value: float, fmt_name: str) -> float:
    """``value`` if finite; NotAcceptable otherwise (textual formats have no NaN/Infinity)."""
    if not math.isfinite(value):
        raise NotAcceptable(f"{fmt_name} cannot carry the float {value!r}")
    return value


def format_float_text(value: float) -> str:
    """Shortest round-tripping decimal text of a finite float, without an exponent."""
    return format(Decimal(repr(value)), "f")


def json_number(value: float) -> int | float:
    """A number for JSON output: an int when the float is integral and exact, else the float."""
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --- values: decoding side -------------------------------------------------------------------------


def int_value(rtype: ResourceType, raw: object, path: Path) -> int:
    """An integer for Integer/Unsigned/Time from an int or integral float; BadRequest otherwise."""
    if isinstance(raw, bool):
        raise BadRequest(f"boolean given for {rtype.value} resource {path}")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise BadRequest(f"{raw!r} is not an integer for {path}")
        raw = int(raw)
    if not isinstance(raw, int):
        raise BadRequest(f"{type(raw).__name__} given for {rtype.value} resource {path}")
    low, high = (0, UINT64_MAX) if rtype is ResourceType.UNSIGNED else (INT64_MIN, INT64_MAX)
    if not low <= raw <= high:
        raise BadRequest(f"{raw} is out of range for {rtype.value} resource {path}")
    return raw


def float_value(raw: object, path: Path) -> float:
    """A float from an int or float; BadRequest otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BadRequest(f"{type(raw).__name__} given for Float resource {path}")
    try:
        return float(raw)
    except OverflowError as exc:
        raise BadRequest(f"{raw} is out of range for Float resource {path}") from exc


def parse_objlnk(text: str, path: Path) -> ObjLnk:
    """Parse ``oid:iid`` (decimal, each 0..65535); ``FFFF:FFFF`` is read as the null link."""
    if text.upper() == _NULL_OBJLNK_HEX:
        return ObjLnk(MAX_ID, MAX_ID)
    match = _OBJLNK_RE.fullmatch(text)
    if match is None:
        raise BadRequest(f"{text!r} is not an object link for {path}")
    oid, iid = int(match.group(1)), int(match.group(2))
    if oid > MAX_ID or iid > MAX_ID:
        raise BadRequest(f"object link {text!r} out of range for {path}")
    return ObjLnk(oid, iid)


def b64decode(text: str, *, urlsafe: bool, path: Path) -> bytes:
    """Base64 (standard or URL-safe alphabet, padding optional); BadRequest if malformed."""
    if urlsafe:
        text = text.replace("-", "+").replace("_", "/")
    if not text.isascii():
        raise BadRequest(f"invalid base64 for {path}")
    text = text.rstrip("=")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"invalid base64 for {path}") from exc


def b64url_nopad(data: bytes) -> str:
    """Base64url without padding (SenML ``vd``)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_std(data: bytes) -> str:
    """Standard Base64 with padding (text/plain, OMA JSON)."""
    return base64.b64encode(data).decode("ascii")


def time_value(raw: object, what: str) -> float:
    """A finite number used as a (base) time; BadRequest otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BadRequest(f"{what} is not a number")
    try:
        value = float(raw)
    except OverflowError as exc:
        raise BadRequest(f"{what} is out of range") from exc
    if not math.isfinite(value):
        raise BadRequest(f"{what} is not finite")
    return value


RELATIVE_TIME_LIMIT: Final = 2**28
"""RFC 8428 section 4.5.3: resolved times below 2**28 are relative to now."""


def absolute_time(resolved: float, now: Callable[[], float]) -> float:
    """Turn a resolved SenML time into absolute Unix time (values < 2**28 are relative to now)."""
    return float(now()) + resolved if resolved < RELATIVE_TIME_LIMIT else resolved


# --- JSON ------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise BadRequest(f"JSON constant {name} is not allowed")


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequest(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def load_json(payload: bytes) -> object:
    """Parse a UTF-8 JSON payload strictly (no NaN/Infinity, no duplicate keys); BadRequest if invalid."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("JSON payload is not valid UTF-8") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_object_without_duplicates)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc


def dump_json(obj: object) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


# --- names -----------------------------------------------------------------------------------------


def name_to_path(name: str, base: Path | None) -> Path:
    """Path of a resolved SenML/JSON name: absolute if it starts with ``/``, else relative to ``base``."""
    if name.startswith("/"):
        return Path.parse(name)
    if base is None:
        raise BadRequest(f"name {name!r} is not an absolute path")
    return Path.parse(f"{base}/{name}") if name else base


def name_base(base: Path, paths: Sequence[Path]) -> Path:
    """The prefix names are written relative to: ``base``, or its parent if a record sits at ``base``."""
    if base.level > 0 and any(p == base for p in paths):
        return base.parent
    return base


def relative_name(prefix: Path, path: Path) -> str:
    """``path`` relative to ``prefix`` (which contains it) as ``a/b``."""
    return "/".join(str(p) for p in path.parts[prefix.level :])


def choose_base_time(times: Sequence[float | None]) -> float | None:
    """A base time when every record is timed and each offset from the first is exact, else None."""
    if not times or any(t is None for t in times):
        return None
    first = times[0]
    assert first is not None
    for t in times:
        assert t is not None
        if not math.isfinite(t) or first + (t - first) != t:
            return None
    return first
