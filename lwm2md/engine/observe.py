"""Observe / notify: when a server's observation produces a notification.

One :class:`Observation` per accepted Observe (or Observe-Composite)
request. The engine evaluates observations when values change, when
``pmax`` or ``epmax`` expire and when ``epmin``/``pmin`` hold-offs end, and
hands the records to the observation's ``emit`` callback (the transport
encodes and sends). Rules, per the effective attributes of each path:

- with gt/lt (single numeric value): notify when the value moved to the
  other side of a threshold (above gt / below lt) relative to the last
  notified value; with st: when it moved by at least st; with none of the
  three: on any change;
- never sooner than pmin after the previous notification (the pending change
  is sent when pmin ends, with the value current then);
- at the latest pmax after the previous notification, changed or not
  (pmax 0, or pmax below pmin, means no pmax);
- evaluations no more often than epmin and at least every epmax (epmax 0 or
  below epmin means none); pmax is never held back by epmin;
- an Observe-Composite uses the smallest pmin, pmax, epmin and epmax of its
  paths and notifies on any change of its records;
- when the observed object instance disappears, the observation ends with a
  4.04 notification; object-level and composite observations are
  re-evaluated when instances come or go.

``emit`` receives ``confirmable=True`` at least once every
``con_interval`` seconds (RFC 7641 asks for once a day). With an outbox set
(:meth:`ObserveEngine.set_outbox`, used by queue mode) every notification is
handed to the outbox instead, which decides when ``emit`` runs.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from lwm2md.engine.attributes import Attributes, AttributeStore
from lwm2md.engine.clock import Clock, TimerHandle
from lwm2md.engine.dm import DeviceManagement, numeric_value
from lwm2md.errors import Lwm2mError, NotFound
from lwm2md.model.path import Path
from lwm2md.model.types import Record

LOG = logging.getLogger(__name__)

DAY = 86400.0

Emit = Callable[["Observation", "list[Record] | Lwm2mError", bool], None]


@dataclass(eq=False)
class Observation:
    """One server's observation of one path (or several, for Observe-Composite)."""

    ssid: int
    paths: tuple[Path, ...]
    emit: Emit
    composite: bool = False
    ident: int = field(default_factory=itertools.count().__next__)
    last_notify: float = 0.0
    last_eval: float = 0.0
    last_con: float = 0.0
    last_records: list[Record] = field(default_factory=list)
    last_numeric: float | None = None
    pending: bool = False
    _timers: dict[str, TimerHandle] = field(default_factory=dict)

    def covers(self, changed: Path) -> bool:
        """True if a change at ``changed`` may alter what this observation reports."""
        return any(p.contains(changed) or changed.contains(p) for p in self.paths)


class _Periods(NamedTuple):
    pmin: float
    pmax: float | None
    epmin: float | None
    epmax: float | None


class ObserveEngine:
    """Schedules notifications for all observations of all servers.

    ``defaults(ssid)`` gives the server's default (pmin, pmax); pmax 0 means none.
    ``visible(ssid, records)`` keeps what that server may see (access control;
    default: everything).
    """

    def __init__(
        self,
        dm: DeviceManagement,
        attributes: AttributeStore,
        clock: Clock,
        defaults: Callable[[int], tuple[int, int]],
        con_interval: float = DAY,
    ) -> None:
        self.dm = dm
        self.attributes = attributes
        self.clock = clock
        self.defaults = defaults
        self.con_interval = con_interval
        self._observations: dict[int, Observation] = {}
        self._outbox: Emit | None = None
        self.visible: Callable[[int, list[Record]], list[Record]] = lambda _ssid, records: records
        dm.tree.on_value_change(self.value_changed)
        dm.tree.on_structure_change(self.structure_changed)

    # -- lifecycle ------------------------------------------------------------

    def read(self, obs: Observation) -> list[Record]:
        """Current records of the observed paths (raises Lwm2mError)."""
        records = self.dm.read_composite(obs.paths) if obs.composite else self.dm.read(obs.paths[0])
        return self.visible(obs.ssid, records)

    def start(self, obs: Observation, initial: list[Record]) -> None:
        """Track ``obs``, whose first response (carrying ``initial``) is being sent now."""
        now = self.clock.now()
        obs.last_notify = obs.last_eval = obs.last_con = now
        obs.last_records = list(initial)
        obs.last_numeric = numeric_value(initial)
        obs.pending = False
        self._observations[obs.ident] = obs
        self._arm_periodic(obs)

    def stop(self, obs: Observation) -> None:
        """Forget ``obs`` (cancelled by the server, by RST, or ended); no more emits."""
        self._observations.pop(obs.ident, None)
        for handle in obs._timers.values():
            handle.cancel()
        obs._timers.clear()

    def stop_server(self, ssid: int) -> None:
        """Forget every observation of server ``ssid``."""
        for obs in [o for o in self._observations.values() if o.ssid == ssid]:
            self.stop(obs)

    def is_active(self, obs: Observation) -> bool:
        """True while ``obs`` is tracked (not stopped)."""
        return self._observations.get(obs.ident) is obs

    def set_outbox(self, outbox: Emit | None) -> None:
        """Hand every notification to ``outbox`` instead of ``obs.emit`` (None: emit directly).

        The engine's bookkeeping (pmin, pmax, last value) treats a notification
        given to the outbox as sent; the outbox must call ``obs.emit`` itself.
        """
        self._outbox = outbox

    def observations(self, ssid: int | None = None) -> list[Observation]:
        """The active observations (of one server when ``ssid`` is given)."""
        return [o for o in self._observations.values() if ssid is None or o.ssid == ssid]

    # -- attributes -----------------------------------------------------------

    def effective(self, obs: Observation, path: Path) -> Attributes:
        """The attributes in force for ``obs``'s server at ``path``."""
        pmin, pmax = self.defaults(obs.ssid)
        return self.attributes.effective(obs.ssid, path, pmin, pmax)

    def _periods(self, obs: Observation) -> _Periods:
        all_attrs = [self.effective(obs, p) for p in obs.paths]
        pmin = float(min(a.pmin or 0 for a in all_attrs))
        pmaxes = [a.pmax for a in all_attrs if a.pmax]
        pmax = float(min(pmaxes)) if pmaxes else None
        if pmax is not None and pmax < pmin:
            pmax = None
        epmins = [a.epmin for a in all_attrs if a.epmin is not None]
        epmaxes = [a.epmax for a in all_attrs if a.epmax]
        epmin = float(min(epmins)) if epmins else None
        epmax = float(min(epmaxes)) if epmaxes else None
        if epmax is not None and epmin is not None and epmax < epmin:
            epmax = None
        return _Periods(pmin, pmax, epmin, epmax)

    def attributes_changed(self, ssid: int) -> None:
        """Re-arm timers after a Write-Attributes by ``ssid`` (a held change follows the new pmin)."""
        for obs in self.observations(ssid):
            if obs.pending:
                due = obs.last_notify + self._periods(obs).pmin
                self._schedule(obs, "pmin", due, functools.partial(self._flush_pending, obs))
            self._arm_periodic(obs)

    # -- triggers -------------------------------------------------------------

    def value_changed(self, path: Path) -> None:
        """Tree listener: evaluate every observation a change at ``path`` may affect."""
        for obs in list(self._observations.values()):
            if obs.covers(path):
                self._evaluate(obs, "change")

    def structure_changed(self) -> None:
        """Tree listener: end observations whose target is gone (4.04), re-evaluate object-level ones."""
        for obs in list(self._observations.values()):
            if obs.ident not in self._observations:
                continue
            if obs.composite:
                self._evaluate(obs, "change")
                continue
            path = obs.paths[0]
            try:
                if path.iid is not None:
                    assert path.oid is not None
                    self.dm.tree.instance(path.oid, path.iid)
                elif path.oid is not None:
                    self.dm.tree.object(path.oid)
            except NotFound as exc:
                self.stop(obs)
                self._emit(obs, exc, True)
                continue
            if path.iid is None:
                self._evaluate(obs, "change")

    def _evaluate(self, obs: Observation, reason: str) -> None:
        """Read and decide; ``reason`` "pmax" forces a notification."""
        if obs.ident not in self._observations:
            return
        now = self.clock.now()
        periods = self._periods(obs)
        forced = reason == "pmax"
        if not forced and periods.epmin is not None and now < obs.last_eval + periods.epmin:
            due = obs.last_eval + periods.epmin
            self._schedule(obs, "eval", due, lambda: self._evaluate(obs, "epmin"))
            return
        self._cancel(obs, "eval")
        obs.last_eval = now
        try:
            records = self.read(obs)
        except Lwm2mError as exc:
            LOG.debug("observe %s: evaluation failed (%s)", obs.paths[0], exc.dotted_code)
            self._arm_periodic(obs, failed=True)
            return
        if forced or self._condition_met(obs, records):
            if now >= obs.last_notify + periods.pmin:
                self._notify(obs, records)
                return
            obs.pending = True
            due = obs.last_notify + periods.pmin
            self._schedule(obs, "pmin", due, lambda: self._flush_pending(obs))
        self._arm_periodic(obs)

    def _condition_met(self, obs: Observation, records: list[Record]) -> bool:
        if obs.pending:
            return True
        if not obs.composite and obs.paths[0].level >= 3:
            attrs = self.effective(obs, obs.paths[0])
            value = numeric_value(records)
            if attrs.has_value_conditions() and value is not None:
                return _crosses(attrs, obs.last_numeric, value)
        return _values(records) != _values(obs.last_records)

    def _flush_pending(self, obs: Observation) -> None:
        """pmin ended with a change held back: notify with the value current now."""
        if obs.ident not in self._observations or not obs.pending:
            return
        obs.last_eval = self.clock.now()
        try:
            records = self.read(obs)
        except Lwm2mError as exc:
            LOG.debug("observe %s: read at pmin end failed (%s)", obs.paths[0], exc.dotted_code)
            self._arm_periodic(obs, failed=True)
            return
        self._notify(obs, records)

    def _notify(self, obs: Observation, records: list[Record]) -> None:
        now = self.clock.now()
        confirmable = now - obs.last_con >= self.con_interval
        if confirmable:
            obs.last_con = now
        obs.last_notify = now
        obs.pending = False
        obs.last_records = list(records)
        obs.last_numeric = numeric_value(records)
        self._cancel(obs, "pmin")
        self._arm_periodic(obs)
        self._emit(obs, records, confirmable)

    def _emit(self, obs: Observation, result: list[Record] | Lwm2mError, confirmable: bool) -> None:
        send = self._outbox if self._outbox is not None else obs.emit
        try:
            send(obs, result, confirmable)
        except Exception:
            LOG.exception("observe %s: sending the notification failed", obs.paths[0])

    # -- timers ---------------------------------------------------------------

    def _arm_periodic(self, obs: Observation, *, failed: bool = False) -> None:
        """(Re)schedule the pmax and epmax timers; after a failed read a due pmax waits a full period."""
        periods = self._periods(obs)
        if periods.pmax is not None:
            due = obs.last_notify + periods.pmax
            if failed and due <= self.clock.now():
                due = self.clock.now() + periods.pmax
            self._schedule(obs, "pmax", due, lambda: self._evaluate(obs, "pmax"))
        else:
            self._cancel(obs, "pmax")
        if periods.epmax is not None:
            due = obs.last_eval + periods.epmax
            self._schedule(obs, "epmax", due, lambda: self._evaluate(obs, "epmax"))
        else:
            self._cancel(obs, "epmax")

    def _schedule(self, obs: Observation, kind: str, when: float, callback: Callable[[], None]) -> None:
        self._cancel(obs, kind)
        obs._timers[kind] = self.clock.call_at(when, callback)

    def _cancel(self, obs: Observation, kind: str) -> None:
        handle = obs._timers.pop(kind, None)
        if handle is not None:
            handle.cancel()


def _values(records: Sequence[Record]) -> list[tuple[Path, object]]:
    return [(r.path, r.value) for r in records]


def _crosses(attrs: Attributes, previous: float | None, value: float) -> bool:
    """gt/lt/st rule for a numeric value against the last notified one."""
    if previous is None:
        return True
    if attrs.gt is not None and (previous > attrs.gt) != (value > attrs.gt):
        return True
    if attrs.lt is not None and (previous < attrs.lt) != (value < attrs.lt):
        return True
    return attrs.st is not None and abs(value - previous) >= attrs.st
