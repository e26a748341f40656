"""A real Prometheus scrapes a real ``publiccore serve``; every dashboard and rule expression
returns data.

The collector is the product's own process (``publiccore serve`` over a SQLite store): recorded
history and BGP dumps are put into its store, one probe's rounds arrive through the ingest API
with the probe's token (and a malformed batch and a wrong token are refused), so the ingest
counters are real. Prometheus (Debian package) runs on 127.0.0.1 with the project's rule files,
scraping every second. Waits are bounded polls.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import pathlib
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from publiccore.store import ProbeRegistration
from publiccore.store.registry import new_token, token_hash

REPO = pathlib.Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
UPLOADER = "nl-1"  # this probe's records go through HTTP; the others straight into the store


def post(url: str, body: bytes, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/api/v1/records",
        data=gzip.compress(body),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def scraped(text: str, name: str) -> dict[tuple[str, ...], float]:
    """``name``'s samples in a /metrics text, keyed by their label values in order."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            pairs = labels[len(name) + 1 : -1].split(",")
            out[tuple(sorted(pair.split("=", 1)[1].strip('"') for pair in pairs))] = float(value)
    return out


def test_prometheus_scrapes_publiccore_serve_and_every_expression_has_data(tmp_path, store, pcdata):
    now = dt.datetime.now(dt.UTC)
    new_serial_from = now - dt.timedelta(minutes=8)
    # rounds at -27.5, -22.5, … -7.5 minutes (+ up to 1 min): no record is at the 15-minute
    # window's edge for the first 2.5 minutes, so the scrape and /metrics see the same window
    records = pcdata.make_rounds(
        start=now - dt.timedelta(minutes=27.5),
        rounds=5,
        unreachable=lambda country, letter, family: country == "RU" and letter == "k",
        # a new zone serial, picked up by every letter but m
        serial_at=lambda letter, t: pcdata.SERIAL + (letter != "m" and t >= new_serial_from),
        outcome=lambda probe, letter: "alternate" if probe == "ru-4" and letter == "a" else "iana",
    )
    tokens = {}
    for ref in pcdata.FLEET.refs():
        tokens[ref.id] = new_token()
        store.add_probe(
            ProbeRegistration(
                id=ref.id, country=ref.country, asn=ref.asn, token_hash=token_hash(tokens[ref.id])
            )
        )
    store.add_probe(ProbeRegistration(id="de-1", country="DE", asn=3320, token_hash="h-de"))
    store.put_records([r for r in records if r.probe.id != UPLOADER])
    # two older serial changes (3 h and 100 min ago, before the root window) that every letter
    # but a picks up 40 minutes late: the RSS publication latency (median) is 40 min > 35 min
    changes = (now - dt.timedelta(hours=3), now - dt.timedelta(minutes=100))

    def older(letter: str, t: dt.datetime) -> int:
        lag = dt.timedelta(minutes=0 if letter == "a" else 40)
        return pcdata.SERIAL - 2 + sum(t >= c + lag for c in changes)

    store.put_records(
        pcdata.make_rounds(start=now - dt.timedelta(hours=4), rounds=42, seed=9, serial_at=older)
    )
    store.put_observations(
        store.add_source("bgp", {"dump": 1}), pcdata.bgp_observations(now - dt.timedelta(hours=2))
    )

    port = pcdata.free_port()
    collector_config = tmp_path / "collector.toml"
    collector_config.write_text(
        "[serve]\naggregate_interval_seconds = 1.0\nrate_limit_requests_per_minute = 100000.0\n"
    )
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publiccore",
            "--config",
            str(collector_config),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--store",
            str(store.path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    collector = f"http://127.0.0.1:{port}"
    config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES / "publiccore.yml"}
scrape_configs:
  - job_name: publiccore
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().startswith("listening on"), serve.stderr.read()
        # one probe's rounds through the ingest API; a malformed batch and a wrong token refused
        mine = [r.to_json() for r in records if r.probe.id == UPLOADER]
        assert post(collector, json.dumps(mine).encode(), tokens[UPLOADER]) == (
            200,
            {"accepted": len(mine), "duplicates": 0, "rejected": 0},
        )
        status, answer = post(collector, b'[{"schema": 1, "kind": "root-dns"}]', tokens[UPLOADER])
        assert status == 400 and answer["index"] == 0
        assert post(collector, b"[]", "not-a-token")[0] == 401

        with pcdata.prometheus(tmp_path, config) as prom:

            def samples_of(expr: str) -> float:
                result = pcdata.prom_query(prom, expr)
                return float(result[0]["value"][1]) if result else 0.0

            # phase 1: the first dump, scraped long enough to be the 24 h median
            pcdata.wait_for(
                "10 scrapes of the first dump",
                lambda: (
                    samples_of(
                        'count_over_time(publiccore_bgp_country_visible_slash24{country="RU"}[1h])'
                    )
                    >= 10
                ),
            )
            # phase 2: a newer dump with NL 15 % and RU 60 % down
            lower = [
                o
                for o in pcdata.bgp_observations(now - dt.timedelta(minutes=30), scale=0.4)
                if o.subject == "RU"
            ]
            lower += [
                o
                for o in pcdata.bgp_observations(now - dt.timedelta(minutes=30), scale=0.85)
                if o.subject != "RU"
            ]
            store.put_observations(store.add_source("bgp", {"dump": 2}), lower)
            pcdata.wait_for(
                "the second dump scraped",
                lambda: (
                    samples_of('publiccore_bgp_country_visible_slash24{country="RU"}') == 72_000.0
                ),
            )
            pcdata.wait_for(
                "two scrapes of the second dump",
                lambda: (
                    samples_of(
                        "count_over_time("
                        '(publiccore_bgp_country_visible_slash24{country="RU"} == 72000)'
                        "[1h:1s])"
                    )
                    >= 2
                ),
            )

            # Prometheus holds exactly what publiccore serve exported
            got = {
                tuple(
                    sorted(s["metric"][k] for k in ("country", "letter", "family", "transport"))
                ): float(s["value"][1])
                for s in pcdata.prom_query(prom, "publiccore_root_reachable_ratio")
            }
            with urllib.request.urlopen(collector + "/metrics", timeout=10) as answer:
                exported = scraped(answer.read().decode(), "publiccore_root_reachable_ratio")
            assert got == exported and len(got) == 2 * 13 * 4
            assert got[tuple(sorted(("RU", "k", "ipv4", "udp")))] == 0.0
            # the ingest counters are the service's own
            accepted = pcdata.prom_query(prom, 'publiccore_ingest_records_total{kind="root-dns"}')
            assert float(accepted[0]["value"][1]) == len(mine)

            run = subprocess.run(
                [
                    sys.executable,
                    str(REPO / "scripts" / "check_promql.py"),
                    "--prometheus",
                    prom,
                    "--dashboards",
                    str(DASHBOARDS),
                    "--rules",
                    str(RULES),
                    "--var",
                    "country=RU",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            print(run.stdout)
            assert run.returncode == 0, run.stdout + run.stderr
            assert " 0 of " not in run.stdout
    finally:
        serve.send_signal(signal.SIGTERM)
        _out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
