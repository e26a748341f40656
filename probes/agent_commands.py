"""``publiccore agent run | flush | requeue | status``: the probe agent and what its spool holds."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import pathlib
import sys
from typing import TYPE_CHECKING

from publiccore import cliargs
from publiccore import config as cfg
from publiccore.clock import utc_now
from publiccore.errors import ConfigError

if TYPE_CHECKING:
    from publiccore.probes.agent import Measurement
    from publiccore.probes.spool import Spool

    from publiccore.records import ProbeRef, Record, TraceTarget


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser("agent", help="the probe agent: rounds on a schedule, spool, upload")
    actions = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run", help="measure on schedule, spool every record, upload to the collector"
    )
    _common(run)
    run.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve /metrics here ('' for none; default: agent.metrics_listen)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="log every round and upload")
    run.set_defaults(func=_agent_run)
    flush = actions.add_parser(
        "flush",
        help="upload what the spool holds without measuring; exit 0 once it is empty "
        "(quarantined records do not count)",
    )
    _common(flush)
    flush.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up after this long (default 300)",
    )
    flush.set_defaults(func=_agent_flush)
    requeue = actions.add_parser(
        "requeue", help="put the quarantined records back in the upload queue (once fixed)"
    )
    _common(requeue)
    requeue.set_defaults(func=_agent_requeue)
    status = actions.add_parser(
        "status", help="what the spool holds, the last upload and why the last one failed"
    )
    _common(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_agent_status)


def _common(parser: argparse.ArgumentParser) -> None:
    cliargs.add_config(parser)
    parser.add_argument("--spool", metavar="PATH", help="spool file (default: agent.spool_path)")


def _agent_run(args: argparse.Namespace) -> int:
    import prometheus_client
    from publiccore.probes import agent as agent_mod
    from publiccore.probes.commands import probe_ref
    from publiccore.probes.spool import Spool

    settings = cfg.load(args.config)
    _setup_logging(args.verbose)
    log = logging.getLogger("publiccore.agent")
    if not settings.probe.country or not settings.probe.asn:
        log.warning(
            "probe.country / probe.asn not set: the collector fills them from the registration"
        )
    probe = probe_ref(settings)
    measurements = build_measurements(settings, probe)
    metrics_listen = (
        settings.agent.metrics_listen if args.metrics_listen is None else args.metrics_listen
    )
    if metrics_listen:
        try:
            cfg.parse_listen(metrics_listen)
        except ValueError as exc:
            raise ConfigError(f"agent.metrics_listen: {exc}") from None
    if settings.probe.collector_url and not settings.probe.token:
        raise ConfigError(
            "probe.collector_url is set but probe.token is empty "
            "(register the probe: publiccore probes add)"
        )
    options = agent_mod.AgentOptions(
        collector_url=settings.probe.collector_url,
        token=settings.probe.token,
        batch_records=settings.agent.upload_batch_records,
        upload_interval_seconds=settings.agent.upload_interval_seconds,
        backoff_max_seconds=settings.agent.backoff_max_seconds,
        metrics_listen=metrics_listen,
    )
    spool = Spool(
        args.spool or settings.agent.spool_path, quota_bytes=settings.agent.spool_quota_bytes
    )

    async def main() -> None:
        stop = asyncio.Event()
        agent_mod.install_signal_handlers(stop)
        agent = agent_mod.Agent(
            spool, measurements, options, registry=prometheus_client.CollectorRegistry()
        )
        log.info(
            "agent started: probe %s, spool %s, collector %s",
            probe.id,
            spool.path,
            options.collector_url or "(none)",
        )
        await agent.run(stop)
        log.info("agent stopped cleanly")

    try:
        asyncio.run(main())
    finally:
        spool.close()
    return 0


def build_measurements(
    settings: cfg.Settings, probe: ProbeRef, *, start_delay_max_seconds: float | None = None
) -> list[Measurement]:
    """The agent's measurements from ``settings``: root rounds, and traceroutes if targets are set.

    ``start_delay_max_seconds`` overrides ``root.start_delay_max_seconds`` (``publiccore run``
    starts its first round at once). Raises ConfigError for bad settings or unreadable hints or
    anchors.
    """
    from publiccore.probes import agent as agent_mod
    from publiccore.probes import root

    from publiccore import roothints

    targets = roothints.targets(roothints.load_hints(settings.root.hints or None))
    round_cfg = root.RootConfig.from_settings(settings.root)
    delay = (
        settings.root.start_delay_max_seconds
        if start_delay_max_seconds is None
        else start_delay_max_seconds
    )
    try:
        schedule = agent_mod.Schedule(settings.root.interval_seconds, delay)
    except ValueError as exc:
        raise ConfigError(f"[root]: {exc}") from None

    async def root_round() -> list[Record]:
        return await root.run_round(targets, round_cfg, probe=probe)

    measurements = [
        agent_mod.Measurement(
            kind="root",
            schedule=schedule,
            run_round=root_round,
            grace_seconds=2 * settings.root.timeout_seconds + 1.0,
        )
    ]
    if settings.traceroute.targets:
        measurements.append(_traceroute_measurement(settings, probe))
    return measurements


TRACE_CONCURRENCY = 4
TRACE_START_DELAY_MAX_SECONDS = 60.0


def _traceroute_measurement(settings: cfg.Settings, probe: ProbeRef) -> Measurement:
    """Paris traceroutes to ``traceroute.targets`` every ``traceroute.interval_seconds``."""
    from publiccore.probes import agent as agent_mod
    from publiccore.probes import traceroute

    try:
        targets = traceroute.make_targets(settings.traceroute.targets)
        trace_cfg = traceroute.TraceConfig(
            max_ttl=settings.traceroute.max_ttl, timeout_seconds=settings.traceroute.timeout_seconds
        )
        schedule = agent_mod.Schedule(
            settings.traceroute.interval_seconds,
            min(TRACE_START_DELAY_MAX_SECONDS, settings.traceroute.interval_seconds / 5),
        )
    except ValueError as exc:
        raise ConfigError(f"[traceroute]: {exc}") from None
    gate = asyncio.Semaphore(TRACE_CONCURRENCY)

    async def one(target: TraceTarget) -> Record:
        async with gate:
            return await traceroute.measure_trace(target, trace_cfg, probe=probe)

    async def trace_round() -> list[Record]:
        return list(await asyncio.gather(*(one(t) for t in targets)))

    grace = trace_cfg.timeout_seconds * trace_cfg.attempts + 1.0
    return agent_mod.Measurement(
        kind="traceroute", schedule=schedule, run_round=trace_round, grace_seconds=grace
    )


def _check_owner(path: pathlib.Path) -> None:
    """Refuse to touch another user's spool: SQLite would leave files the agent cannot write."""
    owner = path.stat().st_uid
    if owner != os.geteuid():
        try:
            import pwd

            name = pwd.getpwuid(owner).pw_name
        except (ImportError, KeyError):
            name = str(owner)
        raise ConfigError(
            f"the spool {path} belongs to {name}; run this as that user "
            f"(sudo -u {name} publiccore agent …)"
        )


def _agent_flush(args: argparse.Namespace) -> int:
    from publiccore.probes import agent as agent_mod

    settings = cfg.load(args.config)
    if not settings.probe.collector_url or not settings.probe.token:
        raise ConfigError("probe.collector_url and probe.token must be set to upload")
    options = agent_mod.AgentOptions(
        collector_url=settings.probe.collector_url,
        token=settings.probe.token,
        batch_records=settings.agent.upload_batch_records,
    )
    _settings, _path, spool = _open_spool(args)
    try:
        stats = asyncio.run(agent_mod.flush_spool(spool, options, max_seconds=args.max_seconds))
    finally:
        spool.close()
    if stats.depth:
        sys.stderr.write(
            f"publiccore: {stats.depth} records still spooled: "
            f"{stats.last_failure_reason or 'time is up'}\n"
        )
        return 1
    # Quarantined records will never upload (the collector refused them for good): they do not
    # make a flush fail, but they are said.
    sys.stdout.write(f"spool empty; {stats.acked_total} records uploaded in all\n")
    if stats.quarantined:
        sys.stderr.write(
            f"publiccore: note: {stats.quarantined} records quarantined (refused for good; "
            f"see agent status): {stats.last_quarantine_reason}\n"
        )
    return 0


def _agent_requeue(args: argparse.Namespace) -> int:
    _settings, _path, spool = _open_spool(args)
    try:
        moved = spool.requeue()
    finally:
        spool.close()
    sys.stdout.write(f"{moved} quarantined records back in the upload queue\n")
    return 0


def _setup_logging(verbose: bool) -> None:
    root_logger = logging.getLogger()
    if not root_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root_logger.addHandler(handler)
    logging.getLogger("publiccore").setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        logging.getLogger("publiccore.agent").setLevel(logging.INFO)


def _ago(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    return f"{when.strftime('%Y-%m-%d %H:%M:%S')} UTC ({seconds} s ago)"


def _open_spool(args: argparse.Namespace) -> tuple[cfg.Settings, pathlib.Path, Spool]:
    """The configured (or ``--spool``) spool of an agent that has run, opened; ConfigError
    when there is none or it is another user's."""
    from publiccore.probes.spool import Spool

    settings = cfg.load(args.config)
    path = pathlib.Path(args.spool or settings.agent.spool_path)
    if not path.exists():
        raise ConfigError(f"no spool at {path} (has the agent run yet?)")
    _check_owner(path)
    return settings, path, Spool(path, quota_bytes=settings.agent.spool_quota_bytes)


def _agent_status(args: argparse.Namespace) -> int:
    settings, path, spool = _open_spool(args)
    try:
        stats = spool.stats()
    finally:
        spool.close()
    if args.json:
        out = stats.to_json()
        out["spool_path"] = str(path)
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
        return 0
    now = utc_now()
    share = stats.bytes / stats.quota_bytes if stats.quota_bytes else 0.0
    lines = [
        f"spool           {path}",
        f"waiting         {stats.depth} records, {stats.bytes} bytes ({share:.1%} of quota)",
        f"oldest waiting  {_ago(stats.oldest_spooled, now)}",
        f"spooled (ever)  {stats.spooled_total} records; uploaded {stats.acked_total}; "
        f"dropped {stats.dropped_total}",
        f"last upload ok  {_ago(stats.last_upload_success, now)}",
        f"last failure    {_ago(stats.last_upload_failure, now)}",
    ]
    if stats.last_failure_reason:
        lines.append(f"failure reason  {stats.last_failure_reason}")
    lines.append(
        f"quarantined     {stats.quarantined} records refused for good, kept aside "
        f"({stats.quarantined_total} ever)"
    )
    if stats.last_quarantine_reason:
        lines.append(f"why             {stats.last_quarantine_reason}")
    if not settings.probe.collector_url:
        lines.append("note            probe.collector_url is not set: nothing will upload")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
