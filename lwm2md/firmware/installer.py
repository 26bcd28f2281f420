"""Handing a downloaded package to the installer, and learning how it went.

The daemon never installs anything itself. For an Update it writes an
install request (``<state_dir>/firmware/install-request.json``: an id, the
package type and its SHA-256) and runs the configured helper command, by
default ``systemctl start lwm2md-install.service``. That unit runs
``python -m lwm2md.firmware.helper`` as root outside the daemon's sandbox
and cgroup (so restarting lwm2md does not kill an ``apt-get`` upgrading
it): the helper copies the package where the daemon cannot touch it,
checks the digest on the copy, runs the installer the root-owned
configuration names for that type, and writes
``install-result.json`` (id, Update Result, reason). The daemon reads that
file when the helper returns, or after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path as FsPath

from lwm2md.persist import StateError, StateFile

LOG = logging.getLogger(__name__)

REQUEST_FILE = "install-request.json"
RESULT_FILE = "install-result.json"
RESULT_SUCCESS = 1
RESULT_NO_STORAGE = 2
RESULT_INTEGRITY = 5
RESULT_UNSUPPORTED_TYPE = 6
RESULT_FAILED = 8
TAIL = 400


@dataclass(frozen=True)
class InstallRequest:
    """What the helper is asked to install: ``sha256`` is hex, ``package`` the file's path."""

    ident: str
    package_type: str
    sha256: str
    package: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.ident, "type": self.package_type, "sha256": self.sha256, "package": self.package}


@dataclass(frozen=True)
class InstallOutcome:
    """How an install went: ``result`` is the Update Result (1 success, 2, 5, 6 or 8)."""

    ident: str
    result: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.result == RESULT_SUCCESS


def tail(output: bytes | str, limit: int = TAIL) -> str:
    """The last ``limit`` characters of a command's output, stripped (never empty)."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    return text.strip()[-limit:] or "(no output)"


class Installer:
    """The daemon's side: write the request, run the helper, read the result.

    ``helper`` is the argv to run; ``timeout`` bounds it (the helper is
    killed, and the outcome is then whatever result file appears).
    """

    def __init__(self, firmware_dir: str | os.PathLike[str], helper: tuple[str, ...], timeout: float) -> None:
        self.directory = FsPath(firmware_dir)
        self.helper = helper
        self.timeout = timeout
        self._request = StateFile(self.directory, REQUEST_FILE)
        self._result = StateFile(self.directory, RESULT_FILE)

    def submit(self, request: InstallRequest) -> None:
        """Write the request (atomically) and drop any previous result."""
        self._result.remove()
        self._request.save(request.as_dict())

    def collect(self, ident: str) -> InstallOutcome | None:
        """The helper's outcome for ``ident``; None while there is none (or it is for another id)."""
        try:
            content = self._result.load()
        except StateError as exc:
            return InstallOutcome(ident, RESULT_FAILED, f"unreadable install result: {exc.reason}")
        if content is None or content.get("id") != ident:
            return None
        result = content.get("result")
        reason = content.get("reason")
        if type(result) is not int or result not in (1, 2, 5, 6, 8):
            return InstallOutcome(ident, RESULT_FAILED, f"install result {result!r} makes no sense")
        return InstallOutcome(ident, result, reason if isinstance(reason, str) else "")

    def clear(self) -> None:
        """Forget request and result (the outcome has been reported)."""
        self._request.remove()
        self._result.remove()

    async def run(self, ident: str) -> InstallOutcome | None:
        """Run the helper and return the outcome for ``ident`` (a failure when the helper left none).

        None when the helper was killed by a signal before any outcome was
        recorded: ``systemctl start`` is only a client, and systemd sends
        SIGTERM to every process of lwm2md.service when an installer
        restarts lwm2md (a self-update), while the install unit carries on.
        The outcome is then still to come; the caller waits for it.
        """
        shown = shlex.join(self.helper)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.helper,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            return InstallOutcome(ident, RESULT_FAILED, f"cannot start {shown}: {exc.strerror or exc}")
        timed_out = False
        try:
            async with asyncio.timeout(self.timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            output = b""
            timed_out = True
            LOG.error("firmware: %s killed after %.0f s", shown, self.timeout)
        except asyncio.CancelledError:  # the daemon stops; the install unit, if started, goes on
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()  # reap it and close its pipes before the loop goes
            raise
        outcome = self.collect(ident)
        if outcome is not None:
            return outcome
        status = proc.returncode
        if status is not None and status < 0 and not timed_out:
            LOG.warning("firmware: %s was killed by signal %d before the install finished", shown, -status)
            return None
        reason = f"{shown} left no result (status {status}): {tail(output)}"
        return InstallOutcome(ident, RESULT_FAILED, reason)
