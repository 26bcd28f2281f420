"""Facts about one Linux network interface: kind, addresses, next-hop routers, traffic counters.

Files are read under an injectable root (default ``/``): ``sys/class/net/<if>``,
``proc/net/if_inet6``, ``proc/net/route`` and ``proc/net/ipv6_route``.
IPv4 addresses are not in procfs per interface: on the real root they come
from ``ip -j addr show dev <if>`` (iproute2) or, without it, the
``SIOCGIFADDR`` ioctl (primary address only); under another root only an
injected ``ip_json`` source supplies them. Nothing here raises for a missing
or malformed file: the fact is simply absent.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger(__name__)

IpJson = Callable[[str], str | None]
"""Returns ``ip -j addr show dev <name>`` output for an interface name, or None."""

SIOCGIFADDR = 0x8915
RTF_GATEWAY = 0x2
IP_TIMEOUT = 2.0

# ARPHRD_* (linux/if_arp.h) -> kind
_ARPHRD_KIND = {1: "ethernet", 512: "ppp", 519: "wwan", 772: "loopback"}
_WWAN_DRIVERS = frozenset({"qmi_wwan", "cdc_mbim", "huawei_cdc_ncm", "GobiNet", "mhi_net", "mhi_netdev"})
# IPv6 scopes from if_inet6 (IPV6_ADDR_*): host and link-local addresses are not reachable from outside.
_SCOPE_HOST, _SCOPE_LINK = 0x10, 0x20


@dataclass(frozen=True)
class InterfaceCounters:
    """Cumulative kernel counters of an interface (they restart at 0 when it is recreated)."""

    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def run_ip_json(name: str) -> str | None:
    """``ip -j addr show dev <name>`` on this host; None when iproute2 is missing or fails."""
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        done = subprocess.run(
            [ip, "-j", "addr", "show", "dev", name],
            capture_output=True, text=True, timeout=IP_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        LOG.debug("ip addr for %s failed: %s", name, exc)
        return None
    return done.stdout if done.returncode == 0 else None


def parse_ip_json(text: str) -> list[str]:
    """Addresses from ``ip -j addr`` output, skipping link- and host-scope ones."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    out: list[str] = []
    for link in data if isinstance(data, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if not isinstance(info, dict) or info.get("scope") in ("link", "host"):
                continue
            local = info.get("local")
            if isinstance(local, str) and local not in out:
                out.append(local)
    return out


def ipv4_by_ioctl(name: str) -> str | None:
    """The primary IPv4 address of ``name`` via SIOCGIFADDR (this host only); None if it has none."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            packed = struct.pack("256s", name.encode()[:15])
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, packed)
    except OSError:
        return None
    return socket.inet_ntoa(answer[20:24])


class NetInterface:
    """One interface by name, its facts read fresh on every call.

    ``ip_json`` overrides how IPv4 (and IPv6) addresses are listed; by default
    it is :func:`run_ip_json` on the real root and absent under another root.
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str] = "/",
        *,
        ip_json: IpJson | None = None,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid interface name {name!r}")
        self.name = name
        self.root = Path(root)
        self._real_root = self.root.resolve() == Path("/")
        self._ip_json = ip_json if ip_json is not None else (run_ip_json if self._real_root else None)

    @property
    def sysfs(self) -> Path:
        """``<root>/sys/class/net/<name>``."""
        return self.root / "sys/class/net" / self.name

    def exists(self) -> bool:
        """True if the interface is present."""
        return self.sysfs.exists()

    def kind(self) -> str | None:
        """``"wlan"``, ``"wwan"``, ``"ethernet"``, ``"ppp"``, ``"loopback"`` or None when unknown."""
        uevent = _read(self.sysfs / "uevent") or ""
        for line in uevent.splitlines():
            key, _, value = line.partition("=")
            if key == "DEVTYPE" and value.strip() in ("wlan", "wwan"):
                return value.strip()
        if (self.sysfs / "wireless").exists() or (self.sysfs / "phy80211").exists():
            return "wlan"
        with contextlib.suppress(OSError):
            driver = os.path.basename(os.readlink(self.sysfs / "device/driver"))
            if driver in _WWAN_DRIVERS:
                return "wwan"
        arphrd = (_read(self.sysfs / "type") or "").strip()
        if arphrd.isdigit():
            kind = _ARPHRD_KIND.get(int(arphrd))
            if kind is not None:
                return kind
        return "wwan" if self.name.startswith("wwan") else None

    def addresses(self) -> list[str]:
        """Global and site addresses (IPv4 first), without link-local ones."""
        if self._ip_json is not None:
            text = self._ip_json(self.name)
            if text is not None:
                return parse_ip_json(text)
        out: list[str] = []
        if self._real_root:
            v4 = ipv4_by_ioctl(self.name)
            if v4 is not None:
                out.append(v4)
        out.extend(self.ipv6_addresses())
        return out

    def ipv6_addresses(self) -> list[str]:
        """IPv6 addresses of the interface from ``proc/net/if_inet6`` (no host/link scope)."""
        out: list[str] = []
        for line in (_read(self.root / "proc/net/if_inet6") or "").splitlines():
            parts = line.split()
            if len(parts) != 6 or parts[5] != self.name:
                continue
            scope = int(parts[3], 16) if _is_hex(parts[3]) else _SCOPE_LINK
            if scope & (_SCOPE_HOST | _SCOPE_LINK):
                continue
            with contextlib.suppress(ValueError):
                out.append(str(ipaddress.IPv6Address(bytes.fromhex(parts[0]))))
        return out

    def routers(self) -> list[str]:
        """Next-hop routers of this interface's routes, default routes first (IPv4 then IPv6)."""
        found: list[tuple[int, str]] = []
        for line in (_read(self.root / "proc/net/route") or "").splitlines()[1:]:
            parts = line.split()
            if len(parts) < 4 or parts[0] != self.name or not all(map(_is_hex, parts[1:4])):
                continue
            dest, gateway, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
            if flags & RTF_GATEWAY and gateway:
                found.append((0 if dest == 0 else 2, socket.inet_ntoa(struct.pack("<I", gateway))))
        for line in (_read(self.root / "proc/net/ipv6_route") or "").splitlines():
            parts = line.split()
            if len(parts) != 10 or parts[9] != self.name or not _is_hex(parts[4]):
                continue
            nexthop = int(parts[4], 16)
            if nexthop == 0:
                continue
            dest_default = parts[0] == "0" * 32 and parts[1] == "00"
            with contextlib.suppress(ValueError):
                address = str(ipaddress.IPv6Address(bytes.fromhex(parts[4])))
                found.append((1 if dest_default else 3, address))
        out: list[str] = []
        for _, address in sorted(found, key=lambda item: item[0]):
            if address not in out:
                out.append(address)
        return out

    def counters(self) -> InterfaceCounters | None:
        """The byte and packet counters, or None when any is unreadable."""
        values: list[int] = []
        for name in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"):
            text = (_read(self.sysfs / "statistics" / name) or "").strip()
            if not text.isdigit():
                return None
            values.append(int(text))
        return InterfaceCounters(*values)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
