"""LwM2M paths: /oid/iid/rid/riid, any prefix of it, or the root."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from lwm2md.errors import BadRequest

MAX_ID = 65535


@functools.total_ordering
@dataclass(frozen=True)
class Path:
    """A path into the object tree; trailing levels are None.

    Invariant: a level is set only if every level before it is set, and each
    set level is in 0..65535 (65535 itself is reserved but representable).
    """

    oid: int | None = None
    iid: int | None = None
    rid: int | None = None
    riid: int | None = None
    _parts: tuple[int, ...] = field(init=False, repr=False, compare=False, hash=False, default=())

    def __post_init__(self) -> None:
        seen_none = False
        parts: list[int] = []
        for part in (self.oid, self.iid, self.rid, self.riid):
            if part is None:
                seen_none = True
            elif seen_none or not 0 <= part <= MAX_ID:
                raise ValueError(f"invalid path levels {(self.oid, self.iid, self.rid, self.riid)!r}")
            else:
                parts.append(part)
        object.__setattr__(self, "_parts", tuple(parts))

    @classmethod
    def of(cls, *parts: int) -> Path:
        """Build a path from 0 to 4 integers."""
        if len(parts) > 4:
            raise ValueError("a path has at most 4 levels")
        return cls(*parts)

    @classmethod
    def parse(cls, text: str) -> Path:
        """Parse ``/3/0/1``, ``3/0``, ``/`` or ``""``; raise BadRequest when malformed."""
        stripped = text.strip("/")
        if not stripped:
            return cls()
        pieces = stripped.split("/")
        if len(pieces) > 4:
            raise BadRequest(f"path {text!r} has more than 4 levels")
        return cls.from_segments(pieces)

    @classmethod
    def from_segments(cls, segments: list[str] | tuple[str, ...]) -> Path:
        """Build a path from URI-Path segments; raise BadRequest when one is not an ID."""
        if len(segments) > 4:
            raise BadRequest("a path has at most 4 levels")
        ids: list[int] = []
        for seg in segments:
            if not seg.isascii() or not seg.isdigit() or (len(seg) > 1 and seg[0] == "0"):
                raise BadRequest(f"path segment {seg!r} is not an ID")
            value = int(seg)
            if value > MAX_ID:
                raise BadRequest(f"path segment {seg!r} is out of range")
            ids.append(value)
        return cls(*ids)

    @property
    def parts(self) -> tuple[int, ...]:
        """The set levels, in order."""
        return self._parts

    @property
    def level(self) -> int:
        """0 for root, 1 object, 2 instance, 3 resource, 4 resource instance."""
        return len(self._parts)

    @property
    def parent(self) -> Path:
        """The path one level up (root's parent is root)."""
        parts = self.parts
        return Path.of(*parts[:-1]) if parts else self

    def child(self, ident: int) -> Path:
        """The path one level down."""
        return Path.of(*self.parts, ident)

    def contains(self, other: Path) -> bool:
        """True if ``other`` is this path or lies below it."""
        mine = self._parts
        return other._parts[: len(mine)] == mine

    def resource(self) -> Path:
        """The resource-level prefix of a resource or resource-instance path."""
        if self.level < 3:
            raise ValueError(f"{self} is not a resource path")
        return Path(self.oid, self.iid, self.rid)

    def segments(self) -> list[str]:
        """URI-Path segments for this path."""
        return [str(p) for p in self.parts]

    def __lt__(self, other: object) -> bool:
        """Paths sort level by level; a prefix sorts before the paths below it."""
        if not isinstance(other, Path):
            return NotImplemented
        return self.parts < other.parts

    def __str__(self) -> str:
        return "/" + "/".join(str(p) for p in self.parts)
