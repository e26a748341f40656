"""What ``/metrics`` shows of the archive follower and RIS Live, read from the store.

``follow_metrics`` returns typed values; the exporter turns them into families
(``publiccore_bgp_follow_*``, ``publiccore_bgp_live_*``; docs/metrics.md). Absent is not zero:
a collector with nothing processed has no lag, and a prefix without a recent RIS Live count
(the client not running) has no peers value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from publiccore.collectors.bgp.follow import CollectorStatus, collector_status
from publiccore.collectors.bgp.live import PEERS_METRIC, WITHDRAWN_METRIC

from publiccore.store import Store

LIVE_WINDOW_SECONDS = 900.0  # a peer count older than this is not shown


@dataclasses.dataclass(frozen=True, slots=True)
class LivePrefix:
    """The latest RIS Live state of one watched prefix."""

    prefix: str
    letter: str
    family: str
    peers: float
    withdrawn: bool
    time: float


@dataclasses.dataclass(frozen=True, slots=True)
class FollowMetrics:
    """Follower collectors and RIS Live prefixes, as of ``now``."""

    now: float
    collectors: tuple[CollectorStatus, ...]
    live: tuple[LivePrefix, ...]


def follow_metrics(
    store: Store, *, now: float | None = None, live_window_seconds: float = LIVE_WINDOW_SECONDS
) -> FollowMetrics:
    """Read the follower's file-state table and the latest RIS Live observations."""
    now = time.time() if now is None else now
    collectors = tuple(collector_status(store, now=now, with_errors=False))
    since = dt.datetime.fromtimestamp(now - live_window_seconds, dt.UTC)
    latest: dict[str, tuple[float, float, dict[str, str]]] = {}
    for o in store.iter_observations(metric=PEERS_METRIC, since=since):
        latest[o.subject] = (o.time.timestamp(), o.value, dict(o.labels))
    withdrawn: dict[str, bool] = {}
    if latest:
        for o in store.iter_observations(metric=WITHDRAWN_METRIC):
            withdrawn[o.subject] = o.value >= 1.0
    live = tuple(
        LivePrefix(
            prefix=prefix,
            letter=labels.get("letter", ""),
            family=labels.get("family", ""),
            peers=value,
            withdrawn=withdrawn.get(prefix, False),
            time=when,
        )
        for prefix, (when, value, labels) in sorted(latest.items())
    )
    return FollowMetrics(now=now, collectors=collectors, live=live)
