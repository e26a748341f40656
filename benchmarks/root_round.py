"""Benchmark: one root round's wall time against its slowest single query.

    sudo .venv/bin/python benchmarks/root_round.py [--rounds 3]

Builds the DNS lab (tests/lab: NSD servers in network namespaces, needs root) twice: 13 servers
with one-way delays spread from 5 to 150 ms (round trips 10–300 ms), then 13 silent servers.
Per round it prints the wall time divided by the slowest single query (or by the timeout when
servers are silent; target <= 1.2), CPU seconds and peak RSS of the measuring process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
LETTERS = "abcdefghijklm"


def inner(hints: str, timeout: float, rounds: int) -> None:
    """Run inside the lab's probe namespace: measure rounds, print one JSON line per round."""
    from publiccore.probes import dnssec, root

    from publiccore import roothints
    from publiccore.records import ProbeRef, RootResult

    targets = roothints.targets(roothints.load_hints(hints))
    cfg = root.RootConfig(anchors=tuple(dnssec.load_anchors()), timeout_seconds=timeout)
    for _ in range(rounds):
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        records = asyncio.run(root.run_round(targets, cfg, probe=ProbeRef(id="bench")))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        rtts = [
            q.rtt_seconds
            for r in records
            if isinstance(r.result, RootResult)
            for q in r.result.queries
            if q.rtt_seconds is not None
        ]
        timed_out = any(
            q.failure == "dns_timeout"
            for r in records
            if isinstance(r.result, RootResult)
            for q in r.result.queries
        )
        slowest = max([*rtts, timeout if timed_out else 0.0])
        print(
            json.dumps(
                {
                    "targets": len(targets),
                    "wall": wall,
                    "cpu": cpu,
                    "slowest": slowest,
                    "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                }
            ),
            flush=True,
        )


def outer(rounds: int) -> int:
    sys.path.insert(0, str(REPO))
    from tests.lab.dnslab import LabUnavailable, ServerSpec, build_lab

    scenarios = {
        "delays 10-300 ms RTT": [
            ServerSpec(letter, "iana", delay_ms=5 + round(i * 145 / (len(LETTERS) - 1)))
            for i, letter in enumerate(LETTERS)
        ],
        "silent servers": [ServerSpec(letter, "silent") for letter in LETTERS],
    }
    timeout = 2.0
    print(f"root round benchmark: {rounds} rounds per scenario, timeout {timeout} s")
    for title, specs in scenarios.items():
        try:
            with build_lab(specs, pathlib.Path(tempfile.mkdtemp(prefix="rootbench"))) as lab:
                done = lab.run_in_probe(
                    sys.executable,
                    str(pathlib.Path(__file__).resolve()),
                    "--inner",
                    str(lab.hints_path),
                    "--timeout",
                    str(timeout),
                    "--rounds",
                    str(rounds),
                    timeout=rounds * (timeout + 5) + 30,
                )
        except LabUnavailable as exc:
            print(f"cannot build the lab: {exc}")
            return 1
        except subprocess.TimeoutExpired:
            print(f"{title}: timed out")
            return 1
        if done.returncode != 0:
            print(done.stderr)
            return 1
        print(f"\n{title}")
        print(
            f"{'round':>5} {'targets':>7} {'wall s':>8} {'slowest s':>9} {'ratio':>6} "
            f"{'CPU s':>6} {'peak RSS MiB':>12}"
        )
        for n, line in enumerate(done.stdout.splitlines(), 1):
            r = json.loads(line)
            print(
                f"{n:>5} {r['targets']:>7} {r['wall']:>8.3f} {r['slowest']:>9.3f} "
                f"{r['wall'] / r['slowest']:>6.2f} {r['cpu']:>6.3f} "
                f"{r['peak_rss_kib'] / 1024:>12.1f}"
            )
    print("\nratio = round wall time / slowest single query (or the timeout); target <= 1.2")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--inner", metavar="HINTS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner, args.timeout, args.rounds)
        return 0
    return outer(args.rounds)


if __name__ == "__main__":
    raise SystemExit(main())
