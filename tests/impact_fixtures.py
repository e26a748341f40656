"""Synthetic but real stores for the event-impact tests: root-dns records and BGP observations.

Records are built with ``publiccore.records.make_record`` the way ``probes/root.py`` fills them
(SOA over UDP, hostname.bind identity, integrity outcome) and written through the store's one
write path; BGP observations and their sources (with full-feed peer counts) go through
``add_source`` / ``put_observations`` exactly as ``collectors/bgp/observations.py`` writes them.
Target addresses are documentation addresses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable

from publiccore.records import (
    Consistency,
    DnsQuery,
    Integrity,
    ProbeRef,
    Record,
    RootResult,
    RootTarget,
    SiteIdentity,
    make_record,
)
from publiccore.store import Observation, Store

LETTERS = "abcdefghijklm"
START = dt.date(2026, 1, 1)
PROBES = {
    "NL": [("nl-1", 1103), ("nl-2", 3320)],
    "RU": [("ru-1", 12389), ("ru-2", 8359)],
    "DE": [("de-1", 3320), ("de-2", 6805)],
}


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def root_record(
    *, probe: ProbeRef, letter: str, started: dt.datetime, rtt: float | None, outcome: str
) -> Record:
    """One root-dns record (IPv4, UDP . SOA) as the measurer returns it."""
    n = LETTERS.index(letter) + 1
    answered = rtt is not None
    soa = DnsQuery(
        qname=".",
        qclass="IN",
        qtype="SOA",
        transport="udp",
        rcode="NOERROR" if answered else None,
        aa=answered or None,
        rtt_seconds=round(rtt, 6) if answered else None,
        serial=2026010100 if answered else None,
        failure=None if answered else "dns_timeout",
    )
    nsid = f"s1.{probe.country.lower()}-ams" if answered else None
    return make_record(
        kind="root-dns",
        probe=probe,
        target=RootTarget(
            letter=letter,
            name=f"{letter}.root-servers.net.",
            address=f"192.0.2.{n}",
            family="ipv4",
        ),
        result=RootResult(
            queries=(soa,),
            identity=SiteIdentity(nsid=nsid, hostname_bind=nsid),
            integrity=Integrity(
                outcome=outcome if answered else "no-answer",  # type: ignore[arg-type]
                key_tags=(20326,) if answered else (),
                validated_at=started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            ),
            consistency=Consistency(status="consistent"),
        ),
        started=started,
        finished=started + dt.timedelta(seconds=(rtt or 4.0) + 0.1),
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to write: per day, the share of non-iana answers and the visible /24s."""

    country: str
    days: int
    non_iana: Callable[[int], float]  # day index → probability of a non-iana outcome
    visible: Callable[[int], float]  # day index → visible /24 equivalents
    skip_day: Callable[[int], bool] = lambda i: False  # no records that day (a gap)
    rounds: int = 1


def fill(store: Store, plan: Plan, *, seed: int = 1, start: dt.date = START) -> None:
    """Write ``plan``'s root-dns records and daily BGP observations into ``store``."""
    rng = random.Random(seed)
    records: list[Record] = []
    for i in range(plan.days):
        if plan.skip_day(i):
            continue
        day = midnight(start + dt.timedelta(days=i))
        for probe_id, asn in PROBES[plan.country]:
            probe = ProbeRef(id=probe_id, asn=asn, country=plan.country)
            for r in range(plan.rounds):
                t0 = day + dt.timedelta(hours=2 + 6 * r, seconds=rng.uniform(0, 60))
                for letter in LETTERS:
                    outcome = "alternate" if rng.random() < plan.non_iana(i) else "iana"
                    records.append(
                        root_record(
                            probe=probe,
                            letter=letter,
                            started=t0 + dt.timedelta(milliseconds=rng.uniform(0, 50)),
                            rtt=0.02 * rng.uniform(0.8, 1.4),
                            outcome=outcome,
                        )
                    )
        when = day + dt.timedelta(hours=8)
        source = store.add_source(
            "bgp",
            {
                "dump_time": when.timestamp(),
                "peers": {"full_feed": {"ipv4": 12, "ipv6": 10}},
                "files": [{"file": f"rib.{day:%Y%m%d}.0800.gz", "sha256": f"{i:064x}"}],
            },
        )
        store.put_observations(
            source,
            [
                Observation(
                    when, "country", plan.country, "bgp_country_visible_slash24", plan.visible(i)
                ),
                Observation(
                    when,
                    "country",
                    plan.country,
                    "bgp_country_visibility_ratio",
                    0.97,
                    {"family": "ipv4"},
                ),
            ],
        )
    store.put_records(records)
