"""RIBs of one collector from several dump times: ``bgp visibility`` and ``bgp transit`` analyse
each dump time apart (its own table, figures and observations at its own time), never one table.

The shared data hold no two RIB dumps of one collector, so the tests declare two real dumps one
collector's (``--collector rrc00``, as a user whose file names do not say the collector would):
the 2002-07-22 23:37 rrc05 bview (TABLE_DUMP, IPv4) and the 2018-09-19 08:00 rrc00 bview excerpt
(TABLE_DUMP_V2, IPv6). The independent computation is each file analysed alone.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from publiccore.collectors.bgp.bgpdump import BgpdumpReader
from publiccore.collectors.bgp.pipeline import analyze, analyze_dumps, dump_groups

from publiccore.errors import InputError
from publiccore.store import open_store

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

RIB_2002 = "mrt/bgpdump/bview.20020722.2337.gz"  # dump time 2002-07-22 23:37:35 UTC
RIB_2018 = "mrt/bgpdump/bview.64k_stream_overflow.gz"  # dump time 2018-09-19 08:00:00 UTC
UPDATES_2010 = "mrt/bgpdump/updates.20100722.2015.gz"
DELEGATED = "rir/ipzone/delegated-ripencc-latest"
T_2002 = 1027381055.0
T_2018 = 1537344000.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _observations(path: pathlib.Path) -> list[tuple[float, str, str, str, float, tuple]]:
    with open_store(str(path)) as store:
        return sorted(
            (o.time.timestamp(), o.subject_kind, o.subject, o.metric, o.value, tuple(o.labels))
            for o in store.iter_observations()
        )


def test_dump_groups_cut_one_collectors_ribs_by_dump_time(shared_data: pathlib.Path) -> None:
    reader = BgpdumpReader()
    newer, older = shared_data / RIB_2018, shared_data / RIB_2002
    # the files in any order: one group per dump time, oldest first
    assert dump_groups([newer, older], reader, collector="rrc00") == [[older], [newer]]
    # their own collectors (rrc05, rrc00 by the paths' names alone: "unknown"): one table
    assert dump_groups([newer, older], reader) == [[newer, older]]
    # one analysis per dump time equals each file analysed alone
    apart = analyze_dumps(ribs=[newer, older], reader=reader, collector="rrc00")
    alone = [analyze(ribs=[p], reader=reader, collector="rrc00") for p in (older, newer)]
    assert [a.dump_time for a in apart] == [T_2002, T_2018]
    for got, want in zip(apart, alone, strict=True):
        assert got.sources == want.sources
        assert got.summary == want.summary
        assert got.peers == want.peers
        assert got.rib.routes == want.rib.routes
    # merged into one table they are refused, as before
    with pytest.raises(InputError, match="RIBs of one collector from different dump times"):
        analyze(ribs=[newer, older], reader=reader, collector="rrc00")
    # updates with RIBs of several dump times: which dump they follow would be a guess
    with pytest.raises(InputError, match="update files with RIBs of 2 dump times"):
        analyze_dumps(
            ribs=[newer, older],
            reader=reader,
            collector="rrc00",
            updates=[shared_data / UPDATES_2010],
        )


def test_visibility_stores_each_dump_time_as_its_own_source(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    both = tmp_path / "both.sqlite"
    files = ["--mrt", str(shared_data / RIB_2002), str(shared_data / RIB_2018)]
    run = _cli("bgp", "visibility", *files, "--collector", "rrc00", "--json", "--store", str(both))
    assert run.returncode == 0, run.stderr
    dumps = json.loads(run.stdout)["dumps"]
    assert [d["dump_time"] for d in dumps] == [T_2002, T_2018]
    assert [[s["file"] for s in d["sources"]] for d in dumps] == [
        [str(shared_data / RIB_2002)],
        [str(shared_data / RIB_2018)],
    ]
    assert "RIBs of 2 dump times, analysed apart" in run.stderr
    assert run.stderr.count("stored ") == 2
    # each dump as if run alone: the same figures and the same observations at its own time
    singles = []
    for name, rib in (("a", RIB_2002), ("b", RIB_2018)):
        store = tmp_path / f"{name}.sqlite"
        alone = _cli(
            "bgp", "visibility", "--mrt", str(shared_data / rib), "--collector", "rrc00",
            "--json", "--store", str(store),
        )  # fmt: skip
        assert alone.returncode == 0, alone.stderr
        singles.append((json.loads(alone.stdout), _observations(store)))
    for dump, (single, _observations_alone) in zip(dumps, singles, strict=True):
        for key in ("sources", "dump_time", "peers", "summary", "roots", "notes"):
            assert dump[key] == single[key], key
    stored = _observations(both)
    assert stored == sorted(singles[0][1] + singles[1][1])
    assert {when for when, *_rest in stored} == {T_2002, T_2018}
    # the 2002 dump's IPv4 figures and the 2018 dump's IPv6 ones never meet in one row
    assert dumps[0]["summary"]["ipv4"]["prefixes_seen"] == 112_988
    assert dumps[0]["summary"]["ipv6"]["prefixes_seen"] == 0
    assert dumps[1]["summary"]["ipv4"]["prefixes_seen"] == 0
    assert dumps[1]["summary"]["ipv6"]["prefixes_seen"] == 1


def test_transit_gives_one_figure_per_dump_time(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    common = ["--delegated", str(shared_data / DELEGATED), "--country", "AT", "--json"]
    run = _cli(
        "bgp", "transit", "--mrt", str(shared_data / RIB_2002), str(shared_data / RIB_2018),
        "--collector", "rrc00", *common, "--store", str(tmp_path / "both.sqlite"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    dumps = json.loads(run.stdout)["dumps"]
    assert [d["dump_time"] for d in dumps] == [T_2002, T_2018]
    alone = _cli(
        "bgp", "transit", "--mrt", str(shared_data / RIB_2002), "--collector", "rrc00",
        *common, "--no-store",
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    single = json.loads(alone.stdout)
    assert dumps[0]["upstreams"] == single["upstreams"] and single["upstreams"]
    # the 2018 excerpt holds no IPv4 route: no figure for that dump, not a zero
    assert dumps[1]["upstreams"] == [] and dumps[1]["note"]
