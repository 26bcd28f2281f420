"""The installable package: every Python package directory is listed in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_dirs() -> set[str]:
    found = set()
    for root, prefix in ((REPO / "lwm2md", "lwm2md"), (REPO / "drivers", "lwm2md.drivers")):
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            if "drivers" in relative.parts and prefix == "lwm2md":
                continue  # lwm2md/drivers is the symlink to drivers/
            found.add(".".join([prefix, *relative.parts]))
    return found


def test_every_package_is_listed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert package_dirs() == listed


def test_drivers_ship_as_a_subpackage_only() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    assert mapping == {"lwm2md": "lwm2md", "lwm2md.drivers": "drivers"}
    assert (REPO / "lwm2md" / "drivers").resolve() == REPO / "drivers"
