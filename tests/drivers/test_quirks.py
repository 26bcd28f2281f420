"""Vendor quirks selection, vendor serving-cell parsers, TS 27.007 parsers and the facts poll."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

import pytest

from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.modem.at import AtChannel, AtError, AtResponse, AtTimeout, PortUnavailable
from lwm2md.drivers.modem.info import (
    RAT_GSM,
    RAT_LTE,
    RAT_NBIOT,
    RAT_UMTS,
    ModemFacts,
    Signal,
    act_to_rat,
    lte_duplex,
    parse_ati,
    parse_cesq,
    parse_cgact,
    parse_cgdcont,
    parse_cops,
    parse_csq,
    parse_registration,
    plmn,
    poll,
    split_fields,
)
from lwm2md.drivers.modem.quirks import (
    QuectelQuirks,
    Quirks,
    SimcomQuirks,
    TelitQuirks,
    UbloxQuirks,
    detect_quirks,
    quirks_for_vendor,
    select_quirks,
)
from lwm2md.engine.clock import FakeClock


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(20):
            await coro

    asyncio.run(bounded())


class Scripted:
    """An AtCommander answering from a table; a missing command answers ERROR."""

    def __init__(self, answers: Mapping[str, list[str] | BaseException]) -> None:
        self.answers = dict(answers)
        self.sent: list[str] = []

    async def command(self, cmd: str, *, timeout: float = 5.0) -> AtResponse:
        self.sent.append(cmd)
        answer = self.answers.get(cmd)
        if answer is None:
            raise AtError("ERROR", cmd)
        if isinstance(answer, BaseException):
            raise answer
        return AtResponse(list(answer), "OK")


# -- selection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manufacturer", "model", "expected"),
    [
        ("Quectel", "EG25", QuectelQuirks),
        (None, "BG96", QuectelQuirks),
        ("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", SimcomQuirks),
        ("", "SIM7000G", SimcomQuirks),
        ("u-blox", "SARA-R410M-02B", UbloxQuirks),
        (None, "TOBY-L210", UbloxQuirks),
        ("Telit", "LE910C1-EU", TelitQuirks),
        (None, "ME910G1-WW", TelitQuirks),
        ("Sierra Wireless, Incorporated", "EM7455", Quirks),
        (None, None, Quirks),
    ],
)
def test_select_quirks(manufacturer: str | None, model: str | None, expected: type[Quirks]) -> None:
    assert type(select_quirks(manufacturer, model)) is expected


def test_quirks_for_vendor_names() -> None:
    assert isinstance(quirks_for_vendor("Quectel"), QuectelQuirks)
    assert isinstance(quirks_for_vendor("u-blox"), UbloxQuirks)
    assert type(quirks_for_vendor("generic")) is Quirks
    with pytest.raises(ValueError, match="telit"):
        quirks_for_vendor("nokia")


def test_vendor_classes_override_only_what_differs() -> None:
    assert Quirks.serving_cell_command is None
    assert QuectelQuirks.signal_commands == Quirks.signal_commands
    assert SimcomQuirks.signal_commands == ("AT+CSQ",)
    assert "AT+UCGED=2" in UbloxQuirks.init_commands
    assert set(Quirks.init_commands) <= set(UbloxQuirks.init_commands)


@pytest.fixture(params=["quectel", "simcom", "ublox", "telit"])
def vendor_modem(request: pytest.FixtureRequest) -> Iterator[FakeModem]:
    fake = FakeModem(request.param)
    yield fake
    fake.close()


EXPECTED = {"quectel": QuectelQuirks, "simcom": SimcomQuirks, "ublox": UbloxQuirks, "telit": TelitQuirks}


@pytest.mark.parametrize("via_ati", [False, True])
def test_detect_from_the_modem_itself(vendor_modem: FakeModem, via_ati: bool) -> None:
    async def scenario() -> None:
        if via_ati:
            vendor_modem.fail("AT+CGMI")
            vendor_modem.fail("AT+CGMM")
        channel = AtChannel(vendor_modem.serve_pty(), clock=FakeClock())
        await channel.open()
        try:
            identity, quirks = await detect_quirks(channel)
            assert type(quirks) is EXPECTED[vendor_modem.vendor]
            assert identity.imei == vendor_modem.imei
            assert ("ATI" in vendor_modem.commands) == via_ati
            if not via_ati:
                assert identity.manufacturer == vendor_modem.profile.cgmi
                assert identity.model == vendor_modem.profile.cgmm
            # The vendor's serving-cell command works on its modem and yields the cell.
            cell = await quirks.serving_cell(channel)
            if vendor_modem.vendor == "ublox":
                assert cell is None, "UCGED answers mode 0 until the init command enables mode 2"
                await channel.command("AT+UCGED=2")
                cell = await quirks.serving_cell(channel)
            assert cell is not None
            assert (cell.mcc, cell.mnc, cell.cell_id, cell.lac) == (262, 1, 0x1A2D001, 0xD2AB)
            assert cell.rat == RAT_LTE and cell.signal.rsrp == -95.0
        finally:
            await channel.close()

    run(scenario())


def test_vendor_override_wins() -> None:
    async def scenario() -> None:
        with FakeModem("quectel") as fake:
            channel = AtChannel(fake.serve_pty(), clock=FakeClock())
            await channel.open()
            try:
                identity, quirks = await detect_quirks(channel, vendor="generic")
                assert type(quirks) is Quirks and identity.manufacturer == "Quectel"
            finally:
                await channel.close()

    run(scenario())


# -- vendor serving-cell parsers --------------------------------------------------------------


def test_quectel_qeng_lte() -> None:
    line = '+QENG: "servingcell","NOCONN","LTE","FDD",214,01,7676A09,188,6300,20,3,3,603,-104,-9,-78,150,23'
    cell = QuectelQuirks().parse_serving_cell([line])
    assert cell is not None
    assert (cell.rat, cell.duplex, cell.mcc, cell.mnc) == (RAT_LTE, "FDD", 214, 1)
    assert (cell.cell_id, cell.lac, cell.band) == (0x7676A09, 0x603, 20)
    assert cell.signal == Signal(rsrp=-104.0, rsrq=-9.0, rssi=-78.0, sinr=10.0)


def test_quectel_qeng_other_forms() -> None:
    q = QuectelQuirks()
    tdd = q.parse_serving_cell(['+QENG: "servingcell","CONNECT","LTE","TDD",460,00,A1B2C3,1,38950,41,5,5,1F,'
                                "-90,-11,-60,-,30"])  # fmt: skip
    assert tdd is not None and tdd.duplex == "TDD" and tdd.signal.sinr is None
    nb = q.parse_serving_cell(['+QENG: "servingcell","NOCONN","CAT-NB","FDD",262,01,1A2D001,1,6300,20,0,0,'
                               "D2AB,-110,-12,-95,60,10"])  # fmt: skip
    assert nb is not None and nb.rat == RAT_NBIOT
    multi = q.parse_serving_cell(['+QENG: "servingcell","NOCONN"',
                                  '+QENG: "LTE","FDD",262,02,1A2D001,10,1300,3,5,5,D2AB,-95,-10,-65,100,33',
                                  '+QENG: "NR5G-NSA",262,02,100,-80,20,-11,627264,78,12,1'])  # fmt: skip
    assert multi is not None and (multi.mnc, multi.signal.rsrp) == (2, -95.0)
    wcdma = q.parse_serving_cell(['+QENG: "servingcell","NOCONN","WCDMA",262,07,2B5C,1A2D0,10700,300,1,'
                                  "-85,-6,-,-,-,-,-"])  # fmt: skip
    assert wcdma is not None and (wcdma.rat, wcdma.lac, wcdma.signal.rscp, wcdma.signal.ecno) == (
        RAT_UMTS, 0x2B5C, -85.0, -6.0)  # fmt: skip
    gsm = q.parse_serving_cell(['+QENG: "servingcell","NOCONN","GSM",262,01,1234,1A2D,27,65,0,-,-,-'])
    assert gsm is not None and (gsm.rat, gsm.cell_id) == (RAT_GSM, 0x1A2D)
    assert q.parse_serving_cell(['+QENG: "servingcell","SEARCH"']) is None


def test_simcom_cpsi() -> None:
    s = SimcomQuirks()
    lte = s.parse_serving_cell(["+CPSI: LTE,Online,404-45,0x21F9,322642,453,EUTRAN-BAND40,39275,4,4,"
                                "-168,-1126,-773,7"])  # fmt: skip
    assert lte is not None
    assert (lte.rat, lte.duplex, lte.band, lte.mcc, lte.mnc) == (RAT_LTE, "TDD", 40, 404, 45)
    assert (lte.lac, lte.cell_id) == (0x21F9, 322642)
    assert lte.signal == Signal(rsrq=-16.8, rsrp=-112.6, rssi=-77.3, sinr=7.0)
    catm = s.parse_serving_cell(["+CPSI: LTE CAT-M1,Online,262-01,0x1A2D,27447297,123,EUTRAN-BAND20,6300,"
                                 "3,3,-10,-95,-65,15"])  # fmt: skip
    assert catm is not None and catm.signal.rsrp == -95.0 and catm.duplex == "FDD"
    nb = s.parse_serving_cell(["+CPSI: LTE NB-IOT,Online,262-01,0x1A2D,27447297,123,EUTRAN-BAND8,3740,"
                               "0,0,-12,-105,-80,3"])  # fmt: skip
    assert nb is not None and nb.rat == RAT_NBIOT
    gsm = s.parse_serving_cell(["+CPSI: GSM,Online,262-01,0x1234,6701,27 EGSM 900,-75,0,33-33"])
    assert gsm is not None and (gsm.rat, gsm.signal.rssi, gsm.cell_id) == (RAT_GSM, -75.0, 6701)
    assert s.parse_serving_cell(["+CPSI: NO SERVICE,Online"]) is None


def test_ublox_ucged_mode_2() -> None:
    lines = [
        "+UCGED: 2",
        "6,4,001,01",
        "2525,5,25,50,2b67,69f6bc7,111,00000000,ffff,ff,67,19,5.50,255,255,255,67,11,255,0,255,255,0,0",
    ]
    cell = UbloxQuirks().parse_serving_cell(lines)  # fmt: skip
    assert cell is not None
    assert (cell.mcc, cell.mnc, cell.lac, cell.cell_id, cell.band) == (1, 1, 0x2B67, 0x69F6BC7, 5)
    assert cell.signal == Signal(rsrp=-74.0, rsrq=-10.5, sinr=5.5)
    assert UbloxQuirks().parse_serving_cell(["+UCGED: 0"]) is None


def test_telit_rfsts() -> None:
    line = '#RFSTS: "262 01",6300,-95,-65,-10,D2AB,255,,128,19,0,1A2D001,"262011234567890","Telekom.de",3,20'
    cell = TelitQuirks().parse_serving_cell([line])
    assert cell is not None
    assert (cell.rat, cell.mcc, cell.mnc, cell.lac, cell.cell_id) == (RAT_LTE, 262, 1, 0xD2AB, 0x1A2D001)
    assert (cell.band, cell.duplex) == (20, "FDD")
    assert cell.signal == Signal(rsrp=-95.0, rssi=-65.0, rsrq=-10.0)
    assert TelitQuirks().parse_serving_cell([line], RAT_LTE) == cell


def test_telit_rfsts_layout_follows_the_technology_hint() -> None:
    telit = TelitQuirks()
    umts = telit.parse_serving_cell(
        ['#RFSTS: "262 01",10700,300,-6,-85,-79,2B5C,00,-,64,19,0,I,0.0,1A2D0,"262011234567890","D1",3,1'],
        RAT_UMTS,
    )
    assert umts is not None and (umts.rat, umts.lac, umts.cell_id) == (RAT_UMTS, 0x2B5C, 0x1A2D0)
    assert umts.signal == Signal(ecno=-6.0, rscp=-85.0, rssi=-79.0)
    gsm_line = '#RFSTS: "262 01",65,-70,1234,00,0,19,0,I,1A2D,"262011234567890","D1",3,1'
    gsm = telit.parse_serving_cell([gsm_line], RAT_GSM)
    assert gsm is not None and (gsm.rat, gsm.lac, gsm.cell_id, gsm.signal.rssi) == (
        RAT_GSM,
        0x1234,
        0x1A2D,
        -70.0,
    )
    nr = telit.parse_serving_cell(['#RFSTS: "262 01",1,2,3,4,5,6,7,8,9,10,11,12'], "NR")
    assert nr is not None and (nr.rat, nr.mcc, nr.cell_id) == (None, 262, None), "unknown layout: PLMN only"


def test_vendor_parsers_survive_garbage() -> None:
    for quirks in (QuectelQuirks(), SimcomQuirks(), UbloxQuirks(), TelitQuirks()):
        for lines in ([], ["OK"], ["+QENG: ,,,"], ["+CPSI: ,"], ["+UCGED: 2", ""], ["#RFSTS: x"]):
            quirks.parse_serving_cell(lines)  # must not raise


# -- TS 27.007 parsers -------------------------------------------------------------------------


def test_csq() -> None:
    assert parse_csq("20,99") == Signal(rssi=-73.0)
    assert parse_csq("0,0") == Signal(rssi=-113.0, ber=0)
    assert parse_csq("31,7") == Signal(rssi=-51.0, ber=7)
    assert parse_csq("99,99").empty


def test_cesq() -> None:
    lte = parse_cesq("99,99,255,255,20,60")
    assert lte == Signal(rsrq=-10.0, rsrp=-81.0)
    assert parse_cesq("99,99,255,255,0,0") == Signal(rsrq=-20.0, rsrp=-141.0)
    assert parse_cesq("99,99,255,255,34,97") == Signal(rsrq=-3.0, rsrp=-44.0)
    umts = parse_cesq("99,99,36,37,255,255")
    assert umts == Signal(rscp=-85.0, ecno=-6.0)
    gsm = parse_cesq("40,3,255,255,255,255")
    assert gsm == Signal(rxlev=-71.0, ber=3)
    assert parse_cesq("99,99,255,255,255,255").empty
    assert parse_cesq("").empty


def test_cops() -> None:
    numeric = parse_cops('0,2,"26201",7')
    assert (numeric.mode, numeric.mcc, numeric.mnc, numeric.act) == (0, 262, 1, 7)
    three_digit = parse_cops('1,2,"310410",2')
    assert (three_digit.mcc, three_digit.mnc) == (310, 410)
    named = parse_cops('0,0,"Telekom.de",7')
    assert (named.name, named.mcc, named.act) == ("Telekom.de", None, 7)
    assert parse_cops("0") == parse_cops("0")
    assert parse_cops("0").mcc is None
    assert plmn("262-01") == (262, 1) and plmn("262 001") == (262, 1) and plmn("2620") == (None, None)


def test_registration() -> None:
    cereg = parse_registration('2,1,"D2AB","01A2D001",7')
    assert (cereg.n, cereg.stat, cereg.lac, cereg.cell_id, cereg.act) == (2, 1, 0xD2AB, 0x1A2D001, 7)
    assert cereg.registered
    roaming = parse_registration('2,5,"00C3","A1B2",0')
    assert roaming.registered and (roaming.lac, roaming.cell_id, roaming.act) == (0xC3, 0xA1B2, 0)
    assert not parse_registration("0,2").registered and parse_registration("0,2").lac is None
    urc = parse_registration('1,"D2AB","01A2D001",9', unsolicited=True)
    assert (urc.n, urc.stat, urc.act) == (None, 1, 9)
    cgreg = parse_registration('2,1,"61EF","7D58A3",2,"14"')
    assert (cgreg.lac, cgreg.cell_id, cgreg.act) == (0x61EF, 0x7D58A3, 2)
    invalid = parse_registration('2,1,"FFFE","FFFFFFFF",7')
    assert (invalid.lac, invalid.cell_id) == (None, None)


def test_contexts_and_identity() -> None:
    lines = ['1,"IP","internet","0.0.0.0",0,0', '2,"IPV4V6","ims","0.0.0.0",0,0', '3,"IP","","0.0.0.0",0,0']
    assert parse_cgdcont(lines) == {1: "internet", 2: "ims"}
    assert parse_cgact(["1,1", "2,0"]) == {1: True, 2: False}
    simcom = parse_ati(["Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600E-H",
                        "Revision: SIM7600M22_V2.0", "IMEI: 867698041234567", "+GCAP: +CGSM"])  # fmt: skip
    assert (simcom.manufacturer, simcom.model, simcom.imei) == (
        "SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "867698041234567")  # fmt: skip
    quectel = parse_ati(["Quectel", "EG25", "Revision: EG25GGBR07A08M2G"])
    assert (quectel.manufacturer, quectel.model, quectel.revision) == ("Quectel", "EG25", "EG25GGBR07A08M2G")
    assert parse_ati(["SARA-R410M-02B"]).model == "SARA-R410M-02B"


def test_small_helpers() -> None:
    assert split_fields('1,"a,b", c,,"d"') == ["1", "a,b", "c", "", "d"]
    assert [act_to_rat(a) for a in (0, 2, 7, 9, 11, 42, None)] == [
        RAT_GSM, RAT_UMTS, RAT_LTE, RAT_NBIOT, "NR", None, None]  # fmt: skip
    assert (lte_duplex(3), lte_duplex(40), lte_duplex(None)) == ("FDD", "TDD", None)


def test_signal_strength_follows_the_technology() -> None:
    signal = Signal(rssi=-70.0, ber=2, rscp=-85.0, ecno=-6.0, rsrq=-10.0, rsrp=-95.0)
    assert ModemFacts(rat=RAT_LTE, signal=signal).signal_strength == -95.0
    assert ModemFacts(rat=RAT_LTE, signal=signal).link_quality == -10.0
    assert ModemFacts(rat=RAT_UMTS, signal=signal).signal_strength == -85.0
    assert ModemFacts(rat=RAT_UMTS, signal=signal).link_quality == -6.0
    assert ModemFacts(rat=RAT_GSM, signal=signal).signal_strength == -70.0
    assert ModemFacts(rat=RAT_GSM, signal=signal).link_quality == 2.0
    assert ModemFacts(rat=RAT_LTE, signal=Signal(rssi=-70.0)).signal_strength == -70.0
    assert ModemFacts().signal_strength is None


# -- the poll ------------------------------------------------------------------------------------

GENERIC_ANSWERS: dict[str, list[str] | BaseException] = {
    "AT+CGMI": ["Sierra Wireless, Incorporated"],
    "AT+CGMM": ["EM7455"],
    "AT+CGMR": ["SWI9X30C_02.33.03.00"],
    "AT+CGSN": ["359072060000000"],
    "AT+CESQ": ["+CESQ: 99,99,255,255,20,60"],
    "AT+CSQ": ["+CSQ: 20,99"],
    "AT+COPS?": ['+COPS: 0,2,"26202",7'],
    "AT+CEREG?": ['+CEREG: 2,1,"D2AB","01A2D001",7'],
    "AT+CGDCONT?": [
        '+CGDCONT: 1,"IP","web.vodafone.de","0.0.0.0",0,0',
        '+CGDCONT: 2,"IP","m2m","0.0.0.0",0,0',
    ],
    "AT+CGACT?": ["+CGACT: 1,0", "+CGACT: 2,1"],
}


def test_poll_generic_modem() -> None:
    async def scenario() -> None:
        commander = Scripted(GENERIC_ANSWERS)
        facts = await poll(commander, Quirks())
        assert facts.identity is not None and facts.identity.model == "EM7455"
        assert (facts.rat, facts.duplex, facts.mcc, facts.mnc) == (RAT_LTE, None, 262, 2)
        assert (facts.lac, facts.cell_id, facts.registration) == (0xD2AB, 0x1A2D001, 1)
        assert facts.signal == Signal(rsrq=-10.0, rsrp=-81.0)
        assert facts.apns == ("m2m",), "only active contexts"
        assert "AT+CSQ" not in commander.sent, "CSQ is only the fallback"

    run(scenario())


def test_poll_tolerates_failing_commands() -> None:
    async def scenario() -> None:
        answers = dict(GENERIC_ANSWERS)
        for cmd in ("AT+CESQ", "AT+COPS?", "AT+CGACT?", "AT+CGMR"):
            del answers[cmd]  # ERROR
        answers["AT+CEREG?"] = AtTimeout("AT+CEREG?: no answer")
        answers["AT+CREG?"] = ['+CREG: 2,5,"00C3","A1B2",0']
        facts = await poll(Scripted(answers), Quirks())
        assert facts.signal == Signal(rssi=-73.0), "fell back to +CSQ"
        assert (facts.mcc, facts.mnc) == (None, None)
        assert (facts.registration, facts.lac, facts.rat) == (5, 0xC3, RAT_GSM)
        assert facts.apns == ("web.vodafone.de", "m2m"), "activity unknown: every defined APN"
        assert facts.identity is not None and facts.identity.revision is None

    run(scenario())


def test_poll_gives_up_when_the_channel_goes_away() -> None:
    async def scenario() -> None:
        answers = dict(GENERIC_ANSWERS)
        answers["AT+COPS?"] = PortUnavailable("gone")
        with pytest.raises(PortUnavailable):
            await poll(Scripted(answers), Quirks())

    run(scenario())


def test_vendor_facts_win_over_standard_ones() -> None:
    async def scenario() -> None:
        answers = dict(GENERIC_ANSWERS)
        answers['AT+QENG="servingcell"'] = [
            '+QENG: "servingcell","NOCONN","LTE","TDD",262,03,BEEF,1,38950,38,5,5,0042,-88,-8,-60,125,30'
        ]
        facts = await poll(Scripted(answers), QuectelQuirks())
        assert (facts.mnc, facts.cell_id, facts.lac, facts.duplex, facts.band) == (3, 0xBEEF, 0x42, "TDD", 38)
        assert facts.signal == Signal(rsrq=-8.0, rsrp=-88.0, rssi=-60.0, sinr=5.0)

    run(scenario())
