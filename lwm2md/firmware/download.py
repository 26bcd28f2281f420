"""Pulling a package from its Package URI (/5/0/1): coap, coaps, http, https.

:func:`parse_package_uri` checks a URI before anything is fetched
(:class:`UriProblem` carries the Update Result: 7 invalid URI, 9
unsupported protocol). A fetcher then streams the body into a
:class:`FetchSink`, resuming at an offset when it holds a validator:

- CoAP (RFC 7959): Block2 requests from the block holding ``offset``; every
  response must carry the ETag the transfer started with, else the package
  changed and the transfer starts over from block 0. Without an ETag
  nothing is resumed.
- HTTP/1.1: ``Range: bytes=<offset>-`` with ``If-Range`` (a strong ETag, or
  Last-Modified); a 200 instead of a 206 means the resource changed and the
  body starts over.

Failures raise :class:`DownloadError` with the Update Result and whether a
retry may help (a lost connection, a 5.xx). A fragment ``#sha256=<hex>``
on the URI names the package's expected digest; it is never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import logging
import re
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lwm2md import __version__
from lwm2md.firmware.settings import SCHEMES
from lwm2md.transport.dtls import PskCredentials

LOG = logging.getLogger(__name__)

RESULT_CONNECTION_LOST = 4
RESULT_INVALID_URI = 7
RESULT_UNSUPPORTED_PROTOCOL = 9
MAX_URI = 255
DEFAULT_PORTS = {"coap": 5683, "coaps": 5684, "http": 80, "https": 443}
PROTOCOL_CODES = {"coap": 0, "coaps": 1, "http": 2, "https": 3}
"""/5/0/8 values."""
BLOCK_SZX = 6  # 1024-byte Block2 blocks
HTTP_CHUNK = 1 << 16
MAX_REDIRECTS = 5
_FRAGMENT_DIGEST = re.compile(r"sha256=([0-9a-fA-F]{64})")

CredentialsForUri = Callable[[str], PskCredentials | None]


class UriProblem(Exception):
    """A Package URI that cannot be fetched; ``result`` is the Update Result (7 or 9)."""

    def __init__(self, result: int, reason: str) -> None:
        super().__init__(reason)
        self.result = result


class DownloadError(Exception):
    """A failed fetch: ``result`` is the Update Result; ``retryable`` when trying again may help."""

    def __init__(self, result: int, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.result = result
        self.retryable = retryable


@dataclass(frozen=True)
class PackageUri:
    """A checked Package URI; ``fetch_uri`` is what goes on the wire (no fragment)."""

    uri: str
    scheme: str
    host: str
    port: int
    fetch_uri: str
    digest: bytes | None = field(default=None, repr=False)


def parse_package_uri(uri: str, allowed: tuple[str, ...] = SCHEMES) -> PackageUri:
    """Check ``uri``; UriProblem(7) when malformed, UriProblem(9) for a scheme not in ``allowed``."""
    if len(uri) > MAX_URI or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        raise UriProblem(RESULT_INVALID_URI, "not a URI (too long, or spaces or control characters)")
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise UriProblem(RESULT_INVALID_URI, f"not a URI ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise UriProblem(RESULT_INVALID_URI, "no scheme")
    if scheme not in SCHEMES or scheme not in allowed:
        raise UriProblem(RESULT_UNSUPPORTED_PROTOCOL, f"scheme {scheme!r} is not supported")
    host = parts.hostname
    if not host:
        raise UriProblem(RESULT_INVALID_URI, "no host")
    digest = None
    if parts.fragment:
        match = _FRAGMENT_DIGEST.fullmatch(parts.fragment)
        if match is None:
            raise UriProblem(RESULT_INVALID_URI, "the only fragment understood is #sha256=<64 hex digits>")
        digest = bytes.fromhex(match.group(1))
    fetch_uri = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))
    return PackageUri(uri, scheme, host, port or DEFAULT_PORTS[scheme], fetch_uri, digest)


class FetchSink(Protocol):
    """Where a fetcher puts the body."""

    def begin(self, offset: int, validator: str | None, total: int | None) -> None:
        """The body continues at ``offset`` (0: from the start; cut the file there).

        ``validator`` identifies this version of the resource for a later
        resume, ``total`` is the full size when known. May raise OutOfStorage.
        """

    def write(self, data: bytes) -> None:
        """Append the next bytes; may raise OutOfStorage."""


class Fetcher(Protocol):
    async def fetch(self, target: PackageUri, offset: int, validator: str | None, sink: FetchSink) -> None:
        """Stream ``target`` into ``sink`` from ``offset`` when ``validator`` allows; DownloadError."""

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- CoAP


class CoapFetcher:
    """Block2 GETs over an aiocoap client context of its own (created on first use).

    ``credentials(uri)`` gives the PSK for a coaps URI (None: there is none,
    Update Result 9). ``timeout`` bounds each block's exchange;
    ``ack_timeout`` replaces CoAP's 2 s ACK_TIMEOUT (4 retransmissions).
    """

    def __init__(self, credentials: CredentialsForUri | None, timeout: float,
                 ack_timeout: float | None = None) -> None:  # fmt: skip
        self._credentials = credentials
        self._timeout = timeout
        self._tuning: Any = None
        if ack_timeout is not None:
            from lwm2md.transport.coap import make_tuning

            self._tuning = make_tuning(ack_timeout, 4, True)
        self._context: Any = None

    async def _ctx(self) -> Any:
        import aiocoap

        if self._context is None:
            self._context = await aiocoap.Context.create_client_context()
        return self._context

    async def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.shutdown()

    def _secure(self, target: PackageUri, context: Any) -> None:
        from aiocoap.credentials import DTLS

        credentials = self._credentials(target.uri) if self._credentials is not None else None
        if credentials is None:
            raise DownloadError(RESULT_UNSUPPORTED_PROTOCOL, f"no PSK for {target.host}:{target.port}")
        try:  # tinydtls dumps key material at its debug level: keep it silent
            from DTLSSocket import dtls  # type: ignore[import-untyped]

            dtls.setLogLevel(dtls.DTLS_LOG_EMERG)
        except ImportError:
            raise DownloadError(RESULT_UNSUPPORTED_PROTOCOL, "coaps needs the DTLSSocket package") from None
        netloc = urllib.parse.urlsplit(target.fetch_uri).netloc
        context.client_credentials[f"coaps://{netloc}/*"] = DTLS(
            psk=credentials.key, client_identity=credentials.identity
        )

    async def fetch(self, target: PackageUri, offset: int, validator: str | None, sink: FetchSink) -> None:
        """Fetch from ``offset``; after a failed coaps fetch the client context is dropped.

        aiocoap pools DTLS sessions by host, port and identity, not by key:
        a session that failed (a wrong key, say) would be reused after the key
        in /0 is corrected.
        """
        try:
            await self._fetch(target, offset, validator, sink)
        except BaseException:
            if target.scheme == "coaps":
                await self.close()
            raise

    async def _fetch(self, target: PackageUri, offset: int, validator: str | None, sink: FetchSink) -> None:
        import aiocoap
        from aiocoap import Code, Message
        from aiocoap.optiontypes import BlockOption

        context = await self._ctx()
        if target.scheme == "coaps":
            self._secure(target, context)
        etag = bytes.fromhex(validator) if validator and offset else None
        szx = BLOCK_SZX
        start = (offset >> (szx + 4)) << (szx + 4) if etag else 0
        begun = False
        while True:
            request = Message(code=Code.GET, uri=target.fetch_uri)
            if self._tuning is not None:
                request.transport_tuning = self._tuning
            request.opt.block2 = BlockOption.BlockwiseTuple(start >> (szx + 4), False, szx)
            try:
                async with asyncio.timeout(self._timeout):
                    response = await context.request(request, handle_blockwise=False).response
            except TimeoutError:
                hint = " (over DTLS: a wrong PSK identity or key?)" if target.scheme == "coaps" else ""
                raise DownloadError(RESULT_CONNECTION_LOST, f"no answer within {self._timeout:g} s{hint}",
                                    retryable=True) from None  # fmt: skip
            except aiocoap.error.ResolutionError as exc:
                raise DownloadError(RESULT_INVALID_URI, f"cannot resolve {target.host}: {exc}") from None
            except (aiocoap.error.Error, OSError) as exc:
                raise DownloadError(RESULT_CONNECTION_LOST, f"{type(exc).__name__}: {exc}",
                                    retryable=True) from None  # fmt: skip
            code = response.code
            if not code.is_successful():
                if code in (Code.NOT_FOUND, Code.FORBIDDEN, Code.UNAUTHORIZED, Code.BAD_REQUEST):
                    raise DownloadError(RESULT_INVALID_URI, f"server answered {code.dotted}")
                retry = code.is_server_error() or code == Code.REQUEST_ENTITY_INCOMPLETE
                raise DownloadError(RESULT_CONNECTION_LOST, f"server answered {code.dotted}", retryable=retry)
            block = response.opt.block2
            got_etag = response.opt.etag
            if block is None:  # the whole body in one response
                sink.begin(0, got_etag.hex() if got_etag else None, len(response.payload))
                sink.write(response.payload)
                return
            if not begun:
                if start and got_etag != etag:
                    LOG.info("firmware: %s changed since the download began (ETag)", target.host)
                    start, etag = 0, None
                    continue
                etag = got_etag
                szx = min(szx, block.size_exponent)
                sink.begin(start, etag.hex() if etag else None, response.opt.size2)
                begun = True
            elif got_etag != etag:
                raise DownloadError(RESULT_CONNECTION_LOST, "the package changed during the download (ETag)",
                                    retryable=True)  # fmt: skip
            if block.start != start:
                reason = f"server sent block at {block.start}, not {start}"
                raise DownloadError(RESULT_CONNECTION_LOST, reason, retryable=True)
            if block.more and len(response.payload) != block.size:
                raise DownloadError(RESULT_CONNECTION_LOST, "short block before the last one", retryable=True)
            sink.write(response.payload)
            start += len(response.payload)
            if not block.more:
                return
            szx = min(szx, block.size_exponent)


# --------------------------------------------------------------------------- HTTP


class HttpFetcher:
    """HTTP/1.1 GET with Range/If-Range via :mod:`http.client`; blocking calls run in threads.

    ``ca_file`` replaces the system CAs for https.
    """

    def __init__(self, timeout: float, ca_file: str | None = None) -> None:
        self._timeout = timeout
        self._ca_file = ca_file
        self._ssl: ssl.SSLContext | None = None

    async def close(self) -> None:
        return None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self._ca_file)
        return self._ssl

    def _connect(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._ssl_context())
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    async def fetch(self, target: PackageUri, offset: int, validator: str | None, sink: FetchSink) -> None:
        uri = target.fetch_uri
        use_range = bool(offset and validator)
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(uri)
            scheme = parts.scheme
            host = parts.hostname or target.host
            port = parts.port or DEFAULT_PORTS[scheme]
            path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            headers = {"User-Agent": f"lwm2md/{__version__}", "Accept-Encoding": "identity"}
            if use_range and validator:
                headers["Range"] = f"bytes={offset}-"
                headers["If-Range"] = validator
            conn = self._connect(scheme, host, port)
            try:
                response = await self._call(conn, functools.partial(_get, conn, path, headers))
                status = response.status
                if status in (301, 302, 303, 307, 308):
                    location = response.getheader("Location")
                    if not location:
                        raise DownloadError(RESULT_INVALID_URI, f"HTTP {status} without Location")
                    uri = urllib.parse.urljoin(uri, location)
                    new_scheme = urllib.parse.urlsplit(uri).scheme
                    if new_scheme not in ("http", "https") or (scheme == "https" and new_scheme != "https"):
                        raise DownloadError(RESULT_INVALID_URI, f"redirect to {new_scheme}: refused")
                    continue
                if status == 416 and use_range:
                    use_range = False  # what we hold does not fit the resource: start over
                    continue
                if status in (404, 410, 400, 401, 403):
                    raise DownloadError(RESULT_INVALID_URI, f"HTTP {status} {response.reason}")
                if status not in (200, 206):
                    raise DownloadError(RESULT_CONNECTION_LOST, f"HTTP {status} {response.reason}",
                                        retryable=status >= 500)  # fmt: skip
                await self._body(conn, response, status, offset if use_range else 0, sink)
                return
            finally:
                conn.close()
        raise DownloadError(RESULT_INVALID_URI, "too many redirects")

    async def _call(self, conn: http.client.HTTPConnection, call: Callable[[], Any]) -> Any:
        try:
            return await asyncio.to_thread(call)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                conn.close()
            raise
        except socket.gaierror as exc:
            raise DownloadError(RESULT_INVALID_URI, f"cannot resolve host: {exc.strerror or exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise DownloadError(RESULT_CONNECTION_LOST, f"TLS: {exc.verify_message or exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise DownloadError(RESULT_CONNECTION_LOST, reason, retryable=True) from None

    async def _body(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, status: int,
                    offset: int, sink: FetchSink) -> None:  # fmt: skip
        validator = _validator(response)
        if status == 206:
            start, total = _content_range(response.getheader("Content-Range"))
            if start != offset:
                raise DownloadError(RESULT_CONNECTION_LOST, f"server resumed at {start}, not {offset}",
                                    retryable=True)  # fmt: skip
        else:
            start, length = 0, response.getheader("Content-Length")
            total = int(length) if length and length.isdigit() else None
        sink.begin(start, validator, total)
        while True:
            chunk: bytes = await self._call(conn, lambda: response.read1(HTTP_CHUNK))
            if not chunk:
                break
            sink.write(chunk)
        if response.length:  # Content-Length not reached: the connection was cut
            raise DownloadError(RESULT_CONNECTION_LOST, "connection closed before the end of the body",
                                retryable=True)  # fmt: skip


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn.request("GET", path, headers=headers)
    return conn.getresponse()


def _validator(response: http.client.HTTPResponse) -> str | None:
    etag = response.getheader("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.getheader("Last-Modified")


def _content_range(value: str | None) -> tuple[int, int | None]:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (value or "").strip())
    if match is None:
        raise DownloadError(RESULT_CONNECTION_LOST, f"bad Content-Range {value!r}", retryable=True)
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def default_fetchers(credentials: CredentialsForUri | None, timeout: float,
                     ca_file: str | None = None) -> dict[str, Fetcher]:  # fmt: skip
    """One fetcher per scheme: CoAP(S) shares one client context, HTTP(S) one fetcher."""
    coap = CoapFetcher(credentials, timeout)
    web = HttpFetcher(timeout, ca_file)
    return {"coap": coap, "coaps": coap, "http": web, "https": web}
