"""``publiccore paths crossings`` over imported Atlas traceroutes equals a computation here.

The traces are the real msm 3082698 (8 Italian probes to a Facebook address, 2015); addresses are
located with the real 2014 RIR delegated files and mapped to ASes with the real 2014 RouteViews
origin table. The expected crossings are computed in this file with its own readers (bisect over
address ranges, a longest-prefix match by masking), not with publiccore's.
"""

from __future__ import annotations

import bisect
import collections
import gzip
import ipaddress
import json
import pathlib
from typing import Any

from publiccore.app import cli

RIR = ("ipzone/delegated-ripencc-latest", "ipzone/delegated-apnic-latest")
RIR += ("ipzone/delegated-afrinic-latest",)
ASN_TABLE = "pyasn/ipasn_20140513.dat.gz"


def _ranges(paths: list[pathlib.Path]) -> tuple[list[int], list[tuple[int, str]]]:
    rows = []
    for path in paths:
        for line in path.read_text(encoding="ascii", errors="replace").splitlines():
            parts = line.split("|")
            if len(parts) < 7 or parts[2] != "ipv4" or parts[6] not in ("allocated", "assigned"):
                continue
            if not parts[1] or parts[1] in ("ZZ", "*"):
                continue
            first = int(ipaddress.IPv4Address(parts[3]))
            rows.append((first, first + int(parts[4]), parts[1].upper()))
    rows.sort()
    return [r[0] for r in rows], [(r[1], r[2]) for r in rows]


def _country(starts: list[int], ends: list[tuple[int, str]], address: str) -> str | None:
    value = int(ipaddress.IPv4Address(address))
    i = bisect.bisect_right(starts, value) - 1
    return ends[i][1] if i >= 0 and value < ends[i][0] else None


def _asns(path: pathlib.Path) -> dict[int, dict[int, int]]:
    table: dict[int, dict[int, int]] = collections.defaultdict(dict)
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith(";") or not line.strip():
                continue
            prefix, asn = line.split()[:2]
            net = ipaddress.IPv4Network(prefix, strict=False)
            table[net.prefixlen][int(net.network_address)] = int(asn)
    return table


def _asn(table: dict[int, dict[int, int]], address: str) -> int | None:
    value = int(ipaddress.IPv4Address(address))
    for length in range(32, -1, -1):
        mask = ((1 << 32) - 1) ^ ((1 << (32 - length)) - 1)
        found = table.get(length, {}).get(value & mask)
        if found is not None:
            return found
    return None


def _expected(data: dict[str, Any], rir: pathlib.Path) -> dict[str, Any]:
    starts, ends = _ranges([rir / p for p in RIR])
    table = _asns(rir / ASN_TABLE)
    probes = {p["id"]: p for p in data["probes"]["results"]}
    traces: collections.Counter[str] = collections.Counter()
    crossings: dict[str, collections.Counter[tuple[Any, ...]]] = collections.defaultdict(
        collections.Counter
    )
    for result in data["results"]:
        probe = probes[result["prb_id"]]
        country, asn = probe["country_code"], probe["asn_v4"]
        traces[country] += 1
        for hop in result["result"]:
            seen = [p["from"] for p in hop.get("result", []) if "from" in p and not p.get("dup")]
            if not seen:
                continue
            best = max(seen, key=lambda a: (seen.count(a), -seen.index(a)))
            if not ipaddress.ip_address(best).is_global:
                continue
            where = _country(starts, ends, best)
            if where is None:
                continue
            hop_asn = _asn(table, best)
            if where != country:
                crossings[country][(asn, hop_asn, where)] += 1
                break
            asn = hop_asn if hop_asn is not None else asn
    out = {}
    for country, n in traces.items():
        total = sum(crossings[country].values())
        out[country] = {
            "traces": n,
            "traces_crossing": total,
            "crossings": {k: v / total for k, v in crossings[country].items()},
        }
    return out


def test_crossings_of_imported_atlas_traces(
    atlas_dir: pathlib.Path, shared_data: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    trace_file = atlas_dir / "ripe-atlas-monitor" / "3082698.json"
    store = tmp_path / "s.sqlite"
    argv = ["import", "atlas", "--store", str(store), "--probes", str(trace_file)]
    assert cli.main([*argv, str(trace_file)]) == 0
    capsys.readouterr()
    rir = shared_data / "rir"
    code = cli.main(
        [
            "paths",
            "crossings",
            "--store",
            str(store),
            "--delegated",
            *(str(rir / p) for p in RIR),
            "--asn-table",
            str(rir / ASN_TABLE),
            "--since",
            "2015-12-15T00:00:00Z",
            "--until",
            "2015-12-16T00:00:00Z",
            "--json",
        ]
    )
    assert code == 0
    got = {c["country"]: c for c in json.loads(capsys.readouterr().out)["countries"]}
    expected = _expected(json.loads(trace_file.read_text()), rir)
    assert set(got) == set(expected) == {"IT"}
    for country, want in expected.items():
        have = got[country]
        assert have["traces"] == want["traces"] == 8
        assert have["traces_crossing"] == want["traces_crossing"] > 0
        shares = {
            (c["exit_asn"], c["entry_asn"], c["entry_country"]): c["share"]
            for c in have["crossings"]
        }
        assert shares.keys() == want["crossings"].keys()
        for key, share in want["crossings"].items():
            assert abs(shares[key] - share) < 1e-6
