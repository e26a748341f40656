"""The exporter's /metrics output against an independent computation from the stored records."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from publiccore.exporters.catalogue import SPECS
from publiccore.exporters.prometheus import EXPORTER_KEY, Exporter, ingest_counts_from, mount

from publiccore import events as ev
from publiccore.config import Settings
from publiccore.records import RootResult
from publiccore.store import ProbeRegistration, facts

NOW = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(seconds=900)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text → {(sample name, labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def quantile(values: list[float], q: float) -> float:
    """Inverted-CDF quantile, written independently of collectors.aggregate."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.fixture
def loaded(store, pcdata):
    """Four probes per country (one per ASN), 40 min of rounds; RU loses k; one RU probe sees
    an alternate root on letter a."""
    records = pcdata.make_rounds(
        start=NOW - dt.timedelta(minutes=40),
        rounds=8,
        unreachable=lambda country, letter, family: country == "RU" and letter == "k",
        outcome=lambda probe, letter: "alternate" if probe == "ru-4" and letter == "a" else "iana",
    )
    store.put_records(records)
    source = store.add_source("bgp", {"test": True})
    store.put_observations(source, pcdata.bgp_observations(NOW - dt.timedelta(hours=3)))
    for ref in pcdata.FLEET.refs():
        store.add_probe(
            ProbeRegistration(id=ref.id, country=ref.country, asn=ref.asn, token_hash=f"h-{ref.id}")
        )
    store.add_probe(ProbeRegistration(id="de-1", country="DE", asn=3320, token_hash="h-de-1"))
    return records


def exporter_for(store, **kwargs) -> Exporter:
    return Exporter(store, Settings(), registry=CollectorRegistry(), clock=lambda: NOW, **kwargs)


def test_root_metrics_match_independent_computation(store, loaded):
    exporter = exporter_for(store)
    exporter.refresh(NOW)
    got = parse(exporter.render().decode())

    window = [r for r in loaded if NOW - WINDOW <= r.started < NOW]
    sent: dict[tuple[str, ...], int] = collections.Counter()
    answered: dict[tuple[str, ...], int] = collections.Counter()
    rtts: dict[tuple[str, ...], list[float]] = collections.defaultdict(list)
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    sites: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for r in window:
        assert isinstance(r.result, RootResult)
        outcomes[r.probe.country][r.result.integrity.outcome] += 1
        for q in r.result.queries:
            if q.qtype != "SOA":
                continue
            cell = (r.probe.country, r.target.letter, r.target.family, q.transport)
            sent[cell] += 1
            if q.rcode == "NOERROR" and q.failure is None:
                answered[cell] += 1
                rtts[cell].append(q.rtt_seconds)
                if r.result.identity.nsid:
                    sites[(r.probe.country, r.target.letter)].add(r.result.identity.nsid)

    assert len(sent) == 2 * 13 * 2 * 2
    for (country, letter, family, transport), n in sent.items():
        labels = dict(country=country, letter=letter, family=family, transport=transport)
        assert got[key("publiccore_root_reachable_ratio", **labels)] == pytest.approx(
            answered[(country, letter, family, transport)] / n
        )
        values = rtts[(country, letter, family, transport)]
        for q in (0.5, 0.9, 0.99):
            name = key("publiccore_root_rtt_seconds", quantile=str(q), **labels)
            if values:
                # read from log bins: within the stated relative error of the exact value
                exact = quantile(values, q)
                assert got[name] == pytest.approx(exact, rel=facts.RTT_RELATIVE_ERROR)
            else:
                assert name not in got
    assert (
        got[
            key(
                "publiccore_root_reachable_ratio",
                country="RU",
                letter="k",
                family="ipv6",
                transport="tcp",
            )
        ]
        == 0.0
    )
    for country, counts in outcomes.items():
        total = sum(counts.values())
        for outcome in ("iana", "alternate", "bogus", "unsigned", "no-answer"):
            assert got[
                key("publiccore_root_integrity_ratio", country=country, outcome=outcome)
            ] == pytest.approx(counts[outcome] / total)
    assert got[key("publiccore_root_integrity_ratio", country="RU", outcome="alternate")] > 0
    for (country, letter), names in sites.items():
        assert got[key("publiccore_root_sites", country=country, letter=letter)] == len(names)
    # sample sizes: records, probes, ASNs in the window
    for country in ("NL", "RU"):
        mine = [r for r in window if r.probe.country == country]
        assert got[key("publiccore_aggregate_records", country=country, kind="root-dns")] == len(
            mine
        )
        assert got[key("publiccore_aggregate_probes", country=country, kind="root-dns")] == 4
        assert got[key("publiccore_aggregate_probe_asns", country=country, kind="root-dns")] == 4
        assert got[
            key("publiccore_aggregate_top_asn_share", country=country, kind="root-dns")
        ] == pytest.approx(0.25)
        assert got[key("publiccore_probes_active", country=country)] == 4
    assert got[key("publiccore_probes_active", country="DE")] == 0
    # RU: k fails everywhere → 12 letters can meet 96 % at most
    assert got[key("publiccore_root_letters_available", country="RU")] <= 12
    assert got[key("publiccore_root_availability_ratio", country="RU", letter="k")] == 0.0
    assert got[key("publiccore_root_system_available_ratio", country="NL")] == 1.0
    newest = max(r.started for r in loaded)
    assert got[key("publiccore_newest_record_age_seconds", kind="root-dns")] == pytest.approx(
        (NOW - newest).total_seconds(), abs=1e-3
    )


def test_site_location_shares(store, loaded):
    exporter = exporter_for(store)
    exporter.refresh(NOW)
    got = parse(exporter.render().decode())

    def share(country: str, letter: str, outcome: str) -> float:
        return got[
            key(
                "publiccore_root_site_location_ratio",
                country=country,
                letter=letter,
                outcome=outcome,
            )
        ]

    assert share("NL", "k", "in_country") == 1.0  # ns1.nl-ams.k.ripe.net
    assert share("NL", "m", "abroad") == 1.0  # M-CDG-1
    assert share("NL", "d", "unknown") == 1.0  # D-root identities are not mapped
    assert share("NL", "g", "unknown") == 1.0  # no identity at all
    assert share("RU", "l", "in_country") == 1.0  # ab.ru-led.l.root
    assert share("RU", "i", "unknown") == 1.0  # s1.mow: not in Netnod's table
    assert (
        key("publiccore_root_site_location_ratio", country="RU", letter="k", outcome="unknown")
        not in got
    )  # nothing answered


def test_bgp_and_path_observations_are_passed_through(store, loaded, pcdata):
    exporter = exporter_for(store)
    exporter.refresh(NOW)
    got = parse(exporter.render().decode())
    for obs in pcdata.bgp_observations(NOW - dt.timedelta(hours=3)):
        name = "publiccore_" + obs.metric
        labels = {
            label: obs.subject if label == obs.subject_kind else obs.labels.get(label, "")
            for label in SPECS[name].labels
        }
        assert got[key(name, **labels)] == obs.value
    assert got[key("publiccore_bgp_newest_dump_age_seconds")] == 3 * 3600


def test_newer_dump_replaces_older(store, loaded, pcdata):
    source = store.add_source("bgp", {})
    store.put_observations(source, pcdata.bgp_observations(NOW - dt.timedelta(hours=1), scale=0.5))
    exporter = exporter_for(store)
    exporter.refresh(NOW)
    got = parse(exporter.render().decode())
    assert got[key("publiccore_bgp_country_visible_slash24", country="RU")] == 90_000
    assert got[key("publiccore_bgp_newest_dump_age_seconds")] == 3600


def test_one_asn_is_down_weighted_to_its_cap(store, pcdata):
    fleet = pcdata.Fleet(
        {
            "NL": [
                ("big-1", 1),
                ("big-2", 1),
                ("big-3", 1),
                ("big-4", 1),
                ("small-1", 2),
                ("small-2", 3),
                ("small-3", 4),
            ]
        }
    )
    records = pcdata.make_rounds(
        start=NOW - dt.timedelta(minutes=14),
        rounds=2,
        fleet=fleet,
        unreachable=lambda country, letter, family: False,
    )
    # the small ASNs' probes cannot reach k at all
    small = {"small-1", "small-2", "small-3"}
    records = [r for r in records if not (r.probe.id in small and r.target.letter == "k")]
    records += [
        pcdata.root_record(
            probe=r.probe,
            letter="k",
            family=r.target.family,
            started=r.started,
            udp_rtt=None,
            tcp_rtt=None,
        )
        for r in pcdata.make_rounds(start=NOW - dt.timedelta(minutes=14), rounds=2, fleet=fleet)
        if r.probe.id in small and r.target.letter == "k"
    ]
    store.put_records(records)
    exporter = exporter_for(store)
    exporter.refresh(NOW)
    got = parse(exporter.render().decode())
    # unweighted: 4 of 7 probes answer; weighted: ASN 1 carries 25 %, like each other ASN
    assert got[
        key(
            "publiccore_root_reachable_ratio",
            country="NL",
            letter="k",
            family="ipv4",
            transport="tcp",
        )
    ] == pytest.approx(0.25)
    assert got[
        key("publiccore_aggregate_top_asn_share", country="NL", kind="root-dns")
    ] == pytest.approx(4 / 7)
    assert got[key("publiccore_aggregate_probe_asns", country="NL", kind="root-dns")] == 4


def test_events_and_ingest_counters(store):
    counts = ({"root-dns": 120.0, "traceroute": 3.0}, {"schema": 2.0, "too_far_in_future": 1.0})
    events = ev.load()
    exporter = exporter_for(store, events=events, ingest_counts=lambda: counts)
    got = parse(exporter.render().decode())
    assert got[key("publiccore_ingest_records_total", kind="root-dns")] == 120
    assert got[key("publiccore_ingest_rejected_records_total", reason="too_far_in_future")] == 1
    starts = {
        k: v for k, v in got.items() if k[0] == "publiccore_regulatory_event_timestamp_seconds"
    }
    assert len(starts) == len(events) == 80
    assert (
        got[
            key(
                "publiccore_regulatory_event_timestamp_seconds",
                country="EG",
                event="eg-2011-national-shutdown",
                kind="shutdown",
            )
        ]
        == dt.datetime(2011, 1, 27, tzinfo=dt.UTC).timestamp()
    )
    # nothing stored yet: no freshness samples, but the families are there
    assert key("publiccore_newest_record_age_seconds", kind="root-dns") not in got


def test_no_sample_timestamps_on_live_metrics(store, loaded):
    exporter = exporter_for(store, events=ev.load())
    exporter.refresh(NOW)
    for family in text_string_to_metric_families(exporter.render().decode()):
        assert all(s.timestamp is None for s in family.samples), family.name


def test_mount_serves_metrics_and_events(store, loaded):
    async def run() -> None:
        app = web.Application()
        mount(app, store, Settings(), events=ev.load(), clock=lambda: NOW)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for _ in range(200):  # the first refresh runs in the background: bounded wait
                if app[EXPORTER_KEY].snapshot.series:
                    break
                await asyncio.sleep(0.05)
            response = await client.get("/metrics")
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
            assert "publiccore_root_reachable_ratio{" in text
            response = await client.get(
                "/api/v1/events", params={"country": "ru", "since": "2022-01-01"}
            )
            body = await response.json()
            assert body["events"] and all(
                e["country"] == "RU" and e["date"] >= "2022-01-01" for e in body["events"]
            )
            response = await client.get("/api/v1/events", params={"since": "yesterday-ish"})
            assert response.status == 400

    asyncio.run(run())


def test_mount_on_the_ingest_app(store, loaded):
    ingest = pytest.importorskip("publiccore.collectors.ingest")

    async def run() -> None:
        settings = Settings()
        app = ingest.make_app(store, settings)
        stats = app[ingest.STATS_KEY]
        mount(
            app,
            store,
            settings,
            ingest_counts=ingest_counts_from(stats),
            events=[],
            clock=lambda: NOW,
        )
        stats.accepted_by_kind["root-dns"] += 26
        stats.rejected_by_reason["bad_token"] += 1
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for _ in range(200):  # the first refresh runs in the background: bounded wait
                if app[EXPORTER_KEY].snapshot.series:
                    break
                await asyncio.sleep(0.05)
            got = parse(await (await client.get("/metrics")).text())
            assert got[key("publiccore_ingest_records_total", kind="root-dns")] == 26
            assert got[key("publiccore_ingest_rejected_records_total", reason="bad_token")] == 1
            assert (
                key(
                    "publiccore_root_reachable_ratio",
                    country="NL",
                    letter="k",
                    family="ipv4",
                    transport="udp",
                )
                in got
            )
            assert (await client.get("/healthz")).status == 200

    asyncio.run(run())
