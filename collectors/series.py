"""Daily series per country for every exported dimension, each day with its sample size.

One value per country × dimension × UTC day, computed with the same code as ``/metrics``:

- root dimensions (``root_daily``): the day's buckets merged by the derive stage
  (``collectors.derive.root``; M-sampling weights included, no raw record read);
- BGP and path dimensions (``observation_daily``): the median of the day's stored observations
  (collectors/bgp, collectors/paths), with the full-feed peer count of the day's BGP sources.

Days whose sample is below the minimum (``SeriesThresholds``) are **gaps**: absent from the
series (listed in ``DailySeries.gaps``), never zeros. Everything downstream (event impact,
profile, export, report) reads only the typed ``DailySeries``; ``root_daily`` is the one place
that knows how root values are computed.

Definition M-impact / M-profile in docs/methodology.md name these dimensions.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from publiccore.collectors.derive import figures as fig
from publiccore.collectors.derive import root as derive_root

from publiccore.config import AggregateSettings
from publiccore.store import Observation, Source, Store

DAY = dt.timedelta(days=1)
LETTERS = tuple("abcdefghijklm")
WORLD = "world"

SourceKind = Literal["root", "bgp", "path"]


@dataclasses.dataclass(frozen=True, slots=True)
class Dimension:
    """One daily dimension: name, the definition of its source figure, unit, where it comes from.

    ``direction`` and ``scale`` say how the fragmentation profile (M-profile) scales it to 0–1
    (1 = more fragmented); ``scale`` None keeps the dimension out of the profile.
    """

    name: str
    definition: str
    unit: str
    source: SourceKind
    help: str
    scale: str | None = None  # M-profile scaling rule (see ``publiccore.collectors.profile``)


def _root_dims() -> tuple[Dimension, ...]:
    dims = [
        Dimension(
            "root_availability",
            "M-root-rss",
            "ratio",
            "root",
            "Share of probe rounds with at least 8 of 13 letters answering (system view)",
            "one_minus",
        ),
        Dimension(
            "root_non_iana_share",
            "M-root-integrity",
            "ratio",
            "root",
            "Share of root-dns records whose integrity outcome is not iana",
            "identity",
        ),
        Dimension(
            "root_in_country_share",
            "M-root-site",
            "ratio",
            "root",
            "Share of answers from in-country sites (mean over letters with located answers)",
            "identity",
        ),
        Dimension(
            "root_rtt_median_seconds",
            "M-root-latency",
            "seconds",
            "root",
            "Median over letters of the per-letter median UDP . SOA RTT",
            "rtt",
        ),
    ]
    dims += [
        Dimension(
            f"root_availability_{letter}",
            "M-root-reachability",
            "ratio",
            "root",
            f"RSSAC047 availability of {letter}.root-servers.net",
        )
        for letter in LETTERS
    ]
    return tuple(dims)


def _obs_dims() -> tuple[Dimension, ...]:
    vis, up = "M-bgp-country-visibility", "M-bgp-upstreams"
    return (
        Dimension(
            "bgp_visible_slash24",
            vis,
            "/24 equivalents",
            "bgp",
            "Visible IPv4 space",
            "own_peak",
        ),
        Dimension(
            "bgp_visible_slash48",
            vis,
            "/48 equivalents",
            "bgp",
            "Visible IPv6 space (routed /48s × visibility ratio)",
            "own_peak",
        ),
        Dimension(
            "bgp_visibility_ratio_ipv4", vis, "ratio", "bgp", "Visible ÷ routed, IPv4", "one_minus"
        ),
        Dimension(
            "bgp_visibility_ratio_ipv6", vis, "ratio", "bgp", "Visible ÷ routed, IPv6", "one_minus"
        ),
        Dimension("bgp_upstreams_ipv4", up, "ASes", "bgp", "International upstreams, IPv4"),
        Dimension("bgp_upstreams_ipv6", up, "ASes", "bgp", "International upstreams, IPv6"),
        Dimension(
            "bgp_upstream_effective_number_ipv4",
            up,
            "ASes",
            "bgp",
            "Effective number of international upstreams, IPv4",
            "inverse",
        ),
        Dimension(
            "bgp_upstream_effective_number_ipv6",
            up,
            "ASes",
            "bgp",
            "Effective number of international upstreams, IPv6",
        ),
        Dimension(
            "bgp_top_upstream_share_ipv4",
            up,
            "ratio",
            "bgp",
            "Share of the largest international upstream, IPv4",
            "identity",
        ),
        Dimension(
            "bgp_top_upstream_share_ipv6", up, "ratio", "bgp", "Share of the largest upstream, IPv6"
        ),
        Dimension(
            "path_border_effective_number",
            "M-path-border-crossings",
            "crossings",
            "path",
            "Effective number of border crossings",
            "inverse",
        ),
    )


DIMENSIONS: tuple[Dimension, ...] = _root_dims() + _obs_dims()
BY_NAME: dict[str, Dimension] = {d.name: d for d in DIMENSIONS}

# dimension → (stored metric, family label or None) for the observation dimensions
_OBSERVED: dict[str, tuple[str, str | None]] = {
    "bgp_visible_slash24": ("bgp_country_visible_slash24", None),
    "bgp_visibility_ratio_ipv4": ("bgp_country_visibility_ratio", "ipv4"),
    "bgp_visibility_ratio_ipv6": ("bgp_country_visibility_ratio", "ipv6"),
    "bgp_upstreams_ipv4": ("bgp_country_upstreams", "ipv4"),
    "bgp_upstreams_ipv6": ("bgp_country_upstreams", "ipv6"),
    "bgp_upstream_effective_number_ipv4": ("bgp_country_upstream_effective_number", "ipv4"),
    "bgp_upstream_effective_number_ipv6": ("bgp_country_upstream_effective_number", "ipv6"),
    "bgp_top_upstream_share_ipv4": ("bgp_country_top_upstream_share", "ipv4"),
    "bgp_top_upstream_share_ipv6": ("bgp_country_top_upstream_share", "ipv6"),
    "path_border_effective_number": ("path_border_crossings_effective_number", None),
}
_ROUTED_V6 = ("bgp_country_routed_units", "ipv6")


@dataclasses.dataclass(frozen=True, slots=True)
class SeriesThresholds:
    """Minimum sample for a day to count (below: a gap). Defaults in docs/methodology.md."""

    min_records: int = 20
    min_probes: int = 1
    min_full_feed_peers: int = 1
    min_traces: int = 10


@dataclasses.dataclass(frozen=True, slots=True)
class DaySample:
    """A day's sample size: root-dns records, probes, probe ASNs; BGP full-feed peers; traces.

    None where the day has no such data (or, for peers, where the source does not say).
    """

    records: int | None = None
    probes: int | None = None
    probe_asns: int | None = None
    full_feed_peers: int | None = None
    traces: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RootDay:
    """The root dimensions of one country and UTC day (None: no such figure that day)."""

    availability: Mapping[str, float]  # letter → RSSAC047 availability
    availability_overall: float | None  # M-root-rss: rounds with ≥ 8 of 13 letters
    non_iana_share: float | None
    in_country_share: float | None
    rtt_median_seconds: float | None
    records: int
    probes: int
    probe_asns: int


@dataclasses.dataclass(frozen=True, slots=True)
class ObservationDay:
    """The BGP/path dimensions of one country and UTC day."""

    values: Mapping[str, float]  # dimension → value
    full_feed_peers: int | None
    traces: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class DayValue:
    day: dt.date
    value: float
    sample: DaySample


@dataclasses.dataclass(frozen=True, slots=True)
class DailySeries:
    """One country's daily values of one dimension: valid days only, gaps listed apart."""

    country: str
    dimension: Dimension
    points: tuple[DayValue, ...]
    gaps: tuple[dt.date, ...] = ()

    @property
    def days(self) -> tuple[dt.date, ...]:
        return tuple(p.day for p in self.points)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(p.value for p in self.points)

    def get(self, day: dt.date) -> DayValue | None:
        """The point of ``day``, or None (gap or no data)."""
        for point in self.points:
            if point.day == day:
                return point
        return None


CountrySeries = dict[str, DailySeries]  # dimension name → series


def days_between(since: dt.date, until: dt.date) -> Iterator[dt.date]:
    """Every UTC day in [since, until)."""
    day = since
    while day < until:
        yield day
        day += DAY


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


# --- root ---------------------------------------------------------------------------------------


def root_day_from(root: fig.RootFigures, country: str) -> RootDay | None:
    """The RootDay of ``country`` from one day's root figures; None without data."""
    c = root.country(country)
    if c is None or not c.sample.records:
        return None
    in_country = [x.site_location["in_country"] for x in c.letters if x.site_location]
    medians = [
        x.median_latency_seconds["udp"] for x in c.letters if "udp" in x.median_latency_seconds
    ]
    return RootDay(
        availability={x.letter: x.availability_ratio for x in c.letters},
        availability_overall=c.system_available_ratio,
        non_iana_share=(1.0 - c.integrity["iana"]) if "iana" in c.integrity else None,
        in_country_share=statistics.fmean(in_country) if in_country else None,
        rtt_median_seconds=statistics.median(medians) if medians else None,
        records=c.sample.records,
        probes=c.sample.probes,
        probe_asns=c.sample.probe_asns,
    )


def root_daily_by_country(
    store: Store,
    *,
    since: dt.date,
    until: dt.date,
    settings: AggregateSettings,
    country: str | None = None,
) -> dict[str, dict[dt.date, RootDay]]:
    """Per country (only ``country`` when given) and UTC day in [since, until): the RootDay.

    Merges each day's buckets (the derive stage, ``collectors.derive.root``): the same figures
    as ``/metrics`` over that day, without reading a raw record; a day's rows are read and
    folded as they come (``read_parts``), never the whole range's at once.
    """
    bounds = [_midnight(day).timestamp() for day in days_between(since, until + DAY)]
    out: dict[str, dict[dt.date, RootDay]] = collections.defaultdict(dict)
    parts = derive_root.read_parts(store, bounds, country=country, sources=settings.sources)
    for (start, stop), day, folded in zip(
        itertools.pairwise(bounds), days_between(since, until), parts, strict=True
    ):
        figures = derive_root.compute_stored(
            store,
            folded,
            since=start,
            until=stop,
            max_asn_share=settings.max_asn_share,
            sources=settings.sources,
        )
        for each in figures.countries:
            root = root_day_from(figures, each.country)
            if root is not None:
                out[each.country][day] = root
    return dict(out)


def _pooled(days: Sequence[RootDay]) -> RootDay:
    """Countries' RootDays of one day combined: record-weighted means, summed sample sizes."""
    weights = [d.records for d in days]

    def mean(values: Iterable[tuple[float | None, int]]) -> float | None:
        pairs = [(v, w) for v, w in values if v is not None]
        total = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / total if total else None

    letters = sorted({letter for d in days for letter in d.availability})
    availability = {
        letter: mean((d.availability.get(letter), d.records) for d in days) for letter in letters
    }
    return RootDay(
        availability={k: v for k, v in availability.items() if v is not None},
        availability_overall=mean(
            zip((d.availability_overall for d in days), weights, strict=True)
        ),
        non_iana_share=mean(zip((d.non_iana_share for d in days), weights, strict=True)),
        in_country_share=mean(zip((d.in_country_share for d in days), weights, strict=True)),
        rtt_median_seconds=mean(zip((d.rtt_median_seconds for d in days), weights, strict=True)),
        records=sum(weights),
        probes=sum(d.probes for d in days),
        probe_asns=sum(d.probe_asns for d in days),
    )


def root_daily(
    store: Store,
    *,
    country: str | None,
    since: dt.date,
    until: dt.date,
    settings: AggregateSettings,
) -> dict[dt.date, RootDay]:
    """The root dimensions per UTC day in [since, until) for ``country``.

    ``country`` None pools every country (each country computed on its own, then combined with
    record-weighted means; sample sizes summed). The one place root values come from: merged
    buckets of the derive stage.
    """
    by_country = root_daily_by_country(
        store,
        since=since,
        until=until,
        settings=settings,
        country=country.upper() if country else None,
    )
    if country is not None:
        return by_country.get(country.upper(), {})
    per_day: dict[dt.date, list[RootDay]] = collections.defaultdict(list)
    for days in by_country.values():
        for day, root in days.items():
            per_day[day].append(root)
    return {day: _pooled(roots) for day, roots in sorted(per_day.items())}


# --- observations -------------------------------------------------------------------------------


def iter_sources(store: Store, *, max_misses: int = 64) -> Iterator[Source]:
    """Every stored source by id (1, 2, …) until ``max_misses`` consecutive ids are absent.

    The Store protocol has no listing; ids are sequential, so this finds them all unless more
    than ``max_misses`` consecutive sources were deleted.
    """
    misses, source_id = 0, 1
    while misses < max_misses:
        source = store.get_source(source_id)
        if source is None:
            misses += 1
        else:
            misses = 0
            yield source
        source_id += 1


def full_feed_by_day(sources: Iterable[Source]) -> dict[dt.date, int]:
    """Per UTC day of a BGP source's dump time: the largest full-feed peer count (v4 + v6)."""
    out: dict[dt.date, int] = {}
    for source in sources:
        if source.kind != "bgp":
            continue
        dump = source.meta.get("dump_time")
        full = (source.meta.get("peers") or {}).get("full_feed")
        if not isinstance(dump, int | float) or not isinstance(full, dict):
            continue
        day = dt.datetime.fromtimestamp(dump, dt.UTC).date()
        count = int(sum(v for v in full.values() if isinstance(v, int | float)))
        out[day] = max(out.get(day, 0), count)
    return out


def observation_daily(
    observations: Iterable[Observation],
    *,
    full_feed: Mapping[dt.date, int] | None = None,
) -> dict[str, dict[dt.date, ObservationDay]]:
    """Per country and UTC day: the median of the day's observations of each dimension.

    ``full_feed`` (day → full-feed peers, from ``full_feed_by_day``) is the BGP sample size;
    ``path_traces`` observations give the path sample (the day's largest).
    """
    values: dict[tuple[str, dt.date, str], list[float]] = collections.defaultdict(list)
    traces: dict[tuple[str, dt.date], float] = {}
    wanted = {metric_family: dim for dim, metric_family in _OBSERVED.items()}
    for obs in observations:
        if obs.subject_kind != "country":
            continue
        day = obs.time.astimezone(dt.UTC).date()
        key = (obs.metric, obs.labels.get("family") if obs.metric in _FAMILY_METRICS else None)
        if obs.metric == "path_traces":
            traces[(obs.subject, day)] = max(traces.get((obs.subject, day), 0.0), obs.value)
        elif key == _ROUTED_V6:
            values[(obs.subject, day, "_routed_v6")].append(obs.value)
        elif key in wanted:
            values[(obs.subject, day, wanted[key])].append(obs.value)
    per: dict[tuple[str, dt.date], dict[str, float]] = collections.defaultdict(dict)
    for (country, day, dim), vs in values.items():
        per[(country, day)][dim] = statistics.median(vs)
    for dims in per.values():
        routed = dims.pop("_routed_v6", None)
        if routed is not None and "bgp_visibility_ratio_ipv6" in dims:
            dims["bgp_visible_slash48"] = routed * dims["bgp_visibility_ratio_ipv6"]
    out: dict[str, dict[dt.date, ObservationDay]] = collections.defaultdict(dict)
    for (country, day), dims in sorted(per.items()):
        trace_count = traces.get((country, day))
        out[country][day] = ObservationDay(
            values=dict(sorted(dims.items())),
            full_feed_peers=(full_feed or {}).get(day),
            traces=None if trace_count is None else int(trace_count),
        )
    return dict(out)


_FAMILY_METRICS = {
    "bgp_country_visibility_ratio",
    "bgp_country_routed_units",
    "bgp_country_upstreams",
    "bgp_country_upstream_effective_number",
    "bgp_country_top_upstream_share",
}
_STORED_METRICS = tuple(sorted({m for m, _ in _OBSERVED.values()} | {_ROUTED_V6[0], "path_traces"}))


def read_observation_daily(
    store: Store, *, country: str | None, since: dt.date, until: dt.date
) -> dict[str, dict[dt.date, ObservationDay]]:
    """``observation_daily`` over the store's country observations in [since, until)."""
    found: list[Observation] = []
    for metric in _STORED_METRICS:
        found.extend(
            store.iter_observations(
                metric=metric,
                subject_kind="country",
                subject=country.upper() if country else None,
                since=_midnight(since),
                until=_midnight(until),
            )
        )
    return observation_daily(found, full_feed=full_feed_by_day(iter_sources(store)))


# --- assembling typed series -------------------------------------------------------------------


def _root_value(dim: str, root: RootDay) -> float | None:
    if dim == "root_availability":
        return root.availability_overall
    if dim == "root_non_iana_share":
        return root.non_iana_share
    if dim == "root_in_country_share":
        return root.in_country_share
    if dim == "root_rtt_median_seconds":
        return root.rtt_median_seconds
    return root.availability.get(dim.rsplit("_", 1)[1])


def build_series(
    country: str,
    *,
    root: Mapping[dt.date, RootDay],
    observed: Mapping[dt.date, ObservationDay],
    thresholds: SeriesThresholds = SeriesThresholds(),
) -> CountrySeries:
    """Typed daily series of every dimension with data (pure: no store).

    A root day with fewer than ``min_records`` records or ``min_probes`` probes, a BGP day with
    fewer than ``min_full_feed_peers`` full-feed peers (when the source states them), or a path
    day with fewer than ``min_traces`` traces is a gap.
    """
    points: dict[str, list[DayValue]] = collections.defaultdict(list)
    gaps: dict[str, list[dt.date]] = collections.defaultdict(list)
    for day, r in sorted(root.items()):
        sample = DaySample(records=r.records, probes=r.probes, probe_asns=r.probe_asns)
        ok = r.records >= thresholds.min_records and r.probes >= thresholds.min_probes
        for dim in DIMENSIONS:
            if dim.source != "root":
                continue
            value = _root_value(dim.name, r)
            if value is None:
                continue
            if ok:
                points[dim.name].append(DayValue(day, value, sample))
            else:
                gaps[dim.name].append(day)
    for day, o in sorted(observed.items()):
        for name, value in o.values.items():
            dim = BY_NAME[name]
            if dim.source == "bgp":
                sample = DaySample(full_feed_peers=o.full_feed_peers)
                ok = (
                    o.full_feed_peers is None or o.full_feed_peers >= thresholds.min_full_feed_peers
                )
            else:
                sample = DaySample(traces=o.traces)
                ok = o.traces is not None and o.traces >= thresholds.min_traces
            if ok:
                points[name].append(DayValue(day, value, sample))
            else:
                gaps[name].append(day)
    return {
        dim.name: DailySeries(
            country=country,
            dimension=dim,
            points=tuple(points[dim.name]),
            gaps=tuple(gaps[dim.name]),
        )
        for dim in DIMENSIONS
        if points[dim.name] or gaps[dim.name]
    }


def country_series(
    store: Store,
    *,
    country: str,
    since: dt.date,
    until: dt.date,
    settings: AggregateSettings,
    thresholds: SeriesThresholds = SeriesThresholds(),
) -> CountrySeries:
    """Every dimension's daily series for ``country`` over [since, until), from the store."""
    cc = country.upper()
    root = root_daily(store, country=cc, since=since, until=until, settings=settings)
    observed = read_observation_daily(store, country=cc, since=since, until=until)
    return build_series(cc, root=root, observed=observed.get(cc, {}), thresholds=thresholds)


def all_country_series(
    store: Store,
    *,
    since: dt.date,
    until: dt.date,
    settings: AggregateSettings,
    thresholds: SeriesThresholds = SeriesThresholds(),
) -> dict[str, CountrySeries]:
    """``country_series`` of every country with root records or country observations."""
    root = root_daily_by_country(store, since=since, until=until, settings=settings)
    observed = read_observation_daily(store, country=None, since=since, until=until)
    return {
        cc: build_series(
            cc, root=root.get(cc, {}), observed=observed.get(cc, {}), thresholds=thresholds
        )
        for cc in sorted(set(root) | set(observed))
    }


def sample_totals(points: Iterable[DayValue]) -> dict[str, Any]:
    """Summed sample sizes over points (None where no point has that kind of sample)."""
    out: dict[str, Any] = {}
    for name in ("records", "probes", "probe_asns", "full_feed_peers", "traces"):
        vals = [getattr(p.sample, name) for p in points if getattr(p.sample, name) is not None]
        out[name] = sum(vals) if vals else None
    return out


def series_around(
    store: Store,
    *,
    country: str,
    dates: Sequence[dt.date],
    span_days: int,
    settings: AggregateSettings,
    thresholds: SeriesThresholds = SeriesThresholds(),
) -> CountrySeries:
    """``country_series`` over [min(dates) − span_days, max(dates) + span_days + 1)."""
    span = dt.timedelta(days=span_days)
    return country_series(
        store,
        country=country,
        since=min(dates) - span,
        until=max(dates) + span + DAY,
        settings=settings,
        thresholds=thresholds,
    )


def thresholds_from(settings: Any) -> SeriesThresholds:
    """SeriesThresholds from ``[impact]`` settings (``publiccore.config.ImpactSettings``)."""
    return SeriesThresholds(
        min_records=settings.min_records,
        min_probes=settings.min_probes,
        min_full_feed_peers=settings.min_full_feed_peers,
        min_traces=settings.min_traces,
    )
