"""Reports v2: event impact, profile, charts (PNG + SVG), provenance, world report.

``build_extra`` reads the typed daily series (``collectors.series``) around the report period
and computes the event-impact section (M-impact) and the profile (M-profile);
``provenance`` states what the report was made from; ``chart_*`` draw with matplotlib (Agg,
DejaVu Sans, no dates in metadata, a fixed SVG hash salt) so the same store and arguments give
byte-identical files.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import io
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from publiccore.collectors import impact as imp
from publiccore.collectors import profile as prof
from publiccore.collectors import series as ser

from publiccore import __version__
from publiccore import config as cfg
from publiccore import events as ev
from publiccore.records import KINDS
from publiccore.store import Store, facts

CHART_METRICS: tuple[str, ...] = (
    "root_availability",
    "root_non_iana_share",
    "bgp_visible_slash24",
    "bgp_visibility_ratio_ipv4",
)
STYLE: Any = {  # matplotlib rcParams (typed as Literal keys there)
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "svg.hashsalt": "publiccore",
    "svg.fonttype": "none",
    "path.simplify": False,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Extra:
    """What reports v2 add for one country."""

    country: str
    impacts: tuple[imp.EventImpact, ...]
    series: ser.CountrySeries
    period: tuple[dt.date, dt.date]  # [since, until)
    profile_days: tuple[prof.ProfileDay, ...]  # inside the period
    profile_scores: Mapping[str, float]  # period means
    unexplained: tuple[tuple[str, dt.date], ...]
    read_window: tuple[dt.date, dt.date]  # the days of series read (placebo span included)


def build_extra(
    store: Store,
    *,
    country: str,
    since: dt.date,
    until: dt.date,
    settings: cfg.Settings,
    events: Sequence[ev.Event],
) -> Extra:
    """Event impact of every event of ``country`` in [since, until), the profile, change points."""
    s = settings.impact
    span = dt.timedelta(days=s.placebo_span_days)
    read = (since - span, until + span)
    series = ser.country_series(
        store,
        country=country,
        since=read[0],
        until=read[1],
        settings=settings.aggregate,
        thresholds=ser.thresholds_from(s),
    )
    chosen = [e for e in events if e.country == country and since <= e.date < until]
    breaks = imp.all_breaks(series, s)
    impacts = tuple(
        imp.event_impact(series, e, settings=s, events=events, breaks=breaks) for e in chosen
    )
    days = tuple(d for d in prof.profile(series) if since <= d.day < until)
    in_period = {name: tuple(d for d in b if since <= d < until) for name, b in breaks.items()}
    country_dates = [e.date for e in events if e.country in (country, "INT")]
    return Extra(
        country=country,
        impacts=impacts,
        series=series,
        period=(since, until),
        profile_days=days,
        profile_scores=prof.period_scores(days),
        unexplained=tuple(
            imp.unexplained(in_period, country_dates, window_days=s.change_point_window_days)
        ),
        read_window=read,
    )


# --- tables as numbers ---------------------------------------------------------------------------


def impact_values(extra: Extra) -> list[dict[str, Any]]:
    """One row per event × metric (numbers; None where there is no data)."""
    out = []
    for r in extra.impacts:
        for m in r.metrics:
            low, high = m.interval or (None, None)
            out.append(
                {
                    "event": r.event_id,
                    "date": r.windows.at.isoformat(),
                    "metric": m.metric,
                    "definition": m.definition,
                    "status": m.status,
                    "before": m.before,
                    "after": m.after,
                    "change": m.change,
                    "relative_change": m.relative_change,
                    "interval_low": low,
                    "interval_high": high,
                    "placebo_percentile": m.placebo.percentile if m.placebo else None,
                    "placebo_p_value": m.placebo.p_value if m.placebo else None,
                    "placebo_dates": m.placebo.dates if m.placebo else None,
                    "notable": None if m.notable is None else ("yes" if m.notable else "no"),
                    "n_before": m.n_before,
                    "n_after": m.n_after,
                    "records_before": m.sample_before.get("records"),
                    "records_after": m.sample_after.get("records"),
                    "change_points": " ".join(d.isoformat() for d in m.change_points),
                }
            )
    return out


def profile_values(extra: Extra) -> list[dict[str, Any]]:
    """One row per profile dimension: mean score over the period, days with a score."""
    counts = collections.Counter(k for d in extra.profile_days for k in d.scores)
    rows: list[dict[str, Any]] = [
        {
            "dimension": k,
            "definition": "M-profile",
            "source_definition": ser.BY_NAME[k].definition,
            "scale": ser.BY_NAME[k].scale,
            "score": v,
            "days": counts[k],
        }
        for k, v in extra.profile_scores.items()
    ]
    total = prof.composite(extra.profile_scores, prof.DEFAULT_WEIGHTS)
    if total is not None:
        rows.append(
            {
                "dimension": "composite (equal weights; a convenience)",
                "definition": "M-profile",
                "source_definition": "",
                "scale": "weighted mean",
                "score": total,
                "days": len(extra.profile_days),
            }
        )
    return rows


def sensitivity_values(scores: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """The ±50 % weight sensitivity as rows (see ``collectors.profile.sensitivity``)."""
    out = []
    for s in prof.sensitivity(scores):
        out.append(
            {
                "dimension": s.dimension,
                "weight_factor": s.factor,
                "spearman": s.spearman,
                "max_rank_shift": s.max_rank_shift,
                "largest_composite_change": max(
                    (abs(v) for v in s.composite_change.values()), default=0.0
                ),
            }
        )
    return out


def chart_values(extra: Extra, impact: imp.EventImpact) -> list[dict[str, Any]]:
    """The points behind an event's chart: day, metric, value, window it falls in."""
    w = impact.windows
    out = []
    for name in _chart_metrics(extra, impact):
        for p in extra.series[name].points:
            if not (w.before[0] - dt.timedelta(days=14) <= p.day <= w.after[1] + dt.timedelta(14)):
                continue
            where = (
                "before"
                if w.before[0] <= p.day <= w.before[1]
                else "after"
                if w.after[0] <= p.day <= w.after[1]
                else "excluded"
                if w.band[0] <= p.day <= w.band[1]
                else ""
            )
            out.append(
                {
                    "event": impact.event_id,
                    "metric": name,
                    "day": p.day.isoformat(),
                    "value": p.value,
                    "window": where,
                }
            )
    return out


def _chart_metrics(extra: Extra, impact: imp.EventImpact) -> list[str]:
    ok = [m for m in impact.metrics if m.status == "ok"]
    notable = [m.metric for m in ok if m.notable]
    rest = [name for name in CHART_METRICS if any(m.metric == name for m in ok)]
    chosen = list(dict.fromkeys(notable + rest))[:4]
    return [name for name in chosen if name in extra.series]


# --- charts ---------------------------------------------------------------------------------------


def _figure(extra: Extra, impact: imp.EventImpact) -> Any:
    names = _chart_metrics(extra, impact)
    w = impact.windows
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            max(1, len(names)), 1, figsize=(7.2, 1.6 * max(1, len(names)) + 0.4), sharex=True
        )
        axes = [axes] if not hasattr(axes, "__len__") else list(axes)
        lo = w.before[0] - dt.timedelta(days=14)
        hi = w.after[1] + dt.timedelta(days=14)
        if not names:
            axes[0].text(0.5, 0.5, "no data around this date", ha="center", va="center")
            axes[0].set_axis_off()
        for ax, name in zip(axes, names, strict=False):
            points = [p for p in extra.series[name].points if lo <= p.day <= hi]
            ax.axvspan(w.before[0], w.before[1] + dt.timedelta(days=1), color="#cfe3f7", lw=0)
            ax.axvspan(w.after[0], w.after[1] + dt.timedelta(days=1), color="#f7dccf", lw=0)
            ax.axvline(w.at, color="#444444", lw=0.8, ls="--")
            ax.plot(
                [p.day for p in points], [p.value for p in points], ".-", color="#1f4e79", lw=0.8
            )
            m = next(x for x in impact.metrics if x.metric == name)
            for d in m.change_points:
                ax.axvline(d, color="#c00000", lw=1.2)
            ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
            ax.grid(True, color="#dddddd", lw=0.5)
            ax.set_xlim(lo, hi)
        axes[-1].xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))
        axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        for label in axes[-1].get_xticklabels():
            label.set_rotation(20)
            label.set_horizontalalignment("right")
        title = f"{impact.country} {w.at} {impact.event_id or ''}: blue before, orange after, "
        fig.suptitle(title + "red change points", fontsize=8)
        fig.tight_layout()
    return fig


def chart_png(extra: Extra, impact: imp.EventImpact) -> bytes:
    """The event's chart as PNG (stable bytes: fixed size, fonts and metadata)."""
    fig = _figure(extra, impact)
    out = io.BytesIO()
    with plt.rc_context(STYLE):
        fig.savefig(out, format="png", dpi=100, metadata={"Software": "publiccore"})
    plt.close(fig)
    return out.getvalue()


def chart_svg(extra: Extra, impact: imp.EventImpact) -> str:
    """The event's chart as SVG text for inline use (no date, fixed ids)."""
    fig = _figure(extra, impact)
    out = io.StringIO()
    with plt.rc_context(STYLE):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": "publiccore"})
    plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg") :]


def chart_name(impact: imp.EventImpact) -> str:
    """File stem of an event's chart."""
    return f"impact-{impact.event_id or impact.windows.at.isoformat()}"


# --- provenance ----------------------------------------------------------------------------------


def config_hash(settings: cfg.Settings) -> str:
    """SHA-256 of the effective settings (TOML, without the line naming the file)."""
    text = cfg.to_toml(settings).split("\n", 1)[1]
    return hashlib.sha256(text.encode()).hexdigest()


def record_counts(
    store: Store, *, country: str | None, since: dt.datetime, until: dt.datetime
) -> dict[str, Any]:
    """Records in the period by kind and source, by probe and by probe ASN; distinct counts."""
    by_source: collections.Counter[str] = collections.Counter()
    probes: set[str] = set()
    asns: set[int] = set()
    by_probe: collections.Counter[str] = collections.Counter()
    by_asn: collections.Counter[str] = collections.Counter()
    for kind in KINDS:
        if kind == "root-dns" and _root_counts_from_buckets(
            store,
            country=country,
            since=since,
            until=until,
            into=(by_source, probes, asns, by_probe, by_asn),
        ):
            continue
        for record in store.iter_records(kind=kind, since=since, until=until, country=country):
            name = _source_label(record.source_name)
            by_source[f"{kind}/{name}"] += 1
            probes.add(record.probe.id)
            by_probe[record.probe.id] += 1
            if record.probe.asn is not None:
                asns.add(record.probe.asn)
            by_asn[str(record.probe.asn) if record.probe.asn is not None else "unknown"] += 1
    return {
        "by_kind_source": dict(sorted(by_source.items())),
        "probes": len(probes),
        "probe_asns": len(asns),
        "by_probe": dict(sorted(by_probe.items())),
        "by_probe_asn": dict(sorted(by_asn.items())),
    }


def _source_label(source_name: str) -> str:
    """How provenance names a record's source: a volunteer's is "publiccore-probe"."""
    return "publiccore-probe" if source_name == "volunteer" else source_name


def _root_counts_from_buckets(
    store: Store,
    *,
    country: str | None,
    since: dt.datetime,
    until: dt.datetime,
    into: tuple[
        collections.Counter[str],
        set[str],
        set[int],
        collections.Counter[str],
        collections.Counter[str],
    ],
) -> bool:
    """``record_counts``' root-dns figures summed from the buckets (records per ASN and
    source, per probe), not from each raw record; False (nothing added) when the buckets
    cannot give them exactly: bounds off the bucket grid, or records without facts in the
    period (their count differs from the stored records')."""
    low, high = since.timestamp(), until.timestamp()
    if facts.bucket_of(low) != low or facts.bucket_of(high) != high:
        return False
    records = store.fact_rows("agg_root_records", since=low, until=high, country=country)
    total = sum(int(r[5]) for r in records)
    if total != store.count_records(kind="root-dns", since=since, until=until, country=country):
        return False
    by_source, probes, asns, by_probe, by_asn = into
    # bucket, country, asn, source, outcome, n
    for _b, _c, asn, source, _outcome, n in records:
        name = _source_label(source)
        by_source[f"root-dns/{name}"] += int(n)
        if asn != facts.NO_ASN:
            asns.add(int(asn))
        by_asn[str(asn) if asn != facts.NO_ASN else "unknown"] += int(n)
    for _b, _c, _asn, _source, probe, n in store.fact_rows(
        "agg_root_probes", since=low, until=high, country=country
    ):
        probes.add(probe)
        by_probe[probe] += int(n)
    return True


def imported_files(store: Store) -> list[dict[str, Any]]:
    """Files named by the store's sources (MRT, imports) with their SHA-256 where stated."""
    out = []
    for source in ser.iter_sources(store):
        for f in source.meta.get("files") or []:
            if isinstance(f, dict) and f.get("file"):
                out.append(
                    {
                        "source": source.id,
                        "kind": source.kind,
                        "file": f.get("file"),
                        "sha256": f.get("sha256"),
                    }
                )
    return out


def regenerate_command(args: Sequence[str]) -> str:
    """The one shell command that regenerates the report."""
    return shlex.join(["publiccore", *args])


def provenance(
    store: Store,
    *,
    settings: cfg.Settings,
    store_label: str,
    country: str | None,
    since: dt.datetime,
    until: dt.datetime,
    extras: Sequence[Extra],
    command: Sequence[str],
    definitions: Sequence[str],
) -> dict[str, Any]:
    """What the report was made from (provenance.json), deterministic for the same input."""
    title = f"publiccore report: {country or 'world'}, {since:%Y-%m-%d} – {until:%Y-%m-%d}"
    return {
        "title": title,
        "software": {"name": "publiccore", "version": __version__},
        "configuration_sha256": config_hash(settings),
        "store": {
            "label": store_label,
            "records_in_period": record_counts(store, country=country, since=since, until=until),
        },
        "query_windows": {
            "period": [since.isoformat(), until.isoformat()],
            "series_read": {e.country: [d.isoformat() for d in e.read_window] for e in extras},
            "events": {
                r.event_id or r.windows.at.isoformat(): r.windows.to_json()
                for e in extras
                for r in e.impacts
            },
        },
        "imported_files": imported_files(store),
        "definitions": sorted(set(definitions)),
        "random_seeds": {
            "bootstrap": settings.impact.seed,
            "placebo": settings.impact.seed,
        },
        "impact_settings": {
            f.name: getattr(settings.impact, f.name) for f in dataclasses.fields(settings.impact)
        },
        "command": regenerate_command(command),
        "citation": (
            f"{title}. publiccore {__version__}, data as of {until:%Y-%m-%d %H:%M} UTC. "
            f"Regenerate: {regenerate_command(command)}"
        ),
    }


def provenance_json(data: Mapping[str, Any]) -> str:
    """provenance.json text (sorted keys, stable)."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
