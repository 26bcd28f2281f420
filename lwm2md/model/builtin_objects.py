"""The built-in object catalog: core LwM2M objects 0-7 and the IPSO objects we serve.

Facts (IDs, names, operations, multiplicity, mandatory flags, types, ranges, units,
versions, URNs) follow the OMA registry definitions of the object versions listed in
``BUILTIN_OBJECTS``; descriptions are our own one-liners. Each resource row reads::

    _r(rid, name, operations, ONE|MANY, MAND|OPT, type, range="", units="")
"""

from __future__ import annotations

from collections.abc import Iterable

from lwm2md.model.types import ObjectDef, Operations, ResourceDef, ResourceType

ONE, MANY = False, True
MAND, OPT = True, False

STR = ResourceType.STRING
INT = ResourceType.INTEGER
UINT = ResourceType.UNSIGNED
FLOAT = ResourceType.FLOAT
BOOL = ResourceType.BOOLEAN
OPAQUE = ResourceType.OPAQUE
TIME = ResourceType.TIME
OBJLNK = ResourceType.OBJLNK
CORELNK = ResourceType.CORELNK
EXEC = ResourceType.NONE


def _r(
    rid: int,
    name: str,
    ops: str,
    multiple: bool,
    mandatory: bool,
    rtype: ResourceType,
    range_enumeration: str = "",
    units: str = "",
) -> ResourceDef:
    """One resource row; ``ops`` is the DDF spelling ("", "R", "RW", "E", ...)."""
    return ResourceDef(
        rid=rid,
        name=name,
        operations=Operations.parse(ops),
        multiple=multiple,
        mandatory=mandatory,
        type=rtype,
        range_enumeration=range_enumeration,
        units=units,
    )


def _obj(
    oid: int,
    name: str,
    multiple: bool,
    mandatory: bool,
    version: str,
    lwm2m_version: str,
    urn: str,
    description: str,
    resources: Iterable[ResourceDef],
) -> ObjectDef:
    """One object; resources are keyed by rid (a repeated rid is a programming error)."""
    table: dict[int, ResourceDef] = {}
    for res in resources:
        if res.rid in table:
            raise ValueError(f"object {oid}: resource {res.rid} defined twice")
        table[res.rid] = res
    return ObjectDef(
        oid=oid,
        name=name,
        multiple=multiple,
        mandatory=mandatory,
        version=version,
        lwm2m_version=lwm2m_version,
        urn=urn,
        description=description,
        resources=dict(sorted(table.items())),
    )


# --- Core objects ---------------------------------------------------------------------

SECURITY = _obj(
    0, "LWM2M Security", MANY, MAND, "1.2", "1.1", "urn:oma:lwm2m:oma:0:1.2",
    "Where and how to reach one (bootstrap) server; bootstrap-writable only.",
    [
        _r(0, "LWM2M Server URI", "", ONE, MAND, STR, "0..255"),
        _r(1, "Bootstrap-Server", "", ONE, MAND, BOOL),
        _r(2, "Security Mode", "", ONE, MAND, INT, "0..4"),
        _r(3, "Public Key or Identity", "", ONE, MAND, OPAQUE),
        _r(4, "Server Public Key", "", ONE, MAND, OPAQUE),
        _r(5, "Secret Key", "", ONE, MAND, OPAQUE),
        _r(6, "SMS Security Mode", "", ONE, OPT, INT, "0..255"),
        _r(7, "SMS Binding Key Parameters", "", ONE, OPT, OPAQUE, "6"),
        _r(8, "SMS Binding Secret Key(s)", "", ONE, OPT, OPAQUE, "16,32,48"),
        _r(9, "LwM2M Server SMS Number", "", ONE, OPT, STR),
        _r(10, "Short Server ID", "", ONE, OPT, INT, "1..65534"),
        _r(11, "Client Hold Off Time", "", ONE, OPT, INT, units="s"),
        _r(12, "Bootstrap-Server Account Timeout", "", ONE, OPT, INT, units="s"),
        _r(13, "Matching Type", "", ONE, OPT, UINT, "0..3"),
        _r(14, "SNI", "", ONE, OPT, STR),
        _r(15, "Certificate Usage", "", ONE, OPT, UINT, "0..3"),
        _r(16, "DTLS/TLS Ciphersuite", "", MANY, OPT, UINT),
        _r(17, "OSCORE Security Mode", "", ONE, OPT, OBJLNK),
        _r(18, "Groups To Use by Client", "", MANY, OPT, UINT, "0..65535"),
        _r(19, "Signature Algorithms Supported by Server", "", MANY, OPT, UINT, "0..65535"),
        _r(20, "Signature Algorithms To Use by Client", "", MANY, OPT, UINT, "0..65535"),
        _r(21, "Signature Algorithm Certs Supported by Server", "", MANY, OPT, UINT, "0..65535"),
        _r(22, "TLS 1.3 Features To Use by Client", "", ONE, OPT, UINT, "0..65535"),
        _r(23, "TLS Extensions Supported by Server", "", ONE, OPT, UINT, "0..65535"),
        _r(24, "TLS Extensions To Use by Client", "", ONE, OPT, UINT, "0..65535"),
        _r(25, "Secondary LwM2M Server URI", "", MANY, OPT, STR, "0..255"),
        _r(26, "MQTT Server", "", ONE, OPT, OBJLNK),
        _r(27, "LwM2M COSE Security", "", MANY, OPT, OBJLNK),
        _r(28, "RDS Destination Port", "", ONE, OPT, INT, "0..15"),
        _r(29, "RDS Source Port", "", ONE, OPT, INT, "0..15"),
        _r(30, "RDS Application ID", "", ONE, OPT, STR),
    ],
)  # fmt: skip

SERVER = _obj(
    1, "LwM2M Server", MANY, MAND, "1.2", "1.2", "urn:oma:lwm2m:oma:1:1.2",
    "Per-server registration settings: lifetime, binding, default periods, triggers.",
    [
        _r(0, "Short Server ID", "R", ONE, MAND, INT, "1..65534"),
        _r(1, "Lifetime", "RW", ONE, MAND, INT, units="s"),
        _r(2, "Default Minimum Period", "RW", ONE, OPT, INT, units="s"),
        _r(3, "Default Maximum Period", "RW", ONE, OPT, INT, units="s"),
        _r(4, "Disable", "E", ONE, OPT, EXEC),
        _r(5, "Disable Timeout", "RW", ONE, OPT, INT, units="s"),
        _r(6, "Notification Storing When Disabled or Offline", "RW", ONE, MAND, BOOL),
        _r(7, "Binding", "RW", ONE, MAND, STR),
        _r(8, "Registration Update Trigger", "E", ONE, MAND, EXEC),
        _r(9, "Bootstrap-Request Trigger", "E", ONE, OPT, EXEC),
        _r(10, "APN Link", "RW", ONE, OPT, OBJLNK),
        _r(11, "TLS-DTLS Alert Code", "R", ONE, OPT, UINT, "0..255"),
        _r(12, "Last Bootstrapped", "R", ONE, OPT, TIME),
        _r(13, "Registration Priority Order", "R", ONE, OPT, UINT),
        _r(14, "Initial Registration Delay Timer", "RW", ONE, OPT, UINT, units="s"),
        _r(15, "Registration Failure Block", "R", ONE, OPT, BOOL),
        _r(16, "Bootstrap on Registration Failure", "R", ONE, OPT, BOOL),
        _r(17, "Communication Retry Count", "RW", ONE, OPT, UINT),
        _r(18, "Communication Retry Timer", "RW", ONE, OPT, UINT, units="s"),
        _r(19, "Communication Sequence Delay Timer", "RW", ONE, OPT, UINT, units="s"),
        _r(20, "Communication Sequence Retry Count", "RW", ONE, OPT, UINT),
        _r(21, "Trigger", "RW", ONE, OPT, BOOL),
        _r(22, "Preferred Transport", "RW", ONE, OPT, STR,
           "The possible values are those listed in the LwM2M Core Specification"),
        _r(23, "Mute Send", "RW", ONE, OPT, BOOL),
        _r(24, "Alternate APN Links", "RW", MANY, OPT, OBJLNK),
        _r(25, "Supported Server Versions", "RW", MANY, OPT, STR),
        _r(26, "Default Notification Mode", "RW", ONE, OPT, INT, "0..1"),
        _r(27, "Profile ID Hash Algorithm", "RW", ONE, OPT, UINT, "0..255"),
    ],
)  # fmt: skip

ACCESS_CONTROL = _obj(
    2, "LwM2M Access Control", MANY, OPT, "1.1", "1.0", "urn:oma:lwm2m:oma:2:1.1",
    "Which server may do what to one object instance, and who owns that grant.",
    [
        _r(0, "Object ID", "R", ONE, MAND, INT, "1..65534"),
        _r(1, "Object Instance ID", "R", ONE, MAND, INT, "0..65535"),
        _r(2, "ACL", "RW", MANY, OPT, INT, "0..31"),
        _r(3, "Access Control Owner", "RW", ONE, MAND, INT, "0..65535"),
    ],
)  # fmt: skip

DEVICE = _obj(
    3, "Device", ONE, MAND, "1.2", "1.1", "urn:oma:lwm2m:oma:3:1.2",
    "Identity, power, memory, clock and error state of the device; reboot and reset.",
    [
        _r(0, "Manufacturer", "R", ONE, OPT, STR),
        _r(1, "Model Number", "R", ONE, OPT, STR),
        _r(2, "Serial Number", "R", ONE, OPT, STR),
        _r(3, "Firmware Version", "R", ONE, OPT, STR),
        _r(4, "Reboot", "E", ONE, MAND, EXEC),
        _r(5, "Factory Reset", "E", ONE, OPT, EXEC),
        _r(6, "Available Power Sources", "R", MANY, OPT, INT, "0..7"),
        _r(7, "Power Source Voltage", "R", MANY, OPT, INT),
        _r(8, "Power Source Current", "R", MANY, OPT, INT),
        _r(9, "Battery Level", "R", ONE, OPT, INT, "0..100", "/100"),
        _r(10, "Memory Free", "R", ONE, OPT, INT),
        _r(11, "Error Code", "R", MANY, MAND, INT, "0..32"),
        _r(12, "Reset Error Code", "E", ONE, OPT, EXEC),
        _r(13, "Current Time", "RW", ONE, OPT, TIME),
        _r(14, "UTC Offset", "RW", ONE, OPT, STR),
        _r(15, "Timezone", "RW", ONE, OPT, STR),
        _r(16, "Supported Binding and Modes", "R", ONE, MAND, STR),
        _r(17, "Device Type", "R", ONE, OPT, STR),
        _r(18, "Hardware Version", "R", ONE, OPT, STR),
        _r(19, "Software Version", "R", ONE, OPT, STR),
        _r(20, "Battery Status", "R", ONE, OPT, INT, "0..6"),
        _r(21, "Memory Total", "R", ONE, OPT, INT),
        _r(22, "ExtDevInfo", "R", MANY, OPT, OBJLNK),
    ],
)  # fmt: skip

CONNECTIVITY_MONITORING = _obj(
    4, "Connectivity Monitoring", ONE, OPT, "1.3", "1.1", "urn:oma:lwm2m:oma:4:1.3",
    "Current bearer, radio signal, addresses and cell identity of the network link.",
    [
        _r(0, "Network Bearer", "R", ONE, MAND, INT, "0..50"),
        _r(1, "Available Network Bearer", "R", MANY, MAND, INT, "0..50"),
        _r(2, "Radio Signal Strength", "R", ONE, MAND, INT, units="dBm"),
        _r(3, "Link Quality", "R", ONE, OPT, INT),
        _r(4, "IP Addresses", "R", MANY, MAND, STR),
        _r(5, "Router IP Addresses", "R", MANY, OPT, STR),
        _r(6, "Link Utilization", "R", ONE, OPT, INT, "0..100", "/100"),
        _r(7, "APN", "R", MANY, OPT, STR),
        _r(8, "Cell ID", "R", ONE, OPT, INT),
        _r(9, "SMNC", "R", ONE, OPT, INT, "0..999"),
        _r(10, "SMCC", "R", ONE, OPT, INT, "0..999"),
        _r(11, "SignalSNR", "R", ONE, OPT, INT, units="dB"),
        _r(12, "LAC", "R", ONE, OPT, INT),
        _r(13, "Coverage Enhancement Level", "R", ONE, OPT, INT, "0..4"),
    ],
)  # fmt: skip

FIRMWARE_UPDATE = _obj(
    5, "Firmware Update", ONE, OPT, "1.2", "1.1", "urn:oma:lwm2m:oma:5:1.2",
    "Push or pull delivery of a firmware image, then its installation and outcome.",
    [
        _r(0, "Package", "W", ONE, MAND, OPAQUE),
        _r(1, "Package URI", "RW", ONE, MAND, STR, "0..255"),
        _r(2, "Update", "E", ONE, MAND, EXEC),
        _r(3, "State", "R", ONE, MAND, INT, "0..3"),
        # rid 4 is absent from this object version.
        _r(5, "Update Result", "R", ONE, MAND, INT, "0..11"),
        _r(6, "PkgName", "R", ONE, OPT, STR, "0..255"),
        _r(7, "PkgVersion", "R", ONE, OPT, STR, "0..255"),
        _r(8, "Firmware Update Protocol Support", "R", MANY, OPT, INT, "0..5"),
        _r(9, "Firmware Update Delivery Method", "R", ONE, MAND, INT, "0..2"),
        _r(10, "Cancel", "E", ONE, OPT, EXEC),
        _r(11, "Severity", "RW", ONE, OPT, INT, "0..2"),
        _r(12, "Last State Change Time", "R", ONE, OPT, TIME),
        _r(13, "Maximum Defer Period", "RW", ONE, OPT, UINT, units="s"),
        _r(14, "Automatic Upgrade at Download", "RW", ONE, OPT, BOOL),
    ],
)  # fmt: skip

LOCATION = _obj(
    6, "Location", ONE, OPT, "1.0", "1.0", "urn:oma:lwm2m:oma:6",
    "Where the device is: coordinates, altitude, uncertainty, velocity, fix time.",
    [
        _r(0, "Latitude", "R", ONE, MAND, FLOAT, units="lat"),
        _r(1, "Longitude", "R", ONE, MAND, FLOAT, units="lon"),
        _r(2, "Altitude", "R", ONE, OPT, FLOAT, units="m"),
        _r(3, "Radius", "R", ONE, OPT, FLOAT, units="m"),
        _r(4, "Velocity", "R", ONE, OPT, OPAQUE),
        _r(5, "Timestamp", "R", ONE, MAND, TIME),
        _r(6, "Speed", "R", ONE, OPT, FLOAT, units="m/s"),
    ],
)  # fmt: skip

CONNECTIVITY_STATISTICS = _obj(
    7, "Connectivity Statistics", ONE, OPT, "1.0", "1.0", "urn:oma:lwm2m:oma:7",
    "Traffic counters collected between Start and Stop.",
    [
        _r(0, "SMS Tx Counter", "R", ONE, OPT, INT),
        _r(1, "SMS Rx Counter", "R", ONE, OPT, INT),
        _r(2, "Tx Data", "R", ONE, OPT, INT),
        _r(3, "Rx Data", "R", ONE, OPT, INT),
        _r(4, "Max Message Size", "R", ONE, OPT, INT, units="B"),
        _r(5, "Average Message Size", "R", ONE, OPT, INT, units="B"),
        _r(6, "Start", "E", ONE, MAND, EXEC),
        _r(7, "Stop", "E", ONE, MAND, EXEC),
        _r(8, "Collection Period", "RW", ONE, OPT, INT, units="s"),
    ],
)  # fmt: skip

# --- IPSO objects ---------------------------------------------------------------------
# Rows shared by several IPSO objects (ResourceDef is immutable, so sharing is safe).

_DIN_STATE = _r(5500, "Digital Input State", "R", ONE, MAND, BOOL)
_DIN_COUNTER = _r(5501, "Digital Input Counter", "R", ONE, OPT, INT)
_TIMESTAMP = _r(5518, "Timestamp", "R", ONE, OPT, TIME)
_MIN_MEASURED = _r(5601, "Min Measured Value", "R", ONE, OPT, FLOAT)
_MAX_MEASURED = _r(5602, "Max Measured Value", "R", ONE, OPT, FLOAT)
_MIN_RANGE = _r(5603, "Min Range Value", "R", ONE, OPT, FLOAT)
_MAX_RANGE = _r(5604, "Max Range Value", "R", ONE, OPT, FLOAT)
_RESET_MIN_MAX = _r(5605, "Reset Min and Max Measured Values", "E", ONE, OPT, EXEC)
_SENSOR_VALUE = _r(5700, "Sensor Value", "R", ONE, MAND, FLOAT)
_SENSOR_UNITS = _r(5701, "Sensor Units", "R", ONE, OPT, STR)
_APPLICATION_TYPE = _r(5750, "Application Type", "RW", ONE, OPT, STR)
_SENSOR_TYPE = _r(5751, "Sensor Type", "R", ONE, OPT, STR)
_CALIBRATION = _r(5821, "Current Calibration", "RW", ONE, OPT, FLOAT)
_QUALITY_INDICATOR = _r(6042, "Measurement Quality Indicator", "R", ONE, OPT, INT, "0..23")
_QUALITY_LEVEL = _r(6049, "Measurement Quality Level", "R", ONE, OPT, INT, "0..100")
_FRACTIONAL_TIMESTAMP = _r(6050, "Fractional Timestamp", "R", ONE, OPT, FLOAT, "0..1", "s")

_STAMPS = (_TIMESTAMP, _FRACTIONAL_TIMESTAMP)
_QUALITY = (_QUALITY_INDICATOR, _QUALITY_LEVEL)
_MIN_MAX = (_MIN_MEASURED, _MAX_MEASURED, _MIN_RANGE, _MAX_RANGE, _RESET_MIN_MAX)
# The generic IPSO sensor (3301, 3303, 3304, 3315, ...): value, units, min/max, reset.
_SENSOR = (_SENSOR_VALUE, _SENSOR_UNITS, *_MIN_MAX, _APPLICATION_TYPE, *_STAMPS, *_QUALITY)


def _ipso(oid: int, name: str, description: str, resources: Iterable[ResourceDef]) -> ObjectDef:
    """An IPSO 1.1 object as registered: multiple instances, optional, LwM2M 1.0."""
    return _obj(oid, name, MANY, OPT, "1.1", "1.0", f"urn:oma:lwm2m:ext:{oid}:1.1", description, resources)


DIGITAL_INPUT = _ipso(3200, "Digital Input", "A binary input with edge counter.", [
    _DIN_STATE,
    _DIN_COUNTER,
    _r(5502, "Digital Input Polarity", "RW", ONE, OPT, BOOL),
    _r(5503, "Digital Input Debounce", "RW", ONE, OPT, INT, units="ms"),
    _r(5504, "Digital Input Edge Selection", "RW", ONE, OPT, INT, "1..3"),
    _r(5505, "Digital Input Counter Reset", "E", ONE, OPT, EXEC),
    _APPLICATION_TYPE,
    _SENSOR_TYPE,
    *_STAMPS,
])  # fmt: skip

DIGITAL_OUTPUT = _ipso(3201, "Digital Output", "A binary output.", [
    _r(5550, "Digital Output State", "RW", ONE, MAND, BOOL),
    _r(5551, "Digital Output Polarity", "RW", ONE, OPT, BOOL),
    _APPLICATION_TYPE,
    *_STAMPS,
])  # fmt: skip

ANALOG_INPUT = _ipso(3202, "Analog Input", "A generic analog reading.", [
    _r(5600, "Analog Input Current Value", "R", ONE, MAND, FLOAT),
    *_MIN_MAX,
    _APPLICATION_TYPE,
    _SENSOR_TYPE,
    *_STAMPS,
    *_QUALITY,
])  # fmt: skip

ANALOG_OUTPUT = _ipso(3203, "Analog Output", "A generic analog setpoint.", [
    _r(5650, "Analog Output Current Value", "RW", ONE, MAND, FLOAT, "0..1"),
    _APPLICATION_TYPE,
    _MIN_RANGE,
    _MAX_RANGE,
    *_STAMPS,
])  # fmt: skip

ILLUMINANCE = _ipso(3301, "Illuminance", "Light level sensor.", _SENSOR)
TEMPERATURE = _ipso(3303, "Temperature", "Temperature sensor.", _SENSOR)
HUMIDITY = _ipso(3304, "Humidity", "Relative humidity sensor.", _SENSOR)
BAROMETER = _ipso(3315, "Barometer", "Atmospheric pressure sensor.", _SENSOR)
VOLTAGE = _ipso(3316, "Voltage", "Voltage sensor.", (*_SENSOR, _CALIBRATION))
CURRENT = _ipso(3317, "Current", "Electric current sensor.", (*_SENSOR, _CALIBRATION))
POWER = _ipso(3328, "Power", "Electric power sensor.", (*_SENSOR, _CALIBRATION))

PUSH_BUTTON = _ipso(3347, "Push button", "A momentary button with press counter.", [
    _DIN_STATE,
    _DIN_COUNTER,
    _APPLICATION_TYPE,
    *_STAMPS,
])  # fmt: skip

BUILTIN_OBJECTS: tuple[ObjectDef, ...] = (
    SECURITY,
    SERVER,
    ACCESS_CONTROL,
    DEVICE,
    CONNECTIVITY_MONITORING,
    FIRMWARE_UPDATE,
    LOCATION,
    CONNECTIVITY_STATISTICS,
    DIGITAL_INPUT,
    DIGITAL_OUTPUT,
    ANALOG_INPUT,
    ANALOG_OUTPUT,
    ILLUMINANCE,
    TEMPERATURE,
    HUMIDITY,
    BAROMETER,
    VOLTAGE,
    CURRENT,
    POWER,
    PUSH_BUTTON,
)
"""Every built-in definition, in oid order."""
