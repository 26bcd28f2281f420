"""The gateway's hardware in the object tree: sensors, GPIO pins and the cellular modem.

:class:`Hardware` builds, starts, rebuilds (on reload) and releases what the
``[[sensor]]``, ``[[gpio]]`` and ``[modem]`` tables describe. A table whose
hardware is missing is disabled with one log line naming it; the rest of
the gateway keeps working. Under ``simulate`` every driver runs on its
fake (simulated I2C bus, gpiozero's mock pins, the fake AT modem).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from lwm2md.config import Config, SensorConfig
from lwm2md.drivers.base import DriverError, Sensor
from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.gpio import make_pin_factory
from lwm2md.drivers.modem.at import AtChannel
from lwm2md.drivers.registry import create_sensor
from lwm2md.engine.clock import Clock
from lwm2md.objects.connectivity import ConnectivityObjects, build_connectivity_objects
from lwm2md.objects.digital import DigitalInputInstance, DigitalOutputInstance, build_gpio_instance
from lwm2md.objects.sampling import RunBlocking, SensorSampler, build_sensor_instances
from lwm2md.objects.tree import ObjectTree

LOG = logging.getLogger(__name__)

FIRST_SAMPLE_TIMEOUT = 2.0
MODEM_OIDS = (4, 7)

SensorFactory = Callable[[SensorConfig, bool], Sensor]


def default_sensor_factory(config: SensorConfig, simulate: bool) -> Sensor:
    """The registry's driver for a ``[[sensor]]`` table (its simulator with ``simulate``)."""
    return create_sensor(config.driver, config.options, simulate=simulate)


class Hardware:
    """Samplers, pins and the modem of one configuration, in ``tree``."""

    def __init__(
        self,
        tree: ObjectTree,
        clock: Clock,
        *,
        simulate: bool = False,
        sensor_factory: SensorFactory | None = None,
        run_blocking: RunBlocking = asyncio.to_thread,
    ) -> None:
        self.tree = tree
        self.clock = clock
        self.simulate = simulate
        self.samplers: list[SensorSampler] = []
        self.gpios: list[DigitalInputInstance | DigitalOutputInstance] = []
        self.modem_channel: AtChannel | None = None
        self.connectivity: ConnectivityObjects | None = None
        self.fake_modem: FakeModem | None = None
        self._sensor_factory = sensor_factory or default_sensor_factory
        self._run_blocking = run_blocking

    # -- building ---------------------------------------------------------------

    def build(self, config: Config) -> None:
        """Instances for every table of ``config`` (nothing runs until :meth:`start`)."""
        self.build_sensors(config)
        self.build_gpios(config)
        self.build_modem(config)

    def build_sensors(self, config: Config) -> None:
        for index, sensor_cfg in enumerate(config.sensors):
            try:
                sensor = self._sensor_factory(sensor_cfg, self.simulate)
            except (DriverError, ValueError, OSError) as exc:
                # One table's hardware missing must not take the gateway down.
                LOG.error(
                    "%s: sensor[%d] (driver %s) disabled: %s", config.source, index, sensor_cfg.driver, exc
                )
                continue
            instances = build_sensor_instances(self.tree, sensor, sensor_cfg.objects, sensor_cfg.instances)
            self.samplers.append(
                SensorSampler(sensor, instances, sensor_cfg.interval, run_blocking=self._run_blocking)
            )

    def build_gpios(self, config: Config) -> None:
        """One instance per ``[[gpio]]`` table; a pin that cannot be opened answers 5.00 alone."""
        if not config.gpios:
            return
        factory_name = "mock" if self.simulate else config.platform.gpio_pin_factory
        try:
            factory = make_pin_factory(factory_name)
        except (DriverError, ValueError) as exc:
            LOG.error("%s: GPIO pin factory %r unavailable, [[gpio]] tables disabled: %s",
                      config.source, factory_name or "default", exc)  # fmt: skip
            return
        for gpio in config.gpios:
            self.gpios.append(build_gpio_instance(
                self.tree, kind=gpio.kind, pin=gpio.pin, iid=gpio.instance, pin_factory=factory,
                pull_up=gpio.pull_up, active_high=gpio.active_high, debounce_ms=gpio.debounce_ms,
                edge=gpio.edge, initial=gpio.initial, application_type=gpio.application_type,
                clock=self.clock,
            ))  # fmt: skip

    def build_modem(self, config: Config) -> None:
        """/4 and /7 from the ``[modem]`` table (a fake modem under simulate)."""
        modem = config.modem
        if modem is None:
            return
        opener = None
        if self.simulate:
            self.fake_modem = FakeModem(modem.vendor or "quectel")
            opener = self.fake_modem.open_stream
        try:
            self.modem_channel = AtChannel(
                modem.port, baudrate=modem.baudrate, clock=self.clock, opener=opener
            )
        except ValueError as exc:
            LOG.error("%s: [modem] disabled: %s", config.source, exc)
            return
        self.connectivity = build_connectivity_objects(
            self.tree, self.modem_channel, interface=modem.interface, interval=modem.interval,
            clock=self.clock, vendor=modem.vendor,
        )  # fmt: skip

    # -- running ----------------------------------------------------------------

    async def start(self) -> None:
        """Take a first sample of every sensor (bounded), start sampling, open the modem."""
        await self.first_samples()
        for sampler in self.samplers:
            sampler.start(self.clock)
        await self.start_modem()

    async def first_samples(self) -> None:
        """Read every sensor once before registering, so the first Read has a value.

        Bounded by FIRST_SAMPLE_TIMEOUT: a slow or absent chip only delays
        start-up that long (its instances answer 5.00 until a sample lands).
        """
        if not self.samplers:
            return
        first = asyncio.gather(*(sampler.sample_once(at=self.clock.wall()) for sampler in self.samplers))
        try:
            await asyncio.wait_for(first, FIRST_SAMPLE_TIMEOUT)
        except TimeoutError:
            LOG.warning("first sensor readings took longer than %.0f s; registering anyway",
                        FIRST_SAMPLE_TIMEOUT)  # fmt: skip

    async def start_modem(self) -> None:
        if self.modem_channel is not None:
            await self.modem_channel.open()
        if self.connectivity is not None:
            self.connectivity.start()

    async def stop_sampling(self) -> None:
        for sampler in self.samplers:
            await sampler.stop()

    async def stop(self) -> None:
        """Stop sampling, release the pins and close the modem (instances stay in the tree)."""
        await self.stop_sampling()
        for instance in self.gpios:
            instance.close()
        await self.close_modem()

    async def close_modem(self) -> None:
        """Stop polling the modem, take /4 and /7 out of the tree and close the AT channel."""
        if self.connectivity is not None:
            await self.connectivity.stop()
            for oid in MODEM_OIDS:
                if self.tree.has_object(oid) and 0 in self.tree.object(oid).instances:
                    self.tree.remove_instance(oid, 0)
            self.connectivity = None
        if self.modem_channel is not None:
            await self.modem_channel.close()
            self.modem_channel = None
        if self.fake_modem is not None:
            self.fake_modem.close()
            self.fake_modem = None

    # -- reload -------------------------------------------------------------------

    async def apply(self, old: Config, new: Config) -> list[str]:
        """Rebuild the sensor and GPIO tables that changed; returns what was applied, one line each.

        A changed ``[modem]`` is the caller's (the SMS binding rides on it):
        see :meth:`close_modem`, :meth:`build_modem` and :meth:`start_modem`.
        """
        changes: list[str] = []
        if new.sensors != old.sensors:
            for sampler in self.samplers:
                await sampler.stop()
                for instance in sampler.instances:
                    self.tree.remove_instance(instance.oid, instance.iid)
            self.samplers = []
            self.build_sensors(new)
            for sampler in self.samplers:
                sampler.start(self.clock)
            changes.append("[[sensor]] tables applied")
        if new.gpios != old.gpios or new.platform != old.platform:
            for pin in self.gpios:
                pin.close()
                self.tree.remove_instance(pin.oid, pin.iid)
            self.gpios = []
            self.build_gpios(new)
            changes.append("[[gpio]] tables applied")
        return changes
