"""Security (/0) and Server (/1) instances and the server accounts built from them.

Factory bootstrap: each ``[[server]]`` table becomes one Security instance
and one Server instance with the same iid, ``[bootstrap]`` the
Bootstrap-Server's Security instance. A bootstrap writes the same objects.
Either way the daemon builds its accounts from the tree:
:func:`server_config_from_instances` turns a /0 + /1 pair into a
:class:`ServerConfig`. :class:`ServerAccount` is the live view the
registration engine reads before each request, so a server's Write to
/1/x/1 (lifetime) or /1/x/7 (binding) takes effect at once. Likewise
:func:`psk_credentials` reads the PSK identity and key from /0 at each DTLS
handshake, wherever they were written from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from lwm2md.config import BootstrapConfig, ServerConfig
from lwm2md.engine.registration import RegistrationParams
from lwm2md.errors import BadRequest
from lwm2md.model.catalog import Catalog
from lwm2md.model.types import ResourceData
from lwm2md.objects.tree import ObjectInstance, ObjectTree
from lwm2md.transport.dtls import PskCredentials

SECURITY_OID = 0
SECURITY_MODE_PSK = 0
SECURITY_MODE_NOSEC = 3
SECURITY_MODES = {0: "pre-shared key", 1: "raw public key", 2: "certificate", 3: "NoSec",
                  4: "certificate with EST"}  # fmt: skip
BINDING_LETTERS = frozenset("UQSNT")


def _set_defined(instance: ObjectInstance, values: dict[int, ResourceData]) -> None:
    """Store the values whose resources the instance's definition has."""
    for rid, data in values.items():
        if instance.definition.resource(rid) is not None:
            instance.set(rid, data)


def build_security_instance(catalog: Catalog, iid: int, server: ServerConfig) -> ObjectInstance:
    """The /0 instance for ``server`` (never reachable by DM servers)."""
    definition = catalog.get(0)
    assert definition is not None
    inst = ObjectInstance(definition, iid)
    psk = server.security == "psk"
    _set_defined(inst, {
        0: server.uri,
        1: False,
        2: SECURITY_MODE_PSK if psk else SECURITY_MODE_NOSEC,
        3: (server.psk_identity or "").encode() if psk else b"",
        4: b"",
        5: (server.psk_key or b"") if psk else b"",
        10: server.short_id,
        **({9: server.sms_number} if server.sms_number else {}),
    })
    return inst


def build_bootstrap_security_instance(
    catalog: Catalog, iid: int, bootstrap: BootstrapConfig
) -> ObjectInstance:
    """The /0 instance of the Bootstrap-Server account (/0/x/1 true, no Short Server ID)."""
    inst = build_security_instance(catalog, iid, bootstrap.server)
    inst.set(1, True)
    inst.remove(10)
    _set_defined(inst, {11: bootstrap.hold_off, 12: bootstrap.account_timeout})
    return inst


def _present(instance: ObjectInstance, rid: int) -> ResourceData | None:
    try:
        return instance.read(rid) if instance.has(rid) else None
    except Exception:
        return None


def short_server_id(instance: ObjectInstance) -> int | None:
    """/1/x/0 of a Server instance (or /0/x/10 of a Security instance); None when unset."""
    value = _present(instance, 10 if instance.oid == SECURITY_OID else 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def security_instance(tree: ObjectTree, ssid: int) -> ObjectInstance | None:
    """The /0 instance of server ``ssid``: not a bootstrap server, Short Server ID (/0/x/10) ``ssid``."""
    for instance in tree.instances(SECURITY_OID):
        if _present(instance, 1) is not True and _present(instance, 10) == ssid:
            return instance
    return None


def security_mode(instance: ObjectInstance) -> int:
    """/0/x/2, the security mode (NoSec when absent)."""
    mode = _present(instance, 2)
    return mode if isinstance(mode, int) and not isinstance(mode, bool) else SECURITY_MODE_NOSEC


def bootstrap_security_instance(tree: ObjectTree) -> ObjectInstance | None:
    """The Bootstrap-Server account's /0 instance (/0/x/1 true), lowest iid first."""
    return next((i for i in tree.instances(SECURITY_OID) if _present(i, 1) is True), None)


def psk_credentials(tree: ObjectTree, ssid: int | None) -> PskCredentials:
    """PSK identity (/0/x/3) and key (/0/x/5) of server ``ssid`` (None: the Bootstrap-Server), read now.

    LookupError when there is no Security instance for ``ssid``; ValueError
    when it is not in PSK mode or identity or key are unusable. Messages
    never include the key.
    """
    instance = bootstrap_security_instance(tree) if ssid is None else security_instance(tree, ssid)
    if instance is None:
        raise LookupError(f"no Security (/0) instance for server {'bootstrap' if ssid is None else ssid}")
    mode = security_mode(instance)
    if mode != SECURITY_MODE_PSK:
        name = SECURITY_MODES.get(mode, "unknown")
        raise ValueError(f"{instance.path} security mode is {mode} ({name}), not pre-shared key")
    identity, key = _present(instance, 3), _present(instance, 5)
    if not isinstance(identity, bytes) or not identity:
        raise ValueError(f"{instance.path}/3 (PSK identity) is empty")
    if not isinstance(key, bytes) or not key:
        raise ValueError(f"{instance.path}/5 (PSK key) is empty")
    try:
        return PskCredentials(identity, key)
    except ValueError as exc:
        raise ValueError(f"{instance.path}: {exc}") from None


def _check_lifetime(data: ResourceData) -> None:
    if isinstance(data, bool) or not isinstance(data, int) or data <= 0:
        raise BadRequest("lifetime must be a positive number of seconds")


def _check_binding(data: ResourceData) -> None:
    if not isinstance(data, str) or not data or not set(data) <= BINDING_LETTERS:
        raise BadRequest("binding must be letters from U, Q, S, N, T")


def _check_period(data: ResourceData) -> None:
    if isinstance(data, bool) or not isinstance(data, int) or data < 0:
        raise BadRequest("a period must be a non-negative number of seconds")


SsidAction = Callable[[int], Awaitable[None] | None]


def attach_server_handlers(
    inst: ObjectInstance, *, update_trigger: SsidAction, disable: SsidAction | None = None
) -> None:
    """Value checks and Execute handlers of a /1 instance, wherever it came from.

    Executing /1/x/8 calls ``update_trigger(ssid)``, /1/x/4 ``disable(ssid)``,
    with the ssid read from /1/x/0 at the time of the Execute.
    """

    def ssid() -> int:
        value = short_server_id(inst)
        if value is None:
            raise BadRequest(f"{inst.path} has no Short Server ID")
        return value

    inst.handle(1, write=_check_lifetime)
    inst.handle(2, write=_check_period)
    inst.handle(3, write=_check_period)
    inst.handle(7, write=_check_binding)
    inst.handle(8, execute=lambda _args: update_trigger(ssid()))
    if disable is not None and inst.definition.resource(4) is not None:
        inst.handle(4, execute=lambda _args: disable(ssid()))


def build_server_instance(
    catalog: Catalog,
    iid: int,
    server: ServerConfig,
    *,
    update_trigger: SsidAction,
    disable: SsidAction | None = None,
) -> ObjectInstance:
    """The /1 instance for ``server``, with :func:`attach_server_handlers`."""
    definition = catalog.get(1)
    assert definition is not None
    inst = ObjectInstance(definition, iid)
    _set_defined(inst, {
        0: server.short_id,
        1: server.lifetime,
        2: server.default_pmin,
        3: server.default_pmax,
        5: server.disable_timeout,
        6: server.notification_storing,
        7: server.binding,
        13: server.registration_priority if server.registration_priority is not None else 0,
        14: server.initial_registration_delay,
        15: server.registration_failure_block,
        16: server.bootstrap_on_registration_failure,
        17: server.communication_retry_count,
        18: server.communication_retry_timer,
        19: server.sequence_delay_timer,
        20: server.sequence_retry_count,
        21: server.trigger,
    })
    if server.registration_priority is None:
        inst.remove(13)
    attach_server_handlers(inst, update_trigger=update_trigger, disable=disable)
    return inst


_SERVER_RESOURCE_FIELDS: dict[int, str] = {
    1: "lifetime", 2: "default_pmin", 3: "default_pmax", 5: "disable_timeout",
    6: "notification_storing", 7: "binding", 13: "registration_priority",
    14: "initial_registration_delay", 15: "registration_failure_block",
    16: "bootstrap_on_registration_failure", 17: "communication_retry_count",
    18: "communication_retry_timer", 19: "sequence_delay_timer", 20: "sequence_retry_count",
    21: "trigger",
}  # fmt: skip
"""/1 resources mirrored into the derived ServerConfig (the instance stays the live truth)."""


def server_config_from_instances(
    security: ObjectInstance, server: ObjectInstance, template: ServerConfig | None = None
) -> ServerConfig:
    """The account settings a /0 + /1 pair describes, as a ServerConfig.

    URI, security mode, PSK and SMS number come from /0; the /1 values
    replace the template's (a ``[[server]]`` table with the same short ID, for
    the settings LwM2M has no resource for: awake window, protocol version,
    content format). ValueError when /0 has no usable URI or /1 no ssid.
    """
    ssid = short_server_id(server)
    uri = _present(security, 0)
    if ssid is None or not isinstance(uri, str):
        raise ValueError(f"{server.path} / {security.path} name no server")
    psk = security_mode(security) == SECURITY_MODE_PSK
    identity, key = _present(security, 3), _present(security, 5)
    sms = _present(security, 9)
    values: dict[str, object] = {
        "uri": uri,
        "short_id": ssid,
        "security": "psk" if psk else "nosec",
        "psk_identity": identity.decode(errors="replace") if psk and isinstance(identity, bytes) else None,
        "psk_key": key if psk and isinstance(key, bytes) else None,
        "psk_key_file": None,
        "sms_number": sms if isinstance(sms, str) and sms else None,
    }
    for rid, name in _SERVER_RESOURCE_FIELDS.items():
        data = _present(server, rid)
        if data is not None and not isinstance(data, dict):
            values[name] = data
    if template is None or template.short_id != ssid:
        return ServerConfig(**values)  # type: ignore[arg-type]
    return replace(template, **values)  # type: ignore[arg-type]


@dataclass
class ServerAccount:
    """One server account: its config, its /1 instance and the endpoint name."""

    config: ServerConfig
    server: ObjectInstance
    endpoint: str
    own_number: Callable[[], str | None] = lambda: None
    """This client's MSISDN (config or AT+CNUM), sent as ``sms=`` for bindings with S."""

    @property
    def ssid(self) -> int:
        return self.config.short_id

    def _int(self, rid: int, default: int) -> int:
        try:
            value = self.server.read(rid)
        except Exception:
            return default
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def default_periods(self) -> tuple[int, int]:
        """(default pmin, default pmax) from /1/x/2 and /1/x/3."""
        return self._int(2, 0), self._int(3, 0)

    def params(self) -> RegistrationParams:
        """Registration parameters as the /1 instance says now."""
        binding_value = self.server.read(7) if self.server.has(7) else self.config.binding
        binding = binding_value if isinstance(binding_value, str) else self.config.binding
        return RegistrationParams(
            endpoint=self.endpoint,
            lifetime=self._int(1, self.config.lifetime),
            binding=binding,
            lwm2m_version=self.config.lwm2m_version,
            queue_mode="Q" in binding,
            retry_count=self._int(17, self.config.communication_retry_count),
            retry_timer=float(self._int(18, self.config.communication_retry_timer)),
            sequence_delay=float(self._int(19, self.config.sequence_delay_timer)),
            sequence_retry_count=self._int(20, self.config.sequence_retry_count),
            initial_delay=float(self._int(14, self.config.initial_registration_delay)),
            sms_number=self.own_number() if "S" in binding else None,
        )

    def disable_timeout(self) -> int:
        """/1/x/5 Disable Timeout in seconds (default 86400)."""
        return self._int(5, self.config.disable_timeout)

    def priority(self) -> int | None:
        """/1/x/13 Registration Priority Order (lower registers first), None when unset."""
        if not self.server.has(13):
            return None
        value = self._int(13, -1)
        return value if value >= 0 else None

    def failure_blocks(self) -> bool:
        """/1/x/15 Registration Failure Block: a failure here stops lower-priority servers."""
        try:
            value = self.server.read(15)
        except Exception:
            return self.config.registration_failure_block
        return value is True

    def bootstrap_on_failure(self) -> bool:
        """/1/x/16 Bootstrap on Registration Failure (default true): bootstrap when registering fails."""
        value = _present(self.server, 16)
        return value if isinstance(value, bool) else self.config.bootstrap_on_registration_failure
