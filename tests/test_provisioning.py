"""provisioned.json: what is stored, when it applies over the configuration, what is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path as FsPath
from typing import Any

import pytest

from lwm2md.app import Client
from lwm2md.codec import ContentFormat
from lwm2md.config import Config, parse_config
from lwm2md.engine.clock import FakeClock
from lwm2md.model.catalog import Catalog
from lwm2md.objects.server import build_bootstrap_security_instance, build_security_instance
from lwm2md.objects.tree import ObjectInstance, ObjectTree
from lwm2md.provisioning import (
    FILE_NAME,
    ProvisionedState,
    config_fingerprint,
    instances_from,
)
from lwm2md.testing import TestServer
from tests.integration.harness import EP, inline, make_config, run

CATALOG = Catalog.builtin()
KEY = bytes(range(16))


def config(tmp_path: FsPath, **server: Any) -> Config:
    table = {"uri": "coaps://lwm2m.example:5684", "short_id": 3, "psk_identity": "gw", "psk_key": KEY.hex(),
             **server}  # fmt: skip
    return parse_config({"state_dir": str(tmp_path), "server": [table],
                         "bootstrap": {"uri": "coap://bs.example"}}, "<test>")  # fmt: skip


def tree_with(cfg: Config) -> ObjectTree:
    tree = ObjectTree(CATALOG)
    tree.add_instance(build_security_instance(CATALOG, 0, cfg.servers[0]))
    assert cfg.bootstrap is not None
    tree.add_instance(build_bootstrap_security_instance(CATALOG, 1, cfg.bootstrap))
    definition = CATALOG.get(1)
    assert definition is not None
    tree.add_instance(ObjectInstance(definition, 0, {0: 3, 1: 600, 6: True, 7: "U"}))
    acl = CATALOG.get(2)
    assert acl is not None
    tree.add_instance(ObjectInstance(acl, 0, {0: 3303, 1: 0, 2: {3: 1, 0: 0}, 3: 3}))
    return tree


def test_round_trip_keeps_every_value_exactly_and_the_file_is_private(tmp_path: FsPath) -> None:
    cfg = config(tmp_path)
    store = ProvisionedState(str(tmp_path))
    store.save(tree_with(cfg), "bootstrap", None)
    assert stat.S_IMODE(os.stat(tmp_path / FILE_NAME).st_mode) == 0o600
    loaded = store.choose(CATALOG, cfg)
    assert loaded is not None and loaded.source == "bootstrap"
    assert loaded.objects[0][0][5] == KEY
    assert loaded.objects[0][1][1] is True, "the Bootstrap-Server account"
    assert loaded.objects[1][0][1] == 600
    assert loaded.objects[2][0][2] == {3: 1, 0: 0}
    assert {(i.oid, i.iid) for i in instances_from(CATALOG, loaded)} == {(0, 0), (0, 1), (1, 0), (2, 0)}


def test_server_changes_to_the_factory_config_apply_only_while_it_is_unchanged(tmp_path: FsPath) -> None:
    cfg = config(tmp_path)
    store = ProvisionedState(str(tmp_path))
    store.save(tree_with(cfg), "config", config_fingerprint(cfg))
    assert store.choose(CATALOG, cfg) is not None
    edited = config(tmp_path, lifetime=900)
    assert config_fingerprint(edited) != config_fingerprint(cfg)
    assert store.choose(CATALOG, edited) is None
    assert not (tmp_path / FILE_NAME).exists(), "the operator's edit wins; the old changes are gone"


def test_a_bootstrap_provisioning_wins_over_an_edited_configuration(tmp_path: FsPath) -> None:
    cfg = config(tmp_path)
    store = ProvisionedState(str(tmp_path))
    store.save(tree_with(cfg), "bootstrap", None)
    assert store.choose(CATALOG, config(tmp_path, lifetime=900)) is not None


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"version": 1, "content": {"source": "bootstrap", "objects": {"1": ', "corrupt"),
        ('{"version": 99, "content": {}}', "unknown state version"),
        ('{"version": 1, "content": {"source": "bootstrap", "objects": {"0": {}, "1": {}}}}',
         "no LwM2M Server account"),
        ('{"version": 1, "content": {"source": "bootstrap", "objects": {"3": {"0": {}}}}}',
         "not a provisioning object"),
        ('{"version": 1, "content": {"source": "bootstrap", "objects": {"1": {"0": {"1": "long"}}}}}',
         "unusable content"),
        ('{"version": 1, "content": {"source": "elsewhere", "objects": {}}}', "unknown source"),
        ('{"version": 1, "content": {"source": "bootstrap", "objects": {"0": {"0": {"5": "' + KEY.hex()
         + '"}}}}}', "/0/0/5 holds no valid Opaque value"),
    ],
)
def test_an_unusable_file_is_kept_aside_and_reported(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture, content: str, why: str
) -> None:
    (tmp_path / FILE_NAME).write_text(content)
    assert ProvisionedState(str(tmp_path)).choose(CATALOG, config(tmp_path)) is None
    assert not (tmp_path / FILE_NAME).exists()
    assert list(tmp_path.glob(f"{FILE_NAME}.bad-*"))
    assert why in caplog.text
    assert KEY.hex() not in caplog.text


def test_a_client_starts_from_the_stored_bootstrap_provisioning(tmp_path: FsPath) -> None:
    cfg = config(tmp_path)
    ProvisionedState(str(tmp_path)).save(tree_with(cfg), "bootstrap", None)
    other = parse_config({"state_dir": str(tmp_path), "server": [{"uri": "coap://other.example",
                                                                   "short_id": 9}]}, "<test>")  # fmt: skip
    client = Client(other, simulate=True, clock=FakeClock(), run_blocking=inline)
    assert set(client.accounts) == {3}, "the configuration's server 9 waits for reset-state"
    assert client.accounts[3].config.uri == "coaps://lwm2m.example:5684"
    assert client.accounts[3].params().lifetime == 600
    assert client.provisioning_source == "bootstrap"


def test_a_server_write_to_its_account_survives_a_restart(tmp_path: FsPath) -> None:
    async def scenario() -> None:
        state_dir = str(tmp_path)
        server = await TestServer.start("127.0.0.1", 0, log=lambda line: None, expiry_interval=None)
        try:
            client = Client(make_config(server.uri, state_dir=state_dir), simulate=True, clock=FakeClock(),
                            run_blocking=inline)  # fmt: skip
            await client.start()
            await server.wait_registered(EP)
            written = await server.write(EP, "/1/0/1", 777, fmt=ContentFormat.TEXT)
            assert written.code == "2.04"
            await server.wait_event("update", endpoint=EP)
            with open(os.path.join(state_dir, FILE_NAME)) as fh:
                stored = json.load(fh)["content"]
            assert stored["source"] == "config"
            assert stored["objects"]["1"]["0"]["1"] == 777
            await client.stop(deregister=False)

            again = Client(make_config(server.uri, state_dir=state_dir), simulate=True, clock=FakeClock(),
                           run_blocking=inline)  # fmt: skip
            assert again.accounts[1].params().lifetime == 777
            await again.start()
            update = await server.wait_event("update", endpoint=EP)
            assert update.registration is not None and update.registration.lifetime == 777
            await again.stop()
        finally:
            await server.stop()

    run(scenario())
