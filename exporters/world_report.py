"""The world report (``publiccore report --world``): one row per country with data.

Per country over the period: sample sizes (root-dns records, the largest daily probe and probe
ASN counts, BGP days), the profile dimensions (M-profile, period means) and composite, and the
events of the period with how many of their changes are notable (M-impact). The composite's
sensitivity to each weight (±50 %) is computed across the countries (Spearman rank correlation
with the base ranking, largest rank shift).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from publiccore.collectors import impact as imp
from publiccore.collectors import profile as prof
from publiccore.collectors import series as ser
from publiccore.exporters import impact_report as ir
from publiccore.exporters import report_sections as rs

from publiccore import __version__
from publiccore import config as cfg
from publiccore import events as ev
from publiccore.store import Store

DEFINITIONS: tuple[str, ...] = ("M-sampling", "M-impact", "M-profile")


@dataclasses.dataclass(frozen=True, slots=True)
class World:
    since: dt.datetime
    until: dt.datetime
    extras: tuple[ir.Extra, ...]


def build(
    store: Store,
    *,
    since: dt.datetime,
    until: dt.datetime,
    settings: cfg.Settings,
    events: Sequence[ev.Event],
) -> World:
    """Every country with data in the period, with its impact and profile."""
    s = settings.impact
    span = dt.timedelta(days=s.placebo_span_days)
    start, end = since.date(), until.date()
    read = (start - span, end + span)
    by_country = ser.all_country_series(
        store,
        since=read[0],
        until=read[1],
        settings=settings.aggregate,
        thresholds=ser.thresholds_from(s),
    )
    extras = []
    for country, series in sorted(by_country.items()):
        if not any(start <= p.day < end for x in series.values() for p in x.points):
            continue
        chosen = [e for e in events if e.country == country and start <= e.date < end]
        breaks = imp.all_breaks(series, s)
        days = tuple(d for d in prof.profile(series) if start <= d.day < end)
        extras.append(
            ir.Extra(
                country=country,
                impacts=tuple(
                    imp.event_impact(series, e, settings=s, events=events, breaks=breaks)
                    for e in chosen
                ),
                series=series,
                period=(start, end),
                profile_days=days,
                profile_scores=prof.period_scores(days),
                unexplained=(),
                read_window=read,
            )
        )
    return World(since=since, until=until, extras=tuple(extras))


def rows(world: World) -> list[dict[str, Any]]:
    """One row per country (numbers; None where there is no data)."""
    out = []
    start, end = world.since.date(), world.until.date()
    for x in world.extras:
        root = x.series.get("root_availability")
        points = [p for p in root.points if start <= p.day < end] if root else []
        row: dict[str, Any] = {
            "country": x.country,
            "root_records": sum(p.sample.records or 0 for p in points) if points else None,
            "max_daily_probes": max((p.sample.probes or 0 for p in points), default=None),
            "max_daily_probe_asns": max((p.sample.probe_asns or 0 for p in points), default=None),
        }
        for dim in prof.PROFILE_DIMENSIONS:
            row[dim] = x.profile_scores.get(dim)
        row["composite"] = prof.composite(x.profile_scores, prof.DEFAULT_WEIGHTS)
        row["events"] = len(x.impacts)
        row["events_with_notable_change"] = sum(
            any(m.notable for m in r.metrics) for r in x.impacts
        )
        out.append(row)
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _short(name: str) -> str:
    return name.replace("_", " ")


def table(world: World) -> list[dict[str, str]]:
    return [{_short(k): _fmt(v) for k, v in row.items()} for row in rows(world)]


def sensitivity(world: World) -> list[dict[str, Any]]:
    return ir.sensitivity_values({x.country: x.profile_scores for x in world.extras})


def markdown(world: World, prov: Mapping[str, Any], *, store_label: str) -> str:
    """The world report as Markdown."""
    parts = [
        f"# publiccore world report, {world.since:%Y-%m-%d %H:%M} – "
        f"{world.until:%Y-%m-%d %H:%M} UTC\n",
        f"Figures as of {world.until:%Y-%m-%d %H:%M} UTC, by publiccore {__version__} from "
        f"{store_label or 'the store'}. Definitions: docs/methodology.md (M-profile, M-impact, "
        "M-sampling).\n",
        "## Countries\n",
        "Profile scores 0–1 (1 = more fragmented), means over the period; the composite is "
        "a convenience. Changes around events are associated with them, not attributed.\n",
    ]
    if world.extras:
        parts.append(rs._md_table(table(world)))
    else:
        parts.append("**No data**: no country has records or observations in this period.\n")
    parts.append("\n## Sensitivity of the composite ranking (weights ×0.5, ×1.5)\n")
    parts.append(rs._md_table([{k: _fmt(v) for k, v in r.items()} for r in sensitivity(world)]))
    parts.append(
        "\n## How to cite and reproduce\n\n"
        f"{prov.get('citation', '')}\n\nRegenerate with:\n\n    {prov.get('command', '')}\n"
    )
    return "\n".join(parts)


def html_page(world: World, prov: Mapping[str, Any], *, store_label: str) -> str:
    """The world report as one self-contained HTML page."""
    h = html.escape
    title = (
        f"publiccore world report, {world.since:%Y-%m-%d %H:%M} – {world.until:%Y-%m-%d %H:%M} UTC"
    )
    body = [
        f"<h1>{h(title)}</h1>",
        f"<p class='note'>Figures as of {world.until:%Y-%m-%d %H:%M} UTC, by publiccore "
        f"{h(__version__)} from {h(store_label or 'the store')}.</p>",
        "<h2>Countries</h2>",
        "<p class='note'>Profile scores 0–1 (1 = more fragmented), means over the period; the "
        "composite is a convenience.</p>",
        rs._html_table(table(world))
        if world.extras
        else "<p><strong>No data</strong>: no country has records or observations.</p>",
        "<h2>Sensitivity of the composite ranking (weights ×0.5, ×1.5)</h2>",
        rs._html_table([{k: _fmt(v) for k, v in r.items()} for r in sensitivity(world)]),
        "<h2>How to cite and reproduce</h2>",
        f"<p>{h(str(prov.get('citation', '')))}</p>",
        f"<p>Regenerate with: <code class='cmd'>{h(str(prov.get('command', '')))}</code></p>",
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{h(title)}</title><style>{rs.CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def write(
    world: World, prov: Mapping[str, Any], directory: pathlib.Path, *, store_label: str
) -> list[pathlib.Path]:
    """Write report.md, report.html, world.csv, sensitivity.csv, provenance.json."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": markdown(world, prov, store_label=store_label),
        "report.html": html_page(world, prov, store_label=store_label),
        "world.csv": rs._csv(rows(world)),
        "sensitivity.csv": rs._csv(sensitivity(world)),
        "provenance.json": ir.provenance_json(prov),
    }
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
