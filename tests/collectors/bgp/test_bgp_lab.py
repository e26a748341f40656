"""Live BGP lab: BIRD speakers announce and withdraw documentation prefixes to a BIRD collector
that writes real MRT (TABLE_DUMP_V2 RIBs and BGP4MP updates); publiccore reads those files and
must find exactly the announced visibility, origins and upstreams, and the drop after a
withdrawal."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from publiccore.collectors.bgp.pipeline import Analysis, Options, analyze
from publiccore.collectors.bgp.readers import make_reader
from publiccore.collectors.bgp.roots import load_expected_origins

from publiccore.geo import Geo
from publiccore.roothints import load_hints
from tests.lab.bgplab import BgpLab, LabUnavailable, PeerSpec, Route, build_lab

pytestmark = pytest.mark.lab

NL24, NL25, DE24, US24, NL48 = (
    "198.51.100.0/24",
    "198.51.100.0/25",
    "203.0.113.0/24",
    "192.0.2.0/24",
    "2001:db8:100::/48",
)
SPECS = (
    PeerSpec(
        "p1",
        64496,
        (
            Route(NL24, (64505, 64501, 64500)),
            Route(NL25, (64505, 64501, 64500)),
            Route(DE24, (64505, 64502)),
            Route(US24, (64505,)),
            Route(NL48, (64505, 64500)),
        ),
    ),
    PeerSpec(
        "p2",
        64497,
        (
            Route(NL24, (64506, 64500)),
            Route(DE24, (64502,), withdrawable=True),
            Route(US24, (64509,)),
        ),
    ),  # a foreign origin for the "x" root
    PeerSpec(
        "p3",
        64498,
        (
            Route(NL24, (64505, 64505, 64505, 64500)),  # prepending
            Route(DE24, (64507, 64502), withdrawable=True),
            Route(US24, (64505,)),
            Route(NL48, (64506, 64500)),
        ),
    ),
)
DELEGATED = """2|lab|20260101|14|19700101|20260101|+0000
lab|*|ipv4|*|3|summary
lab|NL|ipv4|198.51.100.0|256|20260101|allocated|a
lab|DE|ipv4|203.0.113.0|256|20260101|allocated|b
lab|US|ipv4|192.0.2.0|256|20260101|assigned|c
lab|NL|ipv6|2001:db8:100::|48|20260101|allocated|a
lab|NL|asn|64500|2|20260101|allocated|a
lab|DE|asn|64502|1|20260101|allocated|b
lab|US|asn|64505|1|20260101|allocated|c
lab|GB|asn|64506|1|20260101|allocated|d
lab|FR|asn|64507|1|20260101|allocated|e
lab|RU|asn|64509|1|20260101|allocated|f
lab|US|asn|64496|1|20260101|allocated|c
lab|GB|asn|64497|1|20260101|allocated|d
lab|FR|asn|64498|1|20260101|allocated|e
"""
HINTS = """.                        3600000      NS    X.ROOT-SERVERS.NET.
X.ROOT-SERVERS.NET.      3600000      A     192.0.2.53
.                        3600000      NS    Y.ROOT-SERVERS.NET.
Y.ROOT-SERVERS.NET.      3600000      A     198.51.100.53
Y.ROOT-SERVERS.NET.      3600000      AAAA  2001:db8:100::53
"""
ORIGINS = """[letters.x]
origins = [64505]
[letters.y]
origins = [64500]
"""


@pytest.fixture(scope="module")
def lab_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, pathlib.Path]]:
    work = tmp_path_factory.mktemp("bgplab")
    try:
        with build_lab(SPECS, work) as lab:
            files = _exercise(lab, work)
    except LabUnavailable as exc:
        pytest.skip(f"BGP lab unavailable: {exc}")
    (work / "delegated-lab-extended").write_text(DELEGATED)
    (work / "named.root").write_text(HINTS)
    (work / "origins.toml").write_text(ORIGINS)
    files.update(
        delegated=work / "delegated-lab-extended",
        hints=work / "named.root",
        origins=work / "origins.toml",
    )
    yield files


def _exercise(lab: BgpLab, work: pathlib.Path) -> dict[str, pathlib.Path]:
    # 4 + 3 + 3 IPv4 routes, 1 + 1 IPv6 routes: every announcement arrived
    lab.wait_routes("master4", 10)
    lab.wait_routes("master6", 2)
    before4 = lab.dump_table("master4", work / "rib4-before.mrt")
    before6 = lab.dump_table("master6", work / "rib6-before.mrt")
    lab.withdraw("p2", DE24)
    lab.withdraw("p3", DE24)
    lab.wait_routes("master4", 8)
    after4 = lab.dump_table("master4", work / "rib4-after.mrt")
    # the collector's updates so far (the full file also gets the sessions' teardown)
    window = work / "updates-window.mrt"
    shutil.copyfile(lab.updates_path, window)
    return {
        "before4": before4,
        "before6": before6,
        "after4": after4,
        "updates": window,
        "updates_full": lab.updates_path,
    }


def _analyze(
    files: dict[str, pathlib.Path],
    ribs: list[pathlib.Path],
    *,
    updates: list[pathlib.Path] | None = None,
    transit: tuple[str, ...] = (),
    ratio: float = 0.75,
) -> Analysis:
    from publiccore.collectors.bgp.rib import FullFeedRule

    return analyze(
        ribs=ribs,
        updates=updates or [],
        reader=make_reader("bgpdump"),
        geo=Geo.from_files([files["delegated"]]),
        collector="lab",
        servers=load_hints(files["hints"]),
        expected=load_expected_origins(files["origins"]),
        transit_countries=transit,
        options=Options(rule=FullFeedRule(ratio=ratio), keep_documentation=True),
    )


def test_peers_and_full_feed(lab_files: dict[str, pathlib.Path]) -> None:
    a = _analyze(lab_files, [lab_files["before4"], lab_files["before6"]])
    table = {(p.peer.peer_asn, ":" in p.peer.peer_address): p for p in a.peers}
    assert {k: dict(v.prefixes) for k, v in table.items()} == {
        (64496, False): {"ipv4": 4, "ipv6": 0},
        (64497, False): {"ipv4": 3, "ipv6": 0},
        (64498, False): {"ipv4": 3, "ipv6": 0},
        (64496, True): {"ipv4": 0, "ipv6": 1},
        (64498, True): {"ipv4": 0, "ipv6": 1},
    }
    # 3 >= 0.75 x 4: every IPv4 session is full-feed; both IPv6 sessions are too
    assert len(a.full_feed["ipv4"]) == 3 and len(a.full_feed["ipv6"]) == 2
    assert not a.partial and all(s.elements for s in a.sources)


def test_prefix_visibility_and_origins(lab_files: dict[str, pathlib.Path]) -> None:
    from publiccore.collectors.bgp.visibility import prefix_view

    a = _analyze(lab_files, [lab_files["before4"], lab_files["before6"]])
    views = {
        p: prefix_view(a.rib, p, a.full_feed, keep_documentation=True)
        for p in (NL24, NL25, DE24, US24, NL48)
    }
    assert {p: (v.full_feed_peers, round(v.ratio, 4), v.visible) for p, v in views.items()} == {
        NL24: (3, 1.0, True),
        NL25: (1, 0.3333, False),
        DE24: (3, 1.0, True),
        US24: (3, 1.0, True),
        NL48: (2, 1.0, True),
    }
    assert views[NL24].origins == (64500,)
    assert views[US24].origins == (64505, 64509) and views[US24].multiple_origins
    assert a.summary.multiple_origins["ipv4"] == 1


def test_root_prefixes(lab_files: dict[str, pathlib.Path]) -> None:
    a = _analyze(lab_files, [lab_files["before4"], lab_files["before6"]])
    roots = {(r.letter, r.address): r for r in a.roots}
    x = roots[("x", "192.0.2.53")]
    assert (x.prefix, x.origins, x.unexpected) == (US24, (64505, 64509), True)
    y = roots[("y", "198.51.100.53")]  # inside the /25 more-specific that only p1 announces
    assert (y.prefix, round(y.visibility_ratio, 4), y.origins, y.unexpected) == (
        NL25,
        0.3333,
        (64500,),
        False,
    )
    y6 = roots[("y", "2001:db8:100::53")]
    assert (y6.prefix, y6.visibility_ratio, y6.unexpected) == (NL48, 1.0, False)


def test_country_visibility(lab_files: dict[str, pathlib.Path]) -> None:
    a = _analyze(lab_files, [lab_files["before4"], lab_files["before6"]])
    got = {
        (c.country, c.family): (c.prefixes, c.routed_units, c.visible_units, c.unseen_prefixes)
        for c in a.countries
    }
    # NL: the /24 and its /25 count once (1 /24 equivalent)
    assert got == {
        ("NL", "ipv4"): (2, 1.0, 1.0, 0),
        ("DE", "ipv4"): (1, 1.0, 1.0, 0),
        ("US", "ipv4"): (1, 1.0, 1.0, 0),
        ("NL", "ipv6"): (1, 1.0, 1.0, 0),
    }


def test_transit(lab_files: dict[str, pathlib.Path]) -> None:
    a = _analyze(lab_files, [lab_files["before4"], lab_files["before6"]], transit=("NL", "DE"))
    got = {(t.country, t.family): t for t in a.transit}
    nl4 = got[("NL", "ipv4")]
    # p1 and p3 (prepending collapsed) reach NL via AS64505, p2 via AS64506
    assert [(u.asn, round(u.share, 4)) for u in nl4.upstreams] == [(64505, 0.6667), (64506, 0.3333)]
    assert nl4.count == 2 and nl4.peer_asns_used == 3
    assert nl4.effective_number == pytest.approx(1.8)
    assert nl4.top_share == pytest.approx(2 / 3)
    # p2 (AS64497) announces DE's prefix straight from its origin: its only foreign AS is the
    # collector peer itself, which says where the collector peers, not whom DE uses: dropped
    de4 = got[("DE", "ipv4")]
    assert sorted(u.asn for u in de4.upstreams) == [64505, 64507]
    assert de4.paths_peer_upstream == 1 and de4.paths_used == 2
    assert de4.effective_number == pytest.approx(2.0)
    # hegemony over DE's /24: every peer AS (1 each in its own view) and the transit ASes on
    # two of the three views; 3 peer ASes, nothing trimmed
    hegemony = {(h.country, h.family): h for h in a.hegemony}[("DE", "ipv4")]
    assert {d.asn: round(d.hegemony, 4) for d in hegemony.dependencies} == {
        64496: 0.3333,
        64497: 0.3333,
        64498: 0.3333,
        64505: 0.3333,
        64507: 0.3333,
    }
    nl6 = got[("NL", "ipv6")]
    assert [(u.asn, u.share) for u in nl6.upstreams] == [(64505, 0.5), (64506, 0.5)]


def test_withdrawal_in_rib_and_updates(lab_files: dict[str, pathlib.Path]) -> None:
    # the RIB after the withdrawals alone: p2 and p3 hold 2 prefixes, p1 4; with the default
    # 75% rule only p1 is full-feed, so DE (carried by p1) still counts as visible ...
    after = _analyze(lab_files, [lab_files["after4"]])
    assert len(after.full_feed["ipv4"]) == 1
    de = next(c for c in after.countries if c.country == "DE")
    assert (de.prefixes, de.visible_units) == (1, 1.0)
    # ... with a 50% rule all three stay full-feed and DE drops to 1 of 3 peers: not visible
    after = _analyze(lab_files, [lab_files["after4"]], ratio=0.5)
    assert len(after.full_feed["ipv4"]) == 3
    de = next(c for c in after.countries if c.country == "DE")
    assert (de.prefixes, de.routed_units, de.visible_units, de.unseen_prefixes) == (1, 1.0, 0.0, 0)
    # the same drop from the collector's BGP4MP updates applied onto the first RIB (the
    # full-feed sessions of that RIB are kept over the window)
    a = _analyze(lab_files, [lab_files["before4"]], updates=[lab_files["updates"]])
    assert a.bins, "the updates gave no bins"
    last = {(c.country, c.family): c for c in a.bins[-1].countries}
    assert last[("DE", "ipv4")].visible_units == 0.0
    assert last[("NL", "ipv4")].visible_units == 1.0
    kinds = {s.kind for s in a.sources}
    assert kinds == {"rib", "updates"} and not a.partial
    # the whole file ends with every session leaving Established: no route is left
    a = _analyze(lab_files, [lab_files["before4"]], updates=[lab_files["updates_full"]])
    assert all(c.visible_units == 0.0 for c in a.bins[-1].countries)
    assert all(p.prefix is None for p in a.bins[-1].prefixes)


def test_cli_on_lab_files(lab_files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    store = tmp_path / "store.sqlite"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "publiccore",
            "bgp",
            "transit",
            "--mrt",
            str(lab_files["before4"]),
            "--country",
            "NL",
            "--delegated",
            str(lab_files["delegated"]),
            "--keep-documentation-asns",
            "--json",
            "--store",
            str(store),
            "--reader",
            "bgpdump",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["count"] == 2 and out["upstreams"][0] == {
        "asn": 64505,
        "share": pytest.approx(2 / 3),
    }
    from publiccore.store import open_store

    s = open_store(str(store))
    try:
        values = {(o.subject, o.metric): o.value for o in s.iter_observations()}
    finally:
        s.close()
    assert values[("NL", "bgp_country_upstreams")] == 2
    assert values[("NL", "bgp_country_upstream_effective_number")] == pytest.approx(1.8)
