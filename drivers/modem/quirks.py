"""Vendor quirks: what differs between modem families, one small class each.

:class:`Quirks` is the generic TS 27.007 modem; a vendor class overrides
only what differs (extra init commands, signal commands, the serving-cell
command and its parser). :func:`select_quirks` picks a class from
``+CGMI``/``+CGMM`` (or ``ATI``) text; :func:`quirks_for_vendor` from a
configured name. Nothing outside this module branches on vendor names.

Serving-cell layouts (one response line unless noted):

- Quectel ``AT+QENG="servingcell"`` (EC2x/EG25/BG96, also the multi-line
  5G form): LTE ``"servingcell",<state>,"LTE",<FDD|TDD>,<mcc>,<mnc>,<cellid hex>,
  <pcid>,<earfcn>,<band>,<ul_bw>,<dl_bw>,<tac hex>,<rsrp>,<rsrq>,<rssi>,<sinr>,...``;
  SINR is in 1/5 dB above -20 dB (0..250).
- SIMCom ``AT+CPSI?`` (SIM7600/SIM7000): ``<mode>,<op mode>,<mcc>-<mnc>,<tac 0x..>,
  <cell id dec>,<pcid>,EUTRAN-BAND<n>,<earfcn>,<dlbw>,<ulbw>,<rsrq>,<rsrp>,<rssi>,<rssnr>``;
  SIM7600 reports RSRQ/RSRP/RSSI in tenths (detected from the RSRP magnitude).
- u-blox ``AT+UCGED?`` mode 2 (SARA-R4): ``+UCGED: 2``, then ``<rat>,<svc>,<mcc>,<mnc>``,
  then ``<earfcn>,<band>,<ul_bw>,<dl_bw>,<tac hex>,<cellid hex>,<pcid>,<mTmsi>,<mmeGrId>,
  <mmeCode>,<rsrp idx>,<rsrq idx>,<sinr dB>,...`` (RSRP/RSRQ as +CESQ indices).
- Telit ``AT#RFSTS`` (LE910/ME910; the LTE layout, others in :class:`TelitQuirks`):
  ``"<mcc> <mnc>",<earfcn>,<rsrp>,<rssi>,<rsrq>,<tac hex>,<rac>,[<txpwr>],<drx>,<mm>,<rrc>,
  <cid hex>,<imsi>,<name>,<sd>,<band>,...``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import ClassVar

from lwm2md.drivers.modem.info import (
    RAT_GSM,
    RAT_LTE,
    RAT_NBIOT,
    RAT_UMTS,
    AtCommander,
    ModemIdentity,
    ServingCell,
    Signal,
    ask,
    field_at,
    identify,
    lte_duplex,
    parse_cesq,
    parse_csq,
    plmn,
    split_fields,
    to_float,
    to_int,
)

LOG = logging.getLogger(__name__)

_QENG_STATES = frozenset({"SEARCH", "LIMSRV", "NOCONN", "CONNECT"})


def _scaled(value: float | None, tenths: bool) -> float | None:
    if value is None:
        return None
    return value / 10 if tenths else value


class Quirks:
    """A generic TS 27.007 modem; subclasses override what their vendor does differently.

    ``patterns`` are regular expressions searched in the lower-cased
    ``"<manufacturer> <model>"``; ``init_commands`` join the channel's init
    sequence (re-run after every modem restart).
    """

    name: ClassVar[str] = "generic"
    patterns: ClassVar[tuple[str, ...]] = ()
    init_commands: ClassVar[tuple[str, ...]] = (
        "AT+CMEE=1",
        "AT+CREG=2",
        "AT+CGREG=2",
        "AT+CEREG=2",
        "AT+COPS=3,2",
    )
    signal_commands: ClassVar[tuple[str, ...]] = ("AT+CESQ", "AT+CSQ")
    """Tried in order until one yields a measurement."""
    serving_cell_command: ClassVar[str | None] = None

    @classmethod
    def matches(cls, manufacturer: str | None, model: str | None) -> bool:
        """True if the identity text matches one of ``patterns``."""
        text = f"{manufacturer or ''} {model or ''}".lower()
        return any(re.search(pattern, text) for pattern in cls.patterns)

    async def signal(self, channel: AtCommander) -> Signal:
        """Signal measurements from the first of ``signal_commands`` that knows any."""
        for cmd in self.signal_commands:
            response = await ask(channel, cmd)
            prefix = cmd[2:].split("=")[0].split("?")[0]
            payload = response.first(prefix) if response else None
            if payload is None:
                continue
            signal = parse_cesq(payload) if prefix.upper() == "+CESQ" else parse_csq(payload)
            if not signal.empty:
                return signal
        return Signal()

    async def serving_cell(self, channel: AtCommander, rat_hint: str | None = None) -> ServingCell | None:
        """Vendor serving-cell facts, or None when the vendor has no such command or it failed.

        ``rat_hint`` is the technology the 27.007 commands reported, for
        vendors whose layout depends on it but does not name it.
        """
        if self.serving_cell_command is None:
            return None
        response = await ask(channel, self.serving_cell_command)
        if response is None:
            return None
        try:
            return self.parse_serving_cell(response.lines, rat_hint)
        except (ValueError, IndexError) as exc:
            LOG.debug("%s: cannot parse %s: %s", self.name, response.lines, exc)
            return None

    def parse_serving_cell(self, lines: Sequence[str], rat_hint: str | None = None) -> ServingCell | None:
        """Parse the serving-cell response lines (generic modems have none)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class QuectelQuirks(Quirks):
    """Quectel EC2x, EG2x/EG9x, BG95/BG96, EM/RM modules: ``AT+QENG="servingcell"``."""

    name = "quectel"
    patterns = (r"quectel", r"\b(ec2[015]|eg[0-9]{2}|bg9[56]|bg77|em0[56]|em12|ep06|rm5[0-9]{2})")
    serving_cell_command = 'AT+QENG="servingcell"'

    def parse_serving_cell(self, lines: Sequence[str], rat_hint: str | None = None) -> ServingCell | None:
        for line in lines:
            if not line.upper().startswith("+QENG"):
                continue
            items = split_fields(line.split(":", 1)[1])
            if items and items[0].lower() == "servingcell":
                items = items[1:]
            if items and items[0].upper() in _QENG_STATES:
                items = items[1:]
            if not items:
                continue
            cell = self._parse_rat(items)
            if cell is not None:
                return cell
        return None

    @staticmethod
    def _parse_rat(items: list[str]) -> ServingCell | None:
        rat = items[0].upper()
        if rat in ("LTE", "CAT-M", "EMTC", "CAT-NB", "NBIOT", "NB-IOT"):
            sinr = to_int(field_at(items, 14))
            return ServingCell(
                rat=RAT_NBIOT if "NB" in rat else RAT_LTE,
                duplex=(field_at(items, 1) or "").upper() or None,
                mcc=to_int(field_at(items, 2)),
                mnc=to_int(field_at(items, 3)),
                cell_id=to_int(field_at(items, 4), 16),
                band=to_int(field_at(items, 7)),
                lac=to_int(field_at(items, 10), 16),
                signal=Signal(
                    rsrp=to_float(field_at(items, 11)),
                    rsrq=to_float(field_at(items, 12)),
                    rssi=to_float(field_at(items, 13)),
                    sinr=sinr / 5 - 20 if sinr is not None and 0 <= sinr <= 250 else None,
                ),
            )
        if rat == "WCDMA":
            return ServingCell(
                rat=RAT_UMTS,
                mcc=to_int(field_at(items, 1)),
                mnc=to_int(field_at(items, 2)),
                lac=to_int(field_at(items, 3), 16),
                cell_id=to_int(field_at(items, 4), 16),
                signal=Signal(rscp=to_float(field_at(items, 8)), ecno=to_float(field_at(items, 9))),
            )
        if rat == "GSM":
            return ServingCell(
                rat=RAT_GSM,
                mcc=to_int(field_at(items, 1)),
                mnc=to_int(field_at(items, 2)),
                lac=to_int(field_at(items, 3), 16),
                cell_id=to_int(field_at(items, 4), 16),
            )
        return None


class SimcomQuirks(Quirks):
    """SIMCom SIM7600/SIM7000 (and relatives): ``AT+CPSI?``; signal from ``+CSQ`` plus CPSI."""

    name = "simcom"
    patterns = (r"simcom", r"\bsim(7[0-9]{3}|8[0-9]{2})")
    signal_commands = ("AT+CSQ",)
    serving_cell_command = "AT+CPSI?"

    def parse_serving_cell(self, lines: Sequence[str], rat_hint: str | None = None) -> ServingCell | None:
        payload = next((ln.split(":", 1)[1] for ln in lines if ln.upper().startswith("+CPSI")), None)
        if payload is None:
            return None
        items = split_fields(payload)
        mode = (field_at(items, 0) or "").upper()
        if not mode or "NO SERVICE" in mode:
            return None
        mcc, mnc = plmn(field_at(items, 2))
        lac = to_int(field_at(items, 3), 16)
        cell_id = to_int(field_at(items, 4))
        if "LTE" in mode or "CAT-M" in mode or "NB" in mode:
            band_match = re.search(r"BAND\s*(\d+)", field_at(items, 6) or "", re.IGNORECASE)
            band = int(band_match.group(1)) if band_match else None
            rsrp = to_float(field_at(items, 11))
            tenths = rsrp is not None and abs(rsrp) > 150
            return ServingCell(
                rat=RAT_NBIOT if "NB" in mode else RAT_LTE,
                duplex=lte_duplex(band),
                mcc=mcc,
                mnc=mnc,
                lac=lac,
                cell_id=cell_id,
                band=band,
                signal=Signal(
                    rsrq=_scaled(to_float(field_at(items, 10)), tenths),
                    rsrp=_scaled(rsrp, tenths),
                    rssi=_scaled(to_float(field_at(items, 12)), tenths),
                    sinr=to_float(field_at(items, 13)),
                ),
            )
        if "WCDMA" in mode:
            return ServingCell(rat=RAT_UMTS, mcc=mcc, mnc=mnc, lac=lac, cell_id=cell_id)
        if "GSM" in mode:
            signal = Signal(rssi=to_float(field_at(items, 6)))
            return ServingCell(rat=RAT_GSM, mcc=mcc, mnc=mnc, lac=lac, cell_id=cell_id, signal=signal)
        return None


class UbloxQuirks(Quirks):
    """u-blox SARA-R4/R5, TOBY, LARA: ``AT+UCGED?`` in mode 2 (enabled at init)."""

    name = "ublox"
    patterns = (r"u-?blox", r"\b(sara|toby|lara|lisa)-")
    init_commands = (*Quirks.init_commands, "AT+UCGED=2")
    serving_cell_command = "AT+UCGED?"

    def parse_serving_cell(self, lines: Sequence[str], rat_hint: str | None = None) -> ServingCell | None:
        start = next((i for i, ln in enumerate(lines) if ln.upper().startswith("+UCGED")), None)
        if start is None or start + 2 >= len(lines):
            return None
        if to_int(lines[start].split(":", 1)[1]) != 2:
            return None
        head = split_fields(lines[start + 1])
        cell = split_fields(lines[start + 2])
        band = to_int(field_at(cell, 1))
        rsrp = to_int(field_at(cell, 10))
        rsrq = to_int(field_at(cell, 11))
        return ServingCell(
            rat=RAT_NBIOT if to_int(field_at(head, 0)) == 7 else RAT_LTE,
            duplex=lte_duplex(band),
            mcc=to_int(field_at(head, 2)),
            mnc=to_int(field_at(head, 3)),
            band=band,
            lac=to_int(field_at(cell, 4), 16),
            cell_id=to_int(field_at(cell, 5), 16),
            signal=Signal(
                rsrp=float(rsrp - 141) if rsrp is not None and 0 <= rsrp <= 97 else None,
                rsrq=rsrq / 2 - 20 if rsrq is not None and 0 <= rsrq <= 34 else None,
                sinr=to_float(field_at(cell, 12)),
            ),
        )


class TelitQuirks(Quirks):
    """Telit LE910/ME910/LN9xx/FN9xx: ``AT#RFSTS``, whose layout depends on the technology.

    The response does not name its technology, so the 27.007 one (``rat_hint``)
    picks the layout: GSM ``<plmn>,<arfcn>,<rssi>,<lac>,<rac>,<txpwr>,<mm>,<rr>,
    <nom>,<cid>,...``; UMTS ``<plmn>,<uarfcn>,<psc>,<ecio>,<rscp>,<rssi>,<lac>,
    <rac>,<txpwr>,<drx>,<mm>,<rrc>,<nom>,<bler>,<cid>,...``; otherwise LTE.
    """

    name = "telit"
    patterns = (r"telit", r"\b(le910|me910|ln9[0-9]{2}|le866|ml865|fn9[0-9]{2})")
    serving_cell_command = "AT#RFSTS"

    def parse_serving_cell(self, lines: Sequence[str], rat_hint: str | None = None) -> ServingCell | None:
        payload = next((ln.split(":", 1)[1] for ln in lines if ln.upper().startswith("#RFSTS")), None)
        if payload is None:
            return None
        items = split_fields(payload)
        mcc, mnc = plmn(field_at(items, 0))
        if rat_hint == RAT_GSM and len(items) >= 10:
            return ServingCell(
                rat=RAT_GSM, mcc=mcc, mnc=mnc,
                lac=to_int(field_at(items, 3), 16), cell_id=to_int(field_at(items, 9), 16),
                signal=Signal(rssi=to_float(field_at(items, 2))),
            )  # fmt: skip
        if rat_hint == RAT_UMTS and len(items) >= 15:
            return ServingCell(
                rat=RAT_UMTS, mcc=mcc, mnc=mnc,
                lac=to_int(field_at(items, 6), 16), cell_id=to_int(field_at(items, 14), 16),
                signal=Signal(ecno=to_float(field_at(items, 3)), rscp=to_float(field_at(items, 4)),
                              rssi=to_float(field_at(items, 5))),
            )  # fmt: skip
        if rat_hint not in (None, RAT_LTE, RAT_NBIOT) or len(items) < 12:
            return ServingCell(mcc=mcc, mnc=mnc)
        band = to_int(field_at(items, 15))
        return ServingCell(
            rat=rat_hint or RAT_LTE,
            duplex=lte_duplex(band),
            band=band,
            mcc=mcc,
            mnc=mnc,
            lac=to_int(field_at(items, 5), 16),
            cell_id=to_int(field_at(items, 11), 16),
            signal=Signal(
                rsrp=to_float(field_at(items, 2)),
                rssi=to_float(field_at(items, 3)),
                rsrq=to_float(field_at(items, 4)),
            ),
        )


GenericQuirks = Quirks

QUIRKS: tuple[type[Quirks], ...] = (QuectelQuirks, SimcomQuirks, UbloxQuirks, TelitQuirks)
"""Vendor classes in match order; :class:`Quirks` is the fallback."""

_ALL: tuple[type[Quirks], ...] = (*QUIRKS, Quirks)
VENDORS: dict[str, type[Quirks]] = {cls.name: cls for cls in _ALL}
VENDORS["u-blox"] = UbloxQuirks


def select_quirks(manufacturer: str | None, model: str | None) -> Quirks:
    """The quirks of the first vendor class matching the identity, else the generic ones."""
    for cls in QUIRKS:
        if cls.matches(manufacturer, model):
            return cls()
    return Quirks()


def quirks_for_vendor(name: str) -> Quirks:
    """Quirks by configured vendor name (``quectel``, ``simcom``, ``ublox``, ``telit``, ``generic``).

    ValueError names the known vendors.
    """
    cls = VENDORS.get(name.strip().lower())
    if cls is None:
        raise ValueError(f"unknown modem vendor {name!r}; expected one of {', '.join(sorted(VENDORS))}")
    return cls()


async def detect_quirks(channel: AtCommander, vendor: str | None = None) -> tuple[ModemIdentity, Quirks]:
    """Identify the modem and choose its quirks (``vendor`` overrides the choice)."""
    identity = await identify(channel)
    if vendor:
        quirks = quirks_for_vendor(vendor)
    else:
        text = identity.manufacturer or " ".join(identity.ati)
        quirks = select_quirks(text, identity.model)
    LOG.info(
        "modem: %s %s (revision %s) -> %s quirks",
        identity.manufacturer or "?", identity.model or "?", identity.revision or "?", quirks.name,
    )  # fmt: skip
    return identity, quirks
