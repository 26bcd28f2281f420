"""Pull (/5/0/1) over coaps (DTLS-PSK) and https, against real loopback servers.

coaps: an aiocoap server context with only the tinydtls server transport
(:func:`tests.integration.test_dtls_e2e.dtls_server_context`) serves a blob in
Block2 blocks with an ETag. The client takes the PSK the way the daemon does:
from the Security (/0) instance whose server URI has the Package URI's host and
port (``build.security_psk_for_uri``), or from a ``credentials_for_uri``
callback given to ``build_firmware``. A wrong key gets no answer from the
server (tinydtls drops the Finished it cannot decrypt), so those tests use a
short ``download_timeout``.

https: the HTTP range server of ``support.py`` with its listening socket
wrapped in TLS, using a self-signed certificate for IP 127.0.0.1 made by the
``openssl`` CLI; the client trusts it through ``FirmwareConfig.ca_file``.

Every wait is bounded; nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import aiocoap
import pytest
from aiocoap import Message, resource
from aiocoap.transports.tinydtls_server import _AddressDTLS

from lwm2md.config import ServerConfig
from lwm2md.engine.clock import FakeClock
from lwm2md.firmware.build import build_firmware
from lwm2md.firmware.object import PACKAGE_URI, PROTOCOLS, FirmwareUpdate, Result, State
from lwm2md.firmware.settings import FirmwareConfig
from lwm2md.model.catalog import Catalog
from lwm2md.objects.server import build_security_instance
from lwm2md.objects.tree import ObjectTree
from lwm2md.transport.dtls import PskCredentials
from tests.firmware.support import (
    BlobResource,
    RangeServer,
    Rig,
    blob,
    free_udp_port,
    make_rig,
    sha256_hex,
    until,
)
from tests.integration.test_dtls_e2e import dtls_server_context

SCRIPT = {"script": ("/bin/sh", "{package}")}
IDENTITY = b"fw-gw-identity"
# printable keys: a leak through repr() or decode() shows up as plainly as one through .hex()
KEY = b"fw-psk-314159265"  # 16 bytes: the most tinydtls takes
WRONG_KEY = b"fw-psk-271828182"
SECRETS = (KEY, WRONG_KEY)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def assert_no_key_material(caplog: pytest.LogCaptureFixture) -> None:
    text = caplog.text
    assert text, "the scenario logged something (caplog is capturing)"
    for secret in SECRETS:
        for form in (secret.hex(), secret.hex(" "), secret.decode(), repr(secret)):
            assert form not in text, f"PSK key material ({form!r}) in the log"


@contextlib.asynccontextmanager
async def started(fw: FirmwareUpdate) -> AsyncIterator[FirmwareUpdate]:
    """``fw`` started, and stopped (its aiocoap client context shut down) whatever happens."""
    await fw.start()
    try:
        yield fw
    finally:
        await fw.stop()


# --------------------------------------------------------------------------- coaps


class DtlsBlob(BlobResource):
    """A :class:`BlobResource` that records whether each request arrived over a DTLS session."""

    def __init__(self, data: bytes, etag: bytes) -> None:
        super().__init__(data, etag)
        self.over_dtls: list[bool] = []

    async def render_get(self, request: Message) -> Message:
        self.over_dtls.append(isinstance(request.remote, _AddressDTLS))
        return await super().render_get(request)


@contextlib.asynccontextmanager
async def coaps_blob_server(res: BlobResource, port: int) -> AsyncIterator[aiocoap.Context]:
    """``res`` at /fw.bin on coaps://127.0.0.1:``port``, DTLS-PSK only, accepting IDENTITY with KEY."""
    site = resource.Site()
    site.add_resource(["fw.bin"], res)
    context = await dtls_server_context(site, "127.0.0.1", port, IDENTITY, KEY, loggername="test.coaps-fw")
    try:
        yield context
    finally:
        await context.shutdown()


def add_psk_security(tree: ObjectTree, port: int, key: bytes, iid: int = 0, host: str = "127.0.0.1") -> None:
    """A PSK-mode /0 instance for coaps://``host``:``port``, as factory bootstrap builds it."""
    server = ServerConfig(uri=f"coaps://{host}:{port}", short_id=iid + 1, security="psk",
                          psk_identity=IDENTITY.decode(), psk_key=key)  # fmt: skip
    tree.add_instance(build_security_instance(tree.catalog, iid, server))


def other_port(port: int) -> int:
    return port + 1 if port < 65535 else port - 1


def test_coaps_pull_takes_the_psk_from_the_security_object(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = blob(100 * 1024 + 77)
    blocks = -(-len(data) // 1024)
    config = FirmwareConfig(installers=SCRIPT, download_retries=0, download_timeout=10.0)

    async def scenario() -> None:
        port = free_udp_port()
        res = DtlsBlob(data, etag=b"\x05\x0a")
        rig = make_rig(tmp_path, config)  # the default fetchers, PSK from security_psk_for_uri(tree)
        # other servers, listed first, not chosen: same port on another host, same host on another port
        add_psk_security(rig.tree, port, WRONG_KEY, iid=0, host="127.0.0.2")
        add_psk_security(rig.tree, other_port(port), WRONG_KEY, iid=1)
        add_psk_security(rig.tree, port, KEY, iid=2)
        async with coaps_blob_server(res, port), started(rig.fw):
            rig.fw.write(PACKAGE_URI, f"coaps://127.0.0.1:{port}/fw.bin#sha256={sha256_hex(data)}")
            assert rig.fw.state == State.DOWNLOADING
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download done")
            assert rig.fw.state == State.DOWNLOADED and rig.fw.result == Result.INITIAL
            assert rig.seen == [(State.DOWNLOADING, Result.INITIAL), (State.DOWNLOADED, Result.INITIAL)]
            assert res.requested == list(range(blocks)), "Block2, 1024-byte blocks, in order"
            assert res.over_dtls and all(res.over_dtls), "every block came over DTLS"
            stored = rig.fw.store.path.read_bytes()
            assert stored == data
            assert sha256_hex(stored) == sha256_hex(data) == rig.fw.record.sha256
            assert rig.fw.record.validator == b"\x05\x0a".hex(), "the ETag is the resume validator"
            protocols = rig.fw.read(PROTOCOLS)
            assert isinstance(protocols, dict) and 1 in protocols.values(), "/5/0/8 offers coaps"
        assert_no_key_material(caplog)

    run(scenario())


def test_coaps_pull_with_a_credentials_callback(tmp_path: FsPath, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data = blob(5 * 1024 + 3, seed=7)
    config = FirmwareConfig(installers=SCRIPT, download_retries=0, download_timeout=10.0)
    asked: list[str] = []

    def credentials(uri: str) -> PskCredentials | None:
        asked.append(uri)
        return PskCredentials(IDENTITY, KEY)

    async def scenario() -> None:
        port = free_udp_port()
        res = DtlsBlob(data, etag=b"cb")
        tree = ObjectTree(Catalog.builtin())  # no /0 at all: the callback is the only source
        fw = build_firmware(
            tree, tree.catalog, config, tmp_path, FakeClock(), credentials_for_uri=credentials
        )
        uri = f"coaps://127.0.0.1:{port}/fw.bin"
        async with coaps_blob_server(res, port), started(fw):
            fw.write(PACKAGE_URI, uri)
            await until(lambda: fw.state != State.DOWNLOADING, what="download done")
            assert fw.state == State.DOWNLOADED and fw.result == Result.INITIAL
            assert fw.store.path.read_bytes() == data
            assert asked == [uri]
            assert res.over_dtls and all(res.over_dtls)
        assert_no_key_material(caplog)

    run(scenario())


def test_coaps_pull_with_a_wrong_psk_ends_in_connection_lost(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    """The handshake never completes: each attempt times out (retryable), then Idle with 4."""
    caplog.set_level(logging.DEBUG)
    data = blob(4096)
    config = FirmwareConfig(installers=SCRIPT, download_retries=1, retry_delay=5.0, download_timeout=1.0)

    async def scenario() -> None:
        port = free_udp_port()
        res = DtlsBlob(data, etag=b"x")
        rig = make_rig(tmp_path, config)
        add_psk_security(rig.tree, port, WRONG_KEY)
        async with coaps_blob_server(res, port), started(rig.fw):
            rig.fw.write(PACKAGE_URI, f"coaps://127.0.0.1:{port}/fw.bin")
            await until(lambda: rig.clock.next_deadline() is not None, what="a retry is scheduled")
            assert rig.fw.state == State.DOWNLOADING
            await rig.clock.advance(config.retry_delay)
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download given up")
            assert rig.fw.state == State.IDLE and rig.fw.result == Result.CONNECTION_LOST
            assert rig.seen == [(State.DOWNLOADING, Result.INITIAL), (State.IDLE, Result.CONNECTION_LOST)]
            assert res.requested == [], "no request got through the handshake"
            assert not rig.fw.store.exists(), "nothing resumable (no validator): nothing kept"
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                    and r.name.startswith("lwm2md.firmware")]  # fmt: skip
        assert any("failed" in line and "(Update Result 4)" in line for line in warnings), warnings
        assert_no_key_material(caplog)

    run(scenario())


def test_coaps_without_a_psk_for_the_host_is_unsupported_protocol(tmp_path: FsPath) -> None:
    """No PSK-mode /0 instance for the Package URI's host and port: 9, nothing sent."""
    config = FirmwareConfig(installers=SCRIPT, download_retries=3)

    async def scenario() -> None:
        port = free_udp_port()
        rig = make_rig(tmp_path, config)
        add_psk_security(rig.tree, other_port(port), KEY)
        async with started(rig.fw):
            rig.fw.write(PACKAGE_URI, f"coaps://127.0.0.1:{port}/fw.bin")
            await until(lambda: rig.fw.state != State.DOWNLOADING)
            assert rig.fw.state == State.IDLE and rig.fw.result == Result.UNSUPPORTED_PROTOCOL
            assert rig.clock.next_deadline() is None, "not retried"

    run(scenario())


def test_coaps_pull_uses_a_key_corrected_in_the_security_object(tmp_path: FsPath) -> None:
    data = blob(3000, seed=3)
    config = FirmwareConfig(installers=SCRIPT, download_retries=0, download_timeout=1.0)

    async def scenario() -> None:
        port = free_udp_port()
        res = DtlsBlob(data, etag=b"k")
        rig = make_rig(tmp_path, config)
        add_psk_security(rig.tree, port, WRONG_KEY)
        uri = f"coaps://127.0.0.1:{port}/fw.bin"
        async with coaps_blob_server(res, port), started(rig.fw):
            rig.fw.write(PACKAGE_URI, uri)
            await until(lambda: rig.fw.state != State.DOWNLOADING)
            assert rig.fw.result == Result.CONNECTION_LOST
            rig.tree.instance(0, 0).write(5, KEY)  # as a bootstrap would correct it
            rig.fw.write(PACKAGE_URI, uri)
            await until(lambda: rig.fw.state != State.DOWNLOADING)
            assert (rig.fw.state, rig.fw.result) == (State.DOWNLOADED, Result.INITIAL)
            assert rig.fw.store.path.read_bytes() == data

    run(scenario())


# --------------------------------------------------------------------------- https


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[FsPath, FsPath]:
    """(certificate, key) PEM files: self-signed, CN and subjectAltName IP 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: cannot make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "c.pem", where / "k.pem"
    argv = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
            "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {done.stderr.strip()[-300:]}")
    return cert, key


def https_server(data: bytes, certificate: tuple[FsPath, FsPath]) -> RangeServer:
    """A :class:`RangeServer` whose listening socket speaks TLS with ``certificate``."""
    server = RangeServer(data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    return server


def https_url(server: RangeServer, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.port}/fw.bin"


def https_rig(tmp_path: FsPath, config: FirmwareConfig) -> Rig:
    return make_rig(tmp_path, config)  # the default fetchers: HttpFetcher(ca_file=config.ca_file)


def test_https_pull_trusts_the_ca_file(tmp_path: FsPath, certificate: tuple[FsPath, FsPath]) -> None:
    data = blob(700_000, seed=11)
    server = https_server(data, certificate)
    config = FirmwareConfig(installers=SCRIPT, download_retries=0, download_timeout=10.0,
                            ca_file=str(certificate[0]))  # fmt: skip

    async def scenario() -> None:
        rig = https_rig(tmp_path, config)
        async with started(rig.fw):
            rig.fw.write(PACKAGE_URI, f"{https_url(server)}#sha256={sha256_hex(data)}")
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download done")
            assert rig.fw.state == State.DOWNLOADED and rig.fw.result == Result.INITIAL
            assert rig.seen == [(State.DOWNLOADING, Result.INITIAL), (State.DOWNLOADED, Result.INITIAL)]
            assert server.requests == [(None, None)]
            assert rig.fw.store.path.read_bytes() == data
            assert rig.fw.record.sha256 == sha256_hex(data)
            assert rig.fw.record.validator == server.etag

    with server.running():
        run(scenario())


def test_https_pull_resumes_with_range_and_if_range(
    tmp_path: FsPath, certificate: tuple[FsPath, FsPath]
) -> None:
    data = blob(2 * 1024 * 1024 + 5, seed=12)
    server = https_server(data, certificate)
    config = FirmwareConfig(installers=SCRIPT, download_retries=3, retry_delay=5.0, download_timeout=10.0,
                            ca_file=str(certificate[0]))  # fmt: skip

    async def scenario() -> None:
        rig = https_rig(tmp_path, config)
        async with started(rig.fw):
            server.cut_after = 1_000_000
            rig.fw.write(PACKAGE_URI, https_url(server))
            await until(lambda: rig.clock.next_deadline() is not None, what="a retry is scheduled")
            assert rig.fw.state == State.DOWNLOADING
            assert rig.fw.store.size() == 1_000_000
            await rig.clock.advance(config.retry_delay)
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download done")
            assert server.requests == [(None, None), ("bytes=1000000-", server.etag)]
            assert rig.fw.state == State.DOWNLOADED
            assert rig.fw.store.path.read_bytes() == data

    with server.running():
        run(scenario())


def test_https_without_the_ca_file_fails_the_certificate_check(
    tmp_path: FsPath, certificate: tuple[FsPath, FsPath], caplog: pytest.LogCaptureFixture
) -> None:
    """System CAs only: the self-signed certificate is refused; 4 at once (not retried), no GET sent."""
    server = https_server(blob(1000), certificate)
    config = FirmwareConfig(installers=SCRIPT, download_retries=3, download_timeout=10.0)

    async def scenario() -> None:
        rig = https_rig(tmp_path, config)
        async with started(rig.fw):
            rig.fw.write(PACKAGE_URI, https_url(server))
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download given up")
            assert rig.fw.state == State.IDLE and rig.fw.result == Result.CONNECTION_LOST
            assert rig.seen == [(State.DOWNLOADING, Result.INITIAL), (State.IDLE, Result.CONNECTION_LOST)]
            assert rig.clock.next_deadline() is None, "a certificate failure is not retried"
            assert server.requests == [], "nothing was sent over the unverified connection"
            assert not rig.fw.store.exists()
        assert any("TLS: " in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)

    with server.running():
        run(scenario())


def test_https_with_the_ca_file_still_checks_the_host_name(
    tmp_path: FsPath, certificate: tuple[FsPath, FsPath], caplog: pytest.LogCaptureFixture
) -> None:
    """The certificate names IP 127.0.0.1 only: https://localhost/ is refused though its CA is trusted."""
    server = https_server(blob(1000), certificate)
    config = FirmwareConfig(installers=SCRIPT, download_retries=3, download_timeout=10.0,
                            ca_file=str(certificate[0]))  # fmt: skip

    async def scenario() -> None:
        rig = https_rig(tmp_path, config)
        async with started(rig.fw):
            rig.fw.write(PACKAGE_URI, https_url(server, host="localhost"))
            await until(lambda: rig.fw.state != State.DOWNLOADING, what="download given up")
            assert rig.fw.state == State.IDLE and rig.fw.result == Result.CONNECTION_LOST
            assert rig.clock.next_deadline() is None
            assert server.requests == []
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("TLS: " in line and "localhost" in line for line in lines), lines

    with server.running():
        run(scenario())
