"""CBOR (RFC 8949) primitives, and the application/cbor (60) single-value format.

Python mapping: unsigned/negative integers <-> ``int``, byte strings <-> ``bytes``,
text strings <-> ``str``, arrays -> ``list`` (``list``/``tuple`` encode as arrays),
maps <-> ``dict``, tags <-> :class:`Tag`, ``false``/``true``/``null`` <-> ``False``/
``True``/``None``, ``undefined`` <-> :data:`UNDEFINED`, other simple values <->
:class:`Simple`, floats <-> ``float``.

Decoding accepts definite and indefinite lengths and half, single and double
floats. Hostile input cannot exhaust memory or the stack: nesting is bounded by
``max_depth`` and no declared length is trusted beyond the bytes that remain.
Any malformed input raises :class:`CborError` (a ``BadRequest``).

Map keys that are arrays decode to tuples (LwM2M CBOR uses array keys); a map
whose keys are not hashable, or that repeats a key, is rejected.

Encoding writes definite lengths, the shortest integer heads and each float in
the shortest of half/single/double precision that represents it exactly.
"""

from __future__ import annotations

import math
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
    format_objlnk,
    int_value,
    parse_objlnk,
    single_record,
    single_value_target,
)
from lwm2md.errors import BadRequest
from lwm2md.model.path import Path
from lwm2md.model.types import ObjLnk, Record, ResourceType, Value

DEFAULT_MAX_DEPTH: Final = 32
"""Default nesting limit of :func:`loads` (arrays, maps and tags each add a level)."""


class CborError(BadRequest):
    """Malformed or unsupported CBOR input."""


@dataclass(frozen=True)
class Tag:
    """A tagged data item (major type 6)."""

    tag: int
    value: object


@dataclass(frozen=True)
class Simple:
    """A simple value other than false, true, null and undefined."""

    value: int


class _Undefined:
    """The CBOR ``undefined`` simple value (a singleton)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()

_BREAK: Final = object()


def loads(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> object:
    """Decode exactly one CBOR data item from ``data``; trailing bytes are an error."""
    decoder = _Decoder(bytes(data), max_depth)
    item = decoder.item(0)
    if item is _BREAK:
        raise CborError("unexpected break")
    if decoder.pos != len(decoder.data):
        raise CborError(f"{len(decoder.data) - decoder.pos} trailing bytes after CBOR item")
    return item


class _Decoder:
    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise CborError("CBOR item runs past the end of the input")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def head(self) -> tuple[int, int, int | None]:
        """Read an initial byte and its argument: (major, info, argument or None if indefinite)."""
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info == 24:
            return major, info, self.take(1)[0]
        if info == 25:
            return major, info, int.from_bytes(self.take(2), "big")
        if info == 26:
            return major, info, int.from_bytes(self.take(4), "big")
        if info == 27:
            return major, info, int.from_bytes(self.take(8), "big")
        if info == 31 and major in (2, 3, 4, 5, 7):
            return major, info, None
        raise CborError(f"reserved additional information {info} for major type {major}")

    def item(self, depth: int) -> object:
        if depth > self.max_depth:
            raise CborError("CBOR nesting too deep")
        start = self.pos
        major, info, arg = self.head()
        if major == 0:
            assert arg is not None
            return arg
        if major == 1:
            assert arg is not None
            return -1 - arg
        if major in (2, 3):
            raw = self.string(major, arg)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CborError("text string is not valid UTF-8") from exc
        if major == 4:
            return self.array(arg, depth)
        if major == 5:
            return self.map(arg, depth)
        if major == 6:
            assert arg is not None
            value = self.item(depth + 1)
            if value is _BREAK:
                raise CborError("tag without content")
            return Tag(arg, value)
        return self.simple(info, arg, start)

    def string(self, major: int, arg: int | None) -> bytes:
        if arg is not None:
            return self.take(arg)
        chunks: list[bytes] = []
        while True:
            if self.remaining() < 1:
                raise CborError("unterminated indefinite-length string")
            if self.data[self.pos] == 0xFF:
                self.pos += 1
                return b"".join(chunks)
            chunk_major, _, chunk_arg = self.head()
            if chunk_major != major or chunk_arg is None:
                raise CborError("indefinite-length string chunk of the wrong type")
            chunks.append(self.take(chunk_arg))

    def array(self, arg: int | None, depth: int) -> list[object]:
        items: list[object] = []
        if arg is None:
            while True:
                item = self.item(depth + 1)
                if item is _BREAK:
                    return items
                items.append(item)
        if arg > self.remaining():
            raise CborError("array longer than the remaining input")
        for _ in range(arg):
            item = self.item(depth + 1)
            if item is _BREAK:
                raise CborError("break inside a definite-length array")
            items.append(item)
        return items

    def map(self, arg: int | None, depth: int) -> dict[object, object]:
        result: dict[object, object] = {}
        if arg is not None and arg * 2 > self.remaining():
            raise CborError("map longer than the remaining input")
        count = 0
        while arg is None or count < arg:
            key = self.item(depth + 1)
            if key is _BREAK:
                if arg is None:
                    return result
                raise CborError("break inside a definite-length map")
            value = self.item(depth + 1)
            if value is _BREAK:
                raise CborError("map key without a value")
            hashable = _freeze(key)
            if hashable in result:
                raise CborError(f"duplicate map key {hashable!r}")
            result[hashable] = value
            count += 1
        return result

    def simple(self, info: int, arg: int | None, start: int) -> object:
        if arg is None:
            return _BREAK
        if info == 25:
            return float(struct.unpack(">e", self.data[start + 1 : start + 3])[0])
        if info == 26:
            return float(struct.unpack(">f", self.data[start + 1 : start + 5])[0])
        if info == 27:
            return float(struct.unpack(">d", self.data[start + 1 : start + 9])[0])
        if info == 24 and arg < 32:
            raise CborError("two-byte encoding of a one-byte simple value")
        if arg == 20:
            return False
        if arg == 21:
            return True
        if arg == 22:
            return None
        if arg == 23:
            return UNDEFINED
        return Simple(arg)


def _freeze(key: object) -> object:
    """Make a decoded map key hashable (arrays become tuples) or reject it."""
    if isinstance(key, list):
        return tuple(_freeze(k) for k in key)
    if isinstance(key, dict):
        raise CborError("a map cannot be a map key")
    if isinstance(key, Tag):
        return Tag(key.tag, _freeze(key.value))
    if isinstance(key, float) and math.isnan(key):
        raise CborError("NaN cannot be a map key")
    return key


def dumps(obj: object) -> bytes:
    """Encode ``obj`` as CBOR; raise TypeError/ValueError for values CBOR cannot carry."""
    out = bytearray()
    _encode(obj, out, 0)
    return bytes(out)


def _head(major: int, arg: int, out: bytearray) -> None:
    if arg < 24:
        out.append(major << 5 | arg)
    elif arg < 0x100:
        out += bytes((major << 5 | 24, arg))
    elif arg < 0x10000:
        out.append(major << 5 | 25)
        out += arg.to_bytes(2, "big")
    elif arg < 0x100000000:
        out.append(major << 5 | 26)
        out += arg.to_bytes(4, "big")
    elif arg < 0x10000000000000000:
        out.append(major << 5 | 27)
        out += arg.to_bytes(8, "big")
    else:
        raise ValueError(f"integer {arg} does not fit a CBOR head")


def encode_float(value: float) -> bytes:
    """The shortest exact CBOR encoding of ``value`` (NaN is the canonical half 0x7E00)."""
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    for fmt, initial in ((">e", 0xF9), (">f", 0xFA)):
        try:
            packed = struct.pack(fmt, value)
        except OverflowError:
            continue
        if struct.unpack(fmt, packed)[0] == value:
            return bytes((initial,)) + packed
    return b"\xfb" + struct.pack(">d", value)


def _encode(obj: object, out: bytearray, depth: int) -> None:
    if depth > 1000:
        raise ValueError("object nested too deeply to encode")
    if obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif obj is None:
        out.append(0xF6)
    elif obj is UNDEFINED:
        out.append(0xF7)
    elif isinstance(obj, int):
        if obj >= 0:
            _head(0, obj, out)
        else:
            _head(1, -1 - obj, out)
    elif isinstance(obj, float):
        out += encode_float(obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        _head(2, len(raw), out)
        out += raw
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(obj, (list, tuple)):
        _head(4, len(obj), out)
        for item in obj:
            _encode(item, out, depth + 1)
    elif isinstance(obj, dict):
        _head(5, len(obj), out)
        for key, value in obj.items():
            _encode(key, out, depth + 1)
            _encode(value, out, depth + 1)
    elif isinstance(obj, Tag):
        _head(6, obj.tag, out)
        _encode(obj.value, out, depth + 1)
    elif isinstance(obj, Simple):
        if 20 <= obj.value < 32 or not 0 <= obj.value < 256:
            raise ValueError(f"simple value {obj.value} cannot be encoded")
        _head(7, obj.value, out)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as CBOR")


# --- application/cbor (60): one resource or resource-instance value ------------------------------


def item_from_value(rtype: ResourceType, value: Value) -> object:
    """The CBOR item for a checked LwM2M value (Objlnk as ``"oid:iid"`` text, Time as integer)."""
    return format_objlnk(value) if isinstance(value, ObjLnk) else value


def value_from_item(rtype: ResourceType, item: object, path: Path) -> Value:
    """Convert a decoded CBOR item to the Python type of ``rtype``; BadRequest if it does not fit.

    Integer resources accept integral floats; Time also accepts tag 1 (epoch time);
    Float accepts integers.
    """
    if rtype in TEXT_TYPES:
        if isinstance(item, str):
            return item
    elif rtype in INTEGER_TYPES:
        if rtype is ResourceType.TIME and isinstance(item, Tag) and item.tag == 1:
            item = item.value
        if isinstance(item, (int, float)):
            return int_value(rtype, item, path)
    elif rtype is ResourceType.FLOAT:
        if isinstance(item, (int, float)):
            return float_value(item, path)
    elif rtype is ResourceType.BOOLEAN:
        if isinstance(item, bool):
            return item
    elif rtype is ResourceType.OPAQUE:
        if isinstance(item, bytes):
            return item
    elif rtype is ResourceType.OBJLNK and isinstance(item, str):
        return parse_objlnk(item, path)
    raise BadRequest(f"CBOR {type(item).__name__} does not fit {rtype.value} resource {path}")


def encode(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode the single value at ``base`` (NotAcceptable for any other record set)."""
    record = single_record(base, records)
    ((_, definition, value),) = encode_checked(base, [record], resolve)
    return dumps(item_from_value(definition.type, value))


def decode(payload: bytes, base: Path, resolve: TypeResolver) -> list[Record]:
    """Decode one CBOR value for the resource or resource instance ``base``."""
    definition = single_value_target(base, resolve)
    return [Record(base, value_from_item(definition.type, loads(payload), base))]
