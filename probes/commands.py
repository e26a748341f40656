"""``publiccore probe …``: measurements run by hand on this host."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from publiccore import cliargs
from publiccore import config as cfg
from publiccore.clock import parse_when
from publiccore.errors import ConfigError
from publiccore.records import ProbeRef, Record, TraceResult, TraceTarget


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    probe = sub.add_parser("probe", help="run measurements from this host")
    kinds = probe.add_subparsers(dest="probe_kind", required=True, metavar="KIND")
    root = kinds.add_parser(
        "root", help="measure every root server address (reachability, RTT, site, integrity)"
    )
    root.add_argument(
        "--once",
        action="store_true",
        help="run one round and exit (the default; rounds on a schedule: agent)",
    )
    cliargs.add_hints_and_anchors(root)
    root.add_argument(
        "--timeout",
        type=cliargs.positive_float,
        metavar="SECONDS",
        help="per-query timeout (default 4, no retries)",
    )
    root.add_argument(
        "--concurrency",
        type=cliargs.positive_int,
        metavar="N",
        help="targets measured at once (default 64)",
    )
    root.add_argument(
        "--validation-time",
        metavar="TIME",
        help="validate DNSSEC as of this RFC 3339 time (default: now)",
    )
    root.add_argument("--json", action="store_true", help="print JSON Lines records")
    root.add_argument("--store", metavar="PATH", help="SQLite store to add the round to")
    root.add_argument("--no-store", action="store_true", help="do not store the round")
    root.set_defaults(func=_probe_root)

    trace = kinds.add_parser("trace", help="Paris traceroute to addresses (needs CAP_NET_RAW)")
    trace.add_argument("addresses", nargs="+", metavar="ADDRESS", help="IPv4 or IPv6 address")
    trace.add_argument("--protocol", choices=("udp", "icmp"), default="udp")
    trace.add_argument(
        "--max-ttl", type=cliargs.positive_int, metavar="N", help="farthest hop probed (default 30)"
    )
    trace.add_argument(
        "--timeout",
        type=cliargs.positive_float,
        metavar="SECONDS",
        help="wait per attempt (default 2)",
    )
    trace.add_argument(
        "--attempts",
        type=cliargs.positive_int,
        default=3,
        metavar="N",
        help="probes per hop (default 3)",
    )
    trace.add_argument(
        "--paris-id",
        type=int,
        default=0,
        metavar="N",
        help="flow identifier: another value follows another load-balanced path",
    )
    trace.add_argument("--json", action="store_true", help="print JSON Lines records")
    trace.add_argument("--store", metavar="PATH", help="SQLite store to add the records to")
    trace.add_argument("--no-store", action="store_true", help="do not store the records")
    trace.set_defaults(func=_probe_trace)


def probe_ref(settings: cfg.Settings) -> ProbeRef:
    """This host's probe identity as configured (country and ASN only, never an address)."""
    return ProbeRef(
        id=settings.probe.id or "local",
        asn=settings.probe.asn or None,
        country=settings.probe.country.upper() or None,
    )


def _probe_root(args: argparse.Namespace) -> int:
    from publiccore.probes import root

    from publiccore import roothints

    settings = cfg.load(args.config)
    validation_time = None
    if args.validation_time:
        try:
            validation_time = parse_when(args.validation_time)
        except ValueError as exc:
            raise ConfigError(f"--validation-time: {exc}") from None
    targets = roothints.targets(roothints.load_hints(args.hints or settings.root.hints or None))
    round_cfg = root.RootConfig.from_settings(
        settings.root,
        anchors=args.anchors,
        timeout_seconds=args.timeout,
        concurrency=args.concurrency,
        validation_time=validation_time,
    )
    records = asyncio.run(root.run_round(targets, round_cfg, probe=probe_ref(settings)))
    _store_records(settings, args, records)
    if args.json:
        for record in records:
            sys.stdout.write(record.dumps() + "\n")
    else:
        print_root_table(records)
    return 0


def _store_records(
    settings: cfg.Settings, args: argparse.Namespace, records: Sequence[Record]
) -> None:
    from publiccore.store import open_configured

    if args.no_store:
        return
    with open_configured(settings, args.store) as store:
        store.put_records(records)


def _probe_trace(args: argparse.Namespace) -> int:
    from publiccore.probes import traceroute
    from publiccore.probes.failure import Failure

    settings = cfg.load(args.config)
    try:
        targets = traceroute.make_targets(args.addresses, protocol=args.protocol)
        trace_cfg = traceroute.TraceConfig(
            max_ttl=args.max_ttl or settings.traceroute.max_ttl,
            timeout_seconds=args.timeout or settings.traceroute.timeout_seconds,
            attempts=args.attempts,
            paris_id=args.paris_id,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def run_all() -> list[Record]:
        probe = probe_ref(settings)
        return list(
            await asyncio.gather(
                *(traceroute.measure_trace(t, trace_cfg, probe=probe) for t in targets)
            )
        )

    records = asyncio.run(run_all())
    _store_records(settings, args, records)
    for record in records:
        assert isinstance(record.result, TraceResult) and isinstance(record.target, TraceTarget)
        if args.json:
            sys.stdout.write(record.dumps() + "\n")
            continue
        result = record.result
        print(
            f"traceroute to {record.target.address} ({record.target.protocol}, "
            f"paris id {result.paris_id})" + (f": {result.failure}" if result.failure else "")
        )
        for hop in result.hops:
            shown = [
                f"{r.address} {r.rtt_seconds * 1000:.1f} ms"
                if r.address and r.rtt_seconds is not None
                else "*"
                for r in hop.replies
            ]
            print(f"{hop.ttl:>3}  " + "  ".join(shown))
        if result.failure == Failure.PERMISSION_DENIED:
            print(
                "raw sockets need CAP_NET_RAW (run as root or grant the capability)",
                file=sys.stderr,
            )
    return 0


def print_root_table(records: Sequence[Record]) -> None:
    """Letter × family × transport: reachable, RTT, site, serial, integrity."""
    from publiccore.probes.summary import summarise_round
    from rich.console import Console
    from rich.table import Table

    table = Table(title="root servers, one round")
    for column in (
        "letter",
        "family",
        "transport",
        "address",
        "reachable",
        "RTT ms",
        "site",
        "serial",
        "integrity",
        "consistency",
    ):
        table.add_column(column)
    summary = summarise_round(records)
    for address in summary.addresses:
        integrity: str = address.integrity
        if address.integrity_reason and integrity != "iana":
            integrity += f" ({address.integrity_reason[:60]})"
        consistency: str = address.consistency
        if address.differs:
            consistency += ": " + "; ".join(address.differs)
        for query in address.soa:
            rtt = f"{query.rtt_seconds * 1000:.1f}" if query.rtt_seconds is not None else "-"
            table.add_row(
                address.letter,
                address.family,
                query.transport,
                address.address,
                "yes" if query.answered else query.problem,
                rtt,
                address.site or "-",
                str(query.serial) if query.serial is not None else "-",
                integrity,
                consistency,
            )
    console = Console(width=200)
    console.print(table)
    if summary.answered_addresses == 0:
        console.print(
            f"no root server answered ({len(records)} addresses tried); "
            "the round is stored as measured"
        )
    else:
        console.print(f"{summary.answered_addresses} of {len(records)} addresses answered")
