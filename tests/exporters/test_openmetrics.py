"""History: `publiccore export openmetrics` → promtool tsdb create-blocks-from openmetrics →
a real Prometheus on that TSDB answers range queries with the values computed from the records."""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import subprocess
import sys

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from publiccore.collectors.aggregate import Aggregator
from publiccore.exporters import openmetrics
from publiccore.exporters.catalogue import SPECS, Exposition

from publiccore import events as ev
from publiccore.config import AggregateSettings
from publiccore.records import RootResult
from publiccore.store import ProbeRegistration, facts


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1.5m", 90)]
)
def test_parse_duration(text, seconds):
    assert openmetrics.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "m", "-5m", "0s", "5 minutes"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        openmetrics.parse_duration(text)


@pytest.fixture
def history_store(store, pcdata):
    """One hour of 5-minute rounds; BGP dumps at the start and 30 minutes later (halved)."""
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=3)
    records = pcdata.make_rounds(
        start=start,
        rounds=12,
        unreachable=lambda country, letter, family: country == "RU" and letter == "k",
    )
    store.put_records(records)
    store.add_probe(ProbeRegistration(id="nl-1", country="NL", asn=1103, token_hash="a"))
    store.add_probe(ProbeRegistration(id="de-1", country="DE", asn=3320, token_hash="b"))
    store.put_observations(store.add_source("bgp", {}), pcdata.bgp_observations(start))
    store.put_observations(
        store.add_source("bgp", {}),
        pcdata.bgp_observations(start + dt.timedelta(minutes=30), scale=0.5),
    )
    return start, records


def test_history_matches_the_live_computation_at_each_step(store, history_store):
    start, _ = history_store
    settings = AggregateSettings()
    families = openmetrics.history(
        store,
        settings,
        since=start + dt.timedelta(minutes=20),
        until=start + dt.timedelta(minutes=50),
        step_seconds=600,
    )
    by_time: dict[float, dict[tuple[str, frozenset], float]] = {}
    for family in families:
        for s in family.samples:
            by_time.setdefault(s.timestamp, {})[(s.name, frozenset(s.labels.items()))] = s.value
    assert len(by_time) == 4
    for t, samples in by_time.items():
        live = Exposition.of(
            Aggregator(store, settings).refresh(dt.datetime.fromtimestamp(t, dt.UTC))
        )
        for name, series in live.series.items():
            if name == "publiccore_root_publication_latency_seconds":
                continue  # depends on what was seen before, by design
            labels = SPECS[name].labels
            for values, value in series.items():
                assert samples[(name, frozenset(zip(labels, values, strict=True)))] == (
                    pytest.approx(value)
                ), (name, values, t)


def test_openmetrics_text_is_valid(store, history_store):
    start, _ = history_store
    families = openmetrics.history(
        store,
        AggregateSettings(),
        since=start,
        until=start + dt.timedelta(minutes=15),
        step_seconds=300,
        events=ev.load(),
    )
    out = io.StringIO()
    openmetrics.write(families, out)
    text = out.getvalue()
    assert text.endswith("# EOF\n")
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert "publiccore_root_reachable_ratio" in parsed
    assert all(s.timestamp is not None for f in parsed.values() for s in f.samples)
    # the direct writer gives prometheus_client's exposition byte for byte, hostile text included
    hostile = GaugeMetricFamily("publiccore_test_ratio", 'a \\ "b"\nc', labels=["country"])
    hostile.add_metric(['x"\\\ny'], 0.5, timestamp=1.5)
    hostile.add_metric(["NL"], float("nan"), timestamp=2.0)
    both = [*families, hostile]
    mine = io.StringIO()
    openmetrics.write(both, mine)
    assert mine.getvalue() == _client_exposition(both)


def _client_exposition(families):
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest
    from prometheus_client.registry import Collector

    class Families(Collector):
        def collect(self):
            yield from (f for f in families if f.samples)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return generate_latest(registry).decode("utf-8")


def test_backfill_into_prometheus_answers_range_queries(tmp_path, store, history_store, pcdata):
    start, records = history_store
    promtool = pcdata.need("promtool")
    since, until = start + dt.timedelta(minutes=15), start + dt.timedelta(minutes=60)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("PUBLICCORE_CONFIG", None)
    history_file = tmp_path / "history.om"
    with open(history_file, "w") as out:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "publiccore",
                "export",
                "openmetrics",
                "--store",
                str(store.path),
                "--since",
                since.isoformat(),
                "--until",
                until.isoformat(),
                "--step",
                "5m",
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    tsdb = tmp_path / "tsdb"
    run = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(history_file), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    config = "global:\n  scrape_interval: 1h\nscrape_configs: []\n"
    with pcdata.prometheus(tmp_path, config, tsdb=tsdb) as prom:
        t0, t1 = since.timestamp(), until.timestamp()

        def values(expr: str) -> list[tuple[float, float]]:
            result = pcdata.prom_range(prom, expr, start=t0, end=t1, step=300)
            assert len(result) == 1, (expr, result)
            return [(float(t), float(v)) for t, v in result[0]["values"]]

        dump2 = (start + dt.timedelta(minutes=30)).timestamp()
        visible = values('publiccore_bgp_country_visible_slash24{country="NL"}')
        assert len(visible) == 10
        assert visible == [(t, 26_000.0 if t >= dump2 else 52_000.0) for t, _ in visible]

        assert {
            v
            for _, v in values(
                'publiccore_root_reachable_ratio{country="RU",letter="k",'
                'family="ipv4",transport="udp"}'
            )
        } == {0.0}

        median = values(
            'publiccore_root_rtt_seconds{country="NL",letter="a",family="ipv4",'
            'transport="udp",quantile="0.5"}'
        )
        assert len(median) == 10
        for t, value in median:
            window = [
                q.rtt_seconds
                for r in records
                if r.probe.country == "NL"
                and r.target.letter == "a"
                and r.target.family == "ipv4"
                and t - 900 <= r.started.timestamp() < t
                and isinstance(r.result, RootResult)
                for q in r.result.queries
                if q.qtype == "SOA" and q.transport == "udp" and q.rcode == "NOERROR"
            ]
            # read from log bins: within the stated relative error of the exact median
            exact = quantile(window, 0.5)
            assert value == pytest.approx(exact, rel=facts.RTT_RELATIVE_ERROR), t

        event = values(
            'publiccore_regulatory_event_timestamp_seconds{event="eg-2011-national-shutdown"}'
        )
        assert {v for _, v in event} == {dt.datetime(2011, 1, 27, tzinfo=dt.UTC).timestamp()}


def test_chunked_files_hold_the_same_samples(tmp_path, store, history_store):
    start, _ = history_store
    since, until = start + dt.timedelta(minutes=10), start + dt.timedelta(minutes=55)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("PUBLICCORE_CONFIG", None)
    base = [
        sys.executable,
        "-m",
        "publiccore",
        "export",
        "openmetrics",
        "--store",
        str(store.path),
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        "--step",
        "5m",
    ]
    single = subprocess.run(
        base, capture_output=True, text=True, env=env, timeout=300, check=True
    ).stdout
    run = subprocess.run(
        [*base, "--out-dir", str(tmp_path / "chunks"), "--chunk", "20m"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    files = sorted((tmp_path / "chunks").glob("*.om"))
    assert len(files) == 3 and run.stdout.split() == [str(f) for f in files]

    def samples(text: str) -> set[tuple]:
        return {
            (s.name, tuple(sorted(s.labels.items())), s.value, float(s.timestamp))
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    chunked = set().union(*(samples(f.read_text()) for f in files))
    assert chunked == samples(single)
