"""Periodic sampling of a sensor into the IPSO instances it feeds.

One :class:`SensorSampler` owns one sensor (e.g. a BME280 feeding 3303,
3304 and 3315). It reads every ``interval`` seconds of the injected clock;
the blocking driver call runs through an injectable runner (a worker thread
by default, inline in tests). After a failed read the delay doubles per
consecutive failure up to ``max_backoff``, and drops back to ``interval``
after the first good read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from lwm2md.drivers.base import DriverError, Sensor, close_sensor
from lwm2md.engine.clock import Clock
from lwm2md.model.catalog import Catalog
from lwm2md.objects.ipso import IPSO_QUANTITY, SensorInstance
from lwm2md.objects.tree import ObjectTree

LOG = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_CEILING = 300.0
"""Longest retry delay in seconds unless the interval itself is longer."""
BACKOFF_FACTOR_CAP = 8
"""Retry delay never exceeds this many intervals."""


class RunBlocking(Protocol):
    """Runs a blocking call off the event loop (``asyncio.to_thread`` fits)."""

    def __call__(self, func: Callable[[], T], /) -> Awaitable[T]: ...


def default_max_backoff(interval: float) -> float:
    """``min(8 * interval, 300 s)``, but never shorter than ``interval``."""
    return max(interval, min(BACKOFF_FACTOR_CAP * interval, BACKOFF_CEILING))


class SensorSampler:
    """Samples ``sensor`` into ``instances``, each fed the value of its quantity's kind.

    ``interval`` must be positive; ``max_backoff`` defaults to
    :func:`default_max_backoff`. The sampler owns the sensor: :meth:`stop` closes it.
    """

    def __init__(
        self,
        sensor: Sensor,
        instances: Sequence[SensorInstance],
        interval: float,
        *,
        max_backoff: float | None = None,
        run_blocking: RunBlocking = asyncio.to_thread,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"sampling interval must be positive, not {interval!r}")
        self.sensor = sensor
        self.instances = list(instances)
        self.interval = float(interval)
        self.max_backoff = max(self.interval, max_backoff or default_max_backoff(self.interval))
        self._run_blocking = run_blocking
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def failures(self) -> int:
        """Consecutive failed reads so far (0 after a good read)."""
        return self._failures

    def next_delay(self) -> float:
        """Seconds until the next read given the consecutive failures so far."""
        if self._failures == 0:
            return self.interval
        return min(self.interval * (1 << min(self._failures, 32)), self.max_backoff)

    async def sample_once(self, at: float | None = None) -> bool:
        """Read the sensor once and feed every instance; True when the read succeeded.

        ``at`` is the Unix time stamped on changed values. Never raises except
        on cancellation: a failed read faults every instance, a missing or
        non-finite value faults only its instance.
        """
        try:
            values = await self._run_blocking(self.sensor.read)
        except Exception as exc:
            return self._read_failed(exc)
        self._feed(values, at)
        return True

    def sample_now(self, at: float | None = None) -> bool:
        """Like :meth:`sample_once` but reading in the calling thread (CLI use, no event loop)."""
        try:
            values = self.sensor.read()
        except Exception as exc:
            return self._read_failed(exc)
        self._feed(values, at)
        return True

    def _read_failed(self, exc: Exception) -> bool:
        """Record a failed read (a driver fault or a driver bug); always False."""
        if isinstance(exc, DriverError):
            self._failed(exc)
        else:
            self._failed_unexpectedly(exc)
        return False

    def _feed(self, values: Mapping[str, float], at: float | None) -> None:
        self._failures = 0
        batch = self.instances[0].batch() if self.instances else contextlib.nullcontext()
        with batch:  # one sample of a multi-quantity chip reaches listeners as one change
            for instance in self.instances:
                kind = instance.quantity.kind
                value = values.get(kind) if isinstance(values, Mapping) else None
                if value is None:
                    instance.fault(f"driver {self.sensor.name} returned no {kind} value")
                    continue
                try:
                    instance.update(value, at=at)
                except (TypeError, ValueError) as exc:
                    instance.fault(exc)

    def _failed_unexpectedly(self, exc: Exception) -> None:
        if self._failures == 0:
            LOG.exception("sensor %s: driver raised an unexpected error", self.sensor.name)
        self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        for instance in self.instances:
            instance.fault(exc)
        LOG.debug("sensor %s: read failed (%d in a row), next try in %.1f s",
                  self.sensor.name, self._failures, self.next_delay())  # fmt: skip

    def start(self, clock: Clock) -> None:
        """Begin sampling now and then on the clock's cadence; RuntimeError if already started."""
        if self._task is not None:
            raise RuntimeError(f"sampler for {self.sensor.name} already started")
        self._task = asyncio.get_running_loop().create_task(
            self._run(clock), name=f"sampler-{self.sensor.name}"
        )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop sampling (waiting for the task to end) and close the sensor; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._run_blocking(lambda: close_sensor(self.sensor))

    async def _run(self, clock: Clock) -> None:
        while True:
            started = clock.now()
            try:
                await self.sample_once(at=clock.wall())
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in an instance or listener must not end sampling
                LOG.exception("sensor %s: sampling failed", self.sensor.name)
            await clock.sleep(max(0.0, started + self.next_delay() - clock.now()))


def build_sensor_instances(
    tree: ObjectTree,
    sensor: Sensor,
    objects: Sequence[int],
    instances: Sequence[int] | None = None,
    *,
    catalog: Catalog | None = None,
) -> list[SensorInstance]:
    """Create one SensorInstance per object in ``objects`` and add them to ``tree``.

    ``instances`` gives the iids pairwise with ``objects``; without it each
    instance takes its object's lowest free iid. Entry ``i`` is fed the
    sensor's kind ``<kind><i>`` when it measures one (a multi-channel chip:
    ``objects = [3202, 3202]`` reads ``analog0`` and ``analog1``), else the
    plain kind of the object. Definitions come from ``catalog`` (default: the
    tree's). Everything is checked before the tree changes: ValueError for an
    empty or non-IPSO-sensor object, the same (object, kind) twice, an object
    missing from the catalog, a quantity the sensor does not measure, a
    length mismatch or an iid already in use.
    """
    catalog = catalog if catalog is not None else tree.catalog
    if not objects:
        raise ValueError(f"sensor {sensor.name}: no objects to feed")
    if instances is not None and len(instances) != len(objects):
        raise ValueError(f"sensor {sensor.name}: {len(instances)} instance ids for {len(objects)} objects")
    quantities = sensor.quantities()
    built: list[SensorInstance] = []
    fed: set[tuple[int, str]] = set()
    taken: dict[int, set[int]] = {}
    for index, oid in enumerate(objects):
        base = IPSO_QUANTITY.get(oid)
        if base is None:
            raise ValueError(f"sensor {sensor.name}: object {oid} is not an IPSO sensor object")
        kind = f"{base}{index}" if f"{base}{index}" in quantities else base
        if (oid, kind) in fed:
            raise ValueError(f"sensor {sensor.name}: objects {list(objects)} repeat an object")
        fed.add((oid, kind))
        definition = catalog.get(oid)
        if definition is None:
            raise ValueError(f"sensor {sensor.name}: object {oid} is not in the catalog")
        quantity = quantities.get(kind)
        if quantity is None:
            raise ValueError(
                f"sensor {sensor.name} measures {', '.join(sorted(quantities))}, not {kind} (object {oid})"
            )
        used = taken.setdefault(oid, set(tree.object(oid).instances if tree.has_object(oid) else ()))
        if instances is not None:
            iid = instances[index]
            if iid in used:
                raise ValueError(f"sensor {sensor.name}: /{oid}/{iid} already exists")
        else:
            iid = next(i for i in range(len(used) + 1) if i not in used)
        used.add(iid)
        built.append(SensorInstance(definition, iid, quantity))
    for instance in built:
        tree.add_instance(instance)
    return built
