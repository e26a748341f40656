"""Paris traceroute through namespaced routers, and border crossings derived from it.

Lab (tests/lab/tracelab.py): probe (NL) → r1 AS64500 (NL) → r2 AS64501 (NL) or, with ECMP,
r2b AS64504 (NL) → r3 AS64502 (DE) → target AS64503 (DE). The border is crossed between r2/r2b
and r3.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from publiccore import records
from tests.lab.dnslab import LabUnavailable
from tests.lab.tracelab import ASN_TABLE, DELEGATED, TraceLab, build_trace_lab


def _lab(ecmp: bool) -> Iterator[TraceLab]:
    try:
        with build_trace_lab(ecmp=ecmp) as lab:
            # One throw-away trace per family: the first probes through a new lab can wait for
            # neighbour discovery on the routers and come back late.
            for target in (lab.target_ipv4, lab.target_ipv6):
                lab.run_in_probe(
                    sys.executable,
                    "-m",
                    "publiccore",
                    "probe",
                    "trace",
                    target,
                    "--no-store",
                    "--timeout",
                    "0.5",
                    "--max-ttl",
                    "6",
                )
            yield lab
    except LabUnavailable as exc:
        pytest.skip(f"traceroute lab unavailable: {exc}")


@pytest.fixture(scope="module")
def line_lab() -> Iterator[TraceLab]:
    yield from _lab(False)


@pytest.fixture(scope="module")
def ecmp_lab() -> Iterator[TraceLab]:
    yield from _lab(True)


def _config(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "probe.toml"
    path.write_text('[probe]\nid = "nl-1"\ncountry = "NL"\nasn = 64500\n')
    return path


def _trace(
    lab: TraceLab,
    tmp_path: pathlib.Path,
    address: str,
    *args: str,
    store: pathlib.Path | None = None,
) -> list[records.Record]:
    argv = [
        sys.executable,
        "-m",
        "publiccore",
        "--config",
        str(_config(tmp_path)),
        "probe",
        "trace",
        address,
        "--json",
        "--timeout",
        "0.5",
        "--max-ttl",
        "6",
        *args,
    ]
    argv += ["--store", str(store)] if store else ["--no-store"]
    done = lab.run_in_probe(*argv, timeout=60)
    assert done.returncode == 0, done.stderr
    return [records.loads(line) for line in done.stdout.splitlines()]


def _hops(record: records.Record) -> list[set[str]]:
    assert isinstance(record.result, records.TraceResult)
    return [{r.address for r in hop.replies if r.address} for hop in record.result.hops]


@pytest.mark.parametrize("protocol", ["udp", "icmp"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_trace_sees_every_router_in_order(
    line_lab: TraceLab, tmp_path: pathlib.Path, protocol: str, family: str
) -> None:
    target = line_lab.target_ipv4 if family == "ipv4" else line_lab.target_ipv6
    expected = line_lab.hop_ipv4 if family == "ipv4" else line_lab.hop_ipv6
    (record,) = _trace(line_lab, tmp_path, target, "--protocol", protocol)
    assert isinstance(record.result, records.TraceResult)
    assert record.result.destination_reached
    assert _hops(record) == [{address} for address in expected]
    replies = [r for hop in record.result.hops for r in hop.replies]
    assert len(replies) == 3 * len(expected)
    # every reply within the trace's --timeout (0.5 s): later ones are not replies of the trace
    assert all(r.rtt_seconds is not None and 0 <= r.rtt_seconds < 0.5 for r in replies)
    assert record.probe.country == "NL" and record.target.family == family  # type: ignore[union-attr]


def test_paris_keeps_one_path_per_flow_and_other_flows_see_both(
    ecmp_lab: TraceLab, tmp_path: pathlib.Path
) -> None:
    second_hops: set[str] = set()
    for paris_id in range(16):
        (record,) = _trace(
            ecmp_lab, tmp_path, ecmp_lab.target_ipv4, "--paris-id", str(paris_id), "--attempts", "3"
        )
        hops = _hops(record)
        assert len(hops[1]) == 1, f"paris id {paris_id} mixed paths at hop 2: {hops[1]}"
        second_hops |= hops[1]
    assert second_hops == {"198.51.100.10", "198.51.100.18"}


def test_border_crossings_from_stored_traces(ecmp_lab: TraceLab, tmp_path: pathlib.Path) -> None:
    store = tmp_path / "collector.sqlite"
    for paris_id in range(16):
        _trace(
            ecmp_lab,
            tmp_path,
            ecmp_lab.target_ipv4,
            "--paris-id",
            str(paris_id),
            "--attempts",
            "1",
            store=store,
        )
    delegated = tmp_path / "delegated-lab"
    delegated.write_text(DELEGATED)
    asn_table = tmp_path / "ipasn.dat"
    asn_table.write_text(ASN_TABLE)
    done = ecmp_lab.run_in_probe(
        sys.executable,
        "-m",
        "publiccore",
        "paths",
        "crossings",
        "--store",
        str(store),
        "--delegated",
        str(delegated),
        "--asn-table",
        str(asn_table),
        "--json",
        "--since",
        "2000-01-01",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (nl,) = json.loads(done.stdout)["countries"]
    assert nl["country"] == "NL" and nl["traces"] == 16 and nl["traces_crossing"] == 16
    crossings = {(c["exit_asn"], c["entry_asn"], c["entry_country"]) for c in nl["crossings"]}
    assert crossings == {(64501, 64502, "DE"), (64504, 64502, "DE")}
    shares = [c["share"] for c in nl["crossings"]]
    assert nl["effective_number"] == pytest.approx(1 / sum(s * s for s in shares), rel=1e-4)
    assert 1 < nl["effective_number"] <= 2


def test_trace_without_raw_socket_permission_is_data(
    line_lab: TraceLab, tmp_path: pathlib.Path
) -> None:
    setpriv = "/usr/bin/setpriv"
    if not pathlib.Path(setpriv).exists():
        pytest.skip("setpriv (util-linux) not installed")
    # still root, but without CAP_NET_RAW in the bounding set: no raw sockets after exec
    done = line_lab.run_in_probe(
        setpriv,
        "--bounding-set=-net_raw",
        "--inh-caps=-all",
        "--",
        sys.executable,
        "-m",
        "publiccore",
        "probe",
        "trace",
        line_lab.target_ipv4,
        "--json",
        "--no-store",
        "--timeout",
        "0.5",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    record: Any = records.loads(done.stdout.splitlines()[0])
    assert record.result.failure == "permission_denied"
    assert record.result.hops == ()
