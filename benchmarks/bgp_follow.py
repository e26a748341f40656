#!/usr/bin/env python3
"""Benchmark: the archive follower end to end (loopback download + processing + storing).

    python benchmarks/bgp_follow.py [--collectors N] [--repeat N] [--shape tdv1|tdv2|both]
                                    [--no-delegated]

A local archive (tests/collectors/bgp/archive_server.py) serves, under N collector names (the
same bytes under each name, so that there is parallel work), one RIB dump and one update file
of a real collector, in one of two shapes:

- ``tdv1``: RIS layout (rrc01…), the rrc05 RIB of 2002-07-22 (TABLE_DUMP v1, 115,521
  entries, gzip) and a real rrc update file (5,654 elements, gzip);
- ``tdv2``: RouteViews layout (route-views3…), the RouteViews RIB of 2014-05-23 06:00 as far
  as shared/data holds it (TABLE_DUMP_V2, its complete records: 270,005 entries of 9,072
  prefixes from 35 peers, bzip2; cut and recompressed into a temporary directory at the
  start) and a real RouteViews update file (8,611 elements, bzip2).

As a follower with ``[bgp] delegated`` runs in production, the worker processes load the RIR
delegated files of shared/data (RIPE NCC, APNIC, AFRINIC, LACNIC), so every RIB gives country
visibility, transit and hegemony for every country and every update file the country series;
``--no-delegated`` measures without them (visibility and root prefixes only).

The follower runs ``--once`` over all of them with 1 worker process, then with 2, each in a
fresh child process with a fresh store; its worker processes are started (and timed, "start")
before the clock runs, as in a follower that is already running. Printed: files per minute,
elements per second, the peak RSS of the largest worker process, and per-file elements/s ÷
elements/s of bgpdump alone on the same files in the same run (the fastest of ``bgpdump -m
FILE`` and the decompressor piped into ``bgpdump -m -``, each with and without
``GLIBC_TUNABLES=glibc.malloc.top_pad=4194304``; target ≥ 0.8) — end to end, processing only,
and with the workers' start —, and the same in CPU time (bgpdump alone ÷ the worker's
processing, its bgpdump and decompressor included), which a loaded machine disturbs far less
than wall time. The follower runs with the tunable (collectors/bgp/bgpdump.py) and once more
without (glibc's default top pad, 128 KiB), and once with it for the Python worker processes as
well (``GLIBC_TUNABLES`` in the follower's environment), to measure what it changes. With 1
worker on a machine of two cores or more, each RIB's country figures are shared with a forked
child (``analyze(split=True)``); "no split" is the same run without. Best of N runs (default 1).
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import json
import os
import pathlib
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path(os.environ.get("PUBLICCORE_SHARED_DATA", REPO.parent / "shared" / "data"))
DELEGATED = (
    DATA / "rir/ipzone/delegated-ripencc-latest",
    DATA / "rir/ipzone/delegated-apnic-latest",
    DATA / "rir/ipzone/delegated-afrinic-latest",
    DATA / "rir/rir-mirror/delegated-lacnic-extended-latest",
)
TUNABLE = "glibc.malloc.top_pad=4194304"
DEFAULT_PAD = "glibc.malloc.top_pad=131072"  # glibc's default: the tunable off


@dataclasses.dataclass(frozen=True)
class Shape:
    """One collector's RIB and update file, where the archive serves them and when."""

    name: str
    collector: str  # collector name pattern, {i} the collector's number (01…)
    rib: pathlib.Path
    rib_path: str  # archive path under the collector's base
    updates: pathlib.Path
    updates_path: str
    since: str
    now: str

    def collectors(self, count: int) -> tuple[str, ...]:
        return tuple(self.collector.format(i=f"{i:02d}") for i in range(1, count + 1))

    def files(self, count: int) -> dict[str, pathlib.Path]:
        out = {}
        for name in self.collectors(count):
            root = f"{name}/bgpdata" if name.startswith("route-views") else name
            out[f"{root}/{self.rib_path}"] = self.rib
            out[f"{root}/{self.updates_path}"] = self.updates
        return out


def complete_records(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """The complete MRT records at the start of a cut-off bzip2 file, recompressed."""
    decoder = bz2.BZ2Decompressor()
    try:
        data = decoder.decompress(source.read_bytes())
    except (EOFError, OSError):
        data = b""
    end = 0
    while end + 12 <= len(data):  # MRT common header: time, type, subtype, length
        length = struct.unpack_from(">IHHI", data, end)[3]
        if end + 12 + length > len(data):
            break
        end += 12 + length
    target.write_bytes(bz2.compress(data[:end]))
    return target


def shapes(directory: pathlib.Path) -> dict[str, Shape]:
    return {
        "tdv1": Shape(
            "tdv1",
            "rrc{i}",
            DATA / "mrt/bgpdump/bview.20020722.2337.gz",
            "2002.07/bview.20020722.2337.gz",
            DATA / "mrt/bgpdump/updates.20100722.2015.gz",
            "2010.07/updates.20100722.2015.gz",
            "2002-07-22",
            "2010-07-22T21:00Z",
        ),
        "tdv2": Shape(
            "tdv2",
            "route-views{i}",
            complete_records(
                DATA / "mrt/pyasn/rib.20140523.0600_firstMB.bz2",
                directory / "rib.20140523.0600.bz2",
            ),
            "2014.05/RIBS/rib.20140523.0600.bz2",
            DATA / "mrt/libbgpstream/routeviews.route-views.jinx.updates.1427846400.bz2",
            "2015.04/UPDATES/updates.20150401.0000.bz2",
            "2014-05-23",
            "2015-04-01T01:00Z",
        ),
    }


def _child(
    url: str, shape: Shape, collectors: int, workers: int, geo: bool, split: bool | None
) -> dict[str, float]:
    """In a child process: one follower run; timings, counts and peak RSS."""
    import asyncio

    sys.path.insert(0, str(REPO))
    from publiccore.collectors.bgp import follow as fl
    from publiccore.collectors.bgp import process as proc

    from publiccore.clock import parse_when
    from publiccore.store import open_store

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="publiccore-bench-"))
    try:
        store = open_store(str(tmp / "s.sqlite"))
        options = fl.FollowOptions(
            bases={"ris": url, "routeviews": url},
            collectors=shape.collectors(collectors),
            cache_dir=tmp / "cache",
            since=parse_when(shape.since).timestamp(),
            once=True,
            workers=workers,
        )
        now = parse_when(shape.now).timestamp()
        config = proc.ProcessConfig(
            delegated=tuple(map(str, DELEGATED)) if geo else (), split=split
        )
        started = time.perf_counter()
        follower = fl.Follower(store, options, config, clock=lambda: now)
        # the worker processes start once per follower: timed apart, so that "seconds" is the
        # per-file work of a follower already running (download, processing, storing)
        follower._warm_up()
        for executor in follower._executors:
            executor.submit(proc.peak_rss_kib).result()
        start = time.perf_counter()
        counts = asyncio.run(follower.run())
        seconds = time.perf_counter() - start
        rows = store.archive_files()
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "seconds": seconds,
        "startup_seconds": start - started,
        "files": counts.processed,
        "failed": counts.failed,
        "elements": sum(r.elements for r in rows if r.status == "done"),
        "processing_seconds": follower.processing_seconds,
        "processing_cpu_seconds": follower.processing_cpu_seconds,
        "worker_max_rss_kib": max(follower.worker_rss_kib, default=0),
    }


def _run_child(
    url: str,
    shape: Shape,
    collectors: int,
    workers: int,
    geo: bool,
    env_extra: dict[str, str],
    split: bool = True,
) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(env_extra)
    fields = json.dumps({k: str(v) for k, v in dataclasses.asdict(shape).items()})
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, fields, str(collectors), str(workers)]
        + ([] if geo else ["--no-delegated"])
        + ([] if split else ["--no-split"]),
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=3600,
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _bgpdump_alone(path: pathlib.Path) -> tuple[float, str, float]:
    """The fastest way of running bgpdump alone on ``path``: (seconds, how, CPU seconds)."""
    runs = []
    tool = {b"\x1f\x8b": "gzip", b"BZ": "bzip2"}.get(path.read_bytes()[:2])
    for pad, label in ((TUNABLE, "tunable"), (DEFAULT_PAD, "default malloc")):
        env = dict(os.environ, GLIBC_TUNABLES=pad)
        with open(os.devnull, "wb") as null:
            start, cpu = time.perf_counter(), _children_cpu()
            subprocess.run(
                ["bgpdump", "-m", str(path)], stdout=null, stderr=null, env=env, check=False
            )
            runs.append(
                (
                    time.perf_counter() - start,
                    f"bgpdump -m FILE ({label})",
                    _children_cpu() - cpu,
                )
            )
            if tool and shutil.which(tool):
                start, cpu = time.perf_counter(), _children_cpu()
                feed = subprocess.Popen([tool, "-dc", str(path)], stdout=subprocess.PIPE)
                subprocess.run(
                    ["bgpdump", "-m", "-"],
                    stdin=feed.stdout,
                    stdout=null,
                    stderr=null,
                    env=env,
                    check=False,
                )
                assert feed.stdout is not None
                feed.stdout.close()
                feed.wait()
                runs.append(
                    (
                        time.perf_counter() - start,
                        f"{tool} -dc | bgpdump -m - ({label})",
                        _children_cpu() - cpu,
                    )
                )
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collectors", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--shape", choices=("tdv1", "tdv2", "both"), default="both")
    parser.add_argument(
        "--no-delegated",
        action="store_true",
        help="without RIR delegated files: no country visibility, transit or hegemony",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--no-split", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    geo = not args.no_delegated
    if args.child:
        url, fields, collectors, workers = args.child
        raw = json.loads(fields)
        shape = Shape(
            **{k: pathlib.Path(v) if k in ("rib", "updates") else v for k, v in raw.items()}
        )
        split = False if args.no_split else None  # None: the follower decides
        print(json.dumps(_child(url, shape, int(collectors), int(workers), geo, split)))
        return 0
    if shutil.which("bgpdump") is None:
        print("bgpdump not installed (apt install bgpdump)", file=sys.stderr)
        return 2
    missing = [str(p) for p in DELEGATED if geo and not p.exists()]
    if missing:
        print(f"RIR delegated files missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="publiccore-bench-") as directory:
        known = shapes(pathlib.Path(directory))
        chosen = list(known) if args.shape == "both" else [args.shape]
        for name in chosen:
            _measure(known[name], args.collectors, args.repeat, geo)
    return 0


def _measure(shape: Shape, collectors: int, repeat: int, geo: bool) -> None:
    """Run every configuration on one shape and print its table and ratios."""
    from tests.collectors.bgp.archive_server import ArchiveServer

    server = ArchiveServer(shape.files(collectors))
    url = server.start()
    rib, updates = shape.rib, shape.updates
    try:
        configs: tuple[tuple[str, int, dict[str, str], bool], ...] = (
            ("1 worker", 1, {}, True),
            ("2 workers", 2, {}, True),
            ("1 worker, no tunable", 1, {"PUBLICCORE_BGPDUMP_TUNABLE": ""}, True),
            ("1 worker, tunable on all", 1, {"GLIBC_TUNABLES": TUNABLE}, True),
            ("1 worker, no split", 1, {}, False),
        )
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, *_rest in configs}
        alone: dict[pathlib.Path, list[tuple[float, str, float]]] = {rib: [], updates: []}
        for _ in range(repeat):  # interleaved: the machine's load hits every side alike
            for label, workers, extra, split in configs:
                runs[label].append(
                    _run_child(url, shape, collectors, workers, geo, extra, split=split)
                )
                for path in alone:
                    alone[path].append(_bgpdump_alone(path))
        results = {label: min(r, key=lambda x: x["seconds"]) for label, r in runs.items()}
        per_file = {path: min(alone[path])[0] for path in alone}
        per_file_cpu = {path: min(run[2] for run in alone[path]) for path in alone}
        how = sorted({min(alone[path])[1] for path in alone})
    finally:
        server.stop()
    if any(r["failed"] or r["files"] != 2 * collectors for r in results.values()):
        print(f"{shape.name}: not every file was processed: {results}", file=sys.stderr)
    elements_per_collector = results["1 worker"]["elements"] / collectors
    bgpdump_seconds = (per_file[rib] + per_file[updates]) * collectors
    bgpdump_rate = elements_per_collector * collectors / bgpdump_seconds
    setting = (
        "RIR delegated files loaded: country visibility, transit and hegemony of every country"
        if geo
        else "no RIR delegated files (--no-delegated): visibility and root prefixes only"
    )
    print(
        f"\n[{shape.name}] {collectors} collectors × (RIB {rib.name} + updates {updates.name}), "
        f"loopback; {setting}"
    )
    print(
        f"{'run':24} {'files':>5} {'seconds':>8} {'start':>6} {'files/min':>9} "
        f"{'elements/s':>11} {'÷ bgpdump':>9} {'with start':>10} {'worker RSS':>11}"
    )
    for label, r in results.items():
        rate = r["elements"] / r["seconds"]
        cold = r["elements"] / (r["seconds"] + r["startup_seconds"])
        print(
            f"{label:24} {int(r['files']):>5} {r['seconds']:>8.2f} {r['startup_seconds']:>6.2f} "
            f"{r['files'] / r['seconds'] * 60:>9.1f} {rate:>11,.0f} {rate / bgpdump_rate:>9.2f} "
            f"{cold / bgpdump_rate:>10.2f} {r['worker_max_rss_kib'] / 1024:>8.0f} MiB"
        )
    print(
        f"bgpdump alone: {bgpdump_rate:,.0f} elements/s ({bgpdump_seconds:.2f} s for the same "
        f"files; fastest of: {', '.join(how)})"
    )
    print(
        "seconds: the follower's run with its worker processes already started (download, "
        "processing, storing); start: starting them, once per follower"
    )
    one, two = results["1 worker"], results["2 workers"]
    print(
        f"2 workers ÷ 1 worker: {one['seconds'] / two['seconds']:.2f}× files/min; "
        f"bgpdump's tunable: {results['1 worker, no tunable']['seconds'] / one['seconds']:.2f}× "
        f"(seconds without ÷ with); on the workers too: "
        f"{one['seconds'] / results['1 worker, tunable on all']['seconds']:.2f}× faster again; "
        f"the country figures split with a forked child: "
        f"{results['1 worker, no split']['seconds'] / one['seconds']:.2f}× (seconds without ÷ "
        "with)"
    )
    ratio = one["elements"] / one["seconds"] / bgpdump_rate
    inner = one["elements"] / one["processing_seconds"] / bgpdump_rate
    cold = one["elements"] / (one["seconds"] + one["startup_seconds"]) / bgpdump_rate
    print(
        f"per-file ratio (1 worker ÷ bgpdump alone): {ratio:.2f} end to end (download + "
        f"processing + storing), {inner:.2f} processing only (in the worker: read + derive), "
        f"{cold:.2f} with the workers' start (target ≥ 0.8)"
    )
    # CPU time moves far less with the machine's load than wall time does
    alone_cpu = (per_file_cpu[rib] + per_file_cpu[updates]) * collectors
    worker_cpu = min(r["processing_cpu_seconds"] for r in runs["1 worker"])
    print(
        f"CPU: bgpdump alone {alone_cpu:.2f} s, processing {worker_cpu:.2f} s (worker + its "
        f"bgpdump and decompressor): ratio {alone_cpu / worker_cpu:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
