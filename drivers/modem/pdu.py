"""SMS transfer-layer PDUs (3GPP TS 23.040) for binary messages in PDU mode.

Encodes SMS-SUBMIT (and SMS-DELIVER, for fakes and tests) carrying 8-bit
data, and decodes SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT as the
modem hands them over (``AT+CMGR``, ``AT+CMGL``, ``+CMT``), with or without
the leading service-centre address.

Contract:

- :func:`decode_pdu` returns a value or raises :class:`PduError` for any
  input (bytes or hex); it never raises anything else. It is strict about
  lengths (truncated or trailing octets are errors) and lenient about what
  does not affect the payload: an impossible service-centre timestamp
  decodes to None, a concatenation element with a zero or out-of-range
  sequence number is ignored as TS 23.040 asks.
- Data coding: user data is taken as octets unless TP-DCS says GSM 7-bit;
  :attr:`SmsDeliver.binary` is True only for uncompressed 8-bit data
  (``0x04``, the class variants ``0xF4``-``0xF7``, ``0x14``-``0x17`` ...).
  7-bit and UCS2 text are not converted; their raw octets are kept.
- Concatenation: both the 8-bit (IEI ``0x00``) and 16-bit (IEI ``0x08``)
  reference elements are decoded; :func:`split_payload` encodes with the
  16-bit reference by default (133 payload octets per part) because a
  16-bit reference makes a collision inside the receiver's reassembly
  window practically impossible; ``reference_bits=8`` gives 134 per part.
- TP-PID: :data:`PID_DEFAULT` (``0x00``, plain short message). The LwM2M
  transport specification's requirement on TP-PID for the SMS binding in
  device (non-UICC) mode could not be confirmed here; ``pid`` is a
  parameter of the encoders.
- Addresses: ``"+4917..."`` is international (TOA ``0x91``), digits
  without ``+`` are encoded as unknown type (``0x81``); decoding keeps the
  TOA (``0xA1`` national too) and turns alphanumeric senders into text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

TOA_INTERNATIONAL = 0x91
"""Type of address: international number, ISDN/telephony numbering plan."""
TOA_NATIONAL = 0xA1
"""Type of address: national number, ISDN/telephony numbering plan."""
TOA_UNKNOWN = 0x81
"""Type of address: unknown type of number, ISDN/telephony numbering plan."""
TOA_ALPHANUMERIC = 0xD0
"""Type of address: alphanumeric (GSM 7-bit default alphabet)."""

DCS_8BIT = 0x04
"""TP-DCS for 8-bit data without message class."""
PID_DEFAULT = 0x00
"""TP-PID for a plain short message (no telematic interworking)."""

MAX_USER_DATA = 140
"""Octets of TP-UD (header included) in one SMS with 8-bit data."""
MAX_SEPTETS = 160
"""Septets of TP-UD in one SMS with GSM 7-bit data."""
MAX_PARTS = 255
"""Parts of one concatenated message."""
MAX_ADDRESS_DIGITS = 20
"""Digits (semi-octets) of TP-OA/TP-DA/TP-RA."""

IEI_CONCAT_8 = 0x00
"""Information element: concatenated short message, 8-bit reference."""
IEI_CONCAT_16 = 0x08
"""Information element: concatenated short message, 16-bit reference."""

MTI_DELIVER = 0b00
MTI_SUBMIT = 0b01
MTI_STATUS_REPORT = 0b10

_DIGITS = "0123456789*#abc"
"""Semi-octet values 0-14 of an address; 15 is the filler."""
_GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 7-bit default alphabet (TS 23.038), indexed by septet value."""
assert len(_GSM7) == 128

Alphabet = Literal["gsm7", "8bit", "ucs2", "compressed"]


class PduError(ValueError):
    """The octets are not a PDU this module can decode (truncated, reserved, inconsistent)."""


# -- pieces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """An SMS address: ``number`` (digits, or text for alphanumeric) and its type-of-address octet."""

    number: str
    toa: int = TOA_UNKNOWN

    @classmethod
    def parse(cls, text: str) -> Address:
        """``"+491701234567"`` -> international; ``"01701234567"`` -> unknown type.

        Digits may include ``*#abc``; spaces are not allowed. ValueError when
        empty, longer than 20 digits or containing anything else.
        """
        international = text.startswith("+")
        digits = text[1:] if international else text
        if not digits or len(digits) > MAX_ADDRESS_DIGITS or any(c not in _DIGITS for c in digits):
            raise ValueError(f"not an SMS address: {text!r}")
        return cls(digits, TOA_INTERNATIONAL if international else TOA_UNKNOWN)

    @property
    def international(self) -> bool:
        """True when the type of number is international."""
        return (self.toa & 0x70) == 0x10

    @property
    def alphanumeric(self) -> bool:
        """True when the address is text (an alphanumeric sender)."""
        return (self.toa & 0x70) == 0x50

    def __str__(self) -> str:
        return f"+{self.number}" if self.international else self.number


@dataclass(frozen=True)
class InformationElement:
    """One element of a User Data Header: identifier and data octets."""

    iei: int
    data: bytes


@dataclass(frozen=True)
class Concat:
    """Concatenation facts of one part: ``seq`` counts from 1 up to ``total``."""

    reference: int
    total: int
    seq: int
    bits: Literal[8, 16] = 16

    def element(self) -> InformationElement:
        """This as an information element (IEI 0x00 or 0x08)."""
        if not (1 <= self.seq <= self.total <= MAX_PARTS):
            raise ValueError(f"bad concatenation numbers: part {self.seq} of {self.total}")
        if not 0 <= self.reference < (1 << self.bits):
            raise ValueError(f"reference {self.reference} does not fit {self.bits} bits")
        if self.bits == 8:
            return InformationElement(IEI_CONCAT_8, bytes((self.reference, self.total, self.seq)))
        return InformationElement(
            IEI_CONCAT_16, self.reference.to_bytes(2, "big") + bytes((self.total, self.seq))
        )


def concat_of(elements: Sequence[InformationElement]) -> Concat | None:
    """The concatenation facts in a header: the last well-formed element wins.

    Elements with a wrong length, a zero total, or a sequence number of zero
    or above the total are ignored (TS 23.040 9.2.3.24.1).
    """
    found: Concat | None = None
    for element in elements:
        data = element.data
        if element.iei == IEI_CONCAT_8 and len(data) == 3:
            candidate = Concat(data[0], data[1], data[2], 8)
        elif element.iei == IEI_CONCAT_16 and len(data) == 4:
            candidate = Concat(int.from_bytes(data[:2], "big"), data[2], data[3], 16)
        else:
            continue
        if 1 <= candidate.seq <= candidate.total:
            found = candidate
    return found


def alphabet(dcs: int) -> Alphabet:
    """How TP-UD is coded according to TP-DCS (TS 23.038 clause 4); reserved codings count as GSM 7-bit."""
    group = dcs >> 4
    if group < 0x8:  # general data coding (00xx) and automatic deletion (01xx)
        if dcs & 0x20:
            return "compressed"
        return ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 0x3]
    if group == 0xE:
        return "ucs2"
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"  # reserved groups and message-waiting groups 1100/1101


def message_class(dcs: int) -> int | None:
    """The message class 0-3 carried by TP-DCS, or None."""
    group = dcs >> 4
    if group == 0xF or (group < 0x8 and dcs & 0x10):
        return dcs & 0x3
    return None


def validity_seconds(vp: int) -> int:
    """Seconds of a relative TP-VP octet (TS 23.040 9.2.3.12.1)."""
    if not 0 <= vp <= 255:
        raise ValueError(f"TP-VP octet out of range: {vp}")
    if vp <= 143:
        return (vp + 1) * 300
    if vp <= 167:
        return 12 * 3600 + (vp - 143) * 1800
    if vp <= 196:
        return (vp - 166) * 86400
    return (vp - 192) * 7 * 86400


def relative_validity(seconds: float) -> int:
    """The smallest relative TP-VP octet covering ``seconds`` (255, 63 weeks, at most)."""
    for vp in range(256):
        if validity_seconds(vp) >= seconds:
            return vp
    return 255


# -- decoding ---------------------------------------------------------------------------------


class _UserDataFacts:
    """What SMS-DELIVER and SMS-SUBMIT both tell about their user data."""

    dcs: int
    elements: tuple[InformationElement, ...]

    @property
    def concat(self) -> Concat | None:
        """Concatenation facts, or None for a message of one part."""
        return concat_of(self.elements)

    @property
    def binary(self) -> bool:
        """True for uncompressed 8-bit data (the only coding the SMS link carries)."""
        return alphabet(self.dcs) == "8bit"


@dataclass(frozen=True)
class SmsDeliver(_UserDataFacts):
    """A received SMS (SC to MS). ``user_data`` is the payload after the header."""

    smsc: Address | None
    originator: Address
    pid: int
    dcs: int
    scts: dt.datetime | None
    user_data: bytes
    elements: tuple[InformationElement, ...] = ()
    more_messages: bool = False
    status_report: bool = False
    reply_path: bool = False


@dataclass(frozen=True)
class SmsSubmit(_UserDataFacts):
    """A message from MS to SC (our own outgoing, or one stored as sent)."""

    smsc: Address | None
    destination: Address
    message_reference: int
    pid: int
    dcs: int
    validity: int | None
    """Seconds of a relative validity period; None when absent or not relative."""
    user_data: bytes
    elements: tuple[InformationElement, ...] = ()
    status_report_request: bool = False
    reject_duplicates: bool = False


@dataclass(frozen=True)
class SmsStatusReport:
    """A delivery report (SC to MS); decoded only as far as needed to recognise and skip it."""

    smsc: Address | None
    message_reference: int
    recipient: Address
    scts: dt.datetime | None
    discharge_time: dt.datetime | None
    status: int


Pdu = SmsDeliver | SmsSubmit | SmsStatusReport


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise PduError(
                f"truncated in {what}: need {n} octets at {self.pos}, have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def octet(self, what: str) -> int:
        return self.take(1, what)[0]

    def remaining(self) -> int:
        return len(self.data) - self.pos


def _semi_octets(value: bytes, count: int, what: str) -> str:
    out: list[str] = []
    for i in range(count):
        nibble = (value[i // 2] >> (4 * (i % 2))) & 0xF
        if nibble == 0xF:
            raise PduError(f"filler inside {what}")
        out.append(_DIGITS[nibble])
    return "".join(out)


def _unpack_septets(data: bytes, count: int) -> str:
    bits = int.from_bytes(data, "little")
    return "".join(_GSM7[(bits >> (7 * i)) & 0x7F] for i in range(count))


def _read_address(reader: _Reader, what: str) -> Address:
    count = reader.octet(what)
    toa = reader.octet(what)
    if count > MAX_ADDRESS_DIGITS:
        raise PduError(f"{what} has {count} semi-octets (at most {MAX_ADDRESS_DIGITS})")
    value = reader.take((count + 1) // 2, what)
    if (toa & 0x70) == 0x50:
        return Address(_unpack_septets(value, count * 4 // 7), toa)
    return Address(_semi_octets(value, count, what), toa)


def _read_smsc(reader: _Reader) -> Address | None:
    length = reader.octet("SMSC address")
    if length == 0:
        return None
    if length > 11:
        raise PduError(f"SMSC address of {length} octets (at most 11)")
    toa = reader.octet("SMSC address")
    value = reader.take(length - 1, "SMSC address")
    digits = 2 * len(value)
    if value and value[-1] >> 4 == 0xF:
        digits -= 1
    if (toa & 0x70) == 0x50:
        return Address(_unpack_septets(value, len(value) * 8 // 7), toa)
    return Address(_semi_octets(value, digits, "SMSC address"), toa)


def _decode_timestamp(raw: bytes) -> dt.datetime | None:
    """TP-SCTS/TP-DT: seven swapped-BCD octets; None when they are not a valid time."""
    fields: list[int] = []
    for octet in raw[:6]:
        tens, units = octet & 0xF, octet >> 4
        if tens > 9 or units > 9:
            return None
        fields.append(tens * 10 + units)
    zone = raw[6]
    tens, units = zone & 0x7, zone >> 4
    if units > 9:
        return None
    quarters = tens * 10 + units
    offset = dt.timedelta(minutes=15 * quarters * (-1 if zone & 0x8 else 1))
    year, month, day, hour, minute, second = fields
    try:
        return dt.datetime(2000 + year, month, day, hour, minute, second, tzinfo=dt.timezone(offset))
    except ValueError:
        return None


def _read_user_data(reader: _Reader, dcs: int, udhi: bool) -> tuple[tuple[InformationElement, ...], bytes]:
    udl = reader.octet("TP-UDL")
    septets = alphabet(dcs) == "gsm7"
    if septets:
        if udl > MAX_SEPTETS:
            raise PduError(f"TP-UDL {udl} exceeds {MAX_SEPTETS} septets")
        size = (udl * 7 + 7) // 8
    else:
        if udl > MAX_USER_DATA:
            raise PduError(f"TP-UDL {udl} exceeds {MAX_USER_DATA} octets")
        size = udl
    ud = reader.take(size, "TP-UD")
    if reader.remaining():
        raise PduError(f"{reader.remaining()} octets after TP-UD")
    if not udhi:
        return (), ud
    if not ud:
        raise PduError("TP-UDHI set but TP-UD is empty")
    udhl = ud[0]
    if 1 + udhl > size or (septets and ((1 + udhl) * 8 + 6) // 7 > udl):
        raise PduError(f"user data header of {udhl} octets does not fit TP-UDL {udl}")
    elements: list[InformationElement] = []
    header = ud[1 : 1 + udhl]
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise PduError("truncated information element")
        iei, length = header[pos], header[pos + 1]
        if pos + 2 + length > len(header):
            raise PduError(f"information element 0x{iei:02X} overruns the header")
        elements.append(InformationElement(iei, bytes(header[pos + 2 : pos + 2 + length])))
        pos += 2 + length
    return tuple(elements), bytes(ud[1 + udhl :])


def _as_octets(pdu: str | bytes) -> bytes:
    if isinstance(pdu, bytes | bytearray | memoryview):
        return bytes(pdu)
    try:
        return bytes.fromhex(pdu.strip())
    except ValueError:
        raise PduError("not a hexadecimal PDU") from None


def decode_pdu(pdu: str | bytes, *, smsc: bool = True) -> Pdu:
    """Decode one PDU (hex text or octets).

    ``smsc`` says whether the PDU starts with the service-centre address
    field, as ``+CMT``, ``AT+CMGR`` and ``AT+CMGL`` deliver it in GSM/UMTS
    PDU mode. TP-MTI ``00`` is SMS-DELIVER, ``01`` SMS-SUBMIT, ``10``
    SMS-STATUS-REPORT; ``11`` (reserved) and everything malformed raise
    :class:`PduError`.
    """
    reader = _Reader(_as_octets(pdu))
    if not reader.remaining():
        raise PduError("empty PDU")
    centre = _read_smsc(reader) if smsc else None
    first = reader.octet("first octet")
    mti = first & 0x3
    udhi = bool(first & 0x40)
    if mti == MTI_DELIVER:
        originator = _read_address(reader, "TP-OA")
        pid = reader.octet("TP-PID")
        dcs = reader.octet("TP-DCS")
        scts = _decode_timestamp(reader.take(7, "TP-SCTS"))
        elements, data = _read_user_data(reader, dcs, udhi)
        return SmsDeliver(
            centre, originator, pid, dcs, scts, data, elements,
            more_messages=not first & 0x04, status_report=bool(first & 0x20), reply_path=bool(first & 0x80),
        )  # fmt: skip
    if mti == MTI_SUBMIT:
        reference = reader.octet("TP-MR")
        destination = _read_address(reader, "TP-DA")
        pid = reader.octet("TP-PID")
        dcs = reader.octet("TP-DCS")
        vpf = (first >> 3) & 0x3
        validity: int | None = None
        if vpf == 0b10:
            validity = validity_seconds(reader.octet("TP-VP"))
        elif vpf in (0b01, 0b11):
            reader.take(7, "TP-VP")
        elements, data = _read_user_data(reader, dcs, udhi)
        return SmsSubmit(
            centre, destination, reference, pid, dcs, validity, data, elements,
            status_report_request=bool(first & 0x20), reject_duplicates=bool(first & 0x04),
        )  # fmt: skip
    if mti == MTI_STATUS_REPORT:
        reference = reader.octet("TP-MR")
        recipient = _read_address(reader, "TP-RA")
        scts = _decode_timestamp(reader.take(7, "TP-SCTS"))
        discharge = _decode_timestamp(reader.take(7, "TP-DT"))
        status = reader.octet("TP-ST")
        return SmsStatusReport(centre, reference, recipient, scts, discharge, status)  # optional tail skipped
    raise PduError("reserved TP-MTI 11")


# -- encoding ---------------------------------------------------------------------------------


def _encode_address(address: Address) -> bytes:
    if address.alphanumeric:
        raise ValueError("alphanumeric addresses are not encoded")
    digits = address.number
    if not digits or len(digits) > MAX_ADDRESS_DIGITS or any(c not in _DIGITS for c in digits):
        raise ValueError(f"not an SMS address: {address.number!r}")
    return bytes((len(digits), address.toa)) + _pack_digits(digits)


def _pack_digits(digits: str) -> bytes:
    nibbles = [_DIGITS.index(c) for c in digits]
    if len(nibbles) % 2:
        nibbles.append(0xF)
    return bytes(lo | (hi << 4) for lo, hi in zip(nibbles[::2], nibbles[1::2], strict=True))


def _encode_smsc(address: Address | None) -> bytes:
    if address is None:
        return b"\x00"
    value = _pack_digits(address.number)
    if len(value) > 10:
        raise ValueError(f"SMSC address too long: {address.number!r}")
    return bytes((1 + len(value), address.toa)) + value


def _encode_timestamp(when: dt.datetime) -> bytes:
    offset = when.utcoffset()
    if offset is None:
        raise ValueError("the timestamp needs a time zone")
    if not 2000 <= when.year <= 2099:
        raise ValueError(f"year {when.year} does not fit TP-SCTS")
    quarters = round(offset.total_seconds() / 900)
    if abs(quarters) > 79:
        raise ValueError(f"time zone offset {offset} does not fit TP-SCTS")
    out = bytearray(
        (v % 10) << 4 | (v // 10)
        for v in (when.year - 2000, when.month, when.day, when.hour, when.minute, when.second)
    )
    magnitude = abs(quarters)
    out.append((magnitude % 10) << 4 | (magnitude // 10) | (0x8 if quarters < 0 else 0))
    return bytes(out)


def _encode_user_data(
    dcs: int, user_data: bytes, elements: Sequence[InformationElement]
) -> tuple[bool, bytes]:
    if alphabet(dcs) not in ("8bit", "ucs2"):
        raise ValueError(f"only octet codings are encoded (TP-DCS 0x{dcs:02X})")
    header = b""
    if elements:
        body = b""
        for element in elements:
            if not 0 <= element.iei <= 255 or len(element.data) > 255:
                raise ValueError(f"bad information element {element!r}")
            body += bytes((element.iei, len(element.data))) + element.data
        header = bytes((len(body),)) + body
    ud = header + user_data
    if len(ud) > MAX_USER_DATA:
        raise ValueError(f"user data of {len(ud)} octets exceeds {MAX_USER_DATA}")
    return bool(elements), bytes((len(ud),)) + ud


def _check_octet(name: str, value: int) -> None:
    if not 0 <= value <= 255:
        raise ValueError(f"{name} must be an octet, not {value}")


def encode_submit(
    destination: str | Address,
    user_data: bytes,
    *,
    elements: Sequence[InformationElement] = (),
    pid: int = PID_DEFAULT,
    dcs: int = DCS_8BIT,
    validity: float | None = None,
    message_reference: int = 0,
    status_report: bool = False,
    smsc: Address | None = None,
) -> bytes:
    """An SMS-SUBMIT PDU led by the SMSC field (``00``: the modem's service centre).

    ``validity`` in seconds becomes a relative TP-VP (rounded up); None
    leaves it out. ValueError when the user data plus header exceed 140
    octets, or for a bad address or octet value.
    """
    address = destination if isinstance(destination, Address) else Address.parse(destination)
    for name, value in (("pid", pid), ("dcs", dcs), ("message_reference", message_reference)):
        _check_octet(name, value)
    udhi, ud = _encode_user_data(dcs, user_data, elements)
    first = MTI_SUBMIT | (0x40 if udhi else 0) | (0x20 if status_report else 0)
    vp = b""
    if validity is not None:
        first |= 0b10 << 3
        vp = bytes((relative_validity(validity),))
    tpdu = bytes((first, message_reference)) + _encode_address(address) + bytes((pid, dcs)) + vp + ud
    return _encode_smsc(smsc) + tpdu


def encode_deliver(
    originator: str | Address,
    user_data: bytes,
    *,
    scts: dt.datetime,
    elements: Sequence[InformationElement] = (),
    pid: int = PID_DEFAULT,
    dcs: int = DCS_8BIT,
    smsc: Address | None = None,
    more_messages: bool = False,
) -> bytes:
    """An SMS-DELIVER PDU led by the SMSC field (what a network hands a modem; for fakes and tests)."""
    address = originator if isinstance(originator, Address) else Address.parse(originator)
    for name, value in (("pid", pid), ("dcs", dcs)):
        _check_octet(name, value)
    udhi, ud = _encode_user_data(dcs, user_data, elements)
    first = MTI_DELIVER | (0x40 if udhi else 0) | (0 if more_messages else 0x04)
    tpdu = bytes((first,)) + _encode_address(address) + bytes((pid, dcs)) + _encode_timestamp(scts) + ud
    return _encode_smsc(smsc) + tpdu


def part_size(reference_bits: Literal[8, 16]) -> int:
    """Payload octets per part of a concatenated message (134 for 8-bit references, 133 for 16-bit)."""
    return MAX_USER_DATA - (6 if reference_bits == 8 else 7)


def split_payload(
    payload: bytes, *, reference: int, reference_bits: Literal[8, 16] = 16
) -> list[tuple[Concat | None, bytes]]:
    """Cut ``payload`` into SMS-sized parts.

    Up to 140 octets: one part without a header (Concat None). Longer:
    parts of :func:`part_size` octets sharing ``reference`` (reduced modulo
    2**bits), numbered from 1. ValueError beyond 255 parts.
    """
    if len(payload) <= MAX_USER_DATA:
        return [(None, payload)]
    size = part_size(reference_bits)
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"payload of {len(payload)} octets needs more than {MAX_PARTS} parts")
    ref = reference % (1 << reference_bits)
    return [(Concat(ref, len(chunks), i, reference_bits), chunk) for i, chunk in enumerate(chunks, 1)]


def tpdu_length(pdu: bytes) -> int:
    """Octets after the SMSC field: the ``<length>`` of ``AT+CMGS``/``+CMT``."""
    if not pdu:
        raise ValueError("empty PDU")
    return len(pdu) - 1 - pdu[0]
