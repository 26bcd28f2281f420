"""A fake SMS network: fake modems and in-process endpoints exchanging binary SMS by number.

:class:`SmsNetwork` takes every SMS-SUBMIT a :class:`~lwm2md.drivers.fake.modem.FakeModem`
accepts (``AT+CMGS`` in PDU mode), and hands it to the destination number
as an SMS-DELIVER from the sender's number: to an attached modem through
:meth:`FakeModem.deliver_sms` (so ``AT+CNMI`` decides ``+CMT`` or ``+CMTI``),
or to an :class:`SmsEndpoint` (a party without a modem, such as an LwM2M
server's SMS gateway), which reassembles concatenated messages itself.
One SMS (one part) is the unit of routing, loss and reordering.

Loss and reordering for tests: :meth:`SmsNetwork.drop_next` loses the next
SMS, :meth:`SmsNetwork.drop_part` the next part with a given sequence
number, :meth:`SmsNetwork.set_reordering` holds the parts of each
concatenated message until all have been sent and then delivers them
reversed or shuffled (seeded).

Threading: submissions arrive in the submitting modem's thread; routing
runs in the network's own thread, so two modems never wait on each other.
Endpoint listeners are called in that thread. :meth:`SmsNetwork.settle`
waits until everything submitted so far has been routed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.modem.pdu import (
    DCS_8BIT,
    PID_DEFAULT,
    Address,
    Concat,
    InformationElement,
    PduError,
    SmsSubmit,
    alphabet,
    decode_pdu,
    encode_deliver,
    split_payload,
)
from lwm2md.drivers.modem.sms import Reassembler

LOG = logging.getLogger(__name__)

Fate = Literal["delivered", "dropped", "undeliverable"]
Reordering = Literal["none", "reverse", "shuffle"]


@dataclass(frozen=True)
class SmsRecord:
    """One SMS as the network saw it: who to whom, concatenation facts, payload octets, what became of it."""

    source: str
    destination: str
    concat: Concat | None
    data: bytes
    fate: Fate


@dataclass(frozen=True)
class _Sms:
    source: str
    destination: str
    elements: tuple[InformationElement, ...]
    concat: Concat | None
    data: bytes
    pid: int = PID_DEFAULT
    dcs: int = DCS_8BIT


def _normalise(number: str) -> str:
    return str(Address.parse(number))


class SmsEndpoint:
    """A party on the network without a modem; create it with :meth:`SmsNetwork.endpoint`.

    ``received`` lists every whole message (source, payload) in arrival order.
    """

    def __init__(self, network: SmsNetwork, msisdn: str) -> None:
        self.network = network
        self.msisdn = msisdn
        self.received: list[tuple[str, bytes]] = []
        self._listeners: list[Callable[[str, bytes], None]] = []
        self._reassembler = Reassembler(self._deliver)
        self._reference = 0

    def send(self, to: str, payload: bytes, *, reference_bits: Literal[8, 16] = 8) -> int:
        """Send ``payload`` to number ``to`` (concatenated when needed); returns the SMS count.

        Uses 8-bit references by default (the link uses 16-bit ones), so
        both concatenation elements cross the network. Routing is
        asynchronous (see :meth:`SmsNetwork.settle`).
        """
        destination = _normalise(to)
        self._reference += 1
        parts = split_payload(payload, reference=self._reference, reference_bits=reference_bits)
        for concat, data in parts:
            elements = (concat.element(),) if concat is not None else ()
            self.network._submit(_Sms(self.msisdn, destination, elements, concat, data))
        return len(parts)

    def on_receive(self, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call ``callback(source, payload)`` per whole message (network thread); returns an unsubscribe."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return unsubscribe

    def _take(self, sms: _Sms) -> None:
        self._reassembler.add(sms.source, sms.concat, sms.data)

    def _deliver(self, source: str, payload: bytes) -> None:
        self.received.append((source, payload))
        for callback in list(self._listeners):
            try:
                callback(source, payload)
            except Exception:
                LOG.exception("fake sms network: endpoint listener failed")


class SmsNetwork:
    """Routes SMS between attached fake modems and endpoints by number (``"+49..."``)."""

    def __init__(self, *, service_centre: str = "+491710760000", seed: int = 0) -> None:
        self.service_centre = Address.parse(service_centre)
        self.records: list[SmsRecord] = []
        """Every SMS routed or lost, in the order the network decided its fate."""
        self._modems: dict[str, FakeModem] = {}
        self._endpoints: dict[str, SmsEndpoint] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._drop_next = 0
        self._drop_parts: list[int] = []
        self._reordering: Reordering = "none"
        self._held: dict[tuple[str, str, int, int], list[_Sms | None]] = {}
        self._random = random.Random(seed)
        self._queue: queue.SimpleQueue[_Sms | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # -- membership -------------------------------------------------------------------------

    def attach(self, modem: FakeModem, msisdn: str) -> None:
        """Give ``modem`` the number ``msisdn`` (also its ``AT+CNUM``) and route what it sends."""
        number = _normalise(msisdn)
        with self._lock:
            self._modems[number] = modem
        modem.msisdn = number
        modem.service_centre = str(self.service_centre)
        modem.on_submit = lambda pdu_hex: self._from_modem(number, pdu_hex)

    def endpoint(self, msisdn: str) -> SmsEndpoint:
        """The endpoint with number ``msisdn`` (created on first use)."""
        number = _normalise(msisdn)
        with self._lock:
            found = self._endpoints.get(number)
            if found is None:
                found = self._endpoints[number] = SmsEndpoint(self, number)
            return found

    # -- impairments ------------------------------------------------------------------------

    def drop_next(self, n: int = 1) -> None:
        """Lose the next ``n`` SMS (each part counts)."""
        with self._lock:
            self._drop_next += n

    def drop_part(self, seq: int) -> None:
        """Lose the next part whose concatenation sequence number is ``seq`` (from 1)."""
        with self._lock:
            self._drop_parts.append(seq)

    def set_reordering(self, mode: Reordering) -> None:
        """Deliver the parts of each concatenated message in order, reversed or shuffled."""
        with self._lock:
            self._reordering = mode

    def settle(self, timeout: float = 5.0) -> None:
        """Block until every SMS submitted so far is routed (TimeoutError after ``timeout`` s)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError("fake SMS network did not settle")

    def close(self) -> None:
        """Stop the routing thread and detach every modem."""
        for modem in list(self._modems.values()):
            modem.on_submit = None
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(2.0)

    # -- routing ----------------------------------------------------------------------------

    def _from_modem(self, source: str, pdu_hex: str) -> None:
        try:
            pdu = decode_pdu(pdu_hex)
        except PduError as exc:
            LOG.info("fake sms network: %s submitted a malformed PDU: %s", source, exc)
            return
        if not isinstance(pdu, SmsSubmit):
            return
        destination = str(pdu.destination)
        self._submit(_Sms(source, destination, pdu.elements, pdu.concat, pdu.user_data, pdu.pid, pdu.dcs))

    def _submit(self, sms: _Sms) -> None:
        release: list[_Sms] = []
        with self._lock:
            dropped = False
            if self._drop_next > 0:
                self._drop_next -= 1
                dropped = True
            elif sms.concat is not None and sms.concat.seq in self._drop_parts:
                self._drop_parts.remove(sms.concat.seq)
                dropped = True
            if dropped:
                self.records.append(SmsRecord(sms.source, sms.destination, sms.concat, sms.data, "dropped"))
            concat = sms.concat
            if self._reordering == "none" or concat is None:
                if not dropped:
                    release.append(sms)
            else:
                key = (sms.source, sms.destination, concat.reference, concat.total)
                held = self._held.setdefault(key, [])
                held.append(None if dropped else sms)
                if len(held) >= concat.total:
                    del self._held[key]
                    parts = [p for p in held if p is not None]
                    if self._reordering == "reverse":
                        parts.reverse()
                    else:
                        self._random.shuffle(parts)
                    release.extend(parts)
            self._in_flight += len(release)
            if release and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fake-sms-network", daemon=True)
                self._thread.start()
        for item in release:
            self._queue.put(item)

    def _run(self) -> None:
        while True:
            sms = self._queue.get()
            if sms is None:
                return
            try:
                self._route(sms)
            except Exception:
                LOG.exception("fake sms network: routing failed")
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def _route(self, sms: _Sms) -> None:
        with self._lock:
            modem = self._modems.get(sms.destination)
            endpoint = self._endpoints.get(sms.destination)
        fate: Fate = "delivered"
        if endpoint is not None:
            endpoint._take(sms)
        elif modem is not None and alphabet(sms.dcs) in ("8bit", "ucs2"):
            scts = dt.datetime.now(dt.UTC).replace(microsecond=0)
            pdu = encode_deliver(sms.source, sms.data, scts=scts, elements=sms.elements, pid=sms.pid,
                                 dcs=sms.dcs, smsc=self.service_centre)  # fmt: skip
            modem.deliver_sms(pdu.hex().upper())
        else:
            fate = "undeliverable"
            LOG.info("fake sms network: nobody (or no octet coding) at %s", sms.destination)
        with self._lock:
            self.records.append(SmsRecord(sms.source, sms.destination, sms.concat, sms.data, fate))
