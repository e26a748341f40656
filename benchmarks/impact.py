"""``impact --all`` cost: 2 years of daily data for 50 countries, every dimension.

    python benchmarks/impact.py [--countries 50] [--days 730] [--events 3]

Builds the typed daily series directly (``collectors.series.build_series`` from RootDay and
ObservationDay values, as the store reading would give them: every root and BGP dimension,
with gaps), gives each country ``--events`` events, and runs ``collectors.impact.impact_all``
as ``publiccore impact --all`` does after reading the store. Prints the seconds, the share spent
in the block bootstrap, the placebo calibration and the change points, and the per-comparison
cost against a baseline measured in the same run (one comparison with no placebo dates).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import numpy as np
import pycountry
from publiccore.collectors import impact as imp
from publiccore.collectors import series as ser

from publiccore import events as ev
from publiccore.config import ImpactSettings

START = dt.date(2024, 1, 1)


def country_series(country: str, days: int, rng: np.random.Generator) -> ser.CountrySeries:
    """A country's series: every root and BGP dimension, 3 % gap days, one step somewhere."""
    step_at = int(rng.integers(days // 4, 3 * days // 4))
    root: dict[dt.date, ser.RootDay] = {}
    observed: dict[dt.date, ser.ObservationDay] = {}
    for i in range(days):
        day = START + dt.timedelta(days=i)
        if rng.random() < 0.03:
            continue
        shift = 0.1 if i >= step_at else 0.0
        root[day] = ser.RootDay(
            availability={letter: float(min(1, rng.normal(0.99, 0.005))) for letter in ser.LETTERS},
            availability_overall=float(min(1, rng.normal(0.98, 0.01))),
            non_iana_share=float(abs(rng.normal(0.02 + shift, 0.01))),
            in_country_share=float(rng.uniform(0.2, 0.3)),
            rtt_median_seconds=float(rng.normal(0.03, 0.003)),
            records=int(rng.integers(200, 400)),
            probes=int(rng.integers(3, 8)),
            probe_asns=int(rng.integers(2, 5)),
        )
        observed[day] = ser.ObservationDay(
            values={
                "bgp_visible_slash24": float(rng.normal(50_000, 300)),
                "bgp_visible_slash48": float(rng.normal(9_000, 50)),
                "bgp_visibility_ratio_ipv4": float(rng.normal(0.97, 0.003)),
                "bgp_visibility_ratio_ipv6": float(rng.normal(0.9, 0.005)),
                "bgp_upstreams_ipv4": float(rng.integers(20, 25)),
                "bgp_upstream_effective_number_ipv4": float(rng.normal(6, 0.3)),
                "bgp_top_upstream_share_ipv4": float(rng.normal(0.3, 0.02)),
            },
            full_feed_peers=int(rng.integers(20, 30)),
            traces=None,
        )
    return ser.build_series(country, root=root, observed=observed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--countries", type=int, default=50)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--events", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    codes = sorted(c.alpha_2 for c in pycountry.countries)[: args.countries]
    started = time.perf_counter()
    by_country = {cc: country_series(cc, args.days, rng) for cc in codes}
    fill = time.perf_counter() - started
    events = []
    for cc in codes:
        for k in range(args.events):
            day = START + dt.timedelta(days=int(rng.integers(60, args.days - 60)))
            events.append(
                ev.Event(
                    id=f"{cc.lower()}-bench-{k}",
                    date=day,
                    date_precision="day",
                    country=cc,
                    kind="order",
                    scope=("dns",),
                    title="benchmark",
                    summary="benchmark",
                    sources=("https://example.org",),
                    confidence="high",
                )
            )
    settings = ImpactSettings()
    # baseline: one comparison with its bootstrap but no placebo dates
    one = by_country[codes[0]]["root_non_iana_share"]
    win = imp.windows(events[0].date, before_days=14, after_days=14, guard_days=1, precision="day")
    t0 = time.perf_counter()
    imp.compare(one, win, settings=ImpactSettings(placebo_count=0), breaks=())
    baseline = time.perf_counter() - t0
    timings = imp.Timings()
    t0 = time.perf_counter()
    results = imp.impact_all(by_country, events, settings=settings, timings=timings)
    total = time.perf_counter() - t0
    comparisons = sum(len(r.metrics) for r in results)
    notable = sum(bool(m.notable) for r in results for m in r.metrics)
    dims = len(next(iter(by_country.values())))
    print(
        f"{args.countries} countries × {args.days} days × {dims} dimensions "
        f"(series built in {fill:.1f} s), {len(events)} events"
    )
    print(f"impact --all: {total:.2f} s for {comparisons} comparisons ({notable} notable)")
    for name in ("bootstrap", "placebo", "change_points"):
        spent = getattr(timings, name)
        print(f"  {name:14} {spent:7.2f} s  {100 * spent / total:5.1f} %")
    print(
        f"per comparison {1000 * total / comparisons:.2f} ms; baseline (one comparison, "
        f"no placebo) {1000 * baseline:.2f} ms; ratio {total / comparisons / baseline:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
