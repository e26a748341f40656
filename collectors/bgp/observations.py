"""Analysis → store: one source (provenance, for citation) and its observations.

Metric names (the Prometheus exporter prefixes them with ``publiccore_``):

- country (subject_kind ``country``): ``bgp_country_visible_slash24`` (IPv4 visible /24s),
  ``bgp_country_visibility_ratio`` {family}, ``bgp_country_routed_units`` {family},
  ``bgp_country_unseen_prefixes`` {family}, ``bgp_country_upstreams`` {family},
  ``bgp_country_upstream_effective_number`` {family}, ``bgp_country_top_upstream_share``
  {family}, ``bgp_country_dependency_ratio`` {family, asn} (the top 5 ASes by hegemony),
  ``bgp_country_dependent_ases`` {family} (hegemony above 0.1)
- prefix (subject_kind ``prefix``, subject the prefix, or the address when nothing covers it):
  ``bgp_prefix_visibility_ratio`` {prefix_set, letter, family},
  ``bgp_root_prefix_unexpected_origin`` {prefix_set, letter, family} (0 or 1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from publiccore.collectors.bgp.hegemony import TOP_STORED
from publiccore.collectors.bgp.pipeline import Analysis, Options
from publiccore.collectors.bgp.roots import RootPrefix
from publiccore.collectors.bgp.timeline import Bin

from publiccore import __version__
from publiccore.store import Observation, Store

SOURCE_KIND = "bgp"


def _when(seconds: float | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds or 0.0, dt.UTC)


def source_meta(
    analysis: Analysis, *, options: Options, delegated: tuple[str, ...] = (), command: str = ""
) -> dict[str, Any]:
    """Provenance kept with the observations: files with hashes, collectors, peer counts."""
    collectors = sorted({s.collector for s in analysis.sources})
    return {
        "software": {"name": "publiccore", "version": __version__},
        "command": command,
        "collectors": collectors,
        "dump_time": analysis.dump_time,
        "files": [s.to_json() for s in analysis.sources],
        "partial": analysis.partial,
        "partial_bins": [b.start for b in analysis.bins if b.partial],
        "notes": list(analysis.notes),
        "delegated": list(delegated),
        "peers": {
            "sessions": len(analysis.peers),
            "full_feed": {f: len(v) for f, v in analysis.full_feed.items()},
            "peer_asns": len({p.peer.peer_asn for p in analysis.peers}),
        },
        "definitions": {
            "full_feed_ratio": options.rule.ratio,
            "full_feed_min_ipv4": options.rule.min_ipv4,
            "full_feed_min_ipv6": options.rule.min_ipv6,
            "visibility_threshold": options.threshold,
            "bin_seconds": options.bin_seconds,
            "trim": options.trim,
        },
    }


def _root(when: dt.datetime, row: RootPrefix) -> Iterator[Observation]:
    if not row.covered:
        return  # absent is not zero: the input does not speak for this address
    labels = {"prefix_set": "root", "letter": row.letter, "family": row.family}
    subject = row.prefix or row.address
    yield Observation(
        time=when,
        subject_kind="prefix",
        subject=subject,
        metric="bgp_prefix_visibility_ratio",
        value=row.visibility_ratio,
        labels=labels,
    )
    yield Observation(
        time=when,
        subject_kind="prefix",
        subject=subject,
        metric="bgp_root_prefix_unexpected_origin",
        value=float(row.unexpected),
        labels=labels,
    )


def _bin(item: Bin, families: Mapping[str, str]) -> Iterator[Observation]:
    labels: dict[str, str]
    when = _when(item.start)
    for c in item.countries:
        labels = {"family": str(c.family)}
        yield Observation(
            when, "country", c.country, "bgp_country_visibility_ratio", c.visible_ratio, labels
        )
        if c.family == "ipv4":
            yield Observation(
                when, "country", c.country, "bgp_country_visible_slash24", c.visible_units, {}
            )
    for point in item.prefixes:
        labels = {
            "prefix_set": "root",
            "letter": point.name,
            "family": families.get(point.address, "ipv4"),
        }
        yield Observation(
            when,
            "prefix",
            point.prefix or point.address,
            "bgp_prefix_visibility_ratio",
            point.ratio,
            labels,
        )


def observations(analysis: Analysis) -> list[Observation]:
    """Every number of an analysis as observations (RIB ones at the dump time, bins at theirs)."""
    when = _when(analysis.dump_time)
    out: list[Observation] = []
    for c in analysis.countries:
        labels = {"family": c.family}
        if c.family == "ipv4":
            out.append(
                Observation(
                    when, "country", c.country, "bgp_country_visible_slash24", c.visible_units, {}
                )
            )
        out.append(
            Observation(
                when, "country", c.country, "bgp_country_visibility_ratio", c.visible_ratio, labels
            )
        )
        out.append(
            Observation(
                when, "country", c.country, "bgp_country_routed_units", c.routed_units, labels
            )
        )
        out.append(
            Observation(
                when,
                "country",
                c.country,
                "bgp_country_unseen_prefixes",
                float(c.unseen_prefixes),
                labels,
            )
        )
    for t in analysis.transit:
        if not t.covered:
            continue  # no path used: no upstream figure rather than 0 upstreams
        labels = {"family": t.family}
        out.append(
            Observation(when, "country", t.country, "bgp_country_upstreams", float(t.count), labels)
        )
        out.append(
            Observation(
                when,
                "country",
                t.country,
                "bgp_country_upstream_effective_number",
                t.effective_number,
                labels,
            )
        )
        out.append(
            Observation(
                when, "country", t.country, "bgp_country_top_upstream_share", t.top_share, labels
            )
        )
    for h in analysis.hegemony:
        if not h.covered:
            continue
        for d in h.dependencies[:TOP_STORED]:
            out.append(
                Observation(
                    when,
                    "country",
                    h.country,
                    "bgp_country_dependency_ratio",
                    d.hegemony,
                    {"family": h.family, "asn": str(d.asn)},
                )
            )
        out.append(
            Observation(
                when,
                "country",
                h.country,
                "bgp_country_dependent_ases",
                float(h.dependent_ases()),
                {"family": h.family},
            )
        )
    for row in analysis.roots:
        out.extend(_root(when, row))
    families = {r.address: r.family for r in analysis.roots}
    for item in analysis.bins:
        out.extend(_bin(item, families))
    return out


def store_analysis(
    store: Store,
    analysis: Analysis,
    *,
    options: Options,
    delegated: tuple[str, ...] = (),
    command: str = "",
) -> tuple[int, int]:
    """Add the source and its observations; return (source id, observations stored)."""
    source_id = store.add_source(
        SOURCE_KIND, source_meta(analysis, options=options, delegated=delegated, command=command)
    )
    stored = store.put_observations(source_id, observations(analysis))
    return source_id, stored
