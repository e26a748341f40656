"""RSSAC047 correctness end to end: a probe round against real NSD root servers, judged.

Lab (tests/lab): a serves the real signed root zone of 2023-05-11 (serial 2023051100); b the
same zone with every TLD delegated to other (hijacked) name servers; c the same zone without
its NSEC records. The probe runs one round in its namespace, every round asking the negative
name too (``negative_query_share = 1``), validating as of the zone's signing time, into a
store; the collector is given the real zone (``publiccore root zone import``) and the
exporter (the deriver) judges the round after a refresh. a is correct every time; b's TLD
referrals and c's negative answer (and its referrals of unsigned TLDs) are not.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import pathlib
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from publiccore.collectors.aggregate import Aggregator
from publiccore.exporters.prometheus import Exporter

from publiccore import records
from publiccore.config import Settings
from publiccore.store.sqlite import SqliteStore
from tests.lab.dnslab import ServerSpec

pytestmark = pytest.mark.lab

SIGNING_TIME = "2023-05-11T12:00:00Z"  # inside the real zone's RRSIG validity


@pytest.fixture(scope="module")
def judged_round(
    make_dns_lab_module: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[records.Record], SqliteStore, dict[str, dict[tuple[str, ...], float]]]:
    lab = make_dns_lab_module(
        [
            ServerSpec("a", "iana"),
            ServerSpec("b", "iana", zone="iana-wrong-delegation"),
            ServerSpec("c", "iana", zone="iana-no-nsec"),
        ]
    )
    work = tmp_path_factory.mktemp("correctness")
    config = work / "publiccore.toml"
    config.write_text(
        '[probe]\ncountry = "NL"\nasn = 64500\n\n[root]\nnegative_query_share = 1.0\n'
    )
    store_path = work / "store.sqlite"
    done = lab.run_in_probe(
        sys.executable,
        "-m",
        "publiccore",
        "--config",
        str(config),
        "probe",
        "root",
        "--once",
        "--json",
        "--hints",
        str(lab.hints_path),
        "--timeout",
        "1.5",
        "--validation-time",
        SIGNING_TIME,
        "--store",
        str(store_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    recs = [records.loads(line) for line in done.stdout.splitlines()]
    zone_file = pathlib.Path(lab.zone_paths["iana"])
    imported = lab.run_in_probe(
        sys.executable,
        "-m",
        "publiccore",
        "--config",
        str(config),
        "root",
        "zone",
        "import",
        str(zone_file),
        "--store",
        str(store_path),
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert "zone 2023051100 stored" in imported.stdout
    store = SqliteStore(store_path)
    newest = max(r.started for r in recs)
    # the deriver (the exporter holding the lease) judges after it has published a snapshot;
    # the next refresh shows the verdicts
    now = newest + dt.timedelta(seconds=5)
    exporter = Exporter(
        store, Settings(), registry=CollectorRegistry(), aggregator=Aggregator(store)
    )
    first = exporter.refresh(now)
    assert not first.series.get("publiccore_root_correctness_judged")  # judged after it
    snapshot = exporter.refresh(now)
    return recs, store, snapshot.series


def test_every_letter_was_asked_the_correctness_questions(judged_round: Any) -> None:
    recs, _, _ = judged_round
    assert len(recs) == 6  # a, b, c over IPv4 and IPv6
    for record in recs:
        asked = {(q.qname, q.qtype) for q in record.result.queries if q.qclass == "IN"}
        assert {(".", "SOA"), (".", "DNSKEY"), (".", "NS")} <= asked
        tlds = {q for q, t in asked if t in ("NS", "DS") and q != "."}
        assert tlds and all(q.count(".") == 1 for q in tlds)
        negative = [q for q, t in asked if t == "A"]
        assert len(negative) == 1 and negative[0].startswith("www.rssac047-test.")
    # every letter of the round got the same questions
    assert len({frozenset((q.qname, q.qtype) for q in r.result.queries) for r in recs}) == 1


def test_correct_letter_is_one_and_the_wrong_ones_are_below(judged_round: Any) -> None:
    recs, store, series = judged_round
    ratio = series["publiccore_root_correctness_ratio"]
    judged = series["publiccore_root_correctness_judged"]
    assert ratio[("NL", "a")] == 1.0
    assert ratio[("NL", "b")] < 1.0
    assert ratio[("NL", "c")] < 1.0
    # SOA over UDP and TCP, DNSKEY, . NS, TLD NS, TLD DS, the negative name: 7 per address
    assert judged[("NL", "a")] == 14.0
    rows = {r.record_id: r for r in store.iter_correctness(since=0, until=2**40)}
    by_letter: dict[str, list[str]] = {}
    for record in recs:
        by_letter.setdefault(record.target.letter, []).append(rows[record.id].detail)
    assert all(d == "" for d in by_letter["a"])
    for detail in by_letter["b"]:
        assert " NS/" in detail and "NS differs from zone 2023051100" in detail
    for detail in by_letter["c"]:
        assert "www.rssac047-test." in detail and "NXDOMAIN without NSEC" in detail


def test_correctness_command_prints_the_same(judged_round: Any) -> None:
    _, store, series = judged_round
    from publiccore.app import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["root", "correctness", "--store", str(store.path), "--json"]) == 0
    rows = {(r["country"], r["letter"]): r for r in json.loads(out.getvalue())}
    assert {k: r["ratio"] for k, r in rows.items()} == series["publiccore_root_correctness_ratio"]
    assert {k: float(r["judged"]) for k, r in rows.items()} == series[
        "publiccore_root_correctness_judged"
    ]
