"""RSSAC047 publication latency (§5.4 per letter, §6.4 for the system) from stored facts.

Definition M-root-publication-median in docs/methodology.md. Everything is read from the store,
so a restarted collector (or a report over a past month) computes the same figures:

1. ``root_interval_serials`` holds, per five-minute interval (the UTC grid of RSSAC047 §4.2),
   vantage point (probe) and letter, the lowest SOA serial answered over every transport and
   address family, timed-out and bogus answers left out (§5.4 step 1, [cnj] [tub]): only
   answers of records validated to the IANA anchors (or from a source that did not ask for the
   DNSKEY set) count, so an alternative root's or an unsigned zone's serial is no sighting.
2. A serial's publication moment is its first sighting on any letter from any vantage point
   (``root_serial_first``, §5.4 step 2, [yxn]); a *serial change* of a period is a serial first seen
   in the period after some older serial was seen (before the first change the publication
   moment of the serial in use is unknown).
3. Per change, vantage point and letter, the latency is the time from the publication interval
   to the first interval whose lowest serial is the new one or newer: a multiple of five
   minutes, zero when seen in the publication interval (§5.4 step 3, [kvg] [udz]).
4. A letter's figure is the median over every change of the period and every vantage point
   (§5.4 step 4, [jtz] [yzp]); the system figure is the median over all of them, every letter
   pooled (§6.4, [dbo] [zgb]). Medians are inverted-CDF, as every quantile in publiccore.

Where publiccore has to choose (RSSAC047's vantage points never miss an interval):
- a vantage point counts for a change only when its observation is bracketed: seen in the
  publication interval, or its previous answered interval for that letter is at most two
  intervals before the observation (one missed interval is tolerated). A vantage point that was
  not measuring the letter would otherwise time its own absence.
- a vantage point still answering with an older serial at the horizon (the end of the data
  read) enters with the delay so far, a lower bound that grows until the serial is seen, so a
  stuck letter shows; one that stopped measuring the letter gives no value.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence

from publiccore.collectors import aggregate as agg
from publiccore.collectors.derive import figures as fig

from publiccore.store import Store, facts

INTERVAL = float(facts.INTERVAL_SECONDS)  # RSSAC047 §4.2 [wyn]
RSI_THRESHOLD_SECONDS = 65 * 60.0  # §5.4 [fwa]: twice the SOA refresh (30 min) plus 5 min
RSS_THRESHOLD_SECONDS = 35 * 60.0  # §6.4 [zkl]: the SOA retry (30 min) plus 5 min
LOOKAHEAD_SECONDS = 86400.0  # a closed period's changes are followed this long past its end
MAX_GAP_INTERVALS = 2  # an observation counts when the previous answer is this close
CACHE_SECONDS = INTERVAL  # ``Live`` recomputes at most once per measurement interval

Labels = tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Measurement:
    """One §5.4 step 3 value: a serial change seen by one vantage point on one letter."""

    serial: int
    letter: str
    probe: str
    country: str
    published: float  # start of the publication interval (POSIX seconds)
    latency_seconds: float  # multiple of INTERVAL
    pending: bool = False  # not yet seen at the horizon: a lower bound


@dataclasses.dataclass(frozen=True, slots=True)
class PublicationLatency:
    """The serial changes of [since, until) and their measurements (observations read up to
    ``horizon``)."""

    since: float
    until: float
    horizon: float
    changes: tuple[tuple[int, float], ...]  # (serial, first sighting), oldest first
    measurements: tuple[Measurement, ...]

    def per_letter(self) -> dict[str, float]:
        """Letter → median latency in seconds (§5.4); letters without a measurement absent."""
        by_letter: dict[str, list[float]] = collections.defaultdict(list)
        for m in self.measurements:
            by_letter[m.letter].append(m.latency_seconds)
        return {letter: median(values) for letter, values in sorted(by_letter.items())}

    def counts(self) -> dict[str, int]:
        """Letter → number of measurements behind its median (RSSAC047's precision)."""
        return dict(sorted(collections.Counter(m.letter for m in self.measurements).items()))

    def rss(self) -> float | None:
        """The system's median latency in seconds (§6.4), None without a measurement."""
        values = [m.latency_seconds for m in self.measurements]
        return median(values) if values else None


def median(values: Collection[float]) -> float:
    """Inverted-CDF median (the smallest value with half the count at or below it)."""
    return agg.weighted_quantile([(v, 1.0) for v in values], 0.5)


def publication_times(store: Store) -> dict[int, float]:
    """Serial → its first sighting on any letter from any vantage point (``root_serial_first``:
    answered, not bogus, alternate or unsigned)."""
    return {int(serial): float(first) for serial, first in store.fact_rows("root_serial_first")}


def serial_changes(
    times: Mapping[int, float], *, since: float, until: float
) -> list[tuple[int, float]]:
    """(serial, first sighting) of the serials first seen in [since, until) after an older
    serial was seen, oldest first."""
    out = []
    for serial, first in times.items():
        if since <= first < until and any(s < serial and t < first for s, t in times.items()):
            out.append((serial, first))
    return sorted(out, key=lambda c: (c[1], c[0]))


@dataclasses.dataclass(frozen=True, slots=True)
class Sightings:
    """What the measurements are made from, read once: every serial's publication moment and,
    per vantage point × letter, the intervals where its lowest serial changed over the loaded
    range (``Store.serial_transitions``: one scan in the database, few rows)."""

    store: Store
    country: str | None
    times: Mapping[int, float]
    # (probe, letter) → intervals, their serials, the interval before each (None: first row)
    transitions: Mapping[
        tuple[str, str], tuple[tuple[float, ...], tuple[int, ...], tuple[float | None, ...]]
    ]
    countries: Mapping[str, str]  # probe → country

    @classmethod
    def load(
        cls, store: Store, *, since: float, until: float, country: str | None = None
    ) -> Sightings:
        """The sightings behind the changes first seen from ``since`` on, observed before
        ``until`` (of ``country``'s vantage points; default all)."""
        first = facts.interval_of(since) - MAX_GAP_INTERVALS * INTERVAL
        rows: dict[tuple[str, str], list[tuple[float, int, float | None]]] = (
            collections.defaultdict(list)
        )
        countries: dict[str, str] = {}
        for probe, letter, probe_country, bucket, serial, previous in store.serial_transitions(
            since=first, until=until, country=country
        ):
            rows[(probe, letter)].append(
                (float(bucket), int(serial), None if previous is None else float(previous))
            )
            countries[probe] = probe_country
        transitions = {
            key: (tuple(r[0] for r in v), tuple(r[1] for r in v), tuple(r[2] for r in v))
            for key, v in rows.items()
        }
        return cls(
            store=store,
            country=country,
            times=publication_times(store),
            transitions=transitions,
            countries=countries,
        )

    def measure(self, *, since: float, until: float, horizon: float) -> PublicationLatency:
        """The measurements of the serial changes first seen in [since, until), from the
        intervals before ``horizon`` (within the loaded range)."""
        changes = serial_changes(self.times, since=since, until=until)
        if not changes:
            return PublicationLatency(since, until, horizon, (), ())
        end = facts.interval_of(horizon)
        # the newest interval of each series before the horizon, for the values still pending
        newest: dict[tuple[str, str], tuple[float, int]] = {}
        for bucket, probe, letter, _c, serial in self.store.fact_rows(
            "root_interval_serials",
            since=end - MAX_GAP_INTERVALS * INTERVAL,
            until=horizon,
            country=self.country,
        ):
            if bucket > newest.get((probe, letter), (-math.inf, 0))[0]:
                newest[(probe, letter)] = (float(bucket), int(serial))
        out: list[Measurement] = []
        for key, (times, serials, previous) in sorted(self.transitions.items()):
            stop = bisect.bisect_left(times, horizon)
            for serial, seen in changes:
                published = facts.interval_of(seen)
                value = _latency(
                    times[:stop],
                    serials,
                    previous,
                    serial=serial,
                    published=published,
                    newest=newest.get(key),
                )
                if value is not None:
                    out.append(
                        Measurement(
                            serial=serial,
                            letter=key[1],
                            probe=key[0],
                            country=self.countries[key[0]],
                            published=published,
                            latency_seconds=value[0],
                            pending=value[1],
                        )
                    )
        return PublicationLatency(since, until, horizon, tuple(changes), tuple(out))


def measure(
    store: Store,
    *,
    since: float,
    until: float,
    horizon: float | None = None,
    country: str | None = None,
) -> PublicationLatency:
    """The publication latency measurements of the serial changes in [since, until), from the
    vantage points of ``country`` (default: all), observations read until ``horizon`` (default
    ``until`` + LOOKAHEAD_SECONDS; the live figure passes now)."""
    horizon = until + LOOKAHEAD_SECONDS if horizon is None else horizon
    loaded = Sightings.load(store, since=since, until=horizon, country=country)
    return loaded.measure(since=since, until=until, horizon=horizon)


def _latency(
    times: Sequence[float],
    serials: Sequence[int],
    previous: Sequence[float | None],
    *,
    serial: int,
    published: float,
    newest: tuple[float, int] | None,
) -> tuple[float, bool] | None:
    """(latency, pending) of one vantage point × letter for one change, from the intervals
    where its serial changed (``times``, before the horizon) and its newest interval within two
    of the horizon; None when it has no bracketed value (see the module doc)."""
    for i in range(bisect.bisect_left(times, published), len(times)):
        if serials[i] >= serial:
            before = previous[i]
            if times[i] == published or (
                before is not None and times[i] - before <= MAX_GAP_INTERVALS * INTERVAL
            ):
                return times[i] - published, False
            return None
    if newest is not None and newest[0] >= published and newest[1] < serial:
        return newest[0] + INTERVAL - published, True  # answering, still an older serial
    return None


def figures(result: PublicationLatency) -> fig.Publication:
    """The figures of one result: per-letter medians with their counts, the system median."""
    counts = result.counts()
    return fig.Publication(
        letters=tuple(
            fig.PublicationLetter(letter, median_seconds=v, measurements=counts[letter])
            for letter, v in result.per_letter().items()
        ),
        rss_seconds=result.rss(),
    )


@dataclasses.dataclass(slots=True)
class Live:
    """The live figures over the last ``period`` seconds, recomputed from the store at most
    every CACHE_SECONDS (the state of record is the store: a new ``Live`` loses nothing)."""

    period: float
    _cached: tuple[float, fig.Publication] | None = dataclasses.field(
        default=None, init=False, repr=False
    )

    def figures(self, store: Store, *, now: float, keep: bool = False) -> fig.Publication:
        """``figures`` of the serial changes of [now − period, now], observed until now; with
        ``keep``, the figures computed last whatever their age (once computed)."""
        if self._cached is not None and (keep or 0 <= now - self._cached[0] < CACHE_SECONDS):
            return self._cached[1]
        result = measure(store, since=now - self.period, until=now, horizon=now)
        computed = figures(result)
        self._cached = (now, computed)
        return computed
