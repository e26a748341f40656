"""``publiccore bgp follow [status]``, ``bgp live``, ``bgp backfill``: routing data on its own."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from publiccore import config as cfg
from publiccore.errors import InputError


def register(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``follow``, ``live`` and ``backfill`` to the ``bgp`` command group."""
    follow = kinds.add_parser("follow", help="follow RIS / RouteViews archives (or: follow status)")
    follow.add_argument(
        "action",
        nargs="?",
        choices=("run", "status"),
        default="run",
        help="status: each collector's last file, lag and failures",
    )
    _archive_arguments(follow)
    follow.add_argument("--once", action="store_true", help="process what is due, then exit")
    follow.add_argument("--since", metavar="TIME", help="first file time (default: now − lookback)")
    follow.add_argument(
        "--now", metavar="TIME", help="take TIME as the current time (replays, tests)"
    )
    follow.add_argument("--json", action="store_true", help="status as JSON")
    follow.set_defaults(func=_follow)

    live = kinds.add_parser("live", help="RIS Live: root prefixes withdrawn and restored")
    live.add_argument("--url", metavar="URL", help="RIS Live WebSocket URL (default: [bgp.live])")
    live.add_argument(
        "--prefix", action="append", default=[], metavar="PREFIX", help="also watch PREFIX"
    )
    live.add_argument("--hints", metavar="FILE", help="root hints (default: bundled)")
    live.add_argument("--store", metavar="PATH", help="SQLite store (default: settings)")
    live.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after SECONDS (default: SIGTERM)"
    )
    live.set_defaults(func=_live)

    backfill = kinds.add_parser("backfill", help="process every archive file of a time window")
    _archive_arguments(backfill)
    backfill.add_argument("--since", required=True, metavar="TIME", help="window start")
    backfill.add_argument("--until", required=True, metavar="TIME", help="window end")
    backfill.add_argument(
        "--dask", metavar="tcp://HOST:8786", help="run on this Dask scheduler (needs [dask])"
    )
    backfill.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    backfill.set_defaults(func=_backfill)


def _archive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="archive base: ris=URL, routeviews=URL (default: [bgp.follow])",
    )
    parser.add_argument(
        "--collector",
        nargs="+",
        default=[],
        metavar="NAME",
        help="collectors (rrc00, route-views2…; default: [bgp.follow] collectors)",
    )
    parser.add_argument("--store", metavar="PATH", help="SQLite store (default: settings)")
    parser.add_argument("--cache", metavar="DIR", help="download directory ([bgp.follow])")
    parser.add_argument(
        "--keep", action="store_true", default=None, help="keep processed files in the cache"
    )
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes")
    parser.add_argument(
        "--delegated", nargs="+", default=None, metavar="FILE", help="RIR delegated files"
    )
    parser.add_argument("--hints", metavar="FILE", help="root hints (default: bundled)")


def _when(text: str | None, name: str) -> float | None:
    from publiccore.clock import parse_when

    if text is None:
        return None
    try:
        return parse_when(text).timestamp()
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None


def _settings(args: argparse.Namespace) -> cfg.Settings:
    settings = cfg.load(args.config)
    follow = settings.bgp.follow
    if getattr(args, "cache", None):
        follow.cache_dir = args.cache
    if getattr(args, "workers", None) is not None:
        if not 1 <= args.workers <= 256:
            raise InputError("--workers must be between 1 and 256")
        follow.workers = args.workers
    if getattr(args, "delegated", None) is not None:
        settings.bgp.delegated = args.delegated
    return settings


def _options(args: argparse.Namespace, settings: cfg.Settings, **kwargs: Any) -> Any:
    from publiccore.collectors.bgp.archive import parse_source_overrides
    from publiccore.collectors.bgp.follow import FollowOptions

    return FollowOptions.from_settings(
        settings.bgp.follow,
        bases=parse_source_overrides(args.source),
        collectors=args.collector,
        keep=args.keep,
        **kwargs,
    )


def _clock(now: float | None) -> Callable[[], float]:
    if now is None:
        return time.time
    offset = now - time.time()
    return lambda: time.time() + offset


def _follow(args: argparse.Namespace) -> int:
    from publiccore.collectors.bgp.follow import Follower
    from publiccore.collectors.bgp.process import ProcessConfig

    from publiccore.store import open_configured

    settings = _settings(args)
    if args.action == "status":
        return _status(args, settings)
    options = _options(args, settings, since=_when(args.since, "--since"), once=args.once)
    config = ProcessConfig.from_settings(settings.bgp, hints=args.hints or settings.root.hints)
    with open_configured(settings, args.store) as store:
        follower = Follower(store, options, config, clock=_clock(_when(args.now, "--now")))

        async def main() -> Any:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            return await follower.run(stop)

        counts = asyncio.run(main())
    print(
        f"processed {counts.processed} files, refused {counts.refused}, failed {counts.failed}, "
        f"missing {counts.missing}, waiting {counts.waiting}",
        file=sys.stderr,
    )
    return 0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(dt.timedelta(seconds=int(seconds)))


def _status(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from publiccore.collectors.bgp.follow import collector_status

    from publiccore.store import open_configured

    with open_configured(settings, args.store) as store:
        rows = collector_status(store, now=_clock(_when(args.now, "--now"))())
    if args.json:
        json.dump([_status_json(r) for r in rows], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("no archive file processed yet (publiccore bgp follow)")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bgp follow")
    columns = ("source", "collector", "last file", "lag", "processed", "refused", "failures")
    for column in (*columns, "missing", "last error"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.source,
            r.collector,
            r.last_file or "-",
            _ago(r.lag_seconds),
            str(r.processed),
            str(r.refused),
            f"{r.failed} ({r.failing} to retry)" if r.failed else "0",
            str(r.missing),
            r.last_error[:60] or "-",
        )
    Console(width=160).print(table)
    return 0


def _status_json(row: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(row)


def _live(args: argparse.Namespace) -> int:
    from publiccore.collectors.bgp.live import LiveOptions, run_live

    from publiccore import roothints
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    live = settings.bgp.live
    servers = roothints.load_hints(args.hints or settings.root.hints or None)
    options = LiveOptions.from_settings(
        live,
        servers=servers,
        url=args.url,
        prefixes=args.prefix,
        follower_collectors=settings.bgp.follow.collectors,
    )
    with open_configured(settings, args.store) as store:
        stats = asyncio.run(run_live(store, options, duration=args.duration))
    print(
        f"{stats.messages} messages, {stats.malformed} malformed, {stats.connections} "
        f"connections, {stats.events} withdraw/restore events; saved state at start: "
        f"{stats.seed} ({stats.seeded_peers} peer routes taken)",
        file=sys.stderr,
    )
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from publiccore.collectors.bgp.backfill import backfill
    from publiccore.collectors.bgp.process import ProcessConfig

    from publiccore.store import open_configured

    settings = _settings(args)
    since = _when(args.since, "--since")
    until = _when(args.until, "--until")
    assert since is not None and until is not None
    if until < since:
        raise InputError("--until is before --since")
    options = _options(args, settings, since=since, once=True)
    config = ProcessConfig.from_settings(
        settings.bgp, hints=args.hints or settings.root.hints, command="bgp backfill"
    )
    with open_configured(settings, args.store) as store:
        result = backfill(
            store,
            options,
            config,
            until=until,
            dask=args.dask,
            progress=sys.stderr.isatty() if args.progress is None else args.progress,
        )
    print(
        f"processed {result.processed} files ({result.elements:,} elements), refused "
        f"{result.refused}, failed {result.failed}, already done {result.skipped}",
        file=sys.stderr,
    )
    return 0 if result.failed == 0 else 1
