"""The bus a chip driver talks to, and how a real one is opened.

Drivers use only :class:`SMBusLike`: the subset of ``smbus2.SMBus`` they
need. A missing or inaccessible ``/dev/i2c-N`` raises :class:`BusUnavailable`
with the device path; a chip that does not acknowledge makes smbus2 raise
``OSError`` (errno 121, EREMOTEIO), which drivers turn into ``DriverError``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any, Protocol

from lwm2md.drivers.base import DriverError

NAK_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO, errno.EIO, errno.ETIMEDOUT})


class BusUnavailable(DriverError):
    """The I2C adapter device cannot be opened (absent, no permission)."""


class SMBusLike(Protocol):
    """The smbus2.SMBus methods our drivers use."""

    def read_byte(self, i2c_addr: int) -> int: ...

    def write_byte(self, i2c_addr: int, value: int) -> None: ...

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...

    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...

    def close(self) -> None: ...


def device_path(bus: int) -> str:
    return f"/dev/i2c-{bus}"


def open_bus(bus: int) -> SMBusLike:
    """Open ``/dev/i2c-<bus>`` with smbus2; BusUnavailable names the device when that fails."""
    path = device_path(bus)
    if not os.path.exists(path):
        raise BusUnavailable(f"{path} does not exist (is the I2C adapter enabled?)")
    try:
        from smbus2 import SMBus
    except ImportError as exc:  # pragma: no cover - smbus2 is a dependency
        raise BusUnavailable(f"smbus2 is not installed: {exc}") from None
    try:
        smbus: SMBusLike = SMBus(bus)
    except OSError as exc:
        raise BusUnavailable(f"cannot open {path}: {exc.strerror or exc}") from None
    return smbus


def bus_error(exc: OSError, what: str) -> DriverError:
    """The DriverError for a failed transfer: NAK/timeout/I/O, with errno and context."""
    reason = "no acknowledge" if exc.errno in NAK_ERRNOS else (exc.strerror or str(exc))
    return DriverError(f"{what}: {reason} (errno {exc.errno})")
