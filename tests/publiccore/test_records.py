"""The record envelope: round trips, the fixture corpus of every schema, precise rejections."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pathlib
import uuid
from typing import Any

import pytest

from publiccore import records
from publiccore.errors import RecordError

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "records"


def _root_record() -> records.Record:
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    query = records.DnsQuery(qname=".", qclass="IN", qtype="SOA", transport="udp",
                             rcode="NOERROR", aa=True, tc=False, rtt_seconds=0.0123,
                             serial=2026010200, nsid_hex="6c6172", nsid_text="lar",
                             size_bytes=512, wire_b64="AAAA", failure=None)
    result = records.RootResult(
        queries=(query,), identity=records.SiteIdentity(nsid="lar"),
        integrity=records.Integrity(outcome="iana", key_tags=(20326, 38696),
                                    validated_at="2026-01-02T03:04:05.000000Z"))
    return records.make_record(
        kind="root-dns", probe=records.ProbeRef(id="p1", asn=64500, country="NL"),
        target=records.RootTarget(letter="k", name="k.root-servers.net.", address="192.0.2.1",
                                  family="ipv4"),
        result=result, started=t0, finished=t0 + dt.timedelta(seconds=1))


def test_round_trip_is_lossless() -> None:
    record = _root_record()
    again = records.loads(record.dumps())
    assert again == record
    assert again.to_json() == record.to_json()


def test_uuid7_is_time_ordered_version_7() -> None:
    first = records.uuid7(now_ns=1_000_000_000_000_000)
    second = records.uuid7(now_ns=1_000_000_001_000_000)
    assert uuid.UUID(first).version == 7
    assert first < second


def test_fixture_corpus_of_every_schema_parses() -> None:
    files = sorted(FIXTURES.glob("v*/*.jsonl"))
    assert files, "the fixture corpus is empty"
    count = 0
    for path in files:
        for line in path.read_text().splitlines():
            record = records.loads(line)
            assert records.loads(record.dumps()) == record
            count += 1
    assert count >= 2


def _mutated(change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_root_record().to_json())
    change(obj)
    return obj


@pytest.mark.parametrize(("change", "path", "reason"), [
    (lambda o: o.pop("kind"), "kind", "missing field"),
    (lambda o: o.update(kind="ping"), "kind", "unknown kind"),
    (lambda o: o.update(schema=2), "schema", "unknown schema version 2"),
    (lambda o: o.update(schema="1"), "schema", "expected integer"),
    (lambda o: o.update(id="not-a-uuid"), "id", "not a UUID"),
    (lambda o: o.update(started="yesterday"), "started", "RFC 3339"),
    (lambda o: o.update(started="2026-01-02T03:04:05"), "started", "RFC 3339"),
    (lambda o: o.update(finished="2020-01-01T00:00:00Z"), "finished", "finished before started"),
    (lambda o: o["probe"].update(country="Netherlands"), "probe.country", "ISO 3166"),
    (lambda o: o["probe"].update(asn=-1), "probe.asn", "out of range"),
    (lambda o: o["target"].update(family="ipx"), "target.family", "expected one of"),
    (lambda o: o["result"]["queries"][0].update(rtt_seconds="fast"),
     "result.queries[0].rtt_seconds", "expected number"),
    (lambda o: o["result"]["queries"][0].update(aa=1), "result.queries[0].aa", "expected boolean"),
    (lambda o: o["result"]["queries"][0].update(serial=1.5), "result.queries[0].serial",
     "expected integer"),
    (lambda o: o["result"]["queries"][0].update(extra=1), "result.queries[0].extra",
     "unknown field"),
    (lambda o: o["result"].update(queries={}), "result.queries", "expected array"),
    (lambda o: o["result"]["integrity"].update(outcome="fine"), "result.integrity.outcome",
     "expected one of"),
    (lambda o: o["result"]["identity"].update(nsid="x" * (records.MAX_STRING + 1)),
     "result.identity.nsid", "string too long"),
    (lambda o: o["result"].pop("integrity"), "result.integrity", "missing field"),
])
def test_malformed_records_are_rejected_with_the_field(change: Any, path: str,
                                                       reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        records.parse_record(_mutated(change))
    assert caught.value.path == path
    assert reason in caught.value.reason


@pytest.mark.parametrize("text", ["", "{", "[1,2]", "null", "1e999", "[" * 5000 + "]" * 5000])
def test_bad_json_is_a_record_error(text: str) -> None:
    with pytest.raises(RecordError):
        records.loads(text)


def test_nan_is_rejected() -> None:
    obj = _root_record().to_json()
    obj["result"]["queries"][0]["rtt_seconds"] = float("nan")
    with pytest.raises(RecordError, match="not finite"):
        records.loads(json.dumps(obj))
