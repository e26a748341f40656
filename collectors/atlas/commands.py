"""``publiccore import atlas …``: RIPE Atlas results from files or the REST API into the store."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import TYPE_CHECKING, Any

from publiccore import cliargs
from publiccore import config as cfg
from publiccore.clock import parse_when
from publiccore.errors import ConfigError, InputError

if TYPE_CHECKING:
    from publiccore.collectors.atlas import importer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imports = sub.add_parser("import", help="import measurements from other sources")
    sources = imports.add_subparsers(dest="import_command", required=True, metavar="SOURCE")
    atlas = sources.add_parser(
        "atlas",
        help="RIPE Atlas DNS and traceroute results (files, or the REST API)",
        description="Import RIPE Atlas results from files (JSON array, JSON Lines, "
        '{"results": [...]}, gzip or bzip2) or from the Atlas REST API (--measurement), '
        "optionally following new results (--follow). See docs/atlas.md.",
    )
    cliargs.add_config_and_store(atlas)
    atlas.add_argument("files", nargs="*", metavar="FILE", help="Atlas result files")
    atlas.add_argument(
        "--probes", metavar="FILE", help="probe metadata: /api/v2/probes/ JSON or the archive"
    )
    atlas.add_argument(
        "--probes-api",
        action="store_true",
        help="file imports: look up probes that --probes does not list in the Atlas probes "
        "API (at --api, else [atlas] api_url)",
    )
    atlas.add_argument(
        "--measurement", type=int, nargs="+", metavar="ID", help="read these from the API"
    )
    atlas.add_argument(
        "--builtins",
        action="store_true",
        help="read the root built-ins whose ids are confirmed (docs/atlas.md) from the API",
    )
    atlas.add_argument("--start", metavar="TIME", help="API window start (RFC 3339 or POSIX)")
    atlas.add_argument("--stop", metavar="TIME", help="API window end (default: now)")
    atlas.add_argument("--api", metavar="URL", help="Atlas API base URL (default: [atlas] api_url)")
    atlas.add_argument("--key", metavar="KEY", help="Atlas API key (default: [atlas] key)")
    atlas.add_argument(
        "--follow", action="store_true", help="keep polling for new results (a restart resumes)"
    )
    atlas.add_argument(
        "--every", type=cliargs.positive_float, metavar="MINUTES", help="poll interval (--follow)"
    )
    atlas.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)  # tests
    atlas.add_argument(
        "--hints",
        nargs="+",
        metavar="FILE",
        help="root hints history (default: the bundled one, 2011 to now)",
    )
    atlas.add_argument("--anchors", metavar="FILE", help="trust anchors (default: bundled)")
    atlas.add_argument("--json", action="store_true", help="print the counts as JSON")
    atlas.set_defaults(func=_import_atlas)


def _posix(text: str) -> int:
    try:
        return (
            int(float(text))
            if text.replace(".", "", 1).isdigit()
            else int(parse_when(text).timestamp())
        )
    except ValueError as exc:
        raise ConfigError(f"not a time: {text!r} ({exc})") from None


SAGAN_MISSING = (
    "publiccore import atlas needs ripe-atlas-sagan (GPLv3), an optional extra: "
    "pip install 'publiccore[atlas]' (docs/atlas.md, Licence)"
)


def require_sagan() -> None:
    """Raise ConfigError (one line) when ripe-atlas-sagan, the optional ``atlas`` extra, is
    not installed."""
    try:
        import ripe.atlas.sagan  # noqa: F401  (the parser mapping.py uses)
    except ImportError:
        raise ConfigError(SAGAN_MISSING) from None


def _import_atlas(args: argparse.Namespace) -> int:
    import asyncio

    require_sagan()
    from publiccore.collectors.atlas import api, builtins, files, importer, mapping, probemeta
    from publiccore.probes import dnssec

    from publiccore.clock import utc_now
    from publiccore.records import RecordSource
    from publiccore.roothints import HintsHistory
    from publiccore.store import open_configured

    settings = cfg.load(args.config)
    atlas = settings.atlas
    if args.api:
        atlas.api_url = args.api
    if args.key:
        atlas.key = args.key
    if args.every:
        atlas.follow_interval_seconds = args.every * 60.0
    atlas.check()
    if args.builtins:
        args.measurement = sorted({*(args.measurement or ()), *builtins.BY_ID})
    if not args.files and not args.measurement:
        raise ConfigError("give result FILEs or --measurement ID…")
    if args.files and args.measurement:
        raise ConfigError("give either FILEs or --measurement, not both")
    if args.follow and not args.measurement:
        raise ConfigError("--follow needs --measurement ID…")
    if args.probes_api and args.measurement:
        raise ConfigError("--probes-api is for file imports (--measurement looks probes up)")
    if args.measurement and not args.follow and not args.start:
        raise ConfigError("--measurement without --follow needs --start")
    probe_table: dict[int, probemeta.ProbeInfo] = probemeta.load(args.probes) if args.probes else {}
    mapper = mapping.Mapper(
        hints=HintsHistory.load(args.hints),
        probes=probe_table,
        anchors=dnssec.load_anchors(args.anchors or settings.root.anchors or None),
        questions=builtins.questions(),  # definitions read from the API replace these
    )
    store = open_configured(settings, args.store)
    imp = importer.Importer(
        mapper,
        store,
        batch=atlas.batch_records,
        max_future_seconds=settings.serve.max_future_seconds,
    )
    try:
        if args.files:
            inputs = []
            for name in args.files:
                path = pathlib.Path(name)
                if not path.is_file():
                    raise InputError(f"no such file: {name}")
                digest = files.sha256_of(path)
                inputs.append((path, RecordSource(name=mapping.SOURCE_NAME, file_sha256=digest)))
            if not args.probes_api:
                for path, source in inputs:
                    imp.add_items(files.read_results(path), source=source, label=str(path))
                    imp.flush()
            else:

                async def run_files() -> None:
                    async with api.AtlasApi(atlas) as client:
                        lookup = api.ProbeLookup(api=client, table=probe_table)
                        for path, source in inputs:
                            await api.import_items(
                                lookup,
                                imp,
                                files.read_results(path),
                                source=source,
                                label=str(path),
                            )
                    print(
                        f"probes looked up in {atlas.api_url}: {len(lookup.asked)} asked, "
                        f"{lookup.found} found",
                        file=sys.stderr,
                    )

                asyncio.run(run_files())
        else:
            stop = _posix(args.stop) if args.stop else int(utc_now().timestamp())
            start = _posix(args.start) if args.start else None

            async def run() -> None:
                async with api.AtlasApi(atlas) as client:
                    fetcher = api.Fetcher(
                        api=client, imp=imp, probe_table=probe_table, fetch_probes=True
                    )
                    if args.follow:
                        await api.follow(
                            fetcher,
                            store,
                            args.measurement,
                            start=start,
                            rounds=args.rounds,
                            on_round=lambda n: _progress(imp.stats, n),
                        )
                    else:
                        assert start is not None  # checked above
                        await api.import_period(fetcher, args.measurement, start=start, stop=stop)

            asyncio.run(run())
    finally:
        imp.flush()
        store.close()
    _report(imp.stats, as_json=args.json)
    return 1 if imp.stats.malformed else 0


def _progress(stats: importer.ImportStats, rounds: int) -> None:
    print(
        f"round {rounds}: {stats.results} results, {stats.stored} stored, "
        f"{stats.duplicates} already stored",
        file=sys.stderr,
        flush=True,
    )


def _report(stats: importer.ImportStats, *, as_json: bool) -> None:
    data: dict[str, Any] = stats.to_json()
    for where in stats.malformed_at:
        print(f"publiccore: malformed result at {where}", file=sys.stderr)
    if as_json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    kinds = ", ".join(f"{k} {n}" for k, n in data["records"].items()) or "none"
    skipped = ", ".join(f"{k} {n}" for k, n in data["skipped"].items()) or "none"
    print(
        f"{stats.results} results: {stats.stored} stored, {stats.duplicates} already stored "
        f"(records: {kinds}); skipped: {skipped}; malformed: {stats.malformed}; "
        f"probes without a country: {data['probes_without_country']}"
    )
