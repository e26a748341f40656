"""``publiccore bgp …``: route visibility, root prefixes and international upstreams from MRT."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

from publiccore import config as cfg
from publiccore.errors import InputError

FAMILY_CHOICES = ("ipv4", "ipv6")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bgp`` command group."""
    bgp = sub.add_parser("bgp", help="BGP route visibility, root prefixes, upstream diversity")
    kinds = bgp.add_subparsers(dest="bgp_command", required=True, metavar="COMMAND")

    vis = kinds.add_parser("visibility", help="peers, prefix and country visibility of RIBs")
    _common(vis)
    vis.add_argument(
        "--updates",
        nargs="+",
        default=[],
        metavar="FILE",
        help="BGP4MP update files applied onto the RIB (5-minute bins)",
    )
    vis.add_argument(
        "--delegated",
        nargs="+",
        default=None,
        metavar="FILE",
        help="RIR delegated(-extended) files (default: [bgp] delegated)",
    )
    vis.add_argument(
        "--hints",
        metavar="FILE",
        help="root hints (default: [root] hints, else the bundled IANA hints as of the "
        "RIB's dump time)",
    )
    vis.add_argument(
        "--origins", metavar="FILE", help="expected root origins TOML (default: bundled)"
    )
    vis.add_argument(
        "--transit",
        action="store_true",
        help="also derive international upstreams of every country (stored)",
    )
    vis.add_argument(
        "--prefixes",
        action="store_true",
        help="list every prefix with its visibility and origins (JSON only)",
    )
    vis.add_argument(
        "--broker-window",
        nargs=2,
        metavar=("FROM", "UNTIL"),
        help="also read RIBs of this time window via the BGPStream broker "
        "(needs pybgpstream and --broker-collector)",
    )
    vis.add_argument(
        "--broker-collector",
        nargs="+",
        default=[],
        metavar="NAME",
        help="collectors for --broker-window (rrc00, route-views2…)",
    )
    vis.set_defaults(func=_visibility)

    transit = kinds.add_parser("transit", help="a country's international upstreams")
    _common(transit)
    transit.add_argument("--country", required=True, metavar="XX", help="ISO 3166 code")
    transit.add_argument("--family", choices=FAMILY_CHOICES, default="ipv4")
    transit.add_argument(
        "--delegated",
        nargs="+",
        default=None,
        metavar="FILE",
        help="RIR delegated(-extended) files (default: [bgp] delegated)",
    )
    transit.set_defaults(func=_transit)

    roots = kinds.add_parser("roots", help="root-server prefixes: visibility and origins")
    _common(roots)
    roots.add_argument(
        "--hints",
        metavar="FILE",
        help="root hints (default: [root] hints, else the bundled IANA hints as of the "
        "RIB's dump time)",
    )
    roots.add_argument(
        "--origins", metavar="FILE", help="expected root origins TOML (default: bundled)"
    )
    roots.set_defaults(func=_roots)

    from publiccore.collectors.bgp import follow_commands

    follow_commands.register(kinds)  # follow [status], live, backfill


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mrt",
        nargs="+",
        default=[],
        metavar="FILE",
        help="MRT RIB dumps (TABLE_DUMP / TABLE_DUMP_V2; raw, gz or bz2)",
    )
    parser.add_argument(
        "--reader",
        choices=("auto", "bgpstream", "bgpdump"),
        default="auto",
        help="MRT reader (auto: pybgpstream if importable, else bgpdump)",
    )
    parser.add_argument(
        "--collector",
        metavar="NAME",
        help="collector name when the file path does not say (rrc00…)",
    )
    parser.add_argument(
        "--full-feed-ratio",
        type=float,
        metavar="R",
        help="full-feed: share of the largest peer's count (default 0.75)",
    )
    parser.add_argument(
        "--keep-documentation-asns",
        action="store_true",
        help="keep RFC 5398 documentation ASNs on paths (labs)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--store", metavar="PATH", help="SQLite store (default: settings)")
    parser.add_argument("--no-store", action="store_true", help="do not store the results")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def _options(args: argparse.Namespace, settings: cfg.Settings) -> Any:
    from publiccore.collectors.bgp.pipeline import Options
    from publiccore.collectors.bgp.rib import FullFeedRule

    ratio = settings.bgp.full_feed_ratio if args.full_feed_ratio is None else args.full_feed_ratio
    if not 0 <= ratio <= 1:
        raise InputError("--full-feed-ratio must be between 0 and 1")
    return Options(
        rule=FullFeedRule(
            ratio=ratio,
            min_ipv4=settings.bgp.full_feed_min_ipv4,
            min_ipv6=settings.bgp.full_feed_min_ipv6,
        ),
        threshold=settings.bgp.visibility_threshold,
        bin_seconds=settings.bgp.bin_seconds,
        keep_documentation=args.keep_documentation_asns,
    )


def _geo(files: Sequence[str]) -> Any:
    from publiccore.geo import Geo

    if not files:
        return None
    geo = Geo.from_files(files)
    for warning in geo.warnings:
        print(f"publiccore: warning: {warning}", file=sys.stderr)
    return geo


def _run(args: argparse.Namespace, **kwargs: Any) -> tuple[list[Any], Any, cfg.Settings]:
    """The analyses of the command's files: one, or one per dump time when RIBs of one
    collector come from several (``pipeline.analyze_dumps``)."""
    from publiccore.collectors.bgp import forked
    from publiccore.collectors.bgp.pipeline import analyze_dumps
    from publiccore.collectors.bgp.progress import progress_bar
    from publiccore.collectors.bgp.readers import make_reader

    settings = cfg.load(args.config)
    options = _options(args, settings)
    reader = make_reader(args.reader)
    with progress_bar(args.progress) as progress:
        analyses = analyze_dumps(
            ribs=args.mrt,
            reader=reader,
            collector=args.collector,
            options=options,
            progress=progress,
            split=forked.spare_cores(1),  # a second core takes a share of the country figures
            **kwargs,
        )
    several = len(analyses) > 1
    if several:
        print(
            f"publiccore: note: RIBs of {len(analyses)} dump times, analysed apart: "
            + "; ".join(_when(a.dump_time) for a in analyses),
            file=sys.stderr,
        )
    for analysis in analyses:
        dump = f"[{_when(analysis.dump_time)}] " if several else ""
        for source in analysis.sources:
            if source.partial:
                print(
                    f"publiccore: warning: {source.file}: partial after {source.elements:,} "
                    f"elements: {source.problem}",
                    file=sys.stderr,
                )
        for note in analysis.notes:
            print(f"publiccore: note: {dump}{note}", file=sys.stderr)
    from publiccore.collectors.bgp.bgpdump import CORRUPT_PREFIX

    corrupt = [s for a in analyses for s in a.sources if s.problem.startswith(CORRUPT_PREFIX)]
    if corrupt:
        raise InputError(
            f"{corrupt[0].file}: {corrupt[0].problem[:200]} (not truncated: the file is damaged; "
            "nothing was stored)"
        )
    return analyses, options, settings


def _store(
    args: argparse.Namespace,
    settings: cfg.Settings,
    analyses: Sequence[Any],
    options: Any,
    delegated: Sequence[str],
    command: str,
) -> None:
    """Store each analysis as its own source (one per dump time, each at its own time)."""
    if args.no_store:
        return
    from publiccore.collectors.bgp.observations import store_analysis

    from publiccore.store import open_configured

    with open_configured(settings, args.store) as store:
        for analysis in analyses:
            source_id, count = store_analysis(
                store, analysis, options=options, delegated=tuple(delegated), command=command
            )
            dump = f" (dump {_when(analysis.dump_time)})" if len(analyses) > 1 else ""
            print(f"stored {count} observations as source {source_id}{dump}", file=sys.stderr)


def _servers(hints: str | None, settings: cfg.Settings) -> dict[str, Any]:
    """``servers`` from --hints or [root] hints; otherwise hints as of the RIB's date."""
    from publiccore import roothints

    chosen = hints or settings.root.hints
    if chosen:
        return {"servers": roothints.load_hints(chosen)}
    return {"hints_as_of": roothints.hints_as_of}


def _expected(origins: str | None) -> Any:
    """The expected root origins (``--origins`` or bundled) as of a RIB's dump time.

    The table is read once here, so that a bad file fails before the RIB is read.
    """
    from publiccore.collectors.bgp.roots import load_expected_origins

    load_expected_origins(origins)

    def as_of(when: float | None) -> dict[str, tuple[int, ...]]:
        return load_expected_origins(origins, as_of=when)

    return as_of


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _sources_json(analysis: Any) -> list[dict[str, Any]]:
    return [
        {
            "file": s.file,
            "sha256": s.sha256,
            "collector": s.collector,
            "dump_time": s.dump_time,
            "elements": s.elements,
            "partial": s.partial,
            "problem": s.problem,
            "kind": s.kind,
            "reader": s.reader,
        }
        for s in analysis.sources
    ]


def _visibility(args: argparse.Namespace) -> int:
    from publiccore.collectors.bgp.pipeline import BrokerWindow

    from publiccore.clock import parse_when

    settings = cfg.load(args.config)
    delegated = args.delegated if args.delegated is not None else settings.bgp.delegated
    broker = None
    if args.broker_window:
        if not args.broker_collector:
            raise InputError("--broker-window needs --broker-collector NAME…")
        try:
            start, end = (parse_when(t).timestamp() for t in args.broker_window)
        except ValueError as exc:
            raise InputError(f"--broker-window: {exc}") from None
        broker = BrokerWindow(start=start, end=end, collectors=tuple(args.broker_collector))
    geo = _geo(delegated)
    transit_countries: list[str] = []
    if args.transit:
        if geo is None:
            raise InputError("--transit needs RIR delegated files (--delegated FILE)")
        transit_countries = ["*"]  # every country with routed prefixes
    analyses, options, settings = _run(
        args,
        updates=args.updates,
        geo=geo,
        broker=broker,
        expected_as_of=_expected(args.origins),
        transit_countries=transit_countries,
        **_servers(args.hints, settings),
    )
    _store(args, settings, analyses, options, delegated, "bgp visibility")
    if args.json:
        outs = [_visibility_json(args, a, options) for a in analyses]
        json.dump(outs[0] if len(outs) == 1 else {"dumps": outs}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for analysis in analyses:
        if len(analyses) > 1:
            print(f"dump {_when(analysis.dump_time)}")
        _print_visibility(analysis, delegated)
    return 0


def _visibility_json(args: argparse.Namespace, analysis: Any, options: Any) -> dict[str, Any]:
    """``bgp visibility --json`` of one analysis."""
    from publiccore.collectors.bgp.visibility import prefix_view

    out: dict[str, Any] = {
        "sources": _sources_json(analysis),
        "partial": analysis.partial,
        "dump_time": analysis.dump_time,
        "peers": [p.to_json() for p in analysis.peers],
        "summary": analysis.summary.to_json(),
        "countries": [c.to_json() for c in analysis.countries],
        "roots": [r.to_json() for r in analysis.roots],
        "transit": [t.to_json() for t in analysis.transit],
        "hegemony": [h.to_json() for h in analysis.hegemony],
        "notes": list(analysis.notes),
        "bins": [
            {
                "time": b.start,
                "updates": b.updates,
                "partial": b.partial,
                "countries": [c.to_json() for c in b.countries],
                "roots": [
                    {
                        "letter": p.name,
                        "address": p.address,
                        "prefix": p.prefix,
                        "visibility_ratio": p.ratio,
                    }
                    for p in b.prefixes
                ],
            }
            for b in analysis.bins
        ],
    }
    if args.prefixes:
        out["prefixes"] = [
            prefix_view(
                analysis.rib,
                p,
                analysis.full_feed,
                threshold=options.threshold,
                keep_documentation=options.keep_documentation,
            ).to_json()
            for p in sorted(analysis.rib.routes)
        ]
    return out


def _print_visibility(analysis: Any, delegated: Sequence[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    files = Table(title="sources")
    for column in ("file", "collector", "dump time", "elements", "complete"):
        files.add_column(column)
    for s in analysis.sources:
        files.add_row(
            s.file,
            s.collector,
            _when(s.dump_time),
            f"{s.elements:,}",
            "yes" if not s.partial else f"PARTIAL: {s.problem[:70]}",
        )
    console.print(files)
    peers = Table(title="peers (full-feed: ≥ ratio × largest peer per family and collector)")
    for column in ("collector", "peer AS", "peer address", "IPv4", "IPv6", "full-feed"):
        peers.add_column(column)
    for p in sorted(
        analysis.peers, key=lambda r: (r.peer.collector, -r.prefixes["ipv4"], -r.prefixes["ipv6"])
    ):
        full = ",".join(f for f in ("ipv4", "ipv6") if p.full_feed[f]) or "-"
        peers.add_row(
            p.peer.collector,
            str(p.peer.peer_asn),
            p.peer.peer_address,
            f"{p.prefixes['ipv4']:,}",
            f"{p.prefixes['ipv6']:,}",
            full,
        )
    console.print(peers)
    summary = analysis.summary
    for family in ("ipv4", "ipv6"):
        console.print(
            f"{family}: {summary.prefixes_seen[family]:,} prefixes seen, "
            f"{summary.prefixes_visible[family]:,} visible (> 50% of "
            f"{summary.full_feed_peers[family]} full-feed peers), "
            f"{summary.multiple_origins[family]:,} with several origins"
        )
    if analysis.roots:
        _print_roots(console, analysis.roots)
    if not delegated:
        console.print(
            "no RIR delegated files (--delegated or [bgp] delegated): country visibility skipped"
        )
    elif analysis.countries:
        table = Table(title="country visibility (/24 or /48 equivalents)")
        for column in (
            "country",
            "family",
            "prefixes",
            "routed",
            "visible",
            "ratio",
            "unseen prefixes",
        ):
            table.add_column(column, justify="right" if column != "country" else "left")
        for c in analysis.countries:
            table.add_row(
                c.country,
                c.family,
                f"{c.prefixes:,}",
                f"{c.routed_units:,.1f}",
                f"{c.visible_units:,.1f}",
                f"{c.visible_ratio:.3f}",
                f"{c.unseen_prefixes:,}",
            )
        console.print(table)
    if analysis.bins:
        table = Table(title="updates: 5-minute bins (state at bin end)")
        for column in ("bin start", "updates", "countries < 100% visible", "root prefixes < 50%"):
            table.add_column(column)
        for b in analysis.bins:
            low = [
                f"{c.country}/{c.family[-1]} {c.visible_ratio:.2f}"
                for c in b.countries
                if c.visible_ratio < 1.0
            ]
            roots = [f"{p.name} {p.ratio:.2f}" for p in b.prefixes if p.ratio <= 0.5]
            table.add_row(
                _when(b.start),
                f"{b.updates:,}",
                " ".join(low[:8]) or "-",
                " ".join(roots[:8]) or "-",
            )
        console.print(table)


def _print_roots(console: Any, roots: Sequence[Any]) -> None:
    from rich.table import Table

    table = Table(title="root-server prefixes")
    for column in (
        "letter",
        "address",
        "prefix",
        "visibility",
        "origins",
        "expected",
        "unexpected",
    ):
        table.add_column(column)
    for r in roots:
        table.add_row(
            r.letter,
            r.address,
            (r.prefix or "not routed") if r.covered else "not covered",
            f"{r.visibility_ratio:.2f}",
            " ".join(map(str, r.origins)) or "-",
            " ".join(map(str, r.expected_origins)) or "-",
            "[bold red]YES[/]" if r.unexpected else "no",
        )
    console.print(table)


def _transit(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    delegated = args.delegated if args.delegated is not None else settings.bgp.delegated
    if not delegated:
        raise InputError("transit needs RIR delegated files (--delegated FILE)")
    country = args.country.upper()
    if len(country) != 2 or not country.isalpha():
        raise InputError(f"--country must be an ISO 3166 alpha-2 code, not {args.country!r}")
    analyses, options, settings = _run(
        args,
        geo=_geo(delegated),
        countries=False,
        transit_countries=[country],
        transit_families=[args.family],
    )
    _store(args, settings, analyses, options, delegated, "bgp transit")
    if args.json:
        outs = []
        for analysis in analyses:
            hegemony = analysis.hegemony[0] if analysis.hegemony else None
            out = analysis.transit[0].to_json()
            out["sources"] = _sources_json(analysis)
            out["partial"] = analysis.partial
            out["dump_time"] = analysis.dump_time
            out["notes"] = list(analysis.notes)
            out["hegemony"] = hegemony.to_json() if hegemony is not None else None
            outs.append(out)
        json.dump(outs[0] if len(outs) == 1 else {"dumps": outs}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for analysis in analyses:
        if len(analyses) > 1:
            print(f"dump {_when(analysis.dump_time)}")
        _print_transit(analysis, country, args.family)
    return 0


def _print_transit(analysis: Any, country: str, family: str) -> None:
    from rich.console import Console
    from rich.table import Table

    result = analysis.transit[0]
    hegemony = analysis.hegemony[0] if analysis.hegemony else None
    console = Console(width=160)
    if not result.covered:
        console.print(f"{country} {family}: no figure: {result.note}")
        return
    table = Table(title=f"{country} {family}: international upstreams (top 10)", min_width=60)
    table.add_column("AS")
    table.add_column("share", justify="right")
    for upstream in result.upstreams[:10]:
        table.add_row(str(upstream.asn), f"{upstream.share:.3f}")
    console.print(table)
    console.print(
        f"{result.count} upstreams, effective number {result.effective_number:.2f}, "
        f"top share {result.top_share:.3f}, from {result.peer_asns_used} peer ASes "
        f"({result.paths_used:,} paths used, {result.paths_skipped:,} without a "
        f"domestic origin or a foreign AS, {result.paths_peer_upstream:,} whose only foreign AS "
        f"is the collector peer's)"
    )
    if hegemony is not None and hegemony.covered:
        table = Table(title=f"{country} {family}: AS hegemony (IHR; top 10)", min_width=60)
        table.add_column("AS")
        table.add_column("hegemony", justify="right")
        for dependency in hegemony.dependencies[:10]:
            table.add_row(str(dependency.asn), f"{dependency.hegemony:.3f}")
        console.print(table)
        console.print(
            f"{hegemony.dependent_ases()} ASes above 0.1, from {hegemony.peer_asns_used} peer "
            f"ASes ({hegemony.sessions_used} full-feed sessions)"
        )


def _roots(args: argparse.Namespace) -> int:

    settings = cfg.load(args.config)
    analyses, options, settings = _run(
        args,
        expected_as_of=_expected(args.origins),
        countries=False,
        **_servers(args.hints, settings),
    )
    _store(args, settings, analyses, options, (), "bgp roots")
    if args.json:
        outs = [[r.to_json() for r in a.roots] for a in analyses]
        if len(outs) == 1:
            json.dump(outs[0], sys.stdout, indent=1)
        else:
            dumps = [
                {"dump_time": a.dump_time, "roots": o} for a, o in zip(analyses, outs, strict=True)
            ]
            json.dump({"dumps": dumps}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console

    for analysis in analyses:
        if len(analyses) > 1:
            print(f"dump {_when(analysis.dump_time)}")
        _print_roots(Console(width=160), analysis.roots)
    return 0
