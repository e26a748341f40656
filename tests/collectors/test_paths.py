"""Border-crossing outcomes on traces built for them and on real RIPE Atlas traceroutes
(shared/data/atlas): crossed, left through unmapped space, never crossed; unknown entry ASes."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import pathlib
from collections import Counter

import pytest
from publiccore.collectors import paths

from publiccore.geo import Geo
from publiccore.records import (
    ProbeRef,
    Record,
    TraceHop,
    TraceReply,
    TraceResult,
    TraceTarget,
    make_record,
)

T0 = dt.datetime(2017, 6, 26, 16, 0, tzinfo=dt.UTC)
DELEGATED = """2|ripencc|20170101|4|19700101|20170101|+0000
ripencc|NL|ipv4|193.0.0.0|256|19930901|allocated
ripencc|NL|ipv4|193.0.1.0|256|19930901|allocated
ripencc|DE|ipv4|194.0.0.0|256|19930901|allocated
"""
# 193.0.0.0/24 NL AS1103; 193.0.1.0/24 NL but not in the AS table; 194.0.0.0/24 DE AS3320;
# 8.8.8.0/24 (AS15169) is public space no file given here maps to a country.
ASNS = "193.0.0.0/24\t1103\n194.0.0.0/25\t3320\n8.8.8.0/24\t15169\n"


def _trace(*hops: str | None, probe: str = "p1", country: str = "NL", asn: int = 1136) -> Record:
    return make_record(
        kind="traceroute",
        probe=ProbeRef(id=probe, asn=asn, country=country),
        target=TraceTarget(address="8.8.8.8", family="ipv4"),
        result=TraceResult(
            hops=tuple(
                TraceHop(ttl=i + 1, replies=(TraceReply(address=a),) if a else ())
                for i, a in enumerate(hops)
            )
        ),
        started=T0,
        finished=T0,
    )


@pytest.fixture
def geo_asns(tmp_path: pathlib.Path) -> tuple[Geo, paths.AsnTable]:
    (tmp_path / "d").write_text(DELEGATED)
    (tmp_path / "a").write_text(ASNS)
    return Geo.from_files([tmp_path / "d"]), paths.AsnTable.from_file(tmp_path / "a")


@pytest.mark.parametrize(
    ("hops", "outcome", "crossing"),
    [
        # private first hop skipped; in-country hop, then DE: crossed from AS1103 into AS3320
        (("192.168.1.1", "193.0.0.1", "194.0.0.1"), "crossed", (1103, 3320, "DE")),
        # the in-country hop has no AS in the table: the probe's AS stays the exit AS
        (("193.0.1.1", "194.0.0.1"), "crossed", (1136, 3320, "DE")),
        # entry AS unknown (194.0.0.200 is outside the /25 of the table)
        (("193.0.0.1", "194.0.0.200"), "crossed", (1103, None, "DE")),
        # unmapped space in the middle, then DE: still a crossing
        (("193.0.0.1", "8.8.8.1", "194.0.0.1"), "crossed", (1103, 3320, "DE")),
        # leaves mapped space and never comes back: its own outcome
        (("193.0.0.1", "8.8.8.1", None, "8.8.8.8"), "left_unmapped", None),
        # out into unmapped space and back home: never crossed
        (("193.0.0.1", "8.8.8.1", "193.0.1.1"), "never_crossed", None),
        # only in-country and unanswered hops
        (("193.0.0.1", None, "193.0.1.9"), "never_crossed", None),
        ((), "never_crossed", None),
    ],
)
def test_trace_outcome(
    geo_asns: tuple[Geo, paths.AsnTable],
    hops: tuple[str | None, ...],
    outcome: str,
    crossing: tuple[int | None, int | None, str] | None,
) -> None:
    geo, asns = geo_asns
    got = paths.trace_outcome(_trace(*hops), geo, asns)
    assert got.outcome == outcome
    if crossing is None:
        assert got.crossing is None
    else:
        assert got.crossing is not None
        assert (got.crossing.exit_asn, got.crossing.entry_asn, got.crossing.entry_country) == (
            crossing
        )


def test_unknown_entry_as_is_one_crossing_and_outcomes_add_up(
    geo_asns: tuple[Geo, paths.AsnTable],
) -> None:
    geo, asns = geo_asns
    records = [
        _trace("193.0.0.1", "194.0.0.200", probe="a"),  # entry AS unknown
        _trace("193.0.0.1", "194.0.0.201", probe="b"),  # another address, same unknown AS
        _trace("193.0.0.1", "194.0.0.1", probe="c"),
        _trace("193.0.0.1", "8.8.8.8", probe="d"),
        _trace("193.0.0.1", probe="e"),
    ]
    (nl,) = paths.crossings_by_country(records, geo, asns)
    assert nl.traces == 5 and nl.traces_crossing == 3 and nl.traces_left_unmapped == 1
    assert [(c.exit_asn, c.entry_asn, c.entry_country, round(s, 4)) for c, s in nl.crossings] == [
        (1103, None, "DE", 0.6667),
        (1103, 3320, "DE", 0.3333),
    ]
    assert nl.to_json()["outcomes"] == {"crossed": 3, "left_unmapped": 1, "never_crossed": 1}
    assert paths.asn_text(None) == "unknown" and paths.asn_text(3320) == "AS3320"


def _atlas_records(path: pathlib.Path, geo: Geo, asns: paths.AsnTable) -> list[Record]:
    """RIPE Atlas traceroute results as records; the probe's country and AS are those of the
    public address it measured from (``from``), as the delegated files and the table give them."""
    out = []
    for result in json.loads(gzip.decompress(path.read_bytes())):
        source = result.get("from")
        if not source or ":" in source:
            continue
        country = geo.country_of_address(source)
        if country is None:
            continue
        hops = []
        for hop in result.get("result", []):
            replies = tuple(
                TraceReply(address=r["from"]) for r in hop.get("result", []) if r.get("from")
            )
            hops.append(TraceHop(ttl=int(hop.get("hop", 0)), replies=replies))
        out.append(
            make_record(
                kind="traceroute",
                probe=ProbeRef(id=str(result["prb_id"]), asn=asns.asn_of(source), country=country),
                target=TraceTarget(address=result["dst_addr"], family="ipv4", protocol="icmp"),
                result=TraceResult(hops=tuple(hops)),
                started=dt.datetime.fromtimestamp(result["timestamp"], dt.UTC),
                finished=dt.datetime.fromtimestamp(result["endtime"], dt.UTC),
            )
        )
    return out


def _independent_outcome(record: Record, geo: Geo) -> str:
    """The outcome from the hop addresses alone: the first located hop elsewhere is a
    crossing; otherwise, is there a public unmapped hop after the last in-country one?"""
    import ipaddress

    located = []
    for hop in record.result.hops:  # type: ignore[union-attr]
        counts = Counter(r.address for r in hop.replies if r.address)
        if not counts or not ipaddress.ip_address(counts.most_common(1)[0][0]).is_global:
            continue
        located.append(geo.country_of_address(counts.most_common(1)[0][0]))
    home = record.probe.country
    for where in located:
        if where is not None and where != home:
            return "crossed"
    last_home = max((i for i, where in enumerate(located) if where == home), default=-1)
    return "left_unmapped" if any(w is None for w in located[last_home + 1 :]) else "never_crossed"


def test_real_atlas_traceroutes_left_through_unmapped_space(shared_data: pathlib.Path) -> None:
    # Traceroutes to 8.8.8.8 (2017) from probes in APNIC/RIPE/AFRINIC/LACNIC space: Google's
    # ARIN space is in no file given, so many traces end in unmapped space without a crossing.
    geo = Geo.from_files(
        [
            shared_data / "rir/ipzone/delegated-apnic-latest",
            shared_data / "rir/ipzone/delegated-ripencc-latest",
        ]
    )
    asns = paths.AsnTable.from_file(shared_data / "rir/pyasn/ipasn_20140513.dat.gz")
    records = _atlas_records(
        shared_data / "atlas/recdnsfp-measurements/google/traceroute.json.gz", geo, asns
    )
    au = [r for r in records if r.probe.country == "AU"]
    assert len(au) > 50
    results = {c.country: c for c in paths.crossings_by_country(au, geo, asns)}
    got = results["AU"]
    expected = Counter(_independent_outcome(r, geo) for r in au)
    assert got.traces == len(au)
    assert got.traces_crossing == expected["crossed"]
    assert got.traces_left_unmapped == expected["left_unmapped"]
    # most AU traces that do not cross left through unmapped space: not "never crossed"
    never = got.traces - got.traces_crossing - got.traces_left_unmapped
    assert got.traces_left_unmapped > never
    print("AU", len(au), "traces:", dict(expected))
