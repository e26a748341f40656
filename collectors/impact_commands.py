"""``publiccore impact``: what changed around each regulatory event (M-impact), as a table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from publiccore import config as cfg
from publiccore.errors import InputError

if TYPE_CHECKING:
    from publiccore.collectors.impact import EventImpact


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``impact`` command."""
    p = sub.add_parser(
        "impact",
        help="what measurably changed around regulatory events (intervals, placebo checks)",
    )
    p.add_argument("--country", metavar="XX", help="ISO 3166-1 alpha-2")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--event", metavar="ID", help="an event id of the dataset")
    which.add_argument("--date", metavar="DATE", help="any date (YYYY-MM-DD)")
    which.add_argument("--all", action="store_true", help="every event of the dataset with data")
    p.add_argument("--metric", nargs="+", default=[], metavar="NAME", help="daily dimensions")
    p.add_argument("--before", metavar="DAYS", help="days before (e.g. 14d; default [impact])")
    p.add_argument("--after", metavar="DAYS", help="days after (e.g. 14d; default [impact])")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--store", metavar="PATH", help="SQLite store (default from configuration)")
    p.set_defaults(func=_impact)


def parse_days(text: str | None, option: str) -> int | None:
    """``14d`` or ``14`` → 14; None stays None; raise InputError."""
    if text is None:
        return None
    body = text[:-1] if text.endswith("d") else text
    if not body.isdigit() or int(body) < 1:
        raise InputError(f"{option}: expected a number of days like 14d, got {text!r}")
    return int(body)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "ratio":
        return f"{100 * value:.2f} %"
    if unit == "points":  # a difference of ratios: percentage points
        return f"{100 * value:+.2f} pp"
    if unit == "seconds":
        return f"{1000 * value:.1f} ms"
    return f"{value:.4g}"


def table_rows(result: EventImpact) -> list[dict[str, str]]:
    """One row per metric, formatted for reading (the same fields as the JSON)."""
    rows = []
    for m in result.metrics:
        unit = m.unit
        change_unit = "points" if unit == "ratio" else unit
        if m.status != "ok":
            rows.append(
                {
                    "metric": m.metric,
                    "before": "–",
                    "after": "–",
                    "change": m.note,
                    "95% interval": "",
                    "placebo pct": "",
                    "notable": "",
                    "n before/after": f"{m.n_before}/{m.n_after}",
                }
            )
            continue
        low, high = m.interval or (None, None)
        pct = m.placebo.percentile if m.placebo else None
        rows.append(
            {
                "metric": m.metric,
                "before": _fmt(m.before, unit),
                "after": _fmt(m.after, unit),
                "change": _fmt(m.change, change_unit)
                + (f" ({100 * m.relative_change:+.1f} %)" if m.relative_change is not None else ""),
                "95% interval": f"[{_fmt(low, change_unit)}, {_fmt(high, change_unit)}]",
                "placebo pct": "–" if pct is None else f"{pct:.1f}",
                "notable": {True: "yes", False: "no", None: "not calibrated"}[m.notable],
                "n before/after": f"{m.n_before}/{m.n_after}",
            }
        )
    return rows


def render_text(results: Sequence[EventImpact]) -> str:
    """Plain-text tables, one per event."""
    out: list[str] = []
    for r in results:
        w = r.windows
        head = f"{r.country}  {w.at}  {r.event_id or '(date)'}"
        out.append(head + (f"  {r.title}" if r.title else ""))
        out.append(
            f"  before {w.before[0]}..{w.before[1]}, after {w.after[0]}..{w.after[1]} "
            f"(excluded {w.band[0]}..{w.band[1]}); M-impact, seed {r.seed}"
        )
        rows = table_rows(r)
        if rows:
            cols = list(rows[0])
            widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in cols}
            out.append("  " + "  ".join(c.ljust(widths[c]) for c in cols))
            for row in rows:
                out.append("  " + "  ".join(row[c].ljust(widths[c]) for c in cols).rstrip())
        if r.unexplained:
            shown = ", ".join(f"{day} {name}" for name, day in r.unexplained[:8])
            more = f" and {len(r.unexplained) - 8} more" if len(r.unexplained) > 8 else ""
            out.append(f"  change points away from any event: {shown}{more}")
        out.append(
            "  Changes are associated with the date (changed around it), not attributed to it."
        )
        out.append("")
    if not results:
        out.append("no events with data")
    return "\n".join(out) + "\n"


def _impact(args: argparse.Namespace) -> int:
    from publiccore.collectors import impact_query

    from publiccore import events as ev
    from publiccore.clock import parse_when
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    day = None
    if args.date:
        try:
            day = parse_when(args.date).date()
        except ValueError as exc:
            raise InputError(f"--date: {exc}") from None
    if args.country and not ev.is_country(args.country.upper()):
        raise InputError(f"--country: {args.country!r} is not an ISO 3166-1 alpha-2 code")
    query = impact_query.Query(
        country=args.country,
        event_id=args.event,
        date=day,
        metrics=tuple(args.metric),
        before_days=parse_days(args.before, "--before"),
        after_days=parse_days(args.after, "--after"),
        all_events=args.all,
    )
    events = ev.load(settings.events.extra_files)
    with open_configured(settings, args.store) as store:
        results = impact_query.run(store, settings, events, query)
    if args.json:
        body: dict[str, Any] = {"impacts": [r.to_json() for r in results]}
        json.dump(body, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(render_text(results))
    return 0
