"""Citable reports: figures agree with the aggregates, files are written, provenance is stated."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys

import pytest
from publiccore.exporters import report

from publiccore import events as ev
from publiccore.config import AggregateSettings

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def test_report_figures_and_files(tmp_path, store, pcdata):
    records = []
    for day in range(3):  # three days, 4 rounds a day
        records += pcdata.make_rounds(
            start=START + dt.timedelta(days=day),
            rounds=4,
            seed=day,
            unreachable=lambda country, letter, family, day=day: letter == "k" and day == 1,
        )
    store.put_records(records)
    store.put_observations(
        store.add_source("bgp", {}), pcdata.bgp_observations(START + dt.timedelta(hours=6))
    )
    store.put_observations(
        store.add_source("bgp", {}),
        pcdata.bgp_observations(START + dt.timedelta(days=2), scale=0.5),
    )
    built = report.build(
        store,
        country="nl",
        since=START,
        until=START + dt.timedelta(days=3),
        settings=AggregateSettings(),
        events=ev.load(),
        store_label="test",
    )
    nl = [r for r in records if r.probe.country == "NL"]
    assert built.root["publiccore_aggregate_records"][("NL", "root-dns")] == len(nl)
    # k failed for a whole day out of three (and a few IPv6 UDP queries time out)
    soa = [q for r in nl if r.target.letter == "k" for q in r.result.queries if q.qtype == "SOA"]
    assert built.root["publiccore_root_availability_ratio"][("NL", "k")] == pytest.approx(
        sum(q.rcode == "NOERROR" for q in soa) / len(soa)
    )
    days = [v for _, v in built.daily_availability["k"]]
    assert days[1] == 0.0 and days[0] > 0.9 and days[2] > 0.9

    paths = report.write(built, tmp_path / "out")
    assert {p.name for p in paths} == {
        "report.md",
        "report.html",
        "availability.svg",
        "availability.csv",
        "root.csv",
        "monthly.csv",
        "bgp.csv",
        "events.csv",
    }
    text = (tmp_path / "out" / "report.md").read_text()
    assert "publiccore 0.1.0" in text and "M-root-reachability" in text
    assert (
        f"{len(nl)} root-dns records (from volunteer probes only) from 4 probes in 4 probe ASNs"
        in text
    )
    assert "(M-sampling)" in text
    rows = list(csv.DictReader(open(tmp_path / "out" / "root.csv")))
    assert {r["letter"] for r in rows} == set("abcdefghijklm")
    k = next(r for r in rows if r["letter"] == "k")
    assert k["meets_threshold"] == "no"
    assert float(k["availability_ratio"]) == pytest.approx(
        built.root["publiccore_root_availability_ratio"][("NL", "k")]
    )
    assert float(k["median_udp_seconds"]) < 1.0  # seconds, as a plain number
    bgp = {r["metric"]: r for r in csv.DictReader(open(tmp_path / "out" / "bgp.csv"))}
    visible = bgp["publiccore_bgp_country_visible_slash24"]
    first, last = float(visible["first"]), float(visible["last"])
    assert visible["points"] == "2" and 51_500 < first < 52_500 and last == first / 2
    assert "<svg" in (tmp_path / "out" / "availability.svg").read_text()


def test_report_command(tmp_path, store, pcdata):
    store.put_records(pcdata.make_rounds(start=START, rounds=2))
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    env.pop("PUBLICCORE_CONFIG", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "publiccore",
            "report",
            "--country",
            "RU",
            "--since",
            "2026-11-20",
            "--until",
            "2026-11-21",
            "--store",
            str(store.path),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "report.md" in run.stdout
    assert "RU, 2026-11-20 00:00" in (tmp_path / "r" / "report.md").read_text()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "publiccore",
            "report",
            "--country",
            "XX",
            "--since",
            "2026-11-20",
            "--store",
            str(store.path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1 and "--country" in run.stderr


@pytest.mark.parametrize(
    ("asns", "top", "says"),
    [
        (0, 0.0, "no records"),
        (2, 0.9, "fewer than 4 ASNs the 25.0 % cap cannot hold"),
        (5, 0.6, "contributed 60.0 % of records and was down-weighted to 25.0 %"),
        (5, 0.2, "within the 25.0 % cap, so no down-weighting"),
    ],
)
def test_sampling_note_says_what_the_weighting_did(asns, top, says):
    assert says in report.sampling_note(asns, top, 0.25)
