"""The exported metric catalogue: names, help texts, units, labels; and the flattening of the
derive stage's typed figures into those series.

``METRICS`` lists every gauge computed from stored data, in exposition order (the live-only
ones: freshness, ingest counters, events, are in ``exporters.prometheus``). ``series`` turns a
``derive.figures.Figures`` into ``{metric name: {label values: value}}``, the shape every
exporter writes (``/metrics``, the OpenMetrics history, reports' figure tables). A figure the
derive stage does not have is not written: absent, never a zero. ``Exposition`` is what one
refresh exports, as the deriver stores it for every HTTP worker to serve.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping

from publiccore.collectors.aggregate import Snapshot
from publiccore.collectors.derive import figures as fig

from publiccore.store import Observation

Labels = tuple[str, ...]
Series = dict[str, dict[Labels, float]]


@dataclasses.dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported gauge: its help text, unit, label names and methodology definition id."""

    name: str
    help: str
    unit: str
    labels: tuple[str, ...]
    definition: str


def _spec(name: str, help_: str, unit: str, labels: str, definition: str) -> MetricSpec:
    return MetricSpec(name, help_, unit, tuple(labels.split()) if labels else (), definition)


METRICS: tuple[MetricSpec, ...] = (
    _spec(
        "publiccore_root_reachable_ratio",
        "Share of . SOA queries answered (NOERROR within the timeout) over the root window",
        "ratio",
        "country letter family transport",
        "M-root-reachability",
    ),
    _spec(
        "publiccore_root_rtt_seconds",
        "Quantiles of the RTT of answered . SOA queries over the root window",
        "seconds",
        "country letter family transport quantile",
        "M-root-latency",
    ),
    _spec(
        "publiccore_root_availability_ratio",
        "RSSAC047 availability per letter (all families and transports; threshold 0.96)",
        "ratio",
        "country letter",
        "M-root-reachability",
    ),
    _spec(
        "publiccore_root_median_latency_seconds",
        "RSSAC047 median latency per letter and transport (thresholds UDP 0.25 s, TCP 0.5 s)",
        "seconds",
        "country letter transport",
        "M-root-latency",
    ),
    _spec(
        "publiccore_root_publication_latency_seconds",
        "RSSAC047 publication latency of the newest SOA serial: time from its first sighting "
        "on any letter to its first sighting on this letter from this country (still "
        "growing while the letter serves an older serial; threshold 3900 s)",
        "seconds",
        "country letter",
        "M-root-publication",
    ),
    _spec(
        "publiccore_root_publication_latency_median_seconds",
        "RSSAC047 section 5.4 publication latency per letter: median over the serial changes of "
        "the publication period and every vantage point of the delay from a serial's first "
        "sighting to its sighting by the vantage point, in 5-minute intervals (threshold 3900 s)",
        "seconds",
        "letter",
        "M-root-publication-median",
    ),
    _spec(
        "publiccore_root_publication_latency_measurements",
        "Measurements (serial changes x vantage points) behind the per-letter publication "
        "latency median",
        "measurements",
        "letter",
        "M-root-publication-median",
    ),
    _spec(
        "publiccore_root_rss_publication_latency_seconds",
        "RSSAC047 section 6.4 RSS publication latency: median of every letter's measurements "
        "over the publication period (threshold 2100 s)",
        "seconds",
        "",
        "M-root-publication-median",
    ),
    _spec(
        "publiccore_root_letters_available",
        "Letters whose availability meets the RSSAC047 threshold (0.96)",
        "letters",
        "country",
        "M-root-rss",
    ),
    _spec(
        "publiccore_root_system_available_ratio",
        "Share of probe rounds in which at least k = 8 of n = 13 letters answered",
        "ratio",
        "country",
        "M-root-rss",
    ),
    _spec(
        "publiccore_root_rss_availability_ratio",
        "RSSAC047 section 6.1 RSS availability: sum over probe rounds of min(k, letters that "
        "answered) / sum of k, k = 8, per family and transport (threshold 0.99999)",
        "ratio",
        "country family transport",
        "M-root-rss-availability",
    ),
    _spec(
        "publiccore_root_rss_latency_seconds",
        "RSSAC047 section 6.2 RSS response latency: median of the k = 8 lowest letter latencies "
        "of every probe round, per family and transport (thresholds UDP 0.15 s, TCP 0.3 s)",
        "seconds",
        "country family transport",
        "M-root-rss-latency",
    ),
    _spec(
        "publiccore_root_correctness_ratio",
        "RSSAC047 section 5.3 correctness: correct / judged answers (matching a root zone of "
        "the 48 h before and validating with DNSSEC) over the root window (threshold 1)",
        "ratio",
        "country letter",
        "M-root-correctness",
    ),
    _spec(
        "publiccore_root_correctness_judged",
        "Answers judged for RSSAC047 correctness over the root window (the ratio's sample size)",
        "answers",
        "country letter",
        "M-root-correctness",
    ),
    _spec(
        "publiccore_root_integrity_ratio",
        "Share of root-dns records by root integrity outcome",
        "ratio",
        "country outcome",
        "M-root-integrity",
    ),
    _spec(
        "publiccore_root_sites",
        "Distinct anycast sites that answered from this country (by the location code the "
        "site table reads, else by the identity string)",
        "sites",
        "country letter",
        "M-root-site",
    ),
    _spec(
        "publiccore_root_site_location_ratio",
        "Share of answered records by the answering site's location: in_country, abroad, "
        "unknown (identity missing or not in the site table)",
        "ratio",
        "country letter outcome",
        "M-root-site",
    ),
    _spec(
        "publiccore_aggregate_records",
        "Records in the window behind this country's aggregates",
        "records",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_probes",
        "Distinct probes in the window behind this country's aggregates",
        "probes",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_probe_asns",
        "Distinct probe ASNs in the window behind this country's aggregates",
        "ASNs",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_top_asn_share",
        "Unweighted share of the country's records from its largest probe ASN (before "
        "down-weighting to max_asn_share)",
        "ratio",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_sources",
        "1 for each record source the root figures rest on ([aggregate] sources: volunteer, "
        "ripe-atlas); figures never mix sources that are not listed",
        "",
        "source",
        "M-sampling",
    ),
    _spec(
        "publiccore_probes_active",
        "Probes of this country that sent a record in the last hour (registered probes "
        "count as 0 when silent)",
        "probes",
        "country",
        "M-sampling",
    ),
    _spec(
        "publiccore_bgp_country_visible_slash24",
        "Routed IPv4 address space of the country seen by > 50% of full-feed peers",
        "/24 equivalents",
        "country",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_visibility_ratio",
        "Visible share of the country's routed address space (visible / routed)",
        "ratio",
        "country family",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_routed_units",
        "Routed address space of the country (/24 for IPv4, /48 for IPv6)",
        "/24 or /48 equivalents",
        "country family",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_unseen_prefixes",
        "Prefixes of the country seen by no full-feed peer",
        "prefixes",
        "country family",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_upstreams",
        "Foreign ASes adjacent to the country's ASes on observed AS paths",
        "ASes",
        "country family",
        "M-bgp-upstreams",
    ),
    _spec(
        "publiccore_bgp_country_upstream_effective_number",
        "Effective number of international upstreams (1 / sum of squared shares)",
        "ASes",
        "country family",
        "M-bgp-upstreams",
    ),
    _spec(
        "publiccore_bgp_country_top_upstream_share",
        "Share of the country's address space carried by its largest upstream",
        "ratio",
        "country family",
        "M-bgp-upstreams",
    ),
    _spec(
        "publiccore_bgp_country_dependency_ratio",
        "AS hegemony over the country's routed space (IHR; top 5 ASes per country and family)",
        "ratio",
        "country family asn",
        "M-bgp-hegemony",
    ),
    _spec(
        "publiccore_bgp_country_dependent_ases",
        "ASes with a hegemony above 0.1 over the country's routed space",
        "ASes",
        "country family",
        "M-bgp-hegemony",
    ),
    _spec(
        "publiccore_bgp_prefix_visibility_ratio",
        "Share of full-feed peers carrying a route to the prefix",
        "ratio",
        "prefix_set prefix letter family",
        "M-bgp-prefix-visibility",
    ),
    _spec(
        "publiccore_bgp_root_prefix_unexpected_origin",
        "1 when a root-server prefix is originated by an AS not in the expected table",
        "boolean",
        "prefix_set prefix letter family",
        "M-bgp-root-prefixes",
    ),
    _spec(
        "publiccore_path_border_crossings_distinct",
        "Distinct border crossings (exit AS, entry AS, entry country) on the country's "
        "traceroutes over the paths window",
        "crossings",
        "country",
        "M-path-border-crossings",
    ),
    _spec(
        "publiccore_path_border_crossings_effective_number",
        "Effective number of border crossings (1 / sum of squared shares)",
        "crossings",
        "country",
        "M-path-border-crossings",
    ),
    _spec(
        "publiccore_path_traces",
        "Traceroutes behind the country's border-crossing figures (sample size)",
        "traceroutes",
        "country",
        "M-path-border-crossings",
    ),
    _spec(
        "publiccore_path_traces_left_unmapped",
        "Traceroutes that crossed no border but left the probe's country through address space "
        "no delegated file maps (their own outcome, not 'never crossed')",
        "traceroutes",
        "country",
        "M-path-border-crossings",
    ),
)
SPECS: dict[str, MetricSpec] = {m.name: m for m in METRICS}

# Observations (stored by collectors/bgp and collectors/paths) → exported metric.
OBSERVED_METRICS: dict[str, str] = {
    "bgp_country_visible_slash24": "publiccore_bgp_country_visible_slash24",
    "bgp_country_visibility_ratio": "publiccore_bgp_country_visibility_ratio",
    "bgp_country_routed_units": "publiccore_bgp_country_routed_units",
    "bgp_country_unseen_prefixes": "publiccore_bgp_country_unseen_prefixes",
    "bgp_country_upstreams": "publiccore_bgp_country_upstreams",
    "bgp_country_upstream_effective_number": "publiccore_bgp_country_upstream_effective_number",
    "bgp_country_top_upstream_share": "publiccore_bgp_country_top_upstream_share",
    "bgp_country_dependency_ratio": "publiccore_bgp_country_dependency_ratio",
    "bgp_country_dependent_ases": "publiccore_bgp_country_dependent_ases",
    "bgp_prefix_visibility_ratio": "publiccore_bgp_prefix_visibility_ratio",
    "bgp_root_prefix_unexpected_origin": "publiccore_bgp_root_prefix_unexpected_origin",
    "path_border_crossings_distinct": "publiccore_path_border_crossings_distinct",
    "path_border_crossings_effective_number": "publiccore_path_border_crossings_effective_number",
    "path_traces": "publiccore_path_traces",
    "path_traces_left_unmapped": "publiccore_path_traces_left_unmapped",
}


def _put(out: Series, name: str, labels: Labels, value: float | None) -> None:
    if value is not None:
        out.setdefault(name, {})[labels] = float(value)


def root_series(root: fig.RootFigures) -> Series:
    """The ``publiccore_root_*`` and ``publiccore_aggregate_*`` series of the root figures."""
    out: Series = {
        spec.name: {}
        for spec in METRICS
        if spec.name.startswith(("publiccore_root_", "publiccore_aggregate_"))
    }  # every one, empty where the figures have nothing (``series`` fills the others)
    for c in root.countries:
        sample = (c.country, "root-dns")
        _put(out, "publiccore_aggregate_records", sample, c.sample.records)
        _put(out, "publiccore_aggregate_probes", sample, c.sample.probes)
        _put(out, "publiccore_aggregate_probe_asns", sample, c.sample.probe_asns)
        _put(out, "publiccore_aggregate_top_asn_share", sample, c.sample.top_asn_share)
        for cell in c.cells:
            key = (c.country, cell.letter, cell.family, cell.transport)
            _put(out, "publiccore_root_reachable_ratio", key, cell.reachable_ratio)
            for q, value in zip(fig.QUANTILES, cell.rtt_seconds, strict=False):
                _put(out, "publiccore_root_rtt_seconds", (*key, repr(q)), value)
        for x in c.letters:
            pair = (c.country, x.letter)
            _put(out, "publiccore_root_availability_ratio", pair, x.availability_ratio)
            for transport, value in x.median_latency_seconds.items():
                _put(out, "publiccore_root_median_latency_seconds", (*pair, transport), value)
            _put(out, "publiccore_root_sites", pair, x.sites)
            for outcome, value in x.site_location.items():
                _put(out, "publiccore_root_site_location_ratio", (*pair, outcome), value)
        _put(out, "publiccore_root_letters_available", (c.country,), c.letters_available)
        _put(out, "publiccore_root_system_available_ratio", (c.country,), c.system_available_ratio)
        for r in c.rss:
            rss = (c.country, r.family, r.transport)
            _put(out, "publiccore_root_rss_availability_ratio", rss, r.availability_ratio)
            _put(out, "publiccore_root_rss_latency_seconds", rss, r.latency_seconds)
        for outcome, value in c.integrity.items():
            _put(out, "publiccore_root_integrity_ratio", (c.country, outcome), value)
    return out


def publication_series(publication: fig.Publication) -> Series:
    """The RSSAC047 §5.4 / §6.4 series of the publication figures."""
    out: Series = {
        "publiccore_root_publication_latency_median_seconds": {},
        "publiccore_root_publication_latency_measurements": {},
        "publiccore_root_rss_publication_latency_seconds": {},
    }
    for x in publication.letters:
        out["publiccore_root_publication_latency_median_seconds"][(x.letter,)] = x.median_seconds
        out["publiccore_root_publication_latency_measurements"][(x.letter,)] = float(x.measurements)
    _put(out, "publiccore_root_rss_publication_latency_seconds", (), publication.rss_seconds)
    return out


def observation_labels(obs: Observation) -> tuple[str, Labels] | None:
    """(exported metric, label values in its order) of an observation; None if unusable."""
    name = OBSERVED_METRICS.get(obs.metric)
    if name is None or obs.subject_kind not in SPECS[name].labels:
        return None
    return name, tuple(
        obs.subject if label == obs.subject_kind else str(obs.labels.get(label, ""))
        for label in SPECS[name].labels
    )


def observation_series(observations: tuple[Observation, ...]) -> Series:
    """The BGP and path series of the newest observations (the newest wins a label clash)."""
    out: Series = {}
    when: dict[tuple[str, Labels], float] = {}
    for obs in observations:
        named = observation_labels(obs)
        if named is None:
            continue
        t = obs.time.timestamp()
        if when.get(named, -float("inf")) <= t:
            when[named] = t
            out.setdefault(named[0], {})[named[1]] = float(obs.value)
    return out


def series(figures: fig.Figures) -> Series:
    """Every exported series of ``figures`` by metric name (see the module doc)."""
    out = root_series(figures.root)
    out["publiccore_root_publication_latency_seconds"] = {
        (x.country, x.letter): x.seconds for x in figures.newest_serial
    }
    out["publiccore_aggregate_sources"] = {(source,): 1.0 for source in figures.sources}
    out.update(publication_series(figures.publication))
    out["publiccore_root_correctness_ratio"] = {
        (x.country, x.letter): x.ratio for x in figures.correctness
    }
    out["publiccore_root_correctness_judged"] = {
        (x.country, x.letter): float(x.judged) for x in figures.correctness
    }
    out["publiccore_probes_active"] = {(c,): float(n) for c, n in figures.probes_active.items()}
    out.update(observation_series(figures.observations))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Exposition:
    """What one refresh exports: the series by metric name and the times behind the
    freshness gauges (the deriver stores it; every HTTP worker serves the newest stored)."""

    computed_at: dt.datetime
    series: Series
    newest_record: Mapping[str, dt.datetime]  # kind → newest record start time
    newest_bgp_dump: dt.datetime | None
    duration_seconds: float = 0.0

    @classmethod
    def of(cls, snapshot: Snapshot) -> Exposition:
        """The exposition of a derived snapshot."""
        return cls(
            computed_at=snapshot.computed_at,
            series=series(snapshot.figures),
            newest_record=snapshot.newest_record,
            newest_bgp_dump=snapshot.newest_bgp_dump,
            duration_seconds=snapshot.duration_seconds,
        )

    @classmethod
    def empty(cls, when: dt.datetime) -> Exposition:
        """An exposition with no data (before the first refresh)."""
        return cls(computed_at=when, series={}, newest_record={}, newest_bgp_dump=None)

    def dumps(self) -> str:
        """The exposition as JSON (what the deriver stores for every HTTP worker to serve)."""
        return json.dumps(
            {
                "computed_at": self.computed_at.timestamp(),
                "series": {
                    name: [[list(labels), value] for labels, value in sorted(values.items())]
                    for name, values in self.series.items()
                },
                "newest_record": {k: v.timestamp() for k, v in self.newest_record.items()},
                "newest_bgp_dump": (
                    None if self.newest_bgp_dump is None else self.newest_bgp_dump.timestamp()
                ),
                "duration_seconds": self.duration_seconds,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Exposition:
        """The exposition ``dumps`` wrote."""
        obj = json.loads(text)
        dump = obj["newest_bgp_dump"]
        return cls(
            computed_at=_from_ts(obj["computed_at"]),
            series={
                name: {tuple(labels): float(value) for labels, value in values}
                for name, values in obj["series"].items()
            },
            newest_record={k: _from_ts(v) for k, v in obj["newest_record"].items()},
            newest_bgp_dump=None if dump is None else _from_ts(dump),
            duration_seconds=float(obj["duration_seconds"]),
        )


def _from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)
