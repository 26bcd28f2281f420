"""A fake cellular modem that answers AT commands the way real ones do.

:class:`FakeModem` is a scripted state machine: echo on until ``ATE0``,
``OK``/``ERROR``/``+CME ERROR``/``+CMS ERROR`` per ``AT+CMEE``, identity per
vendor profile (Quectel EG25-G by default; SIMCom SIM7600, u-blox SARA-R410M
and Telit LE910C1 on request), radio facts from settable fields, an SMS
store with ``AT+CMGS`` prompt handling, unsolicited result codes, unplugging
and restarts.

Threading: the modem runs in its own daemon thread (a selector loop), never
on the caller's event loop, so it behaves like hardware for blocking and
asyncio clients alike. Public methods may be called from any thread; those
that touch the modem's state run inside the modem thread and return when
done, so e.g. ``unplug()`` has happened when it returns.

Transports (one at a time, the one served last wins):

- :meth:`FakeModem.serve_pty`: a pseudo-terminal; returns a stable symlink
  path (like a udev ``/dev/serial/by-id`` link) that pyserial opens as a
  real port. ``unplug()`` closes the pty and removes the link; ``replug()``
  makes a new pty behind the same link.
- :meth:`FakeModem.serve_socket`: ``socket://127.0.0.1:PORT`` for pyserial;
  one client at a time (a new one replaces the old).
- :meth:`FakeModem.open_stream`: an in-process pyserial-like port
  (a :data:`~lwm2md.drivers.modem.at.PortOpener` for ``AtChannel(opener=...)``).

Signal values are given in dBm/dB and encoded per TS 27.007 (``+CSQ``,
``+CESQ``) or per the vendor's serving-cell format.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import queue
import re
import select
import selectors
import socket
import tempfile
import termios
import threading
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, TypeAlias, TypeVar, cast

T = TypeVar("T")


class _NoAnswer:
    """A handler result meaning "the handler already wrote its output" (prompt, restart)."""


_NO_ANSWER = _NoAnswer()
Result: TypeAlias = "tuple[list[str], str] | _NoAnswer | None"
"""A command handler's answer: information lines and final code, already written, or unknown (ERROR)."""
Handler: TypeAlias = "Callable[[str, str], Result]"

CTRL_Z = 0x1A
ESC = 0x1B
SMS_CAPACITY = 50
CALL_TIMEOUT = 5.0


@dataclass(frozen=True)
class VendorProfile:
    """How one modem model identifies itself."""

    ati: tuple[str, ...]
    cgmi: str
    cgmm: str
    cgmr: str


PROFILES: dict[str, VendorProfile] = {
    "quectel": VendorProfile(("Quectel", "EG25", "Revision: EG25GGBR07A08M2G"), "Quectel", "EG25",
                             "EG25GGBR07A08M2G"),
    "simcom": VendorProfile(
        ("Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600E-H", "Revision: SIM7600M22_V2.0",
         "IMEI: {imei}", "+GCAP: +CGSM"),
        "SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "+CGMR: LE20B04SIM7600M22",
    ),
    "ublox": VendorProfile(("SARA-R410M-02B",), "u-blox", "SARA-R410M-02B", "L0.0.00.00.05.08 [Apr 17 2019]"),
    "telit": VendorProfile(("Telit", "LE910C1-EU", "Revision: 25.20.676"), "Telit", "LE910C1-EU",
                           "25.20.676"),
}  # fmt: skip

_CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
             50: "Incorrect parameters", 100: "unknown"}  # fmt: skip
_CMS_TEXT = {302: "operation not allowed", 303: "operation not supported", 304: "invalid PDU mode parameter",
             321: "invalid memory index", 322: "memory full",
             340: "no +CNMA acknowledgement expected"}  # fmt: skip
_EXTENDED = re.compile(r"^([+#^$][A-Za-z0-9]+)(.*)$")


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def tpdu_length(pdu_hex: str) -> int:
    """Octets of the TPDU in a PDU whose first octet is the SMSC information length."""
    octets = len(pdu_hex) // 2
    smsc = int(pdu_hex[:2], 16) if len(pdu_hex) >= 2 else 0
    return octets - 1 - smsc


class _Conn:
    """The modem's end of the current transport."""

    def fileno(self) -> int:
        raise NotImplementedError

    def read(self) -> bytes | None:
        """Available bytes; None when the client went away."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _PtyConn(_Conn):
    def __init__(self, link: str) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or line editing before a client configures the port
        os.set_blocking(self.master, False)
        self.link = link
        tmp = f"{link}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, link)

    def fileno(self) -> int:
        return self.master

    def read(self) -> bytes | None:
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError:
            return None

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # nobody reading: output is lost, as on a real UART
            os.write(self.master, data)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _SocketConn(_Conn):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(2.0)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> bytes | None:
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, TimeoutError):
            return b""
        except OSError:
            return None
        return data or None

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class FakeSerial:
    """The client end of :meth:`FakeModem.open_stream`: the pyserial subset AtChannel uses.

    ``read`` waits up to ``timeout`` seconds and returns what is available;
    after the modem is unplugged ``read`` and ``write`` raise OSError(EIO).
    """

    def __init__(self, sock: socket.socket, timeout: float = 0.1) -> None:
        self._sock = sock
        self.timeout = timeout
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        readable, _, _ = select.select([self._sock], [], [], 0)
        if not readable:
            return 0
        buf = bytearray(4)
        fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, buf)
        return max(1, int.from_bytes(buf, "little"))  # 1 at EOF so that read() reports it

    def read(self, size: int = 1) -> bytes:
        readable, _, _ = select.select([self._sock], [], [], self.timeout)
        if not readable:
            return b""
        data = self._sock.recv(size)
        if not data:
            raise OSError(errno.EIO, "fake modem unplugged")
        return data

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def close(self) -> None:
        self.is_open = False
        self._sock.close()


class FakeModem:
    """A modem answering AT commands over a pty, a socket or an in-process stream."""

    def __init__(
        self,
        vendor: str = "quectel",
        *,
        imei: str = "867698041234567",
        imsi: str = "262011234567890",
    ) -> None:
        if vendor not in PROFILES:
            raise ValueError(f"unknown fake modem vendor {vendor!r}; expected one of {sorted(PROFILES)}")
        self.vendor = vendor
        self.profile = PROFILES[vendor]
        self.imei = imei
        self.imsi = imsi
        # radio and network (dBm / dB; None = not known)
        self.rssi: float | None = -65.0
        self.ber: int | None = None
        self.rsrp: float | None = -95.0
        self.rsrq: float | None = -10.0
        self.sinr: float | None = 10.0
        self.rscp: float | None = -85.0
        self.ecno: float | None = -6.0
        self.stat = 1
        self.act = 7
        self.mcc = 262
        self.mnc = 1
        self.mnc_digits = 2
        self.operator = "Telekom.de"
        self.lac = 0xD2AB
        self.cell_id = 0x1A2D001
        self.band = 3
        self.earfcn = 1300
        self.pci = 123
        self.contexts: dict[int, tuple[str, str]] = {1: ("IP", "internet.telekom"), 2: ("IPV4V6", "ims")}
        self.active: set[int] = {1}
        # SMS
        self.sent_sms: list[str] = []
        self.messages: dict[int, tuple[int, str]] = {}
        self._mr = 0
        self.msisdn: str | None = None
        """Own number for ``AT+CNUM`` (None: the SIM does not know it)."""
        self.service_centre = "+491710760000"
        self.csms = 0
        """``AT+CSMS`` service: 1 means every ``+CMT`` wants an ``AT+CNMA``."""
        self.unacked = 0
        """``+CMT`` deliveries not yet acknowledged (service 1 only)."""
        self.on_submit: Callable[[str], None] | None = None
        """Called in the modem thread with each accepted PDU-mode ``AT+CMGS`` PDU (hex)."""
        # bookkeeping
        self.commands: list[str] = []
        self.responsive = True
        self._scripted: dict[str, tuple[list[str], str]] = {}
        self._during: list[tuple[str, str]] = []
        self._defaults()
        # machinery
        self._thread: threading.Thread | None = None
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], threading.Event, list[Any]]] = (
            queue.SimpleQueue()
        )
        self._stopping = False
        self._conn: _Conn | None = None
        self._listener: socket.socket | None = None
        self._transport: str | None = None
        self._plugged = True
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._link: str | None = None
        self._socket_addr: tuple[str, int] | None = None
        self._out = bytearray()
        self._line = bytearray()
        self._prompt: tuple[str, str, bytearray] | None = None

    def _defaults(self) -> None:
        """Settings a restart forgets."""
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.cnmi: tuple[int, ...] = (2, 1, 0, 0, 0)
        self.creg_n = 0
        self.cgreg_n = 0
        self.cereg_n = 0
        self.cops_format = 0
        self.ucged_mode = 0
        self._prompt = None
        self._line = bytearray()

    # -- thread machinery ---------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"fake-modem-{self.vendor}", daemon=True)
            self._thread.start()

    def _call(self, func: Callable[[], T]) -> T:
        """Run ``func`` in the modem thread (inline when the thread is not running or is the caller)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or threading.current_thread() is thread:
            result = func()
            self._flush()
            return result
        done = threading.Event()
        box: list[Any] = []
        self._tasks.put((func, done, box))
        os.write(self._wake_w, b"x")
        if not done.wait(CALL_TIMEOUT):
            raise TimeoutError("fake modem thread did not respond")
        if box and isinstance(box[0], BaseException):
            raise box[0]
        return cast(T, box[0])

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select(timeout=1.0):
                tag = key.data
                if tag == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    self._drain_tasks()
                elif tag == "listen":
                    self._accept()
                elif tag == "conn":
                    conn = self._conn
                    if conn is None or key.fd != conn.fileno():
                        continue
                    data = conn.read()
                    if data is None:
                        self._drop_conn()
                    elif data:
                        self._on_input(data)
                self._flush()

    def _drain_tasks(self) -> None:
        while True:
            try:
                func, done, box = self._tasks.get_nowait()
            except queue.Empty:
                return
            try:
                box.append(func())
            except BaseException as exc:
                box.append(exc)
            self._flush()
            done.set()

    def _set_conn(self, conn: _Conn | None) -> None:
        self._drop_conn()
        self._conn = conn
        if conn is not None:
            self._sel.register(conn.fileno(), selectors.EVENT_READ, "conn")

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.fileno())
        conn.close()
        self._out.clear()

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        self._set_conn(_SocketConn(sock))

    def _listen(self) -> None:
        assert self._socket_addr is not None
        listener = socket.create_server(self._socket_addr)
        self._socket_addr = listener.getsockname()[:2]
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, "listen")

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(listener)
            listener.close()

    def _flush(self) -> None:
        if not self._out:
            return
        data, self._out = bytes(self._out), bytearray()
        if self._conn is not None:
            self._conn.write(data)

    # -- transports -------------------------------------------------------------------

    def serve_pty(self) -> str:
        """Serve on a new pty; returns the path of a symlink to it that survives replug."""

        def setup() -> str:
            self._stop_listening()
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="fakemodem-")
                self._link = os.path.join(self._tmpdir.name, "ttyFAKE0")
            assert self._link is not None
            self._transport = "pty"
            self._plugged = True
            self._set_conn(_PtyConn(self._link))
            return self._link

        self._ensure_thread()
        return self._call(setup)

    def serve_socket(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: any free port); returns the ``socket://`` URL for pyserial."""

        def setup() -> str:
            self._drop_conn()
            self._stop_listening()
            self._transport = "socket"
            self._plugged = True
            self._socket_addr = (host, port)
            self._listen()
            assert self._socket_addr is not None
            return f"socket://{self._socket_addr[0]}:{self._socket_addr[1]}"

        self._ensure_thread()
        return self._call(setup)

    def open_stream(self) -> FakeSerial:
        """A new in-process connection (replacing the previous one); OSError(ENOENT) while unplugged."""

        def setup() -> FakeSerial:
            if not self._plugged and self._transport == "stream":
                raise OSError(errno.ENOENT, "fake modem is unplugged")
            self._stop_listening()
            self._transport = "stream"
            self._plugged = True
            mine, theirs = socket.socketpair()
            self._set_conn(_SocketConn(mine))
            return FakeSerial(theirs)

        self._ensure_thread()
        return self._call(setup)

    def unplug(self) -> None:
        """The device disappears: the connection closes and the port cannot be opened."""

        def act() -> None:
            self._plugged = False
            self._drop_conn()
            self._stop_listening()

        self._call(act)

    def replug(self, *, restart: bool = True) -> None:
        """The device comes back (restarted unless ``restart`` is False), on the same path/URL."""

        def act() -> None:
            if self._plugged:
                return
            if restart:
                self._defaults()
            self._plugged = True
            if self._transport == "pty":
                assert self._link is not None
                self._set_conn(_PtyConn(self._link))
            elif self._transport == "socket":
                self._listen()

        self._call(act)

    @property
    def plugged(self) -> bool:
        return self._plugged

    def close(self) -> None:
        """Stop the modem thread and release every transport."""

        def act() -> None:
            self._drop_conn()
            self._stop_listening()
            self._stopping = True

        self._call(act)
        if self._thread is not None and self._thread is not threading.current_thread():
            os.write(self._wake_w, b"x")
            self._thread.join(2.0)
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> FakeModem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- test controls ----------------------------------------------------------------

    def reset(self) -> None:
        """Restart: settings return to defaults (echo on, CMEE=0, ...) and ``RDY`` is sent."""

        def act() -> None:
            self._defaults()
            self._urc("RDY")

        self._call(act)

    def hang(self, hung: bool = True) -> None:
        """Stop (or resume) answering: input is swallowed without echo or result codes."""

        def act() -> None:
            self.responsive = not hung

        self._call(act)

    def inject_unsolicited(self, line: str, *, during: str | None = None) -> None:
        """Send a URC now, or with ``during`` inside the answer to the next command starting with it."""

        def act() -> None:
            if during is None:
                self._urc(line)
            else:
                self._during.append((during.upper(), line))

        self._call(act)

    def set_response(self, command: str, lines: Sequence[str] = (), final: str = "OK") -> None:
        """Answer ``command`` (exact, case-insensitive) with ``lines`` and ``final`` until cleared."""

        def act() -> None:
            self._scripted[command.strip().upper()] = (list(lines), final)

        self._call(act)

    def fail(self, command: str, final: str = "ERROR") -> None:
        """Answer ``command`` with the error ``final`` until :meth:`clear_responses`."""
        self.set_response(command, (), final)

    def clear_responses(self) -> None:
        """Forget every :meth:`set_response`/:meth:`fail` script."""
        self._call(self._scripted.clear)

    def set_signal(
        self,
        *,
        rssi: float | EllipsisType | None = ...,
        ber: int | EllipsisType | None = ...,
        rsrp: float | EllipsisType | None = ...,
        rsrq: float | EllipsisType | None = ...,
        sinr: float | EllipsisType | None = ...,
        rscp: float | EllipsisType | None = ...,
        ecno: float | EllipsisType | None = ...,
    ) -> None:
        """Set measurements in dBm/dB (None: not detectable; omitted: unchanged)."""
        changes = {"rssi": rssi, "ber": ber, "rsrp": rsrp, "rsrq": rsrq, "sinr": sinr, "rscp": rscp,
                   "ecno": ecno}  # fmt: skip

        def act() -> None:
            for name, value in changes.items():
                if value is not ...:
                    setattr(self, name, value)

        self._call(act)

    def set_cell(
        self,
        *,
        stat: int | None = None,
        act: int | None = None,
        mcc: int | None = None,
        mnc: int | None = None,
        mnc_digits: int | None = None,
        lac: int | None = None,
        cell_id: int | None = None,
        band: int | None = None,
        operator: str | None = None,
    ) -> None:
        """Change registration/cell facts (None: unchanged); emits +CREG/+CEREG URCs when enabled."""
        changes = {"stat": stat, "act": act, "mcc": mcc, "mnc": mnc, "mnc_digits": mnc_digits, "lac": lac,
                   "cell_id": cell_id, "band": band, "operator": operator}  # fmt: skip

        def apply() -> None:
            for name, value in changes.items():
                if value is not None:
                    setattr(self, name, value)
            if self.cereg_n and self._lte:
                self._urc("+CEREG: " + self._reg_fields(self.cereg_n, urc=True))
            if self.creg_n:
                self._urc("+CREG: " + self._reg_fields(self.creg_n, urc=True))

        self._call(apply)

    def set_apn(self, cid: int, apn: str, *, pdp_type: str = "IP", active: bool = True) -> None:
        """Define PDP context ``cid`` with ``apn`` (active or not)."""

        def act() -> None:
            self.contexts[cid] = (pdp_type, apn)
            if active:
                self.active.add(cid)
            else:
                self.active.discard(cid)

        self._call(act)

    def deliver_sms(self, pdu_hex: str) -> int | None:
        """A message arrives: per ``AT+CNMI`` stored with ``+CMTI`` or routed as ``+CMT``.

        Returns the storage index, or None when routed directly or the store is full.
        """

        def act() -> int | None:
            mt = self.cnmi[1] if len(self.cnmi) > 1 else 0
            if mt in (2, 3) and self.cmgf == 0:
                self._urc(f"+CMT: ,{tpdu_length(pdu_hex)}", pdu_hex.upper())
                self.unacked += self.csms == 1
                return None
            index = next((i for i in range(SMS_CAPACITY) if i not in self.messages), None)
            if index is None:
                return None
            self.messages[index] = (0, pdu_hex.upper())
            if mt != 0:
                self._urc(f'+CMTI: "SM",{index}')
            return index

        return self._call(act)

    # -- output helpers ---------------------------------------------------------------

    def _urc(self, line: str, body: str | None = None) -> None:
        self._out += b"\r\n" + line.encode() + b"\r\n"
        if body is not None:
            self._out += body.encode() + b"\r\n"

    def _answer(self, command: str, lines: Sequence[str], final: str) -> None:
        if lines:
            self._out += b"\r\n" + "\r\n".join(lines).encode() + b"\r\n"
        upper = command.upper()
        for item in list(self._during):
            if upper.startswith(item[0]):
                self._during.remove(item)
                self._urc(item[1])
        self._out += b"\r\n" + final.encode() + b"\r\n"

    def _cme(self, code: int) -> str:
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2:
            return f"+CME ERROR: {_CME_TEXT.get(code, 'unknown')}"
        return f"+CME ERROR: {code}"

    def _cms(self, code: int) -> str:
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2:
            return f"+CMS ERROR: {_CMS_TEXT.get(code, 'unknown error')}"
        return f"+CMS ERROR: {code}"

    # -- input ------------------------------------------------------------------------

    def _on_input(self, data: bytes) -> None:
        if not self.responsive:
            return
        for byte in data:
            if self._prompt is not None:
                if self.echo:
                    self._out.append(byte)
                if byte == CTRL_Z:
                    command, address, payload = self._prompt
                    self._prompt = None
                    self._finish_send(command, address, payload.decode("ascii", "replace"))
                elif byte == ESC:
                    self._prompt = None
                else:
                    self._prompt[2].append(byte)
                continue
            if self.echo:
                self._out.append(byte)
            if byte == 0x0D:
                line = self._line.decode("ascii", "replace").strip()
                self._line = bytearray()
                if line:
                    self._command_line(line)
            elif byte == 0x08:
                del self._line[-1:]
            elif byte != 0x0A:
                self._line.append(byte)

    def _command_line(self, line: str) -> None:
        if line[:2].upper() != "AT":
            return  # a modem ignores anything that is not a command
        self.commands.append(line)
        scripted = self._scripted.get(line.upper())
        if scripted is not None:
            self._answer(line, scripted[0], scripted[1])
            return
        result = self._execute(line[2:])
        if result is None:
            self._answer(line, [], "ERROR")
        elif not isinstance(result, _NoAnswer):
            self._answer(line, result[0], result[1])

    def _execute(self, body: str) -> Result:
        upper = body.upper()
        if upper == "":
            return [], "OK"
        if upper in ("E0", "E1", "E"):
            self.echo = upper == "E1"
            return [], "OK"
        if upper in ("I", "I0"):
            return [line.format(imei=self.imei) for line in self.profile.ati], "OK"
        if upper in ("Z", "&F"):
            self._defaults()
            return [], "OK"
        match = _EXTENDED.match(body)
        if match is None:
            return None
        name = match.group(1).upper()
        rest = match.group(2)
        if rest == "?":
            kind, args = "read", ""
        elif rest == "=?":
            kind, args = "test", ""
        elif rest.startswith("="):
            kind, args = "set", rest[1:]
        elif rest == "":
            kind, args = "exec", ""
        else:
            return None
        handler = self._handlers().get(name)
        if handler is None:
            return None
        return handler(kind, args)

    def _handlers(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "+CGMI": self._identity(self.profile.cgmi),
            "+GMI": self._identity(self.profile.cgmi),
            "+CGMM": self._identity(self.profile.cgmm),
            "+GMM": self._identity(self.profile.cgmm),
            "+CGMR": self._identity(self.profile.cgmr),
            "+GMR": self._identity(self.profile.cgmr),
            "+CGSN": self._identity(self.imei),
            "+GSN": self._identity(self.imei),
            "+CIMI": self._identity(self.imsi),
            "+CMEE": self._h_cmee,
            "+CPIN": lambda kind, args: (["+CPIN: READY"], "OK") if kind == "read" else None,
            "+CFUN": self._h_cfun,
            "+CSQ": self._h_csq,
            "+CESQ": self._h_cesq,
            "+COPS": self._h_cops,
            "+CREG": self._h_reg("+CREG", "creg_n"),
            "+CGREG": self._h_reg("+CGREG", "cgreg_n"),
            "+CEREG": self._h_reg("+CEREG", "cereg_n"),
            "+CGDCONT": self._h_cgdcont,
            "+CGACT": self._h_cgact,
            "+CMGF": self._h_cmgf,
            "+CNMI": self._h_cnmi,
            "+CMGS": self._h_cmgs,
            "+CMGR": self._h_cmgr,
            "+CMGD": self._h_cmgd,
            "+CMGL": self._h_cmgl,
            "+CPMS": self._h_cpms,
            "+CSCA": self._h_csca,
            "+CSMS": self._h_csms,
            "+CNMA": self._h_cnma,
            "+CNUM": self._h_cnum,
        }
        vendor_table: dict[str, dict[str, Handler]] = {
            "quectel": {"+QENG": self._h_qeng},
            "simcom": {"+CPSI": self._h_cpsi},
            "ublox": {"+UCGED": self._h_ucged},
            "telit": {"#RFSTS": self._h_rfsts},
        }
        table.update(vendor_table[self.vendor])
        return table

    # -- command handlers ----------------------------------------------------------------

    @staticmethod
    def _identity(value: str) -> Handler:
        def handler(kind: str, args: str) -> Result:
            return ([value], "OK") if kind == "exec" else ([], "OK") if kind == "test" else None

        return handler

    def _h_cmee(self, kind: str, args: str) -> Result:
        if kind == "read":
            return [f"+CMEE: {self.cmee}"], "OK"
        if kind == "set" and args.strip() in ("0", "1", "2"):
            self.cmee = int(args)
            return [], "OK"
        return [], self._cme(50)

    def _h_cfun(self, kind: str, args: str) -> Result:
        if kind == "read":
            return ["+CFUN: 1"], "OK"
        if kind == "set" and args.replace(" ", "") == "1,1":
            self._answer("AT+CFUN", [], "OK")
            self._defaults()
            self._urc("RDY")
            return _NO_ANSWER
        if kind == "set":
            return [], "OK"
        return None

    @property
    def _registered(self) -> bool:
        return self.stat in (1, 5)

    @property
    def _lte(self) -> bool:
        return self.act in (7, 9, 10, 13)

    @property
    def _umts(self) -> bool:
        return self.act in (2, 4, 5, 6)

    def _h_csq(self, kind: str, args: str) -> Result:
        if kind == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"], "OK"
        if kind != "exec":
            return None
        rssi = 99 if self.rssi is None or not self._registered else _clamp((self.rssi + 113) / 2, 0, 31)
        ber = 99 if self.ber is None else self.ber
        return [f"+CSQ: {rssi},{ber}"], "OK"

    def _h_cesq(self, kind: str, args: str) -> Result:
        if kind != "exec":
            return None
        values = [99, 99, 255, 255, 255, 255]
        if self._registered and self._lte:
            if self.rsrq is not None:
                values[4] = _clamp((self.rsrq + 20) * 2, 0, 34)
            if self.rsrp is not None:
                values[5] = _clamp(self.rsrp + 141, 0, 97)
        elif self._registered and self._umts:
            if self.rscp is not None:
                values[2] = _clamp(self.rscp + 121, 0, 96)
            if self.ecno is not None:
                values[3] = _clamp((self.ecno + 24.5) * 2, 0, 49)
        elif self._registered:
            if self.rssi is not None:
                values[0] = _clamp(self.rssi + 111, 0, 63)
            if self.ber is not None:
                values[1] = self.ber
        return ["+CESQ: " + ",".join(map(str, values))], "OK"

    @property
    def _plmn(self) -> str:
        return f"{self.mcc:03d}{self.mnc:0{self.mnc_digits}d}"

    def _h_cops(self, kind: str, args: str) -> Result:
        if kind == "read":
            if not self._registered:
                return ["+COPS: 0"], "OK"
            oper = self._plmn if self.cops_format == 2 else self.operator
            return [f'+COPS: 0,{self.cops_format},"{oper}",{self.act}'], "OK"
        if kind == "set":
            parts = [p.strip() for p in args.split(",")]
            if parts and parts[0] == "3" and len(parts) > 1 and parts[1] in ("0", "1", "2"):
                self.cops_format = int(parts[1])
                return [], "OK"
            if parts and parts[0] in ("0", "1", "2", "4"):
                return [], "OK"
            return [], self._cme(50)
        if kind == "test":
            entry = f'(2,"{self.operator}","{self.operator[:8]}","{self._plmn}",{self.act})'
            return [f"+COPS: {entry},,(0-4),(0-2)"], "OK"
        return None

    def _reg_fields(self, n: int, *, urc: bool) -> str:
        parts = [] if urc else [str(n)]
        parts.append(str(self.stat))
        if n >= 2 and self._registered:
            parts += [f'"{self.lac:04X}"', f'"{self.cell_id:08X}"', str(self.act)]
        return ",".join(parts)

    def _h_reg(self, prefix: str, attr: str) -> Handler:
        def handler(kind: str, args: str) -> Result:
            if kind == "read":
                return [f"{prefix}: " + self._reg_fields(getattr(self, attr), urc=False)], "OK"
            if kind == "set" and args.strip() in ("0", "1", "2"):
                setattr(self, attr, int(args))
                return [], "OK"
            if kind == "test":
                return [f"{prefix}: (0-2)"], "OK"
            return [], self._cme(50)

        return handler

    def _h_cgdcont(self, kind: str, args: str) -> Result:
        if kind == "read":
            return [f'+CGDCONT: {cid},"{ptype}","{apn}","0.0.0.0",0,0'
                    for cid, (ptype, apn) in sorted(self.contexts.items())], "OK"  # fmt: skip
        if kind == "set":
            parts = [p.strip().strip('"') for p in args.split(",")]
            if not parts[0].isdigit():
                return [], self._cme(50)
            cid = int(parts[0])
            if len(parts) == 1:
                self.contexts.pop(cid, None)
                self.active.discard(cid)
            else:
                self.contexts[cid] = (parts[1] or "IP", parts[2] if len(parts) > 2 else "")
            return [], "OK"
        return None

    def _h_cgact(self, kind: str, args: str) -> Result:
        if kind == "read":
            return [f"+CGACT: {cid},{int(cid in self.active)}" for cid in sorted(self.contexts)], "OK"
        if kind == "set":
            parts = [p.strip() for p in args.split(",")]
            if parts[0] not in ("0", "1"):
                return [], self._cme(50)
            for cid in [int(p) for p in parts[1:] if p.isdigit()] or list(self.contexts):
                (self.active.add if parts[0] == "1" else self.active.discard)(cid)
            return [], "OK"
        return None

    def _h_cmgf(self, kind: str, args: str) -> Result:
        if kind == "read":
            return [f"+CMGF: {self.cmgf}"], "OK"
        if kind == "set" and args.strip() in ("0", "1"):
            self.cmgf = int(args)
            return [], "OK"
        return [], self._cms(302) if kind == "set" else "OK"

    def _h_cnmi(self, kind: str, args: str) -> Result:
        if kind == "read":
            return ["+CNMI: " + ",".join(map(str, self.cnmi))], "OK"
        if kind == "set":
            parts = [p.strip() for p in args.split(",")]
            if not all(p.isdigit() for p in parts if p):
                return [], self._cms(302)
            values = list(self.cnmi)
            for i, p in enumerate(parts[: len(values)]):
                if p:
                    values[i] = int(p)
            self.cnmi = tuple(values)
            return [], "OK"
        return None

    def _h_cmgs(self, kind: str, args: str) -> Result:
        if kind != "set":
            return [], "OK" if kind == "test" else self._cms(302)
        address = args.strip()
        if self.cmgf == 0 and not address.isdigit():
            return [], self._cms(304)
        self._prompt = ("AT+CMGS", address, bytearray())
        self._out += b"\r\n> "
        return _NO_ANSWER

    def _finish_send(self, command: str, address: str, payload: str) -> None:
        text = payload.strip()
        if self.cmgf == 0:
            valid = bool(re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", text))
            if not valid or tpdu_length(text) != int(address):
                self._answer(command, [], self._cms(304))
                return
            text = text.upper()
        self.sent_sms.append(text)
        self._mr = (self._mr + 1) % 256
        self._answer(command, [f"+CMGS: {self._mr}"], "OK")
        if self.on_submit is not None and self.cmgf == 0:
            self.on_submit(text)

    def _h_cmgr(self, kind: str, args: str) -> Result:
        if kind != "set" or not args.strip().isdigit():
            return [], "OK" if kind == "test" else self._cms(302)
        if self.cmgf != 0:
            return [], self._cms(303)
        index = int(args)
        entry = self.messages.get(index)
        if entry is None:
            return [], self._cms(321)
        stat, pdu = entry
        if stat == 0:
            self.messages[index] = (1, pdu)
        return [f"+CMGR: {stat},,{tpdu_length(pdu)}", pdu], "OK"

    def _h_cmgd(self, kind: str, args: str) -> Result:
        if kind == "test":
            return [f"+CMGD: ({','.join(map(str, sorted(self.messages)))}),(0-4)"], "OK"
        if kind != "set":
            return None
        parts = [p.strip() for p in args.split(",")]
        if not parts[0].isdigit():
            return [], self._cms(302)
        flag = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if flag == 4:
            self.messages.clear()
        elif flag == 1:
            self.messages = {i: m for i, m in self.messages.items() if m[0] != 1}
        else:
            self.messages.pop(int(parts[0]), None)
        return [], "OK"

    def _h_cmgl(self, kind: str, args: str) -> Result:
        if kind != "set" or self.cmgf != 0 or not args.strip().isdigit():
            return [], "OK" if kind == "test" else self._cms(302)
        wanted = int(args)
        lines: list[str] = []
        for index, (stat, pdu) in sorted(self.messages.items()):
            if wanted in (4, stat):
                lines += [f"+CMGL: {index},{stat},,{tpdu_length(pdu)}", pdu]
                if stat == 0:
                    self.messages[index] = (1, pdu)
        return lines, "OK"

    def _h_csca(self, kind: str, args: str) -> Result:
        if kind == "read":
            toa = 145 if self.service_centre.startswith("+") else 129
            return [f'+CSCA: "{self.service_centre}",{toa}'], "OK"
        if kind == "set":
            number = args.split(",")[0].strip().strip('"')
            if not number.lstrip("+").isdigit():
                return [], self._cms(304)
            self.service_centre = number
            return [], "OK"
        return None

    def _h_csms(self, kind: str, args: str) -> Result:
        if kind == "read":
            return [f"+CSMS: {self.csms},1,1,1"], "OK"
        if kind == "set" and args.strip() in ("0", "1"):
            self.csms = int(args)
            return ["+CSMS: 1,1,1"], "OK"
        return [], "OK" if kind == "test" else self._cms(302)

    def _h_cnma(self, kind: str, args: str) -> Result:
        if kind not in ("exec", "set"):
            return [], "OK" if kind == "test" else self._cms(302)
        if self.csms != 1 or self.unacked == 0:
            return [], self._cms(340)
        self.unacked -= 1
        return [], "OK"

    def _h_cnum(self, kind: str, args: str) -> Result:
        if kind != "exec":
            return [], "OK" if kind == "test" else self._cme(50)
        if self.msisdn is None:
            return [], "OK"
        toa = 145 if self.msisdn.startswith("+") else 129
        return [f'+CNUM: "","{self.msisdn}",{toa}'], "OK"

    def _h_cpms(self, kind: str, args: str) -> Result:
        used = len(self.messages)
        store = f'"SM",{used},{SMS_CAPACITY}'
        if kind == "read":
            return [f"+CPMS: {store},{store},{store}"], "OK"
        if kind == "set":
            return [f"+CPMS: {used},{SMS_CAPACITY},{used},{SMS_CAPACITY},{used},{SMS_CAPACITY}"], "OK"
        return None

    # -- vendor serving-cell commands -----------------------------------------------------------

    @staticmethod
    def _num(value: float | None, fmt: str = "{:.0f}") -> str:
        return "-" if value is None else fmt.format(value)

    def _h_qeng(self, kind: str, args: str) -> Result:
        if kind != "set" or args.strip().strip('"').lower() != "servingcell":
            return [], self._cme(50) if kind == "set" else "OK"
        if not self._registered:
            return ['+QENG: "servingcell","SEARCH"'], "OK"
        mnc = f"{self.mnc:0{self.mnc_digits}d}"
        if self._lte:
            rat = '"CAT-NB"' if self.act == 9 else '"LTE"'
            duplex = "TDD" if 33 <= self.band <= 53 else "FDD"
            sinr = "-" if self.sinr is None else str(_clamp((self.sinr + 20) * 5, 0, 250))
            fields = [
                '"servingcell"', '"NOCONN"', rat, f'"{duplex}"', str(self.mcc), mnc, f"{self.cell_id:X}",
                str(self.pci), str(self.earfcn), str(self.band), "5", "5", f"{self.lac:X}",
                self._num(self.rsrp), self._num(self.rsrq), self._num(self.rssi), sinr, "33",
            ]  # fmt: skip
        elif self._umts:
            fields = ['"servingcell"', '"NOCONN"', '"WCDMA"', str(self.mcc), mnc, f"{self.lac:X}",
                      f"{self.cell_id:X}", "10700", "123", "1", self._num(self.rscp), self._num(self.ecno),
                      "-", "-", "-", "-", "-"]  # fmt: skip
        else:
            fields = ['"servingcell"', '"NOCONN"', '"GSM"', str(self.mcc), mnc, f"{self.lac:X}",
                      f"{self.cell_id:X}", "27", "65", "0", "-", "-", "-"]  # fmt: skip
        return ["+QENG: " + ",".join(fields)], "OK"

    def _h_cpsi(self, kind: str, args: str) -> Result:
        if kind != "read":
            return None
        if not self._registered:
            return ["+CPSI: NO SERVICE,Online"], "OK"
        plmn = f"{self.mcc:03d}-{self.mnc:0{self.mnc_digits}d}"
        if self._lte:
            mode = "LTE NB-IOT" if self.act == 9 else "LTE"
            tenths = [self._num(None if v is None else v * 10) for v in (self.rsrq, self.rsrp, self.rssi)]
            fields = [mode, "Online", plmn, f"0x{self.lac:04X}", str(self.cell_id), str(self.pci),
                      f"EUTRAN-BAND{self.band}", str(self.earfcn), "5", "5", *tenths,
                      self._num(self.sinr)]  # fmt: skip
        elif self._umts:
            fields = ["WCDMA", "Online", plmn, f"0x{self.lac:04X}", str(self.cell_id), "WCDMA IMT 2000",
                      "123", "10700", "0", "8.5", "65", "33", "34", "500"]  # fmt: skip
        else:
            fields = ["GSM", "Online", plmn, f"0x{self.lac:04X}", str(self.cell_id), "27 EGSM 900",
                      self._num(self.rssi), "0", "33-33"]  # fmt: skip
        return ["+CPSI: " + ",".join(fields)], "OK"

    def _h_ucged(self, kind: str, args: str) -> Result:
        if kind == "set":
            if args.strip() not in ("0", "2"):
                return [], self._cme(50)
            self.ucged_mode = int(args)
            return [], "OK"
        if kind != "read":
            return None
        if self.ucged_mode != 2:
            return [f"+UCGED: {self.ucged_mode}"], "OK"
        if not self._registered:
            return ["+UCGED: 2", "6,0,000,00"], "OK"  # no service: no cell line
        rsrp = 255 if self.rsrp is None else _clamp(self.rsrp + 141, 0, 97)
        rsrq = 255 if self.rsrq is None else _clamp((self.rsrq + 20) * 2, 0, 34)
        sinr = "255" if self.sinr is None else f"{self.sinr:.2f}"
        rat = 7 if self.act == 9 else 6
        return [
            "+UCGED: 2",
            f"{rat},4,{self.mcc:03d},{self.mnc:0{self.mnc_digits}d}",
            f"{self.earfcn},{self.band},25,50,{self.lac:x},{self.cell_id:x},{self.pci},00000000,ffff,ff,"
            f"{rsrp},{rsrq},{sinr},255,255,255,{rsrp},11,255,0,255,255,0,0",
        ], "OK"

    def _h_rfsts(self, kind: str, args: str) -> Result:
        if kind != "exec":
            return None
        plmn = f'"{self.mcc:03d} {self.mnc:0{self.mnc_digits}d}"'
        if not self._registered:
            return [f"#RFSTS: {plmn}"], "OK"
        tail = [f'"{self.imsi}"', f'"{self.operator}"', "3"]
        if self._lte:
            signal = [self._num(self.rsrp), self._num(self.rssi), self._num(self.rsrq)]
            fields = [plmn, str(self.earfcn), *signal, f"{self.lac:04X}", "255", "", "128", "19", "0",
                      f"{self.cell_id:07X}", *tail, str(self.band)]  # fmt: skip
        elif self._umts:
            fields = [plmn, "10700", "300", self._num(self.ecno), self._num(self.rscp), self._num(self.rssi),
                      f"{self.lac:04X}", "00", "-", "64", "19", "0", "I", "0.0", f"{self.cell_id:07X}",
                      *tail, "1"]  # fmt: skip
        else:
            fields = [plmn, "65", self._num(self.rssi), f"{self.lac:04X}", "00", "0", "19", "0", "I",
                      f"{self.cell_id:04X}", *tail, "1"]  # fmt: skip
        return ["#RFSTS: " + ",".join(fields)], "OK"
