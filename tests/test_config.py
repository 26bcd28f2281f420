"""Tests for lwm2md.config: the example file, defaults, and every kind of error."""

from __future__ import annotations

import dataclasses
import re
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2md import config
from lwm2md.config import (
    Config,
    DeviceConfig,
    EndpointConfig,
    LoggingConfig,
    SendConfig,
    SensorConfig,
    ServerConfig,
    default_endpoint,
    load_config,
    parse_config,
)
from lwm2md.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "lwm2md.toml"
SERVER = '[[server]]\nuri = "coap://127.0.0.1"\nshort_id = 1\n'
SERVER2 = '[[server]]\nuri = "coap://192.0.2.1"\nshort_id = 2\n'
PSK_HEX = "c0ffee5ec7e7c0ffee5ec7e7"
COAPS = '[[server]]\nuri = "coaps://192.0.2.1"\nshort_id = 1\n'
PSK_SERVER = COAPS + f'psk_identity = "gw"\npsk_key = "{PSK_HEX}"\n'
NO_URI = "[[server]]\nshort_id = 1\n"


def write(tmp_path: Path, text: str, name: str = "lwm2md.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value, path


# --------------------------------------------------------------------------- valid input


def test_example_file_loads_with_every_hardware_table() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.source == str(EXAMPLE)
    assert cfg.servers[0].uri == "coap://127.0.0.1:5683"
    assert [(s.driver, s.objects) for s in cfg.sensors] == [
        ("bme280", (3303, 3304, 3315)),
        ("sht4x", (3303, 3304)),
        ("bh1750", (3301,)),
        ("ina219", (3316, 3317, 3328)),
        ("ads1115", (3202,)),
    ]
    assert cfg.sensors[0].options == {"bus": 1, "address": 0x76}
    # Every server key written in the example is the default.
    assert cfg.servers[0] == parse_config({"server": [{"uri": "coap://127.0.0.1:5683", "short_id": 1}]},
                                          "x").servers[0]  # fmt: skip


def test_example_file_shows_every_key() -> None:
    text = EXAMPLE.read_text()
    classes: list[type[Any]] = [DeviceConfig, ServerConfig, SensorConfig, SendConfig, EndpointConfig]
    names = {f.name for cls in classes for f in dataclasses.fields(cls) if f.init} - {"options"}
    names |= {"level", "objects_dir", "state_dir"}
    missing = sorted(n for n in names if not re.search(rf"^(# )?{n} = ", text, re.MULTILINE))
    assert missing == []


def test_example_commented_tmp102_block_parses_when_uncommented(tmp_path: Path) -> None:
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index('# driver = "tmp102"') - 1
    block = [line[2:] for line in lines[start : start + 5]]
    cfg = load_config(write(tmp_path, SERVER + "\n".join(block) + "\n"))
    sensor = cfg.sensors[0]
    assert (sensor.driver, sensor.objects, sensor.options) == ("tmp102", (3303,), {"bus": 1, "address": 0x49})


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SERVER))
    s = cfg.servers[0]
    assert (s.port, s.lifetime, s.binding, s.default_pmin, s.default_pmax) == (5683, 300, "U", 0, 0)
    assert (s.notification_storing, s.disable_timeout, s.trigger, s.registration_priority) == (
        True,
        86400,
        False,
        None,
    )
    assert (s.initial_registration_delay, s.registration_failure_block) == (0, False)
    assert s.bootstrap_on_registration_failure is True
    assert (s.communication_retry_count, s.communication_retry_timer) == (5, 60)
    assert (s.sequence_delay_timer, s.sequence_retry_count) == (86400, 1)
    assert (s.lwm2m_version, s.security, s.content_format) == ("1.1", "nosec", "senml-cbor")
    assert s.psk_key is None and s.psk_identity is None
    assert cfg.sensors == ()
    assert cfg.send == SendConfig(paths=(), interval=60.0, short_id=None, enabled=False)
    assert cfg.endpoint == EndpointConfig(bind_address="::", local_port=0, ack_timeout=2.0, max_retransmit=4)
    assert cfg.logging == LoggingConfig(level="info")
    assert (cfg.objects_dir, cfg.state_dir) == ("/etc/lwm2md/objects", "/var/lib/lwm2md")


@pytest.mark.parametrize(
    ("uri", "scheme", "host", "port"),
    [
        ("coap://example.com", "coap", "example.com", 5683),
        ("coap://[::1]", "coap", "::1", 5683),
        ("coap://[2001:db8::5]:61616/", "coap", "2001:db8::5", 61616),
        ("coaps://192.0.2.7", "coaps", "192.0.2.7", 5684),
        ("COAPS://lwm2m.example:5690", "coaps", "lwm2m.example", 5690),
    ],
)
def test_server_uri_is_split(uri: str, scheme: str, host: str, port: int) -> None:
    table: dict[str, Any] = {"uri": uri, "short_id": 1}
    if scheme == "coaps":
        table |= {"psk_identity": "gw", "psk_key": PSK_HEX}
    cfg = parse_config({"server": [table]}, "t")
    s = cfg.servers[0]
    assert (s.scheme, s.host, s.port) == (scheme, host, port)
    assert s.security == ("nosec" if scheme == "coap" else "psk")


def test_sensor_options_instances_and_send(tmp_path: Path) -> None:
    text = (
        SERVER
        + SERVER2
        + '[[sensor]]\ndriver = "bme280"\nobjects = [3303, 3304]\ninstances = [0, 0]\n'
        + 'interval = 5\nname = "outdoor"\nbus = 1\naddress = 0x76\ncalibration = {offset = -0.5}\n'
        + '[[sensor]]\ndriver = "simulated"\nobjects = [3303]\ninstances = [1]\n'
        + '[send]\npaths = ["3303/0/5700", "/3304"]\nshort_id = 2\n'
    )
    cfg = load_config(write(tmp_path, text))
    first = cfg.sensors[0]
    assert first.instances == (0, 0) and first.interval == 5.0 and isinstance(first.interval, float)
    assert first.name == "outdoor"
    assert first.options == {"bus": 1, "address": 0x76, "calibration": {"offset": -0.5}}
    assert cfg.send.paths == ("/3303/0/5700", "/3304")
    assert cfg.send.enabled is True  # defaults to true once paths are given
    assert cfg.send.short_id == 2


def test_device_table(tmp_path: Path) -> None:
    text = (
        '[device]\nendpoint = "gw-42"\nmanufacturer = "ACME"\nreboot_command = ["/sbin/reboot", "-f"]\n'
        'utc_offset = "-05:30"\ntimezone = "America/New_York"\n' + SERVER
    )
    device = load_config(write(tmp_path, text)).device
    assert device.endpoint == "gw-42"
    assert device.manufacturer == "ACME" and device.model is None
    assert device.reboot_command == ("/sbin/reboot", "-f")
    assert device.factory_reset_command is None
    assert (device.utc_offset, device.timezone) == ("-05:30", "America/New_York")


def test_binding_accepts_valid_combinations() -> None:
    for version, binding in [("1.0", "UQS"), ("1.0", "SQ"), ("1.1", "T"), ("1.1", "UN"), ("1.1", "TQ")]:
        table = {"uri": "coap://h", "short_id": 1, "lwm2m_version": version, "binding": binding}
        data: dict[str, Any] = {"server": [table]}
        if "S" in binding:
            table["sms_number"] = "+4917012345"
            data["modem"] = {"port": "/dev/ttyUSB2", "sms": True}
        assert parse_config(data, "t").servers[0].binding == binding


def test_config_is_frozen() -> None:
    cfg = load_config(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.servers[0].lifetime = 5  # type: ignore[misc]


# --------------------------------------------------------------------------- endpoint default


def test_default_endpoint_from_machine_id(tmp_path: Path) -> None:
    mid = write(tmp_path, "0123456789ABCDEF0123456789abcdef\n", "machine-id")
    assert default_endpoint(mid) == "lwm2md-0123456789ab"


@pytest.mark.parametrize("content", [None, "", "not-hex-at-all-xyz\n", "0123\n"])
def test_default_endpoint_falls_back_to_hostname(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "gw-test")
    mid = tmp_path / "machine-id"
    if content is not None:
        mid.write_text(content)
    assert default_endpoint(mid) == "lwm2md-gw-test"


def test_device_endpoint_defaults_to_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "default_endpoint", lambda *args: "lwm2md-fromhost")
    assert parse_config({"server": [{"uri": "coap://h", "short_id": 1}]}, "t").device.endpoint == (
        "lwm2md-fromhost"
    )


# --------------------------------------------------------------------------- errors

SENSOR = '[[sensor]]\ndriver = "simulated"\n'

# (id, file text, key, repr of what was found, fragment of what was expected)
BAD_INPUTS = [
    ("unknown-top-key", "bogus = 1\n" + SERVER, "bogus", "'bogus'", "objects_dir"),
    ("unknown-table", SERVER + "[radio]\napn = 'x'\n", "radio", "'radio'", "one of: "),
    ("psk-key-too-long",
     "[[server]]\nuri = 'coaps://h'\nshort_id = 1\npsk_identity = 'gw'\npsk_key = '" + "ab" * 17 + "'\n",
     "server[0].psk_key", "'<redacted>'", "1 to 16 bytes"),
    ("unknown-driver", SERVER + "[[sensor]]\ndriver = 'bme281'\nobjects = [3303]\n", "sensor[0].driver",
     "'bme281'", "bme280"),
    ("unknown-modem-key", SERVER + "[modem]\nport = 'x'\napn = 'x'\n", "modem.apn", "'apn'", "baudrate"),
    ("modem-without-port", SERVER + "[modem]\nbaudrate = 9600\n", "modem.port", "nothing", "required"),
    ("gpio-bad-kind", SERVER + "[[gpio]]\nkind = 'relay'\npin = 4\n", "gpio[0].kind", "'relay'", "input"),
    ("gpio-bad-pin", SERVER + "[[gpio]]\nkind = 'input'\npin = -1\n", "gpio[0].pin", "-1", "GPIO number"),
    (
        "gpio-pin-twice",
        SERVER + "[[gpio]]\nkind = 'input'\npin = 4\n[[gpio]]\nkind = 'output'\npin = 4\n",
        "gpio[1].pin",
        "4",
        "not already used by gpio[0]",
    ),
    ("gpio-bad-factory", SERVER + "[platform]\ngpio_pin_factory = 'wiringpi'\n", "platform.gpio_pin_factory",
     "'wiringpi'", "lgpio"),
    ("unknown-server-key", SERVER + "lifetme = 30\n", "server[0].lifetme", "'lifetme'", "lifetime"),
    ("unknown-device-key", "[device]\ncolour = 'red'\n" + SERVER, "device.colour", "'colour'", "endpoint"),
    ("unknown-coap-key", SERVER + "[coap]\nport = 1\n", "coap.port", "'port'", "local_port"),
    ("unknown-logging-key", SERVER + "[logging]\nfile = 'x'\n", "logging.file", "'file'", "level"),
    ("unknown-send-key", SERVER + "[send]\nperiod = 1\n", "send.period", "'period'", "interval"),
    ("no-server", "[logging]\nlevel = 'info'\n", "server", "nothing", "at least one [[server]]"),
    ("server-not-array", "[server]\nuri = 'coap://h'\nshort_id = 1\n", "server", None, "array of tables"),
    ("device-not-table", "device = 5\n" + SERVER, "device", "5", "a table"),
    ("objects-dir-type", "objects_dir = 5\n" + SERVER, "objects_dir", "5", "non-empty string"),
    ("uri-missing", "[[server]]\nshort_id = 1\n", "server[0].uri", "nothing", "required"),
    ("uri-scheme", NO_URI + "uri = 'http://h'\n", "server[0].uri", "'http://h'", "coap://"),
    ("uri-path", NO_URI + "uri = 'coap://h/rd'\n", "server[0].uri", "'coap://h/rd'", "coap://"),
    ("uri-port-0", NO_URI + "uri = 'coap://h:0'\n", "server[0].uri", "'coap://h:0'", "port"),
    ("uri-bad-ipv6", NO_URI + "uri = 'coap://[::g]'\n", "server[0].uri", "'coap://[::g]'", "IPv6"),
    ("short-id-0", "[[server]]\nuri = 'coap://h'\nshort_id = 0\n", "server[0].short_id", "0", "1..65534"),
    (
        "short-id-max",
        "[[server]]\nuri = 'coap://h'\nshort_id = 65535\n",
        "server[0].short_id",
        "65535",
        "1..65534",
    ),
    (
        "short-id-bool",
        "[[server]]\nuri = 'coap://h'\nshort_id = true\n",
        "server[0].short_id",
        "True",
        "integer",
    ),
    ("short-id-dup", SERVER + SERVER.replace("127.0.0.1", "h"), "server[1].short_id", "1", "server[0]"),
    ("lifetime-0", SERVER + "lifetime = 0\n", "server[0].lifetime", "0", ">= 1"),
    ("lifetime-second-server", SERVER + SERVER2 + "lifetime = -5\n", "server[1].lifetime", "-5", ">= 1"),
    ("lifetime-string", SERVER + "lifetime = '300'\n", "server[0].lifetime", "'300'", "integer"),
    ("lifetime-float", SERVER + "lifetime = 300.0\n", "server[0].lifetime", "300.0", "integer"),
    ("binding-letter", SERVER + "binding = 'X'\n", "server[0].binding", "'X'", "U, Q, S, N, T"),
    ("binding-repeat", SERVER + "binding = 'UU'\n", "server[0].binding", "'UU'", "at most once"),
    ("binding-q-alone", SERVER + "binding = 'Q'\n", "server[0].binding", "'Q'", "not Q alone"),
    ("binding-1.0", SERVER + "lwm2m_version = '1.0'\nbinding = 'T'\n", "server[0].binding", "'T'", "'1.0'"),
    ("version-float", SERVER + "lwm2m_version = 1.1\n", "server[0].lwm2m_version", "1.1", "'1.0', '1.1'"),
    ("pmin-negative", SERVER + "default_pmin = -1\n", "server[0].default_pmin", "-1", ">= 0"),
    (
        "pmax-below-pmin",
        SERVER + "default_pmin = 60\ndefault_pmax = 30\n",
        "server[0].default_pmax",
        "30",
        ">= ",
    ),
    (
        "storing-int",
        SERVER + "notification_storing = 1\n",
        "server[0].notification_storing",
        "1",
        "true or false",
    ),
    (
        "priority-negative",
        SERVER + "registration_priority = -1\n",
        "server[0].registration_priority",
        "-1",
        ">= 0",
    ),
    (
        "retry-count-0",
        SERVER + "communication_retry_count = 0\n",
        "server[0].communication_retry_count",
        "0",
        ">= 1",
    ),
    (
        "content-format",
        SERVER + "content_format = 'xml'\n",
        "server[0].content_format",
        "'xml'",
        "'senml-cbor'",
    ),
    ("security-name", SERVER + "security = 'dtls'\n", "server[0].security", "'dtls'", "'nosec', 'psk'"),
    ("psk-on-coap", SERVER + "security = 'psk'\n", "server[0].security", "'psk'", "coap://"),
    (
        "nosec-on-coaps",
        COAPS + "security = 'nosec'\n",
        "server[0].security",
        "'nosec'",
        "'psk' for a coaps://",
    ),
    (
        "psk-identity-missing",
        COAPS + f"psk_key = '{PSK_HEX}'\n",
        "server[0].psk_identity",
        "nothing",
        "PSK identity",
    ),
    (
        "psk-key-missing",
        COAPS + "psk_identity = 'gw'\n",
        "server[0].psk_key",
        "nothing",
        "psk_key_file",
    ),
    (
        "psk-key-and-file",
        PSK_SERVER + "psk_key_file = 'k.psk'\n",
        "server[0].psk_key_file",
        "'k.psk'",
        "only one of",
    ),
    (
        "psk-key-file-missing",
        COAPS + "psk_identity = 'gw'\npsk_key_file = 'absent.psk'\n",
        "server[0].psk_key_file",
        None,
        "readable key file",
    ),
    ("identity-on-nosec", SERVER + "psk_identity = 'gw'\n", "server[0].psk_identity", "'gw'", "nosec"),
    (
        "sensor-driver-missing",
        SERVER + "[[sensor]]\nobjects = [3303]\n",
        "sensor[0].driver",
        "nothing",
        "required",
    ),
    ("sensor-objects-missing", SERVER + SENSOR, "sensor[0].objects", "nothing", "required"),
    ("sensor-objects-empty", SERVER + SENSOR + "objects = []\n", "sensor[0].objects", "[]", "non-empty list"),
    ("sensor-objects-str", SERVER + SENSOR + "objects = '3303'\n", "sensor[0].objects", "'3303'", "list"),
    (
        "sensor-object-range",
        SERVER + SENSOR + "objects = [3303]\n" + SENSOR + "objects = [3303, 3304, 70000]\n",
        "sensor[1].objects[2]",
        "70000",
        "0..65535",
    ),
    ("sensor-object-bool", SERVER + SENSOR + "objects = [true]\n", "sensor[0].objects[0]", "True", "integer"),
    (
        "sensor-instances-length",
        SERVER + SENSOR + "objects = [3303, 3304]\ninstances = [0]\n",
        "sensor[0].instances",
        "[0]",
        "2 instance ids",
    ),
    (
        "sensor-instance-dup",
        SERVER + (SENSOR + "objects = [3303]\ninstances = [4]\n") * 2,
        "sensor[1].instances[0]",
        "4",
        "sensor[0]",
    ),
    (
        "sensor-interval-0",
        SERVER + SENSOR + "objects = [1]\ninterval = 0\n",
        "sensor[0].interval",
        "0",
        "> 0",
    ),
    (
        "sensor-interval-nan",
        SERVER + SENSOR + "objects = [1]\ninterval = nan\n",
        "sensor[0].interval",
        "nan",
        "finite",
    ),
    ("sensor-not-array", "sensor = 3\n" + SERVER, "sensor", "3", "[[sensor]]"),
    ("send-path-bad", SERVER + "[send]\npaths = ['/3/x']\n", "send.paths[0]", "'/3/x'", "LwM2M path"),
    ("send-path-root", SERVER + "[send]\npaths = ['/']\n", "send.paths[0]", "'/'", "object level or deeper"),
    (
        "send-path-dup",
        SERVER + "[send]\npaths = ['/3/0', '3/0/']\n",
        "send.paths[1]",
        "'/3/0'",
        "send.paths[0]",
    ),
    ("send-short-id", SERVER + "[send]\npaths = ['/3']\nshort_id = 9\n", "send.short_id", "9", "one of 1"),
    ("send-enabled-empty", SERVER + "[send]\nenabled = true\n", "send.paths", "[]", "at least one path"),
    ("send-interval", SERVER + "[send]\ninterval = -1.5\n", "send.interval", "-1.5", "> 0"),
    (
        "coap-bind",
        SERVER + "[coap]\nbind_address = 'localhost'\n",
        "coap.bind_address",
        "'localhost'",
        "IP address",
    ),
    ("coap-port", SERVER + "[coap]\nlocal_port = 70000\n", "coap.local_port", "70000", "0..65535"),
    ("coap-ack", SERVER + "[coap]\nack_timeout = 0\n", "coap.ack_timeout", "0", "> 0"),
    ("coap-retransmit", SERVER + "[coap]\nmax_retransmit = -1\n", "coap.max_retransmit", "-1", ">= 0"),
    ("log-level", SERVER + "[logging]\nlevel = 'INFO'\n", "logging.level", "'INFO'", "'debug'"),
    ("endpoint-space", "[device]\nendpoint = 'a b'\n" + SERVER, "device.endpoint", "'a b'", "without spaces"),
    (
        "reboot-string",
        "[device]\nreboot_command = 'reboot'\n" + SERVER,
        "device.reboot_command",
        "'reboot'",
        "list",
    ),
    ("reboot-empty", "[device]\nreboot_command = []\n" + SERVER, "device.reboot_command", "[]", "non-empty"),
    (
        "reboot-arg-type",
        "[device]\nfactory_reset_command = ['x', 3]\n" + SERVER,
        "device.factory_reset_command[1]",
        "3",
        "string",
    ),
    ("utc-offset", "[device]\nutc_offset = '+1'\n" + SERVER, "device.utc_offset", "'+1'", "'+02:00'"),
]


@pytest.mark.parametrize(
    ("text", "key", "found", "expected"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_error_names_file_key_found_expected(
    tmp_path: Path, text: str, key: str, found: str | None, expected: str
) -> None:
    err, path = load_error(tmp_path, text)
    assert err.file == str(path)
    assert err.key == key
    assert expected in err.expected
    message = str(err)
    assert message.startswith(f"{path}: {key}: expected ")
    assert err.expected in message
    if found is not None:
        assert repr(err.found) == found
        assert message.endswith(f"found {found}")


def test_unknown_key_error_lists_every_allowed_key(tmp_path: Path) -> None:
    err, _ = load_error(tmp_path, SERVER + "lifetme = 30\n")
    listed = err.expected.removeprefix("one of: ").split(", ")
    assert set(listed) == {f.name for f in dataclasses.fields(ServerConfig) if f.init}


# Every integer / number key, by (table text before the key, key path).
INT_KEYS = [
    ("[[server]]\nuri = 'coap://h'\n", "server[0].short_id", "short_id"),
    *[
        (SERVER, f"server[0].{name}", name)
        for name in (
            "lifetime",
            "default_pmin",
            "default_pmax",
            "disable_timeout",
            "registration_priority",
            "initial_registration_delay",
            "communication_retry_count",
            "communication_retry_timer",
            "sequence_delay_timer",
            "sequence_retry_count",
        )
    ],
    (SERVER + SENSOR + "objects = [1]\n", "sensor[0].interval", "interval"),
    (SERVER + "[send]\n", "send.interval", "interval"),
    (SERVER + "[send]\npaths = ['/3']\n", "send.short_id", "short_id"),
    (SERVER + "[coap]\n", "coap.local_port", "local_port"),
    (SERVER + "[coap]\n", "coap.ack_timeout", "ack_timeout"),
    (SERVER + "[coap]\n", "coap.max_retransmit", "max_retransmit"),
]


@pytest.mark.parametrize(("prefix", "key", "name"), INT_KEYS, ids=[k for _, k, _ in INT_KEYS])
@pytest.mark.parametrize("literal", ["true", "false"])
def test_bool_is_not_accepted_as_a_number(
    tmp_path: Path, prefix: str, key: str, name: str, literal: str
) -> None:
    err, _ = load_error(tmp_path, f"{prefix}{name} = {literal}\n")
    assert err.key == key
    assert err.found is (literal == "true")


def test_bool_keys_reject_ints(tmp_path: Path) -> None:
    for name in ("trigger", "registration_failure_block", "bootstrap_on_registration_failure"):
        err, _ = load_error(tmp_path, SERVER + f"{name} = 0\n")
        assert (err.key, err.found, err.expected) == (f"server[0].{name}", 0, "true or false")


# --------------------------------------------------------------------------- file-level errors


def test_toml_syntax_error_names_file_and_position(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, SERVER + "lifetime = = 3\n")
    assert err.file == str(path) and err.key == ""
    assert "line 4" in str(err.found)
    assert str(path) in str(err) and "valid TOML" in str(err)


def test_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path) and info.value.key == ""
    assert str(path) in str(info.value) and "readable" in str(info.value)


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.file == str(tmp_path)


def test_non_utf8_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(SERVER.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path) and "UTF-8" in str(info.value)


def test_parse_config_rejects_non_table_root() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config([1, 2], "src.toml")  # type: ignore[arg-type]
    assert (info.value.file, info.value.key) == ("src.toml", "")


# --------------------------------------------------------------------------- secrets


def test_psk_key_is_parsed_and_never_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, PSK_SERVER))
    server = cfg.servers[0]
    assert server.psk_key == bytes.fromhex(PSK_HEX)
    assert (server.security, server.psk_identity, server.port) == ("psk", "gw", 5684)
    for text in (repr(cfg), str(cfg), repr(server)):
        assert PSK_HEX not in text.lower()
        assert repr(server.psk_key) not in text
        assert "psk_key=" not in text


SECRET_ERRORS = [
    ("bad-hex", COAPS + f"psk_key = '{PSK_HEX}zz'\n", "server[0].psk_key"),
    ("odd-hex", COAPS + f"psk_key = '{PSK_HEX}0'\n", "server[0].psk_key"),
    ("key-on-nosec", SERVER + f"psk_key = '{PSK_HEX}'\n", "server[0].psk_key"),
    ("key-not-string", COAPS + "psk_key = 0xc0ffee5ec7e7\n", "server[0].psk_key"),
    ("key-in-list", COAPS + f"psk_key = ['{PSK_HEX}']\n", "server[0].psk_key"),
]


@pytest.mark.parametrize(("text", "key"), [c[1:] for c in SECRET_ERRORS], ids=[c[0] for c in SECRET_ERRORS])
def test_psk_key_is_redacted_in_errors(tmp_path: Path, text: str, key: str) -> None:
    err, path = load_error(tmp_path, text)
    assert (err.file, err.key, err.found) == (str(path), key, "<redacted>")
    rendered = "".join(traceback.format_exception(err))
    assert "c0ffee5ec7e7" not in rendered.lower()
    assert str(0xC0FFEE5EC7E7) not in rendered
    assert "found '<redacted>'" in str(err)


def test_psk_key_absent_from_errors_about_other_keys(tmp_path: Path) -> None:
    err, _ = load_error(tmp_path, PSK_SERVER + "lifetime = 0\n")
    assert err.key == "server[0].lifetime"
    assert PSK_HEX not in "".join(traceback.format_exception(err))


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (f"{PSK_HEX}\n".encode(), bytes.fromhex(PSK_HEX)),
        (b"c0 ff ee\n", b"\xc0\xff\xee"),
        (b"\x00\xffraw key bytes\n", b"\x00\xffraw key bytes\n"),
    ],
)
def test_psk_key_file_is_read_relative_to_config(tmp_path: Path, content: bytes, key: bytes) -> None:
    (tmp_path / "server.psk").write_bytes(content)
    text = COAPS + "psk_identity = 'gw'\npsk_key_file = 'server.psk'\n"
    server = load_config(write(tmp_path, text)).servers[0]
    assert server.psk_key == key
    assert server.psk_key_file == str(tmp_path / "server.psk")
    assert repr(key) not in repr(server)


@pytest.mark.parametrize("content", [b"", b" \n"])
def test_empty_psk_key_file_is_rejected(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "empty.psk").write_bytes(content)
    text = COAPS + "psk_identity = 'gw'\npsk_key_file = 'empty.psk'\n"
    err, _ = load_error(tmp_path, text)
    assert (err.key, err.found) == ("server[0].psk_key_file", str(tmp_path / "empty.psk"))


# --------------------------------------------------------------------------- robustness

TOML_VALUES = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
TABLE_KEYS = {
    "server": [f.name for f in dataclasses.fields(ServerConfig) if f.init],
    "sensor": ["driver", "objects", "instances", "interval", "name", "bus"],
    "send": ["paths", "interval", "short_id", "enabled"],
    "coap": ["bind_address", "local_port", "ack_timeout", "max_retransmit"],
    "logging": ["level"],
    "device": [f.name for f in dataclasses.fields(DeviceConfig)],
}


@settings(max_examples=300, deadline=None)
@given(
    table=st.sampled_from(sorted(TABLE_KEYS)),
    data=st.data(),
)
def test_any_value_gives_config_or_config_error(table: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(TABLE_KEYS[table]))
    value = data.draw(TOML_VALUES)
    doc: dict[str, Any] = {"server": [{"uri": "coap://h", "short_id": 1}]}
    if table == "server":
        doc["server"][0][name] = value
    elif table == "sensor":
        doc["sensor"] = [{"driver": "d", "objects": [3303], name: value}]
    else:
        doc[table] = {name: value}
    try:
        cfg = parse_config(doc, "fuzz.toml")
    except ConfigError as err:
        assert err.file == "fuzz.toml"
        assert err.key.startswith(table)
    else:
        assert isinstance(cfg, Config)


def test_sms_binding_needs_the_server_number_and_modem_sms(tmp_path: Path) -> None:
    base = "[[server]]\nuri = 'coap://h'\nshort_id = 1\nbinding = 'US'\n"
    with pytest.raises(ConfigError) as missing_number:
        load_config(write(tmp_path, base + "[modem]\nport = '/dev/ttyUSB2'\nsms = true\n"))
    assert missing_number.value.key == "server[0].sms_number"
    with pytest.raises(ConfigError) as modem_off:
        load_config(write(tmp_path, base + "sms_number = '+4917012345'\n[modem]\nport = '/dev/ttyUSB2'\n"))
    assert modem_off.value.key == "modem.sms"
    with pytest.raises(ConfigError) as bad_number:
        load_config(write(tmp_path, base + "sms_number = '0170 12'\n[modem]\nport = 'x'\nsms = true\n"))
    assert bad_number.value.key == "server[0].sms_number"
    ok = load_config(write(tmp_path, base + "sms_number = '+4917012345'\n[modem]\nport = 'x'\nsms = true\n"))
    assert ok.servers[0].sms_number == "+4917012345" and ok.modem is not None and ok.modem.sms


def test_sms_only_server_uri(tmp_path: Path) -> None:
    modem = "[modem]\nport = '/dev/ttyUSB2'\nsms = true\n"
    server_table = "[[server]]\nuri = 'sms://+4917099'\nshort_id = 1\n"
    ok = load_config(write(tmp_path, server_table + "binding = 'S'\n" + modem))
    server = ok.servers[0]
    assert (server.scheme, server.host, server.sms_number) == ("sms", "+4917099", "+4917099")
    with pytest.raises(ConfigError) as udp_binding:
        load_config(write(tmp_path, server_table + "binding = 'U'\n" + modem))
    assert udp_binding.value.key == "server[0].binding"
