"""``publiccore import atlas FILE…`` over real RIPE Atlas files (shared/data/atlas)."""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import pathlib
from typing import Any

from publiccore.collectors.atlas import mapping

from publiccore import records as rec
from publiccore import roothints
from publiccore.app import cli
from publiccore.store import open_store

L_ROOT = "ripe-atlas-monitor/1071935.json"
TRACES = "ripe-atlas-monitor/3082698.json"


def _run(capsys: Any, *argv: str) -> tuple[int, dict[str, Any], str]:
    code = cli.main(["import", "atlas", "--json", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _records(store_path: pathlib.Path, kind: str | None = None) -> list[rec.Record]:
    store = open_store(str(store_path))
    try:
        return list(store.iter_records(kind=kind))
    finally:
        store.close()


def test_l_root_results_every_field_by_hand(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    store = tmp_path / "s.sqlite"
    path = atlas_dir / L_ROOT
    code, counts, _ = _run(capsys, "--store", str(store), "--probes", str(path), str(path))
    assert code == 0
    assert counts["records"] == {"root-dns": 5} and counts["stored"] == 5
    assert counts["probes_without_country"] == 0
    by_probe = {r.probe.id: r for r in _records(store)}
    r = by_probe["atlas-10045"]
    # From the JSON: prb_id 10045 (GB, asn_v4 2856), timestamp 1386240474, dst L-root's IPv4
    # address (the bundled hints' l.root-servers.net A record: read as data, never contacted),
    # proto UDP, rt 71.238 ms, size 367, abuf = referral for fr. with NSID.
    l_root = next(s for s in roothints.load_hints() if s.letter == "l").ipv4[0]
    assert r.kind == "root-dns" and r.schema == 2
    assert r.probe == rec.ProbeRef(id="atlas-10045", asn=2856, country="GB")
    assert r.started.timestamp() == 1386240474
    assert r.target == rec.RootTarget(
        letter="l", name="l.root-servers.net.", address=l_root, family="ipv4"
    )
    assert r.source == rec.RecordSource(
        name="ripe-atlas",
        measurement=1071935,
        file_sha256="4deb777f45b9425f1b2b5d27c166fe61a57a1f68130277c61099e19d8192b8b5",
    )
    assert isinstance(r.result, rec.RootResult)
    (q,) = r.result.queries
    raw = json.loads(path.read_text())["results"][0]
    assert raw["prb_id"] == 10045
    assert (q.qname, q.qclass, q.qtype, q.transport) == ("fr.", "IN", "SOA", "udp")
    assert q.rcode == "NOERROR" and q.aa is False and q.tc is False
    assert q.rtt_seconds == 0.071238 and q.size_bytes == 367 == raw["result"]["size"]
    assert q.serial is None  # a referral, no root SOA in the answer
    assert base64.b64decode(q.wire_b64 or "") == base64.b64decode(raw["result"]["abuf"])
    assert q.nsid_text == "ods01.l.root-servers.org"
    assert q.nsid_hex == b"ods01.l.root-servers.org".hex()
    assert r.result.identity == rec.SiteIdentity(nsid="ods01.l.root-servers.org")
    assert r.result.integrity == rec.Integrity(outcome="not_measured")
    assert raw["dst_addr"] == l_root
    assert r.id == mapping.record_id(raw, l_root)
    assert "from" not in r.dumps() and raw["from"] not in r.dumps()
    assert raw["src_addr"] not in r.dumps()


def test_traceroute_every_field_by_hand(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    store = tmp_path / "s.sqlite"
    path = atlas_dir / TRACES
    code, counts, _ = _run(capsys, "--store", str(store), "--probes", str(path), str(path))
    assert code == 0 and counts["records"] == {"traceroute": 8}
    raw = json.loads(path.read_text())["results"][0]
    r = next(x for x in _records(store) if x.probe.id == "atlas-713")
    assert r.probe == rec.ProbeRef(id="atlas-713", asn=20912, country="IT")
    assert r.started.timestamp() == 1450178299 and r.finished.timestamp() == 1450178310
    assert r.target == rec.TraceTarget(
        address="66.220.156.68", family="ipv4", name="66.220.156.68", protocol="udp"
    )
    assert isinstance(r.result, rec.TraceResult)
    assert r.result.paris_id == 1 and r.result.destination_reached is True
    assert r.result.failure is None
    assert [h.ttl for h in r.result.hops] == list(range(1, 17))
    first = r.result.hops[0].replies
    assert first[0] == rec.TraceReply(address="212.66.97.166", rtt_seconds=0.00241, reply_ttl=64)
    assert [x.rtt_seconds for x in first] == [0.00241, 0.001646, 0.001641]
    assert r.result.hops[12].replies == (rec.TraceReply(),) * 3  # {"x": "*"} ×3
    last = r.result.hops[15].replies[0]
    assert (last.address, last.rtt_seconds, last.reply_ttl) == ("66.220.156.68", 0.112689, 78)
    assert len(r.result.hops) == len(raw["result"])
    assert "212.66.97.165" not in r.dumps()  # the probe's own address (from / src_addr)


def test_counts_per_reason_and_second_import_stores_nothing(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    store = tmp_path / "s.sqlite"
    inputs = [
        str(atlas_dir / "ripe-atlas-monitor" / f"{m}.json")
        for m in (1071935, 1421267, 3082698, 3359986)
    ] + [str(atlas_dir / "recdnsfp-measurements" / "probes" / "ch_hostname.bind.json.gz")]
    code, first, _ = _run(capsys, "--store", str(store), *inputs)
    assert code == 0
    # 5 L-root + 8 traces stored; ping (3359986) unsupported; resolver queries not root;
    # 9 resultset-less errors of the probes' resolvers have no destination.
    assert first["records"] == {"root-dns": 5, "traceroute": 8}
    assert first["skipped"] == {"not_root": 4 + 9015, "no_destination": 9, "unsupported_type": 5}
    assert first["results"] == 5 + 4 + 8 + 5 + 9024
    assert first["stored"] == 13 and first["malformed"] == 0
    assert first["probes_without_country"] == 13  # no --probes: imported with none, counted
    code, again, _ = _run(capsys, "--store", str(store), *inputs)
    assert code == 0 and again["stored"] == 0 and again["duplicates"] == 13
    assert len(_records(store)) == 13


def test_jsonl_bzip2_with_a_bad_line_in_the_middle(
    monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    lines = [json.dumps(r) for r in monitor(1071935)["results"]]
    lines[2] = '{"msm_id": 1071935, "prb_id": '  # cut off
    path = tmp_path / "day.jsonl.bz2"
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    store = tmp_path / "s.sqlite"
    code, counts, err = _run(capsys, "--store", str(store), str(path))
    assert code == 1
    assert counts["stored"] == 4 and counts["malformed"] == 1
    assert counts["malformed_at"][0].startswith(f"{path}: line 3: bad JSON")
    assert "line 3" in err
    assert len(_records(store)) == 4  # the lines after the bad one are not lost


def test_truncated_gzip_keeps_what_came_before(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    with gzip.open(atlas_dir / "recdnsfp-measurements/google/traceroute.json.gz") as handle:
        results = json.load(handle)[:400]
    data = gzip.compress(("\n".join(json.dumps(r) for r in results) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    store = tmp_path / "s.sqlite"
    code, counts, _ = _run(capsys, "--store", str(store), str(path))
    assert code == 1 and counts["malformed"] == 1
    assert "truncated or corrupt input" in counts["malformed_at"][0]
    stored = counts["stored"]
    assert 0 < stored < 400 and counts["records"] == {"traceroute": stored}
    ids = {r.id for r in _records(store)}
    expected = {mapping.record_id(r, r["dst_addr"]) for r in results[:stored]}
    assert ids == expected  # exactly the first complete lines, none half stored


def test_error_field_bad_abuf_and_not_base64(
    monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    base = monitor(1071935)["results"]
    timeout = dict(base[0])
    del timeout["result"]
    timeout["error"] = {"timeout": 5000}
    garbage = json.loads(json.dumps(base[1]))
    garbage["result"]["abuf"] = base64.b64encode(b"\x12\x34not dns at all").decode()
    not_b64 = json.loads(json.dumps(base[2]))
    not_b64["result"]["abuf"] = "%%% not base64 %%%"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([timeout, garbage, not_b64, base[3]]))
    store = tmp_path / "s.sqlite"
    code, counts, _ = _run(capsys, "--store", str(store), str(path))
    assert code == 1
    # Without the measurement definition (a file), a timeout and a non-DNS answer say nothing of
    # what was asked: skipped and counted. Not base64 is malformed, reported with its position.
    assert counts["skipped"] == {"unknown_query": 2}
    assert counts["malformed"] == 1 and counts["malformed_at"] == [
        f"{path}: item 3: abuf is not base64"
    ]
    assert counts["stored"] == 1
    assert [r.probe.id for r in _records(store)] == [f"atlas-{base[3]['prb_id']}"]


def test_mapper_with_a_definition_keeps_timeouts_and_non_dns_answers_as_data(
    monitor: Any,
) -> None:
    from publiccore.collectors.atlas import probemeta
    from publiccore.probes import dnssec

    from publiccore.roothints import HintsHistory

    data = monitor(1071935)
    question = mapping.question_of_definition(data["meta_data"])
    assert question == mapping.Question(qname="fr.", qclass="IN", qtype="SOA")
    mapper = mapping.Mapper(
        hints=HintsHistory.load(),
        probes=probemeta.table(probemeta.probe_objects(data)),
        anchors=dnssec.load_anchors(),
        questions={1071935: question},
    )
    timeout = dict(data["results"][0])
    del timeout["result"]
    timeout["error"] = {"timeout": 5000}
    source = rec.RecordSource(name="ripe-atlas", measurement=1071935)
    out = mapper.map(timeout, source=source)
    assert isinstance(out, rec.Record) and isinstance(out.result, rec.RootResult)
    (q,) = out.result.queries
    assert (q.qname, q.qtype, q.failure, q.rcode, q.wire_b64) == (
        "fr.",
        "SOA",
        "dns_timeout",
        None,
        None,
    )
    assert not q.answered and out.result.identity.site is None
    garbage = json.loads(json.dumps(data["results"][1]))
    garbage["result"]["abuf"] = base64.b64encode(b"\x12\x34not dns").decode()
    out = mapper.map(garbage, source=source)
    assert isinstance(out, rec.Record) and isinstance(out.result, rec.RootResult)
    (q,) = out.result.queries
    assert q.failure == "dns_malformed" and q.size_bytes == 9 and q.rcode is None
    # A type publiccore does not measure, and a non-root DNS target: skipped with the reason.
    ping = monitor(3359986)["results"][0]
    assert mapper.map(ping, source=source) == mapping.Skip("unsupported_type", "ping")
    resolver = monitor(1421267)["results"][0]
    assert isinstance(mapper.map(resolver, source=source), mapping.Skip)


def test_hints_history_decides_what_is_a_root_address(monitor: Any) -> None:
    from publiccore.probes import dnssec

    from publiccore.roothints import HintsHistory

    mapper = mapping.Mapper(
        hints=HintsHistory.load(), probes={}, anchors=dnssec.load_anchors(), questions={}
    )
    old_b = json.loads(json.dumps(monitor(1071935)["results"][0]))
    # B-root until 2017, as the bundled 2014 hints name it
    b_2014 = next(s for s in roothints.hints_as_of(1_400_000_000).servers if s.letter == "b")
    old_b["dst_addr"] = b_2014.ipv4[0]
    source = rec.RecordSource(name="ripe-atlas")
    out = mapper.map(old_b, source=source)
    assert isinstance(out, rec.Record) and isinstance(out.target, rec.RootTarget)
    assert out.target.letter == "b"
    old_b["timestamp"] = 1_735_689_600  # 2025: B has moved (hints 2024 and 2026)
    assert mapper.map(old_b, source=source) == mapping.Skip("not_root", b_2014.ipv4[0])


def test_stored_bodies_are_the_canonical_json(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    store_path = tmp_path / "s.sqlite"
    inputs = [atlas_dir / L_ROOT, atlas_dir / TRACES]
    argv = ["--store", str(store_path), "--probes", str(atlas_dir / TRACES)]
    assert _run(capsys, *argv, *map(str, inputs))[0] == 0
    store = open_store(str(store_path))
    try:
        ids = [r.id for r in store.iter_records()]
        bodies = [store.get_body(i) for i in ids]
    finally:
        store.close()
    assert len(bodies) == 13
    for body in bodies:
        assert body is not None
        assert rec.loads(body).dumps() == body  # what wire.body wrote is Record.dumps()


def test_atlas_settings_outside_their_range_are_refused(
    tmp_path: pathlib.Path, capsys: Any
) -> None:
    config = tmp_path / "c.toml"
    for line, message in (
        ("window_seconds = 5", "atlas.window_seconds = 5.0 is out of range"),
        ("retries = 99", "atlas.retries = 99 is out of range"),
        ('api_url = "ftp://x"', "atlas.api_url = 'ftp://x' is out of range"),
    ):
        config.write_text(f"[atlas]\n{line}\n")
        argv = ["--config", str(config), "import", "atlas", "--store", str(tmp_path / "s")]
        assert cli.main([*argv, "x.json"]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_derived_figures_of_imported_records_claim_no_integrity(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    from publiccore.collectors.derive import root as derive_root
    from publiccore.exporters import catalogue

    store_path = tmp_path / "s.sqlite"
    path = atlas_dir / L_ROOT
    assert _run(capsys, "--store", str(store_path), "--probes", str(path), str(path))[0] == 0
    since, until = 1386240000.0, 1386241000.0
    store = open_store(str(store_path))
    try:
        buckets = derive_root.RootBuckets.load(store, since=since, until=until)
        series = catalogue.root_series(
            derive_root.compute(buckets.window(since, until), max_asn_share=0.25)
        )
    finally:
        store.close()
    # The five records come from GB (3), US and BE probes; not_measured is no integrity figure,
    # neither a share of its own nor a failure diluting the others.
    assert series["publiccore_root_integrity_ratio"] == {}
    assert series["publiccore_aggregate_records"][("GB", "root-dns")] == 3.0


def test_records_outside_the_ingest_domains_are_malformed(
    monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    base = monitor(1071935)["results"]
    old = dict(base[0], timestamp=946_684_799)  # 1999-12-31T23:59:59Z
    future = dict(base[1], timestamp=4_102_444_800)  # 2100
    path = tmp_path / "times.json"
    path.write_text(json.dumps([old, future, base[2]]))
    code, counts, _ = _run(capsys, "--store", str(tmp_path / "s.sqlite"), str(path))
    assert code == 1 and counts["stored"] == 1 and counts["malformed"] == 2
    assert counts["malformed_at"][0] == f"{path}: item 1: started: timestamp before 2000-01-01"
    assert counts["malformed_at"][1].startswith(f"{path}: item 2: started: more than")
