"""``publiccore export …`` and ``publiccore events …``: read-only views of the store and data."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

from publiccore import config as cfg
from publiccore.clock import parse_when
from publiccore.errors import ConfigError

if TYPE_CHECKING:
    from publiccore import events as ev


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``export`` and ``events`` commands."""
    export = sub.add_parser("export", help="export stored history")
    formats = export.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    om = formats.add_parser(
        "openmetrics",
        help="timestamped OpenMetrics of every exported metric, per step "
        "(for promtool tsdb create-blocks-from openmetrics)",
    )
    om.add_argument("--since", required=True, metavar="TIME", help="first step (RFC 3339/date)")
    om.add_argument("--until", required=True, metavar="TIME", help="last step (RFC 3339/date)")
    om.add_argument("--step", default="5m", metavar="DURATION", help="step (default 5m)")
    om.add_argument("--store", metavar="PATH", help="SQLite store (default from configuration)")
    om.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write one file per chunk into DIR instead of one document to stdout",
    )
    om.add_argument(
        "--chunk",
        default="1h",
        metavar="DURATION",
        help="time covered by each file with --out-dir (default 1h)",
    )
    om.set_defaults(func=_export_openmetrics)
    series = formats.add_parser(
        "series", help="daily series and profile per country (CSV or Parquet, open data)"
    )
    where = series.add_mutually_exclusive_group(required=True)
    where.add_argument("--country", metavar="XX", help="ISO 3166-1 alpha-2")
    where.add_argument("--world", action="store_true", help="every country with data")
    series.add_argument("--since", metavar="TIME", help="first day (default 30 days before)")
    series.add_argument("--until", default="now", metavar="TIME", help="end (default now)")
    series.add_argument("--format", choices=("csv", "parquet"), default="csv")
    series.add_argument("--out", metavar="FILE", help="output file (CSV default: stdout)")
    series.add_argument("--store", metavar="PATH", help="SQLite store (default from config)")
    series.set_defaults(func=_export_series)

    report = sub.add_parser(
        "report",
        help="citable report for one country and period (Markdown, HTML with SVG chart, CSV)",
    )
    where = report.add_mutually_exclusive_group(required=True)
    where.add_argument("--country", metavar="XX", help="ISO 3166-1 alpha-2")
    where.add_argument("--world", action="store_true", help="one report, a row per country")
    report.add_argument(
        "--since", metavar="TIME", help="start (RFC 3339/date; default 30 days before --until)"
    )
    report.add_argument("--until", default="now", metavar="TIME", help="end (default now)")
    report.add_argument("--out", metavar="DIR", help="output folder (default report-XX-DATE)")
    report.add_argument("--store", metavar="PATH", help="SQLite store (default from config)")
    report.set_defaults(func=_report)

    events = sub.add_parser("events", help="the regulatory events dataset")
    actions = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list events (bundled plus [events] extra_files)")
    listing.add_argument("--country", metavar="XX", help="ISO 3166-1 alpha-2, INT or EU")
    listing.add_argument("--since", metavar="DATE", help="events on or after this date")
    listing.add_argument("--until", metavar="DATE", help="events before this date")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(func=_events_list)
    validate = actions.add_parser("validate", help="validate an events file (exit 1 if bad)")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=_events_validate)
    push = actions.add_parser(
        "push-grafana", help="write events as Grafana annotations (idempotent)"
    )
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
    push.add_argument("--token", default="", help="service account token (or GRAFANA_TOKEN)")
    push.add_argument("--country", metavar="XX", help="only this country's events")
    push.add_argument("--dry-run", action="store_true", help="look up, but write nothing")
    push.set_defaults(func=_events_push)


def _date(text: str | None, option: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_when(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def _load_events(args: argparse.Namespace) -> list[ev.Event]:
    from publiccore import events as ev

    settings = cfg.load(args.config)
    return ev.load(settings.events.extra_files)


def _events_list(args: argparse.Namespace) -> int:
    from publiccore import events as ev

    since, until = _date(args.since, "--since"), _date(args.until, "--until")
    chosen = ev.select(
        _load_events(args),
        country=args.country,
        since=since.date() if since else None,
        until=until.date() if until else None,
    )
    if args.json:
        json.dump([e.to_json() for e in chosen], sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    for e in chosen:
        end = f"–{e.end_date}" if e.end_date else ""
        sys.stdout.write(
            f"{e.date}{end}  {e.country:3}  {e.kind:13}  {e.id}\n    {e.title} ({e.confidence})\n"
        )
    sys.stdout.write(f"{len(chosen)} events\n")
    return 0


def _events_validate(args: argparse.Namespace) -> int:
    from publiccore import events as ev

    loaded = ev.load_file(args.file)  # InputError → "publiccore: error: …", exit 1
    sys.stdout.write(f"{args.file}: {len(loaded)} events, valid\n")
    return 0


def _events_push(args: argparse.Namespace) -> int:
    import os

    from publiccore.exporters import grafana

    from publiccore import events as ev

    chosen = ev.select(_load_events(args), country=args.country)
    token = args.token or os.environ.get("GRAFANA_TOKEN", "")
    counts = asyncio.run(grafana.push(chosen, url=args.url, token=token, dry_run=args.dry_run))
    verb = "would be " if args.dry_run else ""
    sys.stdout.write(
        f"{len(chosen)} events: {counts['create']} {verb}created, "
        f"{counts['update']} {verb}updated, {counts['unchanged']} unchanged\n"
    )
    return 0


def _export_openmetrics(args: argparse.Namespace) -> int:
    import pathlib

    from publiccore.exporters import openmetrics

    from publiccore import events as ev
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    since, until = _date(args.since, "--since"), _date(args.until, "--until")
    assert since is not None and until is not None
    if until < since:
        raise ConfigError("--until is before --since")
    try:
        step = openmetrics.parse_duration(args.step)
        chunk = openmetrics.parse_duration(args.chunk) if args.out_dir else None
    except ValueError as exc:
        raise ConfigError(f"--step/--chunk: {exc}") from None
    events = ev.load(settings.events.extra_files)
    total = files = 0
    with open_configured(settings, args.store) as store:
        if args.out_dir:
            out_dir = pathlib.Path(args.out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            for families in openmetrics.history_chunks(
                store,
                settings.aggregate,
                since=since,
                until=until,
                step_seconds=step,
                chunk_seconds=chunk,
                events=events,
            ):
                start = dt.datetime.fromtimestamp(
                    min(float(s.timestamp or 0.0) for f in families for s in f.samples), dt.UTC
                )
                path = out_dir / f"publiccore-{start:%Y%m%dT%H%M%S}.om"
                with open(path, "w", encoding="utf-8") as out:
                    openmetrics.write(families, out)
                total += sum(openmetrics.sample_count(families).values())
                files += 1
                sys.stdout.write(f"{path}\n")
        else:
            families = openmetrics.history(
                store,
                settings.aggregate,
                since=since,
                until=until,
                step_seconds=step,
                events=events,
            )
            openmetrics.write(families, sys.stdout)
            total, files = sum(openmetrics.sample_count(families).values()), 1
    print(f"publiccore: {total} samples in {files} file(s)", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    import pathlib

    from publiccore.exporters import impact_report, report, world_report

    from publiccore import events as ev
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    until = _date(args.until, "--until")
    assert until is not None
    since = _date(args.since, "--since") or until - dt.timedelta(days=30)
    if until <= since:
        raise ConfigError("--until is not after --since")
    country = None
    if not args.world:
        country = args.country.upper()
        if not ev.is_country(country) or country in ev.SPECIAL_COUNTRIES:
            raise ConfigError(f"--country: {args.country!r} is not an ISO 3166-1 alpha-2 code")
    name = country or "world"
    out = pathlib.Path(args.out or f"report-{name}-{since:%Y%m%d}")
    command = ["report", *(["--world"] if args.world else ["--country", name])]
    command += ["--since", since.isoformat(), "--until", until.isoformat(), "--out", str(out)]
    if args.store:
        command += ["--store", args.store]
    if args.config:
        command = ["--config", args.config, *command]
    path = args.store or settings.store.path
    label = settings.store.url or path
    events = ev.load(settings.events.extra_files)
    with open_configured(settings, args.store) as store:
        if args.world:
            built_world = world_report.build(
                store, since=since, until=until, settings=settings, events=events
            )
            prov = impact_report.provenance(
                store,
                settings=settings,
                store_label=label,
                country=None,
                since=since,
                until=until,
                extras=built_world.extras,
                command=command,
                definitions=world_report.DEFINITIONS,
            )
            written = world_report.write(built_world, prov, out, store_label=label)
        else:
            assert country is not None
            built = report.build(
                store,
                country=country,
                since=since,
                until=until,
                settings=settings.aggregate,
                store_label=label,
                events=events,
            )
            extra = impact_report.build_extra(
                store,
                country=country,
                since=since.date(),
                until=until.date(),
                settings=settings,
                events=events,
            )
            prov = impact_report.provenance(
                store,
                settings=settings,
                store_label=label,
                country=country,
                since=since,
                until=until,
                extras=[extra],
                command=command,
                definitions=REPORT_DEFINITIONS,
            )
            written = report.write(dataclasses.replace(built, extra=extra, provenance=prov), out)
    for path_written in written:
        sys.stdout.write(f"{path_written}\n")
    return 0


# Definition ids a country report uses (provenance.json).
REPORT_DEFINITIONS: tuple[str, ...] = (
    "M-root-reachability",
    "M-root-latency",
    "M-root-site",
    "M-root-rss",
    "M-root-rss-availability",
    "M-root-rss-latency",
    "M-root-publication-median",
    "M-root-monthly",
    "M-root-integrity",
    "M-sampling",
    "M-bgp-country-visibility",
    "M-bgp-upstreams",
    "M-path-border-crossings",
    "M-impact",
    "M-profile",
)


def period(since: str | None, until: str) -> tuple[dt.date, dt.date]:
    """[since, until) as UTC days; ``since`` defaults to 30 days before ``until``."""
    end = _date(until, "--until")
    assert end is not None
    start = _date(since, "--since") or end - dt.timedelta(days=30)
    if end <= start:
        raise ConfigError("--until is not after --since")
    return start.date(), end.date()


def _export_series(args: argparse.Namespace) -> int:
    import pathlib

    from publiccore.collectors import series as ser
    from publiccore.exporters import series_export

    from publiccore import events as ev
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    since, until = period(args.since, args.until)
    if args.country and (not ev.is_country(args.country.upper())):
        raise ConfigError(f"--country: {args.country!r} is not an ISO 3166-1 alpha-2 code")
    if args.format == "parquet" and not args.out:
        raise ConfigError("--format parquet needs --out FILE")
    thresholds = ser.thresholds_from(settings.impact)
    with open_configured(settings, args.store) as store:
        if args.world:
            by_country = ser.all_country_series(
                store, since=since, until=until, settings=settings.aggregate, thresholds=thresholds
            )
        else:
            cc = args.country.upper()
            by_country = {
                cc: ser.country_series(
                    store,
                    country=cc,
                    since=since,
                    until=until,
                    settings=settings.aggregate,
                    thresholds=thresholds,
                )
            }
    if args.format == "parquet":
        count = series_export.write_parquet(by_country, pathlib.Path(args.out))
        print(f"publiccore: {count} rows in {args.out}", file=sys.stderr)
        return 0
    text = series_export.to_csv(by_country)
    if args.out:
        pathlib.Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
