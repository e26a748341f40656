#!/usr/bin/env python3
"""Benchmark: the whole BGP derivation against bgpdump alone, on the largest real RIBs.

    python benchmarks/bgp_rib.py [--repeat N] [FILE ...]

For each RIB: elements per second through the whole derivation (bgpdump reader → RIB → peer
table, full-feed, prefix visibility, origins, country visibility with the RIR files, root
prefixes, transit of two countries), divided by the fastest way of running bgpdump alone on the
same file in the same run (``bgpdump -m FILE`` or the decompressor piped into ``bgpdump -m -``,
each with and without ``GLIBC_TUNABLES=glibc.malloc.top_pad=4194304``, output to /dev/null; not
``-q``, which is slower). Target ratio >= 0.5. Peak memory is the derivation process's max RSS
(each derivation runs in a fresh child process; the RIR files are loaded before the clock
starts and reported apart). Best of N interleaved runs for both sides (default 5).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path(os.environ.get("PUBLICCORE_SHARED_DATA", REPO.parent / "shared" / "data"))
RIBS = [
    DATA / "mrt/bgpdump/bview.20020722.2337.gz",
    DATA / "mrt/pyasn/rib.20140523.0600_firstMB.bz2",
    DATA / "mrt/pyasn/rib6.20151101.0600_firstMB.bz2",
]
DELEGATED = [
    DATA / "rir/ipzone/delegated-ripencc-latest",
    DATA / "rir/ipzone/delegated-apnic-latest",
    DATA / "rir/ipzone/delegated-afrinic-latest",
    DATA / "rir/rir-mirror/delegated-lacnic-extended-latest",
]


TUNABLE = "glibc.malloc.top_pad=4194304"  # what collectors/bgp/bgpdump.py runs bgpdump with
DEFAULT_PAD = "glibc.malloc.top_pad=131072"  # glibc's default


def _bgpdump_seconds(path: pathlib.Path) -> tuple[float, str]:
    """Fastest bgpdump-alone run: ``-m`` (not ``-q``, which is slower), direct or through its
    decompressor on stdin, each with and without the malloc tunable."""
    runs: list[tuple[float, str]] = []
    tool = {b"\x1f\x8b": "gzip", b"BZ": "bzip2"}.get(path.read_bytes()[:2])
    for pad, label in ((TUNABLE, "tunable"), (DEFAULT_PAD, "default malloc")):
        env = dict(os.environ, GLIBC_TUNABLES=pad)
        with open(os.devnull, "wb") as null:
            start = time.perf_counter()
            subprocess.run(
                ["bgpdump", "-m", str(path)], stdout=null, stderr=null, env=env, check=False
            )
            runs.append((time.perf_counter() - start, f"bgpdump -m FILE ({label})"))
            if tool and shutil.which(tool):
                start = time.perf_counter()
                feed = subprocess.Popen(
                    [tool, "-dc", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                )
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
                    (time.perf_counter() - start, f"{tool} -dc FILE | bgpdump -m - ({label})")
                )
    return min(runs)


def _derive_once(path: str) -> dict[str, float]:
    """Run in a child: the whole derivation of one file; print timings and peak RSS."""
    sys.path.insert(0, str(REPO))
    from publiccore.collectors.bgp.bgpdump import BgpdumpReader
    from publiccore.collectors.bgp.pipeline import analyze
    from publiccore.collectors.bgp.roots import load_expected_origins

    from publiccore.geo import Geo
    from publiccore.roothints import load_hints

    start = time.perf_counter()
    geo = Geo.from_files([p for p in DELEGATED if p.exists()])
    geo_seconds = time.perf_counter() - start
    start = time.perf_counter()
    analysis = analyze(
        ribs=[path],
        reader=BgpdumpReader(),
        geo=geo,
        servers=load_hints(),
        expected=load_expected_origins(),
        transit_countries=["NL", "BR"],
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "geo_seconds": geo_seconds,
        "elements": analysis.sources[0].elements,
        "prefixes": sum(analysis.summary.prefixes_seen.values()),
        "countries": len(analysis.countries),
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=pathlib.Path, default=RIBS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_derive_once(args.child)))
        return 0
    if shutil.which("bgpdump") is None:
        print("bgpdump not installed (apt install bgpdump)", file=sys.stderr)
        return 1
    print(
        f"{'file':42} {'elements':>9} {'bgpdump el/s':>13} {'derive el/s':>12} "
        f"{'ratio':>6} {'peak MiB':>9}  baseline"
    )
    worst = float("inf")
    for path in args.files:
        if not path.exists():
            print(f"{path}: missing, skipped", file=sys.stderr)
            continue
        # interleaved, so that both sides see the same load on a shared machine
        base_runs = []
        child_runs = []
        for _ in range(args.repeat):
            base_runs.append(_bgpdump_seconds(path))
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            child_runs.append(json.loads(out.stdout))
        base = min(base_runs)
        best = min(child_runs, key=lambda r: r["seconds"])
        elements = best["elements"]
        base_rate = elements / base[0]
        rate = elements / best["seconds"]
        ratio = rate / base_rate
        worst = min(worst, ratio)
        peak = max(r["max_rss_kib"] for r in child_runs) / 1024
        print(
            f"{path.name:42} {elements:>9,} {base_rate:>13,.0f} {rate:>12,.0f} "
            f"{ratio:>6.2f} {peak:>9.0f}  {base[1]}"
        )
        print(
            f"{'':42} derivation {best['seconds']:.2f} s, bgpdump alone {base[0]:.2f} s, "
            f"RIR files loaded in {best['geo_seconds']:.2f} s (not timed), "
            f"{best['prefixes']:,} prefixes, {best['countries']} country rows"
        )
    print(f"lowest ratio {worst:.2f} (target >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
