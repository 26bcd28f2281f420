"""The install helper: runs as root, installs the package the daemon downloaded.

``python -m lwm2md.firmware.helper [--config FILE] [--state-dir DIR] [--work-dir DIR]``

Started by ``lwm2md-install.service`` (``systemctl start``, allowed to the
lwm2md user by a polkit rule for that one unit), never by the daemon
directly. It trusts nothing the daemon wrote beyond the choice of package
type and the expected digest:

1. the installer argv comes from the ``[firmware] installers`` table of the
   root-owned configuration file, by package type; a type without one is
   refused (Update Result 6);
2. the package is always ``<state_dir>/firmware/package`` (opened without
   following symlinks, a regular file), copied into ``--work-dir`` (0700,
   root) and the SHA-256 of the copy must equal the request's, so what is
   checked is what is installed (5 when not; 2 when the copy does not fit);
3. the installer runs on the copy (``{package}`` replaced by its path, named
   with the type's usual extension, e.g. ``.deb`` for ``apt-get install``),
   bounded by ``install_timeout``; exit 0 is success (1), anything else a
   failure (8) with the output's tail as the reason;
4. the outcome goes to ``<state_dir>/firmware/install-result.json``, owned
   by the state directory's owner, before an optional reboot
   (``reboot_after_install``).

Exit status 0 on success, 1 on a failed install, 2 when the request or the
configuration cannot be used.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path as FsPath

from lwm2md.errors import ConfigError
from lwm2md.firmware.installer import (
    REQUEST_FILE,
    RESULT_FAILED,
    RESULT_FILE,
    RESULT_INTEGRITY,
    RESULT_NO_STORAGE,
    RESULT_SUCCESS,
    RESULT_UNSUPPORTED_TYPE,
    tail,
)
from lwm2md.firmware.settings import PLACEHOLDER, FirmwareConfig, parse_firmware
from lwm2md.firmware.store import CHUNK, FIRMWARE_DIR, PACKAGE_NAME
from lwm2md.persist import StateError, StateFile

LOG = logging.getLogger("lwm2md.install-helper")

DEFAULT_CONFIG = "/etc/lwm2md/lwm2md.toml"
DEFAULT_STATE_DIR = "/var/lib/lwm2md"
DEFAULT_WORK_DIR = "/var/lib/lwm2md-install"
EXTENSIONS = {"deb": ".deb", "rauc": ".raucb", "swupdate": ".swu", "mender": ".mender", "script": ".sh"}
REBOOT = ("systemctl", "reboot")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class _Refused(Exception):
    def __init__(self, result: int, reason: str) -> None:
        super().__init__(reason)
        self.result = result


def _load(config_path: str) -> tuple[FirmwareConfig, str]:
    with open(config_path, "rb") as fh:
        data = tomllib.load(fh)
    table = data.get("firmware", {})
    state_dir = data.get("state_dir", DEFAULT_STATE_DIR)
    return parse_firmware(table, config_path), state_dir if isinstance(state_dir, str) else DEFAULT_STATE_DIR


def _copy(package: FsPath, target: FsPath) -> str:
    """Copy ``package`` (no symlinks, regular file) to ``target`` (0600); its SHA-256 hex."""
    digest = hashlib.sha256()
    try:
        src = os.open(package, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _Refused(RESULT_INTEGRITY, f"cannot open the package: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise _Refused(RESULT_INTEGRITY, "the package is not a regular file")
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(src, CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view):]
            os.fsync(dst)
        except OSError as exc:
            raise _Refused(RESULT_NO_STORAGE, f"cannot copy the package: {exc.strerror}") from None
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return digest.hexdigest()


def install(config: FirmwareConfig, firmware_dir: FsPath, work_dir: FsPath) -> tuple[str, int, str]:
    """Carry out the pending request; (request id, Update Result, reason). Raises _Refused."""
    try:
        request = StateFile(firmware_dir, REQUEST_FILE).load()
    except StateError as exc:
        raise _Refused(RESULT_FAILED, f"unusable install request: {exc.reason}") from None
    if request is None:
        raise _Refused(RESULT_FAILED, "no install request")
    ident, kind, expected = request.get("id"), request.get("type"), request.get("sha256")
    if not isinstance(ident, str) or not ident:
        raise _Refused(RESULT_FAILED, "install request without an id")
    try:
        if not isinstance(expected, str) or not _HEX64.fullmatch(expected):
            raise _Refused(RESULT_INTEGRITY, "install request without a SHA-256")
        argv = config.installers.get(kind) if isinstance(kind, str) else None
        if argv is None:
            raise _Refused(RESULT_UNSUPPORTED_TYPE, f"no installer configured for package type {kind!r}")
        work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = FsPath(tempfile.mkdtemp(prefix="install-", dir=work_dir))
        try:
            copy = scratch / f"package{EXTENSIONS.get(str(kind), '')}"
            actual = _copy(firmware_dir / PACKAGE_NAME, copy)
            if actual != expected:
                raise _Refused(RESULT_INTEGRITY, "SHA-256 of the package does not match; not installed")
            command = [a.replace(PLACEHOLDER, str(copy)) for a in argv]
            LOG.info("installing %s package with %s", kind, command[0])
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            try:
                done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, timeout=config.install_timeout, env=env,
                                      check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                reason = f"{command[0]} killed after {config.install_timeout:.0f} s"
                raise _Refused(RESULT_FAILED, reason) from None
            except OSError as exc:
                raise _Refused(RESULT_FAILED, f"cannot run {command[0]}: {exc.strerror or exc}") from None
            if done.returncode != 0:
                reason = f"{command[0]} exited with status {done.returncode}: {tail(done.stdout)}"
                raise _Refused(RESULT_FAILED, reason)
            return ident, RESULT_SUCCESS, f"installed with {command[0]}"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    except _Refused as refused:
        return ident, refused.result, str(refused)


def _report(firmware_dir: FsPath, ident: str, result: int, reason: str) -> None:
    """Write the result file and hand it to the state directory's owner."""
    state = StateFile(firmware_dir, RESULT_FILE)
    state.save({"id": ident, "result": result, "reason": reason})
    if os.geteuid() == 0:
        owner = os.stat(firmware_dir)
        os.chown(state.path, owner.st_uid, owner.st_gid)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lwm2md-install-helper", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        config, state_dir = _load(args.config)
    except (OSError, tomllib.TOMLDecodeError, ConfigError) as exc:
        LOG.error("cannot use %s: %s", args.config, exc)
        return 2
    firmware_dir = FsPath(args.state_dir or state_dir) / FIRMWARE_DIR
    try:
        ident, result, reason = install(config, firmware_dir, FsPath(args.work_dir))
    except _Refused as refused:
        LOG.error("%s", refused)
        return 2
    _report(firmware_dir, ident, result, reason)
    (LOG.info if result == RESULT_SUCCESS else LOG.error)("install %s: result %d: %s", ident, result, reason)
    if result == RESULT_SUCCESS and config.reboot_after_install:
        LOG.info("rebooting after the install")
        subprocess.run(REBOOT, check=False)
    return 0 if result == RESULT_SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
