"""Method fidelity, hand-checkable: country AS hegemony (IHR), upstream attribution, absent
families, the partial last bin, region codes that are not countries, overlapping delegations."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import ipaddress
import json
import pathlib
import shutil
import subprocess
import sys
from collections import defaultdict

import pytest
from publiccore.collectors.bgp.bgpdump import BgpdumpReader
from publiccore.collectors.bgp.elements import Element
from publiccore.collectors.bgp.hegemony import combine_views, country_hegemony, view_scores
from publiccore.collectors.bgp.pipeline import analyze
from publiccore.collectors.bgp.rib import Rib
from publiccore.collectors.bgp.roots import load_expected_origins, root_prefixes
from publiccore.collectors.bgp.scope import country_scope
from publiccore.collectors.bgp.timeline import Timeline
from publiccore.collectors.bgp.transit import country_transit
from publiccore.collectors.bgp.visibility import country_index

from publiccore import roothints
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
    got = country_hegemony(country_scope(rib, index, "NL", "ipv4", ff))
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
    got = country_hegemony(country_scope(rib, index, "NL", "ipv4", frozenset()))
    assert not got.covered and got.dependencies == () and got.note


def test_upstream_drops_the_collector_peer_as_first_as() -> None:
    # peer AS 3 (DE) sends P1 straight from AS100: its "upstream" would be itself, the collector
    # peer: dropped. Peer AS 11 (no country) sees P1 through AS5 (DE): 5 is the upstream.
    rib = _rib([(3, P1, "3 100"), (11, P1, "11 5 100"), (11, P2, "11 3 200")])
    geo = _geo(NL_GEO)
    index = country_index(rib.routes, geo)
    ff = frozenset(range(len(rib.peers)))
    got = country_transit(country_scope(rib, index, "NL", "ipv4", ff), geo.country_of_asn)
    assert got.paths_peer_upstream == 1 and got.paths_used == 2 and got.paths_skipped == 0
    # peer AS 11 alone: 1/3 of the space via 5, 2/3 via 3
    assert [(u.asn, round(u.share, 6)) for u in got.upstreams] == [(3, 0.666667), (5, 0.333333)]
    assert got.covered and got.to_json()["paths_peer_upstream"] == 1


def test_transit_of_a_family_without_routes_is_absent() -> None:
    rib = _rib([(11, P1, "11 3 100")])
    geo = _geo(NL_GEO)
    index = country_index(rib.routes, geo)
    got = country_transit(country_scope(rib, index, "NL", "ipv6", frozenset()), geo.country_of_asn)
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
        letter="k", name="k.root-servers.net.", ipv4=("193.0.0.129",), ipv6=("2001:db8::1",)
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


# --- real MRT files through bgpdump ------------------------------------------------------------

needs_bgpdump = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")
MRT = {
    "rrc05_2002": "bgpdump/bview.20020722.2337.gz",
    "rrc00_2018": "bgpdump/bview.64k_stream_overflow.gz",
    "rrc00_upd_2007": "bgpdump/updates.20071015.1505.gz",
    "rrc05_upd_2010": "bgpdump/updates.20100722.2015.gz",
    "rrc21_upd_2016": "bgpdump/updates.20160811.1600.gz",
    "rv6_2015": "pyasn/rib6.20151101.0600_firstMB.bz2",
}


def _named(shared_data: pathlib.Path, tmp_path: pathlib.Path, key: str, collector: str) -> str:
    """A real file under a folder naming its collector, as the RIS archive lays them out."""
    source = shared_data / "mrt" / MRT[key]
    folder = tmp_path / collector
    folder.mkdir(exist_ok=True)
    target = folder / source.name
    if not target.exists():
        target.symlink_to(source)
    return str(target)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@needs_bgpdump
def test_updates_of_another_collector_are_refused(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    rib = _named(shared_data, tmp_path, "rrc05_2002", "rrc05")
    updates = _named(shared_data, tmp_path, "rrc21_upd_2016", "rrc21")
    with pytest.raises(InputError, match="updates of rrc21 cannot be applied to RIBs of rrc05"):
        analyze(ribs=[rib], updates=[updates], reader=BgpdumpReader())


@needs_bgpdump
def test_updates_older_than_the_rib_are_refused(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    rib = _named(shared_data, tmp_path, "rrc00_2018", "rrc00")
    updates = _named(shared_data, tmp_path, "rrc00_upd_2007", "rrc00")
    with pytest.raises(InputError, match="updates end 2007-10-15 15:09:59 UTC, before the RIB"):
        analyze(ribs=[rib], updates=[updates], reader=BgpdumpReader())
    # one collector, updates after the RIB: accepted (and the CLI says the same as one line)
    rib05 = _named(shared_data, tmp_path, "rrc05_2002", "rrc05")
    ok = analyze(
        ribs=[rib05],
        updates=[_named(shared_data, tmp_path, "rrc05_upd_2010", "rrc05")],
        reader=BgpdumpReader(),
    )
    assert ok.bins and ok.bins[-1].partial
    run = _cli("bgp", "visibility", "--mrt", rib, "--updates", updates, "--no-store")
    assert run.returncode == 1
    assert run.stderr.startswith("publiccore: error: ") and run.stderr.count("\n") == 1


@needs_bgpdump
def test_ribs_of_one_collector_from_two_dump_times_are_refused(shared_data: pathlib.Path) -> None:
    with pytest.raises(InputError, match="RIBs of one collector from different dump times"):
        analyze(
            ribs=[shared_data / "mrt" / MRT["rrc05_2002"], shared_data / "mrt" / MRT["rrc00_2018"]],
            reader=BgpdumpReader(),
            collector="rrc00",  # as if both were rrc00's
        )


@needs_bgpdump
def test_ipv4_transit_on_a_v6_only_rib_stores_nothing(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store = tmp_path / "s.sqlite"
    common = [
        "--mrt",
        str(shared_data / "mrt" / MRT["rv6_2015"]),
        "--delegated",
        str(shared_data / "rir/ipzone/delegated-ripencc-latest"),
        "--store",
        str(store),
    ]
    run = _cli("bgp", "transit", "--country", "DE", "--family", "ipv4", "--json", *common)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["covered"] is False and out["count"] == 0
    assert "no ipv4 full-feed peer" in out["note"]
    assert "publiccore: note: DE ipv4: the input has no ipv4 full-feed peer" in run.stderr
    # the same RIB, IPv6: a figure, stored
    run6 = _cli("bgp", "transit", "--country", "DE", "--family", "ipv6", "--json", *common)
    assert run6.returncode == 0, run6.stderr
    assert json.loads(run6.stdout)["covered"] is True
    vis = _cli("bgp", "visibility", "--json", *common)
    assert vis.returncode == 0, vis.stderr
    roots = json.loads(vis.stdout)["roots"]
    assert {r["covered"] for r in roots if r["family"] == "ipv4"} == {False}
    from publiccore.store import open_store

    opened = open_store(str(store))
    try:
        observations = list(opened.iter_observations())
    finally:
        opened.close()
    upstream = [o for o in observations if o.metric.startswith("bgp_country_upstream")]
    assert upstream and {o.labels["family"] for o in upstream} == {"ipv6"}
    ratios = [o for o in observations if o.metric == "bgp_prefix_visibility_ratio"]
    assert ratios and {o.labels["family"] for o in ratios} == {"ipv6"}
    assert not [o for o in observations if o.labels.get("family") == "ipv4"]
    dependency = [o for o in observations if o.metric == "bgp_country_dependency_ratio"]
    assert dependency and len(dependency) <= 5 * 2  # top 5, two runs of DE ipv6
    # exported as publiccore_bgp_country_dependency_ratio{country,family,asn}, top 5 only
    from publiccore.collectors.aggregate import latest_observations
    from publiccore.exporters.catalogue import observation_series

    latest, _newest = latest_observations(observations)
    series = observation_series(latest)
    exported = series["publiccore_bgp_country_dependency_ratio"]
    assert 0 < len(exported) <= 5
    assert {(c, f) for c, f, _asn in exported} == {("DE", "ipv6")}
    assert all(asn.isdigit() for _c, _f, asn in exported)
    (count,) = series["publiccore_bgp_country_dependent_ases"].values()
    assert count == sum(1 for v in exported.values() if v > 0.1)


def _independent_hegemony(
    lines: list[list[str]], delegated: pathlib.Path, country: str
) -> dict[int, float]:
    """IPv6 country hegemony straight from ``bgpdump -m`` lines and the delegated file."""
    blocks: list[tuple[int, int, str]] = []  # (first, last address, country), sorted
    for line in delegated.read_text().splitlines():
        f = line.split("|")
        if len(f) >= 7 and f[2] == "ipv6" and f[6] in ("allocated", "assigned"):
            if f[1] not in ("", "ZZ", "EU", "AP"):
                net = ipaddress.ip_network(f"{f[3]}/{f[4]}")
                blocks.append((int(net.network_address), int(net.broadcast_address), f[1]))
    blocks.sort()
    starts = [b[0] for b in blocks]
    ipv6 = [f for f in lines if f[0].startswith("TABLE_DUMP") and ":" in f[5]]
    per_peer: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for f in ipv6:
        per_peer[(f[3], int(f[4]))][f[5]] = f[6]
    largest = max(len(routes) for routes in per_peer.values())
    full = {peer: routes for peer, routes in per_peer.items() if len(routes) >= 0.75 * largest}

    @functools.cache
    def in_country(prefix: str) -> bool:
        net = ipaddress.ip_network(prefix)
        if net.prefixlen < 16:
            return False
        first, last = int(net.network_address), int(net.broadcast_address)
        # the delegation holding the prefix (one file: delegations do not overlap) ...
        i = bisect.bisect_right(starts, first) - 1
        if i >= 0 and blocks[i][1] >= last:
            return blocks[i][2] == country
        # ... or, for an aggregate, the delegations inside it
        j = bisect.bisect_left(starts, first)
        k = bisect.bisect_right(starts, last)
        return any(blocks[n][2] == country and blocks[n][1] <= last for n in range(j, k))

    def cleaned(text: str) -> list[int]:
        out: list[int] = []
        for token in text.split():
            if token.startswith("{"):
                continue
            asn = int(token)
            if asn == 0 or asn == 23456 or 64496 <= asn <= 131071 or asn >= 4200000000:
                continue
            if not out or out[-1] != asn:
                out.append(asn)
        return out

    views: dict[int, list[dict[int, float]]] = defaultdict(list)
    for (_address, peer_asn), routes in full.items():
        mine = [cleaned(p) for prefix, p in routes.items() if in_country(prefix)]
        mine = [p for p in mine if p]
        if not mine:
            continue
        score: dict[int, float] = defaultdict(float)
        for path in mine:
            for asn in set(path[:-1]) - {path[-1]}:
                score[asn] += 1 / len(mine)
        views[peer_asn].append(score)
    averaged = []
    for sessions in views.values():
        merged: dict[int, float] = defaultdict(float)
        for s in sessions:
            for asn, v in s.items():
                merged[asn] += v / len(sessions)
        averaged.append(merged)
    result = {}
    for asn in {a for view in averaged for a in view}:
        values = sorted(view.get(asn, 0.0) for view in averaged)
        cut = int(0.1 * len(values))
        kept = values[cut : len(values) - cut]
        if sum(kept) > 0:
            result[asn] = sum(kept) / len(kept)
    return result


@needs_bgpdump
def test_hegemony_on_a_real_rib_equals_an_independent_computation(
    shared_data: pathlib.Path,
) -> None:
    rib = shared_data / "mrt" / MRT["rv6_2015"]
    delegated = shared_data / "rir/ipzone/delegated-ripencc-latest"
    got = analyze(
        ribs=[rib],
        reader=BgpdumpReader(),
        geo=Geo.from_files([delegated]),
        countries=False,
        transit_countries=["DE"],
        transit_families=["ipv6"],
    )
    hegemony = got.hegemony[0]
    assert hegemony.covered and hegemony.peer_asns_used >= 10  # enough to trim
    lines = [
        line.split("|")
        for line in subprocess.run(
            ["bgpdump", "-q", "-m", str(rib)], capture_output=True, text=True, timeout=300
        ).stdout.splitlines()
    ]
    expected = _independent_hegemony(lines, delegated, "DE")
    assert {d.asn: round(d.hegemony, 9) for d in hegemony.dependencies} == {
        a: round(v, 9) for a, v in expected.items()
    }
    # compared with the upstream figure on the same RIB (docs/bgp.md)
    transit = got.transit[0]
    print(
        "DE ipv6 2015: top upstreams",
        [(u.asn, round(u.share, 3)) for u in transit.upstreams[:5]],
        "effective",
        round(transit.effective_number, 2),
        "peer-only paths",
        transit.paths_peer_upstream,
        "of",
        transit.paths_used + transit.paths_skipped + transit.paths_peer_upstream,
        "| hegemony",
        [(d.asn, round(d.hegemony, 3)) for d in hegemony.dependencies[:5]],
        "above 0.1:",
        hegemony.dependent_ases(),
    )


@pytest.mark.parametrize(
    ("when", "file"),
    [
        (dt.datetime(2002, 7, 22, tzinfo=dt.UTC), "named.root.2011060800"),
        (dt.datetime(2015, 11, 1, 6, tzinfo=dt.UTC), "named.root.2014060201"),
        (dt.datetime(2024, 9, 1, tzinfo=dt.UTC), "named.root.2024081401"),
        (dt.datetime(2026, 11, 30, tzinfo=dt.UTC), "named.root"),
    ],
)
def test_root_hints_as_of_the_data(when: dt.datetime, file: str) -> None:
    dated = roothints.hints_as_of(when)
    assert dated.file == file and len(dated.servers) == 13
    b = next(s for s in dated.servers if s.letter == "b")
    if when.year < 2017:  # B-root before its 2017 renumbering (the bundled changes table)
        renumbered = next(
            c
            for c in roothints.load_changes()
            if (c.letter, c.family, c.effective.year) == ("b", "ipv4", 2017)
        )
        assert b.ipv4 == (renumbered.old,)
    if when.year == 2002:
        assert "older than the shipped root hints history" in dated.note
    if when.year == 2015:
        assert "letters b, h, l have other addresses" in dated.note


def test_bundled_origins_hold_verisign_and_every_letter() -> None:
    origins = load_expected_origins()
    assert set(origins) == set("abcdefghijklm")
    assert set(range(36617, 36632)) <= set(origins["a"]) & set(origins["j"])


def _b_root(when: dt.datetime) -> RootServer:
    """B-root as the bundled hints in force at ``when`` name it."""
    return next(s for s in roothints.hints_as_of(when).servers if s.letter == "b")


@needs_bgpdump
def test_2015_rib_with_2015_hints_flags_no_root_origin(shared_data: pathlib.Path) -> None:
    rib = shared_data / "mrt" / MRT["rv6_2015"]
    run = _cli("bgp", "roots", "--mrt", str(rib), "--json", "--no-store")
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert "root hints as of 2014-06-02 (named.root.2014060201)" in run.stderr
    v6 = [r for r in rows if r["family"] == "ipv6"]
    assert len(v6) == 11  # the 2014 hints: B, C, D… with IPv6, E and G without
    assert not [r for r in v6 if r["unexpected"]], [r for r in v6 if r["unexpected"]]
    b = next(r for r in v6 if r["letter"] == "b")
    (b_2014,) = _b_root(dt.datetime(2015, 11, 1, tzinfo=dt.UTC)).ipv6  # read from the hints
    assert b["address"] == b_2014
    assert b["prefix"] == str(ipaddress.ip_network(f"{b_2014}/48", strict=False))
    assert b["origins"] == [226]
    # with today's hints, B-root's 2023 address is not in a 2015 table
    current = _cli(
        "bgp",
        "roots",
        "--mrt",
        str(rib),
        "--json",
        "--no-store",
        "--hints",
        str(roothints.bundled_hints_path()),
    )
    (b_today,) = _b_root(dt.datetime(2026, 11, 30, tzinfo=dt.UTC)).ipv6
    b_now = next(r for r in json.loads(current.stdout) if r["address"] == b_today)
    assert b_now["prefix"] is None


def test_historic_root_origins_are_expected_up_to_their_last_sighting(
    tmp_path: pathlib.Path,
) -> None:
    in_2002 = load_expected_origins(as_of=dt.datetime(2002, 7, 22, 23, 37, tzinfo=dt.UTC))
    today = load_expected_origins(as_of=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert 11840 in in_2002["a"] and 11840 not in today["a"]  # A-root's 2002 origin
    assert 5459 in in_2002["k"] and today["k"] == (25152,)
    assert today["b"] == (394353,) and 226 in load_expected_origins(as_of=1446357600.0)["b"]
    assert 11840 in load_expected_origins()["a"]  # no date: every listed origin
    bad = tmp_path / "o.toml"
    bad.write_text('[letters.a]\norigins = [1]\nlast_seen = { 1 = "yesterday" }\n')
    with pytest.raises(InputError, match="is not ASN = YYYY-MM-DD"):
        load_expected_origins(bad)
