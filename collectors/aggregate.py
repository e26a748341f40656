"""Windowed per-country aggregates that the exporters and reports read.

``Aggregator.refresh`` reads the store (root-dns records of the last root window, the newest BGP
and path observations, the probe registry) and returns a ``Snapshot``: every exported series by
metric name (see ``METRICS``) plus the newest data times behind the freshness gauges. The
computation itself is pure (``compute_root``, ``latest_observations``), so history
(``exporters.openmetrics``) and tests run exactly the same code over chosen windows.

Bias control (definition M-sampling in docs/methodology.md): within a country, each
probe ASN's records are **down-weighted** so that no ASN carries more than ``max_asn_share`` of
the country's total weight (water-filling: capped ASNs get exactly the cap, the others share the
rest in proportion to their record counts). With fewer than 1 / ``max_asn_share`` ASNs the cap
cannot be met and every ASN gets an equal share. Every ratio and quantile below is weighted;
sample sizes are raw counts and ``publiccore_aggregate_top_asn_share`` shows the unweighted share
of the largest ASN, so thin or lopsided data stays visible.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import functools
import logging
import math
import pathlib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources

import pycountry

from publiccore.clock import Clock, utc_now
from publiccore.config import AggregateSettings
from publiccore.errors import ConfigError
from publiccore.records import INTEGRITY_OUTCOMES, KINDS, Record, RootResult, RootTarget
from publiccore.store import Observation, Store

log = logging.getLogger(__name__)

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
AVAILABILITY_THRESHOLD = 0.96  # RSSAC047 per letter
RSS_K, RSS_N = 8, 13  # RSSAC047 k-of-n system view
ROUND_GAP_SECONDS = 120.0  # records of one probe further apart than this belong to another round
ACTIVE_SECONDS = 3600.0  # a probe is active when it sent a record this recently
BGP_DUMP_TOLERANCE_SECONDS = 3600.0  # series this much older than a metric's newest are stale
OBSERVATION_LOOKBACKS: tuple[float | None, ...] = (6 * 3600.0, 2 * 86400.0, 30 * 86400.0, None)
SITE_OUTCOMES: tuple[str, ...] = ("in_country", "abroad", "unknown")
TRANSPORTS: tuple[str, ...] = ("udp", "tcp")


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


# Every gauge computed from stored data, in exposition order. The live-only ones (freshness,
# ingest counters, events) are defined in exporters.prometheus.
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
    "bgp_prefix_visibility_ratio": "publiccore_bgp_prefix_visibility_ratio",
    "bgp_root_prefix_unexpected_origin": "publiccore_bgp_root_prefix_unexpected_origin",
    "path_border_crossings_distinct": "publiccore_path_border_crossings_distinct",
    "path_border_crossings_effective_number": "publiccore_path_border_crossings_effective_number",
    "path_traces": "publiccore_path_traces",
}

Labels = tuple[str, ...]
Series = dict[str, dict[Labels, float]]


# --- site table ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SiteTable:
    """Per-letter identity patterns and code tables (``publiccore/data/root_sites.toml``)."""

    patterns: Mapping[str, tuple[re.Pattern[str], ...]]
    codes: Mapping[str, Mapping[str, str]]  # letter → site code → ISO country

    cache: dict[tuple[str, tuple[str | None, ...]], tuple[str | None, str | None]] = (
        dataclasses.field(default_factory=dict, compare=False, repr=False)
    )

    def locate(self, letter: str, identities: Iterable[str | None]) -> str | None:
        """Return the ISO country of the site named by the first identity that maps, or None."""
        return self.site(letter, identities)[1]

    def site(self, letter: str, identities: Iterable[str | None]) -> tuple[str | None, str | None]:
        """(site key, ISO country or None) for a record's identities (NSID, hostname.bind, …).

        The site key is the location code the table reads (``nl-ams``, ``ams``), so several
        servers of one site count once; for an identity the table cannot read, the identity
        itself. Both are None without any identity.
        """
        key = (letter, tuple(identities))
        if key not in self.cache:
            if len(self.cache) > 100_000:
                self.cache.clear()
            self.cache[key] = self._site(letter, key[1])
        return self.cache[key]

    def _site(
        self, letter: str, identities: tuple[str | None, ...]
    ) -> tuple[str | None, str | None]:
        patterns = self.patterns.get(letter, ())
        codes = self.codes.get(letter, {})
        first: str | None = None
        for identity in identities:
            if not identity:
                continue
            text = identity.strip().lower()
            first = first or text
            for pattern in patterns:
                match = pattern.fullmatch(text)
                if match is None:
                    continue
                groups = match.groupdict()
                cc, site = groups.get("cc"), groups.get("site")
                where = "-".join(g for g in (cc, site) if g) or text
                if cc and _is_country(cc):
                    return where, cc.upper()
                if site and site in codes:
                    return where, codes[site]
                first = where
        return first, None


@functools.lru_cache(maxsize=1024)
def _is_country(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code.upper()) is not None


def bundled_sites_path() -> pathlib.Path:
    """The site table shipped with publiccore."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "root_sites.toml"))


def load_sites(path: str | pathlib.Path | None = None) -> SiteTable:
    """Read a site table (the bundled one when ``path`` is None); raise ConfigError."""
    chosen = pathlib.Path(path) if path else bundled_sites_path()
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read site table {chosen}: {exc}") from None
    tables = data.get("codes", {})
    patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
    codes: dict[str, dict[str, str]] = {}
    for letter, spec in data.get("letters", {}).items():
        try:
            patterns[letter] = tuple(re.compile(p) for p in spec.get("patterns", ()))
        except re.error as exc:
            raise ConfigError(f"site table {chosen}: letter {letter}: bad pattern: {exc}") from None
        table_name = spec.get("codes", "iata")
        table = tables.get(table_name)
        if table is None:
            raise ConfigError(f"site table {chosen}: letter {letter}: no [codes.{table_name}]")
        for code, country in table.items():
            if not _is_country(country):
                raise ConfigError(
                    f"site table {chosen}: [codes.{table_name}] {code}: "
                    f"{country!r} is not an ISO 3166-1 alpha-2 code"
                )
        codes[letter] = {k.lower(): v.upper() for k, v in table.items()}
    return SiteTable(patterns=patterns, codes=codes)


# --- root rows ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SoaProbe:
    """The outcome of one ``. SOA`` query: answered, RTT and serial."""

    answered: bool
    rtt_seconds: float | None
    serial: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class RootRow:
    """What the aggregates need from one root-dns record."""

    time: float  # started, POSIX seconds
    probe: str
    asn: int | None
    country: str
    letter: str
    family: str
    soa: Mapping[str, SoaProbe]  # transport → outcome
    identities: tuple[str | None, ...]  # NSID, hostname.bind, id.server
    outcome: str

    @property
    def answered(self) -> bool:
        return any(s.answered for s in self.soa.values())

    @property
    def serial(self) -> int | None:
        return next((s.serial for s in self.soa.values() if s.serial is not None), None)


def root_row(record: Record) -> RootRow | None:
    """Extract a ``RootRow``; None for other kinds and for records without a country."""
    if not isinstance(record.result, RootResult) or not isinstance(record.target, RootTarget):
        return None
    if not record.probe.country:
        return None
    soa: dict[str, SoaProbe] = {}
    for query in record.result.queries:
        if query.qtype == "SOA" and query.qname == "." and query.transport not in soa:
            soa[query.transport] = SoaProbe(query.answered, query.rtt_seconds, query.serial)
    identity = record.result.identity
    return RootRow(
        time=record.started.timestamp(),
        probe=record.probe.id,
        asn=record.probe.asn,
        country=record.probe.country,
        letter=record.target.letter.lower(),
        family=record.target.family,
        soa=soa,
        identities=(identity.nsid, identity.hostname_bind, identity.id_server),
        outcome=record.result.integrity.outcome,
    )


# --- weighting and quantiles --------------------------------------------------------------------


def asn_weights(counts: Mapping[int | None, int], max_share: float) -> dict[int | None, float]:
    """Per-record weight for each ASN so that no ASN exceeds ``max_share`` of the total weight.

    Weights are scaled so the total weight equals the total record count. With fewer than
    1 / ``max_share`` ASNs every ASN gets an equal share of the total.
    """
    total = sum(counts.values())
    if not counts or total == 0:
        return {}
    n = len(counts)
    if max_share >= 1.0:
        return dict.fromkeys(counts, 1.0)
    if n * max_share < 1.0:
        return {asn: (total / n) / c for asn, c in counts.items()}
    capped: set[int | None] = set()
    while True:
        free = 1.0 - len(capped) * max_share
        rest = sum(c for asn, c in counts.items() if asn not in capped)
        shares = {
            asn: (max_share if asn in capped else free * c / rest) for asn, c in counts.items()
        }
        over = {asn for asn, s in shares.items() if asn not in capped and s > max_share + 1e-12}
        if not over:
            break
        capped |= over
    return {asn: shares[asn] * total / counts[asn] for asn in counts}


def weighted_quantiles(pairs: Sequence[tuple[float, float]], qs: Sequence[float]) -> list[float]:
    """For each q, the smallest value whose cumulative weight reaches q of the total.

    ``pairs`` are (value, weight). With equal weights this is the "inverted CDF" quantile: the
    median of 4 values is the 2nd. One sort for all quantiles.
    """
    ordered = sorted(pairs)
    total = sum(w for _, w in ordered)
    out = []
    for q in qs:
        target = q * total - 1e-9 * total
        cumulative = 0.0
        chosen = ordered[-1][0]
        for value, weight in ordered:
            cumulative += weight
            if cumulative >= target:
                chosen = value
                break
        out.append(chosen)
    return out


def weighted_quantile(pairs: Sequence[tuple[float, float]], q: float) -> float:
    """``weighted_quantiles`` for one q."""
    return weighted_quantiles(pairs, (q,))[0]


# --- publication latency -------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class PublicationTracker:
    """First sightings of SOA serials, kept across refreshes (RSSAC047 publication latency).

    Feed it rows in any order (``update`` keeps minima, so overlapping windows are harmless);
    ``latency`` reports, for the newest serial, per country × letter, the time from its first
    sighting on any letter anywhere to its first sighting on that letter from that country.
    Nothing is reported until a change of serial has been seen (an older serial first seen
    before the newest one), since only then is the publication moment known.
    """

    first_any: dict[int, float] = dataclasses.field(default_factory=dict)
    first_seen: dict[tuple[str, str, int], float] = dataclasses.field(default_factory=dict)
    last_answer: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    keep_serials: int = 8

    def update(self, rows: Iterable[RootRow]) -> None:
        """Record the serials the rows saw."""
        for row in rows:
            serial = row.serial
            if serial is None:
                continue
            if row.time < self.first_any.get(serial, math.inf):
                self.first_any[serial] = row.time
            key = (row.country, row.letter, serial)
            if row.time < self.first_seen.get(key, math.inf):
                self.first_seen[key] = row.time
            pair = (row.country, row.letter)
            if row.time > self.last_answer.get(pair, -math.inf):
                self.last_answer[pair] = row.time
        if len(self.first_any) > self.keep_serials:
            keep = set(sorted(self.first_any)[-self.keep_serials :])
            self.first_any = {s: t for s, t in self.first_any.items() if s in keep}
            self.first_seen = {k: t for k, t in self.first_seen.items() if k[2] in keep}

    def latency(self, now: float) -> dict[Labels, float]:
        """(country, letter) → seconds for the newest serial (see class doc)."""
        if not self.first_any:
            return {}
        newest = max(self.first_any)
        published = self.first_any[newest]
        if not any(t < published for s, t in self.first_any.items() if s != newest):
            return {}  # no change of serial seen yet: the publication moment is unknown
        out: dict[Labels, float] = {}
        for (country, letter), last in self.last_answer.items():
            seen = self.first_seen.get((country, letter, newest))
            if seen is not None:
                out[(country, letter)] = max(0.0, seen - published)
            elif last >= published:  # answering, but still with an older serial
                out[(country, letter)] = max(0.0, now - published)
        return out


# --- the root aggregates -------------------------------------------------------------------------


def _rounds_available(rows: Sequence[RootRow]) -> list[bool]:
    """Per probe round (records of one probe closer than ROUND_GAP_SECONDS): ≥ k letters?"""
    out: list[bool] = []
    letters: set[str] = set()
    start = -math.inf
    for row in sorted(rows, key=lambda r: r.time):
        if row.time - start > ROUND_GAP_SECONDS:
            if start > -math.inf:
                out.append(len(letters) >= RSS_K)
            letters, start = set(), row.time
        if row.answered:
            letters.add(row.letter)
    if start > -math.inf:
        out.append(len(letters) >= RSS_K)
    return out


def compute_root(
    rows: Iterable[RootRow],
    *,
    max_asn_share: float,
    sites: SiteTable,
    tracker: PublicationTracker | None = None,
    now: float | None = None,
) -> Series:
    """Every root aggregate over ``rows`` (one window), weighted per country (module doc).

    ``tracker`` (already fed with these rows) supplies publication latency as of ``now``.
    """
    by_country: dict[str, list[RootRow]] = collections.defaultdict(list)
    for row in rows:
        by_country[row.country].append(row)
    out: Series = {
        spec.name: {}
        for spec in METRICS
        if spec.name.startswith(("publiccore_root_", "publiccore_aggregate_"))
    }
    for country, crows in sorted(by_country.items()):
        _country_root(country, crows, max_asn_share, sites, out)
    if tracker is not None and now is not None:
        out["publiccore_root_publication_latency_seconds"] = tracker.latency(now)
    return out


def _country_root(
    country: str, rows: list[RootRow], max_asn_share: float, sites: SiteTable, out: Series
) -> None:
    asn_counts = collections.Counter(r.asn for r in rows)
    weights = asn_weights(asn_counts, max_asn_share)
    total = len(rows)
    sample = ("root-dns",)
    out["publiccore_aggregate_records"][(country, *sample)] = float(total)
    out["publiccore_aggregate_probes"][(country, *sample)] = float(len({r.probe for r in rows}))
    out["publiccore_aggregate_probe_asns"][(country, *sample)] = float(
        len({r.asn for r in rows if r.asn is not None})
    )
    out["publiccore_aggregate_top_asn_share"][(country, *sample)] = max(asn_counts.values()) / total

    sent: dict[Labels, float] = collections.defaultdict(float)
    answered: dict[Labels, float] = collections.defaultdict(float)
    rtts: dict[Labels, list[tuple[float, float]]] = collections.defaultdict(list)
    outcomes: dict[str, float] = collections.defaultdict(float)
    site_names: dict[str, set[str]] = collections.defaultdict(set)
    located: dict[Labels, float] = collections.defaultdict(float)
    located_total: dict[str, float] = collections.defaultdict(float)
    per_probe: dict[str, list[RootRow]] = collections.defaultdict(list)
    probe_weight: dict[str, float] = {}
    for row in rows:
        w = weights[row.asn]
        if row.outcome != "not_measured":  # nothing claimed: not in the integrity shares
            outcomes[row.outcome] += w
        per_probe[row.probe].append(row)
        probe_weight[row.probe] = w
        for transport, soa in row.soa.items():
            cell: Labels = (row.letter, row.family, transport)
            sent[cell] += w
            if soa.answered:
                answered[cell] += w
                if soa.rtt_seconds is not None:
                    rtts[cell].append((soa.rtt_seconds, w))
        if row.answered:
            site, where = sites.site(row.letter, row.identities)
            if site:
                site_names[row.letter].add(site)
            outcome = "unknown" if where is None else "in_country" if where == country else "abroad"
            located[(row.letter, outcome)] += w
            located_total[row.letter] += w

    reach = out["publiccore_root_reachable_ratio"]
    rtt_out = out["publiccore_root_rtt_seconds"]
    for key, n in sent.items():
        reach[(country, *key)] = answered[key] / n
        if rtts[key]:
            for q, value in zip(QUANTILES, weighted_quantiles(rtts[key], QUANTILES), strict=True):
                rtt_out[(country, *key, _qtext(q))] = value

    letters = sorted({k[0] for k in sent})
    letters_ok = 0
    for letter in letters:
        keys = [k for k in sent if k[0] == letter]
        availability = sum(answered[k] for k in keys) / sum(sent[k] for k in keys)
        out["publiccore_root_availability_ratio"][(country, letter)] = availability
        letters_ok += availability >= AVAILABILITY_THRESHOLD
        for transport in TRANSPORTS:
            pairs = [p for k in keys if k[2] == transport for p in rtts[k]]
            if pairs:
                out["publiccore_root_median_latency_seconds"][(country, letter, transport)] = (
                    weighted_quantile(pairs, 0.5)
                )
        out["publiccore_root_sites"][(country, letter)] = float(len(site_names[letter]))
        if located_total[letter] > 0:
            for outcome in SITE_OUTCOMES:
                out["publiccore_root_site_location_ratio"][(country, letter, outcome)] = (
                    located[(letter, outcome)] / located_total[letter]
                )
    out["publiccore_root_letters_available"][(country,)] = float(letters_ok)

    rounds_ok = rounds_all = 0.0
    for probe, prows in per_probe.items():
        for ok in _rounds_available(prows):
            rounds_all += probe_weight[probe]
            rounds_ok += probe_weight[probe] * ok
    if rounds_all:
        out["publiccore_root_system_available_ratio"][(country,)] = rounds_ok / rounds_all

    weight_total = sum(outcomes.values())
    for outcome in INTEGRITY_OUTCOMES:
        if weight_total and outcome != "not_measured":
            out["publiccore_root_integrity_ratio"][(country, outcome)] = (
                outcomes.get(outcome, 0.0) / weight_total
            )


def _qtext(q: float) -> str:
    return repr(q)


def probes_active(
    hour: Iterable[RootRow], window: Iterable[RootRow], *, registered: Mapping[str, str]
) -> dict[Labels, float]:
    """Active probes per country: registered probes (id → country) with a row in ``hour``,
    plus any probe with a row in ``window`` (unregistered ones, e.g. `publiccore probe root`
    writing straight into the store). Registered countries start at 0. Same rule as
    ``Aggregator`` applies live, where registered probes are found by counting their records.
    """
    active: dict[str, set[str]] = {country: set() for country in registered.values()}
    for row in hour:
        if row.probe in registered:
            active[registered[row.probe]].add(row.probe)
    for row in window:
        active.setdefault(row.country, set()).add(row.probe)
    return {(c,): float(len(p)) for c, p in sorted(active.items())}


# --- observations (BGP, paths) ------------------------------------------------------------------


def observation_labels(metric: str, obs: Observation) -> Labels | None:
    """Label values of an observation in the order of its exported metric; None if unusable."""
    spec = SPECS[OBSERVED_METRICS[metric]]
    values = []
    for name in spec.labels:
        if name == obs.subject_kind:
            values.append(obs.subject)
        else:
            values.append(str(obs.labels.get(name, "")))
    if obs.subject_kind not in spec.labels:
        return None
    return tuple(values)


def latest_observations(
    observations: Iterable[Observation], *, until: float | None = None
) -> tuple[Series, float | None]:
    """Newest value per series among observations at or before ``until``.

    Per metric, series older than the metric's newest time by more than
    BGP_DUMP_TOLERANCE_SECONDS are dropped (a country absent from the newest dump is not
    reported from an old one). Returns the series by exported name and the newest time of a
    BGP observation (the newest dump).
    """
    latest: dict[str, dict[Labels, tuple[float, float]]] = collections.defaultdict(dict)
    newest_time: float | None = None
    for obs in observations:
        if obs.metric not in OBSERVED_METRICS:
            continue
        when = obs.time.timestamp()
        if until is not None and when > until:
            continue
        labels = observation_labels(obs.metric, obs)
        if labels is None:
            continue
        series = latest[obs.metric]
        if labels not in series or series[labels][0] <= when:
            series[labels] = (when, float(obs.value))
        if obs.metric.startswith("bgp_"):
            newest_time = when if newest_time is None else max(newest_time, when)
    out: Series = {}
    for metric, series in latest.items():
        newest = max(t for t, _ in series.values())
        out[OBSERVED_METRICS[metric]] = {
            labels: value
            for labels, (t, value) in series.items()
            if t >= newest - BGP_DUMP_TOLERANCE_SECONDS
        }
    return out, newest_time


# --- the snapshot -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the live exporter shows, computed at ``computed_at``."""

    computed_at: dt.datetime
    series: Series
    newest_record: Mapping[str, dt.datetime]  # kind → newest record start time
    newest_bgp_dump: dt.datetime | None
    duration_seconds: float = 0.0

    @classmethod
    def empty(cls, when: dt.datetime) -> Snapshot:
        """A snapshot with no data (before the first refresh)."""
        return cls(computed_at=when, series={}, newest_record={}, newest_bgp_dump=None)


def _from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def newest_record_time(store: Store, kind: str, now: dt.datetime) -> dt.datetime | None:
    """Start time of the newest record of ``kind`` (to the second), by counting, not reading.

    Uses only ``count_records`` (indexed): widening look-backs, then bisection. A store method
    returning the maximum directly would be cheaper.
    """
    upper = now + dt.timedelta(days=1)  # tolerate probe clocks slightly ahead
    lower = None
    for days in (1 / 24, 1, 30, 365, 3650):
        since = now - dt.timedelta(days=days)
        if store.count_records(kind=kind, since=since, until=upper):
            lower = since
            break
    if lower is None:
        return None
    lo, hi = lower.timestamp(), upper.timestamp()  # invariant: a record in [lo, hi)
    for _ in range(64):
        if hi - lo <= 1.0:
            break
        mid = (lo + hi) / 2
        if store.count_records(kind=kind, since=_from_ts(mid), until=upper):
            lo = mid
        else:
            hi = mid
    return _from_ts(lo)


def read_observations(store: Store, now: dt.datetime) -> list[Observation]:
    """The observations of every known metric, from the shortest look-back that has any."""
    found: list[Observation] = []
    for metric in OBSERVED_METRICS:
        for lookback in OBSERVATION_LOOKBACKS:
            since = None if lookback is None else now - dt.timedelta(seconds=lookback)
            batch = list(store.iter_observations(metric=metric, since=since))
            if batch:
                found.extend(batch)
                break
    return found


class Aggregator:
    """Computes snapshots from a store; keeps publication-latency state between refreshes.

    ``refresh`` does blocking store work: run it in a thread (``asyncio.to_thread``).
    """

    def __init__(
        self,
        store: Store,
        settings: AggregateSettings | None = None,
        *,
        sites: SiteTable | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings or AggregateSettings()
        self.sites = sites or load_sites(self.settings.sites or None)
        self.clock = clock
        self.tracker = PublicationTracker()

    def refresh(self, now: dt.datetime | None = None) -> Snapshot:
        """Compute a fresh snapshot as of ``now`` (default: the clock)."""
        started = self.clock()
        now = now or started
        window = dt.timedelta(seconds=self.settings.root_window_seconds)
        rows = [
            row
            for record in self.store.iter_records(kind="root-dns", since=now - window, until=now)
            if (row := root_row(record)) is not None
        ]
        self.tracker.update(rows)
        series = compute_root(
            rows,
            max_asn_share=self.settings.max_asn_share,
            sites=self.sites,
            tracker=self.tracker,
            now=now.timestamp(),
        )
        series["publiccore_probes_active"] = self._probes_active(rows, now)
        observations, newest_obs = latest_observations(
            read_observations(self.store, now), until=now.timestamp()
        )
        series.update(observations)
        newest: dict[str, dt.datetime] = {}
        for kind in KINDS:
            if kind == "root-dns" and rows:
                newest[kind] = _from_ts(max(r.time for r in rows))
            elif (when := newest_record_time(self.store, kind, now)) is not None:
                newest[kind] = when
        return Snapshot(
            computed_at=now,
            series=series,
            newest_record=newest,
            newest_bgp_dump=None if newest_obs is None else _from_ts(newest_obs),
            duration_seconds=(self.clock() - started).total_seconds(),
        )

    def _probes_active(self, rows: Sequence[RootRow], now: dt.datetime) -> dict[Labels, float]:
        """Registered probes with a record (any kind) in the last hour, found by counting
        (indexed), plus every probe seen in the window (see ``probes_active``)."""
        since = now - dt.timedelta(seconds=ACTIVE_SECONDS)
        active: dict[str, set[str]] = collections.defaultdict(set)
        for probe in self.store.list_probes():
            if probe.revoked is not None and probe.revoked <= now:
                continue
            active.setdefault(probe.country, set())
            if self.store.count_records(probe_id=probe.id, since=since, until=now):
                active[probe.country].add(probe.id)
        for row in rows:
            active[row.country].add(row.probe)
        return {(c,): float(len(p)) for c, p in sorted(active.items())}


def rows_between(
    rows: Sequence[RootRow], times: Sequence[float], since: float, until: float
) -> Sequence[RootRow]:
    """Rows with ``since`` ≤ time < ``until`` from rows sorted by time (``times`` their times)."""
    return rows[bisect.bisect_left(times, since) : bisect.bisect_left(times, until)]
