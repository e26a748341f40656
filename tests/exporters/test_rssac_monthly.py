"""RSSAC047's monthly pass/fail table in reports: hand-built months with known verdicts."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import pathlib

import pytest
from publiccore.exporters import report, rssac_monthly

from publiccore import records as rec
from publiccore.config import AggregateSettings
from publiccore.store.sqlite import SqliteStore
from tests.exporters.conftest import root_record

OLD, S1, S2 = 2026100900, 2026101000, 2026111000
NL = rec.ProbeRef(id="nl-1", asn=64500, country="NL")
DE = rec.ProbeRef(id="de-1", asn=64510, country="DE")
OCT = dt.datetime(2026, 10, 10, 12, 0, tzinfo=dt.UTC)
NOV = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)
LETTERS = "abcdefghijklm"
DOWN_IN_NOVEMBER = "hijklm"  # 6 letters: every round reaches 7 < k = 8


def _round(
    probe: rec.ProbeRef, start: dt.datetime, n: int, letters: str, month: str
) -> list[rec.Record]:
    out = []
    minutes = 5 * n
    started = start + dt.timedelta(minutes=minutes, seconds=10)
    for letter in letters:
        for family in ("ipv4", "ipv6"):
            udp, tcp = 0.01, 0.02
            if month == "oct":
                # c sees S1 70 minutes after it appeared (at 12:30): an RSI fail (> 65 min)
                serial = S1 if minutes >= 30 + (70 if letter == "c" else 0) else OLD
                if letter == "j":
                    udp, tcp = 0.3, 0.35  # UDP median above 250 ms, TCP within 500 ms
                if letter == "k" and family == "ipv6":
                    udp = None  # k over IPv6 UDP never answers in October
            else:
                # S2 first seen by de-1 on a at 12:30; nl-1 sees it on every letter 40 min later
                delay = 0 if probe is DE else 40
                serial = S2 if minutes >= 30 + delay else S1
                if letter in DOWN_IN_NOVEMBER:
                    udp = tcp = None
            record = root_record(
                probe=probe,
                letter=letter,
                family=family,
                started=started,
                udp_rtt=udp,
                tcp_rtt=tcp,
                serial=serial,
            )
            out.append(dataclasses.replace(record, round=f"{probe.id}-{month}-{n}"))
    return out


def _records() -> list[rec.Record]:
    out = []
    for n in range(24):  # two hours of 5-minute rounds in each month
        out += _round(NL, OCT, n, LETTERS, "oct")
        out += _round(NL, NOV, n, LETTERS, "nov")
        out += _round(DE, NOV, n, "a", "nov")
    return out


@pytest.fixture
def built(tmp_path: pathlib.Path) -> report.Report:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records())
        return report.build(
            store,
            country="nl",
            since=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
            until=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            settings=AggregateSettings(),
            store_label="test",
        )


def test_the_months_and_their_verdicts(built: report.Report) -> None:
    sep, oct_, nov = built.monthly
    assert [m.month for m in built.monthly] == [
        dt.date(2026, 9, 1),
        dt.date(2026, 10, 1),
        dt.date(2026, 11, 1),
    ]
    assert not any(m.partial for m in built.monthly)
    # September: no record, so every cell is "no data" (correctness: "not measured"), no zero
    assert sep.records == 0
    assert {c.verdict for c in sep.cells if c.metric != "correctness"} == {"no data"}
    assert {c.value for c in sep.cells} == {None}
    assert {c.verdict for c in sep.cells if c.metric == "correctness"} == {"not measured"}

    assert oct_.records == 13 * 2 * 24
    assert oct_.cell("availability", "a", "ipv4", "udp").verdict == "pass"
    k6 = oct_.cell("availability", "k", "ipv6", "udp")
    assert (k6.value, k6.verdict) == (0.0, "fail")
    assert oct_.cell("availability", "k", "ipv6", "tcp").verdict == "pass"
    # precision: the unweighted count behind each figure (queries sent, answered; rounds)
    assert k6.measurements == 24 and oct_.cell("latency", "k", "ipv6", "udp").measurements == 0
    assert oct_.cell("availability", "RSS", "ipv4", "udp").measurements == 24
    assert oct_.cell("correctness", "a").measurements is None
    j_udp, j_tcp = (oct_.cell("latency", "j", "ipv4", t) for t in ("udp", "tcp"))
    assert j_udp.value == pytest.approx(0.3, rel=0.01) and j_udp.verdict == "fail"
    assert j_tcp.verdict == "pass" and j_tcp.threshold == 0.5
    assert oct_.cell("latency", "a", "ipv6", "udp").verdict == "pass"
    a, c = (oct_.cell("publication latency", x) for x in "ac")
    assert (a.value, a.verdict, a.measurements) == (0.0, "pass", 1)
    assert (c.value, c.verdict) == (4200.0, "fail")  # 70 min > 65 min
    assert oct_.cell("correctness", "a").verdict == "not measured"
    # the system: 13 (IPv4) and 12 (IPv6 UDP) letters each round, ≥ k = 8: 100 %
    rss_v6 = oct_.cell("availability", "RSS", "ipv6", "udp")
    assert (rss_v6.value, rss_v6.verdict, rss_v6.threshold) == (1.0, "pass", 0.99999)
    assert oct_.cell("latency", "RSS", "ipv4", "udp").verdict == "pass"
    rss_pub = oct_.cell("publication latency", "RSS")
    assert (rss_pub.value, rss_pub.verdict, rss_pub.measurements) == (0.0, "pass", 13)

    # November: 7 letters each round → RSS availability 7/8, a fail; publication 40 min: within
    # the letters' 65 min, above the system's 35 min
    rss_v4 = nov.cell("availability", "RSS", "ipv4", "tcp")
    assert (rss_v4.value, rss_v4.verdict) == (7 / 8, "fail")
    assert nov.cell("availability", "h", "ipv4", "udp").verdict == "fail"
    assert nov.cell("availability", "g", "ipv4", "udp").verdict == "pass"
    b = nov.cell("publication latency", "b")
    assert (b.value, b.verdict, b.threshold) == (2400.0, "pass", 3900.0)
    h = nov.cell("publication latency", "h")  # never answered: no serial, no data (not 0)
    assert (h.value, h.verdict, h.measurements) == (None, "no data", 0)
    assert nov.cell("latency", "h", "ipv4", "udp").verdict == "no data"
    rss_pub = nov.cell("publication latency", "RSS")
    assert (rss_pub.value, rss_pub.verdict, rss_pub.threshold) == (2400.0, "fail", 2100.0)


def test_the_table_in_markdown_html_and_csv(built: report.Report, tmp_path: pathlib.Path) -> None:
    paths = report.write(built, tmp_path / "out")
    assert "monthly.csv" in {p.name for p in paths}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## RSSAC047 monthly pass/fail (M-root-monthly)" in text
    assert "### 2026-09: 0 root-dns records\n\n_no data_" in text
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in text.splitlines()
        if line.startswith("| ")
    }
    assert rows["RSS"].count("87.5000 % fail") == 4  # November's system row, every family
    assert "| c | pass |" in text  # a letter shows its verdict only
    html = (tmp_path / "out" / "report.html").read_text()
    assert "RSSAC047 monthly pass/fail" in html and "40 min fail" in html
    cells = list(csv.DictReader(open(tmp_path / "out" / "monthly.csv", encoding="utf-8")))
    assert len(cells) == 3 * (13 * 10 + 10)
    by_key = {(r["month"], r["letter"], r["metric"], r["family"], r["transport"]): r for r in cells}
    c = by_key[("2026-10", "c", "publication latency", "", "")]
    assert (c["value"], c["verdict"], c["threshold"]) == ("4200.0", "fail", "3900.0")
    sep = by_key[("2026-09", "RSS", "availability", "ipv4", "udp")]
    assert (sep["value"], sep["verdict"]) == ("", "no data")  # empty, never 0


def test_a_period_cut_inside_months_marks_them_partial() -> None:
    spans = rssac_monthly.months(
        dt.datetime(2026, 10, 20, tzinfo=dt.UTC), dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    )
    assert [(d, a.day, b.month, b.day) for d, a, b in spans] == [
        (dt.date(2026, 10, 1), 20, 11, 1),
        (dt.date(2026, 11, 1), 1, 12, 1),
        (dt.date(2026, 12, 1), 1, 12, 5),
    ]
    assert rssac_monthly.months(
        dt.datetime(2026, 12, 31, tzinfo=dt.UTC), dt.datetime(2027, 1, 2, tzinfo=dt.UTC)
    )[1][0] == dt.date(2027, 1, 1)


@pytest.mark.parametrize(
    ("values", "a", "b", "rss"),
    [
        ({}, "not measured", "not measured", "not measured"),  # nothing yet: not measured
        ({("DE", "a"): 1.0}, "not measured", "not measured", "not measured"),  # another country
        ({("NL", "a"): 1.0, ("NL", "c"): 0.999}, "pass", "no data", "not measured"),
    ],
)
def test_correctness_cells_read_the_ratio_when_there_is_one(values, a, b, rss) -> None:
    """A ratio from the correctness measurement is judged against 100 %; until there is one
    for the country the cells say "not measured", and never a fail."""
    empty = rssac_monthly.publication.PublicationLatency(0.0, 1.0, 1.0, (), ())
    series = {
        "publiccore_root_reachable_ratio": {},
        "publiccore_root_rtt_seconds": {},
        rssac_monthly.CORRECTNESS_METRIC: values,
    }
    month = rssac_monthly.Month(
        month=dt.date(2026, 10, 1),
        since=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        until=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        records=1,
        cells=tuple(rssac_monthly.cells_of(series, empty, "NL")),
    )
    assert month.cell("correctness", "a").verdict == a
    assert month.cell("correctness", "b").verdict == b
    assert month.cell("correctness", "RSS").verdict == rss
    if values.get(("NL", "c")):
        assert month.cell("correctness", "c").verdict == "fail"
    assert month.cell("availability", "a", "ipv4", "udp").verdict == "no data"


def test_stored_correctness_verdicts_fill_the_monthly_cells(tmp_path: pathlib.Path) -> None:
    """Verdicts the deriver stored (``root_correctness``) give the month's correctness cells:
    a letter with every answer correct passes, one with a wrong answer fails, a letter without
    a verdict stays "no data", a month without any verdict "not measured"."""
    from publiccore.store.zones import CorrectnessRow

    records = _records()
    november = [r for r in records if r.started >= NOV and r.probe.id == "nl-1"]
    rows = []
    for r in november:
        letter = r.root_target.letter if r.root_target else ""
        if letter in "ab":
            wrong = letter == "b" and r.root_target is not None and r.root_target.family == "ipv6"
            rows.append(
                CorrectnessRow(r.id, r.started.timestamp(), "NL", letter, 3, 3 - wrong, 0, 1.0)
            )
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(records)
        store.put_correctness(rows)
        built = report.build(
            store,
            country="nl",
            since=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
            until=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            settings=AggregateSettings(),
        )
    oct_, nov = built.monthly
    assert {c.verdict for c in oct_.cells if c.metric == "correctness"} == {"not measured"}
    assert nov.cell("correctness", "a", "", "").verdict == "pass"
    assert nov.cell("correctness", "a", "", "").value == 1.0
    assert nov.cell("correctness", "b", "", "").verdict == "fail"
    assert nov.cell("correctness", "b", "", "").value == pytest.approx(1 - 24 / (3 * 48))
    assert nov.cell("correctness", "c", "", "").verdict == "no data"
