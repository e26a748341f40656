"""RSSAC047's monthly pass/fail table, per letter and for the root server system.

RSSAC047 v2 §4.1–4.2 reports each metric per calendar month (UTC, from the first of the month):
for every root server identifier (RSI, a letter) pass or fail only ([ntt], [cpm]), for the RSS
the measured value and pass or fail ([nuc]). Thresholds, verified in icann/root-metrics
``rssac-047.md``:

- RSI availability (§5.1) per address family × transport: at least 96 % ([ydw])
- RSI response latency (§5.2, median) per family × transport: UDP 250 ms ([zuc]), TCP 500 ms
  ([bpl])
- RSI correctness (§5.3): 100 % ([ahw]); "not measured" while the month has no
  ``publiccore_root_correctness_ratio{country,letter}`` value for the country
- RSI publication latency (§5.4, median): 65 minutes ([fwa])
- RSS availability (§6.1) per family × transport: 99.999 % ([wzz])
- RSS response latency (§6.2) per family × transport: UDP 150 ms ([uwf]), TCP 300 ms ([lmx])
- RSS correctness (§6.3): 100 % ([gfh]); not measured
- RSS publication latency (§6.4): 35 minutes ([zkl])

A value meets its threshold when it is at least the threshold (availability, correctness) or at
most it (latencies). The values are publiccore's over the report country's vantage points,
from the derive stage's buckets (``collectors.derive.root``: M-sampling weights, RTT medians
from log bins) and from the stored serials (``collectors.derive.publication``). A month, letter
or cell without data says "no data": never a fail, never a zero.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from publiccore.collectors.derive import correctness as derive_correctness
from publiccore.collectors.derive import publication
from publiccore.collectors.derive import root as derive_root
from publiccore.collectors.derive import state as derive_state
from publiccore.exporters import catalogue

from publiccore.store import facts

Verdict = Literal["pass", "fail", "no data", "not measured"]
FAMILIES: tuple[str, ...] = ("ipv4", "ipv6")
TRANSPORTS: tuple[str, ...] = ("udp", "tcp")
LETTERS: tuple[str, ...] = tuple(facts.LETTERS)
RSI_AVAILABILITY = 0.96  # §5.1 [ydw]
RSI_LATENCY = {"udp": 0.250, "tcp": 0.500}  # §5.2 [zuc] [bpl]
RSI_PUBLICATION = publication.RSI_THRESHOLD_SECONDS  # §5.4 [fwa]
RSS_AVAILABILITY = 0.99999  # §6.1 [wzz]
RSS_LATENCY = {"udp": 0.150, "tcp": 0.300}  # §6.2 [uwf] [lmx]
RSS_PUBLICATION = publication.RSS_THRESHOLD_SECONDS  # §6.4 [zkl]
CORRECTNESS = 1.0  # §5.3 [ahw], §6.3 [gfh]
CORRECTNESS_METRIC = "publiccore_root_correctness_ratio"  # {country, letter}, when measured
RSS = "RSS"  # the ``letter`` of the system rows


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    """One metric of one letter (or of the RSS) in one month."""

    metric: Literal["availability", "latency", "publication latency", "correctness"]
    letter: str  # a–m, or RSS
    family: str  # "" where the metric pools the families
    transport: str  # "" where it pools the transports
    value: float | None  # ratio or seconds; None: no data / not measured
    threshold: float
    unit: Literal["ratio", "seconds"]
    verdict: Verdict
    measurements: int | None = None  # RSSAC047's precision: the values behind it, unweighted


@dataclasses.dataclass(frozen=True, slots=True)
class Month:
    """The table of one calendar month (``since``/``until`` clipped to the report period)."""

    month: dt.date  # its first day
    since: dt.datetime
    until: dt.datetime
    records: int  # root-dns records of the country in it
    cells: tuple[Cell, ...]

    @property
    def partial(self) -> bool:
        """True when the report period covers only part of the month."""
        return self.since != _month_start(self.month) or self.until != _month_start(
            _next_month(self.month)
        )

    def cell(self, metric: str, letter: str, family: str = "", transport: str = "") -> Cell:
        """The cell of ``metric`` for ``letter`` (raises KeyError when there is none)."""
        for c in self.cells:
            if (c.metric, c.letter, c.family, c.transport) == (metric, letter, family, transport):
                return c
        raise KeyError((metric, letter, family, transport))


def _month_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def months(
    since: dt.datetime, until: dt.datetime
) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    """(first day, start, end) of every calendar month overlapping [since, until), clipped."""
    out = []
    day = dt.date(since.year, since.month, 1)
    while _month_start(day) < until:
        start = max(since, _month_start(day))
        stop = min(until, _month_start(_next_month(day)))
        if start < stop:
            out.append((day, start, stop))
        day = _next_month(day)
    return out


def _verdict(value: float | None, threshold: float, *, at_most: bool) -> Verdict:
    if value is None:
        return "no data"
    ok = value <= threshold if at_most else value >= threshold
    return "pass" if ok else "fail"


def build(
    partition: derive_root.Partition,
    *,
    country: str,
    since: dt.datetime,
    until: dt.datetime,
    max_asn_share: float,
    now: dt.datetime | None = None,
) -> list[Month]:
    """The monthly table of ``country`` over [since, until), from ``partition`` (the country's
    buckets folded per part, every month's bounds among its bounds) and the store's serials.
    Publication latency follows each month's serial changes up to a day past its end, but not
    past ``now``."""
    out = []
    for day, start, stop in months(since, until):
        a, b = start.timestamp(), stop.timestamp()
        series = catalogue.root_series(partition.compute(a, b, max_asn_share=max_asn_share))
        # correctness verdicts the deriver stored for the month's records (RSSAC047 §5.3)
        series[CORRECTNESS_METRIC] = {
            key: value
            for key, value in derive_correctness.correctness(
                typing.cast(derive_correctness.CorrectnessStore, partition.store),
                since=start.timestamp(),
                until=stop.timestamp(),
            )[0].items()
            if key[0] == country
        }
        horizon = stop.timestamp() + publication.LOOKAHEAD_SECONDS
        if now is not None:
            horizon = min(horizon, now.timestamp())
        pub = publication.measure(
            partition.store,
            since=start.timestamp(),
            until=stop.timestamp(),
            horizon=max(horizon, stop.timestamp()),
            country=country,
        )
        records = int(series["publiccore_aggregate_records"].get((country, "root-dns"), 0))
        out.append(
            Month(
                month=day,
                since=start,
                until=stop,
                records=records,
                cells=tuple(
                    cells_of(series, pub, country, sizes=sample_sizes(partition.folded(a, b)))
                ),
            )
        )
    return out


Sizes = Mapping[tuple[str, str, str, str], int]  # (metric, letter or RSS, family, transport)


def sample_sizes(folded: derive_state.WindowState) -> dict[tuple[str, str, str, str], int]:
    """RSSAC047's precision (the number of aggregated measurements, unweighted) of a window's
    sums: queries sent (availability) and answered (latency) per letter × family × transport,
    and vantage point × interval pairs (probe rounds) for the RSS figures (those with an answer
    for the RSS latency)."""
    out: dict[tuple[str, str, str, str], int] = collections.defaultdict(int)
    for sums in folded.countries.values():
        for (letter, family, transport), n in sums.sent.items():
            out[("availability", letter, family, transport)] += n
        for (letter, family, transport), n in sums.answered.items():
            out[("latency", letter, family, transport)] += n
        for parts in sums.rounds.values():
            # a round's parts: bucket, family, transport, ASN, letters, RTTs
            answered_in = {(p[1], p[2]) for p in parts if p[5]}
            for family, transport in {(p[1], p[2]) for p in parts}:
                out[("availability", RSS, family, transport)] += 1
                out[("latency", RSS, family, transport)] += (family, transport) in answered_in
    return dict(out)


def cells_of(
    series: catalogue.Series,
    pub: publication.PublicationLatency,
    country: str,
    *,
    sizes: Sizes | None = None,
) -> list[Cell]:
    """Every cell of one month from its ``compute`` series, publication measurements and
    sample sizes (``sample_sizes``)."""
    sizes = sizes or {}
    reach = series["publiccore_root_reachable_ratio"]
    rtt = series["publiccore_root_rtt_seconds"]
    rss_availability = series.get("publiccore_root_rss_availability_ratio", {})
    rss_latency = series.get("publiccore_root_rss_latency_seconds", {})
    correctness = series.get(CORRECTNESS_METRIC, {})
    per_letter, counts = pub.per_letter(), pub.counts()
    # correctness is "not measured" until the country has a value in the month
    measured = any(k[0] == country for k in correctness)
    cells: list[Cell] = []

    def add(
        metric: Any, letter: str, family: str, transport: str, value: float | None, **kw: Any
    ) -> None:
        at_most = metric != "availability" and metric != "correctness"
        threshold = kw["threshold"]
        verdict = kw.get("verdict") or _verdict(value, threshold, at_most=at_most)
        n = kw.get("n", sizes.get((metric, letter, family, transport), 0))
        cells.append(
            Cell(
                metric,
                letter,
                family,
                transport,
                value,
                threshold,
                "ratio" if metric in ("availability", "correctness") else "seconds",
                verdict,
                n,
            )
        )

    for letter in LETTERS:
        for family in FAMILIES:
            for transport in TRANSPORTS:
                value = reach.get((country, letter, family, transport))
                add("availability", letter, family, transport, value, threshold=RSI_AVAILABILITY)
        for family in FAMILIES:
            for transport in TRANSPORTS:
                value = rtt.get((country, letter, family, transport, repr(0.5)))
                add("latency", letter, family, transport, value, threshold=RSI_LATENCY[transport])
        add(
            "publication latency",
            letter,
            "",
            "",
            per_letter.get(letter),
            threshold=RSI_PUBLICATION,
            n=counts.get(letter, 0),
        )
        add(
            "correctness",
            letter,
            "",
            "",
            correctness.get((country, letter)),
            threshold=CORRECTNESS,
            verdict=None if measured else "not measured",
            n=None,
        )
    for family in FAMILIES:
        for transport in TRANSPORTS:
            value = rss_availability.get((country, family, transport))
            add("availability", RSS, family, transport, value, threshold=RSS_AVAILABILITY)
    for family in FAMILIES:
        for transport in TRANSPORTS:
            value = rss_latency.get((country, family, transport))
            add("latency", RSS, family, transport, value, threshold=RSS_LATENCY[transport])
    add(
        "publication latency",
        RSS,
        "",
        "",
        pub.rss(),
        threshold=RSS_PUBLICATION,
        n=len(pub.measurements),
    )
    add("correctness", RSS, "", "", None, threshold=CORRECTNESS, verdict="not measured", n=None)
    return cells


# --- output ----------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    *(("availability", f, t, f"avail. {f[2:]} {t.upper()}") for f in FAMILIES for t in TRANSPORTS),
    *(("latency", f, t, f"latency {f[2:]} {t.upper()}") for f in FAMILIES for t in TRANSPORTS),
    ("publication latency", "", "", "publication latency"),
    ("correctness", "", "", "correctness"),
)


def _shown(cell: Cell) -> str:
    """An RSI cell shows its verdict only (RSSAC047 [cpm]); an RSS cell its value too ([nuc])."""
    if cell.letter != RSS or cell.value is None:
        return cell.verdict
    if cell.unit == "ratio":
        return f"{100 * cell.value:.4f} % {cell.verdict}"
    if cell.metric == "publication latency":
        return f"{cell.value / 60:.0f} min {cell.verdict}"
    return f"{1000 * cell.value:.1f} ms {cell.verdict}"


def table(month: Month) -> list[dict[str, str]]:
    """One row per letter and one for the RSS, a column per metric (for Markdown and HTML)."""
    rows = []
    for letter in (*LETTERS, RSS):
        row = {"letter": letter}
        for metric, family, transport, title in _COLUMNS:
            row[title] = _shown(month.cell(metric, letter, family, transport))
        rows.append(row)
    return rows


def heading(month: Month) -> str:
    """The month's title line: the month, its clipped span when partial, its sample size."""
    span = (
        f" (partial: {month.since:%Y-%m-%d %H:%M} – {month.until:%Y-%m-%d %H:%M} UTC)"
        if month.partial
        else ""
    )
    return f"{month.month:%Y-%m}{span}: {month.records} root-dns records"


THRESHOLDS_NOTE = (
    "RSSAC047 v2 thresholds: RSI availability ≥ 96 % per family and transport (§5.1), median "
    "latency ≤ 250 ms UDP / 500 ms TCP (§5.2), correctness 100 % (§5.3), publication latency "
    "≤ 65 min (§5.4); RSS availability ≥ 99.999 % (§6.1), latency ≤ 150 ms UDP / 300 ms TCP "
    "(§6.2), correctness 100 % (§6.3), publication latency ≤ 35 min (§6.4). Letters show pass or "
    "fail only, the RSS row its value too (§4.1); monthly.csv has every value and its sample "
    "size. From this country's vantage points, weighted per probe ASN (M-sampling); latency "
    "medians are read from log bins, within 1 % (§4.1: precision limits); publication latency "
    "in 5-minute steps (M-root-monthly). Correctness: not measured until it is."
)


def markdown(table_months: Sequence[Month]) -> str:
    """The section as Markdown (one table per month; a month without data says so)."""
    parts = ["\n## RSSAC047 monthly pass/fail (M-root-monthly)\n", THRESHOLDS_NOTE + "\n"]
    for month in table_months:
        parts.append(f"\n### {heading(month)}\n\n")
        if month.records == 0:
            parts.append("_no data_: no root-dns record from this country in the month\n")
            continue
        rows = table(month)
        head = list(rows[0])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def values(table_months: Sequence[Month], *, country: str) -> list[dict[str, object]]:
    """Every cell as numbers, one row each (monthly.csv): value None where there is none."""
    return [
        {
            "country": country,
            "month": f"{m.month:%Y-%m}",
            "since": m.since.isoformat(),
            "until": m.until.isoformat(),
            "letter": c.letter,
            "metric": c.metric,
            "family": c.family,
            "transport": c.transport,
            "value": c.value,
            "unit": c.unit,
            "threshold": c.threshold,
            "verdict": c.verdict,
            "measurements": c.measurements,
        }
        for m in table_months
        for c in m.cells
    ]
