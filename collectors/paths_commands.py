"""``publiccore paths …``: border crossings from stored traceroutes."""

from __future__ import annotations

import argparse
import json
import sys

from publiccore import config as cfg
from publiccore.clock import parse_when, utc_now
from publiccore.errors import ConfigError, InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    paths = sub.add_parser("paths", help="cross-border paths from stored traceroutes")
    kinds = paths.add_subparsers(dest="paths_command", required=True, metavar="COMMAND")
    crossings = kinds.add_parser(
        "crossings", help="border crossings per probe country (M-path-border-crossings)"
    )
    crossings.add_argument(
        "--delegated",
        nargs="+",
        metavar="FILE",
        help="RIR delegated(-extended) files: address → country",
    )
    crossings.add_argument(
        "--asn-table",
        metavar="FILE",
        required=True,
        help="prefix → origin AS table (pyasn ipasn format, .gz accepted)",
    )
    crossings.add_argument("--since", metavar="TIME", help="window start (default: 24 h ago)")
    crossings.add_argument("--until", metavar="TIME", help="window end (default: now)")
    crossings.add_argument("--store", metavar="PATH", help="SQLite store to read and write")
    crossings.add_argument(
        "--no-store", action="store_true", help="do not keep the figures as observations"
    )
    crossings.add_argument("--json", action="store_true", help="print JSON")
    crossings.set_defaults(func=_crossings)


def _crossings(args: argparse.Namespace) -> int:
    import datetime as dt

    from publiccore.collectors import paths

    from publiccore.geo import Geo
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    try:
        until = parse_when(args.until) if args.until else utc_now()
        since = (
            parse_when(args.since)
            if args.since
            else until - dt.timedelta(seconds=settings.aggregate.paths_window_seconds)
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    delegated = args.delegated or settings.bgp.delegated
    if not delegated:
        raise InputError("no delegated files: give --delegated FILE… or [bgp] delegated")
    geo = Geo.from_files(delegated)
    asns = paths.AsnTable.from_file(args.asn_table)
    with open_configured(settings, args.store) as store:
        results = paths.crossings_by_country(
            store.iter_records(kind="traceroute", since=since, until=until), geo, asns
        )
        if not args.no_store:
            paths.store_crossings(
                store,
                results,
                at=until,
                window=(since, until),
                sources=[*delegated, args.asn_table],
            )
    if args.json:
        json.dump(
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "countries": [r.to_json() for r in results],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"border crossings {since:%Y-%m-%d %H:%M} – {until:%Y-%m-%d %H:%M} UTC")
    for column in (
        "country",
        "traces",
        "probes",
        "crossing",
        "distinct",
        "effective number",
        "top crossings (exit AS → entry AS, country: share)",
    ):
        table.add_column(column)
    for r in results:
        top = ", ".join(
            f"AS{c.exit_asn}→AS{c.entry_asn} {c.entry_country}: {share:.0%}"
            for c, share in r.crossings[:3]
        )
        table.add_row(
            r.country,
            str(r.traces),
            str(r.probes),
            str(r.traces_crossing),
            str(r.distinct),
            f"{r.effective_number:.2f}",
            top or "-",
        )
    Console(width=160).print(table)
    if not results:
        print("no traceroute records in the window")
    return 0
