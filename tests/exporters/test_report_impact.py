"""Reports v2: impact numbers match an independent count, files are byte-identical, no-data
reports are honest, and the HTML renders in headless Chromium without overflowing tables."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys

import pytest
from publiccore.exporters import impact_report, report

from publiccore import config as cfg
from publiccore import events as ev
from publiccore.store.sqlite import SqliteStore
from tests import impact_fixtures as fx

EVENT = fx.START + dt.timedelta(days=110)
SINCE = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
TEST_EVENT = ev.Event(
    id="nl-test-order",
    date=EVENT,
    date_precision="day",
    country="NL",
    kind="order",
    scope=("dns",),
    title="A test order",
    summary="Synthetic event for the tests.",
    sources=("https://example.org/order",),
    confidence="high",
)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "store.sqlite"
    store = SqliteStore(path)
    fx.fill(
        store,
        fx.Plan(
            country="NL",
            days=150,
            non_iana=lambda i: 0.05 if i < 110 else 0.35,
            visible=lambda i: 52_000.0 + (i % 5) * 50 - (5000 if i >= 110 else 0),
        ),
    )
    store.close()
    return path


def _write(store_path, out, *, country: str = "NL"):
    settings = cfg.Settings()
    events = [*ev.load(), TEST_EVENT]
    store = SqliteStore(store_path)
    try:
        built = report.build(
            store,
            country=country,
            since=SINCE,
            until=UNTIL,
            settings=settings.aggregate,
            events=events,
            store_label="test store",
        )
        extra = impact_report.build_extra(
            store,
            country=country,
            since=SINCE.date(),
            until=UNTIL.date(),
            settings=settings,
            events=events,
        )
        prov = impact_report.provenance(
            store,
            settings=settings,
            store_label="test store",
            country=country,
            since=SINCE,
            until=UNTIL,
            extras=[extra],
            command=["report", "--country", country],
            definitions=["M-impact", "M-profile"],
        )
        return report.write(dataclasses.replace(built, extra=extra, provenance=prov), out)
    finally:
        store.close()


def _independent_share(store_path, day: dt.date) -> float:
    """Non-iana share of the day's records, counted straight from the stored records (both
    probe ASNs send the same number of records, so M-sampling weights are equal)."""
    store = SqliteStore(store_path)
    try:
        recs = list(
            store.iter_records(
                kind="root-dns",
                since=fx.midnight(day),
                until=fx.midnight(day + dt.timedelta(days=1)),
                country="NL",
            )
        )
    finally:
        store.close()
    return sum(r.result.integrity.outcome != "iana" for r in recs) / len(recs)


def test_impact_numbers_match_independent_count_and_files_are_identical(filled, tmp_path):
    first = _write(filled, tmp_path / "a")
    second = _write(filled, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    names = {p.name for p in first}
    assert {"impact.csv", "profile.csv", "provenance.json", "impact-nl-test-order.png"} <= names
    assert (tmp_path / "a" / "impact-nl-test-order.png").read_bytes()[:4] == b"\x89PNG"

    rows = {r["metric"]: r for r in csv.DictReader(open(tmp_path / "a" / "impact.csv"))}
    share = rows["root_non_iana_share"]
    before_days = [EVENT - dt.timedelta(days=d) for d in range(2, 16)]
    after_days = [EVENT + dt.timedelta(days=d) for d in range(2, 16)]
    before = statistics.median(_independent_share(filled, d) for d in before_days)
    after = statistics.median(_independent_share(filled, d) for d in after_days)
    assert float(share["before"]) == pytest.approx(before)
    assert float(share["after"]) == pytest.approx(after)
    assert float(share["change"]) == pytest.approx(after - before)
    assert share["notable"] == "yes" and float(share["interval_low"]) > 0
    assert share["records_before"] == str(14 * 26)
    visible = rows["bgp_visible_slash24"]
    expect_b = statistics.median(52_000.0 + ((d - fx.START).days % 5) * 50 for d in before_days)
    expect_a = statistics.median(
        52_000.0 + ((d - fx.START).days % 5) * 50 - 5000 for d in after_days
    )
    assert float(visible["change"]) == pytest.approx(expect_a - expect_b)

    md = (tmp_path / "a" / "report.md").read_text()
    assert "## Event impact (M-impact)" in md and "nl-test-order" in md
    assert "## How to cite and reproduce" in md and "associated with" in md
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert prov["software"]["version"] == "0.1.0"
    assert prov["store"]["records_in_period"]["probes"] == 2
    assert prov["store"]["records_in_period"]["probe_asns"] == 2
    assert prov["random_seeds"]["bootstrap"] == cfg.ImpactSettings().seed
    assert prov["query_windows"]["events"]["nl-test-order"]["before"][0] == "2026-04-06"
    assert len(prov["imported_files"]) == 150 and prov["imported_files"][0]["sha256"]
    assert "publiccore report --country NL" in prov["citation"]


def test_country_without_data_is_an_honest_no_data_report(filled, tmp_path):
    _write(filled, tmp_path / "de", country="DE")
    md = (tmp_path / "de" / "report.md").read_text()
    assert "**No data**" in md and "absent is not zero" in md
    assert "0 root-dns records" in md
    html = (tmp_path / "de" / "report.html").read_text()
    assert "No data" in html
    assert list(csv.reader(open(tmp_path / "de" / "impact.csv"))) == []


MEASURE = """<script>
(function () {
  var out = [];
  document.querySelectorAll('td, th').forEach(function (c) {
    if (c.scrollWidth > c.clientWidth + 1) out.push(c.textContent.slice(0, 40));
  });
  document.querySelectorAll('table').forEach(function (t) {
    if (t.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1)
      out.push('table wider than the page');
  });
  var charts = [];
  document.querySelectorAll('figure svg').forEach(function (s) {
    var r = s.getBoundingClientRect();
    charts.push([r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]);
  });
  var pre = document.createElement('pre');
  pre.id = 'measure';
  pre.textContent = JSON.stringify({overflow: out, charts: charts,
    height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
})();
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium not installed (Debian: apt-get install chromium)")


def test_html_renders_in_headless_chromium(filled, tmp_path):
    browser = _chromium()
    _write(filled, tmp_path / "r")
    page = tmp_path / "r" / "report.html"
    probe = tmp_path / "r" / "measure.html"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    base += ["--force-device-scale-factor=1", "--window-size=1100,900"]
    dom = subprocess.run(
        [*base, "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    start = dom.index('<pre id="measure">') + len('<pre id="measure">')
    measured = json.loads(dom[start : dom.index("</pre>", start)].replace("&quot;", '"'))
    assert measured["overflow"] == [], measured["overflow"]
    charts = measured["charts"]
    assert len(charts) == 2  # daily availability + the event's impact chart
    height = int(measured["height"]) + 20
    shot = tmp_path / "report-screenshot.png"
    subprocess.run(
        [*base[:-1], f"--window-size=1100,{height}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    print(f"screenshot: {shot}")
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= height - 20
    for left, top, width, h in charts:
        assert width > 200 and h > 100
        area = pixels[int(top) : int(top + h), int(left) : int(left + width)]
        drawn = (area < 0.9).any(axis=2).mean()  # share of non-white pixels
        assert drawn > 0.01, (left, top, drawn)
    # printed to PDF (what a reader's browser does with "Print")
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [*base, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000


def test_world_report_command_defaults_since_to_30_days(filled, tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    env.pop("PUBLICCORE_CONFIG", None)
    argv = ["report", "--world", "--until", "2026-05-01", "--store", str(filled)]
    argv += ["--out", str(tmp_path / "w")]
    run = subprocess.run(
        [sys.executable, "-m", "publiccore", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    (row,) = list(csv.DictReader(open(tmp_path / "w" / "world.csv")))
    assert row["country"] == "NL" and row["root_records"] == str(30 * 26)
    assert float(row["root_non_iana_share"]) == pytest.approx(
        statistics.fmean(
            _independent_share(filled, dt.date(2026, 4, 1) + dt.timedelta(days=d))
            for d in range(30)
        )
    )
    prov = json.loads((tmp_path / "w" / "provenance.json").read_text())
    assert prov["query_windows"]["period"] == [
        "2026-04-01T00:00:00+00:00",
        "2026-05-01T00:00:00+00:00",
    ]
    assert "--world" in prov["command"] and "--since 2026-04-01" in prov["command"]
    assert "How to cite and reproduce" in (tmp_path / "w" / "report.md").read_text()


def test_record_counts_from_the_buckets_equal_those_of_the_raw_records(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publiccore import records as rec
    from tests.exporters.conftest import make_rounds

    start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    volunteer = make_rounds(start=start, rounds=3)
    imported = [
        dataclasses.replace(
            r,
            id=rec.uuid7(int(r.started.timestamp() * 1e9) + i),
            probe=dataclasses.replace(r.probe, id=f"atlas-{r.probe.id}", asn=None),
            source=rec.RecordSource(name="ripe-atlas", measurement=10301),
        )
        for i, r in enumerate(make_rounds(start=start, rounds=2, seed=9))
    ]
    explicit = [dataclasses.replace(volunteer[0], id=rec.uuid7(1), source=rec.VOLUNTEER)]
    used = []
    real = impact_report._root_counts_from_buckets

    def spy(*args: object, **kw: object) -> bool:
        used.append(real(*args, **kw))  # type: ignore[arg-type]
        return used[-1]

    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(volunteer + imported + explicit)
        cases = [(None, start), ("NL", start), ("NL", start + dt.timedelta(seconds=30))]
        for country, since in cases:
            until = start + dt.timedelta(hours=1)
            monkeypatch.setattr(impact_report, "_root_counts_from_buckets", spy)
            summed = impact_report.record_counts(store, country=country, since=since, until=until)
            monkeypatch.setattr(impact_report, "_root_counts_from_buckets", lambda *a, **k: False)
            raw = impact_report.record_counts(store, country=country, since=since, until=until)
            assert summed == raw, (country, since)
            assert raw["by_kind_source"]["root-dns/ripe-atlas"] > 0
            assert raw["by_probe_asn"]["unknown"] > 0
    # the grid-aligned periods came from the buckets; 30 s off the grid, from the raw records
    assert used == [True, True, False]
