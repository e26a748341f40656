"""Open data: the daily series and the profile as CSV or Parquet, with definitions and samples.

One row per country × day × dimension: the value (empty on a gap day, with status ``gap``), its
definition id and unit, and the day's sample sizes (records, probes, probe ASNs, full-feed
peers, traces). Profile rows name the dimension ``profile:<dimension>`` (definition M-profile,
unit ``score``, 1 = more fragmented) and ``profile:composite`` (a convenience, equal weights).
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

from publiccore.collectors import profile as prof
from publiccore.collectors.series import CountrySeries

from publiccore.errors import InputError

COLUMNS: tuple[str, ...] = (
    "country",
    "day",
    "dimension",
    "definition",
    "unit",
    "value",
    "status",
    "records",
    "probes",
    "probe_asns",
    "full_feed_peers",
    "traces",
)


def rows(by_country: Mapping[str, CountrySeries]) -> Iterator[dict[str, Any]]:
    """The export rows, sorted by country, dimension, day (profile rows after the series)."""
    for country, series in sorted(by_country.items()):
        for name, s in sorted(series.items()):
            dim = s.dimension
            items = [(p.day, p) for p in s.points] + [(d, None) for d in s.gaps]
            for day, point in sorted(items, key=lambda x: x[0]):
                sample = point.sample if point else None
                yield {
                    "country": country,
                    "day": day.isoformat(),
                    "dimension": name,
                    "definition": dim.definition,
                    "unit": dim.unit,
                    "value": point.value if point else None,
                    "status": "ok" if point else "gap",
                    "records": sample.records if sample else None,
                    "probes": sample.probes if sample else None,
                    "probe_asns": sample.probe_asns if sample else None,
                    "full_feed_peers": sample.full_feed_peers if sample else None,
                    "traces": sample.traces if sample else None,
                }
        for day in prof.profile(series):
            values = {**{f"profile:{k}": v for k, v in day.scores.items()}}
            if day.composite is not None:
                values["profile:composite"] = day.composite
            for name, value in values.items():
                yield {
                    "country": country,
                    "day": day.day.isoformat(),
                    "dimension": name,
                    "definition": "M-profile",
                    "unit": "score",
                    "value": value,
                    "status": "ok",
                    **dict.fromkeys(COLUMNS[7:]),
                }


def to_csv(by_country: Mapping[str, CountrySeries]) -> str:
    """The rows as CSV (full-precision numbers, empty cells for no data)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows(by_country):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def write_parquet(by_country: Mapping[str, CountrySeries], path: pathlib.Path) -> int:
    """Write the rows as Parquet (needs pyarrow: ``pip install 'publiccore[parquet]'``)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "--format parquet needs pyarrow (pip install 'publiccore[parquet]')"
        ) from None
    data = list(rows(by_country))
    ints = ("records", "probes", "probe_asns", "full_feed_peers", "traces")
    schema = pa.schema(
        [
            (c, pa.float64() if c == "value" else pa.int64() if c in ints else pa.string())
            for c in COLUMNS
        ]
    )
    table = pa.Table.from_pylist(data, schema=schema)
    pq.write_table(table, path)
    return len(data)
