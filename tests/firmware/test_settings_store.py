"""The [firmware] table and what the package store tells from a package's bytes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path as FsPath

import pytest

from lwm2md.errors import ConfigError
from lwm2md.firmware.settings import DEFAULT_HELPER, parse_firmware
from lwm2md.firmware.store import OutOfStorage, PackageStore, deb_fields, detect_type


def test_defaults_and_a_full_table() -> None:
    assert parse_firmware({}, "f.toml").helper == DEFAULT_HELPER
    config = parse_firmware({"installers": {"deb": ["apt-get", "install", "-y", "{package}"]},
                             "digest": "sha256:" + "ab" * 32, "protocols": ["https", "coap"],
                             "download_timeout": 5, "push": False}, "f.toml")  # fmt: skip
    assert config.installers["deb"][-1] == "{package}"
    assert config.digest == bytes.fromhex("ab" * 32)
    assert config.protocols == ("coap", "https")
    assert config.delivery_method == 0


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"installers": {"zip": ["unzip", "{package}"]}}, "firmware.installers.zip"),
        ({"installers": {"deb": ["dpkg", "-i"]}}, "firmware.installers.deb"),
        ({"digest": "md5:00"}, "firmware.digest"),
        ({"protocols": ["ftp"]}, "firmware.protocols"),
        ({"max_package_size": 0}, "firmware.max_package_size"),
        ({"retry_delay": -1}, "firmware.retry_delay"),
        ({"helper": "systemctl"}, "firmware.helper"),
        ({"push": False, "protocols": []}, "firmware.push"),
        ({"colour": "blue"}, "firmware.colour"),
    ],
)
def test_bad_tables_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_firmware(table, "f.toml")
    assert caught.value.file == "f.toml" and caught.value.key == key


def _deb(package: str, version: str) -> bytes:
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:gz") as tar:
        info = tarfile.TarInfo("./control")
        info.size = len(control)
        tar.addfile(info, io.BytesIO(control))
    out = b"!<arch>\n"
    for name, data in ((b"debian-binary", b"2.0\n"), (b"control.tar.gz", tar_bytes.getvalue())):
        header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        out += header + str(len(data)).encode().ljust(10) + b"`\n" + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_types_and_deb_metadata() -> None:
    deb = _deb("lwm2md", "1.2.3-1")
    assert detect_type(deb[:512]) == "deb"
    assert deb_fields(io.BytesIO(deb)) == ("lwm2md", "1.2.3-1")
    assert detect_type(b"hsqs....") == "rauc"
    assert detect_type(b"070701...") == "swupdate"
    assert detect_type(b"#!/bin/sh\n") == "script"
    assert detect_type(b"\0" * 257 + b"ustar\0") == "mender"
    assert detect_type(b"\x7fELF") is None


def test_writer_stops_at_the_configured_maximum(tmp_path: FsPath) -> None:
    store = PackageStore(tmp_path, max_size=10)
    writer = store.writer()
    writer.write(b"12345")
    with pytest.raises(OutOfStorage):
        writer.write(b"678901")
    writer.close()
    with pytest.raises(OutOfStorage):
        store.check_space(11)
    assert (store.directory.stat().st_mode & 0o777, store.path.stat().st_mode & 0o777) == (0o700, 0o600)
