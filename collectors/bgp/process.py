"""One archive file against its collector's routing state: the work a follower / backfill
process does (blocking; run it in a process pool, never on an event loop).

A RIB dump goes through ``pipeline.analyze`` exactly as ``bgp visibility --transit`` runs it and
gives the same observations (``observations.observations``); it then becomes the collector's
state. An update file is applied to that state (per peer, state changes included) with the
pipeline's ``Timeline`` and gives the 5-minute bins: country visibility (IODA's BGP signal,
visible /24s per country) and root-prefix visibility. Inputs that do not belong together are
refused with a reason, never mixed in: an update file older than its base RIB or than the last
update applied, or from another collector.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from publiccore.collectors.bgp import observations as obs
from publiccore.collectors.bgp.pipeline import Analysis, Options, analyze
from publiccore.collectors.bgp.readers import make_reader
from publiccore.collectors.bgp.rib import FullFeedRule, Rib
from publiccore.collectors.bgp.roots import load_expected_origins
from publiccore.collectors.bgp.timeline import Timeline
from publiccore.collectors.bgp.visibility import country_index, full_feed_counts
from publiccore.collectors.bgp.watch import root_watch

from publiccore import roothints
from publiccore.config import BgpSettings
from publiccore.errors import InputError
from publiccore.geo import Geo
from publiccore.store import Observation

Status = Literal["done", "refused", "failed", "no_base"]
COMMAND = "bgp follow"


def root_peers(rib: Rib, watched: Sequence[str]) -> dict[str, Any]:
    """Per watched prefix, the sessions whose table has a route for exactly that prefix, as
    ``[collector, peer address, peer ASN, [prefix]]`` (the shape ``bgp live`` saves its own
    state in); more-specifics of a watched prefix are not looked for."""
    out: dict[str, Any] = {}
    for prefix in watched:
        per_peer = rib.routes.get(prefix) or {}
        peers = (rib.peers[index] for index in per_peer)
        out[prefix] = {
            "peers": sorted([p.collector, p.peer_address, p.peer_asn, [prefix]] for p in peers)
        }
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessConfig:
    """What every processing worker needs, picklable (paths, not loaded tables)."""

    options: Options = dataclasses.field(default_factory=Options)
    delegated: tuple[str, ...] = ()
    hints: str = ""  # empty: the bundled root hints
    origins: str = ""  # empty: the bundled expected origins
    reader: str = "bgpdump"
    command: str = COMMAND
    # compute part of each RIB's country figures in a forked child (``analyze(split=…)``);
    # None: the follower and backfill decide (workers that leave a core idle,
    # ``forked.spare_cores``), a Processor alone does not split
    split: bool | None = None

    @classmethod
    def from_settings(
        cls, bgp: BgpSettings, *, hints: str = "", command: str = COMMAND
    ) -> ProcessConfig:
        """The configuration ``[bgp]`` and ``[bgp.follow]`` describe."""
        return cls(
            options=Options(
                rule=FullFeedRule(
                    ratio=bgp.full_feed_ratio,
                    min_ipv4=bgp.full_feed_min_ipv4,
                    min_ipv6=bgp.full_feed_min_ipv6,
                ),
                threshold=bgp.visibility_threshold,
                bin_seconds=bgp.bin_seconds,
            ),
            delegated=tuple(bgp.delegated),
            hints=hints,
            reader=bgp.follow.reader,
            command=command,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One downloaded file to process (``store`` False: replay only, to rebuild the state)."""

    source: str
    collector: str
    kind: Literal["rib", "updates"]
    name: str
    path: str
    file_time: float
    store: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one file gave: status, reason, and what to store when done."""

    source: str
    collector: str
    name: str
    kind: str
    status: Status
    error: str = ""
    sha256: str = ""
    size: int | None = None
    elements: int = 0
    meta: Mapping[str, Any] | None = None
    observations: tuple[Observation, ...] = ()
    seconds: float = 0.0  # processing time in the worker
    cpu_seconds: float = 0.0  # CPU time of it: the worker's own and its bgpdump/decompressor's
    root_peers: Mapping[str, Any] | None = None  # ``root_peers`` of the state after the file


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children waited for, seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_kib() -> int:
    """This process's peak resident set size, KiB (Linux ``ru_maxrss``)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclasses.dataclass(slots=True)
class CollectorState:
    """The latest RIB of one collector with the updates applied since."""

    collector: str
    rib_name: str
    rib_time: float
    analysis: Analysis
    timeline: Timeline | None = None
    last_update_time: float | None = None
    last_update_name: str = ""


class Processor:
    """Processes archive files, keeping each collector's routing state between them."""

    def __init__(self, config: ProcessConfig) -> None:
        self.config = config
        self.reader = make_reader(config.reader)
        self.geo = Geo.from_files(config.delegated) if config.delegated else None
        # Root hints and expected origins as of each RIB's dump time (as `bgp visibility`
        # reads them), unless a hints file is configured.
        self.servers = roothints.load_hints(config.hints) if config.hints else ()
        if not self.servers:
            # the bundled hints history (read once per process, ~60 ms) is read now rather
            # than during the first RIB, which the files' processing times then do not carry
            roothints.bundled_history()
        load_expected_origins(config.origins or None)  # a bad table fails here, not per file
        self.watched = [w.prefix for w in root_watch(roothints.load_hints(config.hints or None))]
        self.states: dict[tuple[str, str], CollectorState] = {}

    def _expected_as_of(self, when: float | None) -> dict[str, tuple[int, ...]]:
        return load_expected_origins(self.config.origins or None, as_of=when)

    def base(self, source: str, collector: str) -> tuple[str, str] | None:
        """(RIB name, last update name) of the state held for a collector, or None."""
        state = self.states.get((source, collector))
        return None if state is None else (state.rib_name, state.last_update_name)

    def forget(self, source: str, collector: str) -> None:
        """Drop a collector's state."""
        self.states.pop((source, collector), None)

    def process(self, job: Job) -> Outcome:
        """Process one file; never raises for bad input (the outcome says failed / refused)."""
        size = _size(job.path)
        start, cpu = time.perf_counter(), cpu_seconds()
        try:
            outcome = self._rib(job, size) if job.kind == "rib" else self._updates(job, size)
            return dataclasses.replace(
                outcome, seconds=time.perf_counter() - start, cpu_seconds=cpu_seconds() - cpu
            )
        except InputError as exc:
            return Outcome(
                job.source, job.collector, job.name, job.kind, "failed", str(exc), size=size
            )

    def _attributed(self, source: str, collector: str) -> dict[str, Any] | None:
        """Country pieces already attributed in this worker: the collector's own state's, else
        the newest state's (collectors share most prefixes; the RIR files are the same)."""
        state = self.states.get((source, collector))
        if state is None and self.states:
            state = next(reversed(self.states.values()))
        index = None if state is None else state.analysis.index
        return None if index is None else index.pieces

    def _rib(self, job: Job, size: int | None) -> Outcome:
        analysis = analyze(
            attributed=self._attributed(job.source, job.collector),
            ribs=[job.path],
            reader=self.reader,
            geo=self.geo,
            servers=self.servers,
            hints_as_of=None if self.servers else roothints.hints_as_of,
            expected_as_of=self._expected_as_of,
            transit_countries=["*"] if self.geo is not None else [],
            collector=job.collector,
            options=self.config.options,
            split=bool(self.config.split),
        )
        report = analysis.sources[0]
        current = self.states.get((job.source, job.collector))
        if current is None or current.rib_time <= job.file_time:
            self.states[(job.source, job.collector)] = CollectorState(
                collector=job.collector,
                rib_name=job.name,
                rib_time=job.file_time,
                analysis=analysis,
            )
        if not job.store:
            return Outcome(job.source, job.collector, job.name, job.kind, "done")
        meta = obs.source_meta(
            analysis,
            options=self.config.options,
            delegated=self.config.delegated,
            command=self.config.command,
        )
        return Outcome(
            job.source,
            job.collector,
            job.name,
            job.kind,
            "done",
            sha256=report.sha256,
            size=size,
            elements=report.elements,
            meta=meta,
            observations=tuple(obs.observations(analysis)),
            root_peers=root_peers(analysis.rib, self.watched),
        )

    def _updates(self, job: Job, size: int | None) -> Outcome:
        state = self.states.get((job.source, job.collector))
        if state is None:
            return Outcome(job.source, job.collector, job.name, job.kind, "no_base", size=size)
        reason = consistency_problem(state, job)
        if reason:
            return Outcome(job.source, job.collector, job.name, job.kind, "refused", reason)
        read = self.reader.read(job.path, kind="updates", collector=job.collector)
        if state.timeline is None:
            state.timeline = self._timeline(state.analysis)
        bins = state.timeline.run(read)
        report = read.report
        if report.collector != state.collector:
            # the elements are applied already: the state is no longer this collector's alone
            self.forget(job.source, job.collector)
            return Outcome(
                job.source,
                job.collector,
                job.name,
                job.kind,
                "refused",
                f"{job.name} is from {report.collector}, not {state.collector}",
            )
        state.last_update_time = job.file_time
        state.last_update_name = job.name
        if not job.store:
            return Outcome(job.source, job.collector, job.name, job.kind, "done")
        families = {r.address: r.family for r in state.analysis.roots}
        observations = [o for item in bins for o in obs._bin(item, families)]
        analysis = dataclasses.replace(
            state.analysis,
            sources=(report,),
            dump_time=report.dump_time,
            countries=(),
            roots=(),
            transit=(),
            bins=tuple(bins),
        )
        meta = obs.source_meta(
            analysis,
            options=self.config.options,
            delegated=self.config.delegated,
            command=self.config.command,
        )
        meta["base_rib"] = state.rib_name
        return Outcome(
            job.source,
            job.collector,
            job.name,
            job.kind,
            "done",
            sha256=report.sha256,
            size=size,
            elements=report.elements,
            meta=meta,
            observations=tuple(observations),
            root_peers=root_peers(state.analysis.rib, self.watched),
        )

    def _timeline(self, analysis: Analysis) -> Timeline:
        # the RIB's own full-feed counts and country index when its analysis kept them; the
        # timeline changes them in place as it changes the RIB, so they stay the RIB's
        index = analysis.index
        if index is None and self.geo is not None:
            index = country_index(analysis.rib.routes, self.geo)
        counts = analysis.ff_counts
        if not isinstance(counts, dict) or len(counts) != len(analysis.rib.routes):
            counts = full_feed_counts(analysis.rib, analysis.full_feed)
        return Timeline(
            analysis.rib,
            analysis.full_feed,
            counts,
            index,
            self.geo,
            watched=[(r.letter, r.address) for r in analysis.roots],
            bin_seconds=self.config.options.bin_seconds,
            threshold=self.config.options.threshold,
            known=analysis.countries if index is analysis.index else (),
        )


def consistency_problem(state: CollectorState, job: Job) -> str:
    """Why an update file cannot be applied to a collector's state ("" when it can)."""
    from publiccore.collectors.bgp.elements import collector_from_path

    named = collector_from_path(job.path)
    if job.collector != state.collector or named not in ("unknown", state.collector):
        other = job.collector if job.collector != state.collector else named
        return f"{job.name} is from {other}, its base RIB {state.rib_name} from {state.collector}"
    if job.file_time < state.rib_time:
        return f"{job.name} is older than its base RIB {state.rib_name}"
    if state.last_update_time is not None and job.file_time <= state.last_update_time:
        return f"{job.name} is not newer than the last update applied ({state.last_update_name})"
    return ""


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


# --- in a worker process -------------------------------------------------------------------

_PROCESSOR: Processor | None = None


def init_worker(config: ProcessConfig) -> None:
    """Process-pool initializer: load the tables (delegated files, hints) once per process."""
    global _PROCESSOR
    _PROCESSOR = Processor(config)


def worker() -> Processor:
    """This process's processor; raises RuntimeError before ``init_worker``."""
    if _PROCESSOR is None:
        raise RuntimeError("init_worker was not called in this process")
    return _PROCESSOR


def run_job(job: Job) -> Outcome:
    """Process one file in this worker process."""
    return worker().process(job)


def worker_base(source: str, collector: str) -> tuple[str, str] | None:
    """The state this worker process holds for a collector (see ``Processor.base``)."""
    return worker().base(source, collector)


def run_jobs(jobs: Sequence[Job]) -> list[Outcome]:
    """Process files in order in this worker process (one backfill chain)."""
    return [run_job(job) for job in jobs]
