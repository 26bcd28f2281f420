"""Tests for lwm2md.engine.notification_store: bounded, ordered, on disk, crash-proof."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path as FsPath

import pytest

from lwm2md.engine.notification_store import COMPACT_MIN, NotificationStore, StoredNotification
from lwm2md.model.path import Path
from lwm2md.model.types import ObjLnk, Record

SSID = 1
T0 = 1_700_000_000.0
STORE_LOGGER = "lwm2md.engine.notification_store"


def note(value: float, *, ssid: int = SSID, at: float = T0) -> StoredNotification:
    """One notification of /3303/0/5700 with ``value``, taken at ``at``."""
    record = Record(Path.parse("/3303/0/5700"), value, at)
    return StoredNotification(ssid, 4, "/3303/0/5700", (record,), False, at)


def values(store: NotificationStore, ssid: int = SSID) -> list[object]:
    return [e.records[0].value for e in store.entries(ssid)]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STORE_LOGGER and r.levelno >= logging.WARNING]


def test_entries_survive_a_reopen_with_every_value_type(tmp_path: FsPath) -> None:
    records = (
        Record(Path.parse("/3303/0/5700"), 21.5, T0 + 0.125),
        Record(Path.parse("/3303/0/5700"), 0.1 + 0.2, None),  # a float that is not short in decimal
        Record(Path.parse("/3/0/13"), 1_700_000_123),
        Record(Path.parse("/3200/0/5500"), True),
        Record(Path.parse("/3/0/0"), "Acme \u00e9\n\"quoted\""),
        Record(Path.parse("/3/0/6/1"), b"\x00\xff\n{"),
        Record(Path.parse("/3/0/22"), ObjLnk(3303, 0)),
        Record(Path.parse("/3303/0/5700"), 2.0, T0),  # an integral float stays a float
    )
    entry = StoredNotification(SSID, 17, "/3303/0/5700,/3/0", records, True, T0 + 1.5)
    store = NotificationStore(tmp_path, 10)
    added = store.add(entry)
    store.add(note(1.0))
    again = NotificationStore(tmp_path, 10).entries(SSID)
    assert again[0] == StoredNotification(SSID, 17, "/3303/0/5700,/3/0", records, True, T0 + 1.5, added.seq)
    assert [type(r.value) for r in again[0].records] == [float, float, int, bool, str, bytes, ObjLnk, float]
    assert again[1].seq == added.seq + 1
    next_seq = NotificationStore(tmp_path, 10).add(note(2.0)).seq
    assert next_seq == added.seq + 2, "numbering goes on after a reopen"


def test_files_are_private_and_the_directory_is_created(tmp_path: FsPath) -> None:
    directory = tmp_path / "state" / "deep"
    store = NotificationStore(directory, 10)
    store.add(note(1.0))
    path = store.path(SSID)
    assert path == directory / "notifications-1.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert path.read_bytes().endswith(b"\n")


def test_the_bound_drops_the_oldest_with_one_warning_per_episode(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    store = NotificationStore(tmp_path, 3)
    dropped: list[int] = []
    for value in range(1, 8):
        dropped.extend(store.add(note(float(value))).dropped)
    assert values(store) == [5.0, 6.0, 7.0]
    assert dropped == [1, 2, 3, 4], "the oldest first, by seq"
    assert warnings(caplog) == ["server 1: more than 3 notifications held; dropping the oldest"]
    assert store.take_dropped(SSID) == 4
    assert store.take_dropped(SSID) == 0
    store.add(note(8.0))
    assert len(warnings(caplog)) == 2, "a new episode warns again"
    assert values(NotificationStore(tmp_path, 3)) == [6.0, 7.0, 8.0], "the drops are on disk too"


def test_a_lower_limit_applies_at_the_next_add(tmp_path: FsPath) -> None:
    store = NotificationStore(tmp_path, 10)
    for value in range(5):
        store.add(note(float(value)))
    store.limit = 2
    store.add(note(5.0))
    assert values(store) == [4.0, 5.0]
    with pytest.raises(ValueError):
        NotificationStore(tmp_path, 0)


def test_remove_is_on_disk_and_the_last_removal_deletes_the_file(tmp_path: FsPath) -> None:
    store = NotificationStore(tmp_path, 10)
    seqs = [store.add(note(float(v))).seq for v in range(4)]
    assert store.remove(SSID, [seqs[0], seqs[2], 999]) == 2
    assert values(NotificationStore(tmp_path, 10)) == [1.0, 3.0]
    assert store.contains(SSID, seqs[1]) and not store.contains(SSID, seqs[0])
    store.remove(SSID, [seqs[1], seqs[3]])
    assert store.count(SSID) == 0
    assert not store.path(SSID).exists()  # type: ignore[union-attr]


def test_the_file_is_compacted_when_removals_pile_up(tmp_path: FsPath) -> None:
    store = NotificationStore(tmp_path, 1000)
    keep = store.add(note(0.0)).seq
    for value in range(1, 10 * COMPACT_MIN):
        store.remove(SSID, [store.add(note(float(value))).seq])
    path = store.path(SSID)
    assert path is not None
    assert len(path.read_bytes().splitlines()) <= 2 * COMPACT_MIN + 3
    assert [e.seq for e in NotificationStore(tmp_path, 1000).entries(SSID)] == [keep]


def test_a_torn_last_line_is_dropped_and_the_file_repaired(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    store = NotificationStore(tmp_path, 10)
    store.add(note(1.0))
    store.add(note(2.0))
    path = store.path(SSID)
    assert path is not None
    with path.open("ab") as file:
        file.write(b'{"seq":3,"ssid":1,"ident":4,"tar')  # what a crash in the middle of a write leaves
    reopened = NotificationStore(tmp_path, 10)
    assert values(reopened) == [1.0, 2.0]
    assert any("incomplete line" in w for w in warnings(caplog))
    assert path.read_bytes().endswith(b"\n"), "rewritten before anything is appended"
    reopened.add(note(3.0))
    assert values(NotificationStore(tmp_path, 10)) == [1.0, 2.0, 3.0]
    assert not list(tmp_path.glob("*.bad-*"))


@pytest.mark.parametrize("damage", [
    b'{"seq": 2, "ssid": 1}\n',  # an entry without its fields
    b"not json\n",
    b'{"removed": ["x"]}\n',
])  # fmt: skip
def test_a_corrupt_file_is_kept_aside_and_the_store_starts_empty(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture, damage: bytes
) -> None:
    store = NotificationStore(tmp_path, 10)
    store.add(note(1.0))
    path = store.path(SSID)
    assert path is not None
    with path.open("ab") as file:
        file.write(damage)
    reopened = NotificationStore(tmp_path, 10)
    assert reopened.entries(SSID) == []
    (kept,) = tmp_path.glob("notifications-1.jsonl.bad-*")
    assert kept.read_bytes().endswith(damage)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "unusable" in errors[0] and str(kept) in errors[0]
    reopened.add(note(2.0))
    assert values(NotificationStore(tmp_path, 10)) == [2.0]


def test_a_file_of_another_version_or_server_is_kept_aside(tmp_path: FsPath) -> None:
    (tmp_path / "notifications-1.jsonl").write_bytes(b'{"format":"lwm2md-notifications","version":2}\n')
    (tmp_path / "notifications-2.jsonl").write_bytes(
        b'{"format":"lwm2md-notifications","version":1,"ssid":3}\n'
    )
    store = NotificationStore(tmp_path, 10)
    assert store.entries(1) == [] and store.entries(2) == []
    assert len(list(tmp_path.glob("*.bad-*"))) == 2


def test_a_failed_write_keeps_entries_in_memory_and_the_next_write_stores_them_all(
    tmp_path: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_bytes(b"")  # a file where the directory should be
    store = NotificationStore(blocker, 10)
    store.add(note(1.0))
    store.add(note(2.0))
    assert values(store) == [1.0, 2.0]
    errors = [r.getMessage() for r in caplog.records if "cannot store notifications" in r.getMessage()]
    assert len(errors) == 1, "logged once until a write succeeds"
    blocker.unlink()
    store.add(note(3.0))
    assert values(NotificationStore(blocker, 10)) == [1.0, 2.0, 3.0]


def test_servers_are_kept_apart_and_cleared(tmp_path: FsPath) -> None:
    store = NotificationStore(tmp_path, 10)
    store.add(note(1.0, ssid=1))
    store.add(note(2.0, ssid=2))
    store.add(note(3.0, ssid=2))
    assert NotificationStore(tmp_path, 10).ssids() == [1, 2]
    assert store.clear(2) == 2
    assert not (tmp_path / "notifications-2.jsonl").exists()
    assert values(NotificationStore(tmp_path, 10), 1) == [1.0]
    assert NotificationStore(tmp_path, 10).clear_all() == 1
    assert not list(tmp_path.iterdir())


def test_memory_only_writes_nothing(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = NotificationStore(None, 2)
    for value in range(3):
        store.add(note(float(value)))
    assert not store.persistent and store.path(SSID) is None
    assert values(store) == [1.0, 2.0]
    assert not list(tmp_path.iterdir())


def test_kill_9_while_writing_never_leaves_a_broken_file(tmp_path: FsPath) -> None:
    """A writer killed by SIGKILL at an arbitrary point: the file loads, in order, nothing kept aside."""
    script = textwrap.dedent(f"""
        import sys
        from lwm2md.engine.notification_store import NotificationStore, StoredNotification
        from lwm2md.model.path import Path
        from lwm2md.model.types import Record
        store = NotificationStore({str(tmp_path)!r}, 50)
        n = 0
        while True:
            n += 1
            record = Record(Path.parse("/3303/0/5700"), float(n), {T0} + n)
            added = store.add(StoredNotification(1, 4, "/3303/0/5700", (record,) * 20, False, {T0} + n))
            if n % 3 == 0:
                store.remove(1, [added.seq - 10])
            if n == 200:
                print("ready", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    entries = NotificationStore(tmp_path, 50).entries(1)
    assert not list(tmp_path.glob("*.bad-*"))
    assert 0 < len(entries) <= 50
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and seqs[-1] >= 200
    assert all(e.records[0].value == float(e.seq) for e in entries)
