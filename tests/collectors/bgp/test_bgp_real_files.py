"""Real MRT files (shared/data/mrt) through the real bgpdump reader, checked against counts made
independently from bgpdump's own ``-m`` output and against PROVENANCE.md; corrupt, truncated and
empty files made from them give clear errors or partial results."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import pathlib
import shutil
import subprocess
import sys
from collections import defaultdict

import pytest
from publiccore.collectors.bgp.bgpdump import BgpdumpReader
from publiccore.collectors.bgp.pipeline import analyze
from publiccore.collectors.bgp.rib import FullFeedRule, Rib
from publiccore.collectors.bgp.roots import load_expected_origins

from publiccore.errors import InputError
from publiccore.roothints import load_hints

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

RIBS = [
    "bgpdump/bview.20020722.2337.gz",
    "bgpdump/bview.64k_stream_overflow.gz",
    "pyasn/rib.20140523.0600_firstMB.bz2",
    "pyasn/rib6.20151101.0600_firstMB.bz2",
]
UPDATES = [
    "libbgpstream/ris.rrc06.updates.1427846400.gz",
    "libbgpstream/routeviews.route-views.jinx.updates.1427846400.bz2",
    "bgpdump/updates.20160811.1600.gz",
]


def _bgpdump_lines(path: pathlib.Path) -> list[list[str]]:
    out = subprocess.run(
        ["bgpdump", "-q", "-m", str(path)], capture_output=True, text=True, check=False, timeout=120
    ).stdout
    return [line.split("|") for line in out.splitlines()]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("name", RIBS)
def test_rib_peer_counts_match_bgpdump(shared_data: pathlib.Path, name: str) -> None:
    path = shared_data / "mrt" / name
    expected: dict[tuple[str, int], dict[str, set[str]]] = defaultdict(
        lambda: {"ipv4": set(), "ipv6": set()}
    )
    for f in _bgpdump_lines(path):
        if f[2] == "B":
            expected[(f[3], int(f[4]))]["ipv6" if ":" in f[5] else "ipv4"].add(f[5])
    rib = Rib()
    read = BgpdumpReader().read(path, kind="rib")
    rib.apply(read)
    got = {
        (p.peer_address, p.peer_asn): dict(c)
        for p, c in zip(rib.peers, rib.prefix_counts(), strict=True)
    }
    assert got == {k: {f: len(s) for f, s in v.items()} for k, v in expected.items()}
    assert read.report.elements == sum(1 for f in _bgpdump_lines(path) if f[2] == "B")
    assert read.report.partial is name.endswith("_firstMB.bz2")  # the truncated pyasn RIBs


def test_bview_2002_matches_provenance(shared_data: pathlib.Path) -> None:
    # PROVENANCE.md: 115,521 entries, 36 peers, 112,988 prefixes, one full table from
    # 193.203.0.1 AS1853 (112,986 entries)
    a = analyze(
        ribs=[shared_data / "mrt/bgpdump/bview.20020722.2337.gz"],
        reader=BgpdumpReader(),
        servers=load_hints(),
        expected=load_expected_origins(),
    )
    assert a.sources[0].elements == 115_521 and not a.partial
    assert len(a.peers) == 36
    assert a.summary.prefixes_seen["ipv4"] == 112_988
    full = [p for p in a.peers if p.full_feed["ipv4"]]
    assert [(p.peer.peer_address, p.peer.peer_asn, p.prefixes["ipv4"]) for p in full] == [
        ("193.203.0.1", 1853, 112_986)
    ]
    # visible = carried by > 50% of the one full-feed peer = every prefix AS1853 carries
    assert a.summary.prefixes_visible["ipv4"] == 112_986
    # F root: independently, bgpdump says 192.5.4.0/23 is originated by AS3557 (ISC)
    lines = _bgpdump_lines(shared_data / "mrt/bgpdump/bview.20020722.2337.gz")
    origins = {f[6].split()[-1] for f in lines if f[5] == "192.5.4.0/23"}
    f_root = next(r for r in a.roots if r.address == f_root_ipv4())
    assert (f_root.prefix, set(map(str, f_root.origins)), f_root.unexpected) == (
        "192.5.4.0/23",
        origins,
        False,
    )
    assert origins == {"3557"}


def f_root_ipv4() -> str:
    """F-root's IPv4 address as the bundled hints file gives it (read as data, never queried)."""
    return next(s.ipv4[0] for s in load_hints() if s.letter == "f")


def test_truncated_rib_partial_with_how_far(shared_data: pathlib.Path) -> None:
    # PROVENANCE.md: 270,005 RIB entries before the cut; bgpdump reports "incomplete dump record"
    read = BgpdumpReader().read(shared_data / "mrt/pyasn/rib.20140523.0600_firstMB.bz2", kind="rib")
    assert sum(1 for _ in read) == 270_005
    report = read.report
    assert report.partial and "incomplete dump record" in report.problem
    assert "15,274,550 decompressed bytes" in report.problem


@pytest.mark.parametrize("name", UPDATES)
def test_updates_replay_matches_bgpdump(shared_data: pathlib.Path, name: str) -> None:
    path = shared_data / "mrt" / name
    tables: dict[tuple[str, int], set[str]] = defaultdict(set)
    for f in _bgpdump_lines(path):
        key = (f[3], int(f[4]))
        if f[2] == "A":
            tables[key].add(f[5])
        elif f[2] == "W":
            tables[key].discard(f[5])
        elif f[2] == "STATE" and f[6] != "6":
            tables[key].clear()
    rib = Rib()
    rib.apply(BgpdumpReader().read(path, kind="updates"))
    got = {
        (p.peer_address, p.peer_asn): c["ipv4"] + c["ipv6"]
        for p, c in zip(rib.peers, rib.prefix_counts(), strict=True)
    }
    assert {k: v for k, v in got.items() if v} == {k: len(v) for k, v in tables.items() if v}


def test_updates_bins_over_real_window(shared_data: pathlib.Path) -> None:
    # rrc05's 2002 RIB and rrc05's updates of 2010-07-22 20:15:01-20:20:00: one collector, the
    # updates after the RIB (years after it: only the bin mechanics are checked here, not a
    # meaningful series). The last element is at 20:20:00, so the 20:20 bin holds one second of
    # its five minutes: partial.
    a = analyze(
        ribs=[shared_data / "mrt/bgpdump/bview.20020722.2337.gz"],
        updates=[shared_data / "mrt/bgpdump/updates.20100722.2015.gz"],
        reader=BgpdumpReader(),
        collector="rrc05",
    )
    assert [b.start for b in a.bins] == [1279829700.0, 1279830000.0]
    assert sum(b.updates for b in a.bins) == 5_654
    assert [b.partial for b in a.bins] == [False, True]


def test_cli_visibility_json_shape(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    run = _cli(
        "bgp",
        "visibility",
        "--mrt",
        str(shared_data / "mrt/bgpdump/bview.20020722.2337.gz"),
        "--delegated",
        str(shared_data / "rir/ipzone/delegated-ripencc-latest"),
        "--collector",
        "rrc05",
        "--json",
        "--store",
        str(tmp_path / "s.sqlite"),
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert set(out) >= {"sources", "peers", "summary", "countries"}
    assert out["sources"][0]["sha256"] == (
        "8086090ad2e3a88a3a11906265394465bb1b6fd26fc07b5a91bcf2d97eb6be26"
    )
    assert out["sources"][0]["collector"] == "rrc05" and out["sources"][0]["partial"] is False
    assert set(out["peers"][0]) >= {
        "collector",
        "peer_asn",
        "peer_address",
        "prefixes",
        "full_feed",
    }
    assert out["summary"]["ipv4"]["prefixes_seen"] == 112_988
    nl = next(c for c in out["countries"] if c["country"] == "NL" and c["family"] == "ipv4")
    assert set(nl) >= {"routed_units", "visible_units", "visible_ratio", "unseen_prefixes"}
    assert 0 < nl["visible_units"] <= nl["routed_units"]
    from publiccore.store import open_store

    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        metrics = {o.metric for o in store.iter_observations()}
    finally:
        store.close()
    assert metrics == {
        "bgp_country_visible_slash24",
        "bgp_country_visibility_ratio",
        "bgp_country_routed_units",
        "bgp_country_unseen_prefixes",
        "bgp_prefix_visibility_ratio",
        "bgp_root_prefix_unexpected_origin",
    }


def test_cli_roots_json(shared_data: pathlib.Path) -> None:
    run = _cli(
        "bgp",
        "roots",
        "--mrt",
        str(shared_data / "mrt/bgpdump/bview.20020722.2337.gz"),
        "--json",
        "--no-store",
    )
    assert run.returncode == 0, run.stderr
    rows = {r["address"]: r for r in json.loads(run.stdout)}
    assert rows[f_root_ipv4()]["origins"] == [3557]
    assert set(rows[f_root_ipv4()]) >= {
        "letter",
        "address",
        "prefix",
        "visibility_ratio",
        "origins",
        "expected_origins",
        "unexpected",
    }


def test_default_route_is_not_a_root_prefix(shared_data: pathlib.Path) -> None:
    # The 2014 excerpt holds 0.0.0.0/0 but none of the root prefixes: no false hijack alarm.
    run = _cli(
        "bgp",
        "roots",
        "--mrt",
        str(shared_data / "mrt/pyasn/rib.20140523.0600_firstMB.bz2"),
        "--json",
        "--no-store",
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    ipv4 = [r for r in rows if ":" not in r["address"]]
    assert ipv4 and all(r["prefix"] is None and not r["unexpected"] for r in ipv4)


# --- corrupt, truncated, empty ----------------------------------------------------------------


def test_truncated_gzip_is_partial_and_named(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    data = (shared_data / "mrt/bgpdump/bview.20020722.2337.gz").read_bytes()
    cut = tmp_path / "bview-cut.gz"
    cut.write_bytes(data[: len(data) // 3])
    run = _cli("bgp", "visibility", "--mrt", str(cut), "--json", "--no-store")
    assert run.returncode == 0, run.stderr
    assert "bview-cut.gz: partial after" in run.stderr
    assert "gzip stream ends early" in run.stderr
    source = json.loads(run.stdout)["sources"][0]
    assert source["partial"] is True and 0 < source["elements"] < 115_521


def test_flipped_bytes_are_partial(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    raw = bytearray(
        gzip.decompress((shared_data / "mrt/bgpdump/updates.20160811.1600.gz").read_bytes())
    )
    for i in range(50_000, 50_100):
        raw[i] ^= 0xFF
    bad = tmp_path / "flipped.mrt"
    bad.write_bytes(bytes(raw))
    read = BgpdumpReader().read(bad, kind="updates")
    count = sum(1 for _ in read)
    assert 0 < count < 41_234
    assert read.report.partial and read.report.problem


def test_flipped_bzip2_is_partial(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    data = bytearray(
        (
            shared_data / "mrt/libbgpstream/routeviews.route-views.jinx.updates.1427846400.bz2"
        ).read_bytes()
    )
    for i in range(20_000, 20_040):
        data[i] ^= 0x55
    bad = tmp_path / "jinx-flipped.bz2"
    bad.write_bytes(bytes(data))
    # the whole file is one bzip2 block: its CRC fails and nothing at all can be read
    with pytest.raises(
        InputError,
        match=r"jinx-flipped\.bz2: not a readable MRT file "
        r"\(bzip2 data corrupt after 34,060 compressed",
    ):
        sum(1 for _ in BgpdumpReader().read(bad, kind="updates"))


def test_empty_file_is_an_error(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty.mrt"
    empty.write_bytes(b"")
    run = _cli("bgp", "visibility", "--mrt", str(empty), "--no-store")
    assert run.returncode == 1
    assert run.stderr.strip() == f"publiccore: error: {empty}: empty file, no MRT records"


def test_empty_gzip_is_an_error(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match=r"empty\.gz: empty file \(nothing after gzip"):
        sum(1 for _ in BgpdumpReader().read(empty, kind="rib"))


def test_not_mrt_is_an_error(tmp_path: pathlib.Path) -> None:
    junk = tmp_path / "junk.bz2"
    junk.write_bytes(bz2.compress(b"this is not MRT at all\n" * 3))
    with pytest.raises(InputError, match=r"junk\.bz2: not a readable MRT file \(bgpdump"):
        sum(1 for _ in BgpdumpReader().read(junk, kind="rib"))


def test_rib_without_peer_index_is_an_error(shared_data: pathlib.Path) -> None:
    path = shared_data / "mrt/pyasn/bview.20140112.1600_3samples.bz2"
    with pytest.raises(InputError, match="missing peer index table"):
        sum(1 for _ in BgpdumpReader().read(path, kind="rib"))


def test_missing_file_is_an_error(tmp_path: pathlib.Path) -> None:
    run = _cli("bgp", "roots", "--mrt", str(tmp_path / "nope.gz"), "--no-store")
    assert run.returncode == 1 and "nope.gz: no such MRT file" in run.stderr


def test_full_feed_ratio_from_cli(shared_data: pathlib.Path) -> None:
    run = _cli(
        "bgp",
        "visibility",
        "--mrt",
        str(shared_data / "mrt/bgpdump/bview.20020722.2337.gz"),
        "--json",
        "--no-store",
        "--full-feed-ratio",
        "0.005",
    )
    assert run.returncode == 0, run.stderr
    peers = json.loads(run.stdout)["peers"]
    # 0.5% of AS1853's 112,986 = 565: AS1853 and AS1273 (1,114 prefixes) qualify
    assert sorted(p["peer_asn"] for p in peers if p["full_feed"]["ipv4"]) == [1273, 1853]
    assert FullFeedRule().ratio == 0.75


def test_country_visibility_one_pass_equals_per_country(shared_data: pathlib.Path) -> None:
    from publiccore.collectors.bgp.rib import full_feed_sets
    from publiccore.collectors.bgp.visibility import (
        all_country_visibility,
        country_index,
        country_visibility,
        tally,
    )

    from publiccore.geo import Geo

    rib = Rib()
    rib.apply(
        BgpdumpReader().read(shared_data / "mrt/pyasn/rib.20140523.0600_firstMB.bz2", kind="rib")
    )
    ff = full_feed_sets(rib.peer_table(FullFeedRule()))
    counts, _summary = tally(rib, ff)
    geo = Geo.from_files(
        [
            shared_data / "rir/rir-mirror/delegated-lacnic-extended-latest",
            shared_data / "rir/ipzone/delegated-apnic-latest",
        ]
    )
    index = country_index(rib.routes, geo)
    together = all_country_visibility(index, rib, counts, ff)
    assert together and together == [
        country_visibility(index, (c.country, c.family), rib.routes, counts, len(ff[c.family]))
        for c in together
    ]
    # a default route is not attributed: 0.0.0.0/0 is in this RIB
    assert "0.0.0.0/0" in rib.routes and index.pieces["0.0.0.0/0"] == []


def _geo_all(shared_data: pathlib.Path):  # type: ignore[no-untyped-def]
    from publiccore.geo import Geo

    return Geo.from_files(
        [
            shared_data / "rir/ipzone/delegated-ripencc-latest",
            shared_data / "rir/ipzone/delegated-apnic-latest",
            shared_data / "rir/ipzone/delegated-afrinic-latest",
            shared_data / "rir/rir-mirror/delegated-lacnic-extended-latest",
        ]
    )


@pytest.mark.parametrize(
    "name", ["pyasn/rib.20140523.0600_firstMB.bz2", "bgpdump/bview.20020722.2337.gz"]
)
def test_every_country_transit_and_hegemony_equal_one_by_one(
    shared_data: pathlib.Path, name: str
) -> None:
    """Every country at once (one route scope per country shared by transit and hegemony, one
    cleaning per AS path) gives exactly what each country computed alone gives."""
    from publiccore.collectors.bgp.hegemony import country_hegemony
    from publiccore.collectors.bgp.scope import country_scope
    from publiccore.collectors.bgp.transit import country_transit

    geo = _geo_all(shared_data)
    analysis = analyze(
        ribs=[shared_data / "mrt" / name], reader=BgpdumpReader(), geo=geo, transit_countries=["*"]
    )
    assert analysis.index is not None
    assert len(analysis.transit) > 20 and len(analysis.hegemony) == len(analysis.transit)
    assert any(t.upstreams for t in analysis.transit)
    assert any(h.dependencies for h in analysis.hegemony)
    for transit, hegemony in zip(analysis.transit, analysis.hegemony, strict=True):
        ff = analysis.full_feed[transit.family]
        args = (analysis.rib, analysis.index, transit.country, transit.family, ff)
        assert transit == country_transit(country_scope(*args), geo.country_of_asn)
        assert hegemony == country_hegemony(country_scope(*args))


def test_timeline_seeded_with_the_rib_countries_equals_one_computing_them(
    shared_data: pathlib.Path,
) -> None:
    """The update timeline starts from the RIB's own country rows instead of computing them
    again; its bins are the same as those of a timeline that computes them."""
    from publiccore.collectors.bgp.timeline import Timeline

    rib_file = shared_data / "mrt/pyasn/rib.20140523.0600_firstMB.bz2"
    updates = shared_data / "mrt/bgpdump/updates.20160811.1600.gz"
    geo = _geo_all(shared_data)
    reader = BgpdumpReader()
    seeded = analyze(ribs=[rib_file], reader=reader, geo=geo, updates=[updates])
    assert seeded.bins and any(b.countries for b in seeded.bins)
    plain = analyze(ribs=[rib_file], reader=reader, geo=geo)
    assert plain.index is not None and plain.countries
    timeline = Timeline(
        plain.rib, plain.full_feed, dict(plain.ff_counts), plain.index, geo, known=()
    )
    computed = timeline.run(reader.read(updates, kind="updates"))
    assert [b.countries for b in seeded.bins] == [b.countries for b in computed]
    # the rows given are the rows used: a country no update touches keeps the given row
    marked = dataclasses.replace(plain.countries[0], unseen_prefixes=-1)
    fresh = analyze(ribs=[rib_file], reader=reader, geo=geo)
    first = Timeline(
        fresh.rib, fresh.full_feed, dict(fresh.ff_counts), fresh.index, geo, known=[marked]
    ).snapshot(0.0, 0)
    assert marked in first.countries


def test_a_rib_reuses_the_country_pieces_attributed_before(shared_data: pathlib.Path) -> None:
    """A worker's next RIB takes the prefixes' country pieces from the state it holds instead of
    asking the RIR tables again: the same figures, the same pieces (the very lists)."""
    from publiccore.collectors.bgp.process import Job, ProcessConfig, Processor

    rib_file = shared_data / "mrt/bgpdump/bview.20020722.2337.gz"
    geo = _geo_all(shared_data)
    reader = BgpdumpReader()
    first = analyze(ribs=[rib_file], reader=reader, geo=geo, transit_countries=["*"])
    assert first.index is not None and len(first.index.pieces) > 100_000
    again = analyze(
        ribs=[rib_file],
        reader=reader,
        geo=geo,
        transit_countries=["*"],
        attributed=first.index.pieces,
    )
    assert again.index is not None and again.index.known == {}  # not held on to
    assert (again.countries, again.transit, again.hegemony) == (
        first.countries,
        first.transit,
        first.hegemony,
    )
    assert again.index.by_country == first.index.by_country
    assert all(again.index.pieces[p] is first.index.pieces[p] for p in first.index.pieces)

    delegated = tuple(
        str(shared_data / p)
        for p in (
            "rir/ipzone/delegated-ripencc-latest",
            "rir/ipzone/delegated-apnic-latest",
            "rir/ipzone/delegated-afrinic-latest",
            "rir/rir-mirror/delegated-lacnic-extended-latest",
        )
    )
    processor = Processor(ProcessConfig(delegated=delegated))
    outcomes = []
    indexes = []
    for hour in (0, 8):
        job = Job("ris", "rrc05", "rib", f"bview.{hour}", str(rib_file), hour * 3600.0)
        outcomes.append(processor.process(job))
        index = processor.states[("ris", "rrc05")].analysis.index
        assert index is not None
        indexes.append(index)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert outcomes[0].observations == outcomes[1].observations
    prefix = next(iter(indexes[0].pieces))
    assert indexes[1].pieces[prefix] is indexes[0].pieces[prefix]


def test_timeline_countries_kept_per_change_equal_a_recount_at_every_bin(
    shared_data: pathlib.Path,
) -> None:
    """The timeline keeps each changed country's figures up to date per prefix change; at
    every bin (10 s bins: 31 over this file) they equal country_visibility recounted over the
    table as it is then, for every country."""
    from publiccore.collectors.bgp.timeline import Timeline
    from publiccore.collectors.bgp.visibility import country_visibility

    geo = _geo_all(shared_data)
    reader = BgpdumpReader()
    rib = analyze(ribs=[shared_data / "mrt/bgpdump/bview.20020722.2337.gz"], reader=reader, geo=geo)
    assert rib.index is not None
    index = rib.index
    timeline = Timeline(
        rib.rib,
        rib.full_feed,
        dict(rib.ff_counts),
        index,
        geo,
        bin_seconds=10,
        known=rib.countries,
    )
    checked: list[int] = []

    def recount(done) -> None:  # type: ignore[no-untyped-def]
        expected = [
            row
            for key in sorted(index.by_country)
            if (
                row := country_visibility(
                    index,
                    key,
                    timeline.rib.routes,
                    timeline.ff_counts,
                    len(timeline.full_feed[key[1]]),
                )
            ).prefixes
        ]
        assert list(done.countries) == expected
        checked.append(len(expected))

    updates = shared_data / "mrt/bgpdump/updates.20100722.2015.gz"
    bins = timeline.run(reader.read(updates, kind="updates"), on_bin=recount)
    assert len(bins) == len(checked) > 20 and min(checked) > 100
    assert len({b.countries for b in bins}) > 1  # the figures do move over the file
