"""SMS PDUs: hand-checked vectors, a cross-check with an independent decoder, and properties.

The independent decoder is ``smspdudecoder`` (test-only dependency, with a
``bitstring`` 4.x it works with); it reads SMS-DELIVER and SMS-SUBMIT with
8-bit data and both concatenation elements.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smspdudecoder.fields import SMSDeliver, SMSSubmit

from lwm2md.drivers.modem.pdu import (
    IEI_CONCAT_8,
    IEI_CONCAT_16,
    TOA_INTERNATIONAL,
    TOA_NATIONAL,
    TOA_UNKNOWN,
    Address,
    Concat,
    InformationElement,
    PduError,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    alphabet,
    concat_of,
    decode_pdu,
    encode_deliver,
    encode_submit,
    message_class,
    part_size,
    relative_validity,
    split_payload,
    tpdu_length,
    validity_seconds,
)

UTC = dt.UTC


def independent_deliver(pdu: bytes) -> dict[str, Any]:
    result: dict[str, Any] = SMSDeliver.decode(StringIO(pdu.hex().upper()))
    return result


def independent_submit(pdu: bytes) -> dict[str, Any]:
    result: dict[str, Any] = SMSSubmit.decode(StringIO(pdu.hex().upper()))
    return result


def independent_concat(decoded: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """(iei, reference, total, seq) of the independent decoder's concatenation element."""
    header = decoded["user_data"]["header"]
    if header is None:
        return None
    for element in header["elements"]:
        if element["iei"] in (0x00, 0x08):
            data = element["data"]
            return element["iei"], data["reference"], data["parts_count"], data["part_number"]
    return None


# -- public examples ------------------------------------------------------------------------------

# The widely reproduced SMS-DELIVER example ("How are you?" in GSM 7-bit).
PUBLIC_DELIVER = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
# The widely reproduced SMS-SUBMIT example ("hellohello" in GSM 7-bit, TP-VP relative).
PUBLIC_SUBMIT = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def test_public_deliver_example() -> None:
    pdu = decode_pdu(PUBLIC_DELIVER)
    assert isinstance(pdu, SmsDeliver)
    assert pdu.smsc == Address("31624000000", TOA_INTERNATIONAL)
    assert str(pdu.originator) == "+31641600986"
    assert (pdu.pid, pdu.dcs, pdu.binary, pdu.concat) == (0, 0, False, None)
    # zone octet 0x08: first semi-octet 8 = sign bit set, 0 quarter hours
    assert pdu.scts == dt.datetime(2002, 8, 26, 19, 37, 41, tzinfo=UTC)
    assert len(pdu.user_data) == 11  # TP-UDL 12 septets -> 11 octets, kept unconverted
    assert independent_deliver(bytes.fromhex(PUBLIC_DELIVER))["scts"] == pdu.scts


def test_public_submit_example() -> None:
    pdu = decode_pdu(PUBLIC_SUBMIT)
    assert isinstance(pdu, SmsSubmit)
    assert pdu.smsc is None
    assert str(pdu.destination) == "+46708251358"
    assert (pdu.message_reference, pdu.pid, pdu.dcs) == (0, 0, 0)
    assert pdu.validity == 4 * 86400  # TP-VP 0xAA


# -- hand-built 8-bit vectors ------------------------------------------------------------------

DELIVER_8BIT_CONCAT8 = bytes.fromhex(
    "07"  # SMSC information: 7 octets follow
    "91"  # SMSC type of address: international, ISDN
    "947101670000"  # SMSC +491710760000, semi-octets swapped
    "44"  # first octet: TP-MTI 00 (DELIVER), TP-MMS 1 (no more), TP-UDHI 1
    "0B"  # TP-OA: 11 digits
    "91"  # TP-OA type: international
    "9471103254F6"  # +49170123456, odd length padded with F
    "00"  # TP-PID: plain short message
    "04"  # TP-DCS: 8-bit data, no class
    "42"  # TP-SCTS year 24
    "10"  # month 01
    "20"  # day 02
    "30"  # hour 03
    "40"  # minute 04
    "50"  # second 05
    "80"  # zone: +08 quarter hours (+2 h)
    "0A"  # TP-UDL: 10 octets (header included)
    "05"  # UDHL: 5 octets
    "00"  # IEI 0x00: concatenation, 8-bit reference
    "03"  # IEDL 3
    "2A"  # reference 42
    "02"  # 2 parts
    "01"  # this is part 1
    "C0FFEE01"  # payload
)

DELIVER_8BIT_CONCAT16 = bytes.fromhex(
    "00"  # no SMSC information
    "40"  # first octet: TP-MTI 00, TP-MMS 0 (more messages waiting), TP-UDHI 1
    "09"  # TP-OA: 9 digits
    "A1"  # TP-OA type: national, ISDN
    "10325476F8"  # 012345678: digit pairs swapped, the odd 9th digit padded with F
    "00"  # TP-PID
    "F5"  # TP-DCS: data coding/message class group, 8-bit, class 1
    "99"  # year 99
    "21"  # month 12
    "13"  # day 31
    "32"  # hour 23
    "95"  # minute 59
    "85"  # second 58
    "0A"  # zone: first semi-octet 0xA = sign bit + tens 2, second 0 -> -20 quarter hours (-5 h)
    "09"  # TP-UDL: 9 octets
    "06"  # UDHL: 6 octets
    "08"  # IEI 0x08: concatenation, 16-bit reference
    "04"  # IEDL 4
    "BEEF"  # reference 0xBEEF
    "03"  # 3 parts
    "03"  # this is part 3
    "7F7E"  # payload
)


def test_deliver_with_8bit_reference_by_hand() -> None:
    pdu = decode_pdu(DELIVER_8BIT_CONCAT8)
    assert isinstance(pdu, SmsDeliver)
    assert pdu.smsc is not None and str(pdu.smsc) == "+491710760000"
    assert pdu.originator == Address("49170123456", TOA_INTERNATIONAL)
    assert (pdu.pid, pdu.dcs, pdu.binary, pdu.more_messages) == (0, 0x04, True, False)
    assert pdu.scts == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert pdu.elements == (InformationElement(IEI_CONCAT_8, bytes((42, 2, 1))),)
    assert pdu.concat == Concat(42, 2, 1, 8)
    assert pdu.user_data == bytes.fromhex("C0FFEE01")
    assert tpdu_length(DELIVER_8BIT_CONCAT8) == len(DELIVER_8BIT_CONCAT8) - 8


def test_deliver_with_16bit_reference_by_hand() -> None:
    pdu = decode_pdu(DELIVER_8BIT_CONCAT16)
    assert isinstance(pdu, SmsDeliver)
    assert pdu.smsc is None
    assert pdu.originator == Address("012345678", TOA_NATIONAL)
    assert str(pdu.originator) == "012345678"
    assert (pdu.dcs, pdu.binary, message_class(pdu.dcs), pdu.more_messages) == (0xF5, True, 1, True)
    assert pdu.scts == dt.datetime(2099, 12, 31, 23, 59, 58, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert pdu.concat == Concat(0xBEEF, 3, 3, 16)
    assert pdu.user_data == b"\x7f\x7e"


@pytest.mark.parametrize("pdu", [DELIVER_8BIT_CONCAT8, DELIVER_8BIT_CONCAT16], ids=["iei00", "iei08"])
def test_hand_built_vectors_agree_with_the_independent_decoder(pdu: bytes) -> None:
    ours = decode_pdu(pdu)
    theirs = independent_deliver(pdu)
    assert isinstance(ours, SmsDeliver) and ours.concat is not None
    assert theirs["sender"]["number"] == ours.originator.number
    assert theirs["dcs"]["encoding"] == "binary"
    assert theirs["user_data"]["data"] == ours.user_data
    iei = IEI_CONCAT_8 if ours.concat.bits == 8 else IEI_CONCAT_16
    assert independent_concat(theirs) == (iei, ours.concat.reference, ours.concat.total, ours.concat.seq)
    assert theirs["scts"] == ours.scts


def test_encode_submit_octet_by_octet() -> None:
    pdu = encode_submit("+49170123456", b"\x01\x02\x03", elements=(Concat(0x1234, 2, 2).element(),),
                        validity=3600)  # fmt: skip
    assert pdu.hex().upper() == (
        "00"  # SMSC: the modem's own
        "51"  # TP-MTI 01 (SUBMIT), TP-VPF 10 (relative), TP-UDHI 1
        "00"  # TP-MR (the modem assigns it)
        "0B" "91" "9471103254F6"  # TP-DA +49170123456
        "00"  # TP-PID
        "04"  # TP-DCS 8-bit
        "0B"  # TP-VP: (11 + 1) * 5 min = 1 h
        "0A"  # TP-UDL 10
        "06" "08" "04" "1234" "02" "02"  # UDH: IEI 0x08, reference 0x1234, part 2 of 2
        "010203"
    )  # fmt: skip
    assert tpdu_length(pdu) == len(pdu) - 1
    theirs = independent_submit(pdu)
    assert theirs["recipient"]["number"] == "49170123456"
    assert theirs["vp"] == 0x0B and theirs["user_data"]["data"] == b"\x01\x02\x03"
    assert independent_concat(theirs) == (0x08, 0x1234, 2, 2)


def test_encode_submit_national_number_without_header() -> None:
    pdu = encode_submit("0170123", b"", smsc=Address("491710760000", TOA_INTERNATIONAL))
    assert pdu.hex().upper() == (
        "07" "91" "947101670000"  # SMSC +491710760000
        "01"  # TP-MTI 01, no TP-VP, no header
        "00"  # TP-MR
        "07" "81" "100721F3"  # TP-DA 0170123, type unknown, F-padded
        "00" "04"  # TP-PID, TP-DCS
        "00"  # TP-UDL: empty
    )  # fmt: skip
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsSubmit)
    assert decoded.destination == Address("0170123", TOA_UNKNOWN) and decoded.user_data == b""


def test_status_report_is_recognised() -> None:
    pdu = bytes.fromhex(
        "00"  # no SMSC
        "06"  # TP-MTI 10 (STATUS-REPORT), TP-MMS 1
        "2A"  # TP-MR 42
        "0B" "91" "9471103254F6"  # TP-RA +49170123456
        "42102030405080"  # TP-SCTS
        "42102030505080"  # TP-DT, one minute later
        "00"  # TP-ST: delivered
    )  # fmt: skip
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsStatusReport)
    assert (decoded.message_reference, str(decoded.recipient), decoded.status) == (42, "+49170123456", 0)
    assert decoded.discharge_time is not None and decoded.scts is not None
    assert decoded.discharge_time - decoded.scts == dt.timedelta(seconds=60)


def test_alphanumeric_originator() -> None:
    # "MMoney" in packed septets: 0x4D | (0x4D << 7) & 0xFF = 0xCD, ...; 11 semi-octets used
    pdu = bytes.fromhex("00" "04" "0B" "D0" "CDE6DB5DCE03" "00" "04" "42102030405080" "01" "FF")  # fmt: skip
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsDeliver)
    assert decoded.originator.alphanumeric and str(decoded.originator) == "MMoney"
    assert independent_deliver(pdu)["sender"]["number"] == "MMoney"


def test_smsc_field_may_be_absent() -> None:
    tpdu = DELIVER_8BIT_CONCAT8[8:]
    with_field = decode_pdu(DELIVER_8BIT_CONCAT8)
    without = decode_pdu(tpdu, smsc=False)
    assert isinstance(without, SmsDeliver) and isinstance(with_field, SmsDeliver)
    assert without.smsc is None and without.user_data == with_field.user_data


HEADER = "00" "04" "04" "81" "2143" "00" "04" "42102030405080"  # fmt: skip
"""No SMSC, SMS-DELIVER, TP-OA 1234, TP-PID, TP-DCS 8-bit, TP-SCTS: everything up to TP-UDL."""


@pytest.mark.parametrize(
    ("pdu", "reason"),
    [
        ("", "empty"),
        ("0G", "hexadecimal"),
        ("0007", "reserved TP-MTI"),
        (DELIVER_8BIT_CONCAT8.hex()[:-2], "truncated"),
        (DELIVER_8BIT_CONCAT8.hex() + "00", "after TP-UD"),
        ("0C" + "00" * 12, "SMSC address of 12"),
        ("000415" + "81" + "00" * 11, "semi-octets"),  # 21-digit address
        (HEADER + "8D" + "00" * 141, "exceeds 140"),
        (HEADER.replace("0004", "0044", 1) + "04" + "04000201", "does not fit"),  # UDHL 4 > UDL 4 - 1
        (HEADER.replace("0004", "0044", 1) + "04" + "0300021B", "overruns"),  # IE wants 2, has 1
        (HEADER.replace("2143", "2F43") + "00", "filler inside"),
    ],
)
def test_malformed_pdus_raise_pdu_error(pdu: str, reason: str) -> None:
    with pytest.raises(PduError, match=reason):
        decode_pdu(pdu)


def test_bad_timestamp_decodes_to_none() -> None:
    decoded = decode_pdu(HEADER.replace("4210", "4231") + "00")  # month 13
    assert isinstance(decoded, SmsDeliver) and decoded.scts is None


# -- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dcs", "coding", "klass"),
    [
        (0x00, "gsm7", None), (0x04, "8bit", None), (0x08, "ucs2", None), (0x0C, "gsm7", None),
        (0x14, "8bit", 0), (0x16, "8bit", 2), (0x24, "compressed", None), (0x44, "8bit", None),
        (0xC0, "gsm7", None), (0xE0, "ucs2", None), (0xF0, "gsm7", 0), (0xF4, "8bit", 0),
        (0xF5, "8bit", 1), (0xF6, "8bit", 2), (0xF7, "8bit", 3), (0x80, "gsm7", None),
    ],
)  # fmt: skip
def test_data_coding(dcs: int, coding: str, klass: int | None) -> None:
    assert (alphabet(dcs), message_class(dcs)) == (coding, klass)


def test_relative_validity_bands() -> None:
    pairs = [(0, 300), (143, 12 * 3600), (144, 12 * 3600 + 1800), (167, 86400), (168, 2 * 86400),
             (196, 30 * 86400), (197, 5 * 7 * 86400), (255, 63 * 7 * 86400)]  # fmt: skip
    for vp, seconds in pairs:
        assert validity_seconds(vp) == seconds
        assert relative_validity(seconds) == vp
    assert relative_validity(1) == 0
    assert relative_validity(301) == 1
    assert relative_validity(10**9) == 255


def test_concatenation_elements() -> None:
    assert Concat(5, 2, 1, 8).element() == InformationElement(0x00, b"\x05\x02\x01")
    assert Concat(0x0102, 2, 1).element() == InformationElement(0x08, b"\x01\x02\x02\x01")
    assert concat_of([InformationElement(0x00, b"\x05\x02\x00")]) is None  # part 0: ignored
    assert concat_of([InformationElement(0x00, b"\x05\x02\x03")]) is None  # part 3 of 2: ignored
    assert concat_of([InformationElement(0x00, b"\x05\x02")]) is None  # wrong length
    last = [InformationElement(0x00, b"\x05\x02\x01"), InformationElement(0x08, b"\x00\x07\x03\x02")]
    assert concat_of(last) == Concat(7, 3, 2, 16)
    with pytest.raises(ValueError):
        Concat(256, 2, 1, 8).element()
    with pytest.raises(ValueError):
        Concat(1, 2, 3).element()


def test_split_sizes() -> None:
    assert split_payload(b"x" * 140, reference=1) == [(None, b"x" * 140)]
    parts = split_payload(b"x" * 141, reference=0x1_0005)
    assert [(c, len(d)) for c, d in parts] == [(Concat(5, 2, 1), 133), (Concat(5, 2, 2), 8)]
    parts8 = split_payload(b"x" * 300, reference=300, reference_bits=8)
    assert [len(d) for _, d in parts8] == [134, 134, 32] and parts8[0][0] == Concat(44, 3, 1, 8)
    assert (part_size(8), part_size(16)) == (134, 133)
    assert len(split_payload(b"x" * (255 * 133), reference=0)) == 255
    with pytest.raises(ValueError, match="255 parts"):
        split_payload(b"x" * (255 * 133 + 1), reference=0)


def test_encoder_rejects_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="exceeds 140"):
        encode_submit("+491", b"x" * 134, elements=(Concat(1, 2, 1).element(),))
    with pytest.raises(ValueError, match="octet codings"):
        encode_submit("+491", b"x", dcs=0x00)
    for bad in ("", "+", "12 34", "+" + "1" * 21, "12-3"):
        with pytest.raises(ValueError):
            Address.parse(bad)
    with pytest.raises(ValueError, match="time zone"):
        encode_deliver("+491", b"", scts=dt.datetime(2024, 1, 1))


# -- properties -----------------------------------------------------------------------------------

numbers = st.builds(
    lambda plus, digits: ("+" if plus else "") + digits,
    st.booleans(),
    st.text("0123456789", min_size=1, max_size=20),
)
timestamps = st.builds(
    lambda when, quarters: when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=15 * quarters))),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31, 23, 59, 59)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.integers(-79, 79),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.integers(0, 2000).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    destination=numbers,
    reference=st.integers(0, 0xFFFF),
    bits=st.sampled_from([8, 16]),
)
def test_submit_round_trip_with_concatenation(
    payload: bytes, destination: str, reference: int, bits: int
) -> None:
    reference_bits: Any = bits
    parts = split_payload(payload, reference=reference, reference_bits=reference_bits)
    assert len(parts) == (1 if len(payload) <= 140 else -(-len(payload) // part_size(reference_bits)))
    joined = b""
    for seq, (concat, data) in enumerate(parts, 1):
        pdu = encode_submit(destination, data, elements=(concat.element(),) if concat else ())
        decoded = decode_pdu(pdu)
        assert isinstance(decoded, SmsSubmit) and decoded.binary
        assert str(decoded.destination) == destination
        assert decoded.concat == concat
        if concat is not None:
            assert (concat.seq, concat.total, concat.reference) == (seq, len(parts), reference % (1 << bits))
        joined += decoded.user_data
        theirs = independent_submit(pdu)
        assert theirs["user_data"]["data"] == data
        assert theirs["recipient"]["number"] == destination.lstrip("+")
    assert joined == payload


@settings(max_examples=150, deadline=None)
@given(originator=numbers, data=st.binary(max_size=133), when=timestamps, seq=st.integers(1, 255))
def test_deliver_round_trip(originator: str, data: bytes, when: dt.datetime, seq: int) -> None:
    concat = Concat(seq * 7 % 0x10000, 255, seq)
    pdu = encode_deliver(originator, data, scts=when, elements=(concat.element(),))
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsDeliver)
    assert str(decoded.originator) == originator
    assert decoded.scts == when and decoded.scts is not None
    assert decoded.scts.utcoffset() == when.utcoffset()
    assert (decoded.concat, decoded.user_data) == (concat, data)
    theirs = independent_deliver(pdu)
    assert theirs["user_data"]["data"] == data and theirs["scts"] == when


def decodes_or_raises_pdu_error(pdu: str | bytes, *, smsc: bool = True) -> None:
    try:
        decoded = decode_pdu(pdu, smsc=smsc)
    except PduError:
        return
    assert isinstance(decoded, SmsDeliver | SmsSubmit | SmsStatusReport)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_octets_decode_or_raise_pdu_error(data: bytes, smsc: bool) -> None:
    decodes_or_raises_pdu_error(data, smsc=smsc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_decodes_or_raises_pdu_error(text: str) -> None:
    decodes_or_raises_pdu_error(text)


VALID = [DELIVER_8BIT_CONCAT8, DELIVER_8BIT_CONCAT16, bytes.fromhex(PUBLIC_DELIVER),
         bytes.fromhex(PUBLIC_SUBMIT)]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    base=st.sampled_from(VALID),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 200),
)
def test_mutated_pdus_decode_or_raise_pdu_error(base: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    mutable = bytearray(base)
    for position, value in edits:
        if mutable:
            mutable[position % len(mutable)] = value
    decodes_or_raises_pdu_error(bytes(mutable[: len(mutable) - cut % 3]))
