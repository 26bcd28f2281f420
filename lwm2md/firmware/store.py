"""The package file under the state directory, and what can be told from its bytes.

One package at a time lives in ``<state_dir>/firmware/package`` (directory
0700, file 0600). A push or a pull writes it through a
:class:`PackageWriter` at an offset (a resumed pull appends), never holding
more than one block in memory. Storage limits surface as
:class:`OutOfStorage` (Update Result 2): the configured maximum size, the
free space of the file system, or the kernel's ENOSPC/EDQUOT/EFBIG.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import tarfile
from pathlib import Path as FsPath

FIRMWARE_DIR = "firmware"
PACKAGE_NAME = "package"
FILE_MODE = 0o600
CHUNK = 1 << 16
MAX_CONTROL = 4 << 20
"""Largest control.tar read from a .deb for its name and version."""
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutOfStorage(Exception):
    """The package does not fit (configured maximum or file system)."""


class PackageWriter:
    """Writes the package file sequentially from ``offset``; not thread-safe.

    :meth:`write` raises OutOfStorage when the configured maximum would be
    exceeded or the disk is full; other OSErrors propagate.
    """

    def __init__(self, path: FsPath, offset: int, max_size: int) -> None:
        self.path = path
        self.max_size = max_size
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(self._fd, FILE_MODE)
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
        except BaseException:
            self.close()
            raise
        self.offset = offset

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` at the current offset."""
        if self._fd is None:
            raise ValueError("package writer is closed")
        if self.offset + len(data) > self.max_size:
            raise OutOfStorage(f"package larger than the configured maximum of {self.max_size} bytes")
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self.offset += written
        except OSError as exc:
            if exc.errno in _FULL_DISK:
                raise OutOfStorage(f"cannot store the package: {exc.strerror}") from None
            raise

    def commit(self) -> None:
        """Flush to disk (fsync) and close."""
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                if exc.errno in _FULL_DISK:
                    raise OutOfStorage(f"cannot store the package: {exc.strerror}") from None
                raise
            finally:
                self.close()

    def close(self) -> None:
        """Close without syncing (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class PackageStore:
    """The firmware directory under ``state_dir`` and its one package file."""

    def __init__(self, state_dir: str | os.PathLike[str], max_size: int) -> None:
        self.directory = FsPath(state_dir) / FIRMWARE_DIR
        self.path = self.directory / PACKAGE_NAME
        self.max_size = max_size

    def size(self) -> int:
        """Bytes stored (0 when there is no package file)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def exists(self) -> bool:
        return self.path.is_file()

    def writer(self, offset: int = 0) -> PackageWriter:
        """A writer at ``offset`` (the file is cut there; 0 starts afresh)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return PackageWriter(self.path, min(offset, self.size()), self.max_size)

    def check_space(self, total: int | None, offset: int = 0) -> None:
        """OutOfStorage if a package of ``total`` bytes (None: unknown) cannot fit from ``offset``."""
        if total is None:
            return
        if total > self.max_size:
            raise OutOfStorage(f"package of {total} bytes exceeds the configured maximum of {self.max_size}")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stats = os.statvfs(self.directory)
        free = stats.f_bavail * stats.f_frsize
        if total - offset > free:
            raise OutOfStorage(f"package of {total} bytes does not fit in {free} free bytes")

    def remove(self) -> None:
        """Delete the package file (no error when absent)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def sha256(self) -> bytes:
        """SHA-256 of the stored package (blocking: run it in a thread for big files)."""
        return file_sha256(self.path)

    def detect_type(self) -> str | None:
        """The package type from its first bytes (see :func:`detect_type`)."""
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(512)
        except FileNotFoundError:
            return None
        return detect_type(head)

    def deb_fields(self) -> tuple[str, str] | None:
        """(Package, Version) from a .deb's control file; None when unreadable."""
        try:
            with open(self.path, "rb") as fh:
                return deb_fields(fh)
        except OSError:
            return None


def file_sha256(path: str | os.PathLike[str]) -> bytes:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


def detect_type(head: bytes) -> str | None:
    """``deb``, ``rauc`` (squashfs bundle), ``swupdate`` (cpio .swu), ``mender`` (tar), ``script`` or None."""
    if head.startswith(b"!<arch>\n") and head[8:21] == b"debian-binary":
        return "deb"
    if head.startswith(b"hsqs"):
        return "rauc"
    if head.startswith((b"070701", b"070702")):
        return "swupdate"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "mender"
    if head.startswith(b"#!"):
        return "script"
    return None


def deb_fields(fh: io.BufferedIOBase | io.RawIOBase | io.BufferedReader) -> tuple[str, str] | None:
    """(Package, Version) of a .deb read from ``fh`` (ar archive with control.tar.{gz,xz,bz2,})."""
    if fh.read(8) != b"!<arch>\n":
        return None
    while True:
        header = fh.read(60)
        if len(header) < 60:
            return None
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            return None
        if name.startswith("control.tar"):
            if size > MAX_CONTROL:
                return None
            data = fh.read(size)
            return _control_fields(data)
        fh.seek(size + (size & 1), os.SEEK_CUR)


def _control_fields(data: bytes) -> tuple[str, str] | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            member = next((m for m in tar.getmembers() if m.name in ("./control", "control")), None)
            if member is None or not member.isfile() or member.size > 1 << 20:
                return None
            extracted = tar.extractfile(member)
            text = extracted.read().decode("utf-8", "replace") if extracted is not None else ""
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            fields[key.strip().lower()] = value.strip()
    if "package" not in fields or "version" not in fields:
        return None
    return fields["package"], fields["version"]
