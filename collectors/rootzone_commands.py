"""``publiccore root …``: root zone snapshots and RSSAC047 correctness (collector side)."""

from __future__ import annotations

import argparse
import json
import sys

from publiccore import config as cfg
from publiccore.clock import parse_when, utc_now
from publiccore.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    root = sub.add_parser("root", help="root zone snapshots and RSSAC047 correctness")
    kinds = root.add_subparsers(dest="root_command", required=True, metavar="COMMAND")
    zone = kinds.add_parser("zone", help="the root zones correctness is judged against")
    actions = zone.add_subparsers(dest="zone_command", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="store root zone files by their SOA serial")
    imp.add_argument("files", nargs="+", metavar="FILE", help="a (signed) root zone file")
    imp.add_argument("--store", metavar="PATH", help="SQLite store (default: [store])")
    imp.set_defaults(func=_import)
    fetch = actions.add_parser("fetch", help="download the current root zone and store it")
    fetch.add_argument("--url", help="where from (default: [aggregate] root_zone_url)")
    fetch.add_argument("--store", metavar="PATH", help="SQLite store (default: [store])")
    fetch.set_defaults(func=_fetch)
    listing = actions.add_parser("list", help="list the stored root zones")
    listing.add_argument("--store", metavar="PATH", help="SQLite store (default: [store])")
    listing.set_defaults(func=_list)
    judge = kinds.add_parser(
        "correctness", help="judge stored answers and print correctness per country and letter"
    )
    judge.add_argument("--since", metavar="TIME", help="window start (default: 30 days ago)")
    judge.add_argument("--until", metavar="TIME", help="window end (default: now)")
    judge.add_argument("--store", metavar="PATH", help="SQLite store (default: [store])")
    judge.add_argument(
        "--rejudge",
        action="store_true",
        help="drop the window's verdicts first and judge every record again",
    )
    judge.add_argument("--json", action="store_true", help="print JSON")
    judge.set_defaults(func=_correctness)


def _import(args: argparse.Namespace) -> int:
    from publiccore.collectors import rootzone

    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    with open_configured(settings, args.store) as store:
        for path in args.files:
            done = rootzone.import_zone_file(store, path)
            _print_imported(path, done)
    return 0


def _print_imported(where: str, done: object) -> None:
    from publiccore.collectors.rootzone import Imported

    assert isinstance(done, Imported)
    if done.new:
        print(
            f"{where}: zone {done.serial} stored ({done.size} bytes, "
            f"{done.packed_size} compressed, sha256 {done.sha256[:16]}…)"
        )
    else:
        print(f"{where}: zone {done.serial} already stored")


def _fetch(args: argparse.Namespace) -> int:
    import asyncio

    from publiccore.collectors import rootzone

    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    url = args.url or settings.aggregate.root_zone_url
    if not url:
        raise ConfigError("no URL: give --url or set [aggregate] root_zone_url")
    with open_configured(settings, args.store) as store:
        done = asyncio.run(rootzone.fetch_zone(store, url))
        _print_imported(url, done)
    return 0


def _list(args: argparse.Namespace) -> int:
    import datetime as dt

    from publiccore.clock import to_rfc3339
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    with open_configured(settings, args.store) as store:
        zones = store.root_zones()  # type: ignore[attr-defined]
    if not zones:
        print("no root zone stored (publiccore root zone import FILE)")
    for z in zones:
        when = to_rfc3339(dt.datetime.fromtimestamp(z.imported, dt.UTC))
        print(f"{z.serial}  stored {when}  {z.size} bytes  {z.source}")
    return 0


def _correctness(args: argparse.Namespace) -> int:
    import datetime as dt

    from publiccore.collectors.derive import correctness

    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    try:
        until = parse_when(args.until) if args.until else utc_now()
        since = parse_when(args.since) if args.since else until - dt.timedelta(days=30)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    lo, hi = since.timestamp(), until.timestamp()
    with open_configured(settings, args.store) as store:
        tables = store  # SqlStore: the root zone tables
        if args.rejudge:
            tables.clear_correctness(since=lo, until=hi)  # type: ignore[attr-defined]
        for _ in range(100_000):  # bounded: each pass judges up to BATCH_RECORDS records
            if not correctness.judge_pending(tables, since=lo, until=hi):
                break
        ratio, judged = correctness.correctness(tables, since=lo, until=hi)
    rows = [
        {"country": key[0], "letter": key[1], "ratio": ratio[key], "judged": int(judged[key])}
        for key in sorted(ratio)
    ]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("no answer judged in the window (no record, or no stored zone of its 48 h)")
    for row in rows:
        verdict = "pass" if row["ratio"] >= correctness.THRESHOLD else "fail"
        print(
            f"{row['country']}  {row['letter']}  correctness {row['ratio']:.4f}  "
            f"judged {row['judged']}  {verdict}"
        )
    return 0
