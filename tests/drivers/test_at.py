"""AtChannel against the fake modem over real pyserial (pty, socket://) and the in-process stream.

Backoff waits run on a FakeClock; wall-clock waits only bound how long a
test waits for I/O that must happen (``eventually``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.modem.at import (
    AtChannel,
    AtError,
    AtResponse,
    AtTimeout,
    PortUnavailable,
    Unsolicited,
    is_final,
    prefix_matches,
    response_prefix,
)
from lwm2md.engine.clock import FakeClock

PDU = "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B"
SUBMIT = "0011000B914467231276F50000AA05E8329BFD06"  # SMSC "00" + SMS-SUBMIT, 19 octets of TPDU
WAIT = 5.0


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


def state_of(channel: AtChannel) -> str:
    """The state, read through a call (no type narrowing across awaits)."""
    return channel.state


@pytest.fixture
def modem() -> Iterator[FakeModem]:
    fake = FakeModem()
    yield fake
    fake.close()


async def opened(url: str, clock: FakeClock | None = None, **kwargs: Any) -> AtChannel:
    channel = AtChannel(url, clock=clock or FakeClock(), **kwargs)
    await channel.open()
    assert channel.state == "open"
    return channel


# -- pure helpers --------------------------------------------------------------------------


def test_prefix_matching_is_by_token() -> None:
    assert prefix_matches("+CMT", "+CMT: ,23")
    assert not prefix_matches("+CMT", '+CMTI: "SM",3')
    assert prefix_matches("+cmti", '+CMTI: "SM",3')
    assert prefix_matches("RING", "RING")
    assert prefix_matches("+CME ERROR", "+CME ERROR: 10")
    assert not prefix_matches("OK", "OKAY")


def test_response_prefix_and_final_codes() -> None:
    assert response_prefix("AT+CREG?") == "+CREG"
    assert response_prefix('at+qeng="servingcell"') == "+QENG"
    assert response_prefix("AT#RFSTS") == "#RFSTS"
    assert response_prefix("ATI") is None
    assert is_final("OK") and is_final("+CMS ERROR: 321") and is_final("NO CARRIER")
    assert not is_final("+CSQ: 20,99")


def test_at_error_exposes_the_code() -> None:
    cme = AtError("+CME ERROR: 10", "AT+CPIN?")
    assert (cme.kind, cme.code, cme.final) == ("CME", 10, "+CME ERROR: 10")
    verbose = AtError("+CME ERROR: SIM not inserted")
    assert (verbose.kind, verbose.code) == ("CME", None)
    plain = AtError("ERROR")
    assert (plain.kind, plain.code) == (None, None)


def test_response_values() -> None:
    response = AtResponse(['+CGDCONT: 1,"IP","a"', '+CGDCONT: 2,"IP","b"', "+CGDCONTX: 9"], "OK")
    assert response.values("+CGDCONT") == ['1,"IP","a"', '2,"IP","b"']
    assert response.first("+CSQ") is None


# -- commands over a pty -------------------------------------------------------------------


def test_open_turns_echo_off_and_runs_init(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty())
        try:
            assert modem.commands[:2] == ["ATE0", "AT+CMEE=1"]
            assert not modem.echo and modem.cmee == 1
            answer = await channel.command("AT+CSQ")
            assert answer == AtResponse(["+CSQ: 24,99"], "OK")
        finally:
            await channel.close()
        assert channel.state == "closed"

    run(scenario())


def test_echo_lines_are_tolerated(modem: FakeModem) -> None:
    async def scenario() -> None:
        modem.set_response("ATE0", [], "OK")  # a modem that ignores ATE0 keeps echoing
        channel = await opened(modem.serve_pty(), init_commands=())
        try:
            assert modem.echo
            answer = await channel.command('AT+CGDCONT=3,"IP","iot.example"')
            assert answer.lines == [] and answer.final == "OK"
            answer = await channel.command("AT+CGDCONT?")
            assert answer.values("+CGDCONT")[-1].startswith('3,"IP","iot.example"')
            assert all(not line.upper().startswith("AT") for line in answer.lines)
        finally:
            await channel.close()

    run(scenario())


def test_error_and_extended_error_codes(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty())
        try:
            with pytest.raises(AtError) as unknown:
                await channel.command("AT+NOSUCH")
            assert unknown.value.final == "ERROR" and unknown.value.code is None
            with pytest.raises(AtError) as cme:
                await channel.command("AT+CREG=7")
            assert (cme.value.kind, cme.value.code) == ("CME", 50)
            with pytest.raises(AtError) as cms:
                await channel.command("AT+CMGR=5")
            assert (cms.value.kind, cms.value.code) == ("CMS", 321)
            modem.fail("AT+CPIN?", "+CME ERROR: 10")
            with pytest.raises(AtError) as sim:
                await channel.command("AT+CPIN?")
            assert sim.value.code == 10 and sim.value.command == "AT+CPIN?"
            assert (await channel.command("AT")).final == "OK", "an error leaves the channel usable"
        finally:
            await channel.close()

    run(scenario())


def test_urcs_between_commands_including_two_line_cmt(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty())
        seen: list[Unsolicited] = []
        channel.on_unsolicited("+CMTI", seen.append)
        channel.on_unsolicited("+CMT", seen.append)
        channel.on_unsolicited("RING", seen.append)
        try:
            index = modem.deliver_sms(PDU)
            await eventually(lambda: len(seen) == 1)
            assert seen[0].line == f'+CMTI: "SM",{index}' and seen[0].name == "+CMTI"
            assert seen[0].args == f'"SM",{index}'
            await channel.command("AT+CNMI=2,2,0,0,0")
            modem.deliver_sms(PDU)
            await eventually(lambda: len(seen) == 2)
            assert seen[1].name == "+CMT" and seen[1].body == PDU
            modem.inject_unsolicited("RING")
            await eventually(lambda: len(seen) == 3)
            assert seen[2].line == "RING" and seen[2].body is None
        finally:
            await channel.close()

    run(scenario())


def test_urc_in_the_middle_of_a_response(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty())
        seen: list[Unsolicited] = []
        channel.on_unsolicited("+CEREG", seen.append)
        channel.on_unsolicited("+CMTI", seen.append)
        try:
            modem.inject_unsolicited('+CEREG: 1,"D2AB","01A2D001",7', during="AT+CGDCONT?")
            modem.inject_unsolicited('+CMTI: "SM",4', during="AT+CGDCONT?")
            answer = await channel.command("AT+CGDCONT?")
            assert len(answer.lines) == 2 and all(ln.startswith("+CGDCONT:") for ln in answer.lines)
            assert [u.name for u in seen] == ["+CEREG", "+CMTI"]
            # The command's own prefix is a response, not a URC.
            answer = await channel.command("AT+CEREG?")
            assert answer.lines == ["+CEREG: 0,1"] and len(seen) == 2
        finally:
            await channel.close()

    run(scenario())


def test_cmgs_prompt_payload_and_ctrl_z(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty())
        try:
            await channel.command("AT+CMGF=0")
            answer = await channel.command(
                "AT+CMGS=19", expect_prompt=True, payload=SUBMIT.encode(), timeout=3
            )
            assert answer.first("+CMGS") == "1"
            assert modem.sent_sms == [SUBMIT]
            with pytest.raises(AtError) as wrong_length:
                await channel.command("AT+CMGS=18", expect_prompt=True, payload=SUBMIT.encode())
            assert wrong_length.value.code == 304 and modem.sent_sms == [SUBMIT]
            modem.fail("AT+CMGS=19", "+CMS ERROR: 302")
            with pytest.raises(AtError):  # no prompt: the payload is never written
                await channel.command("AT+CMGS=19", expect_prompt=True, payload=SUBMIT.encode())
            assert modem.sent_sms == [SUBMIT]
            assert (await channel.command("AT")).final == "OK"
            with pytest.raises(ValueError):
                await channel.command("AT+CMGS=1", expect_prompt=True, payload=b"\x1a")
            with pytest.raises(ValueError):
                await channel.command("AT", payload=b"x")
        finally:
            await channel.close()

    run(scenario())


def test_timeout_then_recovery_of_answers(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty())
        try:
            modem.hang()
            with pytest.raises(AtTimeout):
                await channel.command("AT+CSQ", timeout=0.2)
            assert channel.state == "open", "one timeout is not an outage"
            modem.hang(False)
            assert (await channel.command("AT+CSQ")).lines == ["+CSQ: 24,99"]
        finally:
            await channel.close()

    run(scenario())


# -- recovery ---------------------------------------------------------------------------


async def unplug_and_back(channel: AtChannel, modem: FakeModem, clock: FakeClock) -> None:
    """Unplug; one failed attempt after 1 s; replug; the next attempt (2 s later) succeeds."""
    attempts = channel.open_attempts
    modem.unplug()
    await eventually(lambda: channel.state == "reopening")
    with pytest.raises(PortUnavailable):
        await channel.command("AT")
    await eventually(lambda: clock.next_deadline() == clock.now() + 1.0)
    await clock.advance(1.0)  # first attempt: the port is still gone
    await eventually(lambda: clock.next_deadline() == clock.now() + 2.0)
    assert channel.open_attempts == attempts + 1 and channel.state == "reopening"
    modem.replug()
    await clock.advance(1.0)
    assert channel.open_attempts == attempts + 1, "backoff doubled: no attempt yet"
    await clock.advance(1.0)
    await asyncio.wait_for(channel.wait_open(), WAIT)
    assert channel.open_attempts == attempts + 2 and channel.recoveries == 1


def test_unplug_reopens_with_backoff_on_a_pty(modem: FakeModem) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        path = modem.serve_pty()
        channel = await opened(path, clock)
        ready: list[str] = []
        channel.on_ready(lambda: ready.append(channel.state))
        try:
            await unplug_and_back(channel, modem, clock)
            assert os.path.islink(path), "the same path works again after replug"
            assert ready == ["open"]
            assert not modem.echo, "the replugged (restarted) modem got ATE0 again"
            assert (await channel.command("AT+CSQ")).final == "OK"
        finally:
            await channel.close()

    run(scenario())


def test_unplug_reopens_on_socket_url(modem: FakeModem) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        url = modem.serve_socket()
        assert url.startswith("socket://127.0.0.1:")
        channel = await opened(url, clock)
        try:
            assert (await channel.command("AT+CGSN")).lines == [modem.imei]
            await unplug_and_back(channel, modem, clock)
            assert (await channel.command("AT+CGSN")).lines == [modem.imei]
        finally:
            await channel.close()

    run(scenario())


def test_unplug_reopens_on_in_process_stream(modem: FakeModem) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        channel = await opened("fake:", clock, opener=modem.open_stream)
        try:
            await unplug_and_back(channel, modem, clock)
            assert (await channel.command("ATI")).lines[0] == "Quectel"
        finally:
            await channel.close()

    run(scenario())


def test_modem_reset_rdy_reinitialises(modem: FakeModem) -> None:
    async def scenario() -> None:
        channel = await opened(modem.serve_pty(), init_commands=("AT+CMEE=1", "AT+CNMI=2,1,0,0,0"))
        seen: list[Unsolicited] = []
        channel.on_unsolicited("RDY", seen.append)
        ready: list[int] = []
        channel.on_ready(lambda: ready.append(1))
        try:
            modem.set_cell(stat=1)
            modem.reset()
            assert modem.echo and modem.cmee == 0
            await eventually(lambda: bool(ready))
            assert channel.state == "open" and channel.recoveries == 1
            assert [u.line for u in seen] == ["RDY"]
            assert not modem.echo and modem.cmee == 1 and modem.commands.count("ATE0") == 2
            assert modem.commands[-1] == "AT+CNMI=2,1,0,0,0"
            assert channel.open_attempts == 1, "a restart re-initialises without reopening the port"
        finally:
            await channel.close()

    run(scenario())


def test_silent_modem_triggers_reopen(modem: FakeModem) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        channel = await opened(modem.serve_pty(), clock, max_timeouts=2, init_timeout=0.3)
        try:
            modem.hang()
            for _ in range(2):
                with pytest.raises(AtTimeout):
                    await channel.command("AT", timeout=0.2)
            assert channel.state == "reopening"
            await eventually(lambda: clock.next_deadline() is not None)
            await clock.advance(1.0)  # still silent: init times out, back off 2 s
            await eventually(lambda: clock.next_deadline() == clock.now() + 2.0)
            assert channel.state == "reopening"
            modem.hang(False)
            await clock.advance(2.0)
            await asyncio.wait_for(channel.wait_open(), WAIT)
            assert (await channel.command("AT")).final == "OK"
        finally:
            await channel.close()

    run(scenario())


def test_missing_port_keeps_retrying_and_close_stops_it(tmp_path: Any) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        channel = AtChannel(str(tmp_path / "ttyUSB9"), clock=clock)
        await channel.open()  # never raises for a missing device
        assert channel.state == "reopening"
        await eventually(lambda: clock.next_deadline() == 1.0)
        await clock.advance(1.0)
        await eventually(lambda: clock.next_deadline() == 3.0)
        assert channel.open_attempts == 2
        await channel.close()
        assert state_of(channel) == "closed"
        with pytest.raises(PortUnavailable):
            await channel.command("AT")

    run(scenario())


def test_malformed_url_raises() -> None:
    async def scenario() -> None:
        channel = AtChannel("nosuchscheme://x", clock=FakeClock())
        with pytest.raises(ValueError):
            await channel.open()
        assert channel.state == "closed"

    run(scenario())
