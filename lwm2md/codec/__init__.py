"""Content formats: encode and decode LwM2M values by CoAP Content-Format.

Contract (implemented in the submodules, dispatched here):

- ``encode(fmt, base, records, resolve) -> bytes``: ``base`` is the path that
  was requested (root, object, instance, resource or resource instance);
  ``records`` are leaf values at resource or resource-instance paths under
  ``base``; ``resolve`` gives each resource's definition (types, multiple).
- ``decode(fmt, payload, base, resolve) -> list[Record]``: names in the payload
  are resolved against ``base``; values are converted to the Python type of the
  resource's definition.
- Decoders never raise anything but ``BadRequest`` (malformed payload, wrong
  type), ``NotFound`` (a path the resolver does not know) or
  ``UnsupportedContentFormat`` (unknown ``fmt``), whatever bytes they are fed.
- Encoders raise ``NotAcceptable`` for a format that is unknown or cannot carry
  the values (several values in a single-value format, NaN in JSON, ...),
  ``NotFound`` for an unknown resource and ``InternalError`` for a record that
  does not fit its definition.
- ``decode_paths``/``encode_paths`` carry the path lists of Read-Composite and
  Observe-Composite requests. CoRE Link Format (40) has its own API in
  :mod:`lwm2md.codec.linkformat`.

Records at multiple-instance resources always carry the resource instance id.
Formats without timestamps (all but SenML and OMA JSON) ignore ``Record.time``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from typing import Final

from lwm2md.codec import cbor, lwm2mcbor, omajson, opaque, senml, text, tlv
from lwm2md.codec._values import TypeResolver
from lwm2md.errors import NotAcceptable, UnsupportedContentFormat
from lwm2md.model.path import Path
from lwm2md.model.types import Record

__all__ = [
    "PATH_FORMATS",
    "SENML_ETCH_CBOR",
    "SENML_ETCH_JSON",
    "SINGLE_VALUE_FORMATS",
    "ContentFormat",
    "TypeResolver",
    "decode",
    "decode_paths",
    "encode",
    "encode_paths",
    "is_supported",
]


class ContentFormat(enum.IntEnum):
    """CoAP Content-Format numbers of the LwM2M data formats."""

    TEXT = 0
    LINK_FORMAT = 40
    OPAQUE = 42
    CBOR = 60
    SENML_JSON = 110
    SENML_CBOR = 112
    TLV = 11542
    OMA_JSON = 11543
    LWM2M_CBOR = 11544


SINGLE_VALUE_FORMATS: Final = frozenset({ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.CBOR})
"""Formats that carry exactly one resource or resource-instance value."""

SENML_ETCH_JSON: Final = 320
"""application/senml-etch+json (RFC 8790): accepted by the path helpers like SenML JSON."""
SENML_ETCH_CBOR: Final = 322
"""application/senml-etch+cbor (RFC 8790): accepted by the path helpers like SenML CBOR."""

_Encoder = Callable[[Path, Sequence[Record], TypeResolver], bytes]
_Decoder = Callable[[bytes, Path, TypeResolver, Callable[[], float]], list[Record]]

_ENCODERS: Final[dict[int, _Encoder]] = {
    ContentFormat.TEXT: text.encode,
    ContentFormat.OPAQUE: opaque.encode,
    ContentFormat.CBOR: cbor.encode,
    ContentFormat.SENML_JSON: senml.encode_json,
    ContentFormat.SENML_CBOR: senml.encode_cbor,
    ContentFormat.TLV: tlv.encode,
    ContentFormat.OMA_JSON: omajson.encode,
    ContentFormat.LWM2M_CBOR: lwm2mcbor.encode,
}

_DECODERS: Final[dict[int, _Decoder]] = {
    ContentFormat.TEXT: lambda p, b, r, now: text.decode(p, b, r),
    ContentFormat.OPAQUE: lambda p, b, r, now: opaque.decode(p, b, r),
    ContentFormat.CBOR: lambda p, b, r, now: cbor.decode(p, b, r),
    ContentFormat.SENML_JSON: senml.decode_json,
    ContentFormat.SENML_CBOR: senml.decode_cbor,
    ContentFormat.TLV: lambda p, b, r, now: tlv.decode(p, b, r),
    ContentFormat.OMA_JSON: omajson.decode,
    ContentFormat.LWM2M_CBOR: lambda p, b, r, now: lwm2mcbor.decode(p, b, r),
}

_PATH_DECODERS: Final[dict[int, Callable[[bytes], list[Path]]]] = {
    ContentFormat.SENML_JSON: senml.decode_paths_json,
    SENML_ETCH_JSON: senml.decode_paths_json,
    ContentFormat.SENML_CBOR: senml.decode_paths_cbor,
    SENML_ETCH_CBOR: senml.decode_paths_cbor,
    ContentFormat.LWM2M_CBOR: lwm2mcbor.decode_paths,
}

_PATH_ENCODERS: Final[dict[int, Callable[[Sequence[Path]], bytes]]] = {
    ContentFormat.SENML_JSON: senml.encode_paths_json,
    SENML_ETCH_JSON: senml.encode_paths_json,
    ContentFormat.SENML_CBOR: senml.encode_paths_cbor,
    SENML_ETCH_CBOR: senml.encode_paths_cbor,
    ContentFormat.LWM2M_CBOR: lwm2mcbor.encode_paths,
}

PATH_FORMATS: Final = frozenset(_PATH_DECODERS)
"""Formats :func:`decode_paths` and :func:`encode_paths` accept."""


def is_supported(fmt: int) -> bool:
    """True if :func:`encode` and :func:`decode` handle ``fmt`` (link format is separate)."""
    return fmt in _ENCODERS


def encode(fmt: int, base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """Encode ``records`` (values under ``base``) in content format ``fmt``.

    NotAcceptable if ``fmt`` is not a record format or cannot carry this set of
    values (e.g. several values in a single-value format); NotFound if the
    resolver does not know a record's resource; InternalError if a record does
    not match its definition.
    """
    encoder = _ENCODERS.get(fmt)
    if encoder is None:
        raise NotAcceptable(f"content format {fmt} cannot be produced")
    return encoder(base, records, resolve)


def decode(
    fmt: int,
    payload: bytes,
    base: Path,
    resolve: TypeResolver,
    *,
    now: Callable[[], float] = time.time,
) -> list[Record]:
    """Decode ``payload`` addressed to ``base``; see the module contract for errors.

    ``now`` gives the current Unix time for timestamps that RFC 8428 makes relative.
    """
    decoder = _DECODERS.get(fmt)
    if decoder is None:
        raise UnsupportedContentFormat(f"content format {fmt} is not supported")
    return decoder(bytes(payload), base, resolve, now)


def decode_paths(fmt: int, payload: bytes) -> list[Path]:
    """Paths of a Read-Composite/Observe-Composite request body.

    SenML JSON/CBOR (and their SenML-ETCH variants): records with a name and no
    value. LwM2M CBOR: keys whose value is null. UnsupportedContentFormat for
    other formats, BadRequest if malformed.
    """
    decoder = _PATH_DECODERS.get(fmt)
    if decoder is None:
        raise UnsupportedContentFormat(f"content format {fmt} cannot carry a list of paths")
    return decoder(bytes(payload))


def encode_paths(fmt: int, paths: Sequence[Path]) -> bytes:
    """A Read-Composite/Observe-Composite request body naming ``paths`` (see decode_paths)."""
    encoder = _PATH_ENCODERS.get(fmt)
    if encoder is None:
        raise UnsupportedContentFormat(f"content format {fmt} cannot carry a list of paths")
    return encoder(paths)
