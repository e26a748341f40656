"""Citable reports for one country and period: Markdown, HTML with SVG charts, CSV.

Every figure names its definition (docs/methodology.md), window, sample size and the software
version; the CSV files hold the numbers behind the tables and charts. The figures are computed
by ``collectors.aggregate`` over the whole period (root) or read from the stored observations
(BGP, paths), so they agree with /metrics and the OpenMetrics history.

Charts are SVG (no plotting library needed); PNG would need matplotlib.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import io
import itertools
import pathlib
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from publiccore.collectors import aggregate as agg
from publiccore.collectors.derive import root as derive_root
from publiccore.exporters import catalogue

from publiccore import __version__
from publiccore import events as ev
from publiccore.config import AggregateSettings
from publiccore.store import Store

DAY = 86400.0


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """What a report shows, before formatting."""

    country: str
    since: dt.datetime
    until: dt.datetime
    generated: dt.datetime
    root: catalogue.Series  # over the whole period
    daily_availability: dict[str, list[tuple[dt.date, float]]]  # letter → per-day RSSAC047
    observations: dict[str, list[tuple[dt.datetime, tuple[str, ...], float]]]  # exported name
    events: list[ev.Event]
    settings: AggregateSettings
    store_label: str
    extra: Any = None  # exporters.impact_report.Extra (reports v2: impact, profile)
    provenance: Mapping[str, Any] | None = None  # provenance.json
    monthly: Sequence[Any] = ()  # exporters.rssac_monthly.Month per calendar month


_DAY = dt.timedelta(days=1)


def build(
    store: Store,
    *,
    country: str,
    since: dt.datetime,
    until: dt.datetime,
    settings: AggregateSettings,
    events: Sequence[ev.Event] = (),
    store_label: str = "",
    now: dt.datetime | None = None,
) -> Report:
    """Compute the report's figures for ``country`` over [since, until)."""
    country = country.upper()
    # Each row is read and folded once, into its day; months and the period merge days.
    midnights = []
    day = since.date() + _DAY
    while (midnight := dt.datetime.combine(day, dt.time(0), dt.UTC)) < until:
        midnights.append(midnight)
        day += _DAY
    bounds = [since, *midnights, until]
    partition = derive_root.Partition.read(
        store, [b.timestamp() for b in bounds], country=country, sources=settings.sources
    )
    from publiccore.exporters import rssac_monthly

    monthly = rssac_monthly.build(
        partition,
        country=country,
        since=since,
        until=until,
        max_asn_share=settings.max_asn_share,
        now=now,
    )
    root = catalogue.root_series(
        partition.compute(
            since.timestamp(), until.timestamp(), max_asn_share=settings.max_asn_share
        )
    )
    daily: dict[str, list[tuple[dt.date, float]]] = collections.defaultdict(list)
    for start, stop in itertools.pairwise(bounds):
        figures = partition.compute(
            start.timestamp(), stop.timestamp(), max_asn_share=settings.max_asn_share
        ).country(country)
        for x in figures.letters if figures is not None else ():
            daily[x.letter].append((start.date(), x.availability_ratio))
    observations: dict[str, list[tuple[dt.datetime, tuple[str, ...], float]]] = {}
    for metric, name in catalogue.OBSERVED_METRICS.items():
        kept = []
        for o in store.iter_observations(
            metric=metric, subject_kind="country", subject=country, since=since, until=until
        ):
            named = catalogue.observation_labels(o)
            if named is not None:
                kept.append((o.time, named[1], o.value))
        if kept:
            observations[name] = kept
    chosen = [
        e for e in events if e.country in (country, "INT") and since.date() <= e.date < until.date()
    ]
    return Report(
        country=country,
        since=since,
        until=until,
        generated=now or until,
        root=root,
        daily_availability=dict(daily),
        observations=observations,
        events=chosen,
        settings=settings,
        store_label=store_label,
        monthly=monthly,
    )


def sources_note(settings: AggregateSettings) -> str:
    """Which record sources the root figures rest on, in words."""
    names = {"volunteer": "volunteer probes", "ripe-atlas": "RIPE Atlas imports"}
    said = " and ".join(names.get(s, s) for s in settings.sources)
    return f"from {said} only" if len(settings.sources) == 1 else f"from {said}, merged"


def sampling_note(asns: int, top_share: float, cap: float) -> str:
    """What the probe-ASN down-weighting (M-sampling) did to this sample, in words."""
    if asns == 0:
        return "no records, so no weighting"
    if cap < 1.0 and asns * cap < 1.0:
        return (
            f"with fewer than {1 / cap:g} ASNs the {_pct(cap)} cap cannot hold, so each "
            f"ASN was weighted to an equal share (the largest contributed {_pct(top_share)} "
            "of records)"
        )
    if top_share > cap + 1e-12:
        return (
            f"the largest ASN contributed {_pct(top_share)} of records and was "
            f"down-weighted to {_pct(cap)}"
        )
    return (
        f"the largest ASN contributed {_pct(top_share)} of records, within the "
        f"{_pct(cap)} cap, so no down-weighting"
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{1000 * value:.1f} ms"


def root_values(report: Report) -> list[dict[str, float | int | str | None]]:
    """One row per letter as numbers (ratios 0–1, seconds; None where there is no data)."""
    c = report.country
    r = report.root
    letters = sorted({k[1] for k in r["publiccore_root_availability_ratio"]})
    out: list[dict[str, float | int | str | None]] = []
    for letter in letters:
        availability = r["publiccore_root_availability_ratio"].get((c, letter))
        out.append(
            {
                "letter": letter,
                "availability_ratio": availability,
                "meets_threshold": "yes"
                if (availability or 0) >= agg.AVAILABILITY_THRESHOLD
                else "no",
                "median_udp_seconds": r["publiccore_root_median_latency_seconds"].get(
                    (c, letter, "udp")
                ),
                "median_tcp_seconds": r["publiccore_root_median_latency_seconds"].get(
                    (c, letter, "tcp")
                ),
                "sites": int(r["publiccore_root_sites"].get((c, letter), 0)),
                "in_country_site_ratio": r["publiccore_root_site_location_ratio"].get(
                    (c, letter, "in_country")
                ),
                "unknown_site_ratio": r["publiccore_root_site_location_ratio"].get(
                    (c, letter, "unknown")
                ),
            }
        )
    return out


def root_table(report: Report) -> list[dict[str, str]]:
    """``root_values`` for reading: percentages, milliseconds, dashes for no data."""

    def ratio(value: object) -> str:
        return _pct(value if isinstance(value, float | int) else None)

    def ms(value: object) -> str:
        return _ms(value if isinstance(value, float | int) else None)

    return [
        {
            "letter": str(v["letter"]),
            "availability": ratio(v["availability_ratio"]),
            "meets 96 %": str(v["meets_threshold"]),
            "median UDP": ms(v["median_udp_seconds"]),
            "median TCP": ms(v["median_tcp_seconds"]),
            "sites": str(v["sites"]),
            "in-country site": ratio(v["in_country_site_ratio"]),
            "unknown site": ratio(v["unknown_site_ratio"]),
        }
        for v in root_values(report)
    ]


def _sample(report: Report) -> tuple[int, int, int, float]:
    c, r = report.country, report.root
    get = lambda name: r[name].get((c, "root-dns"), 0.0)  # noqa: E731
    return (
        int(get("publiccore_aggregate_records")),
        int(get("publiccore_aggregate_probes")),
        int(get("publiccore_aggregate_probe_asns")),
        get("publiccore_aggregate_top_asn_share"),
    )


def _markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_no data_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[h] for h in head) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bgp_values(report: Report) -> list[dict[str, float | int | str]]:
    """One row per observed series in the period: first, last, min, median, points."""
    rows: list[dict[str, float | int | str]] = []
    for name, points in sorted(report.observations.items()):
        by_labels: dict[tuple[str, ...], list[tuple[dt.datetime, float]]] = collections.defaultdict(
            list
        )
        for t, labels, v in points:
            by_labels[labels].append((t, v))
        spec = catalogue.SPECS[name]
        for labels, series in sorted(by_labels.items()):
            series.sort()
            extra = ", ".join(
                f"{k}={v}" for k, v in zip(spec.labels, labels, strict=True) if k != "country" and v
            )
            values = [v for _, v in series]
            rows.append(
                {
                    "metric": name + (f" ({extra})" if extra else ""),
                    "first": values[0],
                    "last": values[-1],
                    "min": min(values),
                    "median": statistics.median(values),
                    "points": len(values),
                    "definition": spec.definition,
                }
            )
    return rows


def _bgp_rows(report: Report) -> list[dict[str, str]]:
    return [
        {k: f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in row.items()}
        for row in bgp_values(report)
    ]


def markdown(report: Report) -> str:
    """The report as Markdown."""
    records, probes, asns, top = _sample(report)
    from publiccore.exporters import rssac_monthly

    r, c = report.root, report.country
    integrity = {
        o: r["publiccore_root_integrity_ratio"].get((c, o))
        for o in ("iana", "bogus", "alternate", "unsigned", "no-answer")
    }
    parts = [
        f"# publiccore report: {c}, {report.since:%Y-%m-%d %H:%M} – "
        f"{report.until:%Y-%m-%d %H:%M} UTC\n",
        f"Figures as of {report.generated:%Y-%m-%d %H:%M:%S} UTC, by publiccore {__version__} from "
        f"{report.store_label or 'the store'}. Definitions: docs/methodology.md.\n",
        "## Sample\n",
        f"{records} root-dns records ({sources_note(report.settings)}) from {probes} probes in "
        f"{asns} probe ASNs; {sampling_note(asns, top, report.settings.max_asn_share)} "
        "(M-sampling).\n",
        "## Root servers (M-root-reachability, M-root-latency, M-root-site, M-root-rss)\n",
        f"Over the whole period: {int(r['publiccore_root_letters_available'].get((c,), 0))} "
        "letters met the RSSAC047 availability threshold (96 %); rounds with at least 8 of 13 "
        f"letters answering: {_pct(r['publiccore_root_system_available_ratio'].get((c,)))}.\n",
        _markdown_table(root_table(report)),
        rssac_monthly.markdown(report.monthly),
        "\n## Root integrity (M-root-integrity)\n",
        ", ".join(f"{o}: {_pct(v)}" for o, v in integrity.items()) + "\n",
        "\n## Routing and paths (M-bgp-country-visibility, M-bgp-upstreams, "
        "M-path-border-crossings)\n",
        _markdown_table(_bgp_rows(report)),
        "\n## Regulatory events in the period (country and international)\n",
    ]
    if report.events:
        parts += [
            f"- {e.date} **{e.title}** ({e.kind}, {e.country}, confidence "
            f"{e.confidence}; `{e.id}`) — {e.sources[0]}\n"
            for e in report.events
        ]
    else:
        parts.append("_none in the dataset_\n")
    from publiccore.exporters import report_sections

    if report.extra is not None:
        parts.append(report_sections.markdown(report))
    names = ["root.csv", "monthly.csv", "bgp.csv", "events.csv", "availability.svg"]
    names.append("availability.csv")
    if report.extra is not None:
        names += report_sections.file_names(report)
    parts.append("\n## Files\n\n" + ", ".join(names) + "\n")
    return "\n".join(parts)


def availability_svg(report: Report, *, width: int = 720, height: int = 240) -> str:
    """Daily RSSAC047 availability per letter as an SVG line chart (0.9–1 on the y axis)."""
    pad = 40
    days = sorted({d for series in report.daily_availability.values() for d, _ in series})
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="10">',
        f'<text x="{pad}" y="14">Daily availability per letter, {report.country} '
        f"(threshold 96 %)</text>",
    ]
    if not days:
        return "\n".join([*lines, '<text x="40" y="40">no data</text>', "</svg>"])
    low = 0.9

    def x(day: dt.date) -> float:
        span = max(1, (days[-1] - days[0]).days)
        return pad + (width - 2 * pad) * (day - days[0]).days / span

    def y(value: float) -> float:
        clamped = min(1.0, max(low, value))
        return height - pad - (height - 2 * pad) * (clamped - low) / (1 - low)

    threshold = y(agg.AVAILABILITY_THRESHOLD)
    lines.append(
        f'<line x1="{pad}" x2="{width - pad}" y1="{threshold:.1f}" '
        f'y2="{threshold:.1f}" stroke="red" stroke-dasharray="4"/>'
    )
    for value in (0.9, 0.95, 1.0):
        lines.append(f'<text x="4" y="{y(value) + 3:.1f}">{100 * value:.0f} %</text>')
    for i, (letter, series) in enumerate(sorted(report.daily_availability.items())):
        hue = (i * 360) // 13
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in series)
        lines.append(f'<polyline fill="none" stroke="hsl({hue},70%,40%)" points="{points}"/>')
        last_day, last = series[-1]
        lines.append(f'<text x="{x(last_day) + 3:.1f}" y="{y(last):.1f}">{letter}</text>')
    lines.append(f'<text x="{pad}" y="{height - 8}">{days[0]}</text>')
    lines.append(f'<text x="{width - pad - 60}" y="{height - 8}">{days[-1]}</text>')
    lines.append("</svg>")
    return "\n".join(lines)


def html_page(report: Report) -> str:
    """A self-contained HTML page (tables, inline SVG charts), readable printed to PDF."""
    from publiccore.exporters import report_sections

    return report_sections.html_page(report)


def _csv(rows: Sequence[Mapping[str, object]]) -> str:
    """CSV with plain numbers (full precision) and empty cells where there is no data."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()


def _monthly_csv(report: Report) -> str:
    from publiccore.exporters import rssac_monthly

    return _csv(rssac_monthly.values(report.monthly, country=report.country))


def _files(report: Report) -> dict[str, str | bytes]:
    """Every output file of the report by name (text or bytes)."""
    files: dict[str, str | bytes] = {
        "availability.svg": availability_svg(report),
        "root.csv": _csv([{"country": report.country, **row} for row in root_values(report)]),
        "bgp.csv": _csv(bgp_values(report)),
        "monthly.csv": _monthly_csv(report),
        "availability.csv": _csv(
            [
                {"letter": letter, "day": day.isoformat(), "availability_ratio": value}
                for letter, points in sorted(report.daily_availability.items())
                for day, value in points
            ]
        ),
        "events.csv": _csv(
            [
                {
                    "id": e.id,
                    "date": e.date.isoformat(),
                    "country": e.country,
                    "kind": e.kind,
                    "title": e.title,
                    "confidence": e.confidence,
                    "source": e.sources[0],
                }
                for e in report.events
            ]
        ),
    }
    if report.extra is not None:
        from publiccore.exporters import report_sections

        files.update(report_sections.files(report))
    return files


def write(report: Report, directory: pathlib.Path) -> list[pathlib.Path]:
    """Write report.md, report.html, the charts and the CSV files; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | bytes] = {
        "report.md": markdown(report),
        "report.html": html_page(report),
    }
    files.update(_files(report))
    paths = []
    for name, body in files.items():
        path = directory / name
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
        paths.append(path)
    return paths
