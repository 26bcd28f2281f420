"""Modem facts: 3GPP TS 27.007 response parsers and the one-shot facts poll.

Everything here is free of LwM2M: values are physical units (dBm, dB),
numeric network identities and radio access technology names (``RAT_*``).
The parsers take the payload after the ``+XXX:`` prefix (or a response's
lines) and return None for a value the modem reports as unknown.

:func:`poll` queries one modem through an :class:`AtCommander` (an
:class:`~lwm2md.drivers.modem.at.AtChannel` or a test double) and a quirks
object (:mod:`lwm2md.drivers.modem.quirks`); a command answering ERROR or
timing out leaves its facts None, a channel that goes away mid-poll raises
:class:`~lwm2md.drivers.modem.at.PortUnavailable`.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Protocol

from lwm2md.drivers.modem.at import AtError, AtResponse, AtTimeout

if TYPE_CHECKING:
    from lwm2md.drivers.modem.quirks import Quirks

LOG = logging.getLogger(__name__)

RAT_GSM = "GSM"
RAT_UMTS = "UMTS"
RAT_TDSCDMA = "TD-SCDMA"
RAT_CDMA = "CDMA"
RAT_LTE = "LTE"
RAT_NBIOT = "NB-IoT"
RAT_NR = "NR"

# +COPS/+CREG <AcT> (TS 27.007 7.3) -> radio access technology.
ACT_RAT: dict[int, str] = {
    0: RAT_GSM,  # GSM
    1: RAT_GSM,  # GSM Compact
    2: RAT_UMTS,  # UTRAN
    3: RAT_GSM,  # GSM w/EGPRS
    4: RAT_UMTS,  # UTRAN w/HSDPA
    5: RAT_UMTS,  # UTRAN w/HSUPA
    6: RAT_UMTS,  # UTRAN w/HSDPA and HSUPA
    7: RAT_LTE,  # E-UTRAN (LTE, LTE-M)
    8: RAT_GSM,  # EC-GSM-IoT
    9: RAT_NBIOT,  # E-UTRAN (NB-S1 mode)
    10: RAT_LTE,  # E-UTRA connected to 5GCN
    11: RAT_NR,  # NR connected to 5GCN
    12: RAT_NR,  # NG-RAN
    13: RAT_LTE,  # E-UTRA-NR dual connectivity (LTE anchor)
}

REGISTERED = frozenset({1, 5})
"""<stat> values meaning registered (home, roaming)."""


class AtCommander(Protocol):
    """What the poll needs from a channel."""

    async def command(self, cmd: str, *, timeout: float = ...) -> AtResponse: ...


@dataclass(frozen=True)
class Signal:
    """Radio measurements in dBm (``rssi``, ``rxlev``, ``rscp``, ``rsrp``) and dB (the rest).

    ``ber`` is the RxQual index 0..7. Every field is None when unknown.
    """

    rssi: float | None = None
    ber: int | None = None
    rxlev: float | None = None
    rscp: float | None = None
    ecno: float | None = None
    rsrq: float | None = None
    rsrp: float | None = None
    sinr: float | None = None

    def merged(self, other: Signal | None) -> Signal:
        """This signal with every known field of ``other`` taking precedence."""
        if other is None:
            return self
        known = {f.name: getattr(other, f.name) for f in fields(other)}
        updates = {name: value for name, value in known.items() if value is not None}
        return replace(self, **updates)

    @property
    def empty(self) -> bool:
        """True when no field is known."""
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True)
class ServingCell:
    """Serving-cell facts from a vendor command; None marks what the vendor did not report."""

    rat: str | None = None
    duplex: str | None = None
    mcc: int | None = None
    mnc: int | None = None
    lac: int | None = None
    cell_id: int | None = None
    band: int | None = None
    signal: Signal = field(default_factory=Signal)


@dataclass(frozen=True)
class Operator:
    """``+COPS?``: selection mode, the operator (numeric when format 2) and access technology."""

    mode: int | None = None
    name: str | None = None
    mcc: int | None = None
    mnc: int | None = None
    act: int | None = None


@dataclass(frozen=True)
class Registration:
    """``+CREG``/``+CGREG``/``+CEREG``: status, LAC/TAC and cell identity (ints from hex)."""

    stat: int | None = None
    lac: int | None = None
    cell_id: int | None = None
    act: int | None = None
    n: int | None = None

    @property
    def registered(self) -> bool:
        return self.stat in REGISTERED


@dataclass(frozen=True)
class ModemIdentity:
    """``+CGMI``/``+CGMM``/``+CGMR``/``+CGSN`` (falling back to ``ATI``); ``ati`` keeps the raw lines."""

    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    ati: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModemFacts:
    """One poll's view of the modem and its network; None (or empty) marks an unknown fact.

    ``duplex`` is ``"FDD"``/``"TDD"`` when known; ``lac`` is the LAC (GSM,
    UMTS) or TAC (LTE, NR); ``apns`` lists the APNs of the active PDP contexts
    (all defined ones when activity is unknown).
    """

    identity: ModemIdentity | None = None
    registration: int | None = None
    rat: str | None = None
    duplex: str | None = None
    mcc: int | None = None
    mnc: int | None = None
    lac: int | None = None
    cell_id: int | None = None
    band: int | None = None
    signal: Signal = field(default_factory=Signal)
    apns: tuple[str, ...] = ()

    @property
    def signal_strength(self) -> float | None:
        """The bearer's signal strength in dBm: RSRP (LTE, NB-IoT, NR), RSCP (UMTS), RSSI (GSM)."""
        s = self.signal
        order: tuple[float | None, ...]
        if self.rat in (RAT_LTE, RAT_NBIOT, RAT_NR):
            order = (s.rsrp, s.rssi)
        elif self.rat in (RAT_UMTS, RAT_TDSCDMA):
            order = (s.rscp, s.rssi)
        elif self.rat == RAT_GSM:
            order = (s.rssi, s.rxlev)
        else:
            order = (s.rsrp, s.rscp, s.rssi, s.rxlev)
        return next((v for v in order if v is not None), None)

    @property
    def link_quality(self) -> float | None:
        """RSRQ in dB (LTE, NB-IoT, NR), Ec/No in dB (UMTS), RxQual 0..7 (GSM)."""
        s = self.signal
        if self.rat in (RAT_LTE, RAT_NBIOT, RAT_NR):
            return s.rsrq
        if self.rat in (RAT_UMTS, RAT_TDSCDMA):
            return s.ecno
        if self.rat == RAT_GSM:
            return None if s.ber is None else float(s.ber)
        return s.rsrq


# -- field helpers ---------------------------------------------------------------------


def split_fields(text: str) -> list[str]:
    """Comma-separated AT parameters with quotes removed and whitespace stripped."""
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [item.strip() for item in row]


def to_int(text: str | None, base: int = 10) -> int | None:
    """``int(text, base)``; None for empty, ``-`` or malformed text (``0x`` accepted for base 16)."""
    if text is None:
        return None
    text = text.strip().strip('"')
    if base == 16 and text[:2].lower() == "0x":
        text = text[2:]
    try:
        return int(text, base)
    except ValueError:
        return None


def to_float(text: str | None) -> float | None:
    """``float(text)``; None for empty, ``-`` or malformed text."""
    if text is None:
        return None
    try:
        return float(text.strip().strip('"'))
    except ValueError:
        return None


def field_at(items: Sequence[str], index: int) -> str | None:
    """``items[index]`` or None when out of range or empty."""
    if index < len(items) and items[index] != "":
        return items[index]
    return None


def plmn(text: str | None) -> tuple[int | None, int | None]:
    """``"26201"``/``"262-01"``/``"262 01"`` -> (262, 1); (None, None) when malformed."""
    if not text:
        return None, None
    digits = re.sub(r"[\s\-]", "", text.strip('"'))
    if not digits.isdigit() or len(digits) not in (5, 6):
        return None, None
    return int(digits[:3]), int(digits[3:])


def lte_duplex(band: int | None) -> str | None:
    """``"TDD"`` for E-UTRA operating bands 33..53, ``"FDD"`` for other known bands, else None."""
    if band is None or band <= 0:
        return None
    return "TDD" if 33 <= band <= 53 else "FDD"


def act_to_rat(act: int | None) -> str | None:
    """The radio access technology of a TS 27.007 ``<AcT>``."""
    return None if act is None else ACT_RAT.get(act)


# -- 27.007 parsers --------------------------------------------------------------------


def parse_csq(payload: str) -> Signal:
    """``+CSQ: <rssi>,<ber>``: rssi 0..31 -> -113 + 2*rssi dBm, 99 unknown; ber 0..7, 99 unknown."""
    items = split_fields(payload)
    rssi = to_int(field_at(items, 0))
    ber = to_int(field_at(items, 1))
    return Signal(
        rssi=float(-113 + 2 * rssi) if rssi is not None and 0 <= rssi <= 31 else None,
        ber=ber if ber is not None and 0 <= ber <= 7 else None,
    )


def parse_cesq(payload: str) -> Signal:
    """``+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>`` in physical units.

    rxlev 0..63 -> rxlev - 111 dBm; rscp 0..96 -> rscp - 121 dBm; ecno 0..49
    -> ecno/2 - 24.5 dB; rsrq 0..34 -> rsrq/2 - 20 dB; rsrp 0..97 -> rsrp - 141
    dBm (the lowest index stands for "below", the highest for "at least").
    99 (rxlev, ber) and 255 (the others) mean unknown.
    """
    items = [to_int(item) for item in split_fields(payload)]
    items += [None] * (6 - len(items))
    rxlev, ber, rscp, ecno, rsrq, rsrp = items[:6]
    return Signal(
        rxlev=float(rxlev - 111) if rxlev is not None and 0 <= rxlev <= 63 else None,
        ber=ber if ber is not None and 0 <= ber <= 7 else None,
        rscp=float(rscp - 121) if rscp is not None and 0 <= rscp <= 96 else None,
        ecno=ecno / 2 - 24.5 if ecno is not None and 0 <= ecno <= 49 else None,
        rsrq=rsrq / 2 - 20 if rsrq is not None and 0 <= rsrq <= 34 else None,
        rsrp=float(rsrp - 141) if rsrp is not None and 0 <= rsrp <= 97 else None,
    )


def parse_cops(payload: str) -> Operator:
    """``+COPS: <mode>[,<format>,<oper>[,<AcT>]]``; MCC/MNC only for the numeric format 2."""
    items = split_fields(payload)
    mode = to_int(field_at(items, 0))
    fmt = to_int(field_at(items, 1))
    oper = field_at(items, 2)
    act = to_int(field_at(items, 3))
    mcc, mnc = plmn(oper) if fmt == 2 else (None, None)
    return Operator(mode=mode, name=oper, mcc=mcc, mnc=mnc, act=act)


_INVALID_LAC = frozenset({0xFFFE, 0xFFFFFE})
_INVALID_CI = frozenset({0xFFFFFFFF, 0xFFFFFFFFF})


def _location(text: str | None, invalid: frozenset[int]) -> int | None:
    value = to_int(text, 16)
    return None if value is None or value in invalid else value


def parse_registration(payload: str, *, unsolicited: bool = False) -> Registration:
    """``+CREG``/``+CGREG``/``+CEREG``/``+C5GREG`` read response (``<n>,<stat>[,<lac>,<ci>[,<AcT>...]]``).

    With ``unsolicited`` the URC form without ``<n>`` is parsed. LAC/TAC and
    cell identity are hexadecimal strings; the reserved invalid values become None.
    For +CGREG the ``<AcT>`` precedes ``<rac>``; for +CEREG ``<AcT>`` is
    likewise the fifth field, so one layout fits all three.
    """
    items = split_fields(payload)
    n = None
    if not unsolicited:
        n = to_int(field_at(items, 0))
        items = items[1:]
    return Registration(
        n=n,
        stat=to_int(field_at(items, 0)),
        lac=_location(field_at(items, 1), _INVALID_LAC),
        cell_id=_location(field_at(items, 2), _INVALID_CI),
        act=to_int(field_at(items, 3)),
    )


def parse_cgdcont(lines: Sequence[str]) -> dict[int, str]:
    """``+CGDCONT: <cid>,<PDP_type>,<APN>,...`` lines -> {cid: APN} for non-empty APNs."""
    out: dict[int, str] = {}
    for line in lines:
        items = split_fields(line)
        cid = to_int(field_at(items, 0))
        apn = field_at(items, 2)
        if cid is not None and apn:
            out[cid] = apn
    return out


def parse_cgact(lines: Sequence[str]) -> dict[int, bool]:
    """``+CGACT: <cid>,<state>`` lines -> {cid: active}."""
    out: dict[int, bool] = {}
    for line in lines:
        items = split_fields(line)
        cid = to_int(field_at(items, 0))
        state = to_int(field_at(items, 1))
        if cid is not None and state is not None:
            out[cid] = state == 1
    return out


def parse_ati(lines: Sequence[str]) -> ModemIdentity:
    """Identity from ``ATI``: ``Key: value`` lines (SIMCom, u-blox) or bare lines (Quectel, Telit).

    Bare lines read as manufacturer, model, ``Revision: ...``; a single bare
    line is taken as the model.
    """
    keyed: dict[str, str] = {}
    bare: list[str] = []
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("manufacturer", "model", "revision", "imei"):
            keyed[key.strip().lower()] = value.strip()
        elif not line.startswith("+"):
            bare.append(line.strip())
    manufacturer = keyed.get("manufacturer")
    model = keyed.get("model")
    if manufacturer is None and model is None:
        if len(bare) >= 2:
            manufacturer, model = bare[0], bare[1]
        elif bare:
            model = bare[0]
    return ModemIdentity(
        manufacturer=manufacturer or None,
        model=model or None,
        revision=keyed.get("revision") or None,
        imei=keyed.get("imei") or None,
        ati=tuple(lines),
    )


def _single(response: AtResponse | None, prefix: str) -> str | None:
    """The one information line of an identification command, with an optional ``+XXX:`` echo removed."""
    if response is None:
        return None
    for line in response.lines:
        text = line[len(prefix) :].lstrip(":").strip() if line.upper().startswith(prefix) else line.strip()
        text = text.strip('"')
        if text:
            return text
    return None


# -- polling ---------------------------------------------------------------------------


async def ask(channel: AtCommander, cmd: str, timeout: float = 5.0) -> AtResponse | None:
    """``channel.command(cmd)``, or None when the modem answers an error or times out.

    :class:`~lwm2md.drivers.modem.at.PortUnavailable` propagates: the channel is gone.
    """
    try:
        return await channel.command(cmd, timeout=timeout)
    except AtError as exc:
        LOG.debug("%s -> %s", cmd, exc.final)
    except AtTimeout as exc:
        LOG.debug("%s", exc)
    return None


async def identify(channel: AtCommander) -> ModemIdentity:
    """Read ``+CGMI``/``+CGMM``/``+CGMR``/``+CGSN``; ``ATI`` fills what those did not give."""
    manufacturer = _single(await ask(channel, "AT+CGMI"), "+CGMI")
    model = _single(await ask(channel, "AT+CGMM"), "+CGMM")
    revision = _single(await ask(channel, "AT+CGMR"), "+CGMR")
    imei = _single(await ask(channel, "AT+CGSN"), "+CGSN")
    ati: ModemIdentity | None = None
    if manufacturer is None or model is None:
        response = await ask(channel, "ATI")
        if response is not None:
            ati = parse_ati(response.lines)
    if ati is None:
        return ModemIdentity(manufacturer, model, revision, imei)
    return ModemIdentity(
        manufacturer=manufacturer or ati.manufacturer,
        model=model or ati.model,
        revision=revision or ati.revision,
        imei=imei or ati.imei,
        ati=ati.ati,
    )


async def read_registration(channel: AtCommander) -> Registration:
    """The first registered one of +CEREG, +CGREG, +CREG (else the last answer, else empty)."""
    best = Registration()
    for prefix in ("+CEREG", "+CGREG", "+CREG"):
        response = await ask(channel, f"AT{prefix}?")
        payload = response.first(prefix) if response else None
        if payload is None:
            continue
        reg = parse_registration(payload)
        if reg.registered:
            return reg
        if best.stat is None:
            best = reg
    return best


async def read_apns(channel: AtCommander) -> tuple[str, ...]:
    """APNs of the active contexts (of all defined ones when ``+CGACT?`` fails)."""
    response = await ask(channel, "AT+CGDCONT?")
    if response is None:
        return ()
    contexts = parse_cgdcont(response.values("+CGDCONT"))
    active_response = await ask(channel, "AT+CGACT?")
    if active_response is not None:
        active = parse_cgact(active_response.values("+CGACT"))
        contexts = {cid: apn for cid, apn in contexts.items() if active.get(cid)}
    seen: list[str] = []
    for _, apn in sorted(contexts.items()):
        if apn not in seen:
            seen.append(apn)
    return tuple(seen)


async def poll(channel: AtCommander, quirks: Quirks, *, identity: ModemIdentity | None = None) -> ModemFacts:
    """Query the modem once; vendor serving-cell facts win over the 27.007 ones.

    ``identity`` skips the identification commands (it never changes).
    """
    ident = identity if identity is not None else await identify(channel)
    signal = await quirks.signal(channel)
    cops_response = await ask(channel, "AT+COPS?")
    cops_payload = cops_response.first("+COPS") if cops_response else None
    operator = parse_cops(cops_payload) if cops_payload is not None else Operator()
    registration = await read_registration(channel)
    apns = await read_apns(channel)
    standard_rat = act_to_rat(operator.act) or act_to_rat(registration.act)
    cell = await quirks.serving_cell(channel, standard_rat) or ServingCell()
    rat = cell.rat or standard_rat
    duplex = cell.duplex
    if duplex is None and rat == RAT_LTE:
        duplex = lte_duplex(cell.band)
    return ModemFacts(
        identity=ident,
        registration=registration.stat,
        rat=rat,
        duplex=duplex,
        mcc=cell.mcc if cell.mcc is not None else operator.mcc,
        mnc=cell.mnc if cell.mnc is not None else operator.mnc,
        lac=cell.lac if cell.lac is not None else registration.lac,
        cell_id=cell.cell_id if cell.cell_id is not None else registration.cell_id,
        band=cell.band,
        signal=signal.merged(cell.signal),
        apns=apns,
    )
