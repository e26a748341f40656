"""Reports v2 formatting: the impact, profile and citation sections in Markdown and HTML.

``exporters.report`` calls these when its ``Report`` carries ``extra`` (an
``exporters.impact_report.Extra``) and ``provenance``; the HTML page is self-contained (inline
SVG charts, inline CSS) and prints to PDF (tables wrap, figures do not split).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from publiccore.collectors.impact_commands import table_rows
from publiccore.exporters import impact_report as ir

if TYPE_CHECKING:
    from publiccore.exporters.report import Report

CSS = """
body{font-family:"DejaVu Sans",Verdana,sans-serif;max-width:60rem;margin:1rem auto;
padding:0 1rem;color:#111;line-height:1.45;font-size:15px}
h1{font-size:1.45rem}h2{font-size:1.2rem;margin-top:1.6rem;border-bottom:1px solid #bbb}
h3{font-size:1rem}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:.78rem;margin:.4rem 0}
th,td{border:1px solid #c8c8c8;padding:2px 4px;text-align:left;vertical-align:top;
overflow-wrap:anywhere;word-break:break-word}
th{background:#f0f0f0}
th:first-child{width:22%}
figure{margin:.6rem 0;page-break-inside:avoid;break-inside:avoid}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.8rem;color:#444}
code,.cmd{overflow-wrap:anywhere;word-break:break-all;font-size:.8rem}
.note{color:#444;font-size:.85rem}
@media print{body{max-width:none;font-size:11pt}h2,h3{break-after:avoid}tr{break-inside:avoid}}
"""


def _extra(report: Report) -> ir.Extra:
    assert report.extra is not None
    return report.extra


def _settings_line(report: Report) -> str:
    s = (report.provenance or {}).get("impact_settings", {})
    return (
        f"Median of the valid days in the {s.get('before_days')} days before vs the "
        f"{s.get('after_days')} days after the date, leaving out a guard band of ±"
        f"{s.get('guard_days')} day(s) (the whole month for month-precision events); 95 % "
        f"interval by moving-block bootstrap ({s.get('resamples')} resamples, blocks of "
        f"{s.get('block_days')} days, seed {s.get('seed')}); placebo calibration at up to "
        f"{s.get('placebo_count')} dates of the same series away from every event (seed "
        f"{s.get('seed')}). *Notable* = outside the central 95 % of the placebo changes. Fewer "
        f"than {s.get('min_days')} valid days on a side: insufficient data. Changes are "
        "associated with the date (the series changed around it), never attributed to it."
    )


def has_data(report: Report) -> bool:
    """Whether the country has any daily series or root records in the period."""
    extra = _extra(report)
    since, until = extra.period
    in_period = any(since <= p.day < until for s in extra.series.values() for p in s.points)
    return in_period or bool(report.daily_availability) or bool(report.observations)


def file_names(report: Report) -> list[str]:
    """Names of the files reports v2 add."""
    names = ["impact.csv", "profile.csv", "sensitivity.csv", "change_points.csv"]
    names.append("provenance.json")
    for r in _extra(report).impacts:
        names += [ir.chart_name(r) + ".png", ir.chart_name(r) + ".csv"]
    return names


def _csv(rows: Sequence[Mapping[str, object]]) -> str:
    from publiccore.exporters.report import _csv as report_csv

    return report_csv(rows)


def files(report: Report) -> dict[str, str | bytes]:
    """impact.csv, profile.csv, sensitivity.csv, per-event PNG chart + CSV, provenance.json."""
    extra = _extra(report)
    out: dict[str, str | bytes] = {
        "impact.csv": _csv(ir.impact_values(extra)),
        "profile.csv": _csv(ir.profile_values(extra)),
        "sensitivity.csv": _csv(ir.sensitivity_values({extra.country: extra.profile_scores})),
    }
    out["change_points.csv"] = _csv(
        [{"dimension": name, "day": day.isoformat()} for name, day in extra.unexplained]
    )
    for r in extra.impacts:
        out[ir.chart_name(r) + ".png"] = ir.chart_png(extra, r)
        out[ir.chart_name(r) + ".csv"] = _csv(ir.chart_values(extra, r))
    if report.provenance is not None:
        out["provenance.json"] = ir.provenance_json(report.provenance)
    return out


def _md_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_no data_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[h] for h in head) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def profile_rows(extra: ir.Extra) -> list[dict[str, str]]:
    return [
        {
            "dimension": str(r["dimension"]),
            "score (0–1, 1 = more fragmented)": _num(r["score"]),
            "days": str(r["days"]),
            "scaling": str(r["scale"]),
            "source definition": str(r["source_definition"]),
        }
        for r in ir.profile_values(extra)
    ]


def sensitivity_rows(extra: ir.Extra) -> list[dict[str, str]]:
    return [
        {
            "dimension": str(r["dimension"]),
            "weight ×": f"{r['weight_factor']:g}",
            "composite change": _num(r["largest_composite_change"], 4),
        }
        for r in ir.sensitivity_values({extra.country: extra.profile_scores})
    ]


def _no_data_line(report: Report) -> str:
    return (
        f"**No data**: the store has no root-dns records and no BGP or path observations for "
        f"{report.country} in this period, so nothing is shown (absent is not zero)."
    )


def markdown(report: Report) -> str:
    """The impact, profile and citation sections as Markdown."""
    extra = _extra(report)
    parts = ["\n## Event impact (M-impact)\n"]
    if not has_data(report):
        parts.append(_no_data_line(report) + "\n")
    parts.append(_settings_line(report) + "\n")
    if not extra.impacts:
        parts.append(f"_No events of {extra.country} in the dataset for this period._\n")
    for r in extra.impacts:
        parts.append(f"\n### {r.windows.at} {r.title} (`{r.event_id}`)\n")
        w = r.windows
        parts.append(
            f"Before {w.before[0]} – {w.before[1]}, after {w.after[0]} – {w.after[1]}, "
            f"excluded {w.band[0]} – {w.band[1]}.\n"
        )
        parts.append(_md_table(table_rows(r)))
        parts.append(
            f"\nChart: {ir.chart_name(r)}.png (data: {ir.chart_name(r)}.csv; before window "
            "shaded blue, after orange, change points red).\n"
        )
    parts.append("\n### Change points away from any event\n")
    if extra.unexplained:
        parts.append("".join(f"- {day} {name}\n" for name, day in extra.unexplained))
    else:
        parts.append("_none_\n")
    parts.append("\n## Fragmentation profile (M-profile)\n")
    parts.append(
        "Each dimension scaled 0–1 (1 = more fragmented; scaling rules in docs/methodology.md), "
        "mean over the period's days. The composite (equal weights) is a convenience; the "
        "dimensions are the product.\n"
    )
    parts.append(_md_table(profile_rows(extra)))
    parts.append("\nSensitivity of the composite to each weight (×0.5, ×1.5):\n")
    parts.append(_md_table(sensitivity_rows(extra)))
    parts.append(cite_markdown(report))
    return "\n".join(parts)


def cite_markdown(report: Report) -> str:
    """The "How to cite and reproduce" section."""
    prov = report.provenance or {}
    return (
        "\n## How to cite and reproduce\n\n"
        f"{prov.get('citation', '')}\n\n"
        f"Regenerate with:\n\n    {prov.get('command', '')}\n\n"
        "provenance.json lists the software version, configuration hash, store, query windows, "
        "record counts by source, probe and probe ASN, imported files with SHA-256, the "
        "definitions and the random seeds.\n"
    )


# --- HTML ---------------------------------------------------------------------------------


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<p class='note'>no data</p>"
    head = list(rows[0])
    out = ["<table><thead><tr>", *(f"<th>{_h(c)}</th>" for c in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_h(row[c])}</td>" for c in head) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_page(report: Report) -> str:
    """The whole report as one self-contained HTML page."""
    from publiccore.exporters import report as rp

    c = report.country
    records, probes, asns, top = rp._sample(report)
    r = report.root
    integrity = {
        o: r["publiccore_root_integrity_ratio"].get((c, o))
        for o in ("iana", "bogus", "alternate", "unsigned", "no-answer")
    }
    title = (
        f"publiccore report: {c}, {report.since:%Y-%m-%d %H:%M} – {report.until:%Y-%m-%d %H:%M} UTC"
    )
    body = [
        f"<h1>{_h(title)}</h1>",
        f"<p class='note'>Figures as of {report.generated:%Y-%m-%d %H:%M:%S} UTC, by publiccore "
        f"{_h(rp.__version__)} from {_h(report.store_label or 'the store')}. Definitions: "
        "docs/methodology.md.</p>",
    ]
    if report.extra is not None and not has_data(report):
        body.append(f"<p><strong>{_h(_no_data_line(report).replace('**', ''))}</strong></p>")
    body += [
        "<h2>Sample</h2>",
        f"<p>{records} root-dns records ({_h(rp.sources_note(report.settings))}) from {probes} "
        f"probes in {asns} probe ASNs; "
        f"{_h(rp.sampling_note(asns, top, report.settings.max_asn_share))} (M-sampling).</p>",
        "<h2>Root servers (M-root-reachability, M-root-latency, M-root-site, M-root-rss)</h2>",
        f"<p>Over the whole period: "
        f"{int(r['publiccore_root_letters_available'].get((c,), 0))} letters met the RSSAC047 "
        "availability threshold (96 %); rounds with at least 8 of 13 letters answering: "
        f"{_h(rp._pct(r['publiccore_root_system_available_ratio'].get((c,))))}.</p>",
        f"<figure>{rp.availability_svg(report)}</figure>",
        _html_table(rp.root_table(report)),
        *_html_monthly(report),
        "<h2>Root integrity (M-root-integrity)</h2>",
        "<p>" + _h(", ".join(f"{o}: {rp._pct(v)}" for o, v in integrity.items())) + "</p>",
        "<h2>Routing and paths (M-bgp-country-visibility, M-bgp-upstreams, "
        "M-path-border-crossings)</h2>",
        _html_table(rp._bgp_rows(report)),
        "<h2>Regulatory events in the period (country and international)</h2>",
    ]
    if report.events:
        body.append("<ul>")
        body += [
            f"<li>{e.date} <strong>{_h(e.title)}</strong> ({_h(e.kind)}, {_h(e.country)}, "
            f"confidence {_h(e.confidence)}; <code>{_h(e.id)}</code>) — "
            f"<span class='cmd'>{_h(e.sources[0])}</span></li>"
            for e in report.events
        ]
        body.append("</ul>")
    else:
        body.append("<p class='note'>none in the dataset</p>")
    if report.extra is not None:
        body += _html_extra(report)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_h(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _html_monthly(report: Report) -> list[str]:
    """The RSSAC047 monthly pass/fail tables (exporters.rssac_monthly)."""
    from publiccore.exporters import rssac_monthly as rm

    out = [
        "<h2>RSSAC047 monthly pass/fail (M-root-monthly)</h2>",
        f"<p class='note'>{_h(rm.THRESHOLDS_NOTE)}</p>",
    ]
    for month in report.monthly:
        out.append(f"<h3>{_h(rm.heading(month))}</h3>")
        out.append(_html_table(rm.table(month)) if month.records else "<p>no data</p>")
    return out


def _html_extra(report: Report) -> list[str]:
    extra = _extra(report)
    out = ["<h2>Event impact (M-impact)</h2>", f"<p class='note'>{_h(_settings_line(report))}</p>"]
    if not extra.impacts:
        out.append(f"<p>No events of {_h(extra.country)} in the dataset for this period.</p>")
    for r in extra.impacts:
        w = r.windows
        out += [
            f"<h3>{w.at} {_h(r.title)} (<code>{_h(r.event_id or '')}</code>)</h3>",
            f"<p class='note'>Before {w.before[0]} – {w.before[1]}, after {w.after[0]} – "
            f"{w.after[1]}, excluded {w.band[0]} – {w.band[1]}.</p>",
            _html_table(table_rows(r)),
            f"<figure class='chart'>{ir.chart_svg(extra, r)}<figcaption>Before window shaded "
            "blue, after window orange, event date dashed, change points red. Data: "
            f"{_h(ir.chart_name(r))}.csv</figcaption></figure>",
        ]
    out.append("<h3>Change points away from any event</h3>")
    if extra.unexplained:
        out.append(
            "<ul>" + "".join(f"<li>{d} {_h(n)}</li>" for n, d in extra.unexplained) + "</ul>"
        )
    else:
        out.append("<p class='note'>none</p>")
    out += [
        "<h2>Fragmentation profile (M-profile)</h2>",
        "<p class='note'>Each dimension scaled 0–1 (1 = more fragmented), mean over the "
        "period's days. The composite (equal weights) is a convenience; the dimensions are the "
        "product.</p>",
        _html_table(profile_rows(extra)),
        "<p class='note'>Sensitivity of the composite to each weight (×0.5, ×1.5):</p>",
        _html_table(sensitivity_rows(extra)),
    ]
    prov = report.provenance or {}
    out += [
        "<h2>How to cite and reproduce</h2>",
        f"<p>{_h(str(prov.get('citation', '')))}</p>",
        f"<p>Regenerate with: <code class='cmd'>{_h(str(prov.get('command', '')))}</code></p>",
        "<p class='note'>provenance.json lists the software version, configuration hash, "
        "store, query windows, record counts by source, probe and probe ASN, imported files "
        "with SHA-256, the definitions and the random seeds.</p>",
    ]
    return out
