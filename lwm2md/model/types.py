"""Resource types, operations, object and resource definitions, values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from lwm2md.model.path import Path


class ResourceType(enum.Enum):
    """Resource data types as named in OMA DDF files."""

    STRING = "String"
    INTEGER = "Integer"
    UNSIGNED = "Unsigned Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    OPAQUE = "Opaque"
    TIME = "Time"
    OBJLNK = "Objlnk"
    CORELNK = "Corelnk"
    NONE = "none"  # executable resources carry no value


class Operations(enum.Flag):
    """Operations allowed on a resource (R, W, E); NONE for an empty DDF field."""

    NONE = 0
    R = enum.auto()
    W = enum.auto()
    E = enum.auto()
    RW = R | W

    @classmethod
    def parse(cls, text: str) -> Operations:
        """Parse a DDF ``<Operations>`` field such as ``RW``, ``E`` or empty."""
        ops = cls.NONE
        for ch in text.strip().upper():
            if ch not in "RWE":
                raise ValueError(f"unknown operation {ch!r} in {text!r}")
            ops |= cls[ch]
        return ops

    def __str__(self) -> str:
        return "".join(ch for ch in "RWE" if self & Operations[ch])


class ObjLnk(NamedTuple):
    """An object link value ``oid:iid``; 65535:65535 is the null link."""

    oid: int
    iid: int

    def __str__(self) -> str:
        return f"{self.oid}:{self.iid}"


# Python types carried per ResourceType:
# STRING/CORELNK -> str, INTEGER/UNSIGNED/TIME -> int, FLOAT -> float,
# BOOLEAN -> bool, OPAQUE -> bytes, OBJLNK -> ObjLnk.
Value: TypeAlias = str | int | float | bool | bytes | ObjLnk
# A resource's content: a Value for a single-instance resource, riid -> Value for a multiple one.
ResourceData: TypeAlias = Value | dict[int, Value]


@dataclass(frozen=True)
class Record:
    """One leaf value at a resource or resource-instance path.

    ``time`` is an absolute Unix time in seconds when the value carries a
    timestamp (SenML/JSON ``bt``+``t``), else None.
    """

    path: Path
    value: Value
    time: float | None = None


@dataclass(frozen=True)
class ResourceDef:
    """A resource's definition from the object catalog."""

    rid: int
    name: str
    operations: Operations
    multiple: bool
    mandatory: bool
    type: ResourceType
    range_enumeration: str = ""
    units: str = ""
    description: str = ""


@dataclass(frozen=True)
class ObjectDef:
    """An object's definition from the object catalog (one DDF ``<Object>``)."""

    oid: int
    name: str
    multiple: bool
    mandatory: bool
    version: str = "1.0"
    lwm2m_version: str = "1.0"
    urn: str = ""
    description: str = ""
    resources: dict[int, ResourceDef] = field(default_factory=dict)

    def resource(self, rid: int) -> ResourceDef | None:
        """The definition of ``rid`` or None if the object has no such resource."""
        return self.resources.get(rid)
