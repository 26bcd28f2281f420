"""Loading object definitions from OMA DDF XML (``<LWM2M><Object>...</Object></LWM2M>``).

The reader is deliberately lenient about spelling (case, whitespace, ``Single``/``Multiple``
versus ``false``/``true``, type aliases, absent optional fields) and strict about structure
and safety: a document with a DTD or entity declaration is refused before anything in it
is expanded, and a file that does not describe objects raises :class:`DdfError`.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path as FsPath
from xml.parsers import expat

from lwm2md.model.path import MAX_ID
from lwm2md.model.types import ObjectDef, Operations, ResourceDef, ResourceType

LOG = logging.getLogger(__name__)

MAX_DDF_BYTES = 4 * 1024 * 1024
"""Larger files are refused unread; the biggest registry file is a few hundred KiB."""

_VERSION_RE = re.compile(r"\d+\.\d+")

_TRUE_WORDS = {"multiple": True, "mandatory": True, "true": True, "yes": True, "1": True}
_FALSE_WORDS = {"single": False, "optional": False, "false": False, "no": False, "0": False}
_FLAG_WORDS = _TRUE_WORDS | _FALSE_WORDS

# Type spellings, compared after lower-casing and dropping spaces, '-' and '_'.
_TYPE_WORDS: dict[str, ResourceType] = {
    "": ResourceType.NONE,
    "none": ResourceType.NONE,
    "string": ResourceType.STRING,
    "integer": ResourceType.INTEGER,
    "int": ResourceType.INTEGER,
    "unsignedinteger": ResourceType.UNSIGNED,
    "unsignedint": ResourceType.UNSIGNED,
    "unsigned": ResourceType.UNSIGNED,
    "float": ResourceType.FLOAT,
    "boolean": ResourceType.BOOLEAN,
    "bool": ResourceType.BOOLEAN,
    "opaque": ResourceType.OPAQUE,
    "time": ResourceType.TIME,
    "objlnk": ResourceType.OBJLNK,
    "objlink": ResourceType.OBJLNK,
    "objectlink": ResourceType.OBJLNK,
    "corelnk": ResourceType.CORELNK,
    "corelink": ResourceType.CORELNK,
}


class DdfError(Exception):
    """A DDF document that cannot be used; ``source`` names it, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class _Refused(Exception):
    """Raised inside expat callbacks to abort on DTDs and entities."""


def _refuse_dtd(*_args: object) -> None:
    raise _Refused("document type declarations are not accepted")


def _refuse_entity(*_args: object) -> None:
    raise _Refused("entity declarations are not accepted")


def _refuse_external(*_args: object) -> int:
    raise _Refused("external entities are not accepted")


def _local(name: str) -> str:
    """The local part of an expat name (``uri}local`` when namespaced)."""
    return name.rpartition("}")[2]


def _parse_xml(data: bytes) -> ET.Element:
    """Build an element tree with expat, refusing any DTD, entity or external reference.

    Tag and attribute names are reduced to their local parts so a default namespace on
    ``<LWM2M>`` does not matter. Raises _Refused, expat.ExpatError, or LookupError /
    ValueError for an encoding declaration pyexpat cannot serve.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.buffer_text = True

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(_local(tag), {_local(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        builder.end(_local(tag))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.Parse(data, True)
    return builder.close()


def _text(elem: ET.Element, tag: str) -> str | None:
    """The whitespace-collapsed text of child ``tag``; None when the child is absent."""
    child = elem.find(tag)
    if child is None:
        return None
    return " ".join("".join(child.itertext()).split())


def _flag(value: str | None, default: bool, what: str) -> bool:
    if value is None or value == "":
        return default
    try:
        return _FLAG_WORDS[value.lower()]
    except KeyError:
        raise ValueError(f"{what}: unrecognised value {value!r}") from None


def _ident(value: str | None, what: str) -> int:
    if value is None or value == "":
        raise ValueError(f"{what} is missing")
    if not value.isascii() or not value.isdigit() or int(value) > MAX_ID:
        raise ValueError(f"{what} {value!r} is not an ID in 0..{MAX_ID}")
    return int(value)


def _version(value: str | None, what: str) -> str:
    if value is None or value == "":
        return "1.0"
    if not _VERSION_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not of the form major.minor")
    return value


def _rtype(value: str | None, where: str) -> ResourceType:
    """Map a DDF type spelling; unknown spellings become OPAQUE with a warning."""
    key = re.sub(r"[\s_-]", "", value or "").lower()
    rtype = _TYPE_WORDS.get(key)
    if rtype is None:
        LOG.warning("%s: unknown type %r, treating it as Opaque", where, value)
        return ResourceType.OPAQUE
    return rtype


def _resource(item: ET.Element, where: str) -> ResourceDef:
    rid = _ident((item.get("ID") or "").strip(), f"{where}: resource ID")
    here = f"{where}/{rid}"
    try:
        ops = Operations.parse(_text(item, "Operations") or "")
    except ValueError as exc:
        raise ValueError(f"{here}: {exc}") from None
    rtype = _rtype(_text(item, "Type"), here)
    if rtype is ResourceType.NONE and ops & Operations.RW:
        LOG.warning("%s: readable or writable resource has no type", here)
    return ResourceDef(
        rid=rid,
        name=_text(item, "Name") or "",
        operations=ops,
        multiple=_flag(_text(item, "MultipleInstances"), False, f"{here}: MultipleInstances"),
        mandatory=_flag(_text(item, "Mandatory"), False, f"{here}: Mandatory"),
        type=rtype,
        range_enumeration=_text(item, "RangeEnumeration") or "",
        units=_text(item, "Units") or "",
        description=(item.findtext("Description") or "").strip(),
    )


def _object(elem: ET.Element) -> ObjectDef:
    kind = elem.get("ObjectType", "MODefinition").strip()
    if kind != "MODefinition":
        raise ValueError(f"<Object ObjectType={kind!r}> is not an object definition")
    oid = _ident(_text(elem, "ObjectID"), "ObjectID")
    where = f"/{oid}"
    resources: dict[int, ResourceDef] = {}
    container = elem.find("Resources")
    for item in container.findall("Item") if container is not None else []:
        res = _resource(item, where)
        if res.rid in resources:
            raise ValueError(f"{where}: resource {res.rid} defined twice")
        resources[res.rid] = res
    return ObjectDef(
        oid=oid,
        name=_text(elem, "Name") or "",
        multiple=_flag(_text(elem, "MultipleInstances"), False, f"{where}: MultipleInstances"),
        mandatory=_flag(_text(elem, "Mandatory"), False, f"{where}: Mandatory"),
        version=_version(_text(elem, "ObjectVersion"), f"{where}: ObjectVersion"),
        lwm2m_version=_version(_text(elem, "LWM2MVersion"), f"{where}: LWM2MVersion"),
        urn=_text(elem, "ObjectURN") or "",
        description=(elem.findtext("Description1") or "").strip(),
        resources=resources,
    )


def parse_ddf(data: bytes, source: str) -> list[ObjectDef]:
    """Parse one DDF document into its object definitions, in document order.

    ``source`` only names the document in errors and log lines. Absent optional fields
    take defaults (Single, Optional, version "1.0", empty strings); an empty ``<Type>``
    is ResourceType.NONE and an unknown one is OPAQUE (logged). Raises DdfError for
    documents that are oversized, not well-formed, in an unsupported encoding, carry a
    DTD or entity declaration, are not ``<LWM2M>``, hold no ``<Object>``, or contain an
    unusable value (bad ID, unknown operation letter or flag word, malformed version,
    duplicate oid or rid).
    """
    if len(data) > MAX_DDF_BYTES:
        raise DdfError(source, f"larger than {MAX_DDF_BYTES} bytes")
    try:
        root = _parse_xml(data)
    except _Refused as exc:
        raise DdfError(source, str(exc)) from None
    except expat.ExpatError as exc:
        raise DdfError(source, f"not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:  # pyexpat on an unknown or multi-byte encoding
        raise DdfError(source, f"unsupported encoding: {exc}") from None
    if root.tag != "LWM2M":
        raise DdfError(source, f"root element is <{root.tag}>, expected <LWM2M>")
    elements = root.findall("Object")
    if not elements:
        raise DdfError(source, "no <Object> element")
    objects: list[ObjectDef] = []
    for elem in elements:
        try:
            defn = _object(elem)
        except ValueError as exc:
            raise DdfError(source, str(exc)) from None
        if any(o.oid == defn.oid for o in objects):
            raise DdfError(source, f"object {defn.oid} defined twice")
        objects.append(defn)
    return objects


def load_directory(path: str | FsPath) -> tuple[list[ObjectDef], list[DdfError]]:
    """Parse every ``*.xml`` file directly in ``path``, in file-name order.

    Never raises for bad content: each unreadable or unusable file becomes one DdfError
    and contributes no objects. A directory that does not exist yields ([], []); a path
    that exists but is not a directory yields one DdfError.
    """
    directory = FsPath(path)
    if not directory.exists():
        return [], []
    if not directory.is_dir():
        return [], [DdfError(str(directory), "not a directory")]
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".xml")
    except OSError as exc:
        return [], [DdfError(str(directory), f"cannot list: {exc.strerror or exc}")]
    objects: list[ObjectDef] = []
    errors: list[DdfError] = []
    for file in files:
        if not file.is_file():
            continue
        try:
            with file.open("rb") as fh:
                data = fh.read(MAX_DDF_BYTES + 1)
            objects.extend(parse_ddf(data, str(file)))
        except OSError as exc:
            errors.append(DdfError(str(file), f"cannot read: {exc.strerror or exc}"))
        except DdfError as exc:
            errors.append(exc)
    return objects, errors
