"""CoRE Link Format (40, RFC 6690): ``<target>;name=value;flag,<target>...``.

Used for Register/Update payloads and Discover responses; not a record format.

Formatting writes numeric values bare (``ssid=101``, ``lwm2m=1.1``, ``ct=60``)
and every other value as a quoted string (``rt="oma.lwm2m"``, ``ct="60 110"``),
as the LwM2M specification's examples do; an attribute whose value is None is
written as a bare name. Parsing accepts both forms, optional whitespace around
separators (the LwM2M examples put a space after commas) and raises
``BadRequest`` for anything else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from lwm2md.errors import BadRequest

_NUMERIC_RE: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_PARMNAME_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~"
)
_PTOKEN_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'()*+-./:<=>?@[]^_`{|}~"
)
_WHITESPACE: Final = " \t\r\n"


@dataclass
class Link:
    """One link: its target URI reference and its attributes in order (None for a bare name)."""

    target: str
    attrs: dict[str, str | None] = field(default_factory=dict)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_links(links: Sequence[Link]) -> str:
    """Render ``links``; ValueError for a target with ``<``, ``>`` or controls, or a bad attribute name."""
    parts: list[str] = []
    for link in links:
        if "<" in link.target or ">" in link.target or any(ord(ch) < 0x20 for ch in link.target):
            raise ValueError(f"invalid link target {link.target!r}")
        text = f"<{link.target}>"
        for name, value in link.attrs.items():
            if not name or not set(name) <= _PARMNAME_CHARS:
                raise ValueError(f"invalid link attribute name {name!r}")
            if value is None:
                text += f";{name}"
            elif _NUMERIC_RE.fullmatch(value):
                text += f";{name}={value}"
            else:
                text += f";{name}={_quote(value)}"
        parts.append(text)
    return ",".join(parts)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = self.peek() or "end of input"
            raise BadRequest(f"link format: expected {char!r} at offset {self.pos}, found {found!r}")
        self.pos += 1

    def take_while(self, allowed: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]

    def link(self) -> Link:
        self.expect("<")
        end = self.text.find(">", self.pos)
        if end < 0:
            raise BadRequest("link format: unterminated target")
        target = self.text[self.pos : end]
        if "<" in target:
            raise BadRequest("link format: '<' inside a target")
        self.pos = end + 1
        link = Link(target)
        while True:
            self.skip_ws()
            if self.peek() != ";":
                return link
            self.pos += 1
            self.skip_ws()
            name = self.take_while(_PARMNAME_CHARS)
            if not name:
                raise BadRequest(f"link format: missing attribute name at offset {self.pos}")
            self.skip_ws()
            value: str | None = None
            if self.peek() == "=":
                self.pos += 1
                self.skip_ws()
                if self.peek() == '"':
                    value = self.quoted()
                else:
                    value = self.take_while(_PTOKEN_CHARS)
                    if not value:
                        raise BadRequest(f"link format: missing value for {name!r} at offset {self.pos}")
            link.attrs[name] = value

    def quoted(self) -> str:
        self.expect('"')
        chars: list[str] = []
        while True:
            if self.at_end():
                raise BadRequest("link format: unterminated quoted string")
            ch = self.text[self.pos]
            self.pos += 1
            if ch == '"':
                return "".join(chars)
            if ch == "\\":
                if self.at_end():
                    raise BadRequest("link format: unterminated quoted string")
                ch = self.text[self.pos]
                self.pos += 1
            chars.append(ch)


def parse_links(text: str) -> list[Link]:
    """Parse a link-format document (empty or blank text is no links); BadRequest if malformed."""
    parser = _Parser(text)
    parser.skip_ws()
    links: list[Link] = []
    if parser.at_end():
        return links
    while True:
        links.append(parser.link())
        parser.skip_ws()
        if parser.at_end():
            return links
        parser.expect(",")
        parser.skip_ws()
