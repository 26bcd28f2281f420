"""The LwM2M data model: paths, resource types, object definitions, values."""

from lwm2md.model.path import Path
from lwm2md.model.types import (
    ObjectDef,
    ObjLnk,
    Operations,
    Record,
    ResourceData,
    ResourceDef,
    ResourceType,
    Value,
)

__all__ = [
    "ObjLnk",
    "ObjectDef",
    "Operations",
    "Path",
    "Record",
    "ResourceData",
    "ResourceDef",
    "ResourceType",
    "Value",
]
