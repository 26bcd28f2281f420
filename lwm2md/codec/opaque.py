"""application/octet-stream (42): the raw bytes of one Opaque resource or resource instance."""

from __future__ import annotations

from collections.abc import Sequence

from lwm2md.codec._values import TypeResolver, encode_checked, single_record, single_value_target
from lwm2md.errors import BadRequest, NotAcceptable
from lwm2md.model.path import Path
from lwm2md.model.types import Record, ResourceType


def encode(base: Path, records: Sequence[Record], resolve: TypeResolver) -> bytes:
    """The bytes of the single Opaque value at ``base``; NotAcceptable for anything else."""
    record = single_record(base, records)
    ((_, definition, value),) = encode_checked(base, [record], resolve)
    if definition.type is not ResourceType.OPAQUE or not isinstance(value, bytes):
        raise NotAcceptable(f"{base} is {definition.type.value}, not Opaque")
    return value


def decode(payload: bytes, base: Path, resolve: TypeResolver) -> list[Record]:
    """The payload as the value of the Opaque resource (instance) ``base``; BadRequest otherwise."""
    definition = single_value_target(base, resolve)
    if definition.type is not ResourceType.OPAQUE:
        raise BadRequest(f"{base} is {definition.type.value}; octet-stream only writes Opaque")
    return [Record(base, bytes(payload))]
