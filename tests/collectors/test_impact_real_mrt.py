"""A real case: two real RIBs of different dates through ``publiccore bgp visibility`` into a
store; the daily series and M-impact show the change the files show, checked independently
from ``bgpdump -m`` lines and the RIR delegated files."""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import pathlib
import shutil
import subprocess
import sys

import pytest
from publiccore.collectors import impact
from publiccore.collectors import series as ser

from publiccore.config import AggregateSettings, ImpactSettings
from publiccore.store.sqlite import SqliteStore

RIBS = ("mrt/bgpdump/bview.20020722.2337.gz", "mrt/pyasn/rib.20140523.0600_firstMB.bz2")
DELEGATED = (
    "rir/ipzone/delegated-ripencc-latest",
    "rir/ipzone/delegated-apnic-latest",
    "rir/ipzone/delegated-afrinic-latest",
    "rir/rir-mirror/delegated-lacnic-extended-latest",
)
COUNTRIES = ("IR", "DE")  # one grows between the files, one shrinks (the 2014 RIB is truncated)


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _independent_visible_slash24(rib: pathlib.Path, delegated: list[pathlib.Path]) -> dict:
    """Visible IPv4 /24 equivalents per country, from bgpdump -m lines: full-feed peers carry
    ≥ 75 % of the largest peer's prefixes; a prefix is visible when > 50 % of them carry it;
    a country's visible space is the union of visible prefixes within its delegations."""
    out = subprocess.run(
        ["bgpdump", "-q", "-m", str(rib)], capture_output=True, text=True, timeout=300, check=False
    ).stdout
    carried: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for line in out.splitlines():
        f = line.split("|")
        if len(f) > 5 and f[2] == "B" and ":" not in f[5]:
            carried[(f[3], f[4])].add(f[5])
    largest = max(len(v) for v in carried.values())
    full = [p for p, v in carried.items() if len(v) >= 0.75 * largest]
    seen: collections.Counter[str] = collections.Counter()
    for peer in full:
        seen.update(carried[peer])
    visible = []
    for prefix, n in seen.items():
        net = ipaddress.ip_network(prefix, strict=False)
        if n > len(full) / 2 and net.prefixlen >= 8:
            visible.append((int(net.network_address), int(net.broadcast_address) + 1))
    visible = _merged(visible)
    ranges: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for path in delegated:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            f = line.split("|")
            if len(f) >= 7 and f[2] == "ipv4" and f[1] in COUNTRIES:
                if f[6] in ("allocated", "assigned"):
                    start = int(ipaddress.IPv4Address(f[3]))
                    ranges[f[1]].append((start, start + int(f[4])))
    return {cc: _overlap(visible, _merged(ranges[cc])) / 256 for cc in COUNTRIES}


def test_two_real_ribs_give_the_change_the_files_show(shared_data, tmp_path):
    if shutil.which("bgpdump") is None:
        pytest.skip("bgpdump not installed (Debian: apt-get install bgpdump)")
    store_path = tmp_path / "store.sqlite"
    delegated = [shared_data / d for d in DELEGATED]
    for rib in RIBS:
        run = subprocess.run(
            [
                sys.executable, "-m", "publiccore", "bgp", "visibility",
                "--mrt", str(shared_data / rib),
                "--delegated", *map(str, delegated),
                "--store", str(store_path),
            ],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    expected = {
        day: _independent_visible_slash24(shared_data / rib, delegated)
        for day, rib in zip((dt.date(2002, 7, 22), dt.date(2014, 5, 23)), RIBS, strict=True)
    }
    store = SqliteStore(store_path)
    try:
        by_country = {
            cc: ser.country_series(
                store,
                country=cc,
                since=dt.date(2002, 7, 1),
                until=dt.date(2014, 6, 1),
                settings=AggregateSettings(),
            )
            for cc in COUNTRIES
        }
    finally:
        store.close()
    settings = ImpactSettings(before_days=5000, after_days=30, guard_days=0, min_days=1)
    changes = {}
    for cc in COUNTRIES:
        s = by_country[cc]["bgp_visible_slash24"]
        assert s.days == tuple(expected)  # two days, nothing in between (absent, not zero)
        for day, values in expected.items():
            point = s.get(day)
            assert point.value == pytest.approx(values[cc], abs=1.0)
            assert point.sample.full_feed_peers >= 1
        result = impact.impact(
            by_country[cc],
            country=cc,
            at=dt.date(2014, 5, 22),
            settings=settings,
            metrics=["bgp_visible_slash24"],
        ).metrics[0]
        want = expected[dt.date(2014, 5, 23)][cc] - expected[dt.date(2002, 7, 22)][cc]
        assert result.status == "ok" and result.n_before == 1 and result.n_after == 1
        assert result.change == pytest.approx(want, abs=2.0)
        assert result.notable is None  # two dumps: no placebo dates, so not calibrated
        changes[cc] = result.change
    assert changes["IR"] > 0 > changes["DE"]
