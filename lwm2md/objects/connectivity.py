"""Connectivity Monitoring (/4/0) and Connectivity Statistics (/7/0) from the modem and the WWAN interface.

/4/0 is refreshed every ``interval`` seconds of the injected clock: radio
facts from the modem (:func:`lwm2md.drivers.modem.info.poll`, vendor quirks
detected on the first poll), addresses and next-hop routers from the
configured interface. Values are pushed with ``set()`` inside one batch, so
observers see each refresh as one change. Without a modem, /4/0 still
reports the interface's addresses and, for Ethernet/WLAN, its bearer. A fact
nobody knows is absent; while the modem channel is reopening its last facts
stay (they are stale, not wrong).

/7/0 counts from Start (E) until Stop (E) or until Collection Period (RW, s;
0 = until Stop) has passed: Tx/Rx Data in KiB and Average Message Size in
bytes from the interface counters, SMS counters through
:meth:`ConnectivityObjects.count_sms_tx`/``count_sms_rx`` (the SMS layer
calls them), Max Message Size only once a transport reports sizes through
:meth:`ConnectivityObjects.note_message_size`. Reads are live while
collecting; each refresh also pushes the values so observers are notified.

Neither object opens or closes the modem channel: its owner does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from lwm2md.drivers.modem.at import AtChannel, ModemError
from lwm2md.drivers.modem.info import (
    RAT_CDMA,
    RAT_GSM,
    RAT_LTE,
    RAT_NBIOT,
    RAT_NR,
    RAT_TDSCDMA,
    RAT_UMTS,
    ModemFacts,
    ModemIdentity,
    poll,
)
from lwm2md.drivers.modem.quirks import Quirks, detect_quirks, quirks_for_vendor
from lwm2md.drivers.system.netif import InterfaceCounters, IpJson, NetInterface
from lwm2md.engine.clock import Clock, TimerHandle
from lwm2md.errors import BadRequest
from lwm2md.model.types import ObjectDef, ResourceData, Value
from lwm2md.objects.tree import ObjectInstance, ObjectTree, Reader

LOG = logging.getLogger(__name__)

MONITORING_OID = 4
STATISTICS_OID = 7

# /4 resources
NETWORK_BEARER = 0
AVAILABLE_BEARERS = 1
SIGNAL_STRENGTH = 2
LINK_QUALITY = 3
IP_ADDRESSES = 4
ROUTER_ADDRESSES = 5
APN = 7
CELL_ID = 8
SMNC = 9
SMCC = 10
SIGNAL_SNR = 11
LAC = 12

# /7 resources
SMS_TX = 0
SMS_RX = 1
TX_DATA = 2
RX_DATA = 3
MAX_MESSAGE_SIZE = 4
AVERAGE_MESSAGE_SIZE = 5
START = 6
STOP = 7
COLLECTION_PERIOD = 8

# /4/0/0 Network Bearer enumeration
BEARER_GSM = 0
BEARER_TD_SCDMA = 1
BEARER_WCDMA = 2
BEARER_CDMA2000 = 3
BEARER_LTE_TDD = 5
BEARER_LTE_FDD = 6
BEARER_NB_IOT = 7
BEARER_NR_TDD = 8
BEARER_NR_FDD = 9
BEARER_WLAN = 21
BEARER_ETHERNET = 41


def bearer_of(rat: str | None, duplex: str | None = None) -> int | None:
    """The /4/0/0 value of a radio access technology.

    LTE without a known duplex mode counts as FDD and NR as TDD (the common
    deployments); None for an unknown technology.
    """
    if rat == RAT_LTE:
        return BEARER_LTE_TDD if duplex == "TDD" else BEARER_LTE_FDD
    if rat == RAT_NR:
        return BEARER_NR_FDD if duplex == "FDD" else BEARER_NR_TDD
    return {
        RAT_GSM: BEARER_GSM,
        RAT_TDSCDMA: BEARER_TD_SCDMA,
        RAT_UMTS: BEARER_WCDMA,
        RAT_CDMA: BEARER_CDMA2000,
        RAT_NBIOT: BEARER_NB_IOT,
    }.get(rat or "")


def interface_bearer(kind: str | None) -> int | None:
    """The /4/0/0 value of an interface kind from :meth:`NetInterface.kind` (None for cellular)."""
    return {"ethernet": BEARER_ETHERNET, "wlan": BEARER_WLAN}.get(kind or "")


@dataclass(frozen=True)
class InterfaceFacts:
    """One reading of the interface's facts."""

    kind: str | None
    addresses: list[str]
    routers: list[str]


def _indexed(items: list[str]) -> dict[int, Value]:
    return dict(enumerate(items))


class StatisticsInstance(ObjectInstance):
    """/7/0: counters between Start and Stop; see the module docstring for the contract."""

    def __init__(
        self,
        definition: ObjectDef,
        *,
        clock: Clock,
        counters: Callable[[], InterfaceCounters | None] | None = None,
    ) -> None:
        if definition.oid != STATISTICS_OID:
            raise ValueError(f"object {definition.oid} is not Connectivity Statistics")
        super().__init__(definition, 0)
        self._clock = clock
        self._counters = counters
        self.collecting = False
        self._timer: TimerHandle | None = None
        self._last: InterfaceCounters | None = None
        self._totals = [0, 0, 0, 0]  # rx bytes, tx bytes, rx packets, tx packets
        self._sms = [0, 0]  # tx, rx
        self._max_size: int | None = None
        defined = definition.resources
        for rid in (SMS_TX, SMS_RX, TX_DATA, RX_DATA, AVERAGE_MESSAGE_SIZE):
            if rid in defined:
                self.handle(rid, read=self._reader(rid))
        self.handle(START, execute=self._start)
        self.handle(STOP, execute=self._stop)
        if COLLECTION_PERIOD in defined:
            self._values[COLLECTION_PERIOD] = 0
            self.handle(COLLECTION_PERIOD, write=self._check_period)

    # -- resources ------------------------------------------------------------------

    def _reader(self, rid: int) -> Reader:
        def read() -> ResourceData:
            return self.current()[rid]

        return read

    def current(self) -> dict[int, int]:
        """Values of resources 0-5 now (sampling the interface while collecting)."""
        if self.collecting:
            self._sample()
        rx_bytes, tx_bytes, rx_packets, tx_packets = self._totals
        packets = rx_packets + tx_packets
        values = {
            SMS_TX: self._sms[0],
            SMS_RX: self._sms[1],
            TX_DATA: tx_bytes // 1024,
            RX_DATA: rx_bytes // 1024,
            AVERAGE_MESSAGE_SIZE: (rx_bytes + tx_bytes) // packets if packets else 0,
        }
        if self._max_size is not None:
            values[MAX_MESSAGE_SIZE] = self._max_size
        return values

    def _check_period(self, data: ResourceData) -> None:
        if isinstance(data, bool) or not isinstance(data, int) or data < 0:
            raise BadRequest(f"Collection Period must be a non-negative integer, not {data!r}")

    @property
    def period(self) -> int:
        """Collection Period in seconds (0: until Stop)."""
        value = self._values.get(COLLECTION_PERIOD, 0)
        return value if isinstance(value, int) else 0

    # -- collection -----------------------------------------------------------------

    def _read_counters(self) -> InterfaceCounters | None:
        if self._counters is None:
            return None
        try:
            counters: InterfaceCounters | None = self._counters()
        except Exception:
            LOG.exception("reading interface counters failed")
            return None
        return counters

    def _sample(self) -> None:
        now = self._read_counters()
        if now is None:
            return
        if self._last is not None:
            fields = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
            for i, name in enumerate(fields):
                before, after = getattr(self._last, name), getattr(now, name)
                # A smaller value means the counter restarted (interface recreated).
                self._totals[i] += after - before if after >= before else after
        self._last = now

    def start(self) -> None:
        """Reset 0-5 to 0 and collect (until Stop or the Collection Period)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._totals = [0, 0, 0, 0]
        self._sms = [0, 0]
        self._max_size = None
        self._last = self._read_counters()
        self.collecting = True
        if self.period > 0:
            self._timer = self._clock.call_at(self._clock.now() + self.period, self.stop)
        self.publish()

    def stop(self) -> None:
        """Freeze 0-5 (a no-op when not collecting)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.collecting:
            return
        self._sample()
        self.collecting = False
        self.publish()

    def _start(self, args: str | None) -> None:
        self.start()

    def _stop(self, args: str | None) -> None:
        self.stop()

    def count_sms(self, *, sent: bool) -> None:
        """Count one SMS sent (or received) while collecting."""
        if self.collecting:
            self._sms[0 if sent else 1] += 1
            self.publish()

    def note_message_size(self, size: int) -> None:
        """Record the size of one IP message while collecting (feeds Max Message Size)."""
        if not self.collecting or size < 0:
            return
        if self._max_size is None and MAX_MESSAGE_SIZE in self.definition.resources:
            self.handle(MAX_MESSAGE_SIZE, read=self._reader(MAX_MESSAGE_SIZE))
        self._max_size = max(self._max_size or 0, size)
        self.publish()

    def publish(self) -> None:
        """Store the current values so observers of changed resources are notified."""
        with self.batch():
            for rid, value in self.current().items():
                if rid in self.definition.resources:
                    self.set(rid, value)


class ConnectivityObjects:
    """/4/0 and /7/0 kept up to date; build with :func:`build_connectivity_objects`."""

    def __init__(
        self,
        monitoring: ObjectInstance,
        statistics: StatisticsInstance | None,
        *,
        channel: AtChannel | None,
        netif: NetInterface | None,
        interval: float,
        clock: Clock,
        vendor: str | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"connectivity interval must be positive, not {interval!r}")
        self.monitoring = monitoring
        self.statistics = statistics
        self.channel = channel
        self.netif = netif
        self.interval = float(interval)
        self.clock = clock
        self.vendor = vendor
        self.facts: ModemFacts | None = None
        self.identity: ModemIdentity | None = None
        self.quirks: Quirks | None = None
        self.polls = 0
        """Completed refreshes."""
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Refresh now and then every ``interval``; RuntimeError if already started."""
        if self._task is not None:
            raise RuntimeError("connectivity objects already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="connectivity")

    async def stop(self) -> None:
        """Stop refreshing (idempotent); a running collection keeps its values."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            started = self.clock.now()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the refreshes
                LOG.exception("connectivity refresh failed")
            await self.clock.sleep(max(0.0, started + self.interval - self.clock.now()))

    # -- SMS / transport hooks ------------------------------------------------------------

    def count_sms_tx(self) -> None:
        """One SMS sent (counted while /7 collects)."""
        if self.statistics is not None:
            self.statistics.count_sms(sent=True)

    def count_sms_rx(self) -> None:
        """One SMS received (counted while /7 collects)."""
        if self.statistics is not None:
            self.statistics.count_sms(sent=False)

    def note_message_size(self, size: int) -> None:
        """One IP message of ``size`` bytes (feeds /7/0/4 while collecting)."""
        if self.statistics is not None:
            self.statistics.note_message_size(size)

    # -- refresh ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Poll the modem and the interface once and update /4/0 (and push /7/0)."""
        async with self._lock:
            await self._poll_modem()
            net = await asyncio.to_thread(self._read_interface) if self.netif is not None else None
            self._apply(net)
            if self.statistics is not None and self.statistics.collecting:
                self.statistics.publish()
            self.polls += 1

    async def _poll_modem(self) -> None:
        """Update ``facts`` (kept as they were when the modem is away or the poll fails)."""
        channel = self.channel
        if channel is None or channel.state != "open":
            return
        try:
            if self.quirks is None:
                self.identity, self.quirks = await detect_quirks(channel, self.vendor)
                channel.add_init_commands(self.quirks.init_commands)
                for cmd in self.quirks.init_commands:
                    with contextlib.suppress(ModemError):
                        await channel.command(cmd)
            self.facts = await poll(channel, self.quirks, identity=self.identity)
        except ModemError as exc:
            LOG.debug("modem poll incomplete: %s", exc)

    def _read_interface(self) -> InterfaceFacts:
        assert self.netif is not None
        return InterfaceFacts(self.netif.kind(), self.netif.addresses(), self.netif.routers())

    def _apply(self, net: InterfaceFacts | None) -> None:
        """Update /4/0 from the latest modem facts and this reading of the interface."""
        inst = self.monitoring
        facts = self.facts
        bearer = bearer_of(facts.rat, facts.duplex) if facts is not None else None
        if bearer is None and net is not None:
            bearer = interface_bearer(net.kind)
        updates: dict[int, ResourceData | None] = {
            NETWORK_BEARER: bearer,
            AVAILABLE_BEARERS: {0: bearer} if bearer is not None else None,
        }
        if net is not None:
            updates[IP_ADDRESSES] = _indexed(net.addresses)
            updates[ROUTER_ADDRESSES] = _indexed(net.routers)
        if facts is not None:
            updates.update(modem_values(facts))
        with inst.batch():
            for rid, value in updates.items():
                if rid not in inst.definition.resources:
                    continue
                if value is None:
                    inst.remove(rid)
                else:
                    inst.set(rid, value)


def modem_values(facts: ModemFacts) -> dict[int, ResourceData | None]:
    """/4/0 resource values from modem facts (None: unknown, to be absent)."""
    strength = facts.signal_strength
    quality = facts.link_quality
    sinr = facts.signal.sinr
    return {
        SIGNAL_STRENGTH: round(strength) if strength is not None else None,
        LINK_QUALITY: round(quality) if quality is not None else None,
        APN: _indexed(list(facts.apns)) if facts.apns else None,
        CELL_ID: facts.cell_id,
        SMNC: facts.mnc,
        SMCC: facts.mcc,
        SIGNAL_SNR: round(sinr) if sinr is not None else None,
        LAC: facts.lac,
    }


def build_connectivity_objects(
    tree: ObjectTree,
    channel: AtChannel | None,
    *,
    interface: str | None,
    interval: float,
    clock: Clock,
    netif_root: str | os.PathLike[str] = "/",
    vendor: str | None = None,
    ip_json: IpJson | None = None,
) -> ConnectivityObjects:
    """Add /4/0 (and /7/0 when the catalog has object 7) to ``tree``; start them with ``start()``.

    ``interface`` names the WWAN (or other) interface whose addresses, routes
    and counters are reported; ``vendor`` overrides quirk detection
    (``quectel``, ``simcom``, ``ublox``, ``telit``, ``generic``; ValueError
    otherwise); ``ip_json`` replaces ``ip -j addr`` (tests, other roots).
    ValueError when /4/0 or /7/0 already exists or ``interval`` is not positive.
    """
    if vendor:
        quirks_for_vendor(vendor)  # validate early
    catalog = tree.catalog
    monitoring_def = catalog.get(MONITORING_OID)
    if monitoring_def is None:
        raise ValueError("object 4 (Connectivity Monitoring) is not in the catalog")
    netif = NetInterface(interface, netif_root, ip_json=ip_json) if interface else None
    monitoring = ObjectInstance(monitoring_def, 0)
    statistics_def = catalog.get(STATISTICS_OID)
    statistics = (
        StatisticsInstance(statistics_def, clock=clock, counters=netif.counters if netif else None)
        if statistics_def is not None
        else None
    )
    objects = ConnectivityObjects(
        monitoring, statistics, channel=channel, netif=netif, interval=interval, clock=clock, vendor=vendor
    )
    for oid in (MONITORING_OID, STATISTICS_OID):
        if tree.has_object(oid) and tree.object(oid).instances.get(0) is not None:
            raise ValueError(f"/{oid}/0 already exists")
    tree.add_instance(monitoring)
    if statistics is not None:
        tree.add_instance(statistics)
    return objects
