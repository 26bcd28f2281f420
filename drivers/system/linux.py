"""Host facts of a Linux system, read from sysfs, procfs and /etc under a root.

Every path is taken relative to an injectable root (default ``/``) so tests
can point at a fake tree. A file that is missing, unreadable or holds only a
placeholder yields None; nothing here raises for a file problem.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger(__name__)

# Values firmware vendors leave in DMI fields that carry no information.
_PLACEHOLDERS = frozenset(
    {
        "",
        "0",
        "none",
        "n/a",
        "na",
        "not applicable",
        "not specified",
        "default string",
        "to be filled by o.e.m.",
        "system manufacturer",
        "system product name",
        "system serial number",
        "system version",
        "0123456789",
    }
)


@dataclass(frozen=True)
class HostFacts:
    """Identity and resources of the host; None marks a fact that could not be read.

    Memory figures are KiB as /proc/meminfo reports them. ``battery_level``
    is always None (gateways are mains-powered; no battery source is read).
    :meth:`memory_free_kib` and :meth:`utc_offset` read live (the offset
    changes with daylight saving time); the fields are a snapshot taken by
    :func:`read_host_facts`.
    """

    root: Path
    manufacturer: str | None
    model: str | None
    serial: str | None
    hardware_version: str | None
    os_release: str | None
    memory_total_kib: int | None
    timezone: str | None
    battery_level: int | None = None
    localtime: Callable[[], time.struct_time] = field(default=time.localtime, repr=False, compare=False)

    def memory_free_kib(self) -> int | None:
        """MemAvailable now (falls back to MemFree on kernels without it)."""
        info = read_meminfo(self.root)
        return info.get("MemAvailable", info.get("MemFree"))

    def utc_offset(self) -> str | None:
        """The UTC offset in effect now as ``+HH:MM``/``-HH:MM``; None when unknown."""
        try:
            return format_utc_offset(self.localtime())
        except (OSError, OverflowError, ValueError):
            return None


def read_host_facts(
    root: str | os.PathLike[str] = "/",
    *,
    localtime: Callable[[], time.struct_time] = time.localtime,
) -> HostFacts:
    """Gather :class:`HostFacts` under ``root``; ``localtime`` is kept for the live UTC offset."""
    base = Path(root)
    manufacturer = _dmi(base, "sys_vendor")
    model = _dmi(base, "product_name") or _device_tree(base, "model")
    serial = _dmi(base, "product_serial") or _device_tree(base, "serial-number")
    return HostFacts(
        root=base,
        manufacturer=manufacturer,
        model=model,
        serial=serial,
        hardware_version=_dmi(base, "product_version"),
        os_release=read_os_release(base),
        memory_total_kib=read_meminfo(base).get("MemTotal"),
        timezone=read_timezone(base),
        localtime=localtime,
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        LOG.debug("cannot read %s: %s", path, exc)
        return None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.replace("\x00", "").strip()
    return None if value.lower() in _PLACEHOLDERS else value


def _dmi(root: Path, name: str) -> str | None:
    return _clean(_read_text(root / "sys/class/dmi/id" / name))


def _device_tree(root: Path, name: str) -> str | None:
    return _clean(_read_text(root / "proc/device-tree" / name))


def read_os_release(root: Path) -> str | None:
    """PRETTY_NAME from os-release, else ``ID VERSION_ID``; /etc first, then /usr/lib."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = _read_text(root / rel)
        if text is None:
            continue
        fields = _parse_os_release(text)
        if fields.get("PRETTY_NAME"):
            return fields["PRETTY_NAME"]
        joined = " ".join(v for v in (fields.get("ID"), fields.get("VERSION_ID")) if v)
        return joined or None
    return None


def _parse_os_release(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key.strip()] = value.replace('\\"', '"').replace("\\\\", "\\")
    return fields


def read_meminfo(root: Path) -> dict[str, int]:
    """/proc/meminfo figures in KiB by field name; empty when unreadable."""
    text = _read_text(root / "proc/meminfo")
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
            out[key.strip()] = int(parts[0])
    return out


def read_timezone(root: Path) -> str | None:
    """IANA zone name from /etc/timezone, else from where /etc/localtime links."""
    name = _clean(_read_text(root / "etc/timezone"))
    if name:
        return name
    try:
        target = os.readlink(root / "etc/localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    index = target.find(marker)
    if index < 0:
        return None
    zone = target[index + len(marker) :].removeprefix("posix/").removeprefix("right/")
    return zone or None


def format_utc_offset(moment: time.struct_time) -> str | None:
    """``+HH:MM`` for the offset in effect at ``moment``; None when unknown."""
    seconds = moment.tm_gmtoff
    if seconds is None:
        return None
    sign = "-" if seconds < 0 else "+"
    minutes = abs(int(seconds)) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
