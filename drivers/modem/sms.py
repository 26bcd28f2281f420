"""Binary SMS over an :class:`~lwm2md.drivers.modem.at.AtChannel`: the link under the LwM2M SMS binding.

:class:`SmsLink` sends payloads as 8-bit SMS in PDU mode (concatenated
when longer than 140 octets) and delivers received payloads, reassembled,
to its listeners. It knows nothing of CoAP or LwM2M.

Contract:

- Initialisation (at :meth:`SmsLink.start` when the channel is open, and
  again after every reopen or modem restart through the channel's ready
  listeners): ``AT+CMGF=0``; ``AT+CSMS?`` to learn whether ``+CMT`` needs
  ``AT+CNMA``; ``AT+CNMI`` preferring direct delivery (``+CMT``) and falling
  back to store-and-notify (``+CMTI``, then ``AT+CMGR``/``AT+CMGD``);
  the service centre (``AT+CSCA``, set when configured, then read) and the
  own number (``AT+CNUM``, when the SIM knows it). Then received messages
  already in the current store are read and deleted (``AT+CMGL=4``);
  stored outgoing messages are left alone.
- :meth:`SmsLink.send` returns the number of SMS submitted, or raises a
  :class:`~lwm2md.drivers.modem.at.ModemError` (``+CMS ERROR``, timeout,
  port lost) for the first part the modem refuses; parts already
  submitted stay submitted. ValueError for a bad number or a payload
  needing more than 255 parts.
- Reception: each SMS-DELIVER counts as one ``"rx"``; only 8-bit data is
  passed on, anything else (text, status reports, malformed PDUs) is
  dropped with one log line. Parts are joined per (source, reference,
  total); duplicates are ignored; a message still incomplete
  ``reassembly_timeout`` seconds (on the injected clock) after its first
  part is dropped with one log line. Nothing here raises into the
  channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from lwm2md.drivers.modem.at import AtChannel, AtError, AtResponse, ModemError, Unsolicited
from lwm2md.drivers.modem.pdu import (
    PID_DEFAULT,
    Address,
    Concat,
    PduError,
    SmsDeliver,
    decode_pdu,
    encode_submit,
    split_payload,
    tpdu_length,
)
from lwm2md.engine.clock import Clock, TimerHandle

LOG = logging.getLogger(__name__)
_L = TypeVar("_L")

Direction = Literal["tx", "rx"]
Routing = Literal["cmt", "cmti"]
ReceiveListener = Callable[[str, bytes], None]
"""``callback(source, payload)``: one reassembled message from ``source`` (``"+49..."``)."""
CounterListener = Callable[[Direction], None]
"""``callback("tx" | "rx")``: one SMS submitted or one SMS-DELIVER received."""

CNMI_DIRECT = ("AT+CNMI=2,2,0,0,0", "AT+CNMI=1,2,0,0,0")
"""Routings that deliver new messages as ``+CMT`` with their PDU."""
CNMI_STORE = ("AT+CNMI=2,1,0,0,0", "AT+CNMI=1,1,0,0,0")
"""Routings that store new messages and announce them with ``+CMTI``."""
REASSEMBLY_TIMEOUT = 120.0
"""Default seconds a concatenated message may wait for its missing parts."""
SEND_TIMEOUT = 60.0
"""Default seconds one ``AT+CMGS`` may take (the network answers slowly)."""
STORE_TIMEOUT = 10.0
"""Seconds for reading or deleting stored messages."""


class SmsUnavailable(ModemError):
    """The modem did not accept the SMS set-up (no PDU mode, no message routing)."""


# -- reassembly ---------------------------------------------------------------------------------

_Key = tuple[str, int, int]


@dataclass
class _Partial:
    key: _Key
    parts: dict[int, bytes] = field(default_factory=dict)
    timer: TimerHandle | None = None


class Reassembler:
    """Joins the parts of concatenated messages and hands whole payloads to ``deliver``.

    Keyed by (source, reference, total). A part number already held, or a
    part of a message completed within the last ``timeout`` seconds, is a
    duplicate and ignored. With a ``clock``, a message incomplete
    ``timeout`` seconds after its first part is dropped with one log line;
    without one, incomplete messages wait forever (test tooling). At most
    ``max_pending`` incomplete messages are kept: the oldest goes first.
    """

    def __init__(
        self,
        deliver: Callable[[str, bytes], None],
        *,
        clock: Clock | None = None,
        timeout: float = REASSEMBLY_TIMEOUT,
        max_pending: int = 16,
    ) -> None:
        if timeout <= 0 or max_pending < 1:
            raise ValueError("timeout must be positive and max_pending at least 1")
        self._deliver = deliver
        self.clock = clock
        self.timeout = timeout
        self.max_pending = max_pending
        self._partials: dict[_Key, _Partial] = {}
        self._completed: OrderedDict[_Key, float] = OrderedDict()
        self._completed_max = 16 * max_pending

    @property
    def pending(self) -> int:
        """Incomplete messages held."""
        return len(self._partials)

    def add(self, source: str, concat: Concat | None, data: bytes) -> None:
        """Take one part (``concat`` None: a whole message, delivered at once)."""
        if concat is None or concat.total == 1:
            self._deliver(source, data)
            return
        key = (source, concat.reference, concat.total)
        self._forget_completed()
        if key in self._completed:
            LOG.debug("sms: duplicate part %d/%d from %s (message already delivered)", concat.seq,
                      concat.total, source)  # fmt: skip
            return
        partial = self._partials.get(key)
        if partial is None:
            partial = self._open(key)
        if concat.seq in partial.parts:
            LOG.debug("sms: duplicate part %d/%d from %s", concat.seq, concat.total, source)
            return
        partial.parts[concat.seq] = data
        if len(partial.parts) < concat.total:
            return
        self._close(partial)
        self._remember(key)
        self._deliver(source, b"".join(partial.parts[i] for i in range(1, concat.total + 1)))

    def clear(self) -> None:
        """Forget everything held (timers cancelled)."""
        for partial in list(self._partials.values()):
            self._close(partial)
        self._completed.clear()

    def _open(self, key: _Key) -> _Partial:
        if len(self._partials) >= self.max_pending:
            oldest = next(iter(self._partials.values()))
            self._close(oldest)
            LOG.warning("sms: dropped incomplete message from %s (reference %d): too many pending messages",
                        oldest.key[0], oldest.key[1])  # fmt: skip
        partial = _Partial(key)
        if self.clock is not None:
            partial.timer = self.clock.call_at(self.clock.now() + self.timeout, lambda: self._expire(partial))
        self._partials[key] = partial
        return partial

    def _close(self, partial: _Partial) -> None:
        if self._partials.get(partial.key) is partial:
            del self._partials[partial.key]
        if partial.timer is not None:
            partial.timer.cancel()
            partial.timer = None

    def _expire(self, partial: _Partial) -> None:
        if self._partials.get(partial.key) is not partial:
            return
        self._close(partial)
        source, reference, total = partial.key
        LOG.warning("sms: dropped incomplete message from %s (reference %d): %d of %d parts after %g s",
                    source, reference, len(partial.parts), total, self.timeout)  # fmt: skip

    def _remember(self, key: _Key) -> None:
        expiry = self.clock.now() + self.timeout if self.clock is not None else float("inf")
        self._completed[key] = expiry
        self._completed.move_to_end(key)
        while len(self._completed) > self._completed_max:
            self._completed.popitem(last=False)

    def _forget_completed(self) -> None:
        if self.clock is None:
            return
        now = self.clock.now()
        while self._completed:
            key, expiry = next(iter(self._completed.items()))
            if expiry > now:
                return
            del self._completed[key]


# -- AT response parsing ------------------------------------------------------------------------


def _fields(text: str) -> list[str]:
    """Comma-separated AT fields, quotes removed: ``'"SM",3'`` -> ``["SM", "3"]``."""
    try:
        return [f.strip() for f in next(csv.reader([text], skipinitialspace=True))]
    except (csv.Error, StopIteration):
        return []


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _number(fields: list[str], at: int) -> str | None:
    """The number in ``fields[at]`` with ``+`` added when the next field says international (145)."""
    number = fields[at] if len(fields) > at else ""
    if not number:
        return None
    if len(fields) > at + 1 and fields[at + 1] == "145" and not number.startswith("+"):
        number = "+" + number
    return number


def _stored(response: AtResponse, prefix: str) -> list[tuple[list[str], str]]:
    """(header fields, PDU line) pairs of a ``+CMGR``/``+CMGL`` answer in PDU mode."""
    out: list[tuple[list[str], str]] = []
    lines = response.lines
    for i, line in enumerate(lines):
        if line.upper().startswith(prefix + ":") and i + 1 < len(lines):
            out.append((_fields(line[len(prefix) + 1 :]), lines[i + 1]))
    return out


# -- the link -----------------------------------------------------------------------------------


class SmsLink:
    """Binary SMS in PDU mode over one AT channel (see the module docstring for the contract).

    ``service_centre`` (``"+49..."``) is written with ``AT+CSCA`` at every
    initialisation; None keeps the SIM's. ``prefer`` chooses the routing
    tried first: ``"cmt"`` (direct, acknowledged with ``AT+CNMA`` when
    ``AT+CSMS`` says so or ``ack`` is True) or ``"cmti"`` (stored, survives
    the daemon being away). ``validity`` (seconds) adds a relative TP-VP to
    every SMS sent. ``reference_bits`` selects the concatenation element
    (16: IEI 0x08, 133 octets per part; 8: IEI 0x00, 134 per part).
    """

    def __init__(
        self,
        channel: AtChannel,
        *,
        clock: Clock | None = None,
        service_centre: str | None = None,
        prefer: Routing = "cmt",
        ack: bool | None = None,
        reassembly_timeout: float = REASSEMBLY_TIMEOUT,
        max_pending: int = 16,
        send_timeout: float = SEND_TIMEOUT,
        reference_bits: Literal[8, 16] = 16,
        validity: float | None = None,
        pid: int = PID_DEFAULT,
    ) -> None:
        if service_centre is not None:
            Address.parse(service_centre)  # ValueError early
        self.channel = channel
        self.clock: Clock = clock or channel.clock
        self.configured_service_centre = service_centre
        self.prefer: Routing = prefer
        self.ack_setting = ack
        self.send_timeout = send_timeout
        self.reference_bits: Literal[8, 16] = reference_bits
        self.validity = validity
        self.pid = pid
        self.service_centre: str | None = None
        """The service centre the modem reported at the last initialisation."""
        self.own_number: str | None = None
        """The MSISDN from ``AT+CNUM`` at the last initialisation (None when the SIM does not know it)."""
        self.routing: Routing | None = None
        """How new messages arrive since the last initialisation."""
        self.acknowledge = False
        """Whether each ``+CMT`` is acknowledged with ``AT+CNMA``."""
        self._reassembler = Reassembler(self._dispatch, clock=self.clock, timeout=reassembly_timeout,
                                        max_pending=max_pending)  # fmt: skip
        self._ready = False
        self._started = False
        self._receivers: list[ReceiveListener] = []
        self._counters: list[CounterListener] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._init_lock = asyncio.Lock()
        self._store_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._read_mem: str | None = None
        self._reference = random.randrange(1 << 16)

    # -- public API -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the SMS set-up succeeded since the channel last (re)opened."""
        return self._ready

    @property
    def pending(self) -> int:
        """Concatenated messages waiting for parts."""
        return self._reassembler.pending

    def on_receive(self, callback: ReceiveListener) -> Callable[[], None]:
        """Call ``callback(source, payload)`` for every whole message received; returns an unsubscribe."""
        return _subscribe(self._receivers, callback)

    def on_sms(self, callback: CounterListener) -> Callable[[], None]:
        """Call ``callback("tx")`` per SMS submitted and ``callback("rx")`` per SMS-DELIVER received."""
        return _subscribe(self._counters, callback)

    async def start(self) -> None:
        """Listen for messages and the channel's (re)initialisation; set up SMS now if the channel is open.

        A failed set-up is logged (see :attr:`ready`) and retried at the
        next channel recovery or :meth:`send`.
        """
        if self._started:
            return
        self._started = True
        self._unsubscribe = [
            self.channel.on_unsolicited("+CMT", self._on_cmt),
            self.channel.on_unsolicited("+CMTI", self._on_cmti),
            self.channel.on_ready(self._on_ready),
        ]
        if self.channel.state == "open":
            await self._initialize()

    async def close(self) -> None:
        """Stop listening, cancel background work and drop incomplete messages."""
        self._started = False
        self._ready = False
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reassembler.clear()

    async def send(self, destination: str, payload: bytes) -> int:
        """Send ``payload`` to ``destination`` (``"+49..."`` or national digits); returns the SMS count."""
        address = Address.parse(destination)
        reference = self._reference
        self._reference = (self._reference + 1) % (1 << 16)
        parts = split_payload(payload, reference=reference, reference_bits=self.reference_bits)
        pdus = [
            encode_submit(address, data, elements=(concat.element(),) if concat else (), pid=self.pid,
                          validity=self.validity)
            for concat, data in parts
        ]  # fmt: skip
        async with self._send_lock:
            if not self._ready and not await self._initialize():
                raise SmsUnavailable(f"modem {self.channel.url}: SMS set-up failed")
            for i, pdu in enumerate(pdus, 1):
                answer = await self.channel.command(
                    f"AT+CMGS={tpdu_length(pdu)}",
                    timeout=self.send_timeout,
                    expect_prompt=True,
                    payload=pdu.hex().upper().encode("ascii"),
                )
                self._count("tx")
                LOG.debug("sms: part %d/%d to %s submitted (TP-MR %s)", i, len(pdus), address,
                          answer.first("+CMGS"))  # fmt: skip
        return len(pdus)

    # -- set-up -----------------------------------------------------------------------------

    def _on_ready(self) -> None:
        self._ready = False
        self._spawn(self._initialize())

    async def _initialize(self) -> bool:
        async with self._init_lock:
            if self._ready:
                return True
            self._read_mem = None
            try:
                await self._configure()
            except ModemError as exc:
                LOG.warning("sms: set-up on %s failed: %s", self.channel.url, exc)
                return False
            self._ready = True
            LOG.info("sms: ready on %s (routing %s%s, service centre %s, own number %s)", self.channel.url,
                     self.routing, " with AT+CNMA" if self.acknowledge else "", self.service_centre or "?",
                     self.own_number or "?")  # fmt: skip
        await self._read_store()
        return True

    async def _configure(self) -> None:
        command = self.channel.command
        await command("AT+CMGF=0")
        if self.ack_setting is not None:
            self.acknowledge = self.ack_setting
        else:
            try:
                csms = _fields((await command("AT+CSMS?")).first("+CSMS") or "")
            except AtError:
                csms = []
            self.acknowledge = bool(csms) and _int(csms[0]) == 1  # service 1: +CMT wants AT+CNMA
        candidates = (*CNMI_DIRECT, *CNMI_STORE) if self.prefer == "cmt" else CNMI_STORE
        for cnmi in candidates:
            try:
                await command(cnmi)
            except AtError as exc:
                LOG.debug("sms: %s refused: %s", cnmi, exc.final)
                continue
            self.routing = "cmt" if cnmi in CNMI_DIRECT else "cmti"
            break
        else:
            raise SmsUnavailable("no AT+CNMI message routing accepted")
        if self.configured_service_centre is not None:
            address = Address.parse(self.configured_service_centre)
            try:
                await command(f'AT+CSCA="{address}",{address.toa}')
            except AtError as exc:
                LOG.warning("sms: cannot set the service centre %s: %s", address, exc.final)
        try:
            self.service_centre = _number(_fields((await command("AT+CSCA?")).first("+CSCA") or ""), 0)
        except AtError:
            self.service_centre = None
        try:
            numbers = [_number(_fields(v), 1) for v in (await command("AT+CNUM")).values("+CNUM")]
            self.own_number = next((n for n in numbers if n), None)
        except AtError:
            self.own_number = None

    # -- reception --------------------------------------------------------------------------

    def _on_cmt(self, urc: Unsolicited) -> None:
        if self.acknowledge:
            self._spawn(self._acknowledge())
        if urc.body is None:
            LOG.warning("sms: %s without a PDU", urc.line)
            return
        fields = _fields(urc.args)
        self._take(urc.body, _int(fields[-1]) if fields else None, "+CMT")

    async def _acknowledge(self) -> None:
        try:
            await self.channel.command("AT+CNMA")
        except ModemError as exc:
            LOG.debug("sms: AT+CNMA failed: %s", exc)

    def _on_cmti(self, urc: Unsolicited) -> None:
        fields = _fields(urc.args)
        index = _int(fields[-1]) if fields else None
        if index is None:
            LOG.warning("sms: cannot parse %r", urc.line)
            return
        self._spawn(self._read_stored(fields[0] if len(fields) > 1 else None, index))

    async def _read_stored(self, memory: str | None, index: int) -> None:
        async with self._store_lock:
            try:
                if memory and memory != self._read_mem:
                    try:
                        await self.channel.command(f'AT+CPMS="{memory}"', timeout=STORE_TIMEOUT)
                        self._read_mem = memory
                    except AtError as exc:
                        LOG.debug("sms: cannot select store %s: %s", memory, exc.final)
                answer = await self.channel.command(f"AT+CMGR={index}", timeout=STORE_TIMEOUT)
            except ModemError as exc:  # gone already, or the port: the next set-up reads the store
                LOG.debug("sms: cannot read stored message %s/%d: %s", memory, index, exc)
                return
            for header, pdu in _stored(answer, "+CMGR"):
                self._take(pdu, _int(header[-1]) if header else None, f"stored {index}")
            await self._delete(index)

    async def _read_store(self) -> None:
        async with self._store_lock:
            try:
                answer = await self.channel.command("AT+CMGL=4", timeout=STORE_TIMEOUT)
            except ModemError as exc:
                LOG.debug("sms: cannot list stored messages: %s", exc)
                return
            for header, pdu in _stored(answer, "+CMGL"):
                index, status = (_int(header[0]), _int(header[1])) if len(header) > 1 else (None, None)
                if index is None or status not in (0, 1):  # 2, 3: stored outgoing messages
                    continue
                self._take(pdu, _int(header[-1]), f"stored {index}")
                await self._delete(index)

    async def _delete(self, index: int) -> None:
        try:
            await self.channel.command(f"AT+CMGD={index}", timeout=STORE_TIMEOUT)
        except ModemError as exc:
            LOG.warning("sms: cannot delete stored message %d: %s", index, exc)

    def _take(self, text: str, length: int | None, origin: str) -> None:
        """Decode one received PDU and pass its payload on; never raises."""
        try:
            octets = bytes.fromhex(text.strip())
        except ValueError:
            LOG.warning("sms: dropped a malformed PDU (%s): not hexadecimal", origin)
            return
        try:
            pdu = decode_pdu(octets, smsc=length is None or length != len(octets))
        except PduError as exc:
            LOG.warning("sms: dropped a malformed PDU (%s): %s", origin, exc)
            return
        if not isinstance(pdu, SmsDeliver):
            LOG.debug("sms: skipped a %s (%s)", type(pdu).__name__, origin)
            return
        self._count("rx")
        if not pdu.binary:
            LOG.info(
                "sms: dropped a message from %s: TP-DCS 0x%02X is not 8-bit data", pdu.originator, pdu.dcs
            )
            return
        self._reassembler.add(str(pdu.originator), pdu.concat, pdu.user_data)

    def _dispatch(self, source: str, payload: bytes) -> None:
        LOG.debug("sms: %d octets from %s", len(payload), source)
        for callback in list(self._receivers):
            try:
                callback(source, payload)
            except Exception:
                LOG.exception("sms: receive listener failed")

    def _count(self, direction: Direction) -> None:
        for callback in list(self._counters):
            try:
                callback(direction)
            except Exception:
                LOG.exception("sms: counter listener failed")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _subscribe(listeners: list[_L], callback: _L) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(callback)

    return unsubscribe
