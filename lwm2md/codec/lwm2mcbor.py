"""LwM2M CBOR (11544), LwM2M 1.2.

The payload is a map from path ids to either a nested map (the next levels) or
a value. A key is an unsigned id or an array of ids (several levels at once), so
``{3: {0: {0: "x"}}}``, ``{[3, 0]: {0: "x"}}`` and ``{[3, 0, 0]: "x"}`` all put
``"x"`` at /3/0/0. Paths are always absolute from the root, whatever the target.
Values map as in application/cbor: text for String/Corelnk and for Objlnk as
``"oid:iid"``, integers (Time also tag 1), floats, booleans, byte strings.

The encoder writes the layout of the specification's examples (Core 1.2
section 7.4.7 / 1.2.2 section 7.5.4): at the top level each chain of levels
with a single child collapses into one key (an array when it holds several
ids, a plain id otherwise); below that every level is one plain id; keys keep
the order the records came in.

For Read/Observe-Composite requests, :func:`decode_paths` reads leaves that
are ``null`` as paths (at any level) and :func:`encode_paths` writes one
``null``-valued key per path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lwm2md.codec import cbor
from lwm2md.codec._values import (
    TypeResolver,
    check_under,
    encode_checked,
    reject_duplicates,
    resolve_for_decode,
)
from lwm2md.errors import BadRequest, InternalError
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import Record

_MAX_LEVELS: Final = 4


# --- decoding --------------------------------------------------------------------------------------


def _key_ids(key: object) -> tuple[int, ...]:
    if isinstance(key, bool):
        raise BadRequest("LwM2M CBOR key is a boolean")
    if isinstance(key, int):
        ids: tuple[object, ...] = (key,)
    elif isinstance(key, tuple):
        ids = key
    else:
        raise BadRequest(f"LwM2M CBOR key {key!r} is not an id or an array of ids")
    for ident in ids:
        if isinstance(ident, bool) or not isinstance(ident, int) or not 0 <= ident <= MAX_ID:
            raise BadRequest(f"LwM2M CBOR key {key!r} holds an invalid id")
    return ids  # type: ignore[return-value]


def _leaves(item: object) -> list[tuple[Path, object]]:
    """Flatten the nested maps into (path, leaf) pairs in document order; BadRequest if malformed."""
    if not isinstance(item, dict):
        raise BadRequest("LwM2M CBOR payload is not a map")
    out: list[tuple[Path, object]] = []
    _walk((), item, out)
    return out


def _walk(prefix: tuple[int, ...], mapping: dict[object, object], out: list[tuple[Path, object]]) -> None:
    # Recursion depth is bounded by the CBOR decoder's nesting limit.
    for key, value in mapping.items():
        parts = prefix + _key_ids(key)
        if len(parts) > _MAX_LEVELS:
            raise BadRequest(f"LwM2M CBOR path {parts} is longer than 4 levels")
        if isinstance(value, dict):
            _walk(parts, value, out)
        else:
            out.append((Path.of(*parts), value))


def decode(payload: bytes, base: Path, resolve: TypeResolver) -> list[Record]:
    """Decode an LwM2M CBOR payload whose values lie under ``base``."""
    out: list[Record] = []
    seen: set[Path] = set()
    for path, item in _leaves(cbor.loads(payload)):
        check_under(base, path)
        if path in seen:
            raise BadRequest(f"LwM2M CBOR gives {path} twice")
        seen.add(path)
        definition = resolve_for_decode(resolve, path)
        out.append(Record(path, cbor.value_from_item(definition.type, item, path)))
    return out


def decode_paths(payload: bytes) -> list[Path]:
    """Paths whose value is ``null`` in an LwM2M CBOR payload (any other value is BadRequest)."""
    paths: list[Path] = []
    for path, item in _leaves(cbor.loads(payload)):
        if item is not None:
            raise BadRequest(f"LwM2M CBOR path list has a value at {path}")
        paths.append(path)
    return paths


# --- encoding --------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("children", "leaf")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.leaf: object = _NO_LEAF


_NO_LEAF: Final = object()


def _compact(node: _Node, top: bool) -> dict[object, object]:
    result: dict[object, object] = {}
    for ident, child in node.children.items():
        ids = [ident]
        while top and child.leaf is _NO_LEAF and len(child.children) == 1:
            ((next_id, next_child),) = child.children.items()
            ids.append(next_id)
            child = next_child
        key: object = ids[0] if len(ids) == 1 else tuple(ids)
        result[key] = child.leaf if child.leaf is not _NO_LEAF else _compact(child, False)
    return result


def encode(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode ``records`` under ``base`` as LwM2M CBOR in the compacted layout."""
    checked = encode_checked(base, records, resolve)
    reject_duplicates(records)
    root = _Node()
    for record, definition, value in checked:
        node = root
        for ident in record.path.parts:
            if node.leaf is not _NO_LEAF:
                raise InternalError(f"{record.path} lies under another value")
            node = node.children.setdefault(ident, _Node())
        if node.children:
            raise InternalError(f"{record.path} has values below it")
        node.leaf = cbor.item_from_value(definition.type, value)
    return cbor.dumps(_compact(root, True))


def encode_paths(paths: Sequence[Path]) -> bytes:
    """One ``null``-valued key per path: an id for a one-level path, an array otherwise."""
    mapping: dict[object, object] = {}
    for path in paths:
        parts = path.parts
        mapping[parts[0] if len(parts) == 1 else parts] = None
    return cbor.dumps(mapping)
