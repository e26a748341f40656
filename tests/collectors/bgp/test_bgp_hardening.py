"""Damaged MRT input: corrupt is told from truncated, and a corrupt timestamp far ahead cannot
make ``bgp visibility --updates`` build bins without end.

Real MRT files from shared/data/mrt; the damaged copies are made here (cut, bytes flipped, one
record's timestamp moved a year ahead), and the results compared with the intact file's.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import random
import re
import shutil
import struct
import subprocess
import sys

import pytest
from publiccore.collectors.bgp.bgpdump import CORRUPT_PREFIX, BgpdumpReader, is_truncation

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

UPDATES = "mrt/libbgpstream/ris.rrc06.updates.1427846400.gz"
RIB = "mrt/bgpdump/bview.64k_stream_overflow.gz"
YEAR = 365 * 86_400


def _raw(shared_data: pathlib.Path) -> bytes:
    return gzip.decompress((shared_data / UPDATES).read_bytes())


def _report(path: pathlib.Path) -> tuple[int, object]:
    read = BgpdumpReader().read(path, kind="updates")
    count = sum(1 for _ in read)
    return count, read.report


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "truncated"),
    [
        ("bgpdump_read_next: incomplete dump record (0 bytes read, expecting 138)", True),
        ("bgpdump_read_next: incomplete dump record (12 bytes read, expecting 4096)", True),
        ("bgpdump_read_next: incomplete dump record (0 bytes read, expecting -16777076)", False),
        ("bgpdump_read_next: incomplete dump record (0 bytes read, expecting 829292544)", False),
        ("gzip stream ends early (truncated): unexpected end of file", True),
        ("bgp_message: bad marker: ff.ff.00.ff", False),
        ("process_zebra_bgp_message: unsupported AFI 253", False),
    ],
)
def test_is_truncation(text: str, truncated: bool) -> None:
    assert is_truncation(text) is truncated


@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.5, 0.93])
def test_a_cut_file_is_truncated(
    shared_data: pathlib.Path, tmp_path: pathlib.Path, fraction: float
) -> None:
    raw = _raw(shared_data)
    for name, data in (
        ("cut.mrt", raw[: int(len(raw) * fraction)]),
        ("cut.mrt.gz", gzip.compress(raw)[: int(len(gzip.compress(raw)) * fraction)]),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        count, report = _report(path)
        assert count > 0
        assert report.partial and report.problem.startswith("truncated: "), report.problem


def test_flipped_bytes_are_corrupt_never_truncated(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    raw = _raw(shared_data)
    seen_corrupt = 0
    for seed in range(27):
        rng = random.Random(seed)
        data = bytearray(raw)
        for _ in range(20):
            data[rng.randrange(len(data))] ^= 0xFF
        path = tmp_path / f"flipped{seed}.mrt"
        path.write_bytes(bytes(data))
        try:
            _count, report = _report(path)
        except Exception as exc:  # an unreadable file is fine too, if it says so
            assert "not a readable MRT file" in str(exc)
            continue
        if report.partial:  # the decoder saw the damage: it must not call it a truncation
            assert report.problem.startswith(CORRUPT_PREFIX), report.problem
            seen_corrupt += 1
    assert seen_corrupt >= 20


def test_cli_refuses_a_corrupt_file_in_one_line(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    data = bytearray(_raw(shared_data))
    for i in range(30_000, 30_040):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.mrt"
    bad.write_bytes(bytes(data))
    run = _cli(
        "bgp",
        "visibility",
        "--mrt",
        str(shared_data / RIB),
        "--updates",
        str(bad),
        "--json",
        "--no-store",
    )
    assert run.returncode == 1
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("publiccore: error:")]
    assert len(errors) == 1 and "corrupt MRT data" in errors[0], run.stderr
    assert "Traceback" not in run.stderr


def _shift_one_timestamp(raw: bytes, *, index: int, by: int) -> bytes:
    """``raw`` with the MRT header timestamp of record ``index`` moved ``by`` seconds."""
    data = bytearray(raw)
    offset = 0
    for _ in range(index):
        (length,) = struct.unpack_from("!I", data, offset + 8)
        offset += 12 + length
    (when,) = struct.unpack_from("!I", data, offset)
    struct.pack_into("!I", data, offset, when + by)
    return bytes(data)


def _bins(shared_data: pathlib.Path, updates: pathlib.Path) -> tuple[list[float], str]:
    run = _cli(
        "bgp",
        "visibility",
        "--mrt",
        str(shared_data / RIB),
        "--updates",
        str(updates),
        "--json",
        "--no-store",
    )
    assert run.returncode == 0, run.stderr
    return [b["time"] for b in json.loads(run.stdout)["bins"]], run.stderr


def test_one_timestamp_a_year_ahead_is_skipped_and_said(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    raw = _raw(shared_data)
    good = tmp_path / "good.mrt"
    good.write_bytes(raw)
    baseline, _ = _bins(shared_data, good)
    bad = tmp_path / "ahead.mrt"
    bad.write_bytes(_shift_one_timestamp(raw, index=100, by=YEAR))
    bins, stderr = _bins(shared_data, bad)
    assert bins == baseline
    assert re.search(r"skipped [12] update\(s\) timestamped far ahead", stderr), stderr


def test_a_real_gap_is_jumped_without_empty_bins(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    raw = _raw(shared_data)
    first = tmp_path / "first.mrt"
    first.write_bytes(raw)
    later = bytearray(raw)
    offset = 0
    while offset < len(later):  # every record a year later: a second file after a long gap
        (when,) = struct.unpack_from("!I", later, offset)
        struct.pack_into("!I", later, offset, when + YEAR)
        (length,) = struct.unpack_from("!I", later, offset + 8)
        offset += 12 + length
    second = tmp_path / "second.mrt"
    second.write_bytes(bytes(later))
    baseline, _ = _bins(shared_data, first)
    run = _cli(
        "bgp",
        "visibility",
        "--mrt",
        str(shared_data / RIB),
        "--updates",
        str(first),
        str(second),
        "--json",
        "--no-store",
    )
    assert run.returncode == 0, run.stderr
    bins = [b["time"] for b in json.loads(run.stdout)["bins"]]
    assert bins == baseline + [t + YEAR for t in baseline]
    assert "the gap has no bins" in run.stderr
