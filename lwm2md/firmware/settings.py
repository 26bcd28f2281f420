"""The ``[firmware]`` configuration table (Firmware Update, /5).

:func:`parse_firmware` checks one TOML table and returns a frozen
:class:`FirmwareConfig`; every problem raises
:class:`~lwm2md.errors.ConfigError` naming the file, the key path
(``firmware.<key>``), what was found and what was expected, like the rest
of the configuration. The root-side install helper reads the same table
(``lwm2md.firmware.helper``), so the installer commands come from the
root-owned configuration file only, never from the daemon.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lwm2md.errors import ConfigError

PACKAGE_TYPES = ("deb", "rauc", "swupdate", "mender", "script")
"""Package types told apart by their first bytes (``store.detect_type``)."""
SCHEMES = ("coap", "coaps", "http", "https")
"""Pull protocols (/5/0/8 values 0, 1, 2, 3)."""
PLACEHOLDER = "{package}"
DEFAULT_HELPER = ("systemctl", "start", "lwm2md-install.service")
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")


def parse_digest(text: str) -> bytes:
    """``"sha256:<64 hex>"`` -> the 32-byte digest; ValueError otherwise."""
    match = _DIGEST.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError("expected sha256:<64 hex digits>")
    return bytes.fromhex(match.group(1))


@dataclass(frozen=True)
class FirmwareConfig:
    """How /5 downloads, checks and installs packages.

    ``installers`` maps a package type to the installer's argv, with
    ``{package}`` standing for the package path. ``helper`` is the argv the
    daemon runs for an Update (it hands the package to the installer with
    root rights, see docs/firmware.md); empty runs the installer directly
    (a daemon running as root, or development). ``digest`` (32 bytes of
    SHA-256) is the digest the next package must have; ``require_digest``
    refuses a package with no known digest (Update Result 5).
    """

    enabled: bool = True
    installers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    helper: tuple[str, ...] = DEFAULT_HELPER
    max_package_size: int = 512 * 1024 * 1024
    digest: bytes | None = field(default=None, repr=False)
    require_digest: bool = False
    protocols: tuple[str, ...] = SCHEMES
    push: bool = True
    download_timeout: float = 30.0
    download_retries: int = 5
    retry_delay: float = 5.0
    install_timeout: float = 1800.0
    reboot_after_install: bool = False
    ca_file: str | None = None

    @property
    def delivery_method(self) -> int:
        """/5/0/9: 0 pull only, 1 push only, 2 both."""
        if self.push and self.protocols:
            return 2
        return 1 if self.push else 0


_FLOATS = ("download_timeout", "retry_delay", "install_timeout")
_BOOLS = ("enabled", "require_digest", "push", "reboot_after_install")


def parse_firmware(table: Mapping[str, Any], file: str, prefix: str = "firmware") -> FirmwareConfig:
    """Check the ``[firmware]`` table read from ``file``; ConfigError on the first problem."""

    def bad(key: str, found: object, expected: str) -> ConfigError:
        return ConfigError(file, f"{prefix}.{key}", found, expected)

    if not isinstance(table, Mapping):
        raise ConfigError(file, prefix, table, "a table ([firmware])")
    known = {f for f in FirmwareConfig.__dataclass_fields__}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise bad(key, key, "one of: " + ", ".join(sorted(known)))
        if key in _BOOLS:
            if type(value) is not bool:
                raise bad(key, value, "true or false")
            values[key] = value
        elif key in _FLOATS:
            number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1.0
            if not (math.isfinite(number) and number > 0):
                raise bad(key, value, "a finite number > 0")
            values[key] = number
        elif key in ("max_package_size", "download_retries"):
            lowest = 1 if key == "max_package_size" else 0
            if type(value) is not int or value < lowest:
                raise bad(key, value, f"an integer >= {lowest}")
            values[key] = value
        elif key == "installers":
            values[key] = _installers(value, bad)
        elif key == "helper":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise bad(key, value, "a list of non-empty strings (argv; [] runs installers directly)")
            values[key] = tuple(value)
        elif key == "digest":
            try:
                values[key] = parse_digest(value)
            except ValueError:
                raise bad(key, value, "sha256:<64 hex digits>") from None
        elif key == "protocols":
            listed = value if isinstance(value, list) else [None]
            if any(v not in SCHEMES for v in listed) or len(set(listed)) != len(listed):
                raise bad(key, value, "a list of distinct schemes from: " + ", ".join(SCHEMES))
            values[key] = tuple(s for s in SCHEMES if s in value)
        elif key == "ca_file":
            if not isinstance(value, str) or not value.strip():
                raise bad(key, value, "a non-empty string (a PEM file of CA certificates)")
            values[key] = value
    config = FirmwareConfig(**values)
    if not config.push and not config.protocols:
        raise bad("push", False, "true when protocols is empty (no way to deliver a package)")
    return config


def _installers(value: Any, bad: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise bad("installers", value, "a table of package type = argv list")
    out: dict[str, tuple[str, ...]] = {}
    for kind, argv in value.items():
        key = f"installers.{kind}"
        if kind not in PACKAGE_TYPES:
            raise bad(key, kind, "one of: " + ", ".join(PACKAGE_TYPES))
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise bad(key, argv, "a non-empty list of non-empty strings (argv)")
        if not any(PLACEHOLDER in a for a in argv):
            raise bad(key, argv, f"an argv containing {PLACEHOLDER}")
        if PLACEHOLDER in argv[0]:
            raise bad(key, argv, "a command before the package")
        out[kind] = tuple(argv)
    return out
