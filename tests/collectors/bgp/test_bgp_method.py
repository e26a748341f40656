"""Method fidelity, hand-checkable: country AS hegemony (IHR), upstream attribution, absent
families, the partial last bin, region codes that are not countries, overlapping delegations."""

from __future__ import annotations

import pathlib

import pytest
from publiccore.collectors.bgp.elements import Element
from publiccore.collectors.bgp.hegemony import combine_views, country_hegemony, view_scores
from publiccore.collectors.bgp.rib import Rib
from publiccore.collectors.bgp.roots import root_prefixes
from publiccore.collectors.bgp.timeline import Timeline
from publiccore.collectors.bgp.transit import country_transit
from publiccore.collectors.bgp.visibility import country_index

from publiccore.errors import InputError
from publiccore.geo import Delegation, Geo
from publiccore.roothints import RootServer


def _geo(rows: list[tuple[str, str, str, int]]) -> Geo:
    """A Geo from (country, type, start, value) rows."""
    geo = Geo()
    geo.add_delegations(
        Delegation(
            registry="ripencc",
            country=c,
            type=kind,  # type: ignore[arg-type]
            start=start,
            value=value,
            date="20150101",
            status="allocated",
        )
        for c, kind, start, value in rows
    )
    return geo


def _rib(routes: list[tuple[int, str, str]]) -> Rib:
    """A RIB from (peer ASN, prefix, AS path); each peer AS has one session."""
    rib = Rib()
    rib.apply(
        Element("R", 1_420_070_400.0, "rrc00", peer, f"192.0.2.{peer % 250}", prefix, path)
        for peer, prefix, path in routes
    )
    return rib


# NL: 193.0.0.0/22 (a /24 originated by AS100 and a /23 by AS200); 3, 4, 5, 6 are transit ASes.
NL_GEO = [
    ("NL", "ipv4", "193.0.0.0", 1024),
    ("NL", "asn", "100", 1),
    ("NL", "asn", "200", 1),
    ("DE", "asn", "3", 1),
    ("DE", "asn", "5", 1),
]
P1, P2 = "193.0.0.0/24", "193.0.2.0/23"  # 256 and 512 addresses: 1/3 and 2/3 of the space


def test_hegemony_hand_checked() -> None:
    # peer AS 11: P1 via 3, P2 via 3 and 4 → 11: 1, 3: 1, 4: 2/3
    # peer AS 22: P1 via 3, P2 via 5      → 22: 1, 3: 1/3, 5: 2/3
    # peer AS 33: P1 via 6, P2 via 5      → 33: 1, 6: 1/3, 5: 2/3
    # 3 peer ASes: floor(10 % × 3) = 0 trimmed, the mean of the three views
    rib = _rib(
        [
            (11, P1, "11 3 100"),
            (11, P2, "11 3 4 200"),
            (22, P1, "22 3 100"),
            (22, P2, "22 5 5 200"),  # prepending collapsed
            (33, P1, "33 6 100"),
            (33, P2, "33 5 200"),
        ]
    )
    geo = _geo(NL_GEO)
    index = country_index(rib.routes, geo)
    ff = frozenset(range(len(rib.peers)))
    got = country_hegemony(rib, index, "NL", "ipv4", ff)
    assert got.covered and got.peer_asns_used == 3 and got.sessions_used == 3
    assert {d.asn: round(d.hegemony, 9) for d in got.dependencies} == {
        3: round(4 / 9, 9),
        5: round(4 / 9, 9),
        4: round(2 / 9, 9),
        6: round(1 / 9, 9),
        11: round(1 / 3, 9),
        22: round(1 / 3, 9),
        33: round(1 / 3, 9),
    }
    assert [d.asn for d in got.dependencies[:2]] == [3, 5]  # ties by ASN
    assert got.dependent_ases() == 7  # every one above 0.1 (AS6: 0.111)
    # the origins (100, 200) are not their own transit
    assert not {100, 200} & {d.asn for d in got.dependencies}


def test_hegemony_more_specific_counts_for_itself() -> None:
    # one session: /23 via 3, the /24 inside it via 4 → 3 and 4 each carry half the space
    scores = view_scores([(0, 512, (9, 3, 100)), (0, 256, (9, 4, 200))], "ipv4")
    assert scores == {9: 1.0, 3: 0.5, 4: 0.5}
    # IPv6: one weight per prefix, whatever its length
    assert view_scores([(0, 1 << 80, (9, 3, 100)), (0, 1, (9, 4, 200))], "ipv6") == {
        9: 1.0,
        3: 0.5,
        4: 0.5,
    }


def test_hegemony_trims_ten_percent_of_peer_ases() -> None:
    # 10 peer ASes: 9 reach the country through AS3, one through AS4; 1 dropped at each end
    views = {peer: [{3: 1.0}] for peer in range(1, 10)}
    views[10] = [{4: 1.0}]
    got = combine_views(views)
    assert [(d.asn, d.hegemony) for d in got] == [(3, 1.0)]
    # two sessions of one peer AS are averaged first (AS4 absent from one: 0 there)
    got = combine_views({7: [{3: 1.0}, {3: 1.0, 4: 1.0}]})
    assert [(d.asn, d.hegemony) for d in got] == [(3, 1.0), (4, 0.5)]


def test_hegemony_without_full_feed_route_is_absent() -> None:
    rib = _rib([(11, P1, "11 3 100")])
    index = country_index(rib.routes, _geo(NL_GEO))
    got = country_hegemony(rib, index, "NL", "ipv4", frozenset())
    assert not got.covered and got.dependencies == () and got.note


def test_upstream_drops_the_collector_peer_as_first_as() -> None:
    # peer AS 3 (DE) sends P1 straight from AS100: its "upstream" would be itself, the collector
    # peer: dropped. Peer AS 11 (no country) sees P1 through AS5 (DE): 5 is the upstream.
    rib = _rib([(3, P1, "3 100"), (11, P1, "11 5 100"), (11, P2, "11 3 200")])
    geo = _geo(NL_GEO)
    index = country_index(rib.routes, geo)
    ff = frozenset(range(len(rib.peers)))
    got = country_transit(rib, index, "NL", "ipv4", ff, geo.country_of_asn)
    assert got.paths_peer_upstream == 1 and got.paths_used == 2 and got.paths_skipped == 0
    # peer AS 11 alone: 1/3 of the space via 5, 2/3 via 3
    assert [(u.asn, round(u.share, 6)) for u in got.upstreams] == [(3, 0.666667), (5, 0.333333)]
    assert got.covered and got.to_json()["paths_peer_upstream"] == 1


def test_transit_of_a_family_without_routes_is_absent() -> None:
    rib = _rib([(11, P1, "11 3 100")])
    geo = _geo(NL_GEO)
    index = country_index(rib.routes, geo)
    got = country_transit(rib, index, "NL", "ipv6", frozenset(), geo.country_of_asn)
    assert not got.covered and "no routed ipv6 prefix of NL" in got.note


def test_eu_and_ap_registrations_are_no_country(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "delegated-test"
    file.write_text(
        "2|ripencc|20150101|4|19830705|20150101|+0100\n"
        "ripencc|EU|ipv4|193.0.0.0|1024|19930901|allocated\n"
        "ripencc|NL|ipv4|193.0.4.0|1024|19930901|allocated\n"
        "apnic|AP|asn|4608|1|19950101|allocated\n"
        "ripencc|EU|asn|3333|1|19930901|allocated\n"
    )
    geo = Geo.from_files([file])
    assert geo.country_of_address("193.0.0.1") is None
    assert geo.country_of_address("193.0.4.1") == "NL"
    assert geo.country_of_asn(4608) is None and geo.country_of_asn(3333) is None
    index = country_index(["193.0.0.0/22", "193.0.4.0/22"], geo)
    assert {key[0] for key in index.by_country} == {"NL"}


def test_root_address_of_an_uncovered_family_is_not_covered() -> None:
    rib = _rib([(11, P1, "11 3 100")])
    server = RootServer(
        letter="k", name="k.root-servers.net.", ipv4=("193.0.0.129",), ipv6=("2001:7fd::1",)
    )
    ff = {"ipv4": frozenset({0}), "ipv6": frozenset()}
    rows = root_prefixes(rib, [server], ff, {"k": (100,)})
    v4, v6 = rows
    assert v4.covered and v4.prefix == P1 and v4.visibility_ratio == 1.0
    assert not v6.covered and v6.note == "no ipv6 full-feed peer in the input"
    # a partial input cannot say a letter is not routed either
    rows = root_prefixes(
        rib,
        [RootServer("x", "x.", ("198.51.100.1",), ())],
        ff,
        {},
        partial=True,
    )
    assert not rows[0].covered and rows[0].prefix is None


def test_last_bin_is_partial_when_the_data_ends_early() -> None:
    rib = _rib([(11, P1, "11 3 100")])
    ff = {"ipv4": frozenset({0}), "ipv6": frozenset()}
    start = 1_420_070_400.0  # a multiple of 300
    updates = [
        Element("A", start + 10, "rrc00", 11, "192.0.2.11", P2, "11 3 200"),
        Element("W", start + 310, "rrc00", 11, "192.0.2.11", P2),
        Element("A", start + 599, "rrc00", 11, "192.0.2.11", P2, "11 3 200"),
    ]
    bins = Timeline(rib, ff, {P1: 1}, None, None).run(updates)
    # the data reaches 599 s, the end of the second bin (599 + 1 s resolution): complete
    assert [(b.start - start, b.partial) for b in bins] == [(0, False), (300, False)]
    rib = _rib([(11, P1, "11 3 100")])
    bins = Timeline(rib, ff, {P1: 1}, None, None).run(updates[:2])
    # the data stops 10 s into the second bin: partial
    assert [(b.start - start, b.partial) for b in bins] == [(0, False), (300, True)]


def test_overlapping_delegations_of_different_dates_warn(shared_data: pathlib.Path) -> None:
    old = shared_data / "rir/ipzone/delegated-afrinic-latest"  # 2014-06-30
    new = shared_data / "rir/rir-mirror/delegated-afrinic-extended-latest"  # 2023-03-23
    geo = Geo.from_files([old, new])
    assert len(geo.warnings) == 1
    warning = geo.warnings[0]
    assert str(old) in warning and str(new) in warning
    assert "20140630" in warning and "20230323" in warning and "41.0.0.0/11" in warning
    # files that do not overlap: no warning
    assert Geo.from_files([old, shared_data / "rir/ipzone/delegated-apnic-latest"]).warnings == []


@pytest.mark.parametrize("code", ["EU", "AP", "ZZ"])
def test_region_codes_are_no_country_in_delegated_rows(tmp_path: pathlib.Path, code: str) -> None:
    file = tmp_path / "d"
    file.write_text(f"ripencc|{code}|ipv4|10.0.0.0|256|19930901|allocated\n")
    with pytest.raises(InputError, match="no allocated/assigned rows"):
        Geo.from_files([file])
