"""Exception tree whose classes name the CoAP response code they render to.

Everything above the transport raises these; the CoAP edge turns them into
responses. ``code`` is the CoAP code byte (class << 5 | detail).
"""

from __future__ import annotations

from typing import ClassVar


def code_byte(cls: int, detail: int) -> int:
    """Return the CoAP code byte for ``cls.detail`` (e.g. 4, 4 -> 0x84)."""
    return (cls << 5) | detail


def dotted(code: int) -> str:
    """Render a CoAP code byte as ``c.dd`` (0x84 -> ``4.04``)."""
    return f"{code >> 5}.{code & 0x1F:02d}"


class Lwm2mError(Exception):
    """An error that maps to one CoAP response code."""

    code: ClassVar[int] = code_byte(5, 0)

    @property
    def dotted_code(self) -> str:
        return dotted(self.code)


class BadRequest(Lwm2mError):
    """4.00: malformed payload, bad arguments, wrong value type."""

    code = code_byte(4, 0)


class Unauthorized(Lwm2mError):
    """4.01: access control refused the operation."""

    code = code_byte(4, 1)


class BadOption(Lwm2mError):
    """4.02: an option the client cannot honour."""

    code = code_byte(4, 2)


class NotFound(Lwm2mError):
    """4.04: no such object, instance, resource or resource instance."""

    code = code_byte(4, 4)


class MethodNotAllowed(Lwm2mError):
    """4.05: the operation is not allowed on this target."""

    code = code_byte(4, 5)


class NotAcceptable(Lwm2mError):
    """4.06: none of the accepted content formats can be produced."""

    code = code_byte(4, 6)


class UnsupportedContentFormat(Lwm2mError):
    """4.15: the request payload's content format is not supported."""

    code = code_byte(4, 15)


class InternalError(Lwm2mError):
    """5.00: the client failed to serve an otherwise valid request."""

    code = code_byte(5, 0)


class DriverFault(InternalError):
    """5.00 caused by hardware: a sensor that did not answer or answered garbage."""


class ConfigError(Exception):
    """A configuration problem: names the file, the key path, what was found and expected."""

    def __init__(self, file: str, key: str, found: object, expected: str) -> None:
        self.file = file
        self.key = key
        self.found = found
        self.expected = expected
        super().__init__(f"{file}: {key}: expected {expected}, found {found!r}")
