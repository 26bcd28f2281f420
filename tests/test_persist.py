"""Atomic state files: round trips, permissions, corruption, kill -9 during writes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2md.model.types import ObjLnk
from lwm2md.persist import STATE_VERSION, StateError, StateFile, dump_value, load_value

values = st.one_of(
    st.text(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary(),
    st.builds(ObjLnk, st.integers(0, 65535), st.integers(0, 65535)),
)


@given(values)
def test_values_round_trip_exactly(value: object) -> None:
    back = load_value(json.loads(json.dumps(dump_value(value))))  # type: ignore[arg-type]
    assert back == value and type(back) is type(value)


def test_save_load_and_mode_0600(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "state", "state.json")
    assert store.load() is None
    store.save({"servers": {"1": {"psk": dump_value(b"\x01\x02")}}})
    assert store.load() == {"servers": {"1": {"psk": {"bytes": "AQI="}}}}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert [p.name for p in store.directory.iterdir()] == ["state.json"], "no temp files left"


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe", json.dumps({"version": 99, "content": {}}).encode(), b"[1, 2]",
     json.dumps({"version": STATE_VERSION}).encode()],
)  # fmt: skip
def test_unusable_file_is_kept_aside_and_reported(tmp_path: Path, content: bytes) -> None:
    store = StateFile(tmp_path, "state.json")
    store.path.write_bytes(content)
    with pytest.raises(StateError) as err:
        store.load()
    assert err.value.kept_as is not None and err.value.kept_as.read_bytes() == content
    assert not store.path.exists()
    assert store.load() is None


WRITER = """
import sys
from lwm2md.persist import StateFile
store = StateFile(sys.argv[1], "state.json")
big = "x" * 200_000
n = 0
while True:
    n += 1
    store.save({"n": n, "filler": big})
    print(n, flush=True)
"""


def test_kill_9_during_writes_leaves_old_or_new_never_broken(tmp_path: Path) -> None:
    for attempt in range(5):
        command = [sys.executable, "-c", WRITER, str(tmp_path)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        last = 0
        for _ in range(3 + attempt * 7):
            last = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        content = StateFile(tmp_path, "state.json").load()
        assert content is not None, "a complete state must remain"
        assert content["n"] >= last and content["filler"] == "x" * 200_000
