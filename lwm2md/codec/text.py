"""text/plain (0): the value of one resource or resource instance as UTF-8 text.

Representations (LwM2M 1.1+ Appendix C): String/Corelnk as is; Integer, Unsigned
and Time as decimal integers; Float as a decimal number (written without an
exponent); Boolean as ``0``/``1``; Opaque as standard Base64 with padding;
Objlnk as ``oid:iid``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Final

from lwm2md.codec._values import (
    INTEGER_TYPES,
    TEXT_TYPES,
    TypeResolver,
    b64_std,
    b64decode,
    encode_checked,
    finite_or_not_acceptable,
    format_float_text,
    format_objlnk,
    int_value,
    parse_objlnk,
    single_record,
    single_value_target,
)
from lwm2md.errors import BadRequest
from lwm2md.model.path import Path
from lwm2md.model.types import ObjLnk, Record, ResourceType, Value

_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_NUMBER_TEXT: Final = 400
"""Longest integer/float text accepted (beyond any 64-bit integer or double written out)."""


def format_value(rtype: ResourceType, value: Value) -> str:
    """The text form of a checked value."""
    if isinstance(value, ObjLnk):
        return format_objlnk(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return b64_std(value)
    if isinstance(value, float):
        return format_float_text(finite_or_not_acceptable(value, "text/plain"))
    return str(value)


def parse_value(rtype: ResourceType, text: str, path: Path) -> Value:
    """Parse the text form of a ``rtype`` value; BadRequest if it is not one."""
    if rtype in TEXT_TYPES:
        return text
    if rtype in INTEGER_TYPES:
        if len(text) > _MAX_NUMBER_TEXT or not _INT_RE.fullmatch(text):
            raise BadRequest(f"{text[:40]!r} is not an integer for {path}")
        return int_value(rtype, int(text), path)
    if rtype is ResourceType.FLOAT:
        if len(text) > _MAX_NUMBER_TEXT or not _FLOAT_RE.fullmatch(text):
            raise BadRequest(f"{text[:40]!r} is not a number for {path}")
        value = float(text)
        if not math.isfinite(value):
            raise BadRequest(f"{text[:40]!r} is out of range for {path}")
        return value
    if rtype is ResourceType.BOOLEAN:
        if text not in ("0", "1"):
            raise BadRequest(f"{text[:40]!r} is not a boolean (0 or 1) for {path}")
        return text == "1"
    if rtype is ResourceType.OPAQUE:
        return b64decode(text, urlsafe=False, path=path)
    if rtype is ResourceType.OBJLNK:
        return parse_objlnk(text, path)
    raise BadRequest(f"{path} carries no value")


def encode(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode the single value at ``base`` (NotAcceptable for any other record set)."""
    record = single_record(base, records)
    ((_, definition, value),) = encode_checked(base, [record], resolve)
    return format_value(definition.type, value).encode("utf-8")


def decode(payload: bytes, base: Path, resolve: TypeResolver) -> list[Record]:
    """Decode the text value of the resource or resource instance ``base``."""
    definition = single_value_target(base, resolve)
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("text/plain payload is not valid UTF-8") from exc
    return [Record(base, parse_value(definition.type, text, base))]
