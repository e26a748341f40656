"""History as timestamped OpenMetrics, for ``promtool tsdb create-blocks-from openmetrics``.

``history`` recomputes, at every step between ``since`` and ``until``, exactly what the live
exporter would have shown at that moment (same code: ``collectors.aggregate``): root aggregates
over the root window ending at the step, probes active before it, the newest BGP and
path observations at or before it, data ages, and the regulatory events. Each sample carries the
step's timestamp. Live-only series (ingest counters, refresh age and duration) are not included.

Each series is written in time order. ``history`` holds the whole range in memory; for long
ranges or many countries, ``history_chunks`` (``--out-dir DIR --chunk 1h``) writes one file per
chunk, each to be handed to promtool.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import functools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from publiccore.collectors import aggregate as agg
from publiccore.collectors.derive import figures as fig
from publiccore.collectors.derive import publication
from publiccore.collectors.derive import root as derive_root
from publiccore.exporters import catalogue
from publiccore.exporters.prometheus import LIVE_HELP, event_families, snapshot_families

from publiccore import events as ev
from publiccore.config import AggregateSettings
from publiccore.store import Observation, Store

OBSERVATION_HISTORY_SECONDS = 30 * 86400.0  # observations this long before `since` are read
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration (``30s``, ``5m``, ``1h``, ``1d``); ValueError."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration (like 30s, 5m, 1h): {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds


def steps(since: dt.datetime, until: dt.datetime, step_seconds: float) -> Iterator[float]:
    """POSIX times since, since + step, … up to and including ``until``."""
    t, end = since.timestamp(), until.timestamp()
    n = 0
    while t + n * step_seconds <= end + 1e-6:
        yield t + n * step_seconds
        n += 1


@dataclasses.dataclass(slots=True)
class _ObservationCursor:
    """Walks observations in time order, keeping the newest value per series."""

    ordered: list[Observation]
    position: int = 0
    seen: list[Observation] = dataclasses.field(default_factory=list)

    def until(self, t: float) -> list[Observation]:
        while (
            self.position < len(self.ordered) and self.ordered[self.position].time.timestamp() <= t
        ):
            self.seen.append(self.ordered[self.position])
            self.position += 1
        # keep only the newest observation per (metric, subject, labels)
        latest: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], Observation] = {}
        for obs in self.seen:
            latest[
                (obs.metric, obs.subject_kind, obs.subject, tuple(sorted(obs.labels.items())))
            ] = obs
        self.seen = list(latest.values())
        return self.seen


def history_chunks(
    store: Store,
    settings: AggregateSettings,
    *,
    since: dt.datetime,
    until: dt.datetime,
    step_seconds: float,
    chunk_seconds: float | None = None,
    events: Sequence[ev.Event] = (),
    sites: agg.SiteTable | None = None,
) -> Iterator[list[Metric]]:
    """Every exported gauge at every step, as metric families with timestamped samples, one
    list of families per chunk of ``chunk_seconds`` (default: one chunk for the whole range).

    Records are read chunk by chunk, so memory is bounded by a chunk; publication-latency state,
    observations and data ages carry over from chunk to chunk. Each series' samples are in time
    order within a chunk.
    """
    del sites  # the site of each answer is a fact written with the record (store.sites)
    lead = max(settings.root_window_seconds, agg.ACTIVE_SECONDS)
    obs_since = since - dt.timedelta(seconds=OBSERVATION_HISTORY_SECONDS)
    observations = sorted(
        (
            o
            for metric in agg.OBSERVATION_SUBJECTS
            for o in store.iter_observations(metric=metric, since=obs_since, until=until)
        ),
        key=lambda o: o.time,
    )
    cursor = _ObservationCursor(observations)
    registered = {p.id: p.country for p in store.list_probes() if p.revoked is None}
    tracker = agg.PublicationTracker()
    window = settings.root_window_seconds
    all_steps = list(steps(since, until, step_seconds))
    first = 0
    fed_until = -math.inf
    while first < len(all_steps):
        end = all_steps[first] + (chunk_seconds or math.inf)
        group = [t for t in all_steps[first:] if t < end]
        first += len(group)
        load_since = derive_root.window_bounds(group[0] - lead, 0.0)[0]
        buckets = derive_root.RootBuckets.load(
            store, since=load_since, until=group[-1], sources=settings.sources
        )
        serials = sorted(
            agg.Sighting(first, country, letter, serial)
            for _b, country, letter, serial, first in store.fact_rows(
                "agg_root_serials", since=load_since, until=group[-1]
            )
        )
        serial_times = [r.time for r in serials]
        period = settings.publication_period_seconds
        sightings = publication.Sightings.load(store, since=group[0] - period, until=group[-1] + 1)
        families: dict[str, Metric] = {}
        sliding = buckets.sliding()  # the window moves from step to step: only new buckets fold
        for t in group:
            low, high = derive_root.window_bounds(t, window)
            # publication latency: first sightings up to this step (fed once, in time order)
            start_at = bisect.bisect_left(serial_times, max(fed_until, low))
            stop_at = bisect.bisect_left(serial_times, high)
            tracker.update(serials[start_at:stop_at])
            fed_until = max(fed_until, high)
            latest, newest_dump = agg.latest_observations(cursor.until(t), until=t)
            figures = fig.Figures(
                root=derive_root.compute_state(
                    sliding.move(low, high),
                    detail=functools.partial(buckets.detail, since=low, until=high),
                    max_asn_share=settings.max_asn_share,
                ),
                newest_serial=tracker.newest(t),
                publication=publication.figures(
                    sightings.measure(since=t - period, until=t, horizon=t)
                ),
                probes_active=derive_root.probes_active(store, now=t, registered=registered),
                sources=agg.sources(settings),
                observations=latest,
            )
            newest = store.newest_started("root-dns", until=_dt(t))
            snapshot = catalogue.Exposition(
                computed_at=_dt(t),
                series=catalogue.series(figures),
                newest_record={},
                newest_bgp_dump=None,
            )
            _merge(families, snapshot_families(snapshot, timestamp=t))
            _merge(
                families,
                _age_families(None if newest is None else newest.timestamp(), newest_dump, t),
            )
            _merge(families, event_families(events, timestamp=t))
        for family in families.values():
            family.samples.sort(key=lambda s: (sorted(s.labels.items()), s.timestamp or 0.0))
        yield list(families.values())


def history(
    store: Store,
    settings: AggregateSettings,
    *,
    since: dt.datetime,
    until: dt.datetime,
    step_seconds: float,
    events: Sequence[ev.Event] = (),
    sites: agg.SiteTable | None = None,
) -> list[Metric]:
    """``history_chunks`` as one list of families (the whole range in memory)."""
    families: dict[str, Metric] = {}
    for chunk in history_chunks(
        store,
        settings,
        since=since,
        until=until,
        step_seconds=step_seconds,
        events=events,
        sites=sites,
    ):
        _merge(families, chunk)
    return list(families.values())


def _dt(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _merge(families: dict[str, Metric], new: Iterable[Metric]) -> None:
    for family in new:
        if family.name in families:
            families[family.name].samples.extend(family.samples)
        else:
            families[family.name] = family


def _age_families(newest_record: float | None, newest_dump: float | None, t: float) -> list[Metric]:
    records = GaugeMetricFamily(
        "publiccore_newest_record_age_seconds",
        LIVE_HELP["publiccore_newest_record_age_seconds"],
        labels=["kind"],
    )
    if newest_record is not None:
        records.add_metric(["root-dns"], t - newest_record, timestamp=t)
    dump = GaugeMetricFamily(
        "publiccore_bgp_newest_dump_age_seconds",
        LIVE_HELP["publiccore_bgp_newest_dump_age_seconds"],
    )
    if newest_dump is not None:
        dump.add_metric([], t - newest_dump, timestamp=t)
    return [records, dump]


def _escape(text: str) -> str:
    """OpenMetrics escaping of a HELP text or label value: backslash, newline, double quote."""
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def write(families: Sequence[Metric], out: TextIO) -> None:
    """Write ``families`` as OpenMetrics text (ending with ``# EOF``), directly.

    The same bytes as ``prometheus_client``'s OpenMetrics exposition of these families (a test
    checks it), without its per-sample escaping work: each label set is escaped once per family.
    Families without samples are left out.
    """
    for family in families:
        if not family.samples:
            continue
        name = family.name
        out.write(f"# HELP {name} {_escape(family.documentation)}\n# TYPE {name} {family.type}\n")
        if family.unit:
            out.write(f"# UNIT {name} {family.unit}\n")
        label_text: dict[tuple[tuple[str, str], ...], str] = {}
        lines = []
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            text = label_text.get(key)
            if text is None:
                text = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in key) + "}" if key else ""
                label_text[key] = text
            stamp = "" if sample.timestamp is None else f" {sample.timestamp}"
            lines.append(f"{sample.name}{text} {floatToGoString(sample.value)}{stamp}\n")
        out.write("".join(lines))
    out.write("# EOF\n")


def sample_count(families: Iterable[Metric]) -> dict[str, int]:
    """Samples per family name (for the command's summary on stderr)."""
    return collections.Counter({f.name: len(f.samples) for f in families})
