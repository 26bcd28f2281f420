"""Configuration: load ``lwm2md.toml`` into frozen, validated dataclasses.

Contract: :func:`load_config` and :func:`parse_config` either return a fully
validated :class:`Config` or raise :class:`~lwm2md.errors.ConfigError` naming the file, the key path
(``server[1].lifetime``, ``sensor[0].objects[2]``), the value found and what
was expected. PSK keys never appear in an error message or a repr.

Validation is table-driven: each TOML table is a :class:`_Table` mapping every
allowed key to a checker; absent keys take the dataclass defaults. Adding a
table means a dataclass, a ``_Table``, an entry in ``_TOP`` and a line in
:func:`parse_config` (plus any cross-key checks).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, NoReturn, get_args

from lwm2md.errors import BadRequest, ConfigError
from lwm2md.firmware.settings import FirmwareConfig, parse_firmware
from lwm2md.model.path import Path

DEFAULT_CONFIG_PATH: Final = "/etc/lwm2md/lwm2md.toml"
MACHINE_ID_PATH: Final = "/etc/machine-id"

Security = Literal["nosec", "psk"]
Lwm2mVersion = Literal["1.0", "1.1"]
ContentFormat = Literal["senml-cbor", "senml-json", "tlv", "lwm2m-cbor"]
LogLevel = Literal["debug", "info", "warning", "error"]

DEFAULT_PORTS: Final[Mapping[str, int]] = {"coap": 5683, "coaps": 5684}
# Binding values the LwM2M 1.0 Server object allows; 1.1 allows any set of U/T/S/N (+Q).
BINDINGS_1_0: Final = ("U", "UQ", "S", "SQ", "US", "UQS")
REDACTED: Final = "<redacted>"
MAX_PSK_KEY: Final = 16  # tinydtls keeps the key in a 16-byte buffer
MAX_PSK_IDENTITY: Final = 32


def default_endpoint(machine_id_path: str | os.PathLike[str] = MACHINE_ID_PATH) -> str:
    """Return ``lwm2md-`` plus the first 12 hex digits of the machine id.

    Falls back to ``lwm2md-<hostname>`` when the file is missing, unreadable or
    does not start with 12 hex digits.
    """
    try:
        with open(machine_id_path, encoding="ascii") as fh:
            ident = fh.read().strip().lower()
    except (OSError, UnicodeDecodeError):
        ident = ""
    if len(ident) >= 12 and all(c in string.hexdigits for c in ident[:12]):
        return "lwm2md-" + ident[:12]
    return "lwm2md-" + (socket.gethostname() or "localhost")


_URI_RE = re.compile(
    r"(?P<scheme>coaps?)://(?:\[(?P<ip6>[^\]]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d{1,5}))?/?",
    re.IGNORECASE,
)
_SMS_URI_RE = re.compile(r"sms://(?P<number>\+?[0-9]{3,20})/?", re.IGNORECASE)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def parse_server_uri(uri: str) -> tuple[str, str, int]:
    """Split ``coap[s]://host[:port][/]`` into (scheme, host, port); raise ValueError if malformed.

    The scheme is lower-cased, an IPv6 host is returned without brackets and a
    missing port becomes 5683 (coap) or 5684 (coaps). Paths, queries and
    user info are rejected. ``sms://+MSISDN`` (a server reached only by SMS)
    gives ("sms", "+MSISDN", 0).
    """
    sms = _SMS_URI_RE.fullmatch(uri)
    if sms is not None:
        return "sms", sms["number"], 0
    match = _URI_RE.fullmatch(uri)
    if match is None:
        raise ValueError(f"malformed server URI {uri!r}")
    scheme = match["scheme"].lower()
    if match["ip6"] is not None:
        host = match["ip6"]
        ipaddress.IPv6Address(host)  # raises ValueError
    else:
        host = match["host"]
        if re.fullmatch(r"[0-9.]+", host):
            ipaddress.IPv4Address(host)
        elif not _HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"malformed host name {host!r}")
    port = int(match["port"]) if match["port"] is not None else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return scheme, host, port


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """``[device]``: identity for Register and the Device object; None = derive from the host."""

    endpoint: str = field(default_factory=lambda: default_endpoint())
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    hardware_version: str | None = None
    reboot_command: tuple[str, ...] | None = None  # argv; None = Reboot does nothing
    factory_reset_command: tuple[str, ...] | None = None  # argv; None = do nothing
    timezone: str | None = None
    utc_offset: str | None = None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One ``[[server]]``: an LwM2M server account (Security + Server object instances).

    ``scheme``, ``host`` and ``port`` are derived from ``uri``. ``psk_key``
    holds the key bytes (read from ``psk_key_file`` at load time when that is
    used) and is excluded from repr. Construction raises ValueError only for
    a malformed ``uri``; all other validation happens in :func:`parse_config`.
    """

    uri: str
    short_id: int
    lifetime: int = 300
    binding: str = "U"
    awake_window: float | None = None  # queue mode, seconds; None = MAX_TRANSMIT_WAIT from [coap]
    sms_number: str | None = None  # the server's MSISDN ("+4917..."), for bindings with S
    default_pmin: int = 0
    default_pmax: int = 0  # 0 = no maximum period
    notification_storing: bool = True
    disable_timeout: int = 86400
    trigger: bool = False
    registration_priority: int | None = None
    initial_registration_delay: int = 0
    registration_failure_block: bool = False
    bootstrap_on_registration_failure: bool = True
    communication_retry_count: int = 5
    communication_retry_timer: int = 60
    sequence_delay_timer: int = 86400
    sequence_retry_count: int = 1
    lwm2m_version: Lwm2mVersion = "1.1"
    security: Security = "nosec"
    psk_identity: str | None = None
    psk_key: bytes | None = field(default=None, repr=False)
    psk_key_file: str | None = None
    content_format: ContentFormat = "senml-cbor"
    scheme: str = field(init=False)
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        scheme, host, port = parse_server_uri(self.uri)
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """One ``[[sensor]]``: a driver feeding object instances.

    ``instances`` is None (assigned later, in order) or one id per entry of
    ``objects``. ``options`` holds every other key of the table, untouched,
    for the driver; treat it as read-only.
    """

    driver: str
    objects: tuple[int, ...]
    instances: tuple[int, ...] | None = None
    interval: float = 10.0
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False)


GpioKind = Literal["input", "output", "button"]
Edge = Literal["rising", "falling", "both"]
PinFactory = Literal["lgpio", "rpigpio", "pigpio", "native", "mock"]


@dataclass(frozen=True, slots=True)
class GpioConfig:
    """``[[gpio]]``: one pin as 3200 Digital Input, 3201 Digital Output or 3347 Push Button.

    ``pin`` is a BCM number or a gpiozero pin name (``"GPIO17"``, ``"BOARD11"``).
    """

    kind: GpioKind
    pin: int | str
    instance: int | None = None
    pull_up: bool | None = None  # None: input floats (needs active_high), button pulls up
    active_high: bool = True
    debounce_ms: int = 0
    edge: Edge = "rising"
    initial: bool = False
    application_type: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """``[platform]``: board-specific choices; ``gpio_pin_factory`` None = gpiozero's default."""

    gpio_pin_factory: PinFactory | None = None


@dataclass(frozen=True, slots=True)
class ModemConfig:
    """``[modem]``: the cellular modem's AT port (device path or ``socket://host:port``)."""

    port: str
    baudrate: int = 115200
    interface: str | None = "wwan0"
    interval: float = 60.0
    vendor: str | None = None
    sms: bool = False  # carry CoAP over SMS for servers with an sms_number (binding S)
    own_number: str | None = None  # this SIM's MSISDN; unset: asked from the modem (AT+CNUM)


@dataclass(frozen=True, slots=True)
class SendConfig:
    """``[send]``: periodic LwM2M Send of canonical paths; ``short_id`` None = first server."""

    paths: tuple[str, ...] = ()
    interval: float = 60.0
    short_id: int | None = None
    enabled: bool = False


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """``[coap]``: the local CoAP endpoint; ``local_port`` 0 = ephemeral."""

    bind_address: str = "::"
    local_port: int = 0
    ack_timeout: float = 2.0
    max_retransmit: int = 4
    confirmable_notifications: bool = False  # False: NON, with a CON at least once a day


@dataclass(frozen=True, slots=True)
class BootstrapConfig:
    """``[bootstrap]``: the Bootstrap-Server account of the factory configuration.

    ``server`` carries the URI and security settings checked like a
    ``[[server]]`` table's (its short_id is not used). ``hold_off`` is the
    Client Hold Off Time (/0/x/11), ``account_timeout`` the Bootstrap-Server
    Account Timeout (/0/x/12, 0 = keep it), ``session_timeout`` how long a
    bootstrap may go quiet before it is abandoned, ``pack`` whether to ask
    for a Bootstrap-Pack (GET /bspack) first.
    """

    server: ServerConfig
    hold_off: int = 0
    account_timeout: int = 0
    session_timeout: float = 300.0
    pack: bool = False

    @property
    def uri(self) -> str:
        return self.server.uri


@dataclass(frozen=True, slots=True)
class StoringConfig:
    """``[storing]``: notifications kept on disk while a server is unreachable."""

    max_notifications: int = 1000


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``."""

    level: LogLevel = "info"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration; ``source`` is the file path or ``<default>``."""

    device: DeviceConfig
    servers: tuple[ServerConfig, ...]
    sensors: tuple[SensorConfig, ...] = ()
    gpios: tuple[GpioConfig, ...] = ()
    modem: ModemConfig | None = None
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    send: SendConfig = field(default_factory=SendConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    bootstrap: BootstrapConfig | None = None
    storing: StoringConfig = field(default_factory=StoringConfig)
    firmware: FirmwareConfig | None = None
    objects_dir: str = "/etc/lwm2md/objects"
    state_dir: str = "/var/lib/lwm2md"
    source: str = "<default>"


# --------------------------------------------------------------------------- checkers

_Check = Callable[[Any], Any]


class _Absent:
    """The 'found' of a required key that is missing."""

    def __repr__(self) -> str:
        return "nothing"


_ABSENT: Final = _Absent()
_VALUE: Final = object()  # _Bad.found placeholder: "the value that was checked"


class _Bad(Exception):
    """Raised by a checker; the reader turns it into a ConfigError.

    ``suffix`` extends the key path (``[2]`` for a list element) and ``found``
    overrides the reported value.
    """

    def __init__(self, expected: str, *, suffix: str = "", found: object = _VALUE) -> None:
        super().__init__(expected)
        self.expected = expected
        self.suffix = suffix
        self.found = found


def _integer(lo: int, hi: int | None = None) -> _Check:
    """An int (never a bool) in ``lo..hi``."""
    expected = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"

    def check(value: Any) -> int:
        if type(value) is not int or value < lo or (hi is not None and value > hi):
            raise _Bad(expected)
        return value

    return check


def _positive_number(value: Any) -> float:
    """A finite int or float > 0 (never a bool), as float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number) and number > 0:
            return number
    raise _Bad("a finite number > 0")


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise _Bad("true or false")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a non-empty string")
    return value


def _choice(options: tuple[str, ...]) -> _Check:
    """One of the given strings."""
    expected = "one of: " + ", ".join(repr(o) for o in options)

    def check(value: Any) -> str:
        if value not in options or not isinstance(value, str):
            raise _Bad(expected)
        return value

    return check


def _list(item: _Check, *, min_len: int = 1) -> _Check:
    """A list of values each passing ``item``, as a tuple; element errors get ``[i]``."""
    expected = "a non-empty list" if min_len else "a list"

    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list) or len(value) < min_len:
            raise _Bad(expected)
        out = []
        for i, element in enumerate(value):
            try:
                out.append(item(element))
            except _Bad as bad:
                found = element if bad.found is _VALUE else bad.found
                raise _Bad(bad.expected, suffix=f"[{i}]{bad.suffix}", found=found) from None
        return tuple(out)

    return check


def _is_table(header: str) -> _Check:
    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"a table ({header})")
        return value

    return check


def _is_table_array(header: str) -> _Check:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise _Bad(f"an array of tables ({header})")
        return value

    return check


def _server_uri(value: Any) -> str:
    try:
        parse_server_uri(value if isinstance(value, str) else "")
    except ValueError:
        raise _Bad(
            "a URI coap://host[:port], coaps://host[:port] (IPv6 host in brackets) or sms://+MSISDN"
        ) from None
    return str(value)


def _binding(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value
        or any(c not in "UQSNT" for c in value)
        or len(set(value)) != len(value)
        or value == "Q"
    ):
        raise _Bad("binding letters from U, Q, S, N, T, each at most once, not Q alone")
    return value


def _hex_key(value: Any) -> bytes:
    try:
        key = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        key = b""
    if not key:
        raise _Bad("a non-empty string of hex digit pairs")
    return key


def _msisdn(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\+?[0-9]{3,20}", value):
        return value
    raise _Bad("a phone number in international format such as '+491701234567'")


def _endpoint_name(value: Any) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or any(c.isspace() for c in value):
        raise _Bad("a non-empty endpoint name without spaces or control characters")
    return value


def _utc_offset(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[+-](0\d|1[0-4]):[0-5]\d", value):
        raise _Bad("a UTC offset like '+02:00' or '-05:30'")
    return value


def _ip_literal(value: Any) -> str:
    try:
        ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        raise _Bad("an IP address literal such as '::' or '0.0.0.0'") from None
    return str(value)


def _lwm2m_path(value: Any) -> str:
    """An object-level or deeper LwM2M path, returned in canonical ``/o/i/r`` form."""
    try:
        path = Path.parse(value) if isinstance(value, str) else Path()
    except (BadRequest, ValueError):
        path = Path()
    if path.level == 0:
        raise _Bad("an LwM2M path like '/3303/0/5700' (object level or deeper)")
    return str(path)


# --------------------------------------------------------------------------- tables


def _pin(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 1023:
            return value
        raise _Bad("a GPIO number 0..1023 or a pin name such as 'GPIO17' or 'BOARD11'")
    if isinstance(value, str) and value and value.isascii() and value.replace("_", "").isalnum():
        return value
    raise _Bad("a GPIO number 0..1023 or a pin name such as 'GPIO17' or 'BOARD11'")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@dataclass(frozen=True)
class _Table:
    """How to check one TOML table: a checker per allowed key.

    ``required`` keys must be present; ``secret`` keys are reported as
    ``'<redacted>'``; an ``open`` table passes unknown keys back as extras
    instead of rejecting them.
    """

    checks: Mapping[str, _Check]
    required: frozenset[str] = frozenset()
    secret: frozenset[str] = frozenset()
    open: bool = False

    def read(self, raw: object, prefix: str, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (checked values of present keys, unchecked extras); raise ConfigError."""
        if not isinstance(raw, dict):
            raise ConfigError(source, prefix, raw, "a table")
        values: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for name, value in raw.items():
            check = self.checks.get(name)
            if check is None:
                if self.open:
                    extras[name] = value
                    continue
                raise ConfigError(source, _key(prefix, name), name, "one of: " + ", ".join(self.checks))
            try:
                values[name] = check(value)
            except _Bad as bad:
                found = REDACTED if name in self.secret else value if bad.found is _VALUE else bad.found
                raise ConfigError(source, _key(prefix, name) + bad.suffix, found, bad.expected) from None
        for name in self.checks:
            if name in self.required and name not in values:
                raise ConfigError(source, _key(prefix, name), _ABSENT, f"a value for required key {name!r}")
        return values, extras


_SECONDS = _integer(0)
_ID16 = _integer(0, 65535)

_TOP = _Table(
    {
        "objects_dir": _text,
        "state_dir": _text,
        "device": _is_table("[device]"),
        "server": _is_table_array("[[server]]"),
        "sensor": _is_table_array("[[sensor]]"),
        "gpio": _is_table_array("[[gpio]]"),
        "modem": _is_table("[modem]"),
        "platform": _is_table("[platform]"),
        "send": _is_table("[send]"),
        "coap": _is_table("[coap]"),
        "logging": _is_table("[logging]"),
        "bootstrap": _is_table("[bootstrap]"),
        "storing": _is_table("[storing]"),
        "firmware": _is_table("[firmware]"),
    }
)

_DEVICE = _Table(
    {
        "endpoint": _endpoint_name,
        "manufacturer": _text,
        "model": _text,
        "serial": _text,
        "hardware_version": _text,
        "reboot_command": _list(_text),
        "factory_reset_command": _list(_text),
        "timezone": _text,
        "utc_offset": _utc_offset,
    }
)

_SERVER = _Table(
    {
        "uri": _server_uri,
        "short_id": _integer(1, 65534),
        "lifetime": _integer(1),
        "binding": _binding,
        "awake_window": _positive_number,
        "sms_number": _msisdn,
        "default_pmin": _SECONDS,
        "default_pmax": _SECONDS,
        "notification_storing": _boolean,
        "disable_timeout": _SECONDS,
        "trigger": _boolean,
        "registration_priority": _integer(0),
        "initial_registration_delay": _SECONDS,
        "registration_failure_block": _boolean,
        "bootstrap_on_registration_failure": _boolean,
        "communication_retry_count": _integer(1),
        "communication_retry_timer": _SECONDS,
        "sequence_delay_timer": _SECONDS,
        "sequence_retry_count": _integer(1),
        "lwm2m_version": _choice(get_args(Lwm2mVersion)),
        "security": _choice(get_args(Security)),
        "psk_identity": _text,
        "psk_key": _hex_key,
        "psk_key_file": _text,
        "content_format": _choice(get_args(ContentFormat)),
    },
    required=frozenset({"uri", "short_id"}),
    secret=frozenset({"psk_key"}),
)

_SENSOR = _Table(
    {
        "driver": _text,
        "objects": _list(_ID16),
        "instances": _list(_integer(0, 65534)),
        "interval": _positive_number,
        "name": _text,
    },
    required=frozenset({"driver", "objects"}),
    open=True,
)

_SEND = _Table(
    {
        "paths": _list(_lwm2m_path, min_len=0),
        "interval": _positive_number,
        "short_id": _integer(1, 65534),
        "enabled": _boolean,
    }
)

_COAP = _Table(
    {
        "bind_address": _ip_literal,
        "local_port": _ID16,
        "ack_timeout": _positive_number,
        "max_retransmit": _integer(0),
        "confirmable_notifications": _boolean,
    }
)

_LOGGING = _Table({"level": _choice(get_args(LogLevel))})

_BOOTSTRAP_ACCOUNT_KEYS = ("uri", "security", "psk_identity", "psk_key", "psk_key_file")
_BOOTSTRAP = _Table(
    {
        **{name: _SERVER.checks[name] for name in _BOOTSTRAP_ACCOUNT_KEYS},
        "hold_off": _SECONDS,
        "account_timeout": _SECONDS,
        "session_timeout": _positive_number,
        "pack": _boolean,
    },
    required=frozenset({"uri"}),
    secret=frozenset({"psk_key"}),
)

_STORING = _Table({"max_notifications": _integer(1)})

_GPIO = _Table(
    {
        "kind": _choice(get_args(GpioKind)),
        "pin": _pin,
        "instance": _integer(0, 65534),
        "pull_up": _boolean,
        "active_high": _boolean,
        "debounce_ms": _integer(0, 60000),
        "edge": _choice(get_args(Edge)),
        "initial": _boolean,
        "application_type": _text,
    },
    required=frozenset({"kind", "pin"}),
)

_PLATFORM = _Table({"gpio_pin_factory": _choice(get_args(PinFactory))})

_MODEM = _Table(
    {
        "port": _text,
        "baudrate": _integer(300, 4_000_000),
        "interface": _text,
        "interval": _positive_number,
        "vendor": _text,
        "sms": _boolean,
        "own_number": _msisdn,
    },
    required=frozenset({"port"}),
)


# --------------------------------------------------------------------------- assembly


def _fail(source: str, key: str, found: object, expected: str) -> NoReturn:
    raise ConfigError(source, key, found, expected)


def _read_key_file(path: str, source: str, key: str) -> bytes:
    """Read a PSK file: hex digit pairs (whitespace ignored) are decoded, anything else is raw bytes."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        _fail(source, key, path, f"a readable key file ({exc.strerror or exc})")
    text = b"".join(data.split())
    if not text:
        _fail(source, key, path, "a key file that is not empty or blank")
    if len(text) % 2 == 0 and all(chr(b) in string.hexdigits for b in text):
        return bytes.fromhex(text.decode("ascii"))
    return data


def _server(raw: object, prefix: str, source: str, base_dir: str | None) -> ServerConfig:
    values, _ = _SERVER.read(raw, prefix, source)
    scheme = parse_server_uri(values["uri"])[0]
    values.setdefault("security", "psk" if scheme == "coaps" else "nosec")
    server = ServerConfig(**values)

    def bad(name: str, found: object, expected: str) -> NoReturn:
        _fail(source, f"{prefix}.{name}", found, expected)

    if server.lwm2m_version == "1.0" and server.binding not in BINDINGS_1_0:
        bad("binding", server.binding, "for lwm2m_version '1.0' one of: " + ", ".join(BINDINGS_1_0))
    if server.default_pmax and server.default_pmax < server.default_pmin:
        bad("default_pmax", server.default_pmax, f"0 or a value >= default_pmin ({server.default_pmin})")
    if scheme == "sms":
        if set(server.binding) - {"S", "Q"} or "S" not in server.binding:
            bad("binding", server.binding, "'S' or 'SQ' for an sms:// server (it has no IP address)")
        if server.sms_number is None:
            server = replace(server, sms_number=server.host)
        elif server.sms_number != server.host:
            bad("sms_number", server.sms_number, f"the number of the URI ({server.host}) or nothing")

    psk_given = [name for name in ("psk_identity", "psk_key", "psk_key_file") if name in values]
    if server.security == "nosec":
        if scheme == "coaps":
            bad("security", "nosec", "'psk' for a coaps:// URI")
        if psk_given:
            name = psk_given[0]
            found = REDACTED if name == "psk_key" else values[name]
            bad(name, found, "no PSK settings when security = 'nosec'")
        return server
    if scheme != "coaps":
        bad("security", "psk", "'nosec' for a coap:// URI (use coaps:// for PSK)")
    if server.psk_identity is None:
        bad("psk_identity", _ABSENT, "a PSK identity when security = 'psk'")
    if server.psk_key is not None and server.psk_key_file is not None:
        bad("psk_key_file", server.psk_key_file, "only one of psk_key and psk_key_file")
    if server.psk_key_file is not None:
        path = os.path.join(base_dir or "", server.psk_key_file)
        key = _read_key_file(path, source, f"{prefix}.psk_key_file")
        server = replace(server, psk_key=key, psk_key_file=path)
    if server.psk_key is None:
        bad("psk_key", _ABSENT, "psk_key or psk_key_file when security = 'psk'")
    # The DTLS stack (tinydtls) holds at most a 16-byte key and a 32-byte identity.
    if not 1 <= len(server.psk_key) <= MAX_PSK_KEY:
        name = "psk_key_file" if server.psk_key_file else "psk_key"
        bad(name, REDACTED, f"a key of 1 to {MAX_PSK_KEY} bytes, not {len(server.psk_key)}")
    assert server.psk_identity is not None  # checked above
    if not 1 <= len(server.psk_identity.encode()) <= MAX_PSK_IDENTITY:
        bad("psk_identity", server.psk_identity, f"1 to {MAX_PSK_IDENTITY} bytes of identity")
    return server


def _bootstrap(raw: object, source: str, base_dir: str | None) -> BootstrapConfig:
    values, _ = _BOOTSTRAP.read(raw, "bootstrap", source)
    assert isinstance(raw, dict)  # checked by read()
    if parse_server_uri(values["uri"])[0] == "sms":
        _fail(source, "bootstrap.uri", values["uri"], "a coap:// or coaps:// URI")
    account = {name: raw[name] for name in _BOOTSTRAP_ACCOUNT_KEYS if name in raw}
    for name in _BOOTSTRAP_ACCOUNT_KEYS:
        values.pop(name, None)
    server = _server({**account, "short_id": 1}, "bootstrap", source, base_dir)
    return BootstrapConfig(server=server, **values)


def _servers(
    raw: object, source: str, base_dir: str | None, *, optional: bool = False
) -> tuple[ServerConfig, ...]:
    if not raw:
        if optional and raw is None:
            return ()
        _fail(source, "server", _ABSENT if raw is None else raw,
              "at least one [[server]] table (or a [bootstrap] table)")  # fmt: skip
    assert isinstance(raw, list)  # checked by _TOP
    servers: list[ServerConfig] = []
    owner: dict[int, int] = {}
    for i, table in enumerate(raw):
        server = _server(table, f"server[{i}]", source, base_dir)
        if server.short_id in owner:
            _fail(
                source,
                f"server[{i}].short_id",
                server.short_id,
                f"a short_id not already used by server[{owner[server.short_id]}]",
            )
        owner[server.short_id] = i
        servers.append(server)
    return tuple(servers)


def _sensor_drivers() -> list[str]:
    from lwm2md.drivers.registry import sensor_drivers

    return sensor_drivers()


def _sensors(raw: list[Any], source: str) -> tuple[SensorConfig, ...]:
    sensors: list[SensorConfig] = []
    owner: dict[tuple[int, int], int] = {}
    for i, table in enumerate(raw):
        prefix = f"sensor[{i}]"
        values, extras = _SENSOR.read(table, prefix, source)
        sensor = SensorConfig(**values, options=extras)
        known = _sensor_drivers()
        if sensor.driver not in known:
            _fail(source, f"{prefix}.driver", sensor.driver, "one of: " + ", ".join(known))
        if sensor.instances is not None:
            if len(sensor.instances) != len(sensor.objects):
                _fail(
                    source,
                    f"{prefix}.instances",
                    list(sensor.instances),
                    f"a list of {len(sensor.objects)} instance ids, one per entry of objects",
                )
            for k, pair in enumerate(zip(sensor.objects, sensor.instances, strict=True)):
                if pair in owner:
                    _fail(
                        source,
                        f"{prefix}.instances[{k}]",
                        pair[1],
                        f"an instance id of object {pair[0]} not already used by sensor[{owner[pair]}]",
                    )
                owner[pair] = i
        sensors.append(sensor)
    return tuple(sensors)


GPIO_OBJECTS: dict[str, int] = {"input": 3200, "output": 3201, "button": 3347}


def _gpios(raw: list[Any], sensors: tuple[SensorConfig, ...], source: str) -> tuple[GpioConfig, ...]:
    gpios: list[GpioConfig] = []
    pins: dict[int | str, int] = {}
    taken: dict[tuple[int, int], str] = {}
    for i, sensor in enumerate(sensors):
        for pair in zip(sensor.objects, sensor.instances or (), strict=False):
            taken[pair] = f"sensor[{i}]"
    for i, table in enumerate(raw):
        prefix = f"gpio[{i}]"
        values, _ = _GPIO.read(table, prefix, source)
        gpio = GpioConfig(**values)
        if gpio.pin in pins:
            _fail(source, f"{prefix}.pin", gpio.pin, f"a pin not already used by gpio[{pins[gpio.pin]}]")
        pins[gpio.pin] = i
        if gpio.instance is not None:
            pair = (GPIO_OBJECTS[gpio.kind], gpio.instance)
            if pair in taken:
                expected = f"an instance id of object {pair[0]} not already used by {taken[pair]}"
                _fail(source, f"{prefix}.instance", gpio.instance, expected)
            taken[pair] = prefix
        gpios.append(gpio)
    return tuple(gpios)


def _send(raw: object, servers: tuple[ServerConfig, ...], source: str) -> SendConfig:
    values, _ = _SEND.read(raw, "send", source)
    send = SendConfig(**values)
    seen: dict[str, int] = {}
    for k, path in enumerate(send.paths):
        if path in seen:
            _fail(source, f"send.paths[{k}]", path, f"a path not already listed at send.paths[{seen[path]}]")
        seen[path] = k
    ids = [s.short_id for s in servers]
    if send.short_id is not None and send.short_id not in ids:
        expected = "the short_id of a [[server]]: one of " + ", ".join(map(str, ids))
        _fail(source, "send.short_id", send.short_id, expected)
    if "enabled" not in values:
        send = replace(send, enabled=bool(send.paths))
    elif send.enabled and not send.paths:
        _fail(source, "send.paths", list(send.paths), "at least one path when send.enabled = true")
    return send


def _check_sms(servers: tuple[ServerConfig, ...], modem: ModemConfig | None, source: str) -> None:
    """A binding with S needs the server's sms_number and ``[modem] sms = true``."""
    for i, server in enumerate(servers):
        if "S" not in server.binding:
            continue
        if server.sms_number is None:
            expected = f"the server's MSISDN for binding {server.binding!r}"
            _fail(source, f"server[{i}].sms_number", _ABSENT, expected)
        if modem is None or not modem.sms:
            found = "no [modem]" if modem is None else modem.sms
            _fail(source, "modem.sms", found, f"true for server[{i}]'s binding {server.binding!r}")


def parse_config(data: dict[str, Any], source: str, *, base_dir: str | None = None) -> Config:
    """Validate a parsed TOML document; ``source`` names it in errors and in ``Config.source``.

    Relative ``psk_key_file`` paths are resolved against ``base_dir`` (the
    config file's directory when called by :func:`load_config`; the working
    directory when None), and the key file is read here. Raises ConfigError.
    """
    top, _ = _TOP.read(data, "", source)
    device, _ = _DEVICE.read(top.get("device", {}), "device", source)
    bootstrap = _bootstrap(top["bootstrap"], source, base_dir) if "bootstrap" in top else None
    servers = _servers(top.get("server"), source, base_dir, optional=bootstrap is not None)
    storing, _ = _STORING.read(top.get("storing", {}), "storing", source)
    firmware = parse_firmware(top["firmware"], source) if "firmware" in top else None
    coap, _ = _COAP.read(top.get("coap", {}), "coap", source)
    logging, _ = _LOGGING.read(top.get("logging", {}), "logging", source)
    dirs = {name: top[name] for name in ("objects_dir", "state_dir") if name in top}
    sensors = _sensors(top.get("sensor", []), source)
    modem = ModemConfig(**_MODEM.read(top["modem"], "modem", source)[0]) if "modem" in top else None
    _check_sms(servers, modem, source)
    return Config(
        device=DeviceConfig(**device),
        servers=servers,
        sensors=sensors,
        gpios=_gpios(top.get("gpio", []), sensors, source),
        modem=modem,
        platform=PlatformConfig(**_PLATFORM.read(top.get("platform", {}), "platform", source)[0]),
        send=_send(top.get("send", {}), servers, source),
        endpoint=EndpointConfig(**coap),
        logging=LoggingConfig(**logging),
        bootstrap=bootstrap,
        storing=StoringConfig(**storing),
        firmware=firmware,
        source=source,
        **dirs,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML config file.

    A missing or unreadable file, bytes that are not UTF-8 or a TOML syntax
    error raise ConfigError with key ``""`` (the TOML line/column is in
    ``found``); invalid content raises ConfigError from :func:`parse_config`.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(source, "", exc.strerror or str(exc), "a readable TOML file") from exc
    except UnicodeDecodeError as exc:
        found = f"a non-UTF-8 byte at offset {exc.start}"
        raise ConfigError(source, "", found, "UTF-8 encoded TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", str(exc), "valid TOML") from exc
    return parse_config(data, source, base_dir=os.path.dirname(os.path.abspath(source)))

