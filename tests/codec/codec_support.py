"""Shared fixtures for the codec tests: resolvers, the spec's example client data, comparisons."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

from lwm2md.codec import TypeResolver
from lwm2md.model import ObjLnk, Operations, Path, Record, ResourceDef, ResourceType

RT = ResourceType


def rdef(rid: int, rtype: ResourceType, multiple: bool = False) -> ResourceDef:
    return ResourceDef(rid, f"r{rid}", Operations.RW, multiple, False, rtype)


def resolver(catalog: Mapping[int, Iterable[ResourceDef]]) -> TypeResolver:
    """A resolver over {oid: [ResourceDef, ...]}."""
    table = {(oid, d.rid): d for oid, defs in catalog.items() for d in defs}

    def resolve(path: Path) -> ResourceDef | None:
        assert path.level == 3, f"resolver called with {path}"
        return table.get((path.oid, path.rid))

    return resolve


# Object definitions as far as the specification's examples use them.
SECURITY = [
    rdef(0, RT.STRING),
    rdef(1, RT.BOOLEAN),
    rdef(2, RT.INTEGER),
    rdef(3, RT.OPAQUE),
    rdef(4, RT.OPAQUE),
    rdef(5, RT.OPAQUE),
    rdef(10, RT.INTEGER),
]
SERVER = [
    rdef(0, RT.INTEGER),
    rdef(1, RT.INTEGER),
    rdef(2, RT.INTEGER),
    rdef(3, RT.INTEGER),
    rdef(5, RT.INTEGER),
    rdef(6, RT.BOOLEAN),
    rdef(7, RT.STRING),
]
ACCESS_CONTROL = [rdef(0, RT.INTEGER), rdef(1, RT.INTEGER), rdef(2, RT.INTEGER, True), rdef(3, RT.INTEGER)]
DEVICE = [
    rdef(0, RT.STRING),
    rdef(1, RT.STRING),
    rdef(2, RT.STRING),
    rdef(3, RT.STRING),
    rdef(4, RT.NONE),
    rdef(6, RT.INTEGER, True),
    rdef(7, RT.INTEGER, True),
    rdef(8, RT.INTEGER, True),
    rdef(9, RT.INTEGER),
    rdef(10, RT.INTEGER),
    rdef(11, RT.INTEGER, True),
    rdef(13, RT.TIME),
    rdef(14, RT.STRING),
    rdef(16, RT.STRING),
]
CONN_MON = [rdef(2, RT.INTEGER)]
LOCATION = [rdef(0, RT.FLOAT), rdef(1, RT.FLOAT)]
# Hypothetical objects 65/66/67 of the TLV and SenML object-link examples.
OBJ65 = [rdef(0, RT.OBJLNK, True), rdef(1, RT.STRING), rdef(2, RT.INTEGER)]
OBJ66 = [rdef(0, RT.STRING), rdef(1, RT.STRING), rdef(2, RT.OBJLNK)]
OBJ67 = [rdef(0, RT.STRING), rdef(1, RT.STRING)]
OBJ72 = [rdef(2, RT.FLOAT)]
LIGHT_CONTROL = [rdef(5850, RT.BOOLEAN), rdef(5851, RT.INTEGER)]
ACTUATION = [rdef(5900, RT.FLOAT)]

SPEC_RESOLVE = resolver(
    {
        0: SECURITY,
        1: SERVER,
        2: ACCESS_CONTROL,
        3: DEVICE,
        4: CONN_MON,
        6: LOCATION,
        65: OBJ65,
        66: OBJ66,
        67: OBJ67,
        72: OBJ72,
        3308: ACTUATION,
        3311: LIGHT_CONTROL,
    }
)


def rec(path: str, value: object, time: float | None = None) -> Record:
    return Record(Path.parse(path), value, time)  # type: ignore[arg-type]


# Device object instance /3/0 of the example client (Core TS Appendix F / the 7.4-7.5 examples).
DEVICE_RECORDS = [
    rec("/3/0/0", "Open Mobile Alliance"),
    rec("/3/0/1", "Lightweight M2M Client"),
    rec("/3/0/2", "345000123"),
    rec("/3/0/3", "1.0"),
    rec("/3/0/6/0", 1),
    rec("/3/0/6/1", 5),
    rec("/3/0/7/0", 3800),
    rec("/3/0/7/1", 5000),
    rec("/3/0/8/0", 125),
    rec("/3/0/8/1", 900),
    rec("/3/0/9", 100),
    rec("/3/0/10", 15),
    rec("/3/0/11/0", 0),
    rec("/3/0/13", 1367491215),
    rec("/3/0/14", "+02:00"),
    rec("/3/0/16", "U"),
]

SERVER_RECORDS = [
    rec("/1/0/0", 101),
    rec("/1/0/1", 86400),
    rec("/1/0/2", 300),
    rec("/1/0/3", 6000),
    rec("/1/0/5", 86400),
    rec("/1/0/6", True),
    rec("/1/0/7", "U"),
    rec("/1/1/0", 102),
    rec("/1/1/1", 86400),
    rec("/1/1/2", 600),
    rec("/1/1/3", 6000),
    rec("/1/1/5", 86400),
    rec("/1/1/6", False),
    rec("/1/1/7", "U"),
]


def hexbytes(text: str) -> bytes:
    """Bytes from hex digits with any whitespace."""
    return bytes.fromhex("".join(text.split()))


def _value_key(value: object) -> object:
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else ("float", struct.pack(">d", value))
    if isinstance(value, ObjLnk):
        return ("objlnk", value.oid, value.iid)
    return (type(value).__name__, value)


def comparable(records: Iterable[Record]) -> list[tuple[Path, object, float | None]]:
    """Records in a form where NaN equals NaN, -0.0 differs from 0.0 and bool differs from int."""
    return [(r.path, _value_key(r.value), r.time) for r in records]
