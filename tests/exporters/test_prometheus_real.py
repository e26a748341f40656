"""A real Prometheus scrapes the exporter; every dashboard and rule expression returns data.

The collector side is a minimal aiohttp app with ``exporters.prometheus.mount`` over a real
SqliteStore (the ingest service is built elsewhere); Prometheus (Debian package) runs on
127.0.0.1 with the project's rule files, scraping every second. Waits are bounded polls.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import pathlib
import subprocess
import sys

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporters.prometheus import mount
from publiccore import events as ev
from publiccore.config import Settings
from publiccore.store import ProbeRegistration

REPO = pathlib.Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"


def test_prometheus_scrapes_exporter_and_every_expression_has_data(tmp_path, store, pcdata):
    now = dt.datetime.now(dt.UTC)
    new_serial_from = now - dt.timedelta(minutes=8)
    records = pcdata.make_rounds(
        start=now - dt.timedelta(minutes=25), rounds=5,
        unreachable=lambda country, letter, family: country == "RU" and letter == "k",
        # a new zone serial, picked up by every letter but m
        serial_at=lambda letter, t: pcdata.SERIAL + (letter != "m" and t >= new_serial_from),
        outcome=lambda probe, letter: "alternate" if probe == "ru-4" and letter == "a"
        else "iana")
    store.put_records(records)
    for ref in pcdata.FLEET.refs():
        store.add_probe(ProbeRegistration(id=ref.id, country=ref.country, asn=ref.asn,
                                          token_hash=f"h-{ref.id}"))
    store.add_probe(ProbeRegistration(id="de-1", country="DE", asn=3320, token_hash="h-de"))
    store.put_observations(store.add_source("bgp", {"dump": 1}),
                           pcdata.bgp_observations(now - dt.timedelta(hours=2)))

    settings = Settings()
    settings.serve = dataclasses.replace(settings.serve, aggregate_interval_seconds=3600.0)
    ticks = itertools.count(1)

    def ingest_counts():
        n = next(ticks)
        return {"root-dns": 26.0 * n}, {"schema": float(n // 3), "bad_token": 1.0}

    app = web.Application()
    exporter = mount(app, store, settings, registry=CollectorRegistry(),
                     ingest_counts=ingest_counts, events=ev.load())
    port = pcdata.free_port()
    config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES / 'publiccore.yml'}
scrape_configs:
  - job_name: publiccore
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
    with pcdata.AppThread(app, port), pcdata.prometheus(tmp_path, config) as prom:
        def samples_of(expr: str) -> float:
            result = pcdata.prom_query(prom, expr)
            return float(result[0]["value"][1]) if result else 0.0

        # phase 1: the first dump, scraped long enough to be the 24 h median
        pcdata.wait_for("10 scrapes of the first dump", lambda: samples_of(
            'count_over_time(publiccore_bgp_country_visible_slash24{country="RU"}[1h])') >= 10)
        # phase 2: a newer dump with NL 15 % and RU 60 % down
        lower = [o for o in pcdata.bgp_observations(now - dt.timedelta(minutes=30), scale=0.4)
                 if o.subject == "RU"]
        lower += [o for o in pcdata.bgp_observations(now - dt.timedelta(minutes=30), scale=0.85)
                  if o.subject != "RU"]
        store.put_observations(store.add_source("bgp", {"dump": 2}), lower)
        exporter.refresh()
        pcdata.wait_for("the second dump scraped", lambda: samples_of(
            'publiccore_bgp_country_visible_slash24{country="RU"}') == 72_000.0)
        pcdata.wait_for("two scrapes of the second dump", lambda: samples_of(
            'count_over_time((publiccore_bgp_country_visible_slash24{country="RU"} == 72000)'
            '[1h:1s])') >= 2)

        # Prometheus holds exactly what the exporter computed
        snapshot = exporter.snapshot
        got = {tuple(s["metric"][k] for k in ("country", "letter", "family", "transport")):
               float(s["value"][1])
               for s in pcdata.prom_query(prom, "publiccore_root_reachable_ratio")}
        assert got == {k: v for k, v in
                       snapshot.series["publiccore_root_reachable_ratio"].items()}
        assert got[("RU", "k", "ipv4", "udp")] == 0.0

        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "check_promql.py"), "--prometheus", prom,
             "--dashboards", str(DASHBOARDS), "--rules", str(RULES), "--var", "country=RU"],
            capture_output=True, text=True, timeout=120, check=False)
        print(run.stdout)
        assert run.returncode == 0, run.stdout + run.stderr
        assert " 0 of " not in run.stdout
