"""The /5 state machine around Update: the real install helper, restarts, and the Update Result codes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path as FsPath

import pytest

from lwm2md.errors import MethodNotAllowed
from lwm2md.firmware.download import DownloadError, FetchSink, PackageUri
from lwm2md.firmware.object import CANCEL, PACKAGE_URI, UPDATE, Result, State
from lwm2md.firmware.settings import FirmwareConfig, parse_digest
from tests.firmware.support import Rig, blob, helper_argv, make_rig, sha256_hex, until

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
"""A helper that is still running when the daemon restarts."""


class FakeFetcher:
    """Serves ``data`` (or fails with ``error``) without a network."""

    def __init__(self, data: bytes = b"", error: DownloadError | None = None) -> None:
        self.data = data
        self.error = error
        self.calls = 0

    async def fetch(self, target: PackageUri, offset: int, validator: str | None, sink: FetchSink) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        sink.begin(0, '"v"', len(self.data))
        sink.write(self.data)

    async def close(self) -> None:
        return None


def script(body: str) -> bytes:
    return f"#!/bin/sh\n{body}\n".encode()


def setup(tmp_path: FsPath, package: bytes, **extra: object) -> tuple[FirmwareConfig, FakeFetcher]:
    """A config whose helper is the real lwm2md.firmware.helper, installing scripts with sh."""
    state_dir = tmp_path / "state"
    config_file = tmp_path / "lwm2md.toml"
    config_file.write_text('[firmware]\ninstallers = { script = ["/bin/sh", "{package}"] }\n')
    helper = tuple(helper_argv(config_file, state_dir, tmp_path / "work"))
    config = FirmwareConfig(installers={"script": ("/bin/sh", "{package}")}, helper=helper,
                            **extra)  # type: ignore[arg-type]  # fmt: skip
    return config, FakeFetcher(package)


def rig_for(tmp_path: FsPath, config: FirmwareConfig, fetcher: FakeFetcher) -> Rig:
    return make_rig(tmp_path / "state", config, fetchers={"http": fetcher})  # type: ignore[dict-item]


async def download(rig: Rig, uri: str = "http://repo.example/fw.sh") -> None:
    await rig.fw.start()
    rig.fw.write(PACKAGE_URI, uri)
    await rig.fw.idle()


def test_update_runs_the_installer_through_the_helper_and_reports_success(tmp_path: FsPath) -> None:
    marker = tmp_path / "installed"
    config, fetcher = setup(tmp_path, script(f"echo ok > {marker}"))

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        assert rig.fw.state == State.DOWNLOADED
        await rig.fw.execute(UPDATE, None)
        assert rig.fw.state == State.UPDATING
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.SUCCESS)
        assert marker.read_text() == "ok\n"
        assert rig.updated == [1], "the registration is asked to Update"
        assert rig.seen == [(1, 0), (2, 0), (3, 0), (0, 1)]
        assert not rig.fw.store.exists()
        await rig.fw.stop()

    asyncio.run(scenario())


def test_a_failing_installer_goes_back_to_downloaded_with_8(tmp_path: FsPath) -> None:
    config, fetcher = setup(tmp_path, script("echo disk on fire; exit 3"))

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        await rig.fw.execute(UPDATE, None)
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.DOWNLOADED, Result.FAILED)
        assert rig.fw.store.exists(), "the package stays for another try"
        assert rig.updated == []
        await rig.fw.stop()

    asyncio.run(scenario())


def test_update_survives_a_restart_between_update_and_result(tmp_path: FsPath) -> None:
    marker = tmp_path / "installed"
    config, fetcher = setup(tmp_path, script(f"echo ok > {marker}"))
    blocking = FirmwareConfig(installers=config.installers, helper=SLEEPER)

    async def first_life() -> None:
        rig = rig_for(tmp_path, blocking, fetcher)
        await download(rig)
        await rig.fw.execute(UPDATE, None)
        await until(lambda: (tmp_path / "state" / "firmware" / "install-request.json").exists())
        await rig.fw.stop()  # the daemon is restarted while the install runs

    async def second_life() -> Rig:
        rig = rig_for(tmp_path, config, fetcher)
        assert rig.fw.state == State.UPDATING, "the stored record says an update is running"
        await rig.fw.start()
        await rig.clock.advance(1.0)
        assert rig.fw.state == State.UPDATING, "no outcome yet"
        # meanwhile the install unit (outside the daemon) finishes and records the outcome
        done = subprocess.run(list(config.helper), capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        await rig.clock.advance(2.0)
        await rig.fw.idle()
        return rig

    asyncio.run(first_life())
    rig = asyncio.run(second_life())
    assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.SUCCESS)
    assert marker.exists()
    assert rig.updated == [1]
    assert rig.seen[-1] == (State.IDLE, Result.SUCCESS)


def test_a_helper_killed_by_a_signal_leaves_the_update_running(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    """Self-update: apt restarts lwm2md, SIGTERM kills `systemctl start` too; the install unit goes on."""
    marker = tmp_path / "installed"
    config, fetcher = setup(tmp_path, script(f"echo ok > {marker}"))
    killed = FirmwareConfig(installers=config.installers, helper=("/bin/sh", "-c", "kill -TERM $$"))

    async def scenario() -> None:
        rig = rig_for(tmp_path, killed, fetcher)
        await download(rig)
        await rig.fw.execute(UPDATE, None)
        await until(lambda: "killed by signal 15" in caplog.text or rig.fw.state != State.UPDATING)
        assert (rig.fw.state, rig.fw.result) == (State.UPDATING, Result.INITIAL), "no outcome yet, no 8"
        # the install unit, which the signal did not reach, finishes and records the outcome
        done = subprocess.run(list(config.helper), capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        await rig.clock.advance(2.0)
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.SUCCESS)
        assert rig.updated == [1]
        await rig.fw.stop()

    asyncio.run(scenario())


def test_no_outcome_by_the_deadline_is_failure(tmp_path: FsPath) -> None:
    config, fetcher = setup(tmp_path, script("exit 0"), install_timeout=10.0)
    blocking = FirmwareConfig(installers=config.installers, install_timeout=10.0,
                              helper=SLEEPER)  # fmt: skip

    async def first_life() -> None:
        rig = rig_for(tmp_path, blocking, fetcher)
        await download(rig)
        await rig.fw.execute(UPDATE, None)
        await until(lambda: (tmp_path / "state" / "firmware" / "install-request.json").exists())
        await rig.fw.stop()

    async def second_life() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await rig.fw.start()
        await rig.clock.advance(12.0)
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.DOWNLOADED, Result.FAILED)
        await rig.fw.stop()

    asyncio.run(first_life())
    asyncio.run(second_life())


def test_integrity_failure_at_update_never_reaches_the_installer(tmp_path: FsPath) -> None:
    marker = tmp_path / "installed"
    package = script(f"touch {marker}")
    config, fetcher = setup(tmp_path, package)

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        with pytest.raises(Exception, match="SHA-256"):
            await rig.fw.execute(UPDATE, "0='abc'")
        await rig.fw.execute(UPDATE, "0='" + "00" * 32 + "'")
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.INTEGRITY)
        assert not marker.exists() and not rig.fw.store.exists()
        await rig.fw.stop()

    asyncio.run(scenario())


def test_digest_from_the_uri_is_checked_when_the_download_ends(tmp_path: FsPath) -> None:
    package = script("exit 0")
    config, fetcher = setup(tmp_path, package)

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig, "http://repo.example/fw.sh#sha256=" + "11" * 32)
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.INTEGRITY)
        rig.fw.write(PACKAGE_URI, "http://repo.example/fw.sh#sha256=" + sha256_hex(package))
        await rig.fw.idle()
        assert rig.fw.state == State.DOWNLOADED
        await rig.fw.stop()

    asyncio.run(scenario())


def test_require_digest_refuses_a_package_without_one(tmp_path: FsPath) -> None:
    config, fetcher = setup(tmp_path, script("exit 0"), require_digest=True)

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        await rig.fw.execute(UPDATE, None)
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.INTEGRITY)
        await rig.fw.stop()

    asyncio.run(scenario())


def test_configured_digest_applies_to_the_next_package(tmp_path: FsPath) -> None:
    package = script("exit 0")
    config, fetcher = setup(tmp_path, package, digest=parse_digest("sha256:" + sha256_hex(package)))

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        assert rig.fw.state == State.DOWNLOADED
        fetcher.data = script("exit 1")
        rig.fw.write(PACKAGE_URI, "")
        await download(rig)
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.INTEGRITY)
        await rig.fw.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("uri", "result"),
    [
        ("ftp://repo.example/fw", Result.UNSUPPORTED_PROTOCOL),
        ("coap://repo.example/fw", Result.UNSUPPORTED_PROTOCOL),  # not in protocols
        ("no scheme here", Result.INVALID_URI),
        ("http:///nohost", Result.INVALID_URI),
        ("http://repo.example/fw#md5=1", Result.INVALID_URI),
    ],
)
def test_uris_that_cannot_be_fetched(tmp_path: FsPath, uri: str, result: Result) -> None:
    config, fetcher = setup(tmp_path, b"", protocols=("http", "https"))

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await rig.fw.start()
        rig.fw.write(PACKAGE_URI, uri)
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, result)
        assert fetcher.calls == 0
        assert rig.fw.read(PACKAGE_URI) == uri
        await rig.fw.stop()

    asyncio.run(scenario())


def test_out_of_storage_unsupported_type_and_connection_lost(tmp_path: FsPath) -> None:
    config, fetcher = setup(tmp_path, blob(10_000), max_package_size=4096, download_retries=1)

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.NO_STORAGE)
        fetcher.data = b"\x7fELF not a package we know"
        await download(rig)
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.UNSUPPORTED_TYPE)
        fetcher.error = DownloadError(Result.CONNECTION_LOST, "reset", retryable=True)
        rig.fw.write(PACKAGE_URI, "http://repo.example/fw.sh")
        await until(lambda: rig.clock.next_deadline() is not None)
        await rig.clock.advance(config.retry_delay)
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.CONNECTION_LOST)
        assert fetcher.calls == 4  # 2 before, then one try and one retry
        await rig.fw.stop()

    asyncio.run(scenario())


def test_cancel_and_refusals(tmp_path: FsPath) -> None:
    config, fetcher = setup(tmp_path, script("exit 0"))

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await rig.fw.start()
        with pytest.raises(MethodNotAllowed):
            await rig.fw.execute(CANCEL, None)
        with pytest.raises(MethodNotAllowed):
            await rig.fw.execute(UPDATE, None)
        await download(rig)
        with pytest.raises(MethodNotAllowed):
            rig.fw.write(PACKAGE_URI, "http://repo.example/other")
        await rig.fw.execute(CANCEL, None)
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.CANCELLED)
        assert rig.fw.read(PACKAGE_URI) == ""
        await rig.fw.stop()

    asyncio.run(scenario())


def test_the_helper_refuses_a_type_without_installer_and_a_tampered_package(tmp_path: FsPath) -> None:
    config, fetcher = setup(tmp_path, script("exit 0"))
    empty = tmp_path / "empty.toml"
    empty.write_text("[firmware]\n")

    async def scenario() -> None:
        rig = rig_for(tmp_path, config, fetcher)
        await download(rig)
        rig.fw.installer.helper = tuple(helper_argv(empty, tmp_path / "state", tmp_path / "work"))
        await rig.fw.execute(UPDATE, None)
        await rig.fw.idle()
        assert (rig.fw.state, rig.fw.result) == (State.IDLE, Result.UNSUPPORTED_TYPE)
        await rig.fw.stop()

    asyncio.run(scenario())
