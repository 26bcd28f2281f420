"""Tests for lwm2md.engine.attributes: Write-Attributes parsing, validation, inheritance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2md.engine.attributes import ATTR_NAMES, Attributes, AttributeStore, AttributeUpdate, parse_query
from lwm2md.errors import BadRequest
from lwm2md.model.path import Path

OBJ, INST, RES, RI = Path(3303), Path(3303, 0), Path(3303, 0, 5700), Path(3303, 0, 5700, 0)


def _apply(store: AttributeStore, path: Path, *query: str, ssid: int = 1, numeric: bool = True) -> None:
    store.apply(ssid, path, parse_query(query), numeric=numeric)


# -- parsing ------------------------------------------------------------------


def test_parse_sets_and_clears() -> None:
    update = parse_query(["pmin=10", "pmax=60", "gt=20.5", "lt=-5", "st=0.5", "epmin=1", "epmax=30"])
    assert update.set == Attributes(pmin=10, pmax=60, gt=20.5, lt=-5.0, st=0.5, epmin=1, epmax=30)
    assert update.clear == frozenset()
    update = parse_query(["pmin", "gt"])
    assert update.set.is_empty()
    assert update.clear == {"pmin", "gt"}


@pytest.mark.parametrize(
    ("item", "value"),
    [("gt=1e3", 1000.0), ("gt=+2", 2.0), ("gt=20.", 20.0), ("gt=.5", 0.5), ("gt=-0.25", -0.25)],
)
def test_parse_number_forms(item: str, value: float) -> None:
    assert parse_query([item]).set.gt == value


@pytest.mark.parametrize(
    "query",
    [
        ["foo=1"],  # unknown
        ["dim=2"],  # not writable
        [""],
        ["pmin=1", "pmin=2"],  # twice
        ["pmin=1", "pmin"],  # set and clear
        ["pmin=-1"],
        ["pmin=1.5"],
        ["pmin="],
        ["pmin=x"],
        ["pmin=\u0661"],  # a non-ASCII digit
        ["gt=abc"],
        ["gt="],
        ["gt=nan"],
        ["gt=inf"],
        ["gt=1e400"],  # overflows to infinity
        ["gt=1_0"],
        ["gt= 1"],
        ["st=-1"],
    ],
)
def test_parse_rejects(query: list[str]) -> None:
    with pytest.raises(BadRequest):
        parse_query(query)


def test_link_attrs_order_and_number_format() -> None:
    attrs = Attributes(st=0.0000001, gt=20.0, lt=20.5, pmax=60, pmin=10, epmin=1)
    assert list(attrs.link_attrs().items()) == [
        ("pmin", "10"),
        ("pmax", "60"),
        ("epmin", "1"),
        ("gt", "20"),
        ("lt", "20.5"),
        ("st", "0.0000001"),
    ]
    assert Attributes().link_attrs() == {}


def test_over_takes_unset_fields_from_parent() -> None:
    child = Attributes(pmin=0, gt=5.0)
    parent = Attributes(pmin=10, pmax=20, gt=1.0)
    assert child.over(parent) == Attributes(pmin=0, pmax=20, gt=5.0)


# -- storing and validation ---------------------------------------------------------


def test_apply_merges_with_what_is_attached_and_clears() -> None:
    store = AttributeStore()
    _apply(store, RES, "pmin=10", "gt=30")
    _apply(store, RES, "pmax=60", "lt=5")
    assert store.attached(1, RES) == Attributes(pmin=10, pmax=60, gt=30.0, lt=5.0)
    _apply(store, RES, "pmin", "gt")
    assert store.attached(1, RES) == Attributes(pmax=60, lt=5.0)
    _apply(store, RES, "pmax", "lt")
    assert store.attached(1, RES).is_empty()


def test_clearing_an_unset_attribute_is_fine() -> None:
    store = AttributeStore()
    _apply(store, INST, "pmax", numeric=False)
    assert store.attached(1, INST).is_empty()


@pytest.mark.parametrize("path", [OBJ, INST, Path(3, 0, 0)])
def test_value_conditions_only_on_numeric_values(path: Path) -> None:
    store = AttributeStore()
    _apply(store, path, "pmin=5", numeric=False)
    for item in ("gt=1", "lt=1", "st=1"):
        with pytest.raises(BadRequest):
            _apply(store, path, item, "pmax=9", numeric=False)
    assert store.attached(1, path) == Attributes(pmin=5)  # the refused request changed nothing


@pytest.mark.parametrize(
    ("query", "ok"),
    [
        (["lt=10", "gt=20"], True),
        (["lt=20", "gt=20"], False),
        (["lt=21", "gt=20"], False),
        (["lt=10", "gt=20", "st=4.9"], True),
        (["lt=10", "gt=20", "st=5"], False),  # lt + 2*st must be strictly below gt
        (["lt=10", "st=100"], True),  # the rule needs both thresholds
        (["epmin=10", "epmax=10"], True),
        (["epmin=10", "epmax=9"], False),
        (["pmin=60", "pmax=10"], True),  # accepted; observe ignores such a pmax
    ],
)
def test_consistency_rules(query: list[str], ok: bool) -> None:
    store = AttributeStore()
    if ok:
        _apply(store, RES, *query)
        assert not store.attached(1, RES).is_empty()
    else:
        with pytest.raises(BadRequest):
            _apply(store, RES, *query)
        assert store.attached(1, RES).is_empty()


def test_consistency_checks_the_merged_result() -> None:
    store = AttributeStore()
    _apply(store, RES, "gt=20", "lt=10")
    with pytest.raises(BadRequest):
        _apply(store, RES, "st=5")
    with pytest.raises(BadRequest):
        _apply(store, RES, "lt=25")
    _apply(store, RES, "gt", "lt=25")  # clearing gt in the same request makes it fine
    assert store.attached(1, RES) == Attributes(lt=25.0)


def test_servers_are_separate() -> None:
    store = AttributeStore()
    _apply(store, RES, "pmin=10", ssid=1)
    _apply(store, RES, "pmin=20", ssid=2)
    assert store.effective(1, RES).pmin == 10
    assert store.effective(2, RES).pmin == 20
    assert store.effective(3, RES).pmin == 0
    store.forget_server(1)
    assert store.attached(1, RES).is_empty()
    assert store.attached(2, RES) == Attributes(pmin=20)


# -- inheritance ----------------------------------------------------------------


def test_lower_levels_override_and_defaults_come_last() -> None:
    store = AttributeStore()
    _apply(store, OBJ, "pmin=1", "pmax=100", "epmin=3", numeric=False)
    _apply(store, INST, "pmin=2", numeric=False)
    _apply(store, RES, "gt=30")
    _apply(store, RI, "pmax=50")
    assert store.effective(1, OBJ, 7, 70) == Attributes(pmin=1, pmax=100, epmin=3)
    assert store.effective(1, INST, 7, 70) == Attributes(pmin=2, pmax=100, epmin=3)
    assert store.effective(1, RES, 7, 70) == Attributes(pmin=2, pmax=100, gt=30.0, epmin=3)
    assert store.effective(1, RI, 7, 70) == Attributes(pmin=2, pmax=50, gt=30.0, epmin=3)
    # a sibling instance inherits from the object only
    assert store.effective(1, Path(3303, 1, 5700), 7, 70) == Attributes(pmin=1, pmax=100, epmin=3)
    # another object: server defaults only
    assert store.effective(1, Path(3304, 0, 5700), 7, 70) == Attributes(pmin=7, pmax=70)


def test_server_defaults_and_zero() -> None:
    store = AttributeStore()
    assert store.effective(1, RES) == Attributes(pmin=0)  # no default pmax means none
    assert store.effective(1, RES, 5, 0).pmax is None
    _apply(store, RES, "pmin=0")
    assert store.effective(1, RES, 5, 60) == Attributes(pmin=0, pmax=60)  # an explicit 0 wins


def test_forget_below() -> None:
    store = AttributeStore()
    for ssid in (1, 2):
        _apply(store, INST, "pmin=1", ssid=ssid, numeric=False)
        _apply(store, RES, "pmin=2", ssid=ssid)
        _apply(store, Path(3303, 10), "pmin=3", ssid=ssid, numeric=False)
        _apply(store, OBJ, "pmin=4", ssid=ssid, numeric=False)
    store.forget_below(1, INST)
    assert store.attached(1, INST).is_empty() and store.attached(1, RES).is_empty()
    assert store.attached(2, RES).pmin == 2
    store.forget_below(None, INST)
    assert store.attached(2, INST).is_empty() and store.attached(2, RES).is_empty()
    for ssid in (1, 2):
        assert store.attached(ssid, Path(3303, 10)).pmin == 3
        assert store.attached(ssid, OBJ).pmin == 4


_maybe_int = st.one_of(st.none(), st.integers(0, 1000))
_levels = st.lists(st.tuples(_maybe_int, _maybe_int, _maybe_int), min_size=4, max_size=4)


@given(_levels, st.integers(0, 100), st.integers(0, 100))
def test_effective_is_the_deepest_setting(
    levels: list[tuple[int | None, ...]], dpmin: int, dpmax: int
) -> None:
    store = AttributeStore()
    paths = [OBJ, INST, RES, RI]
    for path, (pmin, pmax, epmin) in zip(paths, levels, strict=True):
        attrs = Attributes(pmin=pmin, pmax=pmax, epmin=epmin)
        store.apply(1, path, AttributeUpdate(attrs, frozenset()), numeric=True)
    for depth, path in enumerate(paths):
        chain = levels[: depth + 1]
        for index, name, default in ((0, "pmin", dpmin), (1, "pmax", dpmax or None), (2, "epmin", None)):
            expected = next((lv[index] for lv in reversed(chain) if lv[index] is not None), default)
            assert getattr(store.effective(1, path, dpmin, dpmax), name) == expected


def test_attr_names_cover_every_field() -> None:
    assert set(ATTR_NAMES) == set(Attributes.__dataclass_fields__)
