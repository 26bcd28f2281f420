"""Cellular modems over AT commands: the channel, vendor quirks and modem facts (no LwM2M here).

- :mod:`.at`: :class:`AtChannel`, one serial port with URC dispatch and recovery.
- :mod:`.quirks`: per-vendor differences, chosen by :func:`select_quirks`.
- :mod:`.info`: 3GPP TS 27.007 parsers and :func:`poll` -> :class:`ModemFacts`.
"""

from lwm2md.drivers.modem.at import (
    AtChannel,
    AtError,
    AtResponse,
    AtTimeout,
    ModemError,
    PortUnavailable,
    Unsolicited,
)
from lwm2md.drivers.modem.info import ModemFacts, ModemIdentity, Signal, identify, poll
from lwm2md.drivers.modem.quirks import Quirks, detect_quirks, quirks_for_vendor, select_quirks

__all__ = [
    "AtChannel",
    "AtError",
    "AtResponse",
    "AtTimeout",
    "ModemError",
    "ModemFacts",
    "ModemIdentity",
    "PortUnavailable",
    "Quirks",
    "Signal",
    "Unsolicited",
    "detect_quirks",
    "identify",
    "poll",
    "quirks_for_vendor",
    "select_quirks",
]
