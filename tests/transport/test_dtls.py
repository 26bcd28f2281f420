"""DTLS-PSK transport: sessions, the secure requester, credentials, and interop.

Servers: aiocoap's own DTLS server side (``dtls_server_context`` from the
end-to-end tests) and, when Debian's libcoap3-bin is installed, libcoap's
``coap-server-openssl`` / ``coap-server-gnutls``: an independent DTLS stack
that proves handshake and record layer interoperate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap import resource

from lwm2md.config import ServerConfig
from lwm2md.engine.registration import TransportError
from lwm2md.errors import NotFound
from lwm2md.model.catalog import Catalog
from lwm2md.objects.server import build_security_instance, psk_credentials
from lwm2md.objects.tree import ObjectTree
from lwm2md.transport.coap import CoapEndpoint, PeerTable
from lwm2md.transport.dtls import (
    DtlsSession,
    PskCredentials,
    alert_text,
    server_hello_suite,
)
from tests.integration.harness import run
from tests.integration.test_dtls_e2e import dtls_server_context, server_dtls

IDENTITY = b"transport-test"
KEY = b"K3y-0f-16-bytes!"
WRONG_KEY = b"not-the-right-k!"
CCM_8 = "TLS_PSK_WITH_AES_128_CCM_8"
LIBCOAP_KEY = "lwm2md-interop16"  # coap-server takes the key as text
LIBCOAP_START = 5.0  # s for coap-server to come up


class _Hello(resource.Resource):  # type: ignore[misc]
    async def render_get(self, request: Any) -> aiocoap.Message:
        return aiocoap.Message(payload=b"hello over dtls")


async def _refuse(request: Any) -> Any:
    raise NotFound("no tree here")


def make_endpoint() -> CoapEndpoint:
    return CoapEndpoint(_refuse, (lambda obs, records: None, lambda obs: None), lambda fmt, path, recs: b"",
                        ack_timeout=0.2, max_retransmit=1)  # fmt: skip


@contextlib.asynccontextmanager
async def aiocoap_server(key: bytes = KEY) -> AsyncIterator[tuple[aiocoap.Context, int]]:
    site = resource.Site()
    site.add_resource(["hello"], _Hello())
    context = await dtls_server_context(site, "127.0.0.1", 0, IDENTITY, key)
    port = int(server_dtls(context).transport.get_extra_info("socket").getsockname()[1])
    try:
        yield context, port
    finally:
        await context.shutdown()


@contextlib.asynccontextmanager
async def started(endpoint: CoapEndpoint) -> AsyncIterator[CoapEndpoint]:
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.close()


def fixed(credentials: PskCredentials) -> Callable[[], PskCredentials]:
    return lambda: credentials


def current_session(requester: object) -> DtlsSession:
    session = getattr(requester, "session", None)
    assert isinstance(session, DtlsSession)
    return session


# -- pure functions and small types -------------------------------------------------------


def test_credentials_hide_the_key_and_enforce_tinydtls_limits() -> None:
    assert repr(PskCredentials(IDENTITY, KEY)) == "PskCredentials(identity=b'transport-test')"
    with pytest.raises(ValueError, match="1 to 16 bytes, not 32") as caught:
        PskCredentials(IDENTITY, b"B" * 32)
    assert "BBBB" not in str(caught.value) and "4242" not in str(caught.value)
    with pytest.raises(ValueError, match="identity must be 1 to 32 bytes, not 33"):
        PskCredentials(b"i" * 33, KEY)
    with pytest.raises(ValueError):
        PskCredentials(b"", KEY)
    with pytest.raises(ValueError):
        PskCredentials(IDENTITY, b"")


def test_server_hello_suite_is_read_from_the_first_flight() -> None:
    hello = bytes([0xFE, 0xFD]) + bytes(32) + bytes([2, 0xAA, 0xBB]) + bytes([0xC0, 0xA8, 0])
    length = len(hello).to_bytes(3, "big")
    handshake = bytes([2]) + length + bytes(2) + bytes(3) + length  # type, length, seq, offset, fragment
    body = handshake + hello
    record = bytes([22, 0xFE, 0xFD, 0, 0]) + bytes(6) + len(body).to_bytes(2, "big") + body
    done = bytes([22, 0xFE, 0xFD, 0, 0]) + bytes(6) + (12).to_bytes(2, "big") + bytes([14]) + bytes(11)
    assert server_hello_suite(record + done) == 0xC0A8
    assert server_hello_suite(done) is None
    assert server_hello_suite(record[:20]) is None
    assert alert_text(51) == "decrypt_error (51)" and alert_text(99) == "alert (99)"


def test_peer_table_matches_coaps_servers_by_session_only() -> None:
    removed: list[int] = []
    table = PeerTable(on_remove=removed.append)
    table.set(1, ("192.0.2.1", 5683))
    table.set(2, ("192.0.2.2", 5684), scheme="coaps")
    assert table.ssid_for(("192.0.2.1", 5683)) == 1
    assert table.ssid_for(("192.0.2.2", 5684)) is None, "plain datagrams from a coaps server are nobody's"

    class Session(DtlsSession):
        def __init__(self, ssid: int) -> None:
            self.ssid = ssid

    assert table.ssid_for_remote(Session(2)) == 2
    assert table.ssid_for_remote(Session(1)) is None, "server 1 is a NoSec account"
    table.remove(2)
    assert table.ssid_for_remote(Session(2)) is None and removed == [2]


def test_psk_credentials_come_from_the_security_instance() -> None:
    catalog = Catalog.builtin()
    tree = ObjectTree(catalog)
    tree.ensure_object(0)
    psk = ServerConfig("coaps://192.0.2.1", 7, security="psk", psk_identity="gw", psk_key=KEY)
    tree.add_instance(build_security_instance(catalog, 0, psk))
    nosec = ServerConfig("coap://192.0.2.2", 8)
    tree.add_instance(build_security_instance(catalog, 1, nosec))
    assert psk_credentials(tree, 7) == PskCredentials(b"gw", KEY)
    tree.instance(0, 0).write(5, b"\x01" * 16)  # e.g. written by a bootstrap server
    assert psk_credentials(tree, 7).key == b"\x01" * 16
    with pytest.raises(ValueError, match=r"security mode is 3 \(NoSec\)"):
        psk_credentials(tree, 8)
    with pytest.raises(LookupError):
        psk_credentials(tree, 9)
    tree.instance(0, 0).write(2, 2)
    with pytest.raises(ValueError, match="certificate"):
        psk_credentials(tree, 7)
    tree.instance(0, 0).write(2, 0)
    tree.instance(0, 0).write(5, b"\x02" * 32)
    with pytest.raises(ValueError, match="not 32") as caught:
        psk_credentials(tree, 7)
    assert "0202" not in str(caught.value)


# -- against aiocoap's DTLS server ----------------------------------------------------------


def test_request_over_a_session_negotiates_ccm8_and_reuses_the_session() -> None:
    async def scenario() -> None:
        async with aiocoap_server() as (_, port), started(make_endpoint()) as endpoint:
            requester = endpoint.secure_requester(1, "127.0.0.1", port, fixed(PskCredentials(IDENTITY, KEY)))
            response = await requester.request("GET", ["hello"])
            assert response.code == 69 and response.payload == b"hello over dtls"
            session = current_session(requester)
            assert session.established and session.cipher_suite_name == CCM_8
            assert session.handshake.datagrams_sent >= 3 and session.handshake.datagrams_received >= 2
            assert session.handshake_seconds is not None and session.handshake_seconds < 1.0
            assert not session.hostinfo_local.endswith(f":{endpoint.local_port}"), "a socket of its own"
            await requester.request("GET", ["hello"])
            assert current_session(requester) is session
            assert endpoint.dtls is not None and endpoint.dtls.sessions == {session}

    run(scenario())


def test_credentials_are_read_for_each_new_session_and_removal_closes_it() -> None:
    async def scenario() -> None:
        reads: list[int] = []

        def credentials() -> PskCredentials:
            reads.append(1)
            return PskCredentials(IDENTITY, KEY)

        async with aiocoap_server() as (_, port), started(make_endpoint()) as endpoint:
            endpoint.peers.set(1, ("127.0.0.1", port), scheme="coaps")
            requester = endpoint.secure_requester(1, "127.0.0.1", port, credentials)
            await requester.request("GET", ["hello"])
            first = current_session(requester)
            first.close("test")
            await requester.request("GET", ["hello"])
            second = current_session(requester)
            assert second is not first and len(reads) == 2
            endpoint.peers.remove(1)
            assert second.closed and second.close_reason == "server account removed"
            with pytest.raises(TransportError, match="endpoint is closed"):
                await requester.request("GET", ["hello"])

    run(scenario())


def test_missing_or_unsupported_credentials_fail_the_request_with_the_reason() -> None:
    async def scenario() -> None:
        def unsupported() -> PskCredentials:
            raise ValueError("/0/0 security mode is 2 (certificate), not pre-shared key")

        async with aiocoap_server() as (_, port), started(make_endpoint()) as endpoint:
            requester = endpoint.secure_requester(1, "127.0.0.1", port, unsupported)
            with pytest.raises(TransportError, match=r"POST /rd: no usable PSK credentials: .*certificate"):
                await requester.request("POST", ["rd"])

    run(scenario())


def test_wrong_key_and_silent_port_fail_the_handshake_within_the_timeout() -> None:
    async def scenario() -> None:
        async with aiocoap_server() as (_, port), started(make_endpoint()) as endpoint:
            wrong = fixed(PskCredentials(IDENTITY, WRONG_KEY))
            requester = endpoint.secure_requester(1, "127.0.0.1", port, wrong)
            with pytest.raises(TransportError, match="wrong PSK identity 'transport-test' or key"):
                await requester.request("GET", ["hello"])
            assert endpoint.dtls is not None and not endpoint.dtls.sessions
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            silent = sock.getsockname()[1]
            async with started(make_endpoint()) as endpoint:
                right = fixed(PskCredentials(IDENTITY, KEY))
                requester = endpoint.secure_requester(1, "127.0.0.1", silent, right)
                with pytest.raises(TransportError, match=r"no answer within 0\.6 s"):
                    await requester.request("GET", ["hello"])

    run(scenario())


def test_a_record_layer_refusal_replaces_the_session() -> None:
    """What sequence-number exhaustion would look like: tinydtls refuses to write."""

    class Refusing:
        def __init__(self, real: Any) -> None:
            self.real = real

        def write(self, connection: Any, data: bytes) -> int:
            return -1

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    async def scenario() -> None:
        async with aiocoap_server() as (_, port), started(make_endpoint()) as endpoint:
            requester = endpoint.secure_requester(1, "127.0.0.1", port, fixed(PskCredentials(IDENTITY, KEY)))
            await requester.request("GET", ["hello"])
            first = current_session(requester)
            first._context = Refusing(first._context)
            with pytest.raises(TransportError, match="the record layer refused to send"):
                await requester.request("GET", ["hello"])
            assert first.closed
            assert (await requester.request("GET", ["hello"])).code == 69
            assert current_session(requester) is not first

    run(scenario())


def test_keys_never_reach_logs_or_the_terminal(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        async with aiocoap_server() as (_, port), started(make_endpoint()) as endpoint:
            good = endpoint.secure_requester(1, "127.0.0.1", port, fixed(PskCredentials(IDENTITY, KEY)))
            await good.request("GET", ["hello"])
            bad = endpoint.secure_requester(2, "127.0.0.1", port, fixed(PskCredentials(IDENTITY, WRONG_KEY)))
            with pytest.raises(TransportError) as caught:
                await bad.request("GET", ["hello"])
            assert WRONG_KEY.decode() not in str(caught.value)
            current_session(good).close("test")

    caplog.set_level(logging.DEBUG)
    run(scenario())
    assert any(rec.name.startswith("lwm2md.transport") for rec in caplog.records)
    assert any(rec.name == "lwm2md.coap" and rec.levelno == logging.DEBUG for rec in caplog.records)
    out, err = capfd.readouterr()
    rendered = [rec.getMessage() + (rec.exc_text or "") for rec in caplog.records]
    for text in [*rendered, out, err]:
        for secret in (KEY, WRONG_KEY):
            for form in (secret.decode(), secret.hex(), repr(secret), secret.hex(" ")):
                assert form not in text, f"key material in {text[:80]!r}"


# -- against libcoap (an independent DTLS implementation) -------------------------------------


def _free_port_pair() -> int:
    """A port P with P and P + 1 free for UDP and TCP on loopback (coap-server binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    for candidate in (port, port + 1):
                        sock = stack.enter_context(socket.socket(socket.AF_INET, kind))
                        sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of loopback ports")


@pytest.mark.parametrize("binary", ["coap-server-openssl", "coap-server-gnutls"])
def test_interoperates_with_libcoap_server(binary: str, tmp_path: Path) -> None:
    executable = shutil.which(binary)
    if executable is None:
        pytest.skip(f"{binary} not installed (Debian package libcoap3-bin; tools/dev installs it)")
    port = _free_port_pair()
    log = tmp_path / "coap-server.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [executable, "-A", "127.0.0.1", "-p", str(port), "-k", LIBCOAP_KEY, "-h", "lwm2md", "-v", "4"],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def scenario() -> None:
        credentials = PskCredentials(b"lwm2md-client", LIBCOAP_KEY.encode())
        async with started(make_endpoint()) as endpoint:
            requester = endpoint.secure_requester(1, "127.0.0.1", port + 1, fixed(credentials))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + LIBCOAP_START
            while True:  # until coap-server listens
                try:
                    response = await requester.request("GET", ["time"])
                    break
                except TransportError:
                    if loop.time() > deadline or proc.poll() is not None:
                        raise
                    await asyncio.sleep(0.05)
            assert response.code == 69 and response.payload, "2.05 with the server's time"
            session = current_session(requester)
            assert session.cipher_suite_name == CCM_8
            core = await requester.request("GET", [".well-known", "core"])
            assert core.code == 69 and b"</time>" in core.payload
            assert current_session(requester) is session, "both requests on one session"

    try:
        run(scenario())
    except BaseException:
        print(log.read_text(errors="replace")[-2000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
