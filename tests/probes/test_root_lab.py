"""The root probe against real NSD servers in network namespaces (tests/lab).

The default lab: a=iana (real 2023 signed root zone), b=alternate (lab-signed), c=unsigned,
d=silent (drops queries), e=notcp (UDP only), f=iana behind a 100 ms one-way delay,
g=iana with another serial. Every server has an IPv4 and an IPv6 address.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import sys
from typing import Any

import pytest

from publiccore import records

SIGNING_TIME = "2023-05-11T12:00:00Z"  # inside the real zone's RRSIG validity
TIMEOUT = "1.5"


def _probe(lab: Any, *args: str, store: pathlib.Path | None = None) -> list[records.Record]:
    argv = [
        sys.executable,
        "-m",
        "publiccore",
        "probe",
        "root",
        "--once",
        "--json",
        "--hints",
        str(lab.hints_path),
        "--timeout",
        TIMEOUT,
        *args,
    ]
    argv += ["--store", str(store)] if store else ["--no-store"]
    done = lab.run_in_probe(*argv, timeout=120)
    assert done.returncode == 0, done.stderr
    return [records.loads(line) for line in done.stdout.splitlines()]


def _by(recs: list[records.Record]) -> dict[tuple[str, str], records.Record]:
    out = {}
    for record in recs:
        assert isinstance(record.target, records.RootTarget)
        out[(record.target.letter, record.target.family)] = record
    return out


def _result(record: records.Record) -> records.RootResult:
    assert isinstance(record.result, records.RootResult)
    return record.result


def _query(
    record: records.Record, qtype: str, transport: str, qname: str = "."
) -> records.DnsQuery:
    return next(
        q
        for q in _result(record).queries
        if q.qtype == qtype and q.transport == transport and q.qname == qname
    )


@pytest.fixture(scope="module")
def round_at_signing_time(
    dns_lab_default: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, dict[tuple[str, str], records.Record], pathlib.Path]:
    store = tmp_path_factory.mktemp("store") / "probe.sqlite"
    recs = _probe(dns_lab_default, "--validation-time", SIGNING_TIME, store=store)
    return dns_lab_default, _by(recs), store


@pytest.fixture(scope="module")
def round_today(dns_lab_default: Any) -> dict[tuple[str, str], records.Record]:
    return _by(_probe(dns_lab_default))


def test_one_record_per_address_and_all_stored(round_at_signing_time: Any) -> None:
    lab, recs, store = round_at_signing_time
    assert set(recs) == {(s.letter, fam) for s in lab.servers for fam in ("ipv4", "ipv6")}
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == len(recs)
    addresses = {r.target.address for r in recs.values()}  # type: ignore[union-attr]
    assert addresses == {a for s in lab.servers for a in (s.ipv4, s.ipv6)}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_real_iana_zone_answers_and_validates_at_signing_time(
    round_at_signing_time: Any, family: str
) -> None:
    lab, recs, _ = round_at_signing_time
    record = recs[("a", family)]
    result = _result(record)
    for transport in ("udp", "tcp"):
        soa = _query(record, "SOA", transport)
        assert soa.answered and soa.rcode == "NOERROR" and soa.aa
        assert soa.serial == 2023051100
        delayed = _query(recs[("f", family)], "SOA", transport).rtt_seconds
        # measured, and below that of the server 2 × 100 ms away in the same round (a baseline
        # as slow as the machine is, not a bound on elapsed time)
        assert soa.rtt_seconds is not None and delayed is not None
        assert 0 < soa.rtt_seconds < delayed
        assert soa.wire_b64 and soa.size_bytes and soa.size_bytes > 100
        assert soa.nsid_text == lab.server("a").nsid
        assert soa.nsid_hex == lab.server("a").nsid.encode().hex()
    assert result.identity.hostname_bind == lab.server("a").identity
    assert result.identity.id_server == lab.server("a").identity
    assert result.identity.nsid == lab.server("a").nsid
    assert result.integrity.outcome == "iana", result.integrity.reason
    assert 20326 in result.integrity.key_tags
    assert result.integrity.validated_at == "2023-05-11T12:00:00.000000Z"
    assert result.consistency.status == "consistent"


def test_real_iana_zone_is_bogus_expired_today(round_today: dict[Any, records.Record]) -> None:
    integrity = _result(round_today[("a", "ipv4")]).integrity
    assert integrity.outcome == "bogus"
    assert "expired" in (integrity.reason or "")


def test_lab_signed_root_is_alternate(round_today: dict[Any, records.Record]) -> None:
    integrity = _result(round_today[("b", "ipv6")]).integrity
    assert integrity.outcome == "alternate", integrity.reason
    assert "none of them an IANA trust anchor" in (integrity.reason or "")


def test_lab_key_as_anchor_makes_the_lab_root_iana(dns_lab_default: Any) -> None:
    assert dns_lab_default.alternate_anchor_path is not None
    recs = _by(_probe(dns_lab_default, "--anchors", str(dns_lab_default.alternate_anchor_path)))
    assert _result(recs[("b", "ipv4")]).integrity.outcome == "iana"
    assert _result(recs[("c", "ipv4")]).integrity.outcome == "unsigned"


def test_unsigned_zone_is_unsigned(round_at_signing_time: Any) -> None:
    _, recs, _ = round_at_signing_time
    assert _result(recs[("c", "ipv4")]).integrity.outcome == "unsigned"


def test_silent_server_times_out_and_is_still_a_record(round_at_signing_time: Any) -> None:
    _, recs, _ = round_at_signing_time
    record = recs[("d", "ipv4")]
    assert {q.failure for q in _result(record).queries} == {"dns_timeout"}
    assert not any(q.answered for q in _result(record).queries)
    assert _result(record).integrity.outcome == "no-answer"
    assert _result(record).consistency.status == "unknown"


def test_server_refusing_tcp(round_at_signing_time: Any) -> None:
    _, recs, _ = round_at_signing_time
    record = recs[("e", "ipv6")]
    assert _query(record, "SOA", "udp").answered
    tcp = _query(record, "SOA", "tcp")
    assert tcp.failure == "tcp_refused" and not tcp.answered


def test_delay_is_measured_within_a_few_ms(round_at_signing_time: Any) -> None:
    # The baseline is the undelayed server a (same zone, same round, same load): what the
    # delayed f measures beyond its added delay may not exceed a's whole RTT by more than a
    # few ms, however slow the machine is at that moment.
    lab, recs, _ = round_at_signing_time
    one_way = lab.server("f").delay_ms / 1000
    for family in ("ipv4", "ipv6"):
        udp = _query(recs[("f", family)], "SOA", "udp").rtt_seconds
        tcp = _query(recs[("f", family)], "SOA", "tcp").rtt_seconds
        base_udp = _query(recs[("a", family)], "SOA", "udp").rtt_seconds
        base_tcp = _query(recs[("a", family)], "SOA", "tcp").rtt_seconds
        assert None not in (udp, tcp, base_udp, base_tcp)
        assert udp is not None and tcp is not None
        assert base_udp is not None and base_tcp is not None
        assert 2 * one_way - 0.002 <= udp <= 2 * one_way + base_udp + 0.020, (udp, base_udp)
        # TCP from connection start: handshake plus exchange, two round trips
        assert 4 * one_way - 0.002 <= tcp <= 4 * one_way + base_tcp + 0.040, (tcp, base_tcp)


def test_other_serial_is_inconsistent(round_at_signing_time: Any) -> None:
    _, recs, _ = round_at_signing_time
    consistency = _result(recs[("g", "ipv4")]).consistency
    assert consistency.status == "inconsistent"
    assert any(d.startswith("serial 2023051000 (majority 2023051100)") for d in consistency.differs)
    assert _result(recs[("f", "ipv4")]).consistency.status == "consistent"


def test_table_output(dns_lab_default: Any) -> None:
    done = dns_lab_default.run_in_probe(
        sys.executable,
        "-m",
        "publiccore",
        "probe",
        "root",
        "--once",
        "--no-store",
        "--hints",
        str(dns_lab_default.hints_path),
        "--timeout",
        TIMEOUT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for text in ("alternate", "unsigned", "dns_timeout", "tcp_refused", "lab-a-nsid"):
        assert text in done.stdout


def test_round_with_every_server_silent_succeeds_and_says_so(make_dns_lab: Any) -> None:
    lab = make_dns_lab(
        [{"letter": "a", "scenario": "silent"}, {"letter": "b", "scenario": "silent"}]
    )
    done = lab.run_in_probe(
        sys.executable,
        "-m",
        "publiccore",
        "probe",
        "root",
        "--once",
        "--no-store",
        "--hints",
        str(lab.hints_path),
        "--timeout",
        "1",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "no root server answered (4 addresses tried)" in done.stdout


def test_records_round_trip_through_json(round_today: dict[Any, records.Record]) -> None:
    for record in round_today.values():
        assert records.loads(json.dumps(record.to_json())) == record


def test_truncated_dnskey_is_asked_again_over_tcp_and_unrouted_is_unreachable(
    make_dns_lab: Any, tmp_path: pathlib.Path
) -> None:
    lab = make_dns_lab([{"letter": "a", "scenario": "iana"}])
    config = tmp_path / "small-payload.toml"
    config.write_text("[root]\nudp_payload_bytes = 512\n")
    hints = tmp_path / "named.root"
    # 203.0.113.250 is documentation space with no route in the probe namespace: the kernel
    # refuses to send, no packet leaves.
    hints.write_text(
        lab.hints_path.read_text()
        + ". 1 NS z.root-servers.test.\nz.root-servers.test. 1 A 203.0.113.250\n"
    )
    done = lab.run_in_probe(
        sys.executable,
        "-m",
        "publiccore",
        "--config",
        str(config),
        "probe",
        "root",
        "--once",
        "--json",
        "--no-store",
        "--hints",
        str(hints),
        "--timeout",
        TIMEOUT,
        "--validation-time",
        SIGNING_TIME,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    recs = _by([records.loads(line) for line in done.stdout.splitlines()])
    a = recs[("a", "ipv4")]
    dnskey_udp = _query(a, "DNSKEY", "udp")
    assert dnskey_udp.tc and dnskey_udp.failure is None and dnskey_udp.answered  # TC is a flag
    dnskey_tcp = _query(a, "DNSKEY", "tcp")
    assert dnskey_tcp.answered and not dnskey_tcp.tc
    assert _result(a).integrity.outcome == "iana", _result(a).integrity.reason
    z = recs[("z", "ipv4")]
    assert {q.failure for q in _result(z).queries} == {"network_unreachable"}
