"""Atlas results between bundled hints files map by the root addresses in force on their day.

No bundled hints file covers 2017-2023, when B-root was at the addresses it moved to in 2017;
the dated address changes (publiccore/data/root_address_changes.toml) do. The results here are
real Atlas results (the L-root measurement 1071935 in shared/data/atlas) with their destination
and time changed to B-root's addresses of a period; the addresses come from that table.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

from publiccore import records as rec
from publiccore import roothints
from publiccore.app import cli
from publiccore.store import open_store


def _b_changes() -> tuple[roothints.AddressChange, ...]:
    return tuple(c for c in roothints.load_changes() if c.letter == "b")


def _posix(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


def test_b_root_results_of_2017_to_2023_map_to_b(
    monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    b_2017_v4, b_2017_v6 = (
        next(c for c in _b_changes() if c.effective.year == 2017 and c.family == f)
        for f in ("ipv4", "ipv6")
    )
    b_2023_v4 = next(c for c in _b_changes() if c.effective.year == 2023 and c.family == "ipv4")
    assert b_2017_v4.new == b_2023_v4.old  # the address of the whole period
    real = monitor(1071935)["results"]
    cases = [
        # (destination, day, letter expected or None for not_root)
        (b_2017_v4.new, "2019-06-01T12:00:00", "b"),
        (b_2017_v6.new, "2019-06-01T12:00:00", "b"),
        (b_2017_v4.old, "2019-06-01T12:00:00", None),  # retired at 2017-10-24 by the hints
        (b_2017_v4.new, "2017-10-23T12:00:00", None),  # the day before B moved there
        (b_2023_v4.new, "2024-01-15T12:00:00", "b"),  # before the 2024-08-14 hints file
        (b_2023_v4.old, "2024-09-01T12:00:00", "b"),  # old B answered until 2024-11-27
        (b_2023_v4.old, "2025-01-15T12:00:00", None),
    ]
    lines = []
    for (address, day, _), result in zip(cases, real + real, strict=False):
        moved = json.loads(json.dumps(result))
        moved["dst_addr"] = address
        moved["af"] = 6 if ":" in address else 4
        moved["timestamp"] = _posix(day)
        lines.append(json.dumps(moved))
    path = tmp_path / "b-root.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = tmp_path / "s.sqlite"
    code = cli.main(["import", "atlas", "--json", "--store", str(store), str(path)])
    counts = json.loads(capsys.readouterr().out)
    assert code == 0
    expected_roots = [c for c in cases if c[2] is not None]
    assert counts["records"] == {"root-dns": len(expected_roots)}
    assert counts["skipped"] == {"not_root": len(cases) - len(expected_roots)}
    opened = open_store(str(store))
    try:
        got = {
            (r.target.address, int(r.started.timestamp())): r.target
            for r in opened.iter_records()
            if isinstance(r.target, rec.RootTarget)
        }
    finally:
        opened.close()
    for address, day, letter in expected_roots:
        target = got[(address, _posix(day))]
        assert target == rec.RootTarget(
            letter=str(letter),
            name=f"{letter}.root-servers.net.",
            address=address,
            family="ipv6" if ":" in address else "ipv4",
        )
