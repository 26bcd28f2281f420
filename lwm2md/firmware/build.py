"""Wiring /5 into a client: one call builds the instance, ``start``/``stop`` run it.

:func:`build_firmware` puts the Firmware Update instance (/5/0) into the
tree and returns it; the caller starts it once the endpoint serves
requests (:meth:`FirmwareUpdate.start`), hands
:meth:`FirmwareUpdate.block1_sink` to the CoAP endpoint so a pushed package
is streamed to disk, and stops it on shutdown (:meth:`FirmwareUpdate.stop`).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping

from lwm2md.engine.clock import Clock
from lwm2md.firmware.download import DEFAULT_PORTS, CredentialsForUri, Fetcher, default_fetchers
from lwm2md.firmware.object import FIRMWARE_OID, FirmwareUpdate
from lwm2md.firmware.settings import FirmwareConfig
from lwm2md.model.catalog import Catalog
from lwm2md.objects.server import SECURITY_MODE_PSK, security_mode
from lwm2md.objects.tree import ObjectTree
from lwm2md.transport.dtls import PskCredentials

SECURITY_OID = 0
LOG = logging.getLogger(__name__)


def build_firmware(
    tree: ObjectTree,
    catalog: Catalog,
    config: FirmwareConfig,
    state_dir: str | os.PathLike[str],
    clock: Clock,
    *,
    credentials_for_uri: CredentialsForUri | None = None,
    on_updated: Callable[[], None] | None = None,
    fetchers: Mapping[str, Fetcher] | None = None,
) -> FirmwareUpdate:
    """Build /5/0 from ``config`` and add it to ``tree``.

    ``credentials_for_uri(uri)`` gives the PSK for a coaps Package URI
    (default: :func:`security_psk_for_uri` over ``tree``); ``on_updated`` is
    called after a successful update (request a registration Update there).
    ``fetchers`` replaces the default per-scheme fetchers (tests).
    KeyError when the catalog has no object 5.
    """
    definition = catalog.get(FIRMWARE_OID)
    if definition is None:
        raise KeyError("object 5 (Firmware Update) is not in the catalog")
    credentials = credentials_for_uri or security_psk_for_uri(tree)
    chosen = fetchers if fetchers is not None else default_fetchers(
        credentials, config.download_timeout, config.ca_file
    )
    instance = FirmwareUpdate(definition, config, state_dir, clock, chosen, on_updated=on_updated)
    tree.add_instance(instance)
    return instance


def security_psk_for_uri(tree: ObjectTree) -> CredentialsForUri:
    """PSK of the Security (/0) instance whose server URI has the same host and port as a coaps URI.

    The returned callable gives None when no PSK-mode instance matches (or
    its identity/key are unusable); it never logs key material.
    """

    def lookup(uri: str) -> PskCredentials | None:
        wanted = _host_port(uri)
        if wanted is None:
            return None
        for instance in tree.instances(SECURITY_OID):
            if security_mode(instance) != SECURITY_MODE_PSK or not instance.has(0):
                continue
            server_uri = instance.read(0)
            if not isinstance(server_uri, str) or _host_port(server_uri) != wanted:
                continue
            identity = instance.read(3) if instance.has(3) else None
            key = instance.read(5) if instance.has(5) else None
            if isinstance(identity, bytes) and isinstance(key, bytes):
                try:
                    return PskCredentials(identity, key)
                except ValueError as exc:  # never quotes the key
                    LOG.warning("firmware: the PSK of %s cannot be used: %s", instance.path, exc)
                    return None
        return None

    return lookup


def _host_port(uri: str) -> tuple[str, int] | None:
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "coaps" or not parts.hostname:
        return None
    return parts.hostname.lower(), port or DEFAULT_PORTS["coaps"]
