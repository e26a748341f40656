"""Raw-record compaction: byte-for-byte round trips, one answer per distinct wire answer."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from publiccore import records
from publiccore.errors import StoreError
from publiccore.store import compact

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "records"


def _fixture_bodies() -> list[tuple[str, str]]:
    """(kind, canonical body) of every fixture record of every schema version."""
    out = []
    for path in sorted(FIXTURES.glob("v*/*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = records.loads(line)
                out.append((record.kind, record.dumps()))
    return out


def _benchmark() -> ModuleType:
    """benchmarks/store_size.py, whose lab-like records the tests reuse."""
    name = "publiccore_bench_store_size"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "store_size.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_every_fixture_record_round_trips_byte_for_byte() -> None:
    bodies = _fixture_bodies()
    assert {kind for kind, _ in bodies} == {"root-dns", "traceroute"}
    store: dict[str, bytes] = {}
    for kind, body in bodies:
        packed = compact.pack(body, kind)
        store.update(packed.answers)
        assert compact.unpack(packed.blob, store) == body
        assert compact.expand(packed.blob, store.__getitem__) == body
        assert set(compact.answer_refs(packed.blob)) == {key for key, _ in packed.answers}
        assert len(packed.blob) < len(body)


def test_root_answers_are_cut_out_and_keyed_by_their_hash() -> None:
    kind, body = next(b for b in _fixture_bodies() if b[0] == "root-dns")
    record = records.loads(body)
    assert isinstance(record.result, records.RootResult)
    wires = [base64.b64decode(q.wire_b64) for q in record.result.queries if q.wire_b64]
    packed = compact.pack(body, kind)
    expected = {hashlib.sha256(b"\0\0" + w[2:]).hexdigest(): w for w in wires}
    assert {key for key, _ in packed.answers} == set(expected)
    for key, blob in packed.answers:
        stored = zstandard.ZstdDecompressor().decompress(blob)
        assert stored == b"\0\0" + expected[key][2:]  # the answer with DNS ID 0
    # What stays per record holds none of the base64 text.
    payload = zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(
            compact._ROOT_DICTIONARY, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
    ).decompress(packed.blob[1:])
    assert all(q.wire_b64.encode()[:40] not in payload for q in record.result.queries if q.wire_b64)


def test_the_same_answer_with_another_dns_id_is_stored_once() -> None:
    _, body = next(b for b in _fixture_bodies() if b[0] == "root-dns")
    record = records.loads(body)
    assert isinstance(record.result, records.RootResult)

    def with_id(dns_id: int) -> str:
        queries = []
        for query in record.result.queries:
            if query.wire_b64:
                wire = dns_id.to_bytes(2, "big") + base64.b64decode(query.wire_b64)[2:]
                query = dataclasses.replace(query, wire_b64=base64.b64encode(wire).decode())
            queries.append(query)
        result = dataclasses.replace(record.result, queries=tuple(queries))
        return dataclasses.replace(record, result=result).dumps()

    one, two = compact.pack(with_id(1), "root-dns"), compact.pack(with_id(2), "root-dns")
    assert one.answers == two.answers
    assert one.blob != two.blob
    answers = dict(one.answers)
    assert compact.unpack(one.blob, answers) == with_id(1)
    assert compact.unpack(two.blob, answers) == with_id(2)


def test_lab_like_records_round_trip_and_shrink() -> None:
    bench = _benchmark()
    bodies = [r.dumps() for r in bench.lab_like_records(probes=3, rounds=6, rounds_per_serial=3)]
    assert len(bodies) == 3 * 6 * 26
    answers: dict[str, bytes] = {}
    blobs = []
    for body in bodies:
        packed = compact.pack(body, "root-dns")
        for key, blob in packed.answers:
            answers.setdefault(key, blob)
        blobs.append(packed.blob)
    assert [compact.unpack(b, answers) for b in blobs] == bodies
    # Answers repeat: far fewer distinct answers than answers sent.
    sent = sum(body.count('"wire_b64":"') for body in bodies)
    assert len(answers) < sent / 2
    size = sum(map(len, blobs)) + sum(map(len, answers.values()))
    # Against the same records each compressed whole (the baseline), at least twice smaller.
    whole = sum(len(zstandard.ZstdCompressor(level=3).compress(b.encode())) for b in bodies)
    assert size < whole / 2


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty: no answer
        "AB==",  # canonical? no: b'\x00' with padding bits set is 'AA=='
        "AAAA",  # shorter than a DNS header
        "A" * 17,  # not a multiple of four
        "QUJD\nREVG",  # a newline: not canonical base64
        "QUJDREVGR0hJSktMTU5PUA==\u00e9",  # not ASCII
    ],
)
def test_text_that_is_no_canonical_answer_stays_inline(text: str) -> None:
    body = '{"queries":[{"wire_b64":"' + text + '"}],"x":"\u00e9\ud800"}'
    packed = compact.pack(body, "root-dns")
    assert packed.answers == ()
    assert compact.unpack(packed.blob, {}) == body


def test_answer_key_inside_another_string_still_round_trips() -> None:
    wire = base64.b64encode(bytes(range(40))).decode()
    body = (
        '{"nsid_text":"\\"wire_b64\\":\\"' + wire + '\\"","wire_b64":"' + wire + '",'
        '"tail":"wire_b64":"' + wire + '"'
    )
    packed = compact.pack(body, "root-dns")
    assert len(packed.answers) == 1
    assert compact.unpack(packed.blob, dict(packed.answers)) == body


_b64 = st.binary(min_size=0, max_size=300).map(lambda b: base64.b64encode(b).decode())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=40), _b64.map(lambda t: f'"wire_b64":"{t}"')), max_size=12),
    st.sampled_from(["root-dns", "traceroute", "other"]),
)
def test_any_text_round_trips(parts: list[str], kind: str) -> None:
    body = "".join(parts)
    packed = compact.pack(body, kind)
    assert compact.unpack(packed.blob, dict(packed.answers)) == body
    assert set(compact.answer_refs(packed.blob)) == {key for key, _ in packed.answers}


_query = st.builds(
    records.DnsQuery,
    qname=st.sampled_from([".", "hostname.bind.", "id.server."]),
    qclass=st.sampled_from(["IN", "CH"]),
    qtype=st.sampled_from(["SOA", "TXT", "DNSKEY"]),
    transport=st.sampled_from(["udp", "tcp"]),
    rcode=st.none() | st.sampled_from(["NOERROR", "SERVFAIL"]),
    rtt_seconds=st.none() | st.floats(min_value=0, max_value=10),
    serial=st.none() | st.integers(min_value=0, max_value=2**32 - 1),
    nsid_text=st.none() | st.text(max_size=20),
    wire_b64=st.none() | _b64,
    failure=st.none() | st.sampled_from(["dns_timeout", "truncated"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_query, max_size=7), st.text(max_size=30))
def test_any_root_record_round_trips(queries: list[records.DnsQuery], host: str) -> None:
    t0 = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    record = records.make_record(
        kind="root-dns",
        probe=records.ProbeRef(id="p1", asn=64500, country="NL"),
        target=records.RootTarget(
            letter="k", name="k.root-servers.net.", address="::1", family="ipv6"
        ),
        result=records.RootResult(
            queries=tuple(queries),
            identity=records.SiteIdentity(hostname_bind=host),
            integrity=records.Integrity(outcome="no-answer"),
        ),
        started=t0,
        finished=t0,
    )
    body = record.dumps()
    packed = compact.pack(body, "root-dns")
    assert compact.unpack(packed.blob, dict(packed.answers)) == body


def test_bad_blobs_and_missing_answers_are_store_errors() -> None:
    _, body = next(b for b in _fixture_bodies() if b[0] == "root-dns")
    packed = compact.pack(body, "root-dns")
    with pytest.raises(StoreError, match="missing answer"):
        compact.unpack(packed.blob, {})
    with pytest.raises(StoreError, match="empty"):
        compact.unpack(b"", {})
    with pytest.raises(StoreError, match="unknown record blob version 9"):
        compact.unpack(b"\x09" + packed.blob[1:], dict(packed.answers))
    with pytest.raises(StoreError, match="corrupt record blob"):
        compact.answer_refs(packed.blob[:20])
    key = packed.answers[0][0]
    with pytest.raises(StoreError, match="corrupt answer blob"):
        compact.unpack(packed.blob, {**dict(packed.answers), key: b"not zstd"})
