"""Fragmentation profile (definition M-profile): the dimensions side by side, each scaled 0–1.

1 = more fragmented. Scaling rules per dimension (``Dimension.scale`` in collectors/series.py):

- ``one_minus``: 1 − value (availability, visibility ratios; clipped to 0–1);
- ``identity``: the ratio itself (non-iana share, in-country share, top upstream share);
- ``rtt``: min(1, RTT / 0.25 s) (the RSSAC047 UDP latency threshold);
- ``inverse``: 1 / value for an effective number ≥ 1 (1 upstream or crossing → 1);
- ``own_peak``: 1 − value / (the country's largest value in the series) (drop from its peak).

The composite is a weighted mean of the scaled dimensions a day has (default weights 1), a
convenience only: the dimensions are the product. ``sensitivity`` shows how a ranking of
countries by composite moves when each weight is halved or increased by half.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from publiccore.collectors.series import DIMENSIONS, CountrySeries, DailySeries
from scipy import stats

RTT_SCALE_SECONDS = 0.25
PROFILE_DIMENSIONS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS if d.scale)
DEFAULT_WEIGHTS: Mapping[str, float] = dict.fromkeys(PROFILE_DIMENSIONS, 1.0)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def scale(rule: str, value: float, *, peak: float | None = None) -> float | None:
    """``value`` scaled to 0–1 by ``rule`` (module doc); None where undefined."""
    if rule == "one_minus":
        return _clip(1.0 - value)
    if rule == "identity":
        return _clip(value)
    if rule == "rtt":
        return _clip(value / RTT_SCALE_SECONDS)
    if rule == "inverse":
        return _clip(1.0 / value) if value > 0 else None
    if rule == "own_peak":
        return _clip(1.0 - value / peak) if peak else None
    raise ValueError(f"unknown scaling rule {rule!r}")


def scaled(series: DailySeries) -> dict[dt.date, float]:
    """The series' days scaled by its dimension's rule."""
    rule = series.dimension.scale
    if not rule or not series.points:
        return {}
    peak = max(series.values)
    out = {}
    for p in series.points:
        v = scale(rule, p.value, peak=peak)
        if v is not None:
            out[p.day] = v
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class ProfileDay:
    """One country's profile on one day: scaled dimensions and the composite."""

    day: dt.date
    scores: Mapping[str, float]
    composite: float | None


def composite(scores: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    """Weighted mean of the scores present (None when no weighted score is present)."""
    pairs = [(v, weights.get(k, 0.0)) for k, v in scores.items()]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0 else None


def profile(
    series: CountrySeries, *, weights: Mapping[str, float] = DEFAULT_WEIGHTS
) -> list[ProfileDay]:
    """The country's profile per day with any profile dimension (days in order)."""
    by_day: dict[dt.date, dict[str, float]] = {}
    for name in PROFILE_DIMENSIONS:
        s = series.get(name)
        if s is None:
            continue
        for day, v in scaled(s).items():
            by_day.setdefault(day, {})[name] = v
    return [
        ProfileDay(day, dict(sorted(scores.items())), composite(scores, weights))
        for day, scores in sorted(by_day.items())
    ]


def period_scores(days: Sequence[ProfileDay]) -> dict[str, float]:
    """Per dimension, the mean score over the days that have it."""
    sums: dict[str, list[float]] = {}
    for d in days:
        for k, v in d.scores.items():
            sums.setdefault(k, []).append(v)
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


@dataclasses.dataclass(frozen=True, slots=True)
class Sensitivity:
    """How the composite ranking moves when one weight changes by ``factor``."""

    dimension: str
    factor: float
    spearman: float | None  # rank correlation with the base ranking
    max_rank_shift: int
    composite_change: Mapping[str, float]  # country → change of its composite


def _ranks(values: Mapping[str, float]) -> dict[str, int]:
    ordered = sorted(values, key=lambda c: (-values[c], c))
    return {c: i + 1 for i, c in enumerate(ordered)}


def sensitivity(
    scores: Mapping[str, Mapping[str, float]],
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    factors: Sequence[float] = (0.5, 1.5),
) -> list[Sensitivity]:
    """For each weighted dimension and factor (±50 %): ranking change of the countries.

    ``scores`` are country → dimension → score (e.g. ``period_scores``).
    """
    base = {c: v for c, s in scores.items() if (v := composite(s, weights)) is not None}
    base_ranks = _ranks(base)
    out = []
    present = sorted({k for s in scores.values() for k in s if weights.get(k, 0) > 0})
    for dim in present:
        for factor in factors:
            moved = dict(weights)
            moved[dim] = weights[dim] * factor
            new = {c: v for c, s in scores.items() if (v := composite(s, moved)) is not None}
            ranks = _ranks(new)
            common = sorted(set(base) & set(new))
            rho = None
            if len(common) >= 3:
                r = stats.spearmanr([base[c] for c in common], [new[c] for c in common])
                rho = float(r.statistic) if r.statistic == r.statistic else None
            out.append(
                Sensitivity(
                    dimension=dim,
                    factor=factor,
                    spearman=rho,
                    max_rank_shift=max((abs(ranks[c] - base_ranks[c]) for c in common), default=0),
                    composite_change={c: new[c] - base[c] for c in common},
                )
            )
    return out
