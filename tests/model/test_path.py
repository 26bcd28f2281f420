"""Tests for lwm2md.model.path: parsing, invariants and navigation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2md.errors import BadRequest
from lwm2md.model.path import MAX_ID, Path

ids = st.integers(min_value=0, max_value=MAX_ID)
paths = st.lists(ids, max_size=4).map(lambda parts: Path.of(*parts))


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", ()),
        ("/", ()),
        ("/3", (3,)),
        ("3", (3,)),
        ("/3/0", (3, 0)),
        ("/3/0/1", (3, 0, 1)),
        ("/3/0/1/2", (3, 0, 1, 2)),
        ("3/0/1/2", (3, 0, 1, 2)),
        ("/0", (0,)),
        ("/0/0/0/0", (0, 0, 0, 0)),
        ("/65535", (65535,)),
        ("/65535/65535/65535/65535", (65535, 65535, 65535, 65535)),
        ("/3/0/", (3, 0)),
    ],
)
def test_parse_valid(text: str, parts: tuple[int, ...]) -> None:
    path = Path.parse(text)
    assert path.parts == parts
    assert path.level == len(parts)


@pytest.mark.parametrize(
    "text",
    [
        "/03",  # leading zero
        "/00",
        "/3/01",
        "/65536",  # above 16 bits
        "/3/0/70000",
        "/99999999999999999999999",
        "/1/2/3/4/5",  # five levels
        "/1/2/3/4/5/6",
        "/3//1",  # empty middle segment
        "/a",
        "/-1",
        "/+1",
        "/ 1",
        "/1 ",
        "/1.0",
        "/0x10",
        "/\uff13",  # fullwidth digit three
        "/\u00b2",  # superscript two: str.isdigit() is true for it
        "/\u0663",  # Arabic-Indic digit three
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(BadRequest):
        Path.parse(text)


def test_bad_request_renders_as_4_00() -> None:
    with pytest.raises(BadRequest) as info:
        Path.parse("/65536")
    assert info.value.dotted_code == "4.00"


@pytest.mark.parametrize(
    ("segments", "parts"),
    [([], ()), (["3"], (3,)), (("3", "0", "5700"), (3, 0, 5700)), (["0", "65535"], (0, 65535))],
)
def test_from_segments_valid(segments: list[str], parts: tuple[int, ...]) -> None:
    assert Path.from_segments(segments).parts == parts


@pytest.mark.parametrize("segments", [[""], ["3", ""], ["03"], ["65536"], ["1", "2", "3", "4", "5"], ["x"]])
def test_from_segments_invalid(segments: list[str]) -> None:
    with pytest.raises(BadRequest):
        Path.from_segments(segments)


@pytest.mark.parametrize(
    "levels",
    [(None, 1), (1, None, 2), (None, None, None, 0), (-1,), (MAX_ID + 1,), (3, 0, 1, -5)],
)
def test_constructor_rejects_broken_invariant(levels: tuple[int | None, ...]) -> None:
    with pytest.raises(ValueError):
        Path(*levels)


def test_of_rejects_five_levels() -> None:
    with pytest.raises(ValueError):
        Path.of(1, 2, 3, 4, 5)


def test_navigation() -> None:
    res = Path.parse("/3303/0/5700")
    assert res.oid == 3303 and res.iid == 0 and res.rid == 5700 and res.riid is None
    assert res.parent == Path.of(3303, 0)
    assert res.child(1) == Path.of(3303, 0, 5700, 1)
    assert res.child(1).resource() == res
    assert res.resource() == res
    assert Path().parent == Path()
    assert Path.of(3).parent == Path()
    assert res.segments() == ["3303", "0", "5700"]
    assert str(res) == "/3303/0/5700"
    assert str(Path()) == "/"


def test_resource_requires_resource_level() -> None:
    with pytest.raises(ValueError):
        Path.of(3, 0).resource()


def test_contains() -> None:
    obj = Path.of(3)
    assert Path().contains(obj)
    assert obj.contains(obj)
    assert obj.contains(Path.of(3, 0, 1, 2))
    assert not obj.contains(Path.of(33))
    assert not obj.contains(Path())
    assert not Path.of(3, 0).contains(Path.of(3, 1, 0))


def test_paths_are_hashable_values() -> None:
    assert {Path.parse("/3/0"), Path.of(3, 0)} == {Path(3, 0)}


@given(paths)
def test_text_round_trip(path: Path) -> None:
    assert Path.parse(str(path)) == path


@given(paths)
def test_segments_round_trip(path: Path) -> None:
    assert Path.from_segments(path.segments()) == path


@given(paths)
def test_parent_child_inverse(path: Path) -> None:
    if path.level < 4:
        assert path.child(7).parent == path
        assert path.contains(path.child(7))


@given(st.integers(min_value=MAX_ID + 1, max_value=10**30))
def test_out_of_range_ids_rejected(value: int) -> None:
    with pytest.raises(BadRequest):
        Path.parse(f"/3/{value}")


def test_mixed_depth_paths_sort() -> None:
    assert sorted([Path.of(3, 0), Path.of(3), Path.of(1, 2, 3), Path()]) == [
        Path(),
        Path.of(1, 2, 3),
        Path.of(3),
        Path.of(3, 0),
    ]
