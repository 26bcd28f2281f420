"""Notification attributes (pmin, pmax, gt, lt, st, epmin, epmax), per server.

Attributes attach to an object, instance, resource or resource instance
path. The effective set for a path is built by walking from the object down
to the path, each level overriding the fields it sets; pmin/pmax finally
fall back to the server's defaults (/1/x/2, /1/x/3).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

from lwm2md.errors import BadRequest
from lwm2md.model.path import Path

INT_ATTRS = ("pmin", "pmax", "epmin", "epmax")
FLOAT_ATTRS = ("gt", "lt", "st")
ATTR_NAMES = INT_ATTRS + FLOAT_ATTRS
# A plain decimal number as servers write it: no Python extras such as "_", "inf" or spaces.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Attributes:
    """A set of notification attributes; None means not set at this level."""

    pmin: int | None = None
    pmax: int | None = None
    gt: float | None = None
    lt: float | None = None
    st: float | None = None
    epmin: int | None = None
    epmax: int | None = None

    def over(self, parent: Attributes) -> Attributes:
        """This set with unset fields taken from ``parent``."""
        values = {
            f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(parent, f.name)
            for f in fields(self)
        }
        return Attributes(**values)

    def is_empty(self) -> bool:
        """True when no attribute is set."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def has_value_conditions(self) -> bool:
        """True when gt, lt or st is set."""
        return self.gt is not None or self.lt is not None or self.st is not None

    def as_dict(self) -> dict[str, float]:
        """The set fields by name (numbers as they are)."""
        return {name: getattr(self, name) for name in ATTR_NAMES if getattr(self, name) is not None}

    def link_attrs(self) -> dict[str, str]:
        """The set fields as link-format attributes in a fixed order."""
        out: dict[str, str] = {}
        for name in ATTR_NAMES:
            value = getattr(self, name)
            if value is not None:
                out[name] = _format_number(value)
        return out


def _format_number(value: float) -> str:
    """Shortest plain decimal for ``value`` (``20``, ``20.5``, ``0.0000001``; never exponent form)."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")


@dataclass(frozen=True)
class AttributeUpdate:
    """A parsed Write-Attributes query: fields to set and fields to clear."""

    set: Attributes
    clear: frozenset[str]


def parse_query(query: Iterable[str]) -> AttributeUpdate:
    """Parse Uri-Query items such as ``pmin=10``, ``gt=20.5`` or ``pmax`` (clear).

    Raises BadRequest for unknown names, duplicates, malformed or non-finite
    numbers, negative periods and a negative st.
    """
    ints: dict[str, int] = {}
    floats: dict[str, float] = {}
    clear: set[str] = set()
    for item in query:
        name, sep, text = item.partition("=")
        if name not in ATTR_NAMES:
            raise BadRequest(f"unknown attribute {name!r}")
        if name in ints or name in floats or name in clear:
            raise BadRequest(f"attribute {name!r} given twice")
        if not sep:
            clear.add(name)
        elif name in INT_ATTRS:
            if not text.isascii() or not text.isdigit():
                raise BadRequest(f"attribute {name} needs a non-negative integer")
            ints[name] = int(text)
        else:
            if not _NUMBER.fullmatch(text):
                raise BadRequest(f"attribute {name} needs a number")
            number = float(text)
            if not math.isfinite(number):
                raise BadRequest(f"attribute {name} needs a finite number")
            if name == "st" and number < 0:
                raise BadRequest("attribute st must not be negative")
            floats[name] = number
    attrs = Attributes(
        pmin=ints.get("pmin"),
        pmax=ints.get("pmax"),
        gt=floats.get("gt"),
        lt=floats.get("lt"),
        st=floats.get("st"),
        epmin=ints.get("epmin"),
        epmax=ints.get("epmax"),
    )
    return AttributeUpdate(attrs, frozenset(clear))


class AttributeStore:
    """Attributes attached per (ssid, path).

    ``listeners`` are called (no arguments) after every change, for persistence.
    """

    def __init__(self) -> None:
        self._attached: dict[int, dict[Path, Attributes]] = {}
        self.listeners: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def dump(self) -> dict[str, dict[str, dict[str, float]]]:
        """Every attached set as JSON-safe data: {ssid: {path: {name: value}}}."""
        return {
            str(ssid): {str(path): attrs.as_dict() for path, attrs in per_path.items()}
            for ssid, per_path in self._attached.items()
            if per_path
        }

    def load(self, data: object) -> int:
        """Replace everything with what :meth:`dump` produced; returns how many sets.

        ValueError (or TypeError) when ``data`` is malformed; nothing changes then.
        """
        if not isinstance(data, dict):
            raise ValueError("not a table of servers")
        loaded: dict[int, dict[Path, Attributes]] = {}
        for ssid_text, per_path in data.items():
            if not isinstance(per_path, dict):
                raise ValueError(f"server {ssid_text}: not a table of paths")
            target = loaded.setdefault(int(ssid_text), {})
            for path_text, values in per_path.items():
                if not isinstance(values, dict) or not set(values) <= set(ATTR_NAMES):
                    raise ValueError(f"{path_text}: unknown attributes")
                numbers: dict[str, Any] = {
                    name: (int(v) if name in INT_ATTRS else float(v)) for name, v in values.items()
                }
                attrs = Attributes(**numbers)
                target[Path.parse(path_text)] = attrs
        self._attached = loaded
        return sum(len(p) for p in loaded.values())

    def attached(self, ssid: int, path: Path) -> Attributes:
        """What is attached exactly at ``path`` for server ``ssid``."""
        return self._attached.get(ssid, {}).get(path, Attributes())

    def apply(self, ssid: int, path: Path, update: AttributeUpdate, *, numeric: bool) -> None:
        """Apply a Write-Attributes update; BadRequest if the result is inconsistent.

        ``numeric`` tells whether ``path`` is a single numeric value, the only
        place where gt/lt/st may be attached.
        """
        current = self.attached(ssid, path)
        cleared = replace(current, **{name: None for name in update.clear})
        result = update.set.over(cleared)
        if result.has_value_conditions() and not numeric:
            raise BadRequest("gt, lt and st apply only to numeric resources")
        if result.gt is not None and result.lt is not None:
            if result.lt >= result.gt:
                raise BadRequest("lt must be below gt")
            if result.st is not None and result.lt + 2 * result.st >= result.gt:
                raise BadRequest("lt + 2*st must be below gt")
        if result.epmin is not None and result.epmax is not None and result.epmax < result.epmin:
            raise BadRequest("epmax must not be below epmin")
        per_server = self._attached.setdefault(ssid, {})
        if result.is_empty():
            per_server.pop(path, None)
        else:
            per_server[path] = result
        self._changed()

    def effective(self, ssid: int, path: Path, default_pmin: int = 0, default_pmax: int = 0) -> Attributes:
        """The attributes in force at ``path``: inherited from above, server defaults last.

        A default pmax of 0 means no pmax.
        """
        result = Attributes()
        for level in range(path.level, 0, -1):
            result = result.over(self.attached(ssid, Path.of(*path.parts[:level])))
        defaults = Attributes(pmin=default_pmin, pmax=default_pmax or None)
        return result.over(defaults)

    def forget_below(self, ssid: int | None, prefix: Path) -> None:
        """Drop attributes at or below ``prefix`` (e.g. after a Delete); all servers if ssid is None."""
        for server, per_path in self._attached.items():
            if ssid is not None and server != ssid:
                continue
            for path in [p for p in per_path if prefix.contains(p)]:
                del per_path[path]
        self._changed()

    def forget_server(self, ssid: int) -> None:
        """Drop every attribute server ``ssid`` attached."""
        if self._attached.pop(ssid, None):
            self._changed()
