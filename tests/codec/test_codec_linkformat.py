"""CoRE Link Format (40): format_links / parse_links.

Vectors: Core TS 1.2.2 sections 6.1.7.3 (Bootstrap-Discover), 6.2.1 (Register),
6.3.2 (Discover) and Transport TS 6.4.1 (alternate path).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2md.codec.linkformat import Link, format_links, parse_links
from lwm2md.errors import BadRequest


def test_bootstrap_discover_6_1_7_3() -> None:
    text = (
        '</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://server_1.example.com", </0/1/>, '
        '</0/2>;ssid=102;uri="coaps://server_2.example.com"'
    )
    assert parse_links(text) == [
        Link("/", {"lwm2m": "1.1"}),
        Link("/0/0", {"ssid": "101", "uri": "coaps://server_1.example.com"}),
        Link("/0/1/", {}),
        Link("/0/2", {"ssid": "102", "uri": "coaps://server_2.example.com"}),
    ]


def test_register_payloads_6_2_1() -> None:
    assert parse_links('</>;ct="110 112 60", </1/0>,</3/0>,</5>') == [
        Link("/", {"ct": "110 112 60"}),
        Link("/1/0"),
        Link("/3/0"),
        Link("/5"),
    ]
    assert parse_links('</lwm2m>;rt="oma.lwm2m", </lwm2m/1/0>') == [
        Link("/lwm2m", {"rt": "oma.lwm2m"}),
        Link("/lwm2m/1/0"),
    ]


def test_discover_6_3_2() -> None:
    text = "</3/0/7>;dim=2;pmin=10;pmax=60;gt=50;lt=42.2, </3/0/7/0>, </3/0/7/1>;lt=45"
    links = parse_links(text)
    assert links == [
        Link("/3/0/7", {"dim": "2", "pmin": "10", "pmax": "60", "gt": "50", "lt": "42.2"}),
        Link("/3/0/7/0"),
        Link("/3/0/7/1", {"lt": "45"}),
    ]
    assert list(links[0].attrs) == ["dim", "pmin", "pmax", "gt", "lt"]
    assert format_links(links) == text.replace(", ", ",")


def test_format_quotes_non_numeric_values() -> None:
    links = [
        Link("/", {"ct": "60 110", "rt": "oma.lwm2m", "lwm2m": "1.2"}),
        Link("/0/0", {"ssid": "101", "uri": 'coap://a"b\\c'}),
        Link("/3/0", {"ver": "1.1", "flag": None, "gt": "-5.5"}),
    ]
    text = format_links(links)
    assert text == (
        '</>;ct="60 110";rt="oma.lwm2m";lwm2m=1.2,</0/0>;ssid=101;uri="coap://a\\"b\\\\c",'
        "</3/0>;ver=1.1;flag;gt=-5.5"
    )
    assert parse_links(text) == links


def test_format_refuses_invalid_names() -> None:
    with pytest.raises(ValueError):
        format_links([Link("/a>b")])
    with pytest.raises(ValueError):
        format_links([Link("/a<b")])
    with pytest.raises(ValueError):
        format_links([Link("/3", {"a b": "1"})])
    with pytest.raises(ValueError):
        format_links([Link("/3", {"": "1"})])


def test_empty_and_whitespace() -> None:
    assert parse_links("") == []
    assert parse_links("  \r\n") == []
    assert parse_links(" </1/0> ; ver = 1.0 ,\t</3/0> ") == [Link("/1/0", {"ver": "1.0"}), Link("/3/0")]
    assert parse_links('</a>;t=""') == [Link("/a", {"t": ""})]
    assert parse_links("</5/0>;ver1.1") == [Link("/5/0", {"ver1.1": None})]


@pytest.mark.parametrize(
    "text",
    [
        "</1/1>,</1/2>,</2/0></2/1>",  # missing comma (erratum in Transport TS Figure 6.4.3.-1)
        "</3>;pmin=60\n</4>;pmax=300",  # newline instead of comma
        "lwm2m=1.0,</0/0>",  # parameter without a link (pre-1.2 example form)
        "</1/0>,",
        ",</1/0>",
        "</1/0",
        "/1/0",
        "<</1/0>",
        "</1/0>;",
        "</1/0>;=1",
        "</1/0>;a=",
        '</1/0>;a="unterminated',
        '</1/0>;a="x\\',
        '</1/0>;a=b"c"',
        "</1/0>;a=b c",
        "</1/0> x",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_links(text)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=8)
_values = st.none() | st.text(max_size=12) | st.integers(-1000, 10**6).map(str) | st.just("1.5")
_links = st.builds(
    Link,
    st.text(max_size=12).filter(lambda t: not set(t) & set("<>") and all(ord(c) >= 0x20 for c in t)),
    st.dictionaries(_names, _values, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_links, max_size=5))
def test_round_trip(links: list[Link]) -> None:
    assert parse_links(format_links(links)) == links


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='<>;,="\\ /abc01\t\n', max_size=40) | st.text(max_size=40))
def test_fuzz_parse(text: str) -> None:
    """Any text parses to links or raises BadRequest."""
    try:
        links = parse_links(text)
    except BadRequest:
        return
    assert all(isinstance(link, Link) for link in links)
