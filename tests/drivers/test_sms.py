"""SmsLink against the fake modem (pty with real pyserial, or the in-process stream) and the fake network.

Reassembly timeouts run on a FakeClock; wall-clock waits only bound how long
a test waits for I/O that must happen (``eventually``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.fake.sms_network import SmsNetwork
from lwm2md.drivers.modem.at import AtChannel, AtError
from lwm2md.drivers.modem.pdu import (
    IEI_CONCAT_16,
    Concat,
    SmsSubmit,
    decode_pdu,
    encode_deliver,
    encode_submit,
    split_payload,
    tpdu_length,
)
from lwm2md.drivers.modem.sms import Reassembler, SmsLink, SmsUnavailable
from lwm2md.engine.clock import FakeClock

WAIT = 5.0
TIMEOUT = 60.0
SENDER = "+491701111111"
SMS_LOG = "lwm2md.drivers.modem.sms"
SCTS = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(20):
            await coro

    asyncio.run(bounded())


async def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (wall time, bounded) until ``predicate()`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def quiet(seconds: float = 0.2) -> None:
    """Give the modem and the link time to do something they must not do."""
    await asyncio.sleep(seconds)


@pytest.fixture
def modem() -> Iterator[FakeModem]:
    fake = FakeModem()
    yield fake
    fake.close()


class Recorder:
    """What a link delivered and counted."""

    def __init__(self, link: SmsLink) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.counts: list[str] = []
        link.on_receive(lambda source, payload: self.messages.append((source, payload)))
        link.on_sms(self.counts.append)


@asynccontextmanager
async def sms_link(
    modem: FakeModem, clock: FakeClock | None = None, *, pty: bool = False, **kwargs: Any
) -> AsyncIterator[tuple[SmsLink, Recorder]]:
    clock = clock or FakeClock()
    if pty:
        channel = AtChannel(modem.serve_pty(), clock=clock)
    else:
        channel = AtChannel("fake:", clock=clock, opener=modem.open_stream)
    await channel.open()
    link = SmsLink(channel, clock=clock, reassembly_timeout=TIMEOUT, **kwargs)
    recorder = Recorder(link)
    await link.start()
    try:
        yield link, recorder
    finally:
        await link.close()
        await channel.close()


def deliver_pdus(payload: bytes, *, source: str = SENDER, reference: int = 7, bits: Any = 8) -> list[str]:
    """SMS-DELIVER PDUs (hex) carrying ``payload``, in part order."""
    return [
        encode_deliver(source, data, scts=SCTS, elements=(c.element(),) if c else ()).hex().upper()
        for c, data in split_payload(payload, reference=reference, reference_bits=bits)
    ]


def submitted(modem: FakeModem) -> list[SmsSubmit]:
    out = []
    for text in modem.sent_sms:
        pdu = decode_pdu(text)
        assert isinstance(pdu, SmsSubmit)
        out.append(pdu)
    return out


def count(modem: FakeModem, command: str) -> int:
    return sum(1 for c in modem.commands if c.upper() == command.upper())


# -- set-up -----------------------------------------------------------------------------------


def test_start_sets_pdu_mode_direct_routing_and_reads_numbers(modem: FakeModem) -> None:
    modem.msisdn = "+491702222222"
    modem.cmgf = 1
    modem.cnmi = (0, 0, 0, 0, 0)

    async def scenario() -> None:
        async with sms_link(modem) as (link, _):
            assert link.ready and link.routing == "cmt" and not link.acknowledge
            assert (modem.cmgf, modem.cnmi) == (0, (2, 2, 0, 0, 0))
            assert link.own_number == "+491702222222"
            assert link.service_centre == "+491710760000"
            assert "AT+CMGL=4" in modem.commands

    run(scenario())


def test_configured_service_centre_is_written(modem: FakeModem) -> None:
    async def scenario() -> None:
        async with sms_link(modem, service_centre="+491719999999") as (link, _):
            assert 'AT+CSCA="+491719999999",145' in modem.commands
            assert modem.service_centre == link.service_centre == "+491719999999"

    run(scenario())


def test_no_pdu_mode_means_not_ready_and_send_refuses(modem: FakeModem) -> None:
    modem.fail("AT+CMGF=0")

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            assert not link.ready
            with pytest.raises(SmsUnavailable):
                await link.send("+491702222222", b"x")
            assert modem.sent_sms == [] and recorder.counts == []

    run(scenario())


def test_start_before_the_channel_opens_sets_up_on_ready(modem: FakeModem) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        channel = AtChannel("fake:", clock=clock, opener=modem.open_stream)
        link = SmsLink(channel, clock=clock)
        await link.start()
        assert not link.ready and modem.commands == []
        await channel.open()
        try:
            await eventually(lambda: link.ready)
            assert modem.cnmi == (2, 2, 0, 0, 0)
        finally:
            await link.close()
            await channel.close()

    run(scenario())


# -- reassembly on its own ------------------------------------------------------------------------


def test_reassembler_bounds_what_it_holds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, SMS_LOG)
    out: list[tuple[str, bytes]] = []
    clock = FakeClock()
    joiner = Reassembler(lambda source, payload: out.append((source, payload)), clock=clock, timeout=10,
                         max_pending=2)  # fmt: skip
    for reference in (1, 2, 3):
        joiner.add("+491", Concat(reference, 2, 1, 8), b"a")
    assert joiner.pending == 2  # reference 1 made room for 3
    assert sum("too many pending" in r.getMessage() for r in caplog.records) == 1
    joiner.add("+491", Concat(3, 2, 2, 8), b"b")
    assert out == [("+491", b"ab")] and joiner.pending == 1
    joiner.add("+491", Concat(1, 2, 2, 8), b"b")  # its first half is gone: waits again
    assert len(out) == 1 and joiner.pending == 2
    assert sum("too many pending" in r.getMessage() for r in caplog.records) == 1
    joiner.add("+491", Concat(3, 2, 1, 8), b"a")  # a duplicate of a delivered message
    assert joiner.pending == 2 and len(out) == 1
    joiner.clear()
    assert joiner.pending == 0


def test_reassembler_accepts_a_reused_reference_after_the_timeout() -> None:
    out: list[bytes] = []
    clock = FakeClock()
    joiner = Reassembler(lambda source, payload: out.append(payload), clock=clock, timeout=10)

    async def scenario() -> None:
        for payload in (b"ab", b"cd"):
            joiner.add("+491", Concat(9, 2, 1, 8), payload[:1])
            joiner.add("+491", Concat(9, 2, 2, 8), payload[1:])
            await clock.advance(10)
        assert out == [b"ab", b"cd"] and joiner.pending == 0
        joiner.add("+491", None, b"whole")
        assert out[-1] == b"whole"

    run(scenario())


# -- sending ----------------------------------------------------------------------------------


def test_300_bytes_go_out_as_three_sms_over_a_pty(modem: FakeModem) -> None:
    payload = bytes(range(256)) + bytes(44)

    async def scenario() -> None:
        async with sms_link(modem, pty=True) as (link, recorder):
            assert await link.send("+491702222222", payload) == 3
            parts = submitted(modem)
            assert len(parts) == 3 and recorder.counts == ["tx"] * 3
            concats = [p.concat for p in parts]
            assert all(c is not None and c.bits == 16 for c in concats)
            assert [p.elements[0].iei for p in parts] == [IEI_CONCAT_16] * 3
            assert len({c.reference for c in concats if c}) == 1
            assert [(c.seq, c.total) for c in concats if c] == [(1, 3), (2, 3), (3, 3)]
            assert all(str(p.destination) == "+491702222222" and p.binary and p.pid == 0 for p in parts)
            assert b"".join(p.user_data for p in parts) == payload
            lengths = [c for c in modem.commands if c.startswith("AT+CMGS=")]
            assert lengths == [f"AT+CMGS={tpdu_length(bytes.fromhex(t))}" for t in modem.sent_sms]
            # the next message uses another reference
            await link.send("+491702222222", payload)
            later = submitted(modem)[3].concat
            assert later is not None and concats[0] is not None and later.reference != concats[0].reference

    run(scenario())


def test_short_payload_is_one_sms_without_header(modem: FakeModem) -> None:
    async def scenario() -> None:
        async with sms_link(modem, validity=86400) as (link, _):
            assert await link.send("0170123", b"\x40\x01\x00\x01") == 1
            (part,) = submitted(modem)
            assert part.elements == () and part.user_data == b"\x40\x01\x00\x01"
            assert str(part.destination) == "0170123" and part.validity == 86400

    run(scenario())


def test_refused_submission_raises_and_is_not_counted(modem: FakeModem) -> None:
    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            pdu = encode_submit("+491702222222", b"abc")
            modem.fail(f"AT+CMGS={tpdu_length(pdu)}", "+CMS ERROR: 500")
            with pytest.raises(AtError) as refused:
                await link.send("+491702222222", b"abc")
            assert refused.value.code == 500 and recorder.counts == []
            with pytest.raises(ValueError):
                await link.send("not a number", b"abc")

    run(scenario())


# -- receiving ----------------------------------------------------------------------------------


def test_parts_out_of_order_make_one_message(modem: FakeModem) -> None:
    payload = bytes(range(250)) * 2

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            pdus = deliver_pdus(payload, bits=16)
            assert len(pdus) == 4
            for index in (3, 0, 2):
                modem.deliver_sms(pdus[index])
            await eventually(lambda: link.pending == 1 and len(recorder.counts) == 3)
            assert recorder.messages == []
            modem.deliver_sms(pdus[1])
            await eventually(lambda: len(recorder.messages) == 1)
            assert recorder.messages == [(SENDER, payload)]
            assert recorder.counts == ["rx"] * 4 and link.pending == 0

    run(scenario())


def test_duplicate_parts_are_ignored(modem: FakeModem) -> None:
    payload = b"d" * 200

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            first, second = deliver_pdus(payload)
            for pdu in (first, first, second, first, second):
                modem.deliver_sms(pdu)
            await eventually(lambda: len(recorder.counts) == 5)
            await quiet()
            assert recorder.messages == [(SENDER, payload)] and link.pending == 0

    run(scenario())


def test_missing_part_is_dropped_after_the_timeout_with_one_log_line(
    modem: FakeModem, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, SMS_LOG)
    clock = FakeClock()

    async def scenario() -> None:
        async with sms_link(modem, clock) as (link, recorder):
            first, _, third = deliver_pdus(b"m" * 300)
            modem.deliver_sms(first)
            modem.deliver_sms(third)
            await eventually(lambda: link.pending == 1 and len(recorder.counts) == 2)
            await clock.advance(TIMEOUT - 1)
            assert link.pending == 1
            await clock.advance(1)
            assert link.pending == 0 and recorder.messages == []
            await clock.advance(10 * TIMEOUT)
            dropped = [r for r in caplog.records if "incomplete" in r.getMessage()]
            assert len(dropped) == 1
            assert f"from {SENDER} (reference 7): 2 of 3 parts" in dropped[0].getMessage()

    run(scenario())


def test_malformed_and_text_messages_are_dropped(modem: FakeModem, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, SMS_LOG)
    text_sms = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            modem.deliver_sms("0011223344")  # an SMS-SUBMIT whose TP-DA claims 51 digits
            modem.deliver_sms(text_sms)  # 7-bit text
            (good,) = deliver_pdus(b"ok")
            modem.deliver_sms(good)
            await eventually(lambda: len(recorder.messages) == 1)
            assert recorder.messages == [(SENDER, b"ok")]
            assert recorder.counts == ["rx", "rx"]  # the text SMS counts, the garbage does not
            assert link.ready
            lines = [r.getMessage() for r in caplog.records]
            assert sum("malformed PDU" in line for line in lines) == 1
            assert sum("not 8-bit data" in line for line in lines) == 1

    run(scenario())


def test_store_routing_reads_and_deletes(modem: FakeModem) -> None:
    modem.fail("AT+CNMI=2,2,0,0,0")
    modem.fail("AT+CNMI=1,2,0,0,0")
    payload = b"s" * 150

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            assert link.routing == "cmti" and modem.cnmi == (2, 1, 0, 0, 0)
            for pdu in reversed(deliver_pdus(payload)):
                modem.deliver_sms(pdu)
            await eventually(lambda: len(recorder.messages) == 1)
            assert recorder.messages == [(SENDER, payload)]
            await eventually(lambda: modem.messages == {})
            assert {"AT+CMGR=0", "AT+CMGR=1", "AT+CMGD=0", "AT+CMGD=1"} <= set(modem.commands)

    run(scenario())


def test_messages_stored_before_start_are_read_and_outgoing_ones_kept(modem: FakeModem) -> None:
    outgoing = encode_submit("+491702222222", b"sent").hex().upper()

    async def scenario() -> None:
        (stored,) = deliver_pdus(b"while away")
        modem.deliver_sms(stored)  # default AT+CNMI=2,1: stored with +CMTI, nobody listening
        modem.messages[7] = (2, outgoing)
        async with sms_link(modem) as (_, recorder):
            await eventually(lambda: len(recorder.messages) == 1)
            assert recorder.messages == [(SENDER, b"while away")]
            await eventually(lambda: list(modem.messages) == [7])

    run(scenario())


def test_direct_delivery_is_acknowledged_when_the_modem_wants_it(modem: FakeModem) -> None:
    modem.csms = 1

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            assert link.acknowledge
            for pdu in deliver_pdus(b"a" * 200):
                modem.deliver_sms(pdu)
            await eventually(lambda: len(recorder.messages) == 1 and count(modem, "AT+CNMA") == 2)
            assert modem.unacked == 0

    run(scenario())


def test_modem_restart_reruns_sms_setup_and_keeps_partial_messages(modem: FakeModem) -> None:
    payload = b"r" * 200

    async def scenario() -> None:
        async with sms_link(modem) as (link, recorder):
            channel = link.channel
            first, second = deliver_pdus(payload)
            modem.deliver_sms(first)
            await eventually(lambda: link.pending == 1)
            modem.reset()  # back to AT+CNMI=2,1 and echo on, then RDY
            await eventually(lambda: channel.recoveries == 1 and count(modem, "AT+CMGF=0") == 2)
            await eventually(lambda: link.ready)
            assert modem.cnmi == (2, 2, 0, 0, 0) and count(modem, "AT+CNMI=2,2,0,0,0") == 2
            modem.deliver_sms(second)
            await eventually(lambda: len(recorder.messages) == 1)
            assert recorder.messages == [(SENDER, payload)]

    run(scenario())


# -- the fake network ---------------------------------------------------------------------------


@pytest.fixture
def network() -> Iterator[SmsNetwork]:
    net = SmsNetwork()
    yield net
    net.close()


def test_two_modems_exchange_messages(modem: FakeModem, network: SmsNetwork) -> None:
    other = FakeModem("simcom")
    network.attach(modem, "+491701111111")
    network.attach(other, "+491702222222")
    big, small = bytes(range(256)) * 2, b"pong"

    async def scenario() -> None:
        async with sms_link(modem) as (a, got_a), sms_link(other, prefer="cmti") as (b, got_b):
            assert (a.own_number, b.own_number, b.routing) == ("+491701111111", "+491702222222", "cmti")
            assert await a.send("+491702222222", big) == 4
            await eventually(lambda: len(got_b.messages) == 1)
            assert got_b.messages == [("+491701111111", big)]
            assert await b.send(a.own_number or "", small) == 1
            await eventually(lambda: len(got_a.messages) == 1)
            assert got_a.messages == [("+491702222222", small)]
            assert got_a.counts == ["tx"] * 4 + ["rx"] and got_b.counts == ["rx"] * 4 + ["tx"]

    try:
        run(scenario())
    finally:
        other.close()


def test_endpoint_exchange_with_reordering_and_loss(
    modem: FakeModem, network: SmsNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, SMS_LOG)
    network.attach(modem, "+491701111111")
    server = network.endpoint("+4915550000")
    clock = FakeClock()
    payload = bytes(range(200)) * 2

    async def scenario() -> None:
        async with sms_link(modem, clock) as (link, recorder):
            # device -> server
            assert await link.send("+4915550000", payload) == 4
            await asyncio.to_thread(network.settle)
            assert server.received == [("+491701111111", payload)]
            # server -> device, parts reversed, 8-bit references
            network.set_reordering("reverse")
            assert server.send("+491701111111", payload) == 3
            await eventually(lambda: len(recorder.messages) == 1)
            assert recorder.messages == [("+4915550000", payload)]
            delivered = [r.concat for r in network.records if r.destination == "+491701111111"]
            assert [c.seq for c in delivered if c] == [3, 2, 1]
            # one part lost: dropped after the timeout
            network.set_reordering("none")
            network.drop_part(2)
            server.send("+491701111111", payload)
            await eventually(lambda: link.pending == 1 and recorder.counts.count("rx") == 5)
            await clock.advance(TIMEOUT)
            assert link.pending == 0 and len(recorder.messages) == 1
            assert sum("incomplete" in r.getMessage() for r in caplog.records) == 1
            # a whole single SMS lost
            network.drop_next()
            assert await link.send("+4915550000", b"lost") == 1
            await asyncio.to_thread(network.settle)
            assert len(server.received) == 1
            fates = [r.fate for r in network.records]
            assert fates.count("dropped") == 2 and "undeliverable" not in fates

    run(scenario())


def test_unknown_destination_is_undeliverable(modem: FakeModem, network: SmsNetwork) -> None:
    network.attach(modem, "+491701111111")

    async def scenario() -> None:
        async with sms_link(modem) as (link, _):
            await link.send("+499999", b"x")
            await asyncio.to_thread(network.settle)
            assert [(r.destination, r.fate) for r in network.records] == [("+499999", "undeliverable")]

    run(scenario())


def test_concat_facts_survive_the_network(network: SmsNetwork) -> None:
    a, b = network.endpoint("+4911"), network.endpoint("+4922")
    assert a.send("+4922", b"z" * 300, reference_bits=16) == 3
    network.settle()
    assert b.received == [("+4911", b"z" * 300)]
    assert network.records[0].concat == Concat(1, 3, 1, 16)
