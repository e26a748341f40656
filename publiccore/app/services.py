"""``publiccore serve`` and ``publiccore run``: the long-running services that span stages.

- ``serve`` is the collector: the ingest API (``collectors.ingest``) and the exporter
  (``exporters.prometheus``: ``/metrics``, ``/api/v1/events``) on one port, over one store.
- ``run`` is the single-machine main job: ``serve`` plus a probe agent (``probes.agent``) in one
  process. The agent measures on its schedule (first root round at once), spools every record and
  uploads it over loopback to the collector with the token of a local probe that ``run``
  registers once, exactly as a volunteer's agent would; a live summary shows the latest round.

Like ``cli.py``, this module wires stages together, so it imports them lazily, inside functions;
no stage imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import pathlib
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from publiccore import cliargs
from publiccore import config as cfg
from publiccore.clock import utc_now
from publiccore.errors import ConfigError
from publiccore.store import open_configured

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry
    from rich.console import RenderableType

    from publiccore.collectors.connections import ConnectionLimits
    from publiccore.probes.agent import Measurement
    from publiccore.probes.spool import Spool
    from publiccore.records import ProbeRef, Record
    from publiccore.store import Store

log = logging.getLogger("publiccore.run")

FAMILIES = ("ipv4", "ipv6")
TRANSPORTS = ("udp", "tcp")
RUN_DRAIN_SECONDS = 60.0  # with --rounds: how long the last round may take to upload


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` and ``serve`` commands."""
    run = sub.add_parser(
        "run", help="the main job on one machine: agent + collector + /metrics, live summary"
    )
    cliargs.add_config_and_store(run)
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="collector address (default: serve.listen, 127.0.0.1:8478)",
    )
    cliargs.add_hints_and_anchors(run)
    run.add_argument(
        "--rounds",
        type=cliargs.positive_int,
        metavar="N",
        help="stop once N root rounds are stored (default: run until Ctrl-C)",
    )
    run.add_argument(
        "--plain",
        action="store_true",
        help="one line per round instead of the live table (also when not a TTY)",
    )
    run.set_defaults(func=_run)

    serve = sub.add_parser(
        "serve", help="run the collector: ingest API, /metrics and /api/v1/events (HTTP)"
    )
    cliargs.add_config_and_store(serve)
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (default: serve.listen; port 0 picks one)",
    )
    serve.add_argument(
        "--workers",
        type=cliargs.positive_int,
        default=1,
        metavar="N",
        help="processes sharing the port, each with its own store connection "
        "(default 1; rate limits, counters and aggregates are then per "
        "process)",
    )
    serve.set_defaults(func=_serve)


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); raise ConfigError."""
    try:
        return cfg.parse_listen(text)
    except ValueError as exc:
        raise ConfigError(f"listen address: {exc}") from None


def collector_app(
    store: Store, settings: cfg.Settings, *, registry: CollectorRegistry | None = None
) -> web.Application:
    """The collector: ingest API plus the exporter's /metrics, /api/v1/events, /api/v1/impact.

    ``registry`` (a new one by default) is served on /metrics after the aggregates; ``run``
    registers its agent's metrics there. Raises InputError for a bad events file.
    """
    from publiccore.collectors import ingest
    from publiccore.exporters import impact_api, prometheus

    app = ingest.make_app(store, settings)
    exporter = prometheus.mount(
        app,
        store,
        settings,
        registry=registry,
        ingest_counts=prometheus.ingest_counts_from(app[ingest.STATS_KEY]),
    )
    impact_api.mount(app, store, settings, registry=exporter.registry, events=exporter.events)
    return app


# --- serve ------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    host, port = listen_address(args.listen or settings.serve.listen)
    if args.workers > 1:
        return _serve_workers(args, settings, host, port)
    with open_configured(settings, args.store) as store:
        app = collector_app(store, settings)
        asyncio.run(serve_forever(app, host, port, limits=connection_limits(settings)))
    return 0


def _serve_workers(args: argparse.Namespace, settings: cfg.Settings, host: str, port: int) -> int:
    """Fork ``--workers`` processes, each with its own store and its own listening socket.

    The sockets share the port with SO_REUSEPORT, so the kernel spreads new connections over
    the workers (one shared socket let a burst of keep-alive connections land on whichever
    worker accepted first). ``listening on …`` is printed once every worker listens.
    """
    import traceback

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Reserve the port (bound, not listening: it never receives connections).
    reserve = socket.socket(family, socket.SOCK_STREAM)
    try:
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserve.bind((host, port))
    except OSError as exc:
        reserve.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = reserve.getsockname()
    ready_read, ready_write = os.pipe()
    children: list[int] = []
    # SIGTERM/SIGINT stay blocked until each process has its handlers: a stop request that
    # arrives while a worker is still starting waits for it instead of killing it half-way.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until SIGTERM, never return into the parent's code
            code = 1
            try:
                os.close(ready_read)
                reserve.close()
                sock = socket.create_server(
                    (host, bound[1]), family=family, backlog=1024, reuse_port=True
                )
                os.write(ready_write, b"1")
                os.close(ready_write)
                with open_configured(settings, args.store) as store:
                    asyncio.run(
                        serve_forever(
                            collector_app(store, settings),
                            sock=sock,
                            limits=connection_limits(settings),
                        )
                    )
                    code = 0
            except Exception:  # a worker's last words; the parent reports the exit status
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    os.close(ready_write)
    ready = 0
    while ready < args.workers:
        chunk = os.read(ready_read, args.workers)
        if not chunk:  # every worker has closed its end: some failed to listen
            break
        ready += len(chunk)
    os.close(ready_read)
    reserve.close()
    if ready < args.workers:  # a worker could not listen (its traceback is on stderr)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        for child in children:
            os.waitpid(child, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        raise ConfigError(
            f"only {ready} of {args.workers} workers could listen on {host}:{bound[1]}"
        )
    sys.stdout.write(f"listening on {_url(bound[0], bound[1])} ({args.workers} workers)\n")
    sys.stdout.flush()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    status = 0
    for child in children:
        _pid, wait_status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0:
            status = 1
    return status


def _url(host: object, port: object) -> str:
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return f"http://{shown}:{port}"


def connection_limits(settings: cfg.Settings) -> ConnectionLimits:
    """The ``[serve]`` connection limits for ``collectors.connections``."""
    from publiccore.collectors.connections import ConnectionLimits

    serve = settings.serve
    return ConnectionLimits(
        max_connections=serve.max_connections,
        max_connections_per_address=serve.max_connections_per_address,
        header_timeout_seconds=serve.header_timeout_seconds,
        keepalive_timeout_seconds=serve.keepalive_timeout_seconds,
        per_address_exempt=frozenset(serve.per_address_exempt),
    )


async def start_site(
    app: web.Application,
    host: str = "",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    limits: ConnectionLimits | None = None,
) -> tuple[web.AppRunner, list[str]]:
    """Start serving ``app``; return its runner (``cleanup()`` it) and the bound URLs.

    Connections are bounded and timed out by ``limits`` (the defaults of ``[serve]`` when
    None); repeated log lines are rate-limited and never carry a peer address.
    """
    from aiohttp import web

    from publiccore.collectors import connections

    connections.install_log_hygiene()
    # No access log: the collector never records or exposes a probe's address.
    # auto_decompress off: collectors.ingest decompresses gzip itself, capped (no gzip bombs).
    # lingering_time 0: a body refused early is not read and discarded (the handler closes).
    runner = connections.GuardedRunner(
        app,
        limits=limits or connections.ConnectionLimits(),
        access_log=None,
        handle_signals=False,
        auto_decompress=False,
        lingering_time=0.0,
    )
    await runner.setup()
    try:
        if sock is not None:
            await web.SockSite(runner, sock).start()
        else:
            await web.TCPSite(runner, host, port, backlog=1024).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return runner, [_url(a[0], a[1]) for a in runner.addresses]


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    return stop


async def serve_forever(
    app: web.Application,
    host: str = "",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    limits: ConnectionLimits | None = None,
) -> None:
    """Serve ``app`` on host:port (or a listening ``sock``) until SIGTERM/SIGINT.

    With host:port, prints ``listening on http://HOST:PORT`` once ready.
    """
    stop = stop_on_signals()
    runner, urls = await start_site(app, host, port, sock=sock, limits=limits)
    try:
        if sock is None:
            for url in urls:
                sys.stdout.write(f"listening on {url}\n")
            sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


# --- run: the local probe ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LocalProbe:
    """The probe ``run`` measures as: its registered identity and its token."""

    ref: ProbeRef
    token: str
    created: bool  # registered by this start


def run_state_paths(
    settings: cfg.Settings, store_path: str | None
) -> tuple[pathlib.Path, pathlib.Path]:
    """Where ``run`` keeps its spool and its probe's credentials: beside the SQLite store.

    Both belong to that store (the spooled records carry the probe id registered in it), so a
    second store gets its own. With PostgreSQL they live in the data folder.
    """
    if store_path or not settings.store.url:
        store = pathlib.Path(store_path or settings.store.path)
        base = store.parent / store.stem
    else:
        base = cfg.data_home() / "run"
    return (
        base.with_name(base.name + ".run-spool.sqlite"),
        base.with_name(base.name + ".run-probe.json"),
    )


def local_probe(store: Store, settings: cfg.Settings, credentials: pathlib.Path) -> LocalProbe:
    """The local probe from ``credentials`` (a JSON file, mode 0600), registered if need be.

    A probe the store does not know yet is registered with the saved id and token (a fresh
    store keeps the spool's records uploadable); a revoked or mismatched one is replaced by a
    new registration. Country and ASN are ``[probe] country/asn`` (``ZZ``/0 when unset).
    """
    from publiccore.records import ProbeRef
    from publiccore.store import ProbeRegistration
    from publiccore.store.registry import new_probe_id, new_token, token_hash

    country = (settings.probe.country or "ZZ").upper()
    saved = _read_credentials(credentials)
    if saved is not None:
        probe_id, token = saved
        registered = store.probe_by_token_hash(token_hash(token))
        if registered is not None and registered.id == probe_id and registered.revoked is None:
            if (registered.country, registered.asn) != (country, settings.probe.asn):
                log.warning(
                    "the local probe %s is registered as %s/AS%d; [probe] says %s/AS%d "
                    "(delete %s to register anew)",
                    probe_id,
                    registered.country,
                    registered.asn,
                    country,
                    settings.probe.asn,
                    credentials,
                )
            return LocalProbe(
                ProbeRef(id=probe_id, asn=registered.asn, country=registered.country),
                token,
                created=False,
            )
        if all(p.id != probe_id for p in store.list_probes()):
            store.add_probe(
                ProbeRegistration(
                    id=probe_id,
                    country=country,
                    asn=settings.probe.asn,
                    token_hash=token_hash(token),
                    name="publiccore run (this host)",
                )
            )
            return LocalProbe(
                ProbeRef(id=probe_id, asn=settings.probe.asn, country=country), token, created=True
            )
    probe_id, token = new_probe_id(), new_token()
    store.add_probe(
        ProbeRegistration(
            id=probe_id,
            country=country,
            asn=settings.probe.asn,
            token_hash=token_hash(token),
            name="publiccore run (this host)",
        )
    )
    _write_credentials(credentials, probe_id, token)
    return LocalProbe(
        ProbeRef(id=probe_id, asn=settings.probe.asn, country=country), token, created=True
    )


def _read_credentials(path: pathlib.Path) -> tuple[str, str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the local probe's credentials {path}: {exc} "
            "(delete the file to register a new local probe)"
        ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("id"), str)
        or not isinstance(data.get("token"), str)
    ):
        raise ConfigError(
            f'{path}: expected {{"id": …, "token": …}} (delete the file to '
            "register a new local probe)"
        )
    return data["id"], data["token"]


def _write_credentials(path: pathlib.Path, probe_id: str, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"id": probe_id, "token": token}, out)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


# --- run: the summary -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LetterRow:
    """One root letter in the latest round: per family × transport, RTT in ms or a failure."""

    letter: str
    cells: dict[tuple[str, str], str]
    reachable: dict[tuple[str, str], bool]
    site: str
    serial: str
    integrity: str


def letter_rows(records: Sequence[Record]) -> list[LetterRow]:
    """Summarise one root round per letter (``. SOA`` over UDP and TCP, each family)."""
    from publiccore.probes.summary import summarise_round

    rows = []
    for letter in summarise_round(records).letters:
        cells = {
            key: f"{q.rtt_seconds * 1000:.0f} ms"
            if q.answered and q.rtt_seconds is not None
            else q.problem or "-"
            for key, q in letter.soa.items()
        }
        rows.append(
            LetterRow(
                letter=letter.letter,
                cells=cells,
                reachable={key: q.answered for key, q in letter.soa.items()},
                site=", ".join(letter.sites) or "-",
                serial=", ".join(map(str, letter.serials)) or "-",
                integrity=", ".join(letter.outcomes) or "-",
            )
        )
    return rows


def round_line(number: int, records: Sequence[Record]) -> str:
    """One plain line for a root round: answered targets per family × transport, integrity."""
    from publiccore.probes.summary import summarise_round

    summary = summarise_round(records)
    parts = []
    for family in FAMILIES:
        for transport in TRANSPORTS:
            ok, asked = summary.soa_answered(family, transport)
            if asked:
                parts.append(f"{family}/{transport} {ok}/{asked}")
    outcomes = summary.outcome_letters()
    integrity = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    silent = (
        "" if summary.answered_addresses else " — no root server answered (is this host offline?)"
    )
    return (
        f"root round {number}: {len(records)} addresses of {len(summary.letters)} letters; SOA "
        f"answered {', '.join(parts) or 'by none'}; integrity {integrity or '-'}{silent}"
    )


@dataclasses.dataclass(slots=True)
class RunState:
    """What the live summary shows; updated by the round hook and the refresher."""

    probe: ProbeRef
    url: str
    store_label: str
    interval_seconds: float
    rounds: int = 0
    last_round: list[Record] = dataclasses.field(default_factory=list)
    last_round_at: dt.datetime | None = None
    records_stored: int = 0
    spool_depth: int = 0
    last_upload: dt.datetime | None = None
    upload_failure: str = ""
    accepted: int = 0
    rejected: int = 0


def render_summary(state: RunState, now: dt.datetime) -> RenderableType:
    """The live summary as a rich renderable: header lines and the per-letter table."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def ago(when: dt.datetime | None) -> str:
        return "never" if when is None else f"{max(0, int((now - when).total_seconds()))} s ago"

    probe = state.probe
    head = Text()
    head.append("publiccore run", style="bold")
    head.append(
        f"  probe {probe.id} ({probe.country}, AS{probe.asn or 0})  ·  store {state.store_label}\n"
    )
    if probe.country == "ZZ":
        head.append(
            "set [probe] country and asn in the configuration to label this host's data\n",
            style="yellow",
        )
    head.append(f"collector {state.url}  ·  {state.url}/metrics  ·  {state.url}/api/v1/events\n")
    next_in = ""
    if state.last_round_at is not None:
        due = state.last_round_at + dt.timedelta(seconds=state.interval_seconds)
        next_in = f" · next in {max(0, int((due - now).total_seconds()))} s"
    head.append(
        f"root rounds {state.rounds} (last {ago(state.last_round_at)}{next_in})  ·  "
        f"records stored {state.records_stored}\n"
    )
    head.append(
        f"spool waiting {state.spool_depth}  ·  last upload {ago(state.last_upload)}  ·  "
        f"ingest accepted {state.accepted}, rejected {state.rejected}"
    )
    if state.upload_failure:
        head.append(f"\nlast upload failure: {state.upload_failure}", style="red")
    table = Table(
        title=None if state.last_round else "waiting for the first root round…",
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("letter")
    for family in FAMILIES:
        for transport in TRANSPORTS:
            table.add_column(f"{family.removeprefix('ip')} {transport}", justify="right")
    table.add_column("site")
    table.add_column("serial")
    table.add_column("integrity")
    for row in letter_rows(state.last_round):
        cells = []
        for family in FAMILIES:
            for transport in TRANSPORTS:
                text = row.cells.get((family, transport), "-")
                good = row.reachable.get((family, transport))
                style = "" if good is None else ("green" if good else "red")
                cells.append(Text(text, style=style))
        integrity_style = "green" if row.integrity == "iana" else "yellow"
        table.add_row(
            row.letter,
            *cells,
            row.site[:32],
            row.serial,
            Text(row.integrity, style=integrity_style),
        )
    return Group(head, table)


# --- run --------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from publiccore import roothints
    from publiccore.probes import agent_commands, root
    from publiccore.probes.spool import Spool

    settings = cfg.load(args.config)
    if args.hints:
        settings.root.hints = args.hints
    if args.anchors:
        settings.root.anchors = args.anchors
    host, port = listen_address(args.listen or settings.serve.listen)
    # Bad hints or anchors are refused before anything is created or registered.
    roothints.load_hints(settings.root.hints or None)
    root.RootConfig.from_settings(settings.root)
    spool_path, credentials = run_state_paths(settings, args.store)
    with open_configured(settings, args.store) as store:
        probe = local_probe(store, settings, credentials)
        state = RunState(
            probe=probe.ref,
            url="",
            store_label=args.store or settings.store.url.split("@")[-1] or settings.store.path,
            interval_seconds=settings.root.interval_seconds,
        )

        def on_round(records: list[Record]) -> None:
            state.last_round = records
            state.last_round_at = utc_now()

        measurements = agent_commands.build_measurements(
            settings, probe.ref, start_delay_max_seconds=0.0
        )
        measurements = [_observed(m, on_round) if m.kind == "root" else m for m in measurements]
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        spool = Spool(spool_path, quota_bytes=settings.agent.spool_quota_bytes)
        try:
            live = not args.plain and sys.stdout.isatty()
            asyncio.run(
                _run_async(
                    store,
                    settings,
                    spool,
                    measurements,
                    probe,
                    state,
                    host=host,
                    port=port,
                    rounds=args.rounds,
                    live=live,
                )
            )
        finally:
            spool.close()
    return 0


def _observed(measurement: Measurement, on_round: Callable[[list[Record]], None]) -> Measurement:
    """``measurement`` whose rounds also go to ``on_round`` (for the summary)."""
    inner = measurement.run_round

    async def run_round() -> list[Record]:
        records = await inner()
        on_round(records)
        return records

    return dataclasses.replace(measurement, run_round=run_round)


async def _run_async(
    store: Store,
    settings: cfg.Settings,
    spool: Spool,
    measurements: Sequence[Measurement],
    probe: LocalProbe,
    state: RunState,
    *,
    host: str,
    port: int,
    rounds: int | None,
    live: bool,
) -> None:
    from prometheus_client import CollectorRegistry

    from publiccore.collectors import ingest
    from publiccore.probes import agent as agent_mod

    stop = stop_on_signals()
    registry = CollectorRegistry()
    app = collector_app(store, settings, registry=registry)
    runner, urls = await start_site(app, host, port, limits=connection_limits(settings))
    try:
        state.url = urls[0]
        options = agent_mod.AgentOptions(
            collector_url=state.url,
            token=probe.token,
            batch_records=settings.agent.upload_batch_records,
            upload_interval_seconds=settings.agent.upload_interval_seconds,
            backoff_max_seconds=settings.agent.backoff_max_seconds,
        )
        agent = agent_mod.Agent(spool, measurements, options, registry=registry)
        stats = app[ingest.STATS_KEY]

        async def refresh() -> None:
            snapshot = await agent.refresh_stats()
            state.rounds = agent.round_counts["root"]
            if snapshot is not None:
                state.spool_depth = snapshot.depth
                state.last_upload = snapshot.last_upload_success
                state.upload_failure = (
                    snapshot.last_failure_reason or ""
                    if snapshot.last_upload_failure
                    and (
                        snapshot.last_upload_success is None
                        or snapshot.last_upload_failure > snapshot.last_upload_success
                    )
                    else ""
                )
            state.accepted = sum(stats.accepted_by_kind.values())
            state.rejected = sum(stats.rejected_by_reason.values())
            state.records_stored = await asyncio.to_thread(store.count_records)

        agent_task = asyncio.create_task(agent.run(stop), name="agent")
        watcher = asyncio.create_task(_watch(state, refresh, stop, rounds=rounds, live=live))
        follow_task = _start_bgp_follow(store, settings, stop)  # [bgp.follow] enabled = true
        try:
            await agent_task
        finally:
            stop.set()
            await watcher
            if follow_task is not None:
                follow_task.cancel()  # a claim left open is taken over once this process ends
                with contextlib.suppress(asyncio.CancelledError):
                    await follow_task
        await refresh()
        _print_final(state)
    finally:
        await runner.cleanup()


def _start_bgp_follow(
    store: Store, settings: cfg.Settings, stop: asyncio.Event
) -> asyncio.Task[object] | None:
    """The archive follower as a task of ``run`` when ``[bgp.follow] enabled`` (never ``serve``)."""
    from publiccore.collectors.bgp.follow import configured_follower

    follower = configured_follower(store, settings)
    if follower is None:
        return None
    task: asyncio.Task[object] = asyncio.create_task(follower.run(stop), name="bgp-follow")
    return task


async def _watch(
    state: RunState,
    refresh: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    rounds: int | None,
    live: bool,
) -> None:
    """Keep the summary fresh; with ``rounds``, stop once that many are stored (bounded wait)."""
    from rich.console import Console
    from rich.live import Live

    loop = asyncio.get_running_loop()
    drained_by: float | None = None
    printed = 0
    console = Console()
    view = (
        Live(
            render_summary(state, utc_now()), console=console, refresh_per_second=2, transient=True
        )
        if live
        else None
    )
    if view is not None:
        view.start()
    else:
        sys.stdout.write(
            f"collector {state.url} (metrics {state.url}/metrics); probe "
            f"{state.probe.id} ({state.probe.country}, AS{state.probe.asn or 0}); "
            f"store {state.store_label}\n"
        )
        sys.stdout.flush()
    try:
        while not stop.is_set():
            await refresh()
            if view is not None:
                view.update(render_summary(state, utc_now()))
            elif state.rounds > printed:
                printed = state.rounds
                sys.stdout.write(
                    round_line(state.rounds, state.last_round)
                    + f"; stored {state.records_stored} records, spool "
                    f"{state.spool_depth}\n"
                )
                sys.stdout.flush()
            if rounds is not None and state.rounds >= rounds:
                if drained_by is None:
                    drained_by = loop.time() + RUN_DRAIN_SECONDS
                if state.spool_depth == 0 or loop.time() > drained_by:
                    stop.set()
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        if view is not None:
            view.stop()


def _print_final(state: RunState) -> None:
    from rich.console import Console

    if state.last_round:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)
        console.print(render_summary(state, utc_now()))
    sys.stdout.write(
        f"stopped: {state.rounds} root rounds, {state.records_stored} records in "
        f"the store, {state.spool_depth} waiting in the spool\n"
    )
    sys.stdout.flush()
