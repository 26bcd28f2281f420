"""Wiring: build the object tree from the config, bind the endpoint, run the servers.

:class:`Client` is the daemon's main job. ``start()`` returns once the
endpoint is bound and the registrations (or a bootstrap) are started (it
does not wait for the network); ``stop()`` De-registers from every server
and releases all.

Server accounts always come from the tree: the /0 + /1 instances, written
by the factory configuration or a bootstrap (``provisioning.py``);
:meth:`Client._sync_accounts` brings the registrations in line with them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Sequence

from lwm2md import __version__
from lwm2md.bootstrapping import BootstrapService
from lwm2md.codec import ContentFormat
from lwm2md.codec.linkformat import Link, format_links
from lwm2md.config import BootstrapConfig, Config, ServerConfig, parse_server_uri
from lwm2md.drivers.fake.modem import FakeModem
from lwm2md.drivers.modem.at import AtChannel
from lwm2md.drivers.modem.sms import SmsLink
from lwm2md.drivers.system.linux import read_host_facts
from lwm2md.engine.access import AccessControl
from lwm2md.engine.attributes import AttributeStore
from lwm2md.engine.bootstrap import bootstrap_account_timeout
from lwm2md.engine.clock import Clock, LoopClock
from lwm2md.engine.dm import DeviceManagement
from lwm2md.engine.notification_store import NOTIFICATIONS_DIR, NotificationStore
from lwm2md.engine.observe import DAY, ObserveEngine
from lwm2md.engine.queue import QueueController, max_transmit_wait
from lwm2md.engine.registration import CHANGED, Registration, Requester, State
from lwm2md.engine.requests import InboundRequest, Outcome, RequestDispatcher
from lwm2md.engine.send import Sender, encode_send, post_send
from lwm2md.errors import Lwm2mError, NotFound
from lwm2md.firmware.build import build_firmware
from lwm2md.firmware.object import FirmwareUpdate
from lwm2md.firmware.object import State as FirmwareState
from lwm2md.hardware import Hardware, SensorFactory
from lwm2md.logsetup import set_level
from lwm2md.model.catalog import Catalog
from lwm2md.model.path import MAX_ID, Path
from lwm2md.model.types import Record, ResourceData
from lwm2md.objects.connectivity import ConnectivityObjects
from lwm2md.objects.device import build_device_instance, run_command
from lwm2md.objects.digital import DigitalInputInstance, DigitalOutputInstance
from lwm2md.objects.sampling import RunBlocking, SensorSampler
from lwm2md.objects.server import (
    SECURITY_MODE_NOSEC,
    ServerAccount,
    attach_server_handlers,
    bootstrap_security_instance,
    build_bootstrap_security_instance,
    build_security_instance,
    build_server_instance,
    psk_credentials,
    security_instance,
    security_mode,
    server_config_from_instances,
    short_server_id,
)
from lwm2md.objects.tree import LwM2MObject, ObjectInstance, ObjectTree
from lwm2md.provisioning import (
    PROVISIONING_OIDS,
    ProvisionedState,
    Source,
    config_fingerprint,
    instances_from,
)
from lwm2md.state import RegistrationStore, StoredAttributes, StoredInstances, WrittenValues
from lwm2md.transport.coap import CoapEndpoint, resolve_peer
from lwm2md.transport.sms import SmsBinding

LOG = logging.getLogger(__name__)

FORMAT_NAMES = {
    "senml-cbor": ContentFormat.SENML_CBOR,
    "senml-json": ContentFormat.SENML_JSON,
    "tlv": ContentFormat.TLV,
    "lwm2m-cbor": ContentFormat.LWM2M_CBOR,
}
SECURITY_OID = 0
SERVER_OID = 1
ACCESS_CONTROL_OID = 2
BOOTSTRAP_SSID = MAX_ID
"""Peer-table key of the Bootstrap-Server (65535 is never a Short Server ID)."""
REGISTRATION_RIDS = frozenset({1, 7})  # Lifetime, Binding
DEFAULT_PERIOD_RIDS = frozenset({2, 3})  # Default Minimum / Maximum Period
STOP_TIMEOUT = 10.0
RESUME_MARGIN = 30.0  # a stored registration this close to expiry is registered afresh


def _needs_new_registration(before: ServerConfig, after: ServerConfig) -> bool:
    """True when the server's address, security or protocol version changed."""
    return (before.uri, before.security, before.psk_identity, before.psk_key, before.lwm2m_version) != (
        after.uri, after.security, after.psk_identity, after.psk_key, after.lwm2m_version
    )


class Client:
    """The LwM2M client for one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        simulate: bool = False,
        clock: Clock | None = None,
        catalog: Catalog | None = None,
        host_root: str = "/",
        sensor_factory: SensorFactory | None = None,
        run_blocking: RunBlocking = asyncio.to_thread,
    ) -> None:
        self.config = config
        self.simulate = simulate
        self.clock: Clock = clock or LoopClock()
        self.catalog = catalog or self._load_catalog(config.objects_dir)
        self.tree = ObjectTree(self.catalog)
        self.attributes = AttributeStore()
        self.dm = DeviceManagement(self.tree, self.attributes)
        self.accounts: dict[int, ServerAccount] = {}
        con_interval = 0.0 if config.endpoint.confirmable_notifications else DAY
        self.observe = ObserveEngine(
            self.dm, self.attributes, self.clock, self._default_periods, con_interval=con_interval
        )
        self.access = AccessControl(self.tree, lambda: self.provisioning_source == "config")
        self.dispatcher = RequestDispatcher(
            self.dm, self.observe, self._preferred_format,
            access=self.access, server_count=lambda: len(self.accounts),
        )  # fmt: skip
        self.endpoint = CoapEndpoint(
            self._route,
            (self.observe.start, self.observe.stop),
            self.dispatcher.encode,
            ack_timeout=config.endpoint.ack_timeout,
            max_retransmit=config.endpoint.max_retransmit,
        )
        self.registrations: dict[int, Registration] = {}
        self.hardware = Hardware(
            self.tree, self.clock, simulate=simulate, sensor_factory=sensor_factory, run_blocking=run_blocking
        )
        self.sender: Sender | None = None
        self.host_root = host_root
        self.on_status: Callable[[str], None] | None = None
        self.on_restart: Callable[[], None] | None = None
        """Called when the daemon must restart itself (after a Factory Reset)."""
        self._ordering: asyncio.Task[None] | None = None
        self._settled: dict[int, asyncio.Event] = {}
        self.sms_binding: SmsBinding | None = None
        self.queue: QueueController | None = None
        self._disabling: dict[int, asyncio.Task[None]] = {}
        self._sms_link: SmsLink | None = None
        self._started = False
        self._own_number: Callable[[], str | None] = lambda: None
        self._data_oids: list[int] = []
        self.firmware: FirmwareUpdate | None = None
        self.provisioned = ProvisionedState(config.state_dir)
        self.provisioning_source: Source = "config"
        self._provisioning_dirty = False
        self._syncing: asyncio.Task[None] | None = None
        self._purging: asyncio.Task[None] | None = None
        bootstrap_cfg = config.bootstrap
        self.bootstrap = BootstrapService(
            self.tree, self.clock,
            endpoint_name=config.device.endpoint,
            connect=self._connect_bootstrap,
            registered=lambda: any(r.state is State.REGISTERED for r in self.registrations.values()),
            on_finished=self._bootstrap_finished,
            make_instance=self._make_instance,
            preferred_format=ContentFormat.SENML_CBOR,
            session_timeout=bootstrap_cfg.session_timeout if bootstrap_cfg else 300.0,
            pack=bootstrap_cfg.pack if bootstrap_cfg else False,
        )  # fmt: skip
        self._build_tree()
        self.written = WrittenValues(self.dm, config.state_dir, skip=self._data_oids)
        self.stored_registrations = RegistrationStore(config.state_dir)
        self.stored_instances = StoredInstances(self.tree, self._data_oids, config.state_dir)
        if self.stored_instances.restore():
            LOG.info("restored server-created instances from %s", self.stored_instances.file.path)
        self.stored_attributes = StoredAttributes(self.attributes, config.state_dir)
        if self.stored_attributes.restore():
            LOG.info("restored notification attributes from %s", self.stored_attributes.file.path)
        restored = self.written.restore()
        if restored:
            LOG.info("restored %d server-written value(s) from %s", restored, self.written.file.path)
        self.tree.on_structure_change(self._structure_changed)
        self.tree.on_value_change(self._value_changed)

    # -- building ---------------------------------------------------------------

    @staticmethod
    def _load_catalog(objects_dir: str) -> Catalog:
        """Built-in definitions plus DDF files from ``objects_dir`` (problems are logged)."""
        catalog = Catalog.builtin()
        if os.path.isdir(objects_dir):
            catalog.load_directory(objects_dir)
        return catalog

    def _build_tree(self) -> None:
        self.tree.ensure_object(SECURITY_OID)
        self.tree.ensure_object(SERVER_OID)
        if self.catalog.get(ACCESS_CONTROL_OID) is not None:
            self.tree.ensure_object(ACCESS_CONTROL_OID)
        self._provision()
        for server, inst in self._tree_accounts().values():
            self._add_account(server, inst)
        self._build_device()
        self.hardware.build(self.config)
        self._build_firmware()
        self._build_data_objects()
        self._preserve_built_objects()

    def _preserve_built_objects(self) -> None:
        """Bootstrap-Delete leaves what the daemon builds from hardware and the configuration alone.

        A Bootstrap-Delete of ``/`` would otherwise take the gateway's sensors,
        GPIOs and modem objects away until the next restart; only /0-/2 and
        data objects (those servers may create) are the Bootstrap-Server's to delete.
        """
        self.bootstrap.handler.preserve_objects = frozenset(
            obj.oid for obj in self.tree.objects()
            if obj.oid not in PROVISIONING_OIDS and obj.factory is None
        )  # fmt: skip

    def _build_firmware(self) -> None:
        """/5 Firmware Update from ``[firmware]`` (absent without the table); pushes stream to disk."""
        settings = self.config.firmware
        if settings is None or not settings.enabled:
            return
        self.firmware = build_firmware(
            self.tree, self.catalog, settings, self.config.state_dir, self.clock,
            on_updated=self._firmware_updated,
        )  # fmt: skip
        self.endpoint.block1_sink = self.firmware.block1_sink

    def _firmware_updated(self) -> None:
        """A new firmware is installed: every server hears of it through a registration Update."""
        self.request_update()

    def _build_data_objects(self) -> None:
        """Objects from ``objects_dir`` that nothing else builds: plain data servers Create and Delete.

        Only multiple-instance objects; their instances hold what servers write.
        """
        builtin = set(Catalog.builtin().oids())
        for oid in self.catalog.oids():
            definition = self.catalog.get(oid)
            if oid in builtin or definition is None or not definition.multiple or self.tree.has_object(oid):
                continue
            factory = functools.partial(ObjectInstance, definition)
            self.tree.add_object(LwM2MObject(definition, factory=factory, deletable=True))
            self._data_oids.append(oid)

    # -- provisioning (/0, /1, /2) and accounts ------------------------------------

    def _provision(self) -> None:
        """Fill /0-/2 from the stored provisioning when it applies, else from the configuration."""
        stored = self.provisioned.choose(self.catalog, self.config)
        if stored is None:
            self._factory_provision()
            return
        for inst in instances_from(self.catalog, stored):
            if inst.oid == SERVER_OID:
                self._attach_server(inst)
            self.tree.add_instance(inst)
        self.provisioning_source = stored.source
        servers = len(stored.objects.get(SERVER_OID, {}))
        if stored.source == "bootstrap":
            LOG.info("%d server account(s) provisioned by bootstrap, from %s; the configuration's "
                     "[[server]] tables apply after 'lwm2md reset-state'",
                     servers, self.provisioned.file.path)  # fmt: skip
        else:
            LOG.info("%d server account(s) from the configuration with server changes from %s",
                     servers, self.provisioned.file.path)  # fmt: skip

    def _factory_provision(self) -> None:
        """/0 and /1 instances for the ``[[server]]`` tables and ``[bootstrap]`` (factory bootstrap)."""
        self.provisioning_source = "config"
        for server in self.config.servers:
            self._add_server_instances(server)
        if self.config.bootstrap is not None:
            self._add_bootstrap_account(self.config.bootstrap)

    def _attach_server(self, inst: ObjectInstance) -> ObjectInstance:
        attach_server_handlers(inst, update_trigger=self.request_update, disable=self._disable)
        return inst

    def _make_instance(self, oid: int, iid: int) -> ObjectInstance:
        """Instances a Bootstrap-Write creates: bare, with the handlers for /1."""
        definition = self.catalog.get(oid)
        if definition is None:
            raise NotFound(f"/{oid} is not a known object")
        inst = ObjectInstance(definition, iid)
        return self._attach_server(inst) if oid == SERVER_OID else inst

    def _config_server(self, ssid: int) -> ServerConfig | None:
        return next((s for s in self.config.servers if s.short_id == ssid), None)

    def _tree_accounts(self) -> dict[int, tuple[ServerConfig, ObjectInstance]]:
        """Every usable server account in /0 + /1: {ssid: (its settings, its /1 instance)}."""
        out: dict[int, tuple[ServerConfig, ObjectInstance]] = {}
        for inst in self.tree.instances(SERVER_OID):
            ssid = short_server_id(inst)
            security = security_instance(self.tree, ssid) if ssid is not None else None
            if ssid is None or security is None or ssid in out:
                LOG.error("%s: no Short Server ID, no matching /0 instance or a duplicate; not used",
                          inst.path)  # fmt: skip
                continue
            try:
                out[ssid] = (server_config_from_instances(security, inst, self._config_server(ssid)), inst)
            except ValueError as exc:
                LOG.error("server %d: unusable account (%s); not used", ssid, exc)
        return out

    def _add_account(self, server: ServerConfig, inst: ObjectInstance) -> ServerAccount:
        account = ServerAccount(server, inst, self.config.device.endpoint, own_number=self._own_number)
        self.accounts[server.short_id] = account
        return account

    def _forget_account(self, ssid: int) -> None:
        """Drop what the client keeps for server ``ssid`` (not its /0 and /1 instances)."""
        self.accounts.pop(ssid, None)
        self.observe.stop_server(ssid)
        self.attributes.forget_server(ssid)
        self.endpoint.peers.remove(ssid)
        self.stored_registrations.forget(ssid)

    async def _sync_accounts(self) -> list[str]:
        """Bring accounts and registrations in line with /0 + /1; returns what changed, one line each.

        An account whose URI, security or protocol changed registers afresh;
        one whose other settings changed keeps its registration (the /1
        values are read live); removed accounts De-register; new ones
        Register (in priority order when they have one).
        """
        wanted = self._tree_accounts()
        changes: list[str] = []
        for ssid in sorted(self.accounts.keys() - wanted.keys()):
            await self._drop_server(ssid)
            changes.append(f"server {ssid} removed")
        added: list[int] = []
        for ssid, (server, inst) in sorted(wanted.items()):
            account = self.accounts.get(ssid)
            if account is not None and not _needs_new_registration(account.config, server):
                account.config, account.server = server, inst
                registration = self.registrations.get(ssid)
                if registration is not None and registration.state is State.FAILED and self._started:
                    registration.start()
                continue
            if account is not None:
                await self._drop_server(ssid)
            self._add_account(server, inst)
            added.append(ssid)
            changes.append(f"server {ssid} {'re-registered' if account is not None else 'added'}")
        if self._started and added:
            await self._start_accounts(added)
        return changes

    def _bootstrap_finished(self) -> None:
        """A Finish was accepted: store the provisioning, then follow it (after the 2.04 goes out)."""
        self.provisioning_source = "bootstrap"
        self.provisioned.save(self.tree, "bootstrap", None)
        self._provisioning_dirty = False
        loop = asyncio.get_running_loop()
        self._syncing = loop.create_task(self._after_bootstrap(), name="accounts")
        timeout = bootstrap_account_timeout(self.tree)
        if timeout is not None:
            if self._purging is not None:
                self._purging.cancel()
            self._purging = loop.create_task(self._purge_bootstrap_account(timeout), name="bootstrap account")

    async def _purge_bootstrap_account(self, timeout: float) -> None:
        """Bootstrap-Server Account Timeout (/0/x/12): the account goes ``timeout`` s after a bootstrap."""
        await self.clock.sleep(timeout)
        account = bootstrap_security_instance(self.tree)
        if account is None or self.bootstrap.session_open:
            return
        self.tree.remove_instance(SECURITY_OID, account.iid)
        self.endpoint.peers.remove(BOOTSTRAP_SSID)
        LOG.info("bootstrap: Bootstrap-Server account removed (account timeout of %.0f s)", timeout)

    async def _after_bootstrap(self) -> None:
        await asyncio.sleep(0)
        changes = await self._sync_accounts()
        LOG.info("bootstrap applied: %s", "; ".join(changes) or "server accounts unchanged")
        self._status_changed()

    def _provisioning_changed(self) -> None:
        """/0-/2 changed outside a bootstrap session: store them (once per loop iteration)."""
        if not self._started or self.bootstrap.session_open or self._provisioning_dirty:
            return
        self._provisioning_dirty = True
        asyncio.get_running_loop().call_soon(self._save_provisioning)

    def _save_provisioning(self) -> None:
        if not self._provisioning_dirty:
            return
        self._provisioning_dirty = False
        fingerprint = config_fingerprint(self.config) if self.provisioning_source == "config" else None
        self.provisioned.save(self.tree, self.provisioning_source, fingerprint)

    async def _connect_bootstrap(self) -> Requester | None:
        """Map the Bootstrap-Server's address (/0 account) and return a requester to it."""
        inst = bootstrap_security_instance(self.tree)
        uri = inst.read(0) if inst is not None and inst.has(0) else None
        if not isinstance(uri, str):
            LOG.error("bootstrap: /0 has no Bootstrap-Server URI")
            return None
        try:
            _scheme, host, port = parse_server_uri(uri)
            peer = await resolve_peer(host, port)
        except Exception as exc:
            LOG.warning("bootstrap: cannot reach %s: %s", uri, exc)
            return None
        return self._server_requester(BOOTSTRAP_SSID, peer)

    async def _route(self, req: InboundRequest) -> Outcome:
        """The endpoint's handler: the Bootstrap-Server's requests to bootstrap, the rest to DM."""
        if req.ssid == BOOTSTRAP_SSID:
            return await self.bootstrap.serve(req)
        if req.uri_path:
            raise NotFound(f"/{'/'.join(req.uri_path)} is not an LwM2M path")
        return await self.dispatcher.handle(req)

    @property
    def samplers(self) -> list[SensorSampler]:
        """The ``[[sensor]]`` samplers (see :class:`~lwm2md.hardware.Hardware`)."""
        return self.hardware.samplers

    @property
    def gpios(self) -> list[DigitalInputInstance | DigitalOutputInstance]:
        return self.hardware.gpios

    @property
    def modem_channel(self) -> AtChannel | None:
        return self.hardware.modem_channel

    @property
    def connectivity(self) -> ConnectivityObjects | None:
        return self.hardware.connectivity

    @property
    def fake_modem(self) -> FakeModem | None:
        return self.hardware.fake_modem

    async def _close_sms(self) -> None:
        """Stop the SMS binding and its link (before the modem closes)."""
        if self.sms_binding is not None:
            self.sms_binding.close()
            self.sms_binding = None
        if self._sms_link is not None:
            await self._sms_link.close()
            self._sms_link = None

    def _build_device(self) -> None:
        dev = self.config.device
        facts = read_host_facts(self.host_root)
        definition = self.catalog.get(3)
        assert definition is not None
        firmware = f"{facts.os_release or 'Linux'}; lwm2md {__version__}"
        letters = {letter for s in self.config.servers for letter in s.binding if letter in "US"}
        bindings = "".join(sorted(letters)) or "U"
        inst = build_device_instance(
            definition,
            facts,
            manufacturer=dev.manufacturer,
            model=dev.model,
            serial=dev.serial,
            hardware_version=dev.hardware_version,
            firmware_version=firmware,
            reboot=run_command(dev.reboot_command, "reboot"),
            factory_reset=self._factory_reset,
            binding_modes=bindings,
            clock=self.clock,
            timezone=dev.timezone,
            utc_offset=dev.utc_offset,
        )
        self.tree.add_instance(inst)

    # -- server-facing helpers ------------------------------------------------------

    def _default_periods(self, ssid: int) -> tuple[int, int]:
        account = self.accounts.get(ssid)
        return account.default_periods() if account else (0, 0)

    def _preferred_format(self, ssid: int) -> int:
        account = self.accounts.get(ssid)
        if account is None:
            return ContentFormat.SENML_CBOR
        if account.config.lwm2m_version == "1.0":
            return ContentFormat.TLV
        return FORMAT_NAMES.get(account.config.content_format, ContentFormat.SENML_CBOR)

    def registration_links(self, ssid: int) -> str:
        """The Register/Update payload: root link, then objects and instances (no /0)."""
        links = [Link("/", {"rt": "oma.lwm2m", "ct": str(self._preferred_format(ssid))})]
        for obj in self.tree.objects():
            if obj.oid == SECURITY_OID:
                continue
            attrs: dict[str, str | None] = {}
            if obj.definition.version != "1.0":
                attrs["ver"] = obj.definition.version
            iids = [
                iid for iid in sorted(obj.instances)
                if self.access.visible_to(ssid, Path(obj.oid, iid), server_count=len(self.accounts), op=None)
            ]  # fmt: skip
            if not iids or attrs:
                links.append(Link(f"/{obj.oid}", attrs))
            for iid in iids:
                links.append(Link(f"/{obj.oid}/{iid}", {}))
        return format_links(links)

    async def _factory_reset(self) -> None:
        """/3/0/5 Factory Reset: run the configured command, forget all stored state, restart.

        The daemon then De-registers and exits with EXIT_RESTART so the service
        manager starts it afresh from the configuration file (``on_restart``
        tells the runner; without one nothing more happens).
        """
        await run_command(self.config.device.factory_reset_command, "factory reset")()
        self.written.forget()
        self.stored_registrations.clear()
        self.provisioned.forget()
        self.stored_attributes.forget()
        self.stored_instances.forget()
        if self.queue is not None:
            self.queue.store.clear_all()
        LOG.warning("factory reset: stored state removed, restarting from the configuration")
        if self.on_restart is not None:
            self.on_restart()

    def _disable(self, ssid: int) -> None:
        """/1/x/4 Disable: De-register now, stay away for /1/x/5 seconds, then Register again.

        Runs after the Execute has been answered. Meanwhile the server's
        observations keep producing notifications, which are held (/1/x/6)
        and sent as a Send after the Register; the observations then end.
        """
        if ssid in self._disabling:
            return
        self._disabling[ssid] = asyncio.get_running_loop().create_task(self._disabled_period(ssid))

    async def _disabled_period(self, ssid: int) -> None:
        try:
            await asyncio.sleep(0)  # let the 2.04 for the Execute go out first
            registration = self.registrations.get(ssid)
            account = self.accounts.get(ssid)
            if registration is None or account is None:
                return
            await registration.stop(deregister=True)
            timeout = account.disable_timeout()
            LOG.info("server %d: disabled for %d s", ssid, timeout)
            self._status_changed()
            await self.clock.sleep(timeout)  # its observations run on: what they produce is held
            self.observe.stop_server(ssid)  # the server forgot them; the held ones go out as a Send
            if self._started and self.registrations.get(ssid) is registration:
                LOG.info("server %d: disable timeout over, registering again", ssid)
                registration.start()
        finally:
            self._disabling.pop(ssid, None)

    def request_update(self, ssid: int | None = None) -> None:
        """Ask one server (or all) for a registration Update."""
        for reg_ssid, reg in self.registrations.items():
            if ssid is None or ssid == reg_ssid:
                reg.request_update()

    def _value_changed(self, path: Path) -> None:
        """React to a server account's /1 resources: lifetime or binding -> Update,
        default periods -> re-arm that server's observation timers."""
        if not self._started or self.bootstrap.session_open:
            return
        if path.oid in PROVISIONING_OIDS:
            self._provisioning_changed()
        if path.oid in self.stored_instances.oids:
            self.stored_instances.save()
        if path.oid != SERVER_OID:
            return
        for ssid, account in self.accounts.items():
            if account.server.iid != path.iid:
                continue
            if path.rid in REGISTRATION_RIDS:
                self.request_update(ssid)
            elif path.rid in DEFAULT_PERIOD_RIDS:
                self.observe.attributes_changed(ssid)

    def _structure_changed(self) -> None:
        if self._started and not self.bootstrap.session_open:
            self._provisioning_changed()
            if self.stored_instances.oids:
                self.stored_instances.save()
            self.request_update()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Bind the endpoint and start registrations, sampling and Send."""
        self.written.attach()
        self.stored_attributes.attach()
        ep_cfg = self.config.endpoint
        await self.endpoint.start(ep_cfg.bind_address, ep_cfg.local_port)
        LOG.info("CoAP endpoint bound on port %d", self.endpoint.local_port)
        if self.firmware is not None:
            await self.firmware.start()
        self._start_queue_mode()
        await self.hardware.start()
        await self._start_sms_binding()
        self._started = True
        self.bootstrap.start()
        if self.bootstrap.available():
            await self._connect_bootstrap()  # its requests are served from now on
        if self.accounts:
            await self._start_accounts(list(self.accounts))
        elif self.bootstrap.available():
            self.bootstrap.request("no LwM2M server account")
        else:
            LOG.error("no LwM2M server account and no Bootstrap-Server: nothing to register with")
        self._start_sender()

    async def _start_accounts(self, ssids: list[int]) -> None:
        """Start the registrations of ``ssids``: those with /1/x/13 in priority order, the rest at once."""
        accounts = [self.accounts[ssid] for ssid in ssids if ssid in self.accounts]
        ordered = sorted(
            (a for a in accounts if a.priority() is not None), key=lambda a: (a.priority(), a.ssid)
        )
        for account in accounts:
            await self._start_registration(account.config, run=account not in ordered)
        if ordered:
            if self._ordering is not None and not self._ordering.done():
                self._ordering.cancel()
            self._ordering = asyncio.get_running_loop().create_task(
                self._register_in_priority_order([a.ssid for a in ordered]), name="registration order"
            )

    async def _start_sms_binding(self, numbers: dict[int, str] | None = None) -> None:
        """CoAP over SMS on the modem's AT channel (``transport/sms.py``, ``docs/sms.md``).

        Servers' SMS numbers become peers: their requests by SMS are served
        and answered by SMS. ``numbers`` ({short ID: MSISDN}) defaults to the
        ``sms_number`` of each ``[[server]]`` when ``[modem] sms`` is true
        (keys not in the config schema yet: nothing happens without them).
        """

        modem = self.config.modem
        if numbers is None:
            if modem is None or not modem.sms:
                return
            numbers = {a.ssid: a.config.sms_number for a in self.accounts.values() if a.config.sms_number}
        if self.hardware.modem_channel is None or not numbers:
            LOG.warning("SMS binding not started: %s", "no modem" if self.hardware.modem_channel is None
                        else "no server has an SMS number")  # fmt: skip
            return
        link = SmsLink(self.hardware.modem_channel, clock=self.clock)
        await link.start()
        own = (modem.own_number if modem is not None else None) or link.own_number
        binding = SmsBinding(self.endpoint, link, own_number=own)

        def own_number() -> str | None:
            return own

        self._own_number = own_number
        for account in self.accounts.values():
            account.own_number = own_number
        for ssid, number in numbers.items():
            binding.add_server(ssid, number)
        self.sms_binding = binding
        self._sms_link = link
        LOG.info("SMS binding on %s: server number(s) %s", own or "an unknown own number",
                 ", ".join(binding.numbers.values()))  # fmt: skip

    def _start_sender(self) -> None:
        send_cfg = self.config.send
        if send_cfg.enabled and send_cfg.paths:
            self.sender = Sender(
                self.dm, self.clock, [Path.parse(p) for p in send_cfg.paths], send_cfg.interval,
                lambda: self._registered_requester(send_cfg.short_id),
            )
            self.sender.start()

    async def _register_in_priority_order(self, ssids: list[int]) -> None:
        """Start the servers with /1/x/13 one after the other, lowest value first.

        The next starts once the previous has registered or given up; a
        failure at a server with /1/x/15 Registration Failure Block set stops
        the rest (they are logged, not started).
        """
        for position, ssid in enumerate(ssids):
            registration = self.registrations.get(ssid)
            account = self.accounts.get(ssid)
            if registration is None or account is None:
                continue
            settled = self._settled.setdefault(ssid, asyncio.Event())
            registration.start()
            await settled.wait()
            if registration.state is State.FAILED and account.failure_blocks():
                blocked = ", ".join(str(s) for s in ssids[position + 1 :]) or "none"
                LOG.error("server %d: registration failed; it blocks lower-priority servers (%s)",
                          ssid, blocked)
                return

    async def _start_registration(self, server: ServerConfig, *, run: bool = True) -> None:
        account = self.accounts[server.short_id]
        if server.scheme == "sms":
            if self.sms_binding is None or server.short_id not in self.sms_binding.numbers:
                LOG.error("server %d: %s needs the SMS binding ([modem] sms = true); not registering",
                          server.short_id, server.uri)  # fmt: skip
                return
            requester: Requester = self.sms_binding.requester(server.short_id)
        else:
            try:
                peer = await resolve_peer(server.host, server.port)
            except Exception as exc:
                LOG.warning("server %d: %s; will retry on registration", server.short_id, exc)
                peer = (server.host, server.port)
            requester = self._server_requester(server.short_id, peer)
        registration = Registration(
            server.short_id,
            requester,
            self.clock,
            account.params,
            functools.partial(self.registration_links, server.short_id),
            on_state=self._registration_state_changed,
        )
        self.registrations[server.short_id] = registration
        stored = self.stored_registrations.usable(
            server.short_id, server.uri, self.config.device.endpoint, self.clock.wall(), RESUME_MARGIN
        )
        if stored is not None:
            LOG.info("server %d: resuming the registration at /%s", server.short_id, "/".join(stored))
            registration.resume(stored)
        self._attach_queue(server.short_id, registration)
        if run:
            registration.start()

    def _server_requester(self, ssid: int, peer: tuple[str, int]) -> Requester:
        """Map ``peer`` to server ``ssid`` and return the requester its /0 security mode calls for.

        NoSec: plain CoAP from the shared socket. Otherwise DTLS, with the PSK
        identity and key read from /0 before each handshake (a mode other
        than PSK fails each attempt with a log line naming it).
        """
        bootstrap = ssid == BOOTSTRAP_SSID
        security = bootstrap_security_instance(self.tree) if bootstrap else security_instance(self.tree, ssid)
        if security is None or security_mode(security) == SECURITY_MODE_NOSEC:
            self.endpoint.peers.set(ssid, peer)
            return self.endpoint.requester(peer[0], peer[1])
        self.endpoint.peers.set(ssid, peer, scheme="coaps")
        credentials = functools.partial(psk_credentials, self.tree, None if bootstrap else ssid)
        return self.endpoint.secure_requester(ssid, peer[0], peer[1], credentials)

    def _registered_requester(self, ssid: int | None) -> Requester | None:
        for reg_ssid, reg in self.registrations.items():
            if (ssid is None or ssid == reg_ssid) and reg.state is State.REGISTERED:
                return reg.requester
        return None

    # -- queue mode -------------------------------------------------------------

    def _start_queue_mode(self) -> None:
        """Put server connections under the queue-mode controller (inert for servers without Q).

        It also holds notifications while a server is unreachable or disabled,
        on disk under ``<state_dir>/notifications`` (``[storing]``).
        """
        store = NotificationStore(os.path.join(self.config.state_dir, NOTIFICATIONS_DIR),
                                  self.config.storing.max_notifications)  # fmt: skip
        for ssid in store.ssids():
            if ssid not in self.accounts:
                dropped = store.clear(ssid)
                LOG.info("server %d: %d stored notification(s) dropped: no such server", ssid, dropped)
        self.queue = QueueController(
            self.clock, self.endpoint, self.observe, store=store, send_orphans=self._send_stored
        )
        self.endpoint.on_serving = self.queue.serving
        self.endpoint.on_server_removed = self.queue.detach

    async def _send_stored(self, ssid: int, records: list[Record]) -> bool:
        """Held notifications whose observation is gone, as one Send (POST /dp, SenML CBOR).

        False (they are dropped): a 1.0 server, records that cannot be
        encoded, an error answer. TransportError (no answer) propagates: they
        stay for the next registration.
        """
        registration, account = self.registrations.get(ssid), self.accounts.get(ssid)
        if registration is None or account is None or account.params().lwm2m_version == "1.0":
            return False
        try:
            payload = encode_send(records, self.dm.resolve)
        except Lwm2mError as exc:
            LOG.warning("server %d: stored notifications cannot be encoded (%s)", ssid, exc.dotted_code)
            return False
        response = await post_send(registration.requester, payload)
        if response.code != CHANGED:
            LOG.warning("server %d: Send of stored notifications answered %s", ssid, response.dotted)
            return False
        return True

    def _attach_queue(self, ssid: int, registration: Registration) -> None:
        """Route server ``ssid``'s requests and notifications through queue mode.

        Binding (/1/x/7), Notification Storing (/1/x/6) and ``awake_window``
        are read live; the default window is MAX_TRANSMIT_WAIT of ``[coap]``.
        """
        queue = self.queue
        if queue is None:
            return
        account = self.accounts[ssid]
        coap = self.config.endpoint
        default_window = max_transmit_wait(coap.ack_timeout, coap.max_retransmit)

        def window() -> float:
            configured = account.config.awake_window
            return default_window if configured is None else configured

        def storing() -> bool:
            value = account.server.read(6) if account.server.has(6) else account.config.notification_storing
            return value if isinstance(value, bool) else account.config.notification_storing

        queue.attach(ssid, registration, queue_mode=lambda: account.params().queue_mode,
                     window=window, storing=storing)  # fmt: skip

    def wake(self, ssid: int) -> None:
        """Wake-up trigger for server ``ssid`` (for the SMS binding): an Update now, then what was held.

        A no-op for a server that is not registered (its next Register is the wake-up).
        """
        if self.queue is not None:
            self.queue.wake(ssid, "wake-up trigger")
        else:
            self.request_update(ssid)

    def _stop_queue_mode(self) -> None:
        """Drop the queue-mode controller (held notifications are lost) and its endpoint hooks."""
        queue = self.queue
        if queue is not None:
            queue.close()
            self.endpoint.on_serving = None
            self.endpoint.on_server_removed = None
            self.queue = None

    def _registration_state_changed(self, registration: Registration) -> None:
        if registration.state in (State.REGISTERED, State.FAILED):
            self._settled.setdefault(registration.ssid, asyncio.Event()).set()
        self._remember_registration(registration)
        self._status_changed()
        if registration.state is State.FAILED and self._started:
            self._bootstrap_if_all_failed()

    def _bootstrap_if_all_failed(self) -> None:
        """Every registration failed: bootstrap, when /1/x/16 of a failed server asks for it (default)."""
        if not self.registrations or any(r.state is not State.FAILED for r in self.registrations.values()):
            return
        wanted = [a for a in self.accounts.values() if a.bootstrap_on_failure()]
        if wanted and self.bootstrap.available():
            self.bootstrap.request("every server registration failed")

    def _remember_registration(self, registration: Registration) -> None:
        """Keep where and until when ``registration`` holds, for a restart (forget it otherwise)."""
        account = self.accounts.get(registration.ssid)
        remaining = registration.expires_in()
        if account is None or remaining is None or not registration.location:
            self.stored_registrations.forget(registration.ssid)
            return
        self.stored_registrations.remember(
            registration.ssid, account.config.uri, self.config.device.endpoint,
            registration.location, self.clock.wall() + remaining,
        )  # fmt: skip

    def _status_changed(self) -> None:
        if self.on_status is not None:
            self.on_status(self.status())

    def status(self) -> str:
        """One line describing every server connection ("..., asleep" in queue mode)."""
        parts = []
        for ssid, reg in self.registrations.items():
            asleep = self.queue is not None and self.queue.asleep(ssid)
            parts.append(reg.describe() + (", asleep" if asleep else ""))
        return "; ".join(parts) or "no servers"

    async def stop(self, timeout: float = STOP_TIMEOUT, *, deregister: bool = True) -> None:
        """De-register from every server (within ``timeout`` s in all) and release everything.

        ``deregister=False`` leaves the registrations in place at the servers
        (what a crash or power cut does; the next start resumes them).
        """
        self._started = False
        if deregister and self.firmware is not None and self.firmware.state is FirmwareState.UPDATING:
            # An installer restarting lwm2md (a self-update): the next start resumes the
            # registrations and reports the outcome with a registration Update.
            LOG.info("a firmware update is being installed: the registrations stay for the restart")
            deregister = False
        await self.bootstrap.stop()
        for task in (self._syncing, self._purging):
            if task is not None:
                task.cancel()
        if self._ordering is not None:
            self._ordering.cancel()
        for task in self._disabling.values():
            task.cancel()
        if self.sender is not None:
            await self.sender.stop()
        await self.hardware.stop_sampling()
        deregistrations = asyncio.gather(
            *(reg.stop(deregister=deregister) for reg in self.registrations.values())
        )
        try:
            await asyncio.wait_for(deregistrations, timeout)
        except TimeoutError:
            LOG.warning("de-registration did not finish within %.0f s; stopping anyway", timeout)
        for ssid in list(self.accounts):
            self.observe.stop_server(ssid)
        await self._close_sms()
        await self.hardware.stop()
        self._stop_queue_mode()
        if self.firmware is not None:
            await self.firmware.stop()
        await self.endpoint.close()

    # -- reload -----------------------------------------------------------------

    async def apply_config(self, new: Config) -> list[str]:
        """Apply a re-read configuration while running; returns what changed, one line each.

        Servers whose table did not change keep their registration untouched;
        a changed lifetime or binding is written to /1 (which sends an
        Update); a changed URI or security re-registers that server; added
        and removed servers Register and De-register. Changed [device],
        [[sensor]] or [send] sections are rebuilt. [coap] changes need a restart.
        """
        old = self.config
        changes: list[str] = []
        self.config = new
        if new.logging != old.logging:
            set_level(new.logging.level)
            changes.append(f"log level {new.logging.level}")
        if new.endpoint != old.endpoint:
            changes.append("[coap] changed: takes effect at the next restart")
        if new.storing != old.storing and self.queue is not None:
            self.queue.store.limit = new.storing.max_notifications
            changes.append("[storing] applied")
        if new.firmware != old.firmware:
            changes.append("[firmware] changed: takes effect at the next restart")
        changes.extend(await self._apply_servers(old, new))
        if new.device != old.device:
            self.tree.remove_instance(3, 0)
            self._build_device()
            changes.append("[device] applied")
        changes.extend(await self.hardware.apply(old, new))
        if new.modem != old.modem:
            await self._close_sms()
            await self.hardware.close_modem()
            self.hardware.build_modem(new)
            await self.hardware.start_modem()
            await self._start_sms_binding()
            changes.append("[modem] applied")
        if new.send != old.send:
            if self.sender is not None:
                await self.sender.stop()
                self.sender = None
            self._start_sender()
            changes.append("[send] applied")
        self._status_changed()
        return changes

    async def _apply_servers(self, old: Config, new: Config) -> list[str]:
        """Apply changed ``[[server]]``/``[bootstrap]`` tables to /0 + /1, then follow them.

        Only while the factory configuration is in force: a bootstrap's
        provisioning wins until ``lwm2md reset-state``. Unchanged servers keep
        their instances (and what servers wrote to them); a changed lifetime
        or binding is written to /1 (which sends an Update).
        """
        if config_fingerprint(old) == config_fingerprint(new) and new.device.endpoint == old.device.endpoint:
            return []
        if self.provisioning_source == "bootstrap":
            LOG.warning("[[server]]/[bootstrap] changes not applied: the accounts provisioned by bootstrap "
                        "are in force until 'lwm2md reset-state'")  # fmt: skip
            return ["server changes ignored (provisioned by bootstrap)"]
        old_servers = {s.short_id: s for s in old.servers}
        new_servers = {s.short_id: s for s in new.servers}
        with self.tree.batch():
            for ssid, before in old_servers.items():
                kept = new_servers.get(ssid)
                if kept is not None and not _needs_new_registration(before, kept):
                    account = self.accounts.get(ssid)
                    if account is not None and kept != before:
                        self._retune_server(account, before, kept)
                    continue
                self._remove_server_instances(ssid)
            for ssid, after in new_servers.items():
                previous = old_servers.get(ssid)
                if previous is None or _needs_new_registration(previous, after):
                    self._add_server_instances(after)
            if old.bootstrap != new.bootstrap:
                bs_account = bootstrap_security_instance(self.tree)
                if bs_account is not None:
                    self.tree.remove_instance(SECURITY_OID, bs_account.iid)
                if new.bootstrap is not None:
                    self._add_bootstrap_account(new.bootstrap)
        if new.device.endpoint != old.device.endpoint:
            for ssid in list(self.accounts):
                await self._drop_server(ssid)
        changes = await self._sync_accounts()
        for ssid in sorted(new_servers.keys() & old_servers.keys()):
            if new_servers[ssid] != old_servers[ssid] and f"server {ssid} re-registered" not in changes:
                changes.append(f"server {ssid} updated")
        self._save_provisioning_if_stored()
        return changes

    def _remove_server_instances(self, ssid: int) -> None:
        security = security_instance(self.tree, ssid)
        if security is not None:
            self.tree.remove_instance(SECURITY_OID, security.iid)
        for inst in self.tree.instances(SERVER_OID):
            if short_server_id(inst) == ssid:
                self.tree.remove_instance(SERVER_OID, inst.iid)

    def _add_server_instances(self, server: ServerConfig) -> None:
        """/0 and /1 instances (same iid, the lowest free in both) for one ``[[server]]`` table."""
        iid = max(self.tree.object(SECURITY_OID).free_iid(), self.tree.object(SERVER_OID).free_iid())
        self.tree.add_instance(build_security_instance(self.catalog, iid, server))
        server_instance = build_server_instance(
            self.catalog, iid, server, update_trigger=self.request_update, disable=self._disable
        )
        self.tree.add_instance(server_instance)

    def _add_bootstrap_account(self, bootstrap: BootstrapConfig) -> None:
        iid = self.tree.object(SECURITY_OID).free_iid()
        self.tree.add_instance(build_bootstrap_security_instance(self.catalog, iid, bootstrap))

    def _save_provisioning_if_stored(self) -> None:
        """After a reload changed the factory accounts: re-store them if a file holds server changes."""
        if self.provisioned.file.path.exists():
            self._provisioning_dirty = True
            self._save_provisioning()

    async def _drop_server(self, ssid: int) -> None:
        registration = self.registrations.pop(ssid, None)
        if registration is not None:
            try:
                await asyncio.wait_for(registration.stop(deregister=True), STOP_TIMEOUT)
            except TimeoutError:
                LOG.warning("server %d: de-registration timed out", ssid)
        self._forget_account(ssid)

    def _retune_server(self, account: ServerAccount, before: ServerConfig, after: ServerConfig) -> None:
        """Write changed registration settings into the /1 instance (Update follows by itself)."""
        values: dict[int, ResourceData] = {
            1: after.lifetime, 2: after.default_pmin, 3: after.default_pmax, 5: after.disable_timeout,
            6: after.notification_storing, 7: after.binding, 17: after.communication_retry_count,
            18: after.communication_retry_timer, 19: after.sequence_delay_timer,
            20: after.sequence_retry_count,
        }  # fmt: skip
        for rid, value in values.items():
            if account.server.has(rid) and account.server.read(rid) != value:
                account.server.set(rid, value)

    # -- inspection -------------------------------------------------------------

    def snapshot(self) -> list[tuple[LwM2MObject, list[Record]]]:
        """Every object with its readable values (for ``lwm2md objects``); /0 shows no secrets."""
        out: list[tuple[LwM2MObject, list[Record]]] = []
        for obj in self.tree.objects():
            if obj.oid == SECURITY_OID:
                out.append((obj, []))
                continue
            try:
                records = self.dm.read(Path(obj.oid))
            except Exception as exc:  # a faulty sensor must not hide the rest
                LOG.warning("cannot read /%d: %s", obj.oid, exc)
                records = []
            out.append((obj, records))
        return out


def sample_once(samplers: Sequence[SensorSampler]) -> None:
    """Take one sample from every sensor synchronously (for ``lwm2md objects``)."""
    for sampler in samplers:
        sampler.sample_now()
