#!/usr/bin/env python3
"""Benchmark: RIPE Atlas import (parse + map + store) against plain ``json.loads``.

    python benchmarks/atlas_import.py [--results N] [--keep DIR]

Builds large JSON Lines files from real shared results (shared/data/atlas), repeated with new
probe ids and times (default 200,000 results in all, a third of each kind):

- ``dns-referral``: the L-root results of msm 1071935 (``fr. SOA``, a 367-byte referral with 16
  records: the expensive case for dnspython);
- ``dns-chaos``: the ``hostname.bind CH TXT`` results to 8.8.8.8 (recdnsfp, small answers), sent
  to K-root's address so they take the whole root mapping (as the CH TXT built-ins do);
- ``traceroute``: the traceroutes of msm 9040294–9040447 (recdnsfp, 11 hops on average).

Per kind, in the same run: the floor (read every line and ``json.loads`` it, nothing else; best
of 3) and the import (``files.read_results`` → ``mapping.Mapper`` with ripe-atlas-sagan and
dnspython → ``store.put_records`` into a fresh SQLite store, batches of 1000) in a fresh child
process, whose peak RSS is reported. Prints results per second of both, their ratio (import /
floor; 1.0 would mean importing costs nothing beyond decoding the JSON) and bytes stored per
record (SQLite file and WAL after the import).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path(os.environ.get("PUBLICCORE_SHARED_DATA", REPO.parent / "shared" / "data"))
ATLAS = DATA / "atlas"


def _asks(result: dict[str, object]) -> bool:
    """Whether the answer says what was asked (2 FORMERR answers carry no question)."""
    import base64

    import dns.message

    inner = result.get("result")
    if not isinstance(inner, dict):
        return False
    try:
        return bool(dns.message.from_wire(base64.b64decode(inner["abuf"])).question)
    except Exception:
        return False


def _k_root() -> str:
    from publiccore import roothints

    return next(s for s in roothints.load_hints() if s.letter == "k").ipv4[0]


def _sources() -> dict[str, list[dict[str, object]]]:
    referral = json.loads((ATLAS / "ripe-atlas-monitor" / "1071935.json").read_text())["results"]
    with gzip.open(ATLAS / "recdnsfp-measurements" / "google" / "ch_hostname.bind.json.gz") as f:
        # rewritten as results of the K-root built-in: its address read from the bundled hints
        k_root = _k_root()
        chaos = [dict(r, dst_addr=k_root) for r in json.load(f) if _asks(r)]
    with gzip.open(ATLAS / "recdnsfp-measurements" / "google" / "traceroute.json.gz") as f:
        traces = json.load(f)
    return {"dns-referral": referral, "dns-chaos": chaos, "traceroute": traces}


def build(path: pathlib.Path, results: list[dict[str, object]], count: int) -> None:
    """Write ``count`` results cycling ``results``, each with a new probe id and time."""
    base = 1_700_000_000
    with path.open("w") as out:
        for i in range(count):
            result = dict(results[i % len(results)])
            result["prb_id"] = 1_000_000 + i
            stamp = result["timestamp"]
            assert isinstance(stamp, int)
            result["timestamp"] = base + i
            if isinstance(result.get("endtime"), int):
                result["endtime"] = base + i + (result["endtime"] - stamp)  # type: ignore[operator]
            out.write(json.dumps(result, separators=(",", ":")) + "\n")


def floor(path: pathlib.Path) -> float:
    """Seconds to read and json.loads every line."""
    start = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - start


def run_import(path: pathlib.Path, store_path: pathlib.Path) -> tuple[float, dict[str, object]]:
    """Seconds to import the file into a fresh store, and the import counts."""
    from publiccore.collectors.atlas import files, importer, mapping
    from publiccore.probes import dnssec

    from publiccore.records import RecordSource
    from publiccore.roothints import HintsHistory
    from publiccore.store import open_store

    mapper = mapping.Mapper(
        hints=HintsHistory.load(), probes={}, anchors=dnssec.load_anchors(), questions={}
    )
    store = open_store(str(store_path))
    start = time.perf_counter()
    imp = importer.Importer(mapper, store, batch=1000)
    imp.add_items(
        files.read_results(path),
        source=RecordSource(name="ripe-atlas", file_sha256=files.sha256_of(path)),
        label=path.name,
    )
    imp.flush()
    seconds = time.perf_counter() - start
    store.close()
    return seconds, imp.stats.to_json()


def child(path: pathlib.Path, store_path: pathlib.Path) -> None:
    """Run one import in this (fresh) process and print its figures as JSON."""
    seconds, counts = run_import(path, store_path)
    # VmHWM: this process's own high-water mark (ru_maxrss would count the parent's at fork).
    status = pathlib.Path("/proc/self/status").read_text()
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    if line is not None:
        peak = int(line.split()[1]) / 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "counts": counts, "peak_mib": peak}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=int, default=200_000, help="results in all (≥ 3)")
    parser.add_argument("--keep", metavar="DIR", help="build the files in DIR and keep them")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(pathlib.Path(args.child[0]), pathlib.Path(args.child[1]))
        return 0
    sources = _sources()
    workdir = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="atlas-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    total_import = total_floor = 0.0
    total = 0
    print(
        f"{'kind':<13} {'results':>8} {'json.loads/s':>13} {'import/s':>10} {'ratio':>6} "
        f"{'bytes/record':>12} {'peak RSS':>9}"
    )
    peaks = []
    for kind, results in sources.items():
        count = -(-args.results // 3)  # at least --results in all
        path = workdir / f"{kind}.jsonl"
        build(path, results, count)
        floor_seconds = min(floor(path) for _ in range(3))
        store_path = workdir / f"{kind}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(f"{store_path}{suffix}").unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path), str(store_path)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(done.stdout)
        seconds, counts = figures["seconds"], figures["counts"]
        peaks.append(figures["peak_mib"])
        stored = counts["stored"]
        assert stored == count, f"{kind}: stored {stored} of {count}: {counts}"
        size = sum(
            pathlib.Path(f"{store_path}{s}").stat().st_size
            for s in ("", "-wal")
            if pathlib.Path(f"{store_path}{s}").exists()
        )
        print(
            f"{kind:<13} {count:>8} {count / floor_seconds:>13,.0f} {count / seconds:>10,.0f} "
            f"{floor_seconds / seconds:>6.3f} {size / count:>12,.0f} "
            f"{figures['peak_mib']:>5,.0f} MiB"
        )
        total += count
        total_import += seconds
        total_floor += floor_seconds
    print(
        f"{'all':<13} {total:>8} {total / total_floor:>13,.0f} {total / total_import:>10,.0f} "
        f"{total_floor / total_import:>6.3f}"
    )
    print(f"peak RSS of an import process: {max(peaks):,.0f} MiB")
    if not args.keep:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
