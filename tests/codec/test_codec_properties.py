"""Property tests over every record format: round trips and hostile-input fuzzing."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import pytest
from codec_support import RT, comparable, rdef
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lwm2md import codec
from lwm2md.codec import ContentFormat, TypeResolver, cbor, senml
from lwm2md.errors import BadRequest, NotFound
from lwm2md.model import ObjLnk, Path, Record, ResourceDef, ResourceType

VALUE_TYPES = [t for t in ResourceType if t is not ResourceType.NONE]
RECORD_FORMATS = [f for f in ContentFormat if f is not ContentFormat.LINK_FORMAT]
TIMED_FORMATS = {ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.OMA_JSON}
FINITE_FORMATS = {ContentFormat.TEXT, ContentFormat.SENML_JSON, ContentFormat.OMA_JSON}
MIN_LEVEL = {ContentFormat.TLV: 1}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def values(rtype: ResourceType, finite: bool) -> st.SearchStrategy[object]:
    if rtype in (RT.STRING, RT.CORELNK):
        return st.text(max_size=12)
    if rtype in (RT.INTEGER, RT.TIME):
        return st.integers(-(2**63), 2**63 - 1)
    if rtype is RT.UNSIGNED:
        return st.integers(0, 2**64 - 1)
    if rtype is RT.FLOAT:
        return st.floats(allow_nan=not finite, allow_infinity=not finite)
    if rtype is RT.BOOLEAN:
        return st.booleans()
    if rtype is RT.OPAQUE:
        return st.binary(max_size=12)
    return st.builds(ObjLnk, st.integers(0, 65535), st.integers(0, 65535))


@dataclass
class Scenario:
    base: Path
    records: list[Record]
    resolve: TypeResolver


def _resolver(catalog: dict[tuple[int, int], ResourceDef]) -> TypeResolver:
    def resolve(path: Path) -> ResourceDef | None:
        assert path.level == 3
        return catalog.get((path.oid, path.rid))  # type: ignore[arg-type]

    return resolve


@st.composite
def scenarios(draw: st.DrawFn, fmt: ContentFormat) -> Scenario:
    finite = fmt in FINITE_FORMATS
    timed = fmt in TIMED_FORMATS
    single = fmt in codec.SINGLE_VALUE_FORMATS
    ids = st.integers(0, 65534)

    def stamp() -> float | None:
        if not timed:
            return None
        return draw(st.none() | st.floats(2**28, 2**34) | st.integers(2**28, 2**33).map(float))

    def value(d: ResourceDef) -> object:
        return draw(values(d.type, finite))

    if single:
        rtype = RT.OPAQUE if fmt is ContentFormat.OPAQUE else draw(st.sampled_from(VALUE_TYPES))
        multiple = draw(st.booleans())
        d = rdef(draw(ids), rtype, multiple)
        base = Path(draw(ids), draw(ids), d.rid, draw(ids) if multiple else None)
        return Scenario(base, [Record(base, value(d))], _resolver({(base.oid, d.rid): d}))  # type: ignore[arg-type]

    level = draw(st.integers(MIN_LEVEL.get(fmt, 0), 4))
    n_objects = draw(st.integers(1, 3)) if level == 0 else 1
    oids = draw(st.lists(ids, min_size=n_objects, max_size=n_objects, unique=True))
    catalog: dict[tuple[int, int], ResourceDef] = {}
    records: list[Record] = []
    base = Path()
    for oid in oids:
        specs = draw(
            st.lists(
                st.tuples(ids, st.sampled_from(VALUE_TYPES), st.booleans()),
                min_size=1,
                max_size=4,
                unique_by=lambda spec: spec[0],
            )
        )
        defs = [rdef(rid, rtype, multiple) for rid, rtype, multiple in specs]
        catalog.update({(oid, d.rid): d for d in defs})
        iids = draw(st.lists(ids, min_size=1, max_size=2 if level <= 1 else 1, unique=True))
        if level >= 3:
            wanted = [d for d in defs if d.multiple or level == 3]
            assume(wanted)
            defs = [draw(st.sampled_from(wanted))]
        for iid in iids:
            for d in defs:
                if d.multiple:
                    riids = draw(
                        st.lists(
                            ids, min_size=1 if level == 4 else 0, max_size=1 if level == 4 else 3, unique=True
                        )
                    )
                    records += [Record(Path(oid, iid, d.rid, riid), value(d), stamp()) for riid in riids]
                else:
                    records.append(Record(Path(oid, iid, d.rid), value(d), stamp()))
        if level == 4:
            base = records[0].path
        elif level:
            base = Path.of(*(oid, iids[0], defs[0].rid)[:level])
    return Scenario(base, records, _resolver(catalog))


def _round_trip(fmt: ContentFormat, scenario: Scenario) -> None:
    payload = codec.encode(fmt, scenario.base, scenario.records, scenario.resolve)
    decoded = codec.decode(fmt, payload, scenario.base, scenario.resolve, now=lambda: 0.0)
    assert comparable(decoded) == comparable(scenario.records)


@pytest.mark.parametrize("fmt", RECORD_FORMATS, ids=[f.name for f in RECORD_FORMATS])
def test_round_trip(fmt: ContentFormat) -> None:
    """decode(encode(records)) == records for every format, type, target level and instance layout."""

    @SETTINGS
    @given(scenarios(fmt))
    def check(scenario: Scenario) -> None:
        _round_trip(fmt, scenario)

    check()


# --- fuzzing ---------------------------------------------------------------------------------------

FUZZ_TYPES = [
    RT.STRING,
    RT.INTEGER,
    RT.UNSIGNED,
    RT.FLOAT,
    RT.BOOLEAN,
    RT.OPAQUE,
    RT.TIME,
    RT.OBJLNK,
    RT.NONE,
]


def fuzz_resolve(path: Path) -> ResourceDef | None:
    """Every resource below 1000 exists: type by rid, multiple when the rid is odd."""
    assert path.rid is not None
    if path.rid >= 1000:
        return None
    return rdef(path.rid, FUZZ_TYPES[path.rid % len(FUZZ_TYPES)], path.rid % 2 == 1)


FUZZ_BASES = [Path(), Path(3), Path(3, 0), Path(3, 0, 2), Path(3, 0, 1), Path(3, 0, 1, 0)]
PYTHON_TYPES = (str, int, float, bool, bytes, ObjLnk)


def _decode_or_reject(fmt: int, payload: bytes, base: Path) -> None:
    try:
        records = codec.decode(fmt, payload, base, fuzz_resolve, now=lambda: 0.0)
    except (BadRequest, NotFound):
        return
    for record in records:
        assert isinstance(record, Record)
        assert base.contains(record.path)
        assert isinstance(record.value, PYTHON_TYPES)


@pytest.mark.parametrize("fmt", RECORD_FORMATS, ids=[f.name for f in RECORD_FORMATS])
def test_fuzz_random_bytes(fmt: ContentFormat) -> None:
    """Arbitrary bytes end in records or BadRequest/NotFound, never another exception."""

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=48), st.sampled_from(FUZZ_BASES))
    def check(payload: bytes, base: Path) -> None:
        _decode_or_reject(fmt, payload, base)

    check()


_json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
_json_keys = st.sampled_from(
    ["bn", "bt", "bv", "n", "t", "v", "vs", "vb", "vd", "vlo", "e", "sv", "ov", "x_"]
)
_names = st.sampled_from(
    ["/3/0/", "/3/0/1", "/3/0/2", "/3/0/1/0", "1", "1/0", "2", "/", "", "/3//0", "/3/0/1/0/0"]
)
_json_values = st.recursive(
    _json_scalars | _names,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_keys, inner, max_size=5),
    max_leaves=16,
)


@settings(max_examples=600, deadline=None)
@given(_json_values, st.sampled_from(FUZZ_BASES))
def test_fuzz_structured_json(document: object, base: Path) -> None:
    """JSON documents built from SenML/OMA JSON labels exercise the record layers."""
    try:
        payload = json.dumps(document).encode()
    except ValueError:
        return
    for fmt in (ContentFormat.SENML_JSON, ContentFormat.OMA_JSON):
        _decode_or_reject(fmt, payload, base)
    with contextlib.suppress(BadRequest):
        codec.decode_paths(ContentFormat.SENML_JSON, payload)


_cbor_keys = (
    st.integers(-7, 9)
    | st.sampled_from(["vlo", "bn"])
    | st.tuples(st.integers(0, 4))
    | st.tuples(st.integers(0, 4), st.integers(0, 4))
)
_cbor_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats()
    | st.text(max_size=6)
    | _names
    | st.binary(max_size=6)
    | st.builds(cbor.Tag, st.integers(0, 5), st.integers(0, 2**40))
)
_cbor_items = st.recursive(
    _cbor_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_cbor_keys, inner, max_size=5),
    max_leaves=16,
)


@settings(max_examples=600, deadline=None)
@given(_cbor_items, st.sampled_from(FUZZ_BASES))
def test_fuzz_structured_cbor(item: object, base: Path) -> None:
    """CBOR items built from SenML labels and path-like keys exercise the record layers."""
    payload = cbor.dumps(item)
    for fmt in (ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR, ContentFormat.CBOR):
        _decode_or_reject(fmt, payload, base)
    for fmt in (ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR):
        with contextlib.suppress(BadRequest):
            codec.decode_paths(fmt, payload)


@pytest.mark.parametrize("fmt", RECORD_FORMATS, ids=[f.name for f in RECORD_FORMATS])
def test_fuzz_mutated_valid_payloads(fmt: ContentFormat) -> None:
    """Valid payloads with a byte changed, inserted or cut still end in records or an allowed error."""

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        scenarios(fmt), st.integers(0, 2**16), st.integers(0, 255), st.sampled_from(["flip", "insert", "cut"])
    )
    def check(scenario: Scenario, where: int, byte: int, how: str) -> None:
        payload = bytearray(codec.encode(fmt, scenario.base, scenario.records, scenario.resolve))
        at = where % (len(payload) + 1)
        if how == "flip" and payload:
            payload[at % len(payload)] ^= byte or 1
        elif how == "insert":
            payload[at:at] = bytes((byte,))
        else:
            del payload[at:]
        with contextlib.suppress(BadRequest, NotFound):
            codec.decode(fmt, bytes(payload), scenario.base, scenario.resolve, now=lambda: 0.0)

    check()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 65535), max_size=4).map(lambda parts: Path.of(*parts)), max_size=5))
def test_paths_round_trip(paths: list[Path]) -> None:
    for fmt in codec.PATH_FORMATS:
        if fmt == ContentFormat.LWM2M_CBOR and len(set(paths)) != len(paths):
            continue  # one map key per path
        assert codec.decode_paths(fmt, codec.encode_paths(fmt, paths)) == paths


def test_senml_entry_layer_is_exposed() -> None:
    assert senml.parse_json_pack(b'[{"bn":"a","n":"b","vs":"c"}]') == [senml.Entry("ab", "vs", "c", None)]
