"""A fake SMBus holding chip models at addresses, answering like the real bus.

Each :class:`FakeChip` sees raw I2C transactions (a write of bytes, a read
of n bytes), exactly what the wire carries, so a chip model is written from
its datasheet's transaction diagrams rather than from smbus2's helpers.
SMBus helper calls are mapped onto transactions the way the kernel does:
``read_byte_data(a, r)`` is a write of ``[r]`` followed by a read of 1 byte
(repeated start), ``write_word_data`` sends the low byte first, and so on.

A chip that is absent, or whose ``nak`` flag is set, makes every transfer
raise ``OSError(121, 'Remote I/O error')`` like smbus2 on Linux.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Sequence
from typing import Any

I2C_M_RD = 0x0001


def _nak() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


class FakeChip:
    """A chip model at one address; subclasses implement the transactions.

    ``on_write`` receives every byte of a write transaction; ``on_read`` must
    return exactly ``length`` bytes for a read transaction.
    """

    def __init__(self, address: int) -> None:
        self.address = address
        self.nak = False
        self.transactions: list[tuple[str, bytes]] = []

    def on_write(self, data: bytes) -> None:
        raise NotImplementedError

    def on_read(self, length: int) -> bytes:
        raise NotImplementedError


class RegisterChip(FakeChip):
    """A chip with an 8-bit register pointer and an auto-incrementing register file.

    A write sets the pointer from its first byte and stores the rest from
    there on (calling :meth:`on_register_write` for each); a read returns
    registers from the pointer on (calling :meth:`on_register_read` first).
    """

    def __init__(self, address: int, size: int = 256) -> None:
        super().__init__(address)
        self.registers = bytearray(size)
        self.pointer = 0

    def on_write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0]
        for offset, value in enumerate(data[1:]):
            register = (self.pointer + offset) % len(self.registers)
            self.registers[register] = value
            self.on_register_write(register, value)

    def on_read(self, length: int) -> bytes:
        self.on_register_read(self.pointer, length)
        out = bytes(self.registers[(self.pointer + i) % len(self.registers)] for i in range(length))
        self.pointer = (self.pointer + length) % len(self.registers)
        return out

    def on_register_write(self, register: int, value: int) -> None:
        """Hook: react to a register write (reset, mode change...)."""

    def on_register_read(self, register: int, length: int) -> None:
        """Hook: refresh registers before a read."""


class FakeSMBus:
    """smbus2.SMBus stand-in for one bus number; attach chips with :meth:`attach`."""

    def __init__(self, bus: int = 1) -> None:
        self.bus = bus
        self.chips: dict[int, FakeChip] = {}
        self.closed = False

    def attach(self, chip: FakeChip) -> FakeChip:
        self.chips[chip.address] = chip
        return chip

    def _chip(self, address: int) -> FakeChip:
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        chip = self.chips.get(address)
        if chip is None or chip.nak:
            raise _nak()
        return chip

    def _write(self, address: int, data: Sequence[int]) -> None:
        chip = self._chip(address)
        payload = bytes(data)
        chip.transactions.append(("w", payload))
        chip.on_write(payload)

    def _read(self, address: int, length: int) -> bytes:
        chip = self._chip(address)
        data = chip.on_read(length)
        chip.transactions.append(("r", data))
        if len(data) != length:
            raise AssertionError(f"chip model returned {len(data)} bytes for a {length}-byte read")
        return data

    # -- the smbus2.SMBus subset ------------------------------------------------

    def read_byte(self, i2c_addr: int) -> int:
        return self._read(i2c_addr, 1)[0]

    def write_byte(self, i2c_addr: int, value: int) -> None:
        self._write(i2c_addr, [value])

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        self._write(i2c_addr, [register])
        return self._read(i2c_addr, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._write(i2c_addr, [register, value])

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        self._write(i2c_addr, [register])
        low, high = self._read(i2c_addr, 2)
        return low | (high << 8)

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._write(i2c_addr, [register, value & 0xFF, (value >> 8) & 0xFF])

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        self._write(i2c_addr, [register])
        return list(self._read(i2c_addr, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        self._write(i2c_addr, [register, *data])

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Run smbus2 ``i2c_msg`` transfers; read messages get their buffer filled."""
        for msg in i2c_msgs:
            if msg.flags & I2C_M_RD:
                data = self._read(msg.addr, msg.len)
                ctypes.memmove(msg.buf, data, msg.len)
            else:
                self._write(msg.addr, list(msg))

    def close(self) -> None:
        self.closed = True
